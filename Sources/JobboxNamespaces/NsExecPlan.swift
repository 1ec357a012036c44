import CLinux
import JobboxChroot
import JobboxCore
import JobboxQuota

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The namespaces a job gets besides the user namespace.
package struct NamespaceSet: OptionSet, Sendable, Hashable {
    package let rawValue: Int32
    package init(rawValue: Int32) { self.rawValue = rawValue }

    /// A mount namespace.
    package static let mount = NamespaceSet(rawValue: JB_CLONE_NEWNS)
    /// A PID namespace.
    package static let pid = NamespaceSet(rawValue: JB_CLONE_NEWPID)
    /// A UTS namespace (hostname).
    package static let uts = NamespaceSet(rawValue: JB_CLONE_NEWUTS)
    /// An IPC namespace.
    package static let ipc = NamespaceSet(rawValue: JB_CLONE_NEWIPC)
    /// A network namespace.
    package static let net = NamespaceSet(rawValue: JB_CLONE_NEWNET)

    /// The kernel's names, as in /proc/PID/ns: `mnt,pid,uts,ipc,net`.
    package var names: [String] {
        [(NamespaceSet.mount, "mnt"), (.pid, "pid"), (.uts, "uts"), (.ipc, "ipc"), (.net, "net")].compactMap { contains($0.0) ? $0.1 : nil }
    }
}

/// Who runs ns-exec.
package struct Caller: Sendable, Equatable {
    /// Real uid.
    package var uid: uid_t
    /// Real gid.
    package var gid: gid_t
    /// Whether the caller is root (real and effective uid 0).
    package var isRoot: Bool
    /// The working directory, when it can be named.
    package var workingDirectory: String?

    /// A caller from its parts.
    package init(uid: uid_t, gid: gid_t, isRoot: Bool, workingDirectory: String?) {
        self.uid = uid
        self.gid = gid
        self.isRoot = isRoot
        self.workingDirectory = workingDirectory
    }

    /// The calling process.
    package static var current: Caller {
        var directory: String?
        if let buffer = getcwd(nil, 0) {
            directory = String(cString: buffer)
            free(buffer)
        }
        return Caller(uid: getuid(), gid: getgid(), isRoot: getuid() == 0 && geteuid() == 0, workingDirectory: directory)
    }
}

/// A uid and a gid.
package struct UserIDs: Sendable, Equatable {
    /// The user id.
    package var uid: uid_t
    /// The group id.
    package var gid: gid_t

    /// A pair of ids.
    package init(uid: uid_t, gid: gid_t) {
        self.uid = uid
        self.gid = gid
    }
}

/// Everything ns-exec will do, decided before the first side effect: the input of the C shim.
package struct NsExecPlan: Sendable {
    /// A user namespace mapping these ids (the caller's own) to themselves, entered first.
    package var userNamespace: UserIDs?
    /// The other namespaces.
    package var namespaces: NamespaceSet = []
    /// With a PID namespace: jobbox's init is PID 1 (else the job is).
    package var runInit = false
    /// The mount operations, in order.
    package var mounts: [MountOperation] = []
    /// The mount layout the operations came from (scratch dir, chroot, binds).
    package var layout = MountLayout()
    /// The `<scratch>/<D>` directories to prepare (D absolute; the scratch dir's own path when a D holds it).
    package var scratchTargets: [String] = []
    /// The quota put on the scratch directory before anything is made in it (`--scratch-quota`, `SCRATCH_QUOTA`).
    package var scratchQuota: ScratchQuotaLimit?
    /// Where project ids for the quota come from and are recorded.
    package var scratchQuotaSettings = ScratchQuotaSettings(JobboxConfig())
    /// Whether the job runs under the scratch-quota fence (`jb_fence.h`): whenever its scratch directory gets a
    /// quota, since the kernel lets the owner of a file move it out of a project or a qgroup.
    package var quotaFence: Bool { scratchQuota != nil && layout.scratch != nil }
    /// Bring `lo` up (new network namespace).
    package var loopbackUp = false
    /// The hostname of the new UTS namespace.
    package var hostname: String?
    /// The identity to switch to, nil to keep the caller's.
    package var identity: JobIdentity?
    /// Who owns the directories made for the job (the job's user).
    package var owner = UserIDs(uid: 0, gid: 0)
    /// Close every descriptor above 2 but `keepFDs` before the job runs: set whenever the job's user or root
    /// changes, so nothing the launcher had open (a file only root may read, a directory of the host's tree)
    /// reaches the job.
    package var closeFDs = false
    /// Descriptors passed on to the job (`--keep-fd`), checked open and above 2.
    package var keepFDs: [Int32] = []
    /// Set no_new_privs.
    package var noNewPrivs = false
    /// Where the job starts; `workdirOptional` when it merely re-enters the caller's directory.
    package var workdir: String?
    /// See `workdir`.
    package var workdirOptional = false
    /// The command.
    package var command: [String] = []
    /// Whether the caller is root (an EPERM from unshare then needs no hint at --userns).
    package var callerIsRoot = true

    /// An empty plan.
    package init() {}

    /// Whether the job runs in a new PID namespace, which needs a child process (ns-exec stays outside).
    package var needsChild: Bool { namespaces.contains(.pid) }
}

/// How the planner looks at the file system (replaceable, so unit tests can describe a host without one).
package struct PathProbe: Sendable {
    /// Whether a directory exists where the job will see `path` (`root`: the chroot, if any).
    package var isDirectory: @Sendable (_ path: MountPath, _ root: String?) -> Bool
    /// Whether a host path exists (any type).
    package var exists: @Sendable (_ path: String) -> Bool
    /// The node's RAM and the memory limit of ns-exec's own memory cgroup (the job's, when cg-exec ran first), in
    /// bytes, each nil when unknown or unlimited.
    package var memory: @Sendable () -> (ram: UInt64?, cgroupLimit: UInt64?)

    /// A probe from its parts (`memory` unknown unless given).
    package init(
        isDirectory: @escaping @Sendable (MountPath, String?) -> Bool, exists: @escaping @Sendable (String) -> Bool,
        memory: @escaping @Sendable () -> (ram: UInt64?, cgroupLimit: UInt64?) = { (nil, nil) }
    ) {
        self.isDirectory = isDirectory
        self.exists = exists
        self.memory = memory
    }

    /// The real file system.
    package static let live = PathProbe(
        isDirectory: { path, root in
            switch path {
            case .host(let host):
                var info = stat()
                return stat(host, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
            case .inRoot(let relative):
                guard let root else { return false }
                let rootFD = open(root, JB_O_PATH | O_DIRECTORY | O_CLOEXEC)
                guard rootFD >= 0 else { return false }
                defer { close(rootFD) }
                let fd = jb_open_in_root(rootFD, relative.isEmpty ? "." : relative, JB_O_PATH | O_DIRECTORY)
                if fd >= 0 { close(fd) }
                return fd >= 0
            case .underScratch:
                return false
            }
        },
        exists: { path in
            var info = stat()
            return stat(path, &info) == 0
        },
        memory: { (JobMemory.physicalMemory(), JobMemory.ownCgroupLimit()) })
}

/// Turns a request into a plan: applies the configuration's defaults, resolves the user and the chroot, and
/// refuses what the caller may not do. Reads only; makes nothing.
///
/// What it trusts, running as root for a job: the command line and the configuration file (the caller's and
/// root's); the user and group databases; a chroot only once every directory on the way is root's alone
/// (`ChrootPolicy`); the job ad's `Owner` only within `JobIdentity.jobAdOwner`'s limits and never for root;
/// the memory cgroup's limit (root's file, and it only ever shrinks a tmpfs). Nothing in the scratch
/// directory, which the job's user can write: no path under it is followed, and the C shim opens it once,
/// before any mount, so what the job sees at the scratch path is the checked directory.
package enum NsExecPlanner {
    /// The plan for `request`.
    package static func plan(
        _ request: NsExecRequest, config: JobboxConfig, caller: Caller, environment: Environment, probe: PathProbe = .live
    ) throws(JobboxError) -> NsExecPlan {
        var plan = NsExecPlan()
        plan.callerIsRoot = caller.isRoot
        guard let program = request.command.first, !program.isEmpty else {
            throw JobboxError.invalid("no command given", nil, "usage: ns-exec [OPTIONS] -- COMMAND [ARG...]")
        }
        plan.command = request.command

        if request.userns { plan.userNamespace = UserIDs(uid: caller.uid, gid: caller.gid) }
        plan.identity = try identity(request, caller: caller, environment: environment)
        plan.owner = plan.identity.map { UserIDs(uid: $0.uid, gid: $0.gid) } ?? UserIDs(uid: caller.uid, gid: caller.gid)

        var namespaces: NamespaceSet = []
        if request.pid { namespaces.insert(.pid) }
        if request.uts || request.hostname != nil { namespaces.insert(.uts) }
        if request.ipc { namespaces.insert(.ipc) }
        if request.net { namespaces.insert(.net) }
        // A fresh /proc, a scratch dir, a chroot or a bind all live in the job's own mount namespace.
        if request.mount || request.pid || request.scratch != nil || request.chroot != nil || !request.binds.isEmpty
            || request.privateDevShm == true
        {
            namespaces.insert(.mount)
        }
        plan.namespaces = namespaces
        plan.loopbackUp = namespaces.contains(.net)
        if request.noInit && !request.pid {
            throw JobboxError.invalid("invalid option", "--no-init", "it only applies with --pid")
        }
        plan.runInit = request.pid && !request.noInit

        if let hostname = request.hostname {
            guard !hostname.isEmpty, hostname.utf8.count <= 64, !hostname.contains("\n") else {
                throw JobboxError.invalid("invalid hostname", "'\(hostname)'", "1 to 64 bytes")
            }
            plan.hostname = hostname
        }

        if namespaces.contains(.mount) {
            var layout = try layout(request, config: config, caller: caller, probe: probe)
            layout.jobOwner = plan.owner
            let isDirectory: (MountPath) -> Bool = { probe.isDirectory($0, layout.chroot) }
            plan.layout = layout
            plan.scratchTargets = try scratchTargets(layout, isDirectory: isDirectory)
            if layout.chroot != nil { try checkChrootMountPoints(layout, probe: probe) }
            plan.mounts = MountPlanner.operations(layout, isDirectory: isDirectory)
        } else if request.mountUnderScratch.map({ !$0.isEmpty }) == true {
            throw JobboxError.invalid("invalid option", "--mount-under-scratch", "it needs --scratch")
        }

        plan.scratchQuota = try scratchQuota(request, config: config, caller: caller)
        plan.scratchQuotaSettings = ScratchQuotaSettings(config)

        plan.closeFDs = plan.identity != nil || plan.layout.chroot != nil
        plan.keepFDs = try keptDescriptors(request.keepFDs)
        plan.noNewPrivs = request.noNewPrivs || !caller.isRoot
        if let workdir = request.workdir {
            plan.workdir = workdir
        } else if plan.layout.chroot != nil {
            plan.workdir = plan.layout.scratch ?? "/"
        } else if namespaces.contains(.mount), let directory = caller.workingDirectory {
            // Enter the same path again, so it shows the job's mounts (a cwd of /tmp means the job's /tmp).
            plan.workdir = directory
            plan.workdirOptional = true
        }
        return plan
    }

    /// The scratch quota: `--scratch-quota`, else `SCRATCH_QUOTA` when root (a default only root can carry out).
    static func scratchQuota(_ request: NsExecRequest, config: JobboxConfig, caller: Caller) throws(JobboxError) -> ScratchQuotaLimit? {
        guard let text = request.scratchQuota else {
            return caller.isRoot && request.scratch != nil ? config.scratchQuota : nil
        }
        guard let parsed = ScratchQuotaLimit.parse(text) else {
            throw JobboxError.invalid("invalid --scratch-quota", "'\(text)'", "not \(ScratchQuotaLimit.acceptedForms)")
        }
        guard let limit = parsed else { return nil }
        guard request.scratch != nil else { throw JobboxError.invalid("invalid option", "--scratch-quota", "it needs --scratch") }
        guard caller.isRoot else {
            throw JobboxError.invalid("invalid option", "--scratch-quota", "only root can set a quota (the kernel's quota calls need CAP_SYS_ADMIN)")
        }
        return limit
    }

    /// The identity to switch to, or nil to run as the caller.
    static func identity(_ request: NsExecRequest, caller: Caller, environment: Environment) throws(JobboxError) -> JobIdentity? {
        var user = request.user
        var jobAd: (name: String, fileOwner: uid_t, path: String)?
        if user == nil && request.group == nil && caller.isRoot && !request.userns {
            jobAd = try JobIdentity.jobAdOwner(environment)
            user = jobAd?.name
        }
        guard user != nil || request.group != nil else { return nil }
        let callerIdentity = JobIdentity(uid: caller.uid, gid: caller.gid, groups: [], userName: nil)
        let wanted = try JobIdentity.resolve(user: user, group: request.group, caller: callerIdentity)
        if let jobAd {
            // The job ad is the submitter's word: root only runs a job as root when its own command line says so.
            if wanted.uid == 0 {
                throw JobboxError.invalid("refusing to run the job as", "root", "the job ad's Owner '\(jobAd.name)' is uid 0; pass --user root to mean it")
            }
            // An ad its user could have rewritten (it owns the file) may name only that user.
            if jobAd.fileOwner != 0 && jobAd.fileOwner != wanted.uid {
                throw JobboxError.invalid(
                    "refusing to run the job as", "user '\(jobAd.name)'",
                    "the job ad \(jobAd.path) belongs to uid \(jobAd.fileOwner), whose ad may name only itself; pass --user")
            }
        }
        if caller.isRoot && !request.userns { return wanted }
        // Without root (or inside a user namespace, which maps only the caller's own ids) no other identity exists.
        guard wanted.uid == caller.uid && wanted.gid == caller.gid else {
            let reason =
                request.userns
                ? "a user namespace of ns-exec maps only the caller's own uid \(caller.uid) and gid \(caller.gid)"
                : "only root can run a job as another user or group"
            throw JobboxError.invalid("cannot switch to", describe(user: user, group: request.group), reason)
        }
        return nil
    }

    private static func describe(user: String?, group: String?) -> String {
        switch (user, group) {
        case (let user?, let group?): return "user '\(user)' and group '\(group)'"
        case (let user?, nil): return "user '\(user)'"
        case (nil, let group?): return "group '\(group)'"
        default: return "the caller"
        }
    }

    static func layout(_ request: NsExecRequest, config: JobboxConfig, caller: Caller, probe: PathProbe) throws(JobboxError) -> MountLayout {
        var layout = MountLayout()
        layout.freshProc = request.pid
        layout.privateDevShm = request.privateDevShm ?? config.mountPrivateDevShm
        if layout.privateDevShm || request.chroot != nil {
            let memory = probe.memory()
            layout.tmpfsSize = config.jobTmpfsSize.tmpfsOption(ram: memory.ram, cgroupLimit: memory.cgroupLimit)
        }
        if let scratch = request.scratch {
            guard let normalized = AbsolutePath.normalize(scratch) else {
                throw JobboxError.invalid("invalid scratch directory", "'\(scratch)'", "not an absolute path without . or ..")
            }
            guard probe.isDirectory(.host(normalized), nil) else {
                throw JobboxError.invalid("invalid scratch directory", normalized, "no such directory")
            }
            layout.scratch = normalized
            var directories: [String] = []
            for directory in request.mountUnderScratch ?? config.mountUnderScratch {
                guard let path = AbsolutePath.normalize(directory), path != "/" else {
                    throw JobboxError.invalid("invalid directory to mount under scratch", "'\(directory)'", "not an absolute path without . or .. (and not /)")
                }
                directories.append(path)
            }
            layout.underScratch = directories
        } else if request.mountUnderScratch.map({ !$0.isEmpty }) == true {
            throw JobboxError.invalid("invalid option", "--mount-under-scratch", "it needs --scratch")
        }
        var binds = request.binds
        if let chroot = request.chroot {
            let root = try ChrootPolicy.resolve(chroot, config: config, callerIsRoot: caller.isRoot)
            layout.chroot = root
            // The chroot's own binds (a spec's BINDS, such as /cvmfs) come first, so a job's --bind can cover them.
            binds = try ChrootManifest.binds(ofChrootAt: root) + binds
        }
        for bind in binds {
            guard probe.exists(bind.source) else {
                throw JobboxError.invalid("invalid bind", bind.description, "\(bind.source) does not exist")
            }
            if layout.chroot == nil && !probe.exists(bind.target) {
                throw JobboxError.invalid("invalid bind", bind.description, "\(bind.target) does not exist")
            }
        }
        layout.binds = binds
        return layout
    }

    /// The `<scratch>/<D>` directories to prepare: one per directory mounted under scratch, and the scratch
    /// dir's own path below the one that holds it (its mount point there). Two that hold it are refused: the
    /// scratch dir could not be shown at its path in both.
    static func scratchTargets(_ layout: MountLayout, isDirectory: (MountPath) -> Bool) throws(JobboxError) -> [String] {
        let targets = MountPlanner.scratchTargets(layout, isDirectory: isDirectory)
        let covering = MountPlanner.coveringTargets(layout, targets)
        guard let scratch = layout.scratch, !covering.isEmpty else { return targets }
        guard covering.count == 1 else {
            throw JobboxError.invalid(
                "invalid scratch directory", scratch, "it lies below more than one directory mounted under scratch (\(covering.joined(separator: ", ")))")
        }
        return targets + [scratch]
    }

    /// Refuses a chroot that lacks a mount point the job needs. The chroot is shared by every job and read-only
    /// to them: ns-exec makes nothing in it, so mount points must come with the version (chroot-tool build
    /// makes `/proc`, `/dev`, `/tmp`, `/var/tmp`, `/run`, the spec's BINDS and CHROOT_MOUNT_POINTS).
    static func checkChrootMountPoints(_ layout: MountLayout, probe: PathProbe) throws(JobboxError) {
        guard let root = layout.chroot else { return }
        let isDirectory: (MountPath) -> Bool = { probe.isDirectory($0, root) }
        let advice = "ns-exec makes nothing in a chroot; add it to CHROOT_MOUNT_POINTS and build a new version"
        for needed in ["/proc", "/dev"] where !isDirectory(.inRoot(AbsolutePath.relative(needed))) {
            throw JobboxError.invalid("missing mount point", AbsolutePath.join(root, AbsolutePath.relative(needed)), "the chroot has no \(needed) directory")
        }
        if case .missing(let parent) = MountPlanner.scratchPlacement(layout, isDirectory: isDirectory) {
            throw JobboxError.invalid(
                "missing mount point", AbsolutePath.join(root, AbsolutePath.relative(parent)),
                "the scratch dir's parent is not a directory in the chroot; \(advice)")
        }
        for bind in layout.binds where probe.isDirectory(.host(bind.source), nil) && !isDirectory(.inRoot(AbsolutePath.relative(bind.target))) {
            throw JobboxError.invalid(
                "missing mount point", AbsolutePath.join(root, AbsolutePath.relative(bind.target)),
                "--bind \(bind.description) needs a directory there; \(advice)")
        }
    }

    /// Checks `--keep-fd` values: open descriptors above 2 (0 to 2 are always passed on).
    static func keptDescriptors(_ texts: [String]) throws(JobboxError) -> [Int32] {
        var kept: [Int32] = []
        for text in texts {
            guard let number = Int32(text), number >= 0 else {
                throw JobboxError.invalid("invalid --keep-fd", "'\(text)'", "not a descriptor number")
            }
            guard number > 2 else {
                throw JobboxError.invalid("invalid --keep-fd", "'\(text)'", "descriptors 0, 1 and 2 are always passed on; give one above 2")
            }
            guard fcntl(number, F_GETFD) >= 0 else {
                throw JobboxError.invalid("invalid --keep-fd", "'\(text)'", "descriptor \(number) is not open")
            }
            if !kept.contains(number) { kept.append(number) }
        }
        return kept
    }
}
