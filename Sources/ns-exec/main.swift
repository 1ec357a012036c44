import ArgumentParser
import Common

@main
struct NsExec: JobboxTool {
    static let configuration = CommandConfiguration(
        commandName: "ns-exec",
        abstract: "jobbox ns-exec (not built yet).",
        version: JobboxVersion.string
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "The job's id (default: from $_CONDOR_JOB_AD or $SLURM_JOB_ID).")
    var job: String?

    @Argument(parsing: .postTerminator, help: "The command to run.")
    var command: [String] = []

    func execute() throws -> Int32 {
        let diagnostics = Diagnostics(tool: "ns-exec")
        _ = try global.loadConfig(diagnostics)
        _ = try JobID.resolve(option: job, environment: .current)
        throw JobboxError.invalid("ns-exec", nil, "not built yet")
    }
}
