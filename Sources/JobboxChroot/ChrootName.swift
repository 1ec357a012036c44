import JobboxCore

/// The name of a chroot (`sl5`): what `CHROOT_DIR/NAME` links to and what `NAMED_CHROOT` lists.
///
/// 1 to 64 characters of `[A-Za-z0-9_.-]`, not starting with `.` or `-`, so it is a plain directory entry that
/// never hides among chroot-tool's own dot files and never reads as an option.
package struct ChrootName: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The name as given.
    package let rawValue: String

    /// Validates `text`.
    package init(_ text: String) throws(JobboxError) {
        if let problem = ChrootName.problem(with: text) {
            throw JobboxError.invalid("invalid chroot name", "'\(text)'", problem)
        }
        rawValue = text
    }

    static func problem(with text: String) -> String? {
        rule.problem(with: text)
    }

    private static let rule = NameRule(punctuation: ["_", ".", "-"], forbiddenFirst: [".", "-"])

    /// The directory name of version `number`: `NAME-vN`.
    package func directoryName(_ number: Int) -> String { "\(rawValue)-v\(number)" }

    package var description: String { rawValue }

    package static func < (lhs: ChrootName, rhs: ChrootName) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// One built version of a chroot: `CHROOT_DIR/NAME-vN`.
package struct ChrootVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The chroot's name.
    package let name: ChrootName
    /// N, counted from 1.
    package let number: Int

    /// Creates a version.
    package init(name: ChrootName, number: Int) {
        self.name = name
        self.number = number
    }

    /// `NAME-vN`, its directory's name.
    package var directoryName: String { name.directoryName(number) }

    /// `vN`.
    package var label: String { "v\(number)" }

    package var description: String { directoryName }

    package static func < (lhs: ChrootVersion, rhs: ChrootVersion) -> Bool {
        (lhs.name, lhs.number) < (rhs.name, rhs.number)
    }

    /// Splits a directory name `NAME-vN` (N without leading zeros) into its parts; nil for anything else.
    package static func parseDirectoryName(_ entry: String) -> ChrootVersion? {
        guard let dash = entry.lastIndex(of: "-") else { return nil }
        let suffix = entry[entry.index(after: dash)...]
        guard suffix.hasPrefix("v"), let number = parseNumber(suffix.dropFirst()),
            let name = try? ChrootName(String(entry[..<dash]))
        else { return nil }
        return ChrootVersion(name: name, number: number)
    }

    /// Parses a version of `name` as a user writes it: `v4`, `4` or `NAME-v4`.
    package static func parse(_ text: String, of name: ChrootName) throws(JobboxError) -> ChrootVersion {
        var rest = Substring(text)
        if rest.hasPrefix(name.rawValue + "-") { rest = rest.dropFirst(name.rawValue.count + 1) }
        if rest.hasPrefix("v") { rest = rest.dropFirst() }
        guard let number = parseNumber(rest) else {
            throw JobboxError.invalid("invalid version", "'\(text)'", "expected vN, N or \(name)-vN with N a positive number")
        }
        return ChrootVersion(name: name, number: number)
    }

    static func parseNumber(_ digits: Substring) -> Int? {
        guard !digits.isEmpty, digits.count <= 9, digits.first != "0", digits.allSatisfy(\.isASCIIDigit) else { return nil }
        return Int(digits)
    }
}

/// What a user names when a command takes `NAME` or `NAME-vN`: a chroot's current version, or one version.
package enum ChrootReference: Sendable, Equatable {
    /// `NAME`: the version `CHROOT_DIR/NAME` points at.
    case current(ChrootName)
    /// `NAME-vN`.
    case version(ChrootVersion)

    /// Parses `NAME` or `NAME-vN`. A name that itself ends in `-vN` is read as a version.
    package init(parsing text: String) throws(JobboxError) {
        if let version = ChrootVersion.parseDirectoryName(text) {
            self = .version(version)
        } else {
            self = .current(try ChrootName(text))
        }
    }

    /// The chroot's name.
    package var name: ChrootName {
        switch self {
        case .current(let name): return name
        case .version(let version): return version.name
        }
    }
}
