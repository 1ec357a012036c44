import CNetfilter
import JobboxCore

/// One netlink request, built with libmnl in a buffer this object owns.
///
/// The bytes are what goes on the socket, so requests can be compared with byte fixtures in tests without a
/// kernel. Attribute writes are checked against the buffer's size; the requests jobbox builds are small and
/// fixed, so running out of room is a programming error.
package final class NetlinkMessage {
    /// The buffer's size: a page, as libmnl suggests for requests.
    package static let capacity = 4096

    private let buffer: UnsafeMutableRawPointer
    /// The message header inside the buffer.
    let header: UnsafeMutablePointer<nlmsghdr>

    /// Starts a message of `type` with `flags` (`NLM_F_REQUEST` is always added) and sequence number `sequence`.
    package convenience init(type: UInt16, flags: Int32, sequence: UInt32) {
        self.init { buffer in
            guard let header = mnl_nlmsg_put_header(buffer) else { fatalError("libmnl: no room for a header") }
            header.pointee.nlmsg_type = type
            header.pointee.nlmsg_flags = UInt16(truncatingIfNeeded: flags | NLM_F_REQUEST)
            header.pointee.nlmsg_seq = sequence
            return header
        }
    }

    /// A message whose header another library writes (libnftnl's `nftnl_nlmsg_build_hdr`) into the zeroed buffer.
    package init(building build: (UnsafeMutableRawPointer) -> UnsafeMutablePointer<nlmsghdr>) {
        buffer = UnsafeMutableRawPointer.allocate(byteCount: Self.capacity, alignment: 16)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: Self.capacity)
        header = build(buffer)
    }

    deinit { buffer.deallocate() }

    /// The message as sent.
    package var bytes: [UInt8] {
        Array(UnsafeRawBufferPointer(start: buffer, count: length))
    }

    /// The message's length in bytes.
    package var length: Int { Int(header.pointee.nlmsg_len) }

    /// The sequence number.
    package var sequence: UInt32 { header.pointee.nlmsg_seq }

    /// Appends the family-specific header (`ifinfomsg`, `ifaddrmsg`, `rtmsg`) and returns it for filling in.
    @discardableResult
    package func putExtraHeader<Header>(_ value: Header) -> UnsafeMutablePointer<Header> {
        let raw = mnl_nlmsg_put_extra_header(header, MemoryLayout<Header>.size)
        guard let raw else { preconditionFailure("netlink extra header does not fit") }
        let typed = raw.bindMemory(to: Header.self, capacity: 1)
        typed.pointee = value
        return typed
    }

    /// Appends attribute `type` with `bytes` as payload.
    package func put(_ type: Int32, bytes: [UInt8]) {
        let fits = bytes.withUnsafeBytes { raw in
            mnl_attr_put_check(header, Self.capacity, UInt16(type), raw.count, raw.baseAddress)
        }
        precondition(fits, "netlink attribute \(type) does not fit")
    }

    /// Appends a 32-bit attribute in host byte order.
    package func put(_ type: Int32, u32 value: UInt32) {
        put(type, bytes: withUnsafeBytes(of: value) { Array($0) })
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

    /// Appends a nested attribute `type` whose contents `body` writes.
    package func nest(_ type: Int32, _ body: () -> Void) {
        guard let start = mnl_attr_nest_start_check(header, Self.capacity, UInt16(type)) else {
            preconditionFailure("netlink nest \(type) does not fit")
        }
        body()
        mnl_attr_nest_end(header, start)
    }

    /// Appends raw bytes inside the current nest (a struct that precedes attributes, like the veth peer's
    /// `ifinfomsg`), keeping the netlink alignment.
    package func putRaw<Value>(_ value: Value) {
        let size = MemoryLayout<Value>.size
        let aligned = (size + 3) & ~3
        precondition(length + aligned <= Self.capacity, "netlink payload does not fit")
        let tail = UnsafeMutableRawPointer(header) + length
        tail.initializeMemory(as: UInt8.self, repeating: 0, count: aligned)
        withUnsafeBytes(of: value) { UnsafeMutableRawBufferPointer(start: tail, count: size).copyMemory(from: $0) }
        header.pointee.nlmsg_len += UInt32(aligned)
    }
}
