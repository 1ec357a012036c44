import CNetfilter
import JobboxCore

/// One netlink request, built as the bytes that go on the socket.
///
/// The bytes can be compared with byte fixtures in tests without a kernel. Every length field is in host byte
/// order and every attribute is padded to 4 bytes with zeros, as the kernel (and libmnl, which built these
/// before) lay them out; nests carry `NLA_F_NESTED`.
package final class NetlinkMessage {
    /// The message so far; the header's `nlmsg_len` always says how long it is.
    package private(set) var bytes: [UInt8]

    /// The size of `nlmsghdr` and of an attribute's header.
    static let headerSize = MemoryLayout<nlmsghdr>.size
    static let attributeHeaderSize = MemoryLayout<nlattr>.size

    /// Starts a message of `type` with `flags` (`NLM_F_REQUEST` is always added) and sequence number `sequence`,
    /// addressed to the kernel (port id 0).
    package init(type: UInt16, flags: Int32, sequence: UInt32) {
        bytes = []
        bytes.reserveCapacity(256)
        var header = nlmsghdr()
        header.nlmsg_len = UInt32(Self.headerSize)
        header.nlmsg_type = type
        header.nlmsg_flags = UInt16(truncatingIfNeeded: flags | NLM_F_REQUEST)
        header.nlmsg_seq = sequence
        withUnsafeBytes(of: header) { bytes.append(contentsOf: $0) }
    }

    /// The message's length in bytes.
    package var length: Int { bytes.count }

    /// The sequence number.
    package var sequence: UInt32 { load(UInt32.self, at: 8) }

    /// Appends the family-specific header (`ifinfomsg`, `ifaddrmsg`, `rtmsg`, `nfgenmsg`), zero-padded to 4 bytes.
    package func putExtraHeader<Header>(_ value: Header) {
        putRaw(value)
    }

    /// Appends attribute `type` with `payload`, zero-padded to 4 bytes.
    package func put(_ type: Int32, bytes payload: [UInt8]) {
        let attributeLength = Self.attributeHeaderSize + payload.count
        precondition(attributeLength <= Int(UInt16.max), "netlink attribute \(type) is too long")
        append(UInt16(attributeLength))
        append(UInt16(truncatingIfNeeded: type))
        bytes.append(contentsOf: payload)
        pad()
    }

    /// Appends a 32-bit attribute in host byte order.
    package func put(_ type: Int32, u32 value: UInt32) {
        put(type, bytes: withUnsafeBytes(of: value) { Array($0) })
    }

    /// Appends a 32-bit attribute in network byte order (nfnetlink's numbers).
    package func put(_ type: Int32, bigEndianU32 value: UInt32) {
        put(type, bytes: withUnsafeBytes(of: value.bigEndian) { Array($0) })
    }

    /// Appends an 8-bit attribute.
    package func put(_ type: Int32, u8 value: UInt8) {
        put(type, bytes: [value])
    }

    /// Appends a NUL-terminated string attribute.
    package func put(_ type: Int32, string: String) {
        put(type, bytes: Array(string.utf8) + [0])
    }

    /// Appends an IPv4 address attribute (network byte order).
    package func put(_ type: Int32, address: IPv4Address) {
        put(type, bytes: address.octets)
    }

    /// Appends a nested attribute `type` (flagged `NLA_F_NESTED`) whose contents `body` writes.
    package func nest(_ type: Int32, _ body: () -> Void) {
        let start = bytes.count
        append(UInt16(0))
        append(UInt16(truncatingIfNeeded: type) | UInt16(NLA_F_NESTED))
        setLength()
        body()
        let nestLength = bytes.count - start
        precondition(nestLength <= Int(UInt16.max), "netlink nest \(type) is too long")
        store(UInt16(nestLength), at: start)
    }

    /// Appends raw bytes (a struct that precedes attributes, like the veth peer's `ifinfomsg`), keeping the
    /// netlink alignment. Only for C structs without padding between fields, whose every byte is a field's.
    package func putRaw<Value>(_ value: Value) {
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
        pad()
    }

    /// Appends `value` in host byte order, without padding.
    private func append<Value: FixedWidthInteger>(_ value: Value) {
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
    }

    /// Pads the message to the netlink alignment (4) and updates `nlmsg_len`.
    private func pad() {
        while bytes.count % 4 != 0 { bytes.append(0) }
        setLength()
    }

    private func setLength() {
        store(UInt32(bytes.count), at: 0)
    }

    private func store<Value: FixedWidthInteger>(_ value: Value, at offset: Int) {
        withUnsafeBytes(of: value) { raw in
            for (index, byte) in raw.enumerated() { bytes[offset + index] = byte }
        }
    }

    private func load<Value: FixedWidthInteger>(_: Value.Type, at offset: Int) -> Value {
        bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: Value.self) }
    }
}
