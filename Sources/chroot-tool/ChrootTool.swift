import ArgumentParser
import JobboxCLI
import JobboxChroot
import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

@main
struct ChrootTool: JobboxTool {
    static let configuration = CommandConfiguration(
        commandName: "chroot-tool",
        abstract: "Build versioned chroots with dnf, yum or debootstrap; switch, roll back and collect them.",
        discussion: """
            Versions live in CHROOT_DIR (jobbox.conf; default /chroot) as NAME-v1, NAME-v2, ...; the link \
            CHROOT_DIR/NAME points at the current one and is what jobs use (NAMED_CHROOT). Options before the \
            subcommand (--config) apply to every subcommand.
            """,
        version: JobboxVersion.string,
        subcommands: [Build.self, Switch.self, Rollback.self, List.self, Show.self, Diff.self, GC.self, Verify.self]
    )

    @OptionGroup var global: GlobalOptions

    /// Parses and runs, after telling `list`'s `--config` flag apart from the global `--config FILE`.
    static func main() {
        exitProcess(runMain(name: "chroot-tool", arguments: disambiguateListConfig(Array(CommandLine.arguments.dropFirst()))))
    }

    /// ArgumentParser lets a parent's option appear anywhere on the line, so the global `--config FILE` would
    /// swallow `list --config`; after the `list` subcommand, `--config` is renamed to the flag's own spelling.
    static func disambiguateListConfig(_ arguments: [String]) -> [String] {
        var result = arguments
        var index = 0
        while index < result.count, result[index].hasPrefix("-"), result[index] != "--" {
            index += result[index] == "--config" ? 2 : 1
        }
        guard index < result.count, result[index] == "list" else { return result }
        for position in (index + 1)..<result.count {
            if result[position] == "--" { break }
            if result[position] == "--config" { result[position] = List.configFlagSpelling }
        }
        return result
    }

    func execute() throws -> Int32 {
        _ = try global.loadConfig(Diagnostics(tool: "chroot-tool"))
        throw JobboxError.invalid("no subcommand", nil, "give one of build, switch, rollback, list, show, diff, gc, verify (see chroot-tool --help)")
    }
}

/// What every subcommand starts from: the configuration (read before anything else, so a bad file is the first
/// thing reported) and the store in CHROOT_DIR.
struct ToolContext {
    let diagnostics = Diagnostics(tool: "chroot-tool")
    let config: JobboxConfig
    let store: ChrootStore

    init(_ tool: ChrootTool, needsRoot command: String? = nil) throws {
        config = try tool.global.loadConfig(diagnostics)
        store = ChrootStore(directory: config.chrootDir)
        if let command, geteuid() != 0 {
            throw JobboxError.invalid("chroot-tool \(command) needs root", nil, "it changes \(config.chrootDir) and runs chroot; run it as root")
        }
    }
}
