/// A size in bytes as a tool option or knob takes it: bytes, a K/M/G/T suffix (powers of 1024) or `max`.
package enum ByteSize: Sendable, Equatable, CustomStringConvertible {
    /// A number of bytes.
    case bytes(UInt64)
    /// No limit.
    case unlimited

    /// The accepted forms, for error messages.
    package static let acceptedForms = "a number of bytes, a number with K, M, G or T (powers of 1024), or max"

    /// Parses `text`; nil when it is not one of the accepted forms or overflows 64 bits.
    ///
    /// On the UTF-8 bytes, ASCII only: Character-wise parsing (lowercased text, a dictionary of suffixes) had the
    /// Swift runtime build generic types on cg-exec's job line at every start.
    package init?(parsing text: String) {
        let lowered: (UInt8) -> UInt8 = { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 + 32 : $0 }
        var lower = Array(text.trimmingASCIISpaces().utf8).map(lowered)
        if lower == Array("max".utf8) || lower == Array("unlimited".utf8) {
            self = .unlimited
            return
        }
        // The power of 1024 a (lowercased) K, M, G or T stands for.
        let power: (UInt8) -> UInt64? = {
            switch $0 {
            case UInt8(ascii: "k"): return 1
            case UInt8(ascii: "m"): return 2
            case UInt8(ascii: "g"): return 3
            case UInt8(ascii: "t"): return 4
            default: return nil
            }
        }
        // Accept K, KB, KiB (and the same for M, G, T) in any case, and B after a plain number.
        let count = lower.count
        if count > 2, lower[count - 2] == UInt8(ascii: "i"), lower[count - 1] == UInt8(ascii: "b"), power(lower[count - 3]) != nil {
            lower.removeLast(2)
        } else if count > 1, lower[count - 1] == UInt8(ascii: "b") {
            lower.removeLast()
        }
        var multiplier: UInt64 = 1
        if let last = lower.last, let exponent = power(last) {
            multiplier = 1 << (10 * exponent)
            lower.removeLast()
        }
        guard let value = lower.withUnsafeBytes({ ASCIIDecimal.value($0) }) else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { return nil }
        self = .bytes(product)
    }

    /// Parses `text` or throws an error naming `what` and the accepted forms.
    package static func parse(_ text: String, for what: String) throws(JobboxError) -> ByteSize {
        guard let size = ByteSize(parsing: text) else {
            throw JobboxError.invalid("invalid size for", what, "'\(text)' is not \(acceptedForms)")
        }
        return size
    }

    /// The value as a cgroup file takes it: decimal bytes, or `max` (v2) / `-1` (v1) for no limit.
    package func cgroupValue(v2: Bool) -> String {
        switch self {
        case .bytes(let n): return String(n)
        case .unlimited: return v2 ? "max" : "-1"
        }
    }

    /// The number of bytes, nil when unlimited.
    package var byteCount: UInt64? {
        if case .bytes(let n) = self { return n }
        return nil
    }

    /// The size in its shortest exact form (`64M`, `1536K`, `max`).
    package var description: String {
        guard case .bytes(let n) = self else { return "max" }
        for (suffix, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] where n != 0 && n % (1 << UInt64(shift)) == 0 {
            return "\(n >> UInt64(shift))\(suffix)"
        }
        return String(n)
    }
}

extension Character {
    package var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs, CR and LF. On the UTF-8 bytes: those four are ASCII,
    /// and no byte of a multi-byte character is ASCII, so the cut never splits a character (and a start-up that
    /// trims a cgroup file pays for no Character machinery).
    package func trimmingASCIISpaces() -> String {
        let bytes = Array(utf8)
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }

    /// The pieces of the text between the ASCII `separator`, found on the UTF-8 bytes (`split(separator:)` on a
    /// String walks grapheme clusters: for the kernel's small files read at every tool's start that was a
    /// tenth of cg-exec's run). With `maxSplits`, the rest of the text after that many cuts is the last piece.
    package func splitASCII(_ separator: Unicode.Scalar, maxSplits: Int = Int.max, omittingEmpty: Bool = true) -> [Substring] {
        let text = Substring(self)
        let byte = UInt8(ascii: separator)
        let bytes = text.utf8
        var pieces: [Substring] = []
        var start = bytes.startIndex
        var index = start
        while index != bytes.endIndex, pieces.count < maxSplits {
            if bytes[index] == byte {
                if !omittingEmpty || start != index { pieces.append(text[start..<index]) }
                start = bytes.index(after: index)
            }
            bytes.formIndex(after: &index)
        }
        if !omittingEmpty || start != bytes.endIndex { pieces.append(text[start..<bytes.endIndex]) }
        return pieces
    }

    /// Whether `needle` occurs in the text as a run of Unicode scalars, found on the UTF-8 bytes. Unlike the
    /// standard `contains(_:)` a match may begin or end inside a grapheme cluster, which does not matter for the
    /// ASCII markers it looks for; and the standard one builds a Boyer-Moore table (a `Dictionary<Character,
    /// Int>`) at every call, whose first use scans every protocol conformance of the binary: a sixth of ns-exec's
    /// start-up in callgrind, for a handful of short paths.
    package func contains(utf8 needle: String) -> Bool {
        let pattern = Array(needle.utf8)
        guard let head = pattern.first else { return true }
        let text = Array(utf8)
        guard text.count >= pattern.count else { return false }
        for start in 0...(text.count - pattern.count) where text[start] == head {
            if text[start..<(start + pattern.count)].elementsEqual(pattern) { return true }
        }
        return false
    }
}
