import ArgumentParser
import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A jobbox tool's command: parse, then `execute`, which returns the status to exit with.
///
/// The shared `main` maps every failure to the conventions of docs/ARCHITECTURE.md ("Errors and exit statuses"): a `JobboxError` becomes one stderr line (also
/// appended to `$_CONDOR_WRAPPER_ERROR_FILE`) and its status (125/126/127); bad arguments become one line and
/// 125, not ArgumentParser's usage dump and 64; `--help` and `--version` print and exit 0.
package protocol JobboxTool: ParsableCommand {
    /// Does the tool's work and returns the exit status (the job's own status where the tool runs a job).
    mutating func execute() throws -> Int32

    /// The tool's work for a command line `FastCommandLine` could read, or nil to leave the line to
    /// ArgumentParser.
    ///
    /// ArgumentParser builds its model of a command by reflection at every start, which costs a per-job tool
    /// several times what the tool's own work does (bench/README.md); the lines a batch system runs for every
    /// job skip it. Whatever this returns must do exactly what `execute` does for the same line.
    static func fastPath(_ line: FastCommandLine) -> (() throws -> Int32)?

    /// The options `fastPath` takes: flags, options with one value, options that may be repeated.
    static var fastOptions: FastCommandLine.Options { get }
}

extension JobboxTool {
    /// No fast path: ArgumentParser reads every line.
    package static func fastPath(_ line: FastCommandLine) -> (() throws -> Int32)? { nil }

    /// No options read without ArgumentParser.
    package static var fastOptions: FastCommandLine.Options { FastCommandLine.Options() }

    /// Unused: `main` calls `execute` so the tool can return a status.
    package mutating func run() throws {
        let status = try execute()
        if status != 0 { throw ExitCode(status) }
    }

    /// Parses the command line, runs the tool, and exits with its status.
    package static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        // The hidden mode a root tool starts, as the job's user, to chirp for it (see ChirpAsJob).
        if arguments.first == ChirpAsJob.childFlag { exitProcess(ChirpAsJob.childMain(arguments: Array(arguments.dropFirst()))) }
        exitProcess(runMain(name: configuration.commandName ?? String(describing: Self.self), arguments: arguments))
    }

    /// The body of `main`, returning the exit status instead of exiting. `name` is taken only when a line needs
    /// it: `--version` builds nothing of ArgumentParser's.
    package static func runMain(name nameOfTool: @autoclosure () -> String, arguments: [String]) -> Int32 {
        if let refusal = PrivilegedExecution.refusal() {
            let name = nameOfTool()
            // stderr only: the wrapper error file's path comes from the caller's environment, and appending to
            // it with privileges the caller lacks is the very thing refused here.
            writeAll(.standardError, "\(name): \(refusal.description)\n")
            return refusal.exitStatus
        }
        // Answered before anything else is set up: a `--version` through ArgumentParser costs five times the
        // process start it follows. Every tool's version is jobbox's, so the tool's `configuration` (for
        // chroot-tool, with the metadata of all its subcommands) is not built for it.
        if arguments == ["--version"], !JobboxVersion.string.isEmpty {
            printOut(JobboxVersion.string + "\n")
            return 0
        }
        let name = nameOfTool()
        let diagnostics = Diagnostics(tool: name)
        do {
            if let line = FastCommandLine(arguments, options: fastOptions), let work = fastPath(line) {
                return try work()
            }
            var command = try parseAsRoot(arguments)
            if var tool = command as? any JobboxTool {
                return try tool.execute()
            }
            try command.run()
            return 0
        } catch let error as JobboxError {
            diagnostics.error(error.description)
            return error.exitStatus
        } catch let error as ExitCode {
            return error.rawValue
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                printOut(fullMessage(for: error) + "\n")
                return 0
            }
            let message = Self.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            diagnostics.error("\(message) (see \(name) --help)")
            return ExitStatus.toolFailure
        }
    }
}

/// Ends the process with `status` (the C library's `exit`, which `ParsableCommand.exit` shadows in a command).
package func exitProcess(_ status: Int32) -> Never {
    exit(status)
}
