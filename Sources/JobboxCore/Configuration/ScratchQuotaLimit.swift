/// What `ns-exec --scratch-quota` and `SCRATCH_QUOTA` take: `SIZE[,INODES]` (a byte size as `ByteSize` reads
/// it, and optionally a number of files and directories), or `none`.
package struct ScratchQuotaLimit: Sendable, Equatable, CustomStringConvertible {
    /// The most bytes the scratch directory may hold.
    package var bytes: UInt64
    /// The most inodes (files, directories, links) it may hold, nil for no inode limit.
    package var inodes: UInt64?

    /// A limit from its parts.
    package init(bytes: UInt64, inodes: UInt64? = nil) {
        self.bytes = bytes
        self.inodes = inodes
    }

    /// The forms accepted, for errors.
    package static let acceptedForms = "SIZE[,INODES] such as 10G or 10G,100000 (SIZE in bytes or with K, M, G or T, more than 0), or none"

    /// Parses `text`: `.some(nil)` for `none`, nil when it is none of the accepted forms.
    package static func parse(_ text: String) -> ScratchQuotaLimit?? {
        let trimmed = text.trimmingASCIISpaces()
        if trimmed.lowercased() == "none" { return .some(nil) }
        let parts = trimmed.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingASCIISpaces() }
        guard (1...2).contains(parts.count), case .bytes(let bytes)? = ByteSize(parsing: parts[0]), bytes > 0 else { return nil }
        var limit = ScratchQuotaLimit(bytes: bytes)
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].allSatisfy(\.isASCIIDigit), let inodes = UInt64(parts[1]), inodes > 0 else { return nil }
            limit.inodes = inodes
        }
        return .some(limit)
    }

    package var description: String {
        inodes.map { "\(bytes),\($0)" } ?? String(bytes)
    }
}

/// `SCRATCH_QUOTA_PROJECT_IDS`: the project ids ns-exec may give scratch directories on XFS and ext4 (`LOW-HIGH`),
/// kept apart from the ids a site gives its own directories.
package struct ProjectIDRange: Sendable, Equatable, CustomStringConvertible {
    /// The first id.
    package var lower: UInt32
    /// The last id.
    package var upper: UInt32

    /// The default: a million ids far above the small ids sites put in /etc/projid.
    package static let defaultRange = ProjectIDRange(lower: 2_000_000_000, upper: 2_000_999_999)

    /// A range from its bounds.
    package init(lower: UInt32, upper: UInt32) {
        self.lower = lower
        self.upper = upper
    }

    /// Parses `LOW-HIGH` (1 ≤ LOW ≤ HIGH < 2^32 - 1); nil otherwise.
    package init?(parsing text: String) {
        let parts = text.trimmingASCIISpaces().split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let lower = UInt32(parts[0].trimmingASCIISpaces()), let upper = UInt32(parts[1].trimmingASCIISpaces()),
            lower >= 1, lower <= upper, upper < UInt32.max
        else { return nil }
        self.init(lower: lower, upper: upper)
    }

    /// Whether `id` is in the range.
    package func contains(_ id: UInt32) -> Bool { (lower...upper).contains(id) }

    package var description: String { "\(lower)-\(upper)" }
}
