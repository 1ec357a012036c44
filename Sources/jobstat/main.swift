import ArgumentParser
import Common

@main
struct Jobstat: JobboxTool {
    static let configuration = CommandConfiguration(
        commandName: "jobstat",
        abstract: "jobbox jobstat (not built yet).",
        version: JobboxVersion.string
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "The job's id (default: from $_CONDOR_JOB_AD or $SLURM_JOB_ID).")
    var job: String?

    func execute() throws -> Int32 {
        let diagnostics = Diagnostics(tool: "jobstat")
        _ = try global.loadConfig(diagnostics)
        _ = try JobID.resolve(option: job, environment: .current)
        throw JobboxError.invalid("jobstat", nil, "not built yet")
    }
}
