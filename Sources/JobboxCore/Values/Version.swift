/// jobbox's version, printed by every tool's `--version`.
package enum JobboxVersion {
    /// The release number.
    package static let string = "0.1.0"
}
