/// One `NAME = value` line of a configuration file in HTCondor's syntax, after continuation lines are joined.
public struct ConfigEntry: Sendable, Equatable {
    /// The knob's name, upper-cased (names are case-insensitive).
    public let name: String
    /// The value with `$(NAME)` references expanded and surrounding spaces removed.
    public let value: String
    /// The 1-based line where the entry starts.
    public let line: Int
}

/// A reader of HTCondor's configuration syntax: `NAME = value`, `#` comment lines, a trailing `\` continues a
/// line, names are case-insensitive, and `$(NAME)` expands an earlier knob.
public enum ConfigFile {
    /// Parses `text`; `path` names the file in errors, which give `path:line`.
    public static func parse(_ text: String, path: String) throws(JobboxError) -> [ConfigEntry] {
        var entries: [ConfigEntry] = []
        var defined: [String: String] = [:]
        var pending = ""
        var pendingLine = 0
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = String(rawLine)
            if line.hasSuffix("\r") { line.removeLast() }
            if pending.isEmpty {
                let trimmed = line.trimmingASCIISpaces()
                if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
                pendingLine = lineNumber
            } else if line.trimmingASCIISpaces().hasPrefix("#") {
                // HTCondor skips comment lines inside a continued line.
                continue
            }
            if line.hasSuffix("\\") {
                pending += line.dropLast()
                continue
            }
            pending += line
            let entry = try parseLine(pending, path: path, line: pendingLine, defined: defined)
            defined[entry.name] = entry.value
            entries.append(entry)
            pending = ""
        }
        if !pending.isEmpty {
            let entry = try parseLine(pending, path: path, line: pendingLine, defined: defined)
            entries.append(entry)
        }
        return entries
    }

    private static func parseLine(_ text: String, path: String, line: Int, defined: [String: String]) throws(JobboxError) -> ConfigEntry {
        guard let equals = text.firstIndex(of: "=") else {
            throw JobboxError.invalid("bad configuration", "\(path):\(line)", "expected NAME = value, got '\(text.trimmingASCIISpaces())'")
        }
        let name = text[..<equals].trimmingASCIISpaces()
        let validName = !name.isEmpty && name.unicodeScalars.allSatisfy { ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "." }
        guard validName else {
            throw JobboxError.invalid("bad configuration", "\(path):\(line)", "'\(name)' is not a knob name")
        }
        let upper = name.uppercased()
        let value = try expand(text[text.index(after: equals)...].trimmingASCIISpaces(), defined: defined, path: path, line: line, knob: upper)
        return ConfigEntry(name: upper, value: value, line: line)
    }

    private static func expand(_ value: String, defined: [String: String], path: String, line: Int, knob: String) throws(JobboxError) -> String {
        guard value.contains("$(") else { return value }
        var result = ""
        var rest = Substring(value)
        while let start = rest.range(of: "$(") {
            result += rest[..<start.lowerBound]
            guard let close = rest[start.upperBound...].firstIndex(of: ")") else {
                throw JobboxError.invalid("bad configuration", "\(path):\(line)", "\(knob): unterminated $( reference")
            }
            let reference = rest[start.upperBound..<close].uppercased()
            result += defined[reference] ?? ""
            rest = rest[rest.index(after: close)...]
        }
        return result + rest
    }
}

extension Substring {
    fileprivate func range(of needle: String) -> Range<Substring.Index>? {
        var index = startIndex
        while index < endIndex {
            if self[index...].hasPrefix(needle) { return index..<self.index(index, offsetBy: needle.count) }
            index = self.index(after: index)
        }
        return nil
    }
}
