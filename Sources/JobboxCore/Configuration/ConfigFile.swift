/// One `NAME = value` line of a configuration file in HTCondor's syntax, after continuation lines are joined.
package struct ConfigEntry: Sendable, Equatable {
    /// The knob's name, upper-cased (names are case-insensitive).
    package let name: String
    /// The value with `$(NAME)` references expanded and surrounding spaces removed.
    package let value: String
    /// The 1-based line where the entry starts.
    package let line: Int
}

/// A reader of HTCondor's configuration syntax: `NAME = value`, `#` comment lines, a trailing `\` continues a
/// line, names are case-insensitive, and `$(NAME)` expands an earlier knob. Lines end in LF or CRLF.
///
/// Errors name the file and line, never the file's text: the file may be one the user running the tool could not
/// read (`--config /etc/shadow`). Expansion is bounded, so a chain of `$(A)$(A)` lines cannot grow without limit.
package enum ConfigFile {
    /// The longest a value may become once its `$(NAME)` references are expanded.
    package static let maxValueBytes = 64 * 1024
    /// The most all values of one file may hold together once expanded.
    package static let maxExpandedBytes = 1024 * 1024
    /// The largest configuration file read (`GuardedFile.read`'s limit for jobbox.conf and chroot specs).
    package static let maxFileBytes = 1024 * 1024

    /// Parses `text`; `path` names the file in errors, which give `path:line`.
    package static func parse(_ text: String, path: String) throws(JobboxError) -> [ConfigEntry] {
        var entries: [ConfigEntry] = []
        // The knobs so far by name, made at the first `$(NAME)`: a file without one (the shipped jobbox.conf)
        // makes no dictionary, whose first use costs every tool's start a scan of the binary's conformances.
        var defined: [String: String]?
        var pending = ""
        var pendingLine = 0
        var lineNumber = 0
        var expandedBytes = 0
        // "\r\n" is one Character in Swift, so a CRLF file is split on both.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
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
            let entry = try parseLine(pending, path: path, line: pendingLine, defined: definitions(&defined, entries, pending), expandedBytes: &expandedBytes)
            defined?[entry.name] = entry.value
            entries.append(entry)
            pending = ""
        }
        if !pending.isEmpty {
            let entry = try parseLine(pending, path: path, line: pendingLine, defined: definitions(&defined, entries, pending), expandedBytes: &expandedBytes)
            entries.append(entry)
        }
        return entries
    }

    /// The knobs defined before `line`, by name (the last definition wins), once `line` is the first to refer to one.
    private static func definitions(_ defined: inout [String: String]?, _ entries: [ConfigEntry], _ line: String) -> [String: String] {
        if let defined { return defined }
        guard line.contains(utf8: "$(") else { return [:] }
        let made = Dictionary(entries.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
        defined = made
        return made
    }

    private static func parseLine(
        _ text: String, path: String, line: Int, defined: [String: String], expandedBytes: inout Int
    ) throws(JobboxError) -> ConfigEntry {
        // The line itself is never quoted (see the type's comment): its number says where to look.
        guard let equals = text.firstIndex(of: "=") else {
            throw JobboxError.invalid("bad configuration", "\(path):\(line)", "expected NAME = value")
        }
        let name = text[..<equals].trimmingASCIISpaces()
        let validName =
            !name.isEmpty
            && name.unicodeScalars.allSatisfy { ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "." }
        guard validName else {
            throw JobboxError.invalid("bad configuration", "\(path):\(line)", "the name before '=' is not a knob name (letters, digits, _ and .)")
        }
        let upper = name.uppercased()
        let value = try expand(text[text.index(after: equals)...].trimmingASCIISpaces(), defined: defined, path: path, line: line, knob: upper)
        expandedBytes += value.utf8.count
        guard expandedBytes <= maxExpandedBytes else {
            throw JobboxError.invalid("bad configuration", "\(path):\(line)", "\(upper): the values expand to more than \(maxExpandedBytes) bytes in all")
        }
        return ConfigEntry(name: upper, value: value, line: line)
    }

    /// Replaces each `$(NAME)` by the (already expanded) value of an earlier knob: one level, no recursion, so
    /// the only growth to bound is the result's size.
    private static func expand(_ value: String, defined: [String: String], path: String, line: Int, knob: String) throws(JobboxError) -> String {
        guard value.contains(utf8: "$(") else { return value }
        var result = ""
        var rest = Substring(value)
        while let start = rest.range(of: "$(") {
            result += rest[..<start.lowerBound]
            guard let close = rest[start.upperBound...].firstIndex(of: ")") else {
                throw JobboxError.invalid("bad configuration", "\(path):\(line)", "\(knob): unterminated $( reference")
            }
            let reference = rest[start.upperBound..<close].uppercased()
            result += defined[reference] ?? ""
            guard result.utf8.count <= maxValueBytes else {
                throw JobboxError.invalid("bad configuration", "\(path):\(line)", "\(knob): the value expands to more than \(maxValueBytes) bytes")
            }
            rest = rest[rest.index(after: close)...]
        }
        result += rest
        guard result.utf8.count <= maxValueBytes else {
            throw JobboxError.invalid("bad configuration", "\(path):\(line)", "\(knob): the value expands to more than \(maxValueBytes) bytes")
        }
        return result
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
