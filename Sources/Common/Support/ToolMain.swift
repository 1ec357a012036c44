import ArgumentParser
import CLinux

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A jobbox tool's command: parse, then `execute`, which returns the status to exit with.
///
/// The shared `main` maps every failure to DESIGN.md's conventions: a `JobboxError` becomes one stderr line (also
/// appended to `$_CONDOR_WRAPPER_ERROR_FILE`) and its status (125/126/127); bad arguments become one line and
/// 125, not ArgumentParser's usage dump and 64; `--help` and `--version` print and exit 0.
public protocol JobboxTool: ParsableCommand {
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
    public static func fastPath(_ line: FastCommandLine) -> (() throws -> Int32)? { nil }

    /// No options read without ArgumentParser.
    public static var fastOptions: FastCommandLine.Options { FastCommandLine.Options() }

    /// Unused: `main` calls `execute` so the tool can return a status.
    public mutating func run() throws {
        let status = try execute()
        if status != 0 { throw ExitCode(status) }
    }

    /// Parses the command line, runs the tool, and exits with its status.
    public static func main() {
        let name = configuration.commandName ?? String(describing: Self.self)
        let arguments = Array(CommandLine.arguments.dropFirst())
        // The hidden mode a root tool starts, as the job's user, to chirp for it (see ChirpAsJob).
        if arguments.first == ChirpAsJob.childFlag { exitProcess(ChirpAsJob.childMain(arguments: Array(arguments.dropFirst()))) }
        exitProcess(runMain(name: name, arguments: arguments))
    }

    /// The body of `main`, returning the exit status instead of exiting.
    public static func runMain(name: String, arguments: [String]) -> Int32 {
        if let refusal = PrivilegedExecution.refusal() {
            // stderr only: the wrapper error file's path comes from the caller's environment, and appending to
            // it with privileges the caller lacks is the very thing refused here.
            writeAll(.standardError, "\(name): \(refusal.description)\n")
            return refusal.exitStatus
        }
        // Answered before anything else is set up: a `--version` through ArgumentParser costs five times the
        // process start it follows.
        if arguments == ["--version"], !configuration.version.isEmpty {
            printOut(configuration.version + "\n")
            return 0
        }
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

/// Whether the process was given privileges its caller lacks: a setuid or setgid executable, or one with file
/// capabilities. The kernel says so in the auxiliary vector (`AT_SECURE`), which also covers capabilities, where
/// the ids alone do not.
///
/// Every jobbox tool refuses to run so, before its arguments are parsed: the tools take paths, commands and a
/// configuration from their caller and act on them with their own privileges, which is safe only when those are
/// the caller's (run by root or by the job's own user). A privileged install would need its own design.
public enum PrivilegedExecution {
    /// Whether the kernel marked this exec as secure, or the real and effective ids differ.
    public static var isActive: Bool {
        jb_is_secure_exec() != 0 || Environment.isPrivilegedExecution
    }

    /// The error to stop with when `isActive`, else nil.
    public static func refusal() -> JobboxError? {
        guard isActive else { return nil }
        return JobboxError.invalid(
            "refusing to run", "setuid, setgid or with file capabilities",
            "jobbox tools are not made for a privileged install; run them as root or as the job's user")
    }
}

/// A command line of long options and a command after `--`, read without ArgumentParser for a tool's fast path.
///
/// It reads only lines whose meaning to ArgumentParser is plain, and is nil for anything else, which then goes
/// to ArgumentParser (with its errors and help): a name it was not given, `--name=value`, a short option, a
/// word before `--`, a value that is missing or starts with `-`, and any option but a repeatable one given twice.
public struct FastCommandLine: Sendable {
    /// The option names (without `--`) a tool's fast path takes.
    public struct Options: Sendable {
        /// Options without a value.
        public var flags: Set<String> = []
        /// Options with one value.
        public var single: Set<String> = []
        /// Options with a value that may be given more than once.
        public var repeatable: Set<String> = []

        /// Names the options; every name once.
        public init(flags: Set<String> = [], single: Set<String> = [], repeatable: Set<String> = []) {
            self.flags = flags
            self.single = single
            self.repeatable = repeatable
        }
    }

    private var flagsGiven: Set<String> = []
    private var values: [String: [String]] = [:]
    /// Whether the line had `--`.
    public private(set) var hasTerminator = false
    /// The words after `--`.
    public private(set) var command: [String] = []

    /// Reads `arguments`, or is nil when they hold anything but `options` as described above.
    public init?(_ arguments: [String], options: Options) {
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let word = arguments[index]
            index += 1
            if word == "--" {
                hasTerminator = true
                command = Array(arguments[index...])
                return
            }
            guard word.hasPrefix("--") else { return nil }
            let name = String(word.dropFirst(2))
            if options.flags.contains(name) {
                guard flagsGiven.insert(name).inserted else { return nil }
                continue
            }
            let repeatable = options.repeatable.contains(name)
            guard repeatable || options.single.contains(name), index < arguments.endIndex else { return nil }
            let value = arguments[index]
            index += 1
            guard !value.hasPrefix("-"), repeatable || values[name] == nil else { return nil }
            values[name, default: []].append(value)
        }
    }

    /// Whether flag `name` was given.
    public func flag(_ name: String) -> Bool { flagsGiven.contains(name) }

    /// The value of option `name`, if given.
    public func value(_ name: String) -> String? { values[name]?.last }

    /// Every value of repeatable option `name`, in order.
    public func all(_ name: String) -> [String] { values[name] ?? [] }
}

/// Options every tool takes.
public struct GlobalOptions: ParsableArguments {
    /// `--config FILE`.
    @Option(name: .long, help: ArgumentHelp("Read FILE instead of $JOBBOX_CONFIG or /etc/jobbox/jobbox.conf.", valueName: "file"))
    public var config: String?

    /// Creates the defaults.
    public init() {}

    /// `--config FILE` when `config` is not nil (a fast path's options).
    public init(config: String?) {
        self.config = config
    }

    /// Loads the configuration these options name and prints its warnings through `diagnostics`.
    public func loadConfig(_ diagnostics: Diagnostics, environment: Environment = .current) throws(JobboxError) -> JobboxConfig {
        let loaded = try JobboxConfig.load(explicitPath: config, environment: environment)
        for warning in loaded.warnings { diagnostics.warning(warning) }
        return loaded
    }
}

/// Ends the process with `status` (the C library's `exit`, which `ParsableCommand.exit` shadows in a command).
public func exitProcess(_ status: Int32) -> Never {
    exit(status)
}
