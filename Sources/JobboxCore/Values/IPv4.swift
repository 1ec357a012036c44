/// An IPv4 address in host byte order.
package struct IPv4Address: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The address as a 32-bit number, most significant octet first.
    package let value: UInt32

    /// Creates an address from its 32-bit value.
    package init(_ value: UInt32) { self.value = value }

    /// Parses dotted-quad text; nil when malformed.
    package init?(parsing text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit), let octet = UInt32(part), octet <= 255 else { return nil }
            value = value << 8 | octet
        }
        self.value = value
    }

    /// The four octets, most significant first (network order).
    package var octets: [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }

    /// Dotted-quad text.
    package var description: String { octets.map(String.init).joined(separator: ".") }

    package static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value < rhs.value }
}

/// An IPv4 network in CIDR form (`10.0.0.0/8`).
package struct IPv4Network: Sendable, Hashable, CustomStringConvertible {
    /// The network address (host bits zero).
    package let address: IPv4Address
    /// The prefix length, 0 to 32.
    package let prefixLength: Int

    /// Creates a network, clearing host bits.
    package init(address: IPv4Address, prefixLength: Int) {
        self.prefixLength = prefixLength
        self.address = IPv4Address(address.value & IPv4Network.mask(prefixLength))
    }

    /// Parses `a.b.c.d/n` or a bare address (a /32); nil when malformed or when host bits are set.
    package init?(parsing text: some StringProtocol) {
        let parts = text.trimmingASCIISpaces().split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let address = IPv4Address(parsing: parts[0]) else { return nil }
        var length = 32
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].count <= 2, parts[1].allSatisfy(\.isASCIIDigit), let parsed = Int(parts[1]), parsed <= 32 else { return nil }
            length = parsed
        }
        guard address.value & ~IPv4Network.mask(length) == 0 else { return nil }
        self.init(address: address, prefixLength: length)
    }

    /// The netmask as a 32-bit value.
    package var mask: UInt32 { IPv4Network.mask(prefixLength) }

    static func mask(_ length: Int) -> UInt32 { length == 0 ? 0 : UInt32.max << UInt32(32 - length) }

    /// Whether `address` is in this network.
    package func contains(_ address: IPv4Address) -> Bool { address.value & mask == self.address.value }

    /// The number of addresses in the network.
    package var size: UInt64 { UInt64(1) << UInt64(32 - prefixLength) }

    /// CIDR text.
    package var description: String { "\(address)/\(prefixLength)" }

    /// Parses a comma- or space-separated list of networks; nil when any is malformed.
    package static func parseList(_ text: String) -> [IPv4Network]? {
        var result: [IPv4Network] = []
        for item in text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }) {
            guard let network = IPv4Network(parsing: item) else { return nil }
            result.append(network)
        }
        return result
    }
}

extension IPv4Network {
    /// Whether every address of `other` is in this network.
    package func contains(_ other: IPv4Network) -> Bool {
        other.prefixLength >= prefixLength && contains(other.address)
    }

    /// The address `offset` places after the network address (wrapping inside the network).
    package func address(at offset: UInt64) -> IPv4Address {
        IPv4Address(address.value &+ UInt32(truncatingIfNeeded: offset % size))
    }
}
