import CNetfilter
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A libiptc snapshot of one table, changed in memory and committed as a whole.
final class IptcTable {
    private let handle: OpaquePointer
    let name: String

    /// Reads the table; the kernel answers `EAGAIN` when the table changed between libiptc's two reads, so that
    /// is retried.
    init(name: String) throws(JobboxError) {
        self.name = name
        var attempts = 0
        while true {
            if let handle = iptc_init(name) {
                self.handle = handle
                return
            }
            let code = errno
            attempts += 1
            if code == EAGAIN && attempts < 10 { continue }
            throw Self.failure("cannot read iptables table", name, code)
        }
    }

    deinit { iptc_free(handle) }

    /// Reads table `name`, lets `body` change it, and commits when `body` says it changed something.
    static func modify(_ name: String, _ body: (IptcTable) throws(JobboxError) -> Bool) throws(JobboxError) {
        let table = try IptcTable(name: name)
        if try body(table) { try table.commit() }
    }

    static func failure(_ operation: String, _ object: String, _ code: Int32) -> JobboxError {
        JobboxError(operation, object, reason: String(cString: iptc_strerror(code)), errno: Errno(rawValue: code))
    }

    func isChain(_ chain: String) -> Bool { iptc_is_chain(chain, handle) != 0 }

    func createChain(_ chain: String) throws(JobboxError) {
        if iptc_create_chain(chain, handle) == 0 { throw Self.failure("cannot create iptables chain", "\(name)/\(chain)", errno) }
    }

    func deleteChain(_ chain: String) throws(JobboxError) {
        if iptc_flush_entries(chain, handle) == 0 || iptc_delete_chain(chain, handle) == 0 {
            throw Self.failure("cannot delete iptables chain", "\(name)/\(chain)", errno)
        }
    }

    func append(_ chain: String, _ entry: [UInt8]) throws(JobboxError) {
        let ok = entry.withUnsafeBytes { raw in
            iptc_append_entry(chain, raw.baseAddress?.assumingMemoryBound(to: ipt_entry.self), handle)
        }
        if ok == 0 { throw Self.failure("cannot append iptables rule to", "\(name)/\(chain)", errno) }
    }

    /// Inserts `entry` as the first rule of `chain`.
    func insert(_ chain: String, _ entry: [UInt8]) throws(JobboxError) {
        let ok = entry.withUnsafeBytes { raw in
            iptc_insert_entry(chain, raw.baseAddress?.assumingMemoryBound(to: ipt_entry.self), 0, handle)
        }
        if ok == 0 { throw Self.failure("cannot insert iptables rule into", "\(name)/\(chain)", errno) }
    }

    /// Calls `each` with every rule of `chain` and its target's name.
    func forEachRule(in chain: String, _ each: (UnsafePointer<ipt_entry>, String) -> Void) {
        var entry = iptc_first_rule(chain, handle)
        while let current = entry {
            let target = iptc_get_target(current, handle).map { String(cString: $0) } ?? ""
            each(current, target)
            entry = iptc_next_rule(current, handle)
        }
    }

    /// Deletes every rule of `chain` that `matches`; whether any was deleted.
    func deleteRules(in chain: String, where matches: (UnsafePointer<ipt_entry>, String) -> Bool) throws(JobboxError) -> Bool {
        guard isChain(chain) else { return false }
        var doomed: [UInt32] = []
        var index: UInt32 = 0
        forEachRule(in: chain) { entry, target in
            if matches(entry, target) { doomed.append(index) }
            index += 1
        }
        // From the last to the first, so the numbers of the rules still to delete stay put.
        for number in doomed.reversed() where iptc_delete_num_entry(chain, number, handle) == 0 {
            throw Self.failure("cannot delete iptables rule from", "\(name)/\(chain)", errno)
        }
        return !doomed.isEmpty
    }

    func commit() throws(JobboxError) {
        if iptc_commit(handle) == 0 { throw Self.failure("cannot commit iptables table", name, errno) }
    }
}
