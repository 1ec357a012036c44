import ArgumentParser
import JobboxCLI
import JobboxCgroups
import JobboxCore
import JobboxNetacctClient

@main
struct CgExecCommand: JobboxTool {
    static let configuration = CommandConfiguration(
        commandName: "cg-exec",
        abstract: "Run a command in its own per-job cgroup with limits; remove or list jobs' cgroups.",
        usage: """
            cg-exec [--job ID] [--parent PATH|self] [--base NAME] [limits] -- COMMAND [ARG...]
            cg-exec --delegate-to USER [--job ID] [limits]
            cg-exec --join [--job ID] -- COMMAND [ARG...]
            cg-exec --remove [--job ID] [--timeout S]
            cg-exec --list
            """,
        discussion: """
            Creates <parent>/<BASE_CGROUP>/job_<ID> in every cgroup hierarchy the job needs (v1: memory, cpu, \
            cpuacct, cpuset, blkio, pids, freezer; v2 and hybrid: also the unified hierarchy, with the process in \
            its leaf job_<ID>/main), writes the limits, moves itself in and execs COMMAND. Exit status: \
            COMMAND's, 125 when cg-exec fails, 126 when COMMAND is not executable, 127 when it is not found. \
            A TERM (or HUP, INT, QUIT, USR1, USR2) while the cgroups are made waits; COMMAND is then not run, \
            the cgroups are removed, and the signal ends cg-exec.

            --delegate-to USER makes the job's cgroups without running anything and lets USER move its own \
            processes in (their cgroup.procs and tasks become USER's, nothing else); --join, run later as USER, \
            moves itself into the job's existing cgroups and execs COMMAND, into the unified (v2) one through \
            netacct's node service (NETACCT_SOCKET), since the kernel does not let a user move there. A Slurm \
            prolog and job script use the pair.

            limit             cgroup v1                         cgroup v2
            --memory          memory.limit_in_bytes             memory.max
            --memory-soft     memory.soft_limit_in_bytes        memory.low
            --memory-high     (an error: v1 has none)           memory.high
            --swap            memory.memsw.limit_in_bytes       memory.swap.max
                                = memory + swap
            --cpus N          cpu.shares = 1024*N               cpu.weight = 100*N
            --cpu-weight W    cpu.shares = W*1024/100           cpu.weight = W
            --cpu-shares S    cpu.shares = S                    cpu.weight = S*100/1024
            --cpu-quota C     cpu.cfs_quota_us, cfs_period_us   cpu.max
            --cpuset, --mems  cpuset.cpus, cpuset.mems          cpuset.cpus, cpuset.mems
                                (else the parent's)
            --pids-max        pids.max                          pids.max
            --io-weight N     blkio.weight = N*5, or            io.weight = default N
                                blkio.bfq.weight = N
            (always)          -                                 memory.oom.group = 1
            --device-policy,  devices.deny a, devices.allow     a BPF_PROG_TYPE_CGROUP_DEVICE
            --device-allow,     c MAJ:MIN rwm                     program on job_<ID>
            --gpus

            Devices (root): --device-policy auto|closed|strict and --device-allow mean what systemd's DevicePolicy= \
            and DeviceAllow= mean: strict allows only what --device-allow names, closed also /dev/null, zero, full, \
            random, urandom, tty, ptmx and /dev/pts/*, auto fences nothing unless something is allowed. --gpus LIST \
            (or AssignedGPUs with --from-job-ad: GPU-<uuid>, CUDA<N>, <N>, renderD<N>) opens the listed GPUs' nodes \
            and their control nodes and fences off every other GPU.
            """,
        version: JobboxVersion.string
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("The job's id (default: ClusterId.ProcId from $_CONDOR_JOB_AD, else $SLURM_JOB_ID).", valueName: "id"))
    var job: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Where BASE_CGROUP lives: /, self (this process's own cgroup) or a cgroup path (default: CGROUP_PARENT).", valueName: "path|self"))
    var parent: String?

    @Option(name: .long, help: ArgumentHelp("The base cgroup below the parent (default: BASE_CGROUP, jobbox).", valueName: "name"))
    var base: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The controllers to make the job's cgroup for (default: all of memory,cpu,cpuacct,cpuset,io,pids,freezer the node has; cpuset on v2 only when asked).",
            valueName: "list"))
    var controllers: String?

    @Option(name: .long, help: ArgumentHelp("Hard memory limit: v1 memory.limit_in_bytes, v2 memory.max.", valueName: "size"))
    var memory: String?

    @Option(name: .long, help: ArgumentHelp("Memory reclaimed last under pressure: v1 memory.soft_limit_in_bytes, v2 memory.low.", valueName: "size"))
    var memorySoft: String?

    @Option(name: .long, help: ArgumentHelp("Throttle above this: v2 memory.high (an error on v1).", valueName: "size"))
    var memoryHigh: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Swap on top of memory: v1 memory.memsw.limit_in_bytes = memory + swap (needs --memory), v2 memory.swap.max.", valueName: "size"))
    var swap: String?

    @Option(name: .long, help: ArgumentHelp("CPU weight of N CPUs: v1 cpu.shares = 1024*N, v2 cpu.weight = 100*N.", valueName: "n"))
    var cpus: String?

    @Option(name: .long, help: ArgumentHelp("CPU weight 1..10000: v2 cpu.weight; v1 cpu.shares = W*1024/100.", valueName: "w"))
    var cpuWeight: String?

    @Option(name: .long, help: ArgumentHelp("CPU shares 2..262144: v1 cpu.shares; v2 cpu.weight = S*100/1024, clamped to 1..10000.", valueName: "s"))
    var cpuShares: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Hard cap of CPUS CPUs' time (or max): v1 cpu.cfs_quota_us per 100 ms cpu.cfs_period_us, v2 cpu.max.", valueName: "cpus"))
    var cpuQuota: String?

    @Option(name: .long, help: ArgumentHelp("CPUs the job may use, such as 0-3,8: cpuset.cpus (v1: the parent's when not given).", valueName: "list"))
    var cpuset: String?

    @Option(name: .long, help: ArgumentHelp("Memory nodes the job may use: cpuset.mems (v1: the parent's when not given).", valueName: "list"))
    var mems: String?

    @Option(name: .long, help: ArgumentHelp("Most tasks (or max): pids.max.", valueName: "n"))
    var pidsMax: String?

    @Option(name: .long, help: ArgumentHelp("Block I/O weight 1..10000: v2 io.weight; v1 blkio.weight = N*5 (10..1000) or blkio.bfq.weight.", valueName: "n"))
    var ioWeight: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Devices besides those allowed: auto (all, unless something is allowed), closed (standard pseudo devices), strict (none; default: DEVICE_POLICY).",
            valueName: "policy"))
    var devicePolicy: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Allow a device node (or char-NAME, block-NAME of /proc/devices) with r, w, m access (default rwm); repeatable.", valueName: "path[:rwm]"))
    var deviceAllow: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp("Allow only these GPUs (GPU-<uuid>, CUDA<N>, <N>, renderD<N>; empty for none) and fence off every other GPU.", valueName: "list"))
    var gpus: String?

    @Flag(
        name: .long,
        help:
            "Take --memory from RequestMemory (MiB), --cpus from RequestCpus and --gpus from AssignedGPUs in $_CONDOR_JOB_AD where not given; where RequestMemory or RequestCpus is missing or an expression, the slot's Memory and Cpus from $_CONDOR_MACHINE_AD."
    )
    var fromJobAd = false

    @Option(
        name: .long,
        help: ArgumentHelp("Make the job's cgroups, run nothing, and let USER (name or uid) join them with --join (root only).", valueName: "user"))
    var delegateTo: String?

    @Flag(name: .long, help: "Move into the job's existing cgroups (made by --delegate-to, or by another cg-exec) and exec COMMAND.")
    var join = false

    @Flag(name: .long, help: "Kill every process of the job and remove its cgroups (exits 0 when it is gone already).")
    var remove = false

    @Option(name: .long, help: ArgumentHelp("With --remove: how long to wait for the processes to die (default 10).", valueName: "seconds"))
    var timeout: String?

    @Flag(name: .long, help: "List the jobs under the base cgroup with their process counts.")
    var list = false

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command to run, after --.", valueName: "command"))
    var command: [String] = []

    func execute() throws -> Int32 {
        let (environment, diagnostics, config) = try GlobalOptions.start(tool: "cg-exec", configPath: global.config)
        let options = limitOptions

        if list {
            guard !remove, !join, delegateTo == nil, job == nil, command.isEmpty, options.isEmpty, !fromJobAd, timeout == nil, controllers == nil else {
                throw JobboxError.invalid("invalid use of", "--list", "it takes only --parent, --base and --config")
            }
            let locator = try CgExec.locator(config: config, parent: parent, base: base)
            printOut(CgExec.list(locator: locator))
            return 0
        }

        let jobID = try JobID.resolve(option: job, environment: environment)
        if remove {
            guard !join, delegateTo == nil, command.isEmpty, options.isEmpty, !fromJobAd, controllers == nil else {
                throw JobboxError.invalid("invalid use of", "--remove", "it takes no limits and no command")
            }
            let wait = try CgExec.timeout(timeout)
            let locator = try CgExec.locator(config: config, parent: parent, base: base)
            try CgExec.remove(jobID, locator: locator, timeout: wait)
            return 0
        }

        if timeout != nil { throw JobboxError.invalid("invalid use of", "--timeout", "it goes with --remove") }
        if join {
            guard delegateTo == nil, options.isEmpty, !fromJobAd, controllers == nil, !command.isEmpty else {
                throw JobboxError.invalid("invalid use of", "--join", "it takes a command after -- and no limits (the cgroups have theirs)")
            }
            let locator = try CgExec.locator(config: config, parent: parent, base: base)
            let targets = try JobCgroupDelegation.joinDirectories(jobID, locator: locator)
            try JobCgroupDelegation.join(targets.v1)
            if let unified = targets.unified {
                try Self.joinUnified(unified, hybrid: !targets.v1.isEmpty, socket: config.netacctSocket, diagnostics: diagnostics)
            }
            throw JobboxError.exec(command[0], CgExec.execute(command))
        }
        if let delegateTo {
            guard command.isEmpty else { throw JobboxError.invalid("invalid use of", "--delegate-to", "it runs no command") }
            let uid = try CgExec.delegateUser(delegateTo)
            let limits = try CgExec.limits(options, fromJobAd: fromJobAd, environment: environment, config: config)
            let selected = try controllers.map { text throws(JobboxError) in try CgroupController.parseList(text, for: "--controllers") }
            let locator = try CgExec.locator(config: config, parent: parent, base: base)
            let plan = try JobCgroupPlan.make(locator: locator, job: jobID, limits: limits, controllers: selected)
            for warning in try JobCgroupDelegation.create(plan, locator: locator, for: uid) { diagnostics.warning(warning) }
            return 0
        }
        try Self.start(
            jobID, options: options, fromJobAd: fromJobAd, controllers: controllers, locator: (parent, base), command: command, config: config,
            environment: environment, diagnostics: diagnostics)
    }

    static let fastOptions = FastCommandLine.Options(
        flags: ["from-job-ad"],
        single: [
            "config", "job", "parent", "base", "controllers", "memory", "memory-soft", "memory-high", "swap", "cpus", "cpu-weight",
            "cpu-shares", "cpu-quota", "cpuset", "mems", "pids-max", "io-weight", "device-policy", "gpus",
        ],
        repeatable: ["device-allow"]
    )

    /// Every line that starts a job (limits, then a command after `--`), as `execute` would read it.
    static func fastPath(_ line: FastCommandLine) -> (() throws -> Int32)? {
        guard line.hasTerminator else { return nil }
        return {
            let (environment, diagnostics, config) = try GlobalOptions.start(tool: "cg-exec", configPath: line.value("config"))
            var options = CgroupLimitOptions()
            options.memory = line.value("memory")
            options.memorySoft = line.value("memory-soft")
            options.memoryHigh = line.value("memory-high")
            options.swap = line.value("swap")
            options.cpus = line.value("cpus")
            options.cpuWeight = line.value("cpu-weight")
            options.cpuShares = line.value("cpu-shares")
            options.cpuQuota = line.value("cpu-quota")
            options.cpuset = line.value("cpuset")
            options.mems = line.value("mems")
            options.pidsMax = line.value("pids-max")
            options.ioWeight = line.value("io-weight")
            options.devicePolicy = line.value("device-policy")
            options.deviceAllow = line.all("device-allow")
            options.gpus = line.value("gpus")
            let jobID = try JobID.resolve(option: line.value("job"), environment: environment)
            try start(
                jobID, options: options, fromJobAd: line.flag("from-job-ad"), controllers: line.value("controllers"),
                locator: (line.value("parent"), line.value("base")), command: line.command, config: config, environment: environment,
                diagnostics: diagnostics)
        }
    }

    /// Makes job `jobID`'s cgroups with its limits, moves into them and execs `command`; `locator` is --parent
    /// and --base.
    private static func start(
        _ jobID: JobID, options: CgroupLimitOptions, fromJobAd: Bool, controllers: String?, locator names: (parent: String?, base: String?),
        command: [String], config: JobboxConfig, environment: Environment, diagnostics: Diagnostics
    ) throws -> Never {
        let limits = try CgExec.limits(options, fromJobAd: fromJobAd, environment: environment, config: config)
        let selected = try controllers.map { text throws(JobboxError) in try CgroupController.parseList(text, for: "--controllers") }
        guard !command.isEmpty else {
            throw JobboxError.invalid("no command", nil, "give one after -- (cg-exec [options] -- COMMAND [ARG...])")
        }
        let locator = try CgExec.locator(config: config, parent: names.parent, base: names.base)
        let plan = try JobCgroupPlan.make(locator: locator, job: jobID, limits: limits, controllers: selected, deviceBackend: config.deviceBackend)
        try CgExec.run(plan, locator: locator, command: command, diagnostics: diagnostics)
    }

    private var limitOptions: CgroupLimitOptions {
        var options = CgroupLimitOptions()
        options.memory = memory
        options.memorySoft = memorySoft
        options.memoryHigh = memoryHigh
        options.swap = swap
        options.cpus = cpus
        options.cpuWeight = cpuWeight
        options.cpuShares = cpuShares
        options.cpuQuota = cpuQuota
        options.cpuset = cpuset
        options.mems = mems
        options.pidsMax = pidsMax
        options.ioWeight = ioWeight
        options.devicePolicy = devicePolicy
        options.deviceAllow = deviceAllow
        options.gpus = gpus
        return options
    }
}

extension CgExecCommand {
    /// `--join` in the unified hierarchy: a direct write where the kernel allows it (root, or a cgroup of the
    /// caller's own subtree), else netacct's node service is asked to move this process (`join`), since the kernel
    /// keeps a user from moving into a cgroup root made (`JobCgroupDelegation`). On a hybrid node that cgroup only
    /// tells the service whose traffic it is: a node without the service says nothing (it does not count by
    /// cgroup, and jobstat is silent about network there too), a refusal is a warning, and either way the job runs
    /// with its v1 limits, without network figures. On a cgroup v2 node the unified cgroup holds the limits, so
    /// failing to join it is an error.
    static func joinUnified(_ unified: (directory: String, cgroup: String), hybrid: Bool, socket: String, diagnostics: Diagnostics) throws(JobboxError) {
        let direct: JobboxError
        do {
            try JobCgroupDelegation.join([unified.directory])
            return
        } catch {
            direct = error
        }
        do throws(NetacctNodeClient.Failure) {
            _ = try NetacctNodeClient(socketPath: socket).ask(.join(unified.cgroup))
        } catch {
            let reason: String
            switch error {
            case .unavailable(let text):
                guard !hybrid else { return }
                reason = text + "; is netacct --node running?"
            case .refused(let text), .broken(let text): reason = text
            }
            guard hybrid else {
                throw JobboxError.invalid("cannot join", unified.directory, "\(direct.reason); the node service did not move this process either (\(reason))")
            }
            diagnostics.warning("\(direct.description); the node service did not move it either (\(reason)): the job runs without network figures")
        }
    }
}
