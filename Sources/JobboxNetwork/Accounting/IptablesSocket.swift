import CNetfilter
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The kernel's legacy iptables interface for IPv4 (`linux/netfilter_ipv4/ip_tables.h`): socket options on a raw
/// socket that read one table whole and replace it whole, as libiptc uses them.
///
/// It moves bytes only: what the kernel returns is checked by `IptablesImage` before anything relies on it.
final class IptablesSocket {
    private let fd: Int32
    /// What a failed read of a table says (opening the socket is part of reading it).
    private static let readFailure = "cannot read iptables table"

    /// A raw IPv4 socket of the calling thread's network namespace (needs `CAP_NET_ADMIN` there for every option).
    init(table: String) throws(JobboxError) {
        fd = socket(AF_INET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_RAW))
        if fd < 0 { throw JobboxError.lastErrno(Self.readFailure, table) }
    }

    deinit { close(fd) }

    /// A table as read: its `ipt_getinfo` (hooks, entry count, size) and its entries.
    struct Snapshot {
        var info: ipt_getinfo
        var entries: [UInt8]

        /// The offset of each hook's first entry.
        var hookEntry: [UInt32] { IptablesSocket.hooks(info.hook_entry) }
        /// The offset of each hook's policy.
        var underflow: [UInt32] { IptablesSocket.hooks(info.underflow) }
    }

    /// Reads `table`: its info, then its entries. The kernel answers `EAGAIN` when the table's size changed
    /// between the two reads, and a change that kept the size shows in a second info that differs from the first:
    /// both are read again.
    func read(_ table: String) throws(JobboxError) -> Snapshot {
        var attempts = 0
        while true {
            attempts += 1
            let info = try self.info(table)
            let header = MemoryLayout<ipt_get_entries>.size
            var request = ipt_get_entries()
            Self.setName(&request.name, table)
            request.size = info.size
            var buffer = withUnsafeBytes(of: request) { Array($0) } + [UInt8](repeating: 0, count: Int(info.size))
            var length = socklen_t(buffer.count)
            let status = buffer.withUnsafeMutableBytes { getsockopt(fd, SOL_IP, IPT_SO_GET_ENTRIES, $0.baseAddress, &length) }
            let code = errno
            if status == 0, Int(length) == buffer.count, Self.same(info, try self.info(table)) {
                return Snapshot(info: info, entries: Array(buffer[header...]))
            }
            if status == 0 || code == EAGAIN, attempts < 10 { continue }
            throw JobboxError.system(Self.readFailure, table, Errno(rawValue: status == 0 ? EAGAIN : code))
        }
    }

    private func info(_ table: String) throws(JobboxError) -> ipt_getinfo {
        var info = ipt_getinfo()
        Self.setName(&info.name, table)
        var length = socklen_t(MemoryLayout<ipt_getinfo>.size)
        if getsockopt(fd, SOL_IP, IPT_SO_GET_INFO, &info, &length) != 0 { throw JobboxError.lastErrno(Self.readFailure, table) }
        return info
    }

    private static func same(_ first: ipt_getinfo, _ second: ipt_getinfo) -> Bool {
        withUnsafeBytes(of: first) { one in withUnsafeBytes(of: second) { two in one.elementsEqual(two) } }
    }

    /// Replaces `table` with `image`, and returns the counters of the entries it had (`readCount` of them, in
    /// their order), which the kernel copies out as it swaps the tables. The kernel refuses (`EAGAIN`) when the
    /// table no longer has `readCount` entries: someone committed since it was read.
    func replace(_ table: String, with image: IptablesImage.Serialised, validHooks: UInt32, readCount: Int) throws(JobboxError) -> [xt_counters] {
        var old = [xt_counters](repeating: xt_counters(), count: max(readCount, 1))
        var header = ipt_replace()
        Self.setName(&header.name, table)
        header.valid_hooks = validHooks
        header.num_entries = UInt32(image.count)
        header.size = UInt32(image.entries.count)
        Self.setHooks(&header.hook_entry, image.hookEntry)
        Self.setHooks(&header.underflow, image.underflow)
        header.num_counters = UInt32(readCount)
        let status = old.withUnsafeMutableBufferPointer { counters in
            header.counters = counters.baseAddress
            let buffer = withUnsafeBytes(of: header) { Array($0) } + image.entries
            return buffer.withUnsafeBytes { setsockopt(fd, SOL_IP, IPT_SO_SET_REPLACE, $0.baseAddress, socklen_t($0.count)) }
        }
        if status != 0 { throw JobboxError.lastErrno("cannot commit iptables table", table) }
        return Array(old.prefix(readCount))
    }

    /// Adds `counters` to the entries of `table`, one per entry in order (`IPT_SO_SET_ADD_COUNTERS`).
    func addCounters(_ table: String, _ counters: [xt_counters]) throws(JobboxError) {
        var header = xt_counters_info()
        Self.setName(&header.name, table)
        header.num_counters = UInt32(counters.count)
        let buffer = withUnsafeBytes(of: header) { Array($0) } + counters.withUnsafeBytes { Array($0) }
        let status = buffer.withUnsafeBytes { setsockopt(fd, SOL_IP, IPT_SO_SET_ADD_COUNTERS, $0.baseAddress, socklen_t($0.count)) }
        // The table is already replaced by now, with every counter at zero, and there is no going back: say so.
        if status != 0 { throw JobboxError.lastErrno("cannot restore the counters (all now zero) of iptables table", table) }
    }

    /// Writes `name` NUL-terminated into a fixed `char[32]` (table names are jobbox's own constants).
    private static func setName<Field>(_ field: inout Field, _ name: String) {
        withUnsafeMutableBytes(of: &field) { buffer in
            for index in buffer.indices { buffer[index] = 0 }
            for (index, byte) in name.utf8.prefix(buffer.count - 1).enumerated() { buffer[index] = byte }
        }
    }

    /// The five hook offsets of an `unsigned int[NF_INET_NUMHOOKS]`.
    private static func hooks<Field>(_ field: Field) -> [UInt32] {
        withUnsafeBytes(of: field) { raw in (0..<raw.count / 4).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self) } }
    }

    /// Writes the five hook offsets into an `unsigned int[NF_INET_NUMHOOKS]`.
    private static func setHooks<Field>(_ field: inout Field, _ values: [UInt32]) {
        withUnsafeMutableBytes(of: &field) { buffer in
            for (index, value) in values.prefix(buffer.count / 4).enumerated() {
                buffer.storeBytes(of: value, toByteOffset: index * 4, as: UInt32.self)
            }
        }
    }
}
