import ArgumentParser
import Common

@main
struct ChrootTool: JobboxTool {
    static let configuration = CommandConfiguration(
        commandName: "chroot-tool",
        abstract: "jobbox chroot-tool (not built yet).",
        version: JobboxVersion.string
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "The job's id (default: from $_CONDOR_JOB_AD or $SLURM_JOB_ID).")
    var job: String?

    @Argument(help: "The subcommand.")
    var command: [String] = []

    func execute() throws -> Int32 {
        let diagnostics = Diagnostics(tool: "chroot-tool")
        _ = try global.loadConfig(diagnostics)
        _ = try JobID.resolve(option: job, environment: .current)
        throw JobboxError.invalid("chroot-tool", nil, "not built yet")
    }
}
