/// One `--bind SRC[:DST]`: SRC of the host bound at DST (inside the chroot when there is one).
package struct BindRequest: Sendable, Equatable, CustomStringConvertible {
    /// The host path.
    package var source: String
    /// Where it appears in the job's view.
    package var target: String

    /// A bind of `source` at `target`.
    package init(source: String, target: String) {
        self.source = source
        self.target = target
    }

    /// Parses `SRC` or `SRC:DST`; both must be absolute paths without `.` or `..` components.
    package init(parsing text: String) throws(JobboxError) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let source = AbsolutePath.normalize(parts[0]),
            let target = AbsolutePath.normalize(parts.count == 2 ? parts[1] : parts[0])
        else {
            throw JobboxError.invalid("invalid bind", "'\(text)'", "expected SRC or SRC:DST with absolute paths without . or ..")
        }
        self.init(source: source, target: target)
    }

    package var description: String { source == target ? source : "\(source):\(target)" }
}
