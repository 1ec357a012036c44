import CNetfilter
import JobboxCore

/// Builds `ipt_entry` blobs as the kernel takes them: the fixed entry, then matches, then the target, each padded
/// to the kernel's 8-byte `XT_ALIGN`.
///
/// The layouts of the extension payloads are the kernel's ABI: `xt_comment_info` is `char comment[256]`,
/// `ipt_reject_info` one enum, `nf_nat_ipv4_multi_range_compat` a count and one 16-byte range.
package enum IptablesEntry {
    /// `XT_ALIGN`: extensions are aligned to 8 bytes (the alignment of `u64` on every Linux ABI jobbox runs on).
    static func align(_ size: Int) -> Int { (size + 7) & ~7 }

    /// `sizeof(struct xt_entry_match)` and `sizeof(struct xt_entry_target)`: a 2-byte size, a 29-byte name, a revision.
    static let extensionHeaderSize = 32
    /// `XT_EXTENSION_MAXNAMELEN` minus the terminating NUL.
    static let maxExtensionName = 28
    /// `ipt_reject_with`'s `IPT_ICMP_PORT_UNREACHABLE`.
    static let icmpPortUnreachable: Int32 = 3
    /// `xt_error_target`'s name size (`XT_FUNCTION_MAXNAMELEN`).
    static let errorNameSize = 30
    /// The comment match's text size.
    static let commentSize = 256

    /// Where a rule matches: the interface it enters or leaves by, and the remote network.
    package struct Selector: Sendable, Equatable {
        /// `-i NAME` (entering by this interface).
        package var input: String?
        /// `-o NAME` (leaving by this interface).
        package var output: String?
        /// `-s NETWORK`.
        package var source: IPv4Network?
        /// `-d NETWORK`.
        package var destination: IPv4Network?

        /// A selector; every part is optional.
        package init(input: String? = nil, output: String? = nil, source: IPv4Network? = nil, destination: IPv4Network? = nil) {
            self.input = input
            self.output = output
            self.source = source
            self.destination = destination
        }
    }

    /// What a rule does with a packet it matches.
    package enum Target: Sendable, Equatable {
        /// A standard verdict or a jump, by name: `RETURN`, `ACCEPT`, a chain (`IptablesTable` resolves the name).
        case standard(String)
        /// The `ERROR` target that heads a user chain and carries its name (`xt_error_target`).
        case error(String)
        /// `REJECT --reject-with icmp-port-unreachable`.
        case rejectPortUnreachable
        /// `MASQUERADE`.
        case masquerade
    }

    /// The entry for `selector`, an optional `-m comment --comment TEXT`, and `target`.
    package static func make(_ selector: Selector, comment: String? = nil, target: Target) -> [UInt8] {
        var entry = ipt_entry()
        if let source = selector.source {
            entry.ip.src.s_addr = networkOrder(source.address)
            entry.ip.smsk.s_addr = networkOrder(IPv4Address(source.mask))
        }
        if let destination = selector.destination {
            entry.ip.dst.s_addr = networkOrder(destination.address)
            entry.ip.dmsk.s_addr = networkOrder(IPv4Address(destination.mask))
        }
        if let input = selector.input {
            withUnsafeMutableBytes(of: &entry.ip.iniface) { fillInterface($0, input) }
            withUnsafeMutableBytes(of: &entry.ip.iniface_mask) { fillMask($0, input) }
        }
        if let output = selector.output {
            withUnsafeMutableBytes(of: &entry.ip.outiface) { fillInterface($0, output) }
            withUnsafeMutableBytes(of: &entry.ip.outiface_mask) { fillMask($0, output) }
        }
        let matches = comment.map(commentMatch) ?? []
        let targetBytes = self.target(target)
        let entrySize = MemoryLayout<ipt_entry>.size
        entry.target_offset = UInt16(entrySize + matches.count)
        entry.next_offset = UInt16(entrySize + matches.count + targetBytes.count)
        return withUnsafeBytes(of: entry) { Array($0) } + matches + targetBytes
    }

    /// The 32-byte header of a match or target: its total size, its name, its revision.
    static func extensionHeader(size: Int, name: String, revision: UInt8 = 0) -> [UInt8] {
        var bytes = withUnsafeBytes(of: UInt16(size)) { Array($0) }
        let nameBytes = Array(name.utf8.prefix(maxExtensionName))
        bytes += nameBytes + [UInt8](repeating: 0, count: 29 - nameBytes.count)
        bytes.append(revision)
        return bytes
    }

    /// `-m comment --comment TEXT` (text cut to 255 bytes).
    static func commentMatch(_ text: String) -> [UInt8] {
        let size = align(extensionHeaderSize + commentSize)
        let textBytes = Array(text.utf8.prefix(commentSize - 1))
        var bytes = extensionHeader(size: size, name: "comment") + textBytes
        bytes += [UInt8](repeating: 0, count: size - bytes.count)
        return bytes
    }

    static func target(_ target: Target) -> [UInt8] {
        let payload: [UInt8]
        let name: String
        switch target {
        case .standard(let label):
            name = label
            payload = withUnsafeBytes(of: Int32(0)) { Array($0) }
        case .rejectPortUnreachable:
            name = "REJECT"
            payload = withUnsafeBytes(of: icmpPortUnreachable) { Array($0) }
        case .error(let chain):
            name = "ERROR"
            // errorname: char[XT_FUNCTION_MAXNAMELEN], NUL-terminated.
            payload = Array(chain.utf8.prefix(errorNameSize - 1)) + [UInt8](repeating: 0, count: errorNameSize - min(chain.utf8.count, errorNameSize - 1))
        case .masquerade:
            name = "MASQUERADE"
            // rangesize = 1, then one range with no flags: masquerade to the outgoing interface's address.
            payload = withUnsafeBytes(of: UInt32(1)) { Array($0) } + [UInt8](repeating: 0, count: 16)
        }
        let size = align(extensionHeaderSize + payload.count)
        var bytes = extensionHeader(size: size, name: name) + payload
        bytes += [UInt8](repeating: 0, count: size - bytes.count)
        return bytes
    }

    static func networkOrder(_ address: IPv4Address) -> UInt32 { address.value.bigEndian }

    private static func fillInterface(_ buffer: UnsafeMutableRawBufferPointer, _ name: String) {
        for (index, byte) in name.utf8.prefix(buffer.count - 1).enumerated() { buffer[index] = byte }
    }

    /// iptables matches a name exactly by masking its bytes and the terminating NUL.
    private static func fillMask(_ buffer: UnsafeMutableRawBufferPointer, _ name: String) {
        for index in 0..<min(name.utf8.count + 1, buffer.count) { buffer[index] = 0xff }
    }

    /// The text of the first comment match of the entry at `entry`, if any.
    static func comment(of entry: UnsafePointer<ipt_entry>) -> String? {
        let raw = UnsafeRawPointer(entry)
        var offset = MemoryLayout<ipt_entry>.size
        let end = Int(entry.pointee.target_offset)
        while offset + extensionHeaderSize <= end {
            let size = Int(raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            guard size >= extensionHeaderSize else { return nil }
            let name = String(decoding: UnsafeRawBufferPointer(start: raw + offset + 2, count: 29).prefix { $0 != 0 }, as: UTF8.self)
            if name == "comment" {
                let text = UnsafeRawBufferPointer(start: raw + offset + extensionHeaderSize, count: min(commentSize, size - extensionHeaderSize))
                return String(decoding: text.prefix { $0 != 0 }, as: UTF8.self)
            }
            offset += size
        }
        return nil
    }
}
