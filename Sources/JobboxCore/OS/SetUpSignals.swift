import CLinux

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The forwarded signals (HUP, INT, QUIT, TERM, USR1, USR2) held while a tool sets a job up.
///
/// A batch system stops a job by sending TERM to the process it started, and that may come before the job runs.
/// Left alone, it would kill the tool between two steps of its set-up (a cgroup made but no limit written, a
/// quota set but no directory). Held, it waits: a tool that forwards signals (ns-exec --pid, netacct) hands it
/// to the job once the job runs; a tool that becomes the job (cg-exec) undoes its set-up and then lets it act.
package enum SetUpSignals {
    /// Blocks the forwarded signals, remembering the caller's mask. Call before making anything.
    package static func hold() {
        _ = jb_hold_forwarded_signals()
    }

    /// A forwarded signal that arrived while held (and that the caller had not blocked itself), or nil.
    package static func arrived() -> Int32? {
        let signal = jb_held_signal()
        return signal == 0 ? nil : signal
    }

    /// Restores the caller's mask: a signal that arrived while held now acts (for TERM with its default
    /// action: this process ends by it).
    package static func release() {
        _ = jb_release_forwarded_signals()
    }
}
