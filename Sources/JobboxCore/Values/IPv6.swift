/// An IPv6 address: its 16 octets in network order.
package struct IPv6Address: Sendable, Hashable, CustomStringConvertible {
    /// The octets, most significant first.
    package let octets: [UInt8]

    /// An address from exactly 16 octets; nil for any other count.
    package init?(octets: [UInt8]) {
        guard octets.count == 16 else { return nil }
        self.octets = octets
    }

    /// Parses RFC 4291 text (`2001:db8::1`, `::1`, `::ffff:10.0.0.1`); nil when malformed. A zone (`%eth0`) is
    /// refused: a network to count by has none.
    package init?(parsing text: some StringProtocol) {
        let string = String(text)
        guard !string.isEmpty, string.utf8.count <= 45, !string.contains("%") else { return nil }
        let halves = string.components(separatedByDoubleColon: ())
        guard halves.count <= 2 else { return nil }
        guard let head = Self.groups(halves[0]) else { return nil }
        var words = head
        if halves.count == 2 {
            guard let tail = Self.groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            words += [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard words.count == 8 else { return nil }
        octets = words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }

    /// The 16-bit groups of one side of `::` (an IPv4 tail counts as two); nil when malformed.
    private static func groups(_ text: Substring) -> [UInt16]? {
        if text.isEmpty { return [] }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        var words: [UInt16] = []
        for (index, part) in parts.enumerated() {
            if index == parts.count - 1, part.contains("."), let v4 = IPv4Address(parsing: part) {
                words += [UInt16(v4.value >> 16), UInt16(v4.value & 0xffff)]
                continue
            }
            guard !part.isEmpty, part.count <= 4, let word = UInt16(part, radix: 16) else { return nil }
            words.append(word)
        }
        return words
    }

    /// The canonical text of RFC 5952 (lower case, the longest run of two or more zero groups as `::`).
    package var description: String {
        let words = (0..<8).map { UInt16(octets[2 * $0]) << 8 | UInt16(octets[2 * $0 + 1]) }
        var bestStart = -1
        var bestLength = 1
        var index = 0
        while index < 8 {
            guard words[index] == 0 else {
                index += 1
                continue
            }
            var end = index
            while end < 8 && words[end] == 0 { end += 1 }
            if end - index > bestLength {
                bestStart = index
                bestLength = end - index
            }
            index = end
        }
        let hex = words.map { String($0, radix: 16) }
        if bestStart < 0 { return hex.joined(separator: ":") }
        return hex[..<bestStart].joined(separator: ":") + "::" + hex[(bestStart + bestLength)...].joined(separator: ":")
    }
}

extension String {
    /// The parts between `::` separators.
    fileprivate func components(separatedByDoubleColon: Void) -> [Substring] {
        var parts: [Substring] = []
        var rest = self[...]
        while let range = rest.firstRange(of: "::") {
            parts.append(rest[..<range.lowerBound])
            rest = rest[range.upperBound...]
        }
        parts.append(rest)
        return parts
    }
}

/// An IPv6 network in CIDR form (`2001:db8::/32`).
package struct IPv6Network: Sendable, Hashable, CustomStringConvertible {
    /// The network address (host bits zero).
    package let address: IPv6Address
    /// The prefix length, 0 to 128.
    package let prefixLength: Int

    /// Parses `address/n` or a bare address (a /128); nil when malformed or when host bits are set.
    package init?(parsing text: some StringProtocol) {
        let parts = text.trimmingASCIISpaces().split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let address = IPv6Address(parsing: parts[0]) else { return nil }
        var length = 128
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].count <= 3, parts[1].allSatisfy(\.isASCIIDigit), let parsed = Int(parts[1]), parsed <= 128 else { return nil }
            length = parsed
        }
        for (index, octet) in address.octets.enumerated() {
            let kept = max(0, min(8, length - index * 8))
            let hostBits = kept == 8 ? 0 : UInt8(0xff) >> UInt8(kept)
            if octet & hostBits != 0 { return nil }
        }
        self.address = address
        self.prefixLength = length
    }

    /// CIDR text.
    package var description: String { "\(address)/\(prefixLength)" }
}

/// A network of either family, as `NETWORK_INTERNAL` and `--internal` take them.
package enum IPNetwork: Sendable, Hashable, CustomStringConvertible {
    /// An IPv4 network.
    case v4(IPv4Network)
    /// An IPv6 network.
    case v6(IPv6Network)

    /// Parses one network of either family; nil when it is neither.
    package init?(parsing text: some StringProtocol) {
        if let network = IPv4Network(parsing: text) {
            self = .v4(network)
        } else if let network = IPv6Network(parsing: text) {
            self = .v6(network)
        } else {
            return nil
        }
    }

    /// CIDR text.
    package var description: String {
        switch self {
        case .v4(let network): return network.description
        case .v6(let network): return network.description
        }
    }

    /// Parses a comma- or space-separated list of networks of both families, split by family; nil when any is
    /// malformed.
    package static func parseList(_ text: String) -> (v4: [IPv4Network], v6: [IPv6Network])? {
        var v4: [IPv4Network] = []
        var v6: [IPv6Network] = []
        for item in text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }) {
            switch IPNetwork(parsing: item) {
            case .v4(let network): v4.append(network)
            case .v6(let network): v6.append(network)
            case nil: return nil
            }
        }
        return (v4, v6)
    }
}
