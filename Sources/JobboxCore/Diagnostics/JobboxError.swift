import CLinux
import SystemPackage

/// The one error every jobbox tool reports: what failed, on which object, and why.
///
/// It renders as the single stderr line of docs/ARCHITECTURE.md (`cg-exec: cannot create cgroup /sys/...: Permission denied`)
/// and decides the tool's exit status: 125 when the tool failed, 126 when the command is not executable, 127 when
/// it was not found.
package struct JobboxError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Which of the conventional exit statuses the failure maps to.
    package enum Kind: Sendable, Equatable {
        /// The tool itself failed (status 125).
        case toolFailure
        /// The command exists but could not be executed (status 126).
        case notExecutable
        /// The command was not found (status 127).
        case notFound
    }

    /// What was being done, phrased to precede the object: "cannot create cgroup".
    package var operation: String
    /// The object it was done to (a path, a knob, a job id), if any.
    package var object: String?
    /// Why it failed: the errno text or a sentence.
    package var reason: String
    /// The errno behind the failure, when a system call failed.
    package var errno: Errno?
    /// The exit status class.
    package var kind: Kind

    /// Creates an error from its parts.
    package init(_ operation: String, _ object: String? = nil, reason: String, errno: Errno? = nil, kind: Kind = .toolFailure) {
        self.operation = operation
        self.object = object
        self.reason = reason
        self.errno = errno
        self.kind = kind
    }

    /// An error for a failed system call; the reason is the errno's text.
    package static func system(_ operation: String, _ object: String? = nil, _ errno: Errno) -> JobboxError {
        JobboxError(operation, object, reason: errno.description, errno: errno)
    }

    /// An error for a failed system call, reading `errno` now: call it right after the failing call.
    package static func lastErrno(_ operation: String, _ object: String? = nil) -> JobboxError {
        system(operation, object, Errno.last)
    }

    /// The error for an exec that failed with `errno`: 127 when the file was not found, else 126.
    package static func exec(_ command: String, _ errno: Errno) -> JobboxError {
        let missing = errno == .noSuchFileOrDirectory || errno == .notDirectory
        return JobboxError(
            missing ? "command not found:" : "cannot execute", command, reason: errno.description, errno: errno,
            kind: missing ? .notFound : .notExecutable)
    }

    /// An error for input the tool refuses (bad option, bad configuration value).
    package static func invalid(_ what: String, _ object: String? = nil, _ reason: String) -> JobboxError {
        JobboxError(what, object, reason: reason)
    }

    /// The exit status this error maps to.
    package var exitStatus: Int32 {
        switch kind {
        case .toolFailure: return ExitStatus.toolFailure
        case .notExecutable: return ExitStatus.notExecutable
        case .notFound: return ExitStatus.notFound
        }
    }

    /// `operation object: reason`, one line (newlines in parts are flattened so the line stays one line).
    package var description: String {
        let head = object.map { "\(operation) \($0)" } ?? operation
        return Self.oneLine("\(head): \(reason)")
    }

    static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}

/// The exit statuses of docs/ARCHITECTURE.md ("Errors and exit statuses"), shared with `env`, `chroot` and `timeout`.
package enum ExitStatus {
    /// The tool failed.
    package static let toolFailure: Int32 = 125
    /// The command could not be executed.
    package static let notExecutable: Int32 = 126
    /// The command was not found.
    package static let notFound: Int32 = 127

    /// The status a shell reports for a raw wait status: the exit code, or 128+N for death by signal N
    /// (`toolFailure` for anything else). The C shim's conversion, which ns-exec's child needs after fork.
    package static func fromWaitStatus(_ status: Int32) -> Int32 {
        jb_shell_status(status)
    }
}

extension Errno {
    /// The calling thread's `errno` now: read it right after the failing call.
    package static var last: Errno { Errno(rawValue: systemErrno) }
}

#if canImport(Glibc)
@preconcurrency import Glibc
private var systemErrno: Int32 { Glibc.errno }
#elseif canImport(Musl)
@preconcurrency import Musl
private var systemErrno: Int32 { Musl.errno }
#endif
