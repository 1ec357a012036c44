import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Where a tool's one-line messages go: stderr, and for errors also `$_CONDOR_WRAPPER_ERROR_FILE`.
///
/// HTCondor reads that file when the wrapper exits and requeues the job with its text as the reason, so an error
/// line is appended there as well as printed.
package struct Diagnostics: Sendable {
    /// The tool's name, the first word of every line.
    package let tool: String
    /// The wrapper error file, if the batch system asked for one.
    package let wrapperErrorFile: String?

    /// Creates diagnostics for `tool`, reading the error file's path from `environment`.
    package init(tool: String, environment: Environment) {
        self.init(tool: tool, wrapperErrorFile: environment["_CONDOR_WRAPPER_ERROR_FILE"])
    }

    /// Creates diagnostics for `tool`, reading the error file's path from this process's environment: one
    /// getenv, where building an `Environment` costs every tool's start a dictionary of all its variables.
    package init(tool: String) {
        self.init(tool: tool, wrapperErrorFile: getenv("_CONDOR_WRAPPER_ERROR_FILE").map { String(cString: $0) })
    }

    private init(tool: String, wrapperErrorFile path: String?) {
        self.tool = tool
        self.wrapperErrorFile = (path?.isEmpty ?? true) ? nil : path
    }

    /// Prints `tool: message` on stderr and appends it to the wrapper error file.
    package func error(_ message: String) {
        let line = "\(tool): \(JobboxError.oneLine(message))\n"
        writeAll(.standardError, line)
        guard let file = wrapperErrorFile else { return }
        // The file is the batch system's: append, never truncate, so an earlier step's reason survives. It lies in
        // the job's scratch dir, where the job can plant a symlink and provoke an error at will: GuardedPath's
        // rule keeps root from appending anywhere else. A refusal is said on stderr only (no recursion).
        do throws(JobboxError) {
            try GuardedFile.append(line, to: file, for: "cannot append to the wrapper error file")
        } catch {
            writeAll(.standardError, "\(tool): \(error.description)\n")
        }
    }

    /// Prints `tool: warning: message` on stderr.
    package func warning(_ message: String) {
        writeAll(.standardError, "\(tool): warning: \(JobboxError.oneLine(message))\n")
    }

    /// Prints `tool: message` on stderr (progress and verbose output).
    package func note(_ message: String) {
        writeAll(.standardError, "\(tool): \(message)\n")
    }
}

/// Writes all of `text` to `fd`, retrying short writes and EINTR; errors are dropped (stderr may be closed).
package func writeAll(_ fd: FileDescriptor, _ text: String) {
    try? fd.writeText(text)
}

/// Writes `text` to stdout.
package func printOut(_ text: String) {
    writeAll(.standardOutput, text)
}
