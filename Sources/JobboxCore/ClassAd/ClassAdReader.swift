/// Reads long-form ClassAds as HTCondor writes them (`.job.ad`, `.machine.ad`, `condor_q -l`).
///
/// As HTCondor's own reader does: blank lines and `#` lines are skipped, each line splits at its first `=`, spaces
/// around the name are trimmed, strings use the old syntax (a backslash is literal unless it precedes a quote).
/// Values other than integers, reals, strings and booleans are kept as `.expression` text. Lines end in LF or
/// CRLF. Parsing is O(n) in the text; bounding the text is the caller's part (`JobAdFile` for job ads).
package enum ClassAdReader {
    /// Whether `character` ends a line: LF, or CRLF (one Character in Swift, so splitting on "\n" alone would
    /// leave a CRLF ad one long line).
    static func isLineEnd(_ character: Character) -> Bool {
        character == "\n" || character == "\r\n"
    }

    /// Parses one ad; lines without `=` are ignored.
    package static func parse(_ text: String) -> ClassAd {
        var ad = ClassAd()
        for line in text.split(omittingEmptySubsequences: true, whereSeparator: isLineEnd) {
            if let (name, value) = parseLine(line) { ad.set(name, value) }
        }
        return ad
    }

    /// Parses several ads separated by blank lines.
    package static func parseAll(_ text: String) -> [ClassAd] {
        var ads: [ClassAd] = []
        var current = ClassAd()
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: isLineEnd) {
            if line.trimmingASCIISpaces().isEmpty {
                if !current.attributes.isEmpty { ads.append(current) }
                current = ClassAd()
            } else if let (name, value) = parseLine(line) {
                current.set(name, value)
            }
        }
        if !current.attributes.isEmpty { ads.append(current) }
        return ads
    }

    static func parseLine(_ line: Substring) -> (String, ClassAdValue)? {
        let trimmed = line.trimmingASCIISpaces()
        guard !trimmed.isEmpty, !trimmed.hasPrefix("#"), let equals = trimmed.firstIndex(of: "=") else { return nil }
        let name = trimmed[..<equals].trimmingASCIISpaces()
        guard !name.isEmpty else { return nil }
        return (name, parseValue(trimmed[trimmed.index(after: equals)...].trimmingASCIISpaces()))
    }

    /// Interprets a right-hand side.
    package static func parseValue(_ text: String) -> ClassAdValue {
        switch text.lowercased() {
        case "true": return .boolean(true)
        case "false": return .boolean(false)
        default: break
        }
        if let string = parseOldString(text) { return .string(string) }
        if isInteger(text), let number = Int64(text) { return .integer(number) }
        if isReal(text), let number = Double(text) { return .real(number) }
        return .expression(text)
    }

    private static func isInteger(_ text: String) -> Bool {
        let digits = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        return !digits.isEmpty && digits.allSatisfy(\.isASCIIDigit)
    }

    private static func isReal(_ text: String) -> Bool {
        let body = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        guard let first = body.first, first.isASCIIDigit || first == "." else { return false }
        return body.allSatisfy { $0.isASCIIDigit || $0 == "." || $0 == "e" || $0 == "E" || $0 == "+" || $0 == "-" }
            && (body.contains(".") || body.contains("e") || body.contains("E"))
    }

    /// An old-syntax string literal: `"..."` where only `\"` is an escape. Nil when `text` is not exactly one.
    /// Read scalar by scalar: a string may begin with a combining mark, which would fuse with the opening quote
    /// into one Character.
    private static func parseOldString(_ text: String) -> String? {
        let scalars = Array(text.unicodeScalars)
        guard scalars.count >= 2, scalars.first == "\"", scalars.last == "\"" else { return nil }
        var result = String.UnicodeScalarView()
        var index = 1
        let end = scalars.count - 1
        while index < end {
            let scalar = scalars[index]
            if scalar == "\\" && index + 1 < end && scalars[index + 1] == "\"" {
                result.append("\"")
                index += 2
                continue
            }
            if scalar == "\"" { return nil }
            result.append(scalar)
            index += 1
        }
        return String(result)
    }
}
