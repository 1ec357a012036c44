import ArgumentParser
import Common

@main
struct CgExec: JobboxTool {
    static let configuration = CommandConfiguration(
        commandName: "cg-exec",
        abstract: "jobbox cg-exec (not built yet).",
        version: JobboxVersion.string
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "The job's id (default: from $_CONDOR_JOB_AD or $SLURM_JOB_ID).")
    var job: String?

    @Argument(parsing: .postTerminator, help: "The command to run.")
    var command: [String] = []

    func execute() throws -> Int32 {
        let diagnostics = Diagnostics(tool: "cg-exec")
        _ = try global.loadConfig(diagnostics)
        _ = try JobID.resolve(option: job, environment: .current)
        throw JobboxError.invalid("cg-exec", nil, "not built yet")
    }
}
