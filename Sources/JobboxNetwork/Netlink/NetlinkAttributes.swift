import CNetfilter

/// One message of the kernel's answer, copied out of the receive buffer.
///
/// Only messages from the kernel itself reach here (`NetlinkSocket` drops datagrams another process sent), so
/// the contents are the kernel's; they are still read with every length checked, and a malformed attribute ends
/// the reading instead of being trusted.
package struct NetlinkReply {
    /// `nlmsg_type`.
    package let type: UInt16
    /// The bytes after `nlmsghdr`, up to `nlmsg_len`.
    package let payload: ArraySlice<UInt8>

    package init(type: UInt16, payload: ArraySlice<UInt8>) {
        self.type = type
        self.payload = payload
    }

    /// The attributes after a family header of `fixedHeader` bytes (`ifinfomsg`, `nfgenmsg`); none when the
    /// message is shorter than that header.
    package func attributes(after fixedHeader: Int) -> NetlinkAttributes {
        let start = payload.startIndex + ((fixedHeader + 3) & ~3)
        guard start <= payload.endIndex else { return NetlinkAttributes(payload[payload.endIndex...]) }
        return NetlinkAttributes(payload[start...])
    }
}

/// The attributes of a netlink message or nest, by type (the first of each type; `NLA_F_NESTED` and
/// `NLA_F_NET_BYTEORDER` masked off).
package struct NetlinkAttributes {
    private var payloads: [UInt16: ArraySlice<UInt8>] = [:]

    /// Reads the attributes in `bytes`; reading stops at the first one whose length does not fit.
    package init(_ bytes: ArraySlice<UInt8>) {
        var offset = bytes.startIndex
        let header = MemoryLayout<nlattr>.size
        while bytes.endIndex - offset >= header {
            let length = Int(UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8)
            let type = (UInt16(bytes[offset + 2]) | UInt16(bytes[offset + 3]) << 8) & ~UInt16(NLA_F_NESTED | NLA_F_NET_BYTEORDER)
            guard length >= header, length <= bytes.endIndex - offset else { break }
            if payloads[type] == nil { payloads[type] = bytes[(offset + header)..<(offset + length)] }
            offset += (length + 3) & ~3
        }
    }

    /// The payload of attribute `type`.
    package subscript(_ type: Int32) -> ArraySlice<UInt8>? {
        payloads[UInt16(truncatingIfNeeded: type)]
    }

    /// The first byte of attribute `type`.
    package func u8(_ type: Int32) -> UInt8? {
        self[type]?.first
    }

    /// A 32-bit attribute in network byte order (nfnetlink's numbers); nil unless it is exactly 4 bytes.
    package func bigEndianU32(_ type: Int32) -> UInt32? {
        guard let payload = self[type], payload.count == 4 else { return nil }
        return payload.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// A 64-bit attribute in network byte order; nil unless it is exactly 8 bytes.
    package func bigEndianU64(_ type: Int32) -> UInt64? {
        guard let payload = self[type], payload.count == 8 else { return nil }
        return payload.reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// A string attribute, up to its NUL (or its end when it has none).
    package func string(_ type: Int32) -> String? {
        guard let payload = self[type] else { return nil }
        return String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// The attributes nested in attribute `type`.
    package func nested(_ type: Int32) -> NetlinkAttributes? {
        self[type].map(NetlinkAttributes.init)
    }
}
