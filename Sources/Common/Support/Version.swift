/// jobbox's version, printed by every tool's `--version`.
public enum JobboxVersion {
    /// The release number.
    public static let string = "0.1.0"
}
