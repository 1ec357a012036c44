import ArgumentParser
import JobboxCLI
import JobboxCore
import JobboxNamespaces

@main
struct NsExecCommand: JobboxTool {
    static let configuration = CommandConfiguration(
        commandName: "ns-exec",
        abstract: "Run a job in its own PID, mount, UTS, IPC, network and user namespaces, with jobbox's init as PID 1.",
        discussion: """
            Everything is prepared before the first namespace call; the namespace work and the exec happen in C. \
            The job's status is ns-exec's (128+N for signal N); ns-exec's own failures give 125, a command that \
            cannot be executed 126, one not found 127. With --pid, ns-exec stays outside the namespace, forwards \
            HUP INT QUIT TERM USR1 USR2 to the init (which forwards them to the job; one that comes during the \
            set-up waits for the job), and its death (even by \
            SIGKILL) kills the whole namespace. Without --pid, ns-exec becomes the job (same pid).

            ns-exec --attach JOB -- COMMAND runs COMMAND inside a running job that ns-exec started with --pid and a \
            job id (--job, $_CONDOR_JOB_AD or $SLURM_JOB_ID): in its cgroups, its namespaces (setns through a pidfd \
            of its init), its root and working directory, as its user. As root for any job ns-exec ran as root; as \
            a user for that user's own jobs (started with --userns). COMMAND is killed when the job ends; its \
            status is ns-exec's; an unknown or ended job is 125.
            """,
        version: JobboxVersion.string
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("The job's id: checked, so one --job can go to every tool of a chain (ns-exec needs none).", valueName: "id"))
    var job: String?

    @Flag(name: .long, help: "New PID namespace; jobbox's init is PID 1 and /proc is fresh (implies --mount).")
    var pid = false

    @Flag(name: .long, help: "New mount namespace, a recursive slave of the host's.")
    var mount = false

    @Flag(name: .long, help: "New UTS namespace (hostname).")
    var uts = false

    @Flag(name: .long, help: "New IPC namespace.")
    var ipc = false

    @Flag(name: .long, help: "New network namespace with only lo, up.")
    var net = false

    @Flag(name: .long, help: "New user namespace mapping your own uid and gid, so the rest works without root.")
    var userns = false

    @Option(name: .long, help: ArgumentHelp("Hostname in the new UTS namespace (implies --uts).", valueName: "name"))
    var hostname: String?

    @Option(name: .long, help: ArgumentHelp("The job's scratch directory (implies --mount).", valueName: "dir"))
    var scratch: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Limit the scratch dir (and so the job's /tmp, /var/tmp) to SIZE bytes and optionally INODES files with the file system's quota: a btrfs subvolume's qgroup, or an XFS/ext4 project quota (root; default: SCRATCH_QUOTA; 'none' for none; 'request-disk' for the job ad's RequestDisk, else the slot's Disk). Past it the job gets EDQUOT or ENOSPC; it may not change project ids or file flags, nor create btrfs subvolumes (EPERM), which would escape the limit.",
            valueName: "size[,inodes]"))
    var scratchQuota: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Remove the limit --scratch-quota left on DIR and exit (root; after jobstat --scratch has read the figures); no command.", valueName: "dir"))
    var removeScratchQuota: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Directories replaced by <scratch>/<D>, comma-separated; '' for none (default: MOUNT_UNDER_SCRATCH, /tmp,/var/tmp). A D holding the scratch dir gets it bound back at its path.",
            valueName: "list"))
    var mountUnderScratch: String?

    @Flag(
        name: .long, inversion: .prefixedNo,
        help: "A fresh tmpfs on /dev/shm of JOB_TMPFS_SIZE, at most the memory cgroup's limit (default: MOUNT_PRIVATE_DEV_SHM, true).")
    var privateDevShm: Bool?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Run in a chroot, read-only, with per-job /tmp, /var/tmp, /run: a name from NAMED_CHROOT, or a path (root only).", valueName: "name|path"))
    var chroot: String?

    @Flag(
        name: .long,
        help: "Run in the chroot the job ad's RequestedChroot names ($_CONDOR_JOB_AD; a name from NAMED_CHROOT only), if it names one.")
    var requestedChroot = false

    @Option(name: .long, help: ArgumentHelp("Bind host path SRC at DST (inside the chroot, if any); repeatable.", valueName: "src[:dst]"))
    var bind: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp("Run as USER (name or uid; root only; default: the job ad's Owner when root, which may not be root).", valueName: "user"))
    var user: String?

    @Option(name: .long, help: ArgumentHelp("Run with GROUP as primary group (name or gid; root only).", valueName: "group"))
    var group: String?

    @Option(name: .long, help: ArgumentHelp("Start the job in DIR (default: the scratch dir in a chroot, else the current directory).", valueName: "dir"))
    var workdir: String?

    @Flag(name: .long, help: "Set no_new_privs: setuid and file capabilities grant nothing (always on when not root).")
    var noNewPrivs = false

    @Flag(name: .long, help: "With --pid, make the job itself PID 1 (it then ignores signals it has no handler for).")
    var noInit = false

    @Option(
        name: .customLong("keep-fd"),
        help: ArgumentHelp(
            "Pass open descriptor N (above 2) on to the job; repeatable. Others above 2 are closed when the user or root changes.", valueName: "n"))
    var keepFD: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Run COMMAND inside the running job JOB (started by ns-exec with --pid): its cgroups, namespaces, root, directory and user.", valueName: "job"))
    var attach: String?

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command to run, after --.", valueName: "command"))
    var command: [String] = []

    func execute() throws -> Int32 {
        if let attach {
            let alone =
                job == nil && !pid && !mount && !uts && !ipc && !net && !userns && hostname == nil && scratch == nil && mountUnderScratch == nil
                && privateDevShm == nil && chroot == nil && bind.isEmpty && user == nil && group == nil && workdir == nil && !noNewPrivs && !noInit
                && keepFD.isEmpty && scratchQuota == nil && removeScratchQuota == nil
            guard alone else { throw JobboxError.invalid("invalid use of", "--attach", "it takes only --config and a command: the job's own settings apply") }
            return try Self.attach(attach, command: command, configPath: global.config)
        }
        if let removeScratchQuota {
            guard command.isEmpty else {
                throw JobboxError.invalid("invalid options", "--remove-scratch-quota", "it runs no command: drop what follows --")
            }
            let config = try global.loadConfig(Diagnostics(tool: "ns-exec"), environment: .current)
            return try NsExec.removeScratchQuota(removeScratchQuota, config: config)
        }
        var request = NsExecRequest()
        request.pid = pid
        request.mount = mount
        request.uts = uts
        request.ipc = ipc
        request.net = net
        request.userns = userns
        request.hostname = hostname
        request.scratch = scratch
        request.scratchQuota = scratchQuota
        request.mountUnderScratch = mountUnderScratch.map(Self.splitList)
        request.privateDevShm = privateDevShm
        request.chroot = chroot
        request.user = user
        request.group = group
        request.workdir = workdir
        request.noNewPrivs = noNewPrivs
        request.noInit = noInit
        request.keepFDs = keepFD
        request.command = command
        return try Self.run(request, binds: bind, configPath: global.config, job: job, requestedChroot: requestedChroot)
    }

    static let fastOptions = FastCommandLine.Options(
        flags: ["pid", "mount", "uts", "ipc", "net", "userns", "private-dev-shm", "no-private-dev-shm", "no-new-privs", "no-init"],
        single: ["config", "job", "hostname", "scratch", "scratch-quota", "mount-under-scratch", "chroot", "user", "group", "workdir", "attach"],
        repeatable: ["bind", "keep-fd"]
    )

    /// Every line that runs a command (after `--`), as `execute` would read it.
    static func fastPath(_ line: FastCommandLine) -> (() throws -> Int32)? {
        // Both spellings of --private-dev-shm at once is ArgumentParser's to judge.
        guard line.hasTerminator, !(line.flag("private-dev-shm") && line.flag("no-private-dev-shm")) else { return nil }
        if let attach = line.value("attach") {
            // Anything beside --config is ArgumentParser's to refuse.
            guard line.value("job") == nil, line.value("hostname") == nil, line.value("scratch") == nil, line.value("scratch-quota") == nil,
                line.value("chroot") == nil,
                line.value("user") == nil, line.value("group") == nil, line.value("workdir") == nil, line.value("mount-under-scratch") == nil,
                line.all("bind").isEmpty, line.all("keep-fd").isEmpty,
                ["pid", "mount", "uts", "ipc", "net", "userns", "private-dev-shm", "no-private-dev-shm", "no-new-privs", "no-init"].allSatisfy({
                    !line.flag($0)
                })
            else { return nil }
            return { try Self.attach(attach, command: line.command, configPath: line.value("config")) }
        }
        return {
            var request = NsExecRequest()
            request.pid = line.flag("pid")
            request.mount = line.flag("mount")
            request.uts = line.flag("uts")
            request.ipc = line.flag("ipc")
            request.net = line.flag("net")
            request.userns = line.flag("userns")
            request.hostname = line.value("hostname")
            request.scratch = line.value("scratch")
            request.scratchQuota = line.value("scratch-quota")
            request.mountUnderScratch = line.value("mount-under-scratch").map(splitList)
            request.privateDevShm = line.flag("private-dev-shm") ? true : line.flag("no-private-dev-shm") ? false : nil
            request.chroot = line.value("chroot")
            request.user = line.value("user")
            request.group = line.value("group")
            request.workdir = line.value("workdir")
            request.noNewPrivs = line.flag("no-new-privs")
            request.noInit = line.flag("no-init")
            request.keepFDs = line.all("keep-fd")
            request.command = line.command
            return try run(request, binds: line.all("bind"), configPath: line.value("config"), job: line.value("job"))
        }
    }

    /// `--attach JOB -- COMMAND`.
    private static func attach(_ job: String, command: [String], configPath: String?) throws -> Int32 {
        let (environment, _, config) = try GlobalOptions.start(tool: "ns-exec", configPath: configPath)
        return try NsExecAttach.run(try JobID(job), command: command, config: config, environment: environment)
    }

    /// `--mount-under-scratch`'s list: comma- or space-separated.
    private static func splitList(_ list: String) -> [String] {
        list.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
    }

    /// Runs `request` with `binds` (as `--bind` gives them) and the configuration `configPath` (`--config`)
    /// names; `job` is only checked. In this order, so the first error of a line is the same whichever path read it.
    private static func run(_ request: NsExecRequest, binds: [String], configPath: String?, job: String?, requestedChroot: Bool = false) throws -> Int32 {
        let (environment, diagnostics, config) = try GlobalOptions.start(tool: "ns-exec", configPath: configPath)
        if let job { _ = try JobID(job) }
        var request = request
        if request.scratchQuota == ScratchQuotaRequest.fromJobAd { request.scratchQuota = try ScratchQuotaRequest.limit(environment: environment) }
        if requestedChroot {
            if request.chroot != nil { throw JobboxError.invalid("invalid options", "--chroot --requested-chroot", "give one of them") }
            request.chroot = try ChrootPolicy.requestedByJobAd(environment)
        }
        request.binds = try binds.map { text throws(JobboxError) in try BindRequest(parsing: text) }
        return try NsExec.run(request, config: config, environment: environment, diagnostics: diagnostics, job: job)
    }
}
