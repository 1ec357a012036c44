import ArgumentParser
import JobboxCLI
import JobboxCgroups
import JobboxCore
import JobboxQuota
import JobboxStats

extension JobStatFormat: ExpressibleByArgument {}

@main
struct Jobstat: JobboxTool {
    static let configuration = CommandConfiguration(
        commandName: "jobstat",
        abstract: "Print a job cgroup's memory, CPU, block I/O, pids and OOM figures as ClassAd lines, JSON or Prometheus text.",
        discussion: """
            Without --job, --cgroup, --pid, --self or --all the job comes from $_CONDOR_JOB_AD (ClusterId.ProcId) \
            or $SLURM_JOB_ID. Attributes use HTCondor's names and units: MemoryUsage (MiB), ResidentSetSize, \
            MemoryPeakKb, MemoryCacheKb, MemorySwapKb (KiB), OOMKills, RemoteUserCpu, RemoteSysCpu, \
            CpuThrottledSeconds (seconds), BlockReadBytes, BlockWriteBytes, BlockReads, BlockWrites, NumPids, \
            and on cgroup v2 the PSI averages and totals. When the node service (netacct --node) answers on \
            NETACCT_SOCKET, the cgroup's NetworkOutgoingInternal, NetworkOutgoingExternal, \
            NetworkIncomingInternal, NetworkIncomingExternal, NetworkOutgoing and NetworkIncoming (bytes) are \
            added; without it nothing is said about network. A figure the kernel does not provide is left out. \
            See jobstat(1).
            """,
        version: JobboxVersion.string
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("The job's id (default: from $_CONDOR_JOB_AD or $SLURM_JOB_ID).", valueName: "id"))
    var job: String?

    @Option(name: .long, help: ArgumentHelp("Read the cgroup at PATH (as /proc/PID/cgroup writes it, or a directory under a cgroup mount).", valueName: "path"))
    var cgroup: String?

    @Option(name: .long, help: ArgumentHelp("Read the cgroup of process PID.", valueName: "pid"))
    var pid: Int32?

    @Flag(name: .customLong("self"), help: "Read this process's own cgroup (what an unprivileged job wrapper can read).")
    var current = false

    @Flag(name: .long, help: "Print every job under the base cgroup (job_* below --parent/BASE_CGROUP).")
    var all = false

    @Option(
        name: .long,
        help: ArgumentHelp("Where BASE_CGROUP lives for --job and --all: /, self, or a cgroup path (default: CGROUP_PARENT).", valueName: "path|self"))
    var parent: String?

    @Option(name: .long, help: ArgumentHelp("Output format.", valueName: "format"))
    var format: JobStatFormat = .classad

    @Option(name: .long, help: ArgumentHelp("Print a sample every SECONDS (decimals allowed) until the cgroup disappears.", valueName: "seconds"))
    var watch: String?

    @Option(name: .long, help: ArgumentHelp("With --watch: stop after N samples.", valueName: "n"))
    var count: Int?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Add the figures of the quota ns-exec --scratch-quota put on DIR, from the quota's own accounting (no walk): DiskUsage (KiB), ScratchDirFileCount, ScratchQuotaKb, ScratchQuotaFiles, ScratchQuotaReached (root).",
            valueName: "dir"))
    var scratch: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Leave out the figures of every hierarchy in which the cgroup read is also process PID's (a job wrapper's parent: the batch system's daemon).",
            valueName: "pid"))
    var excludeSharedWith: Int32?

    @Flag(name: .long, help: "Add every key of the memory, CPU and block I/O stat files (CgroupMemory_<key>, CgroupCpu_<key>, ...).")
    var raw = false

    @OptionGroup var chirp: ChirpOptions

    func execute() throws -> Int32 {
        let diagnostics = Diagnostics(tool: "jobstat")
        let config = try global.loadConfig(diagnostics)
        var excluded: CgroupMembership?
        if let excludeSharedWith {
            guard excludeSharedWith > 0 else { throw JobboxError.invalid("invalid --exclude-shared-with", "'\(excludeSharedWith)'", "it is not a process id") }
            excluded = try CgroupMembership.read(pid: String(excludeSharedWith))
        }
        var request = try makeRequest()
        request.scratchSettings = ScratchQuotaSettings(config)
        return try Self.run(request, config: config, parent: parent, excluding: excluded)
    }

    static let fastOptions = FastCommandLine.Options(flags: ["raw"], single: ["config", "job", "parent"])

    /// One job's figures as a ClassAd (`--job`, or the job of the environment), as `execute` would read it.
    static func fastPath(_ line: FastCommandLine) -> (() throws -> Int32)? {
        guard !line.hasTerminator else { return nil }
        return {
            // One reading of the environment for every step.
            let (environment, _, config) = try GlobalOptions.start(tool: "jobstat", configPath: line.value("config"))
            let job = try JobID.resolve(option: line.value("job"), environment: environment)
            let request = JobStatRequest(selection: .job(job), format: .classad, raw: line.flag("raw"), interval: nil, count: nil, chirp: nil)
            return try run(request, config: config, parent: line.value("parent"))
        }
    }

    /// Reads and prints what `request` asks for, below `parent` (default: the configuration's).
    private static func run(_ request: JobStatRequest, config: JobboxConfig, parent: String?, excluding: CgroupMembership? = nil) throws -> Int32 {
        let locator = try JobCgroupLocator.current(config: config, parentOverride: parent)
        var request = request
        // The network figures come from the node service when one answers (netacct --node); without one, none.
        request.networkSocket = config.netacctSocket
        var planner = JobStatPlanner(locator: locator)
        planner.excluded = excluding
        return try JobStatRunner(request: request, planner: planner).run()
    }

    /// Checks the options before anything is read.
    func makeRequest() throws(JobboxError) -> JobStatRequest {
        let given = [("--job", job != nil), ("--cgroup", cgroup != nil), ("--pid", pid != nil), ("--self", current), ("--all", all)].filter(\.1).map(\.0)
        if given.count > 1 {
            throw JobboxError.invalid("invalid options", given.joined(separator: " "), "give at most one of --job, --cgroup, --pid, --self, --all")
        }
        let selection: JobStatSelection
        if let cgroup {
            selection = .cgroup(cgroup)
        } else if let pid {
            guard pid > 0 else { throw JobboxError.invalid("invalid --pid", "'\(pid)'", "it is not a process id") }
            selection = .pid(pid)
        } else if current {
            selection = .current
        } else if all {
            selection = .all
        } else {
            selection = .job(try JobID.resolve(option: job, environment: .current))
        }
        var interval: Double?
        if let watch {
            guard let seconds = Double(watch), seconds.isFinite, seconds > 0, seconds <= 86_400 else {
                throw JobboxError.invalid("invalid --watch", "'\(watch)'", "it is not a number of seconds between 0 and 86400")
            }
            interval = seconds
        }
        if let count {
            guard watch != nil else { throw JobboxError.invalid("invalid --count", "'\(count)'", "it needs --watch") }
            guard count > 0 else { throw JobboxError.invalid("invalid --count", "'\(count)'", "it is not a positive number") }
        }
        let update = try chirp.update()
        if (update != nil || chirp.automatic) && all {
            throw JobboxError.invalid("invalid options", "--chirp --all", "chirp publishes one job's figures into that job's ad")
        }
        var request = JobStatRequest(selection: selection, format: format, raw: raw, interval: interval, count: count, chirp: update)
        if let scratch {
            guard !all else { throw JobboxError.invalid("invalid options", "--scratch --all", "--scratch names one job's directory") }
            guard let path = AbsolutePath.normalize(scratch) else {
                throw JobboxError.invalid("invalid --scratch", "'\(scratch)'", "not an absolute path without . or ..")
            }
            request.scratch = path
        }
        return request
    }
}
