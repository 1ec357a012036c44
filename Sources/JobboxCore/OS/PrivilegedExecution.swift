import CLinux

/// Whether the process was given privileges its caller lacks: a setuid or setgid executable, or one with file
/// capabilities. The kernel says so in the auxiliary vector (`AT_SECURE`), which also covers capabilities, where
/// the ids alone do not.
///
/// Every jobbox tool refuses to run so, before its arguments are parsed: the tools take paths, commands and a
/// configuration from their caller and act on them with their own privileges, which is safe only when those are
/// the caller's (run by root or by the job's own user). A privileged install would need its own design.
package enum PrivilegedExecution {
    /// Whether the kernel marked this exec as secure, or the real and effective ids differ.
    package static var isActive: Bool {
        jb_is_secure_exec() != 0 || Environment.isPrivilegedExecution
    }

    /// The error to stop with when `isActive`, else nil.
    package static func refusal() -> JobboxError? {
        guard isActive else { return nil }
        return JobboxError.invalid(
            "refusing to run", "setuid, setgid or with file capabilities",
            "jobbox tools are not made for a privileged install; run them as root or as the job's user")
    }
}
