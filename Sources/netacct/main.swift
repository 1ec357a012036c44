import ArgumentParser
import Common

@main
struct Netacct: JobboxTool {
    static let configuration = CommandConfiguration(
        commandName: "netacct",
        abstract: "jobbox netacct (not built yet).",
        version: JobboxVersion.string
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "The job's id (default: from $_CONDOR_JOB_AD or $SLURM_JOB_ID).")
    var job: String?

    @Argument(parsing: .postTerminator, help: "The command to run.")
    var command: [String] = []

    func execute() throws -> Int32 {
        let diagnostics = Diagnostics(tool: "netacct")
        _ = try global.loadConfig(diagnostics)
        _ = try JobID.resolve(option: job, environment: .current)
        throw JobboxError.invalid("netacct", nil, "not built yet")
    }
}
