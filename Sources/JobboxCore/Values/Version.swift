import JobboxBuildInfo

/// jobbox's version, printed by every tool's `--version`.
package enum JobboxVersion {
    /// The version of this build (scripts/version.sh: `git describe`, or a release tarball's VERSION file).
    package static let string = jobboxBuildVersion
}
