import CLinux

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The namespaces a job gets besides the user namespace.
public struct NamespaceSet: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// A mount namespace.
    public static let mount = NamespaceSet(rawValue: JB_CLONE_NEWNS)
    /// A PID namespace.
    public static let pid = NamespaceSet(rawValue: JB_CLONE_NEWPID)
    /// A UTS namespace (hostname).
    public static let uts = NamespaceSet(rawValue: JB_CLONE_NEWUTS)
    /// An IPC namespace.
    public static let ipc = NamespaceSet(rawValue: JB_CLONE_NEWIPC)
    /// A network namespace.
    public static let net = NamespaceSet(rawValue: JB_CLONE_NEWNET)

    /// The kernel's names, as in /proc/PID/ns: `mnt,pid,uts,ipc,net`.
    public var names: [String] {
        [(NamespaceSet.mount, "mnt"), (.pid, "pid"), (.uts, "uts"), (.ipc, "ipc"), (.net, "net")].compactMap { contains($0.0) ? $0.1 : nil }
    }
}

/// Who runs ns-exec.
public struct Caller: Sendable, Equatable {
    /// Real uid.
    public var uid: uid_t
    /// Real gid.
    public var gid: gid_t
    /// Whether the caller is root (real and effective uid 0).
    public var isRoot: Bool
    /// The working directory, when it can be named.
    public var workingDirectory: String?

    /// A caller from its parts.
    public init(uid: uid_t, gid: gid_t, isRoot: Bool, workingDirectory: String?) {
        self.uid = uid
        self.gid = gid
        self.isRoot = isRoot
        self.workingDirectory = workingDirectory
    }

    /// The calling process.
    public static var current: Caller {
        var directory: String?
        if let buffer = getcwd(nil, 0) {
            directory = String(cString: buffer)
            free(buffer)
        }
        return Caller(uid: getuid(), gid: getgid(), isRoot: getuid() == 0 && geteuid() == 0, workingDirectory: directory)
    }
}

/// A uid and a gid.
public struct UserIDs: Sendable, Equatable {
    /// The user id.
    public var uid: uid_t
    /// The group id.
    public var gid: gid_t

    /// A pair of ids.
    public init(uid: uid_t, gid: gid_t) {
        self.uid = uid
        self.gid = gid
    }
}

/// Everything ns-exec will do, decided before the first side effect: the input of the C shim.
public struct NsExecPlan: Sendable {
    /// A user namespace mapping these ids (the caller's own) to themselves, entered first.
    public var userNamespace: UserIDs?
    /// The other namespaces.
    public var namespaces: NamespaceSet = []
    /// With a PID namespace: jobbox's init is PID 1 (else the job is).
    public var runInit = false
    /// The mount operations, in order.
    public var mounts: [MountOperation] = []
    /// The mount layout the operations came from (scratch dir, chroot, binds).
    public var layout = MountLayout()
    /// The `<scratch>/<D>` directories to prepare (D absolute).
    public var scratchTargets: [String] = []
    /// Mount points to create inside the chroot when missing (relative to it).
    public var chrootMountPoints: [String] = []
    /// Bring `lo` up (new network namespace).
    public var loopbackUp = false
    /// The hostname of the new UTS namespace.
    public var hostname: String?
    /// The identity to switch to, nil to keep the caller's.
    public var identity: JobIdentity?
    /// Who owns the directories made for the job (the job's user).
    public var owner = UserIDs(uid: 0, gid: 0)
    /// Set no_new_privs.
    public var noNewPrivs = false
    /// Where the job starts; `workdirOptional` when it merely re-enters the caller's directory.
    public var workdir: String?
    /// See `workdir`.
    public var workdirOptional = false
    /// The command.
    public var command: [String] = []
    /// Whether the caller is root (an EPERM from unshare then needs no hint at --userns).
    public var callerIsRoot = true

    /// An empty plan.
    public init() {}

    /// Whether the job runs in a new PID namespace, which needs a child process (ns-exec stays outside).
    public var needsChild: Bool { namespaces.contains(.pid) }
}

/// How the planner looks at the file system (replaceable, so unit tests can describe a host without one).
public struct PathProbe: Sendable {
    /// Whether a directory exists where the job will see `path` (`root`: the chroot, if any).
    public var isDirectory: @Sendable (_ path: MountPath, _ root: String?) -> Bool
    /// Whether a host path exists (any type).
    public var exists: @Sendable (_ path: String) -> Bool

    /// A probe from its parts.
    public init(isDirectory: @escaping @Sendable (MountPath, String?) -> Bool, exists: @escaping @Sendable (String) -> Bool) {
        self.isDirectory = isDirectory
        self.exists = exists
    }

    /// The real file system.
    public static let live = PathProbe(
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
        })
}

/// Turns a request into a plan: applies the configuration's defaults, resolves the user and the chroot, and
/// refuses what the caller may not do. Reads only; makes nothing.
public enum NsExecPlanner {
    /// The plan for `request`.
    public static func plan(
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
            let layout = try layout(request, config: config, caller: caller, probe: probe)
            let isDirectory: (MountPath) -> Bool = { probe.isDirectory($0, layout.chroot) }
            plan.layout = layout
            plan.scratchTargets = MountPlanner.scratchTargets(layout, isDirectory: isDirectory)
            plan.mounts = MountPlanner.operations(layout, isDirectory: isDirectory)
            if layout.chroot != nil { plan.chrootMountPoints = chrootMountPoints(layout, probe: probe) }
        } else if request.mountUnderScratch.map({ !$0.isEmpty }) == true {
            throw JobboxError.invalid("invalid option", "--mount-under-scratch", "it needs --scratch")
        }

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

    /// The identity to switch to, or nil to run as the caller.
    static func identity(_ request: NsExecRequest, caller: Caller, environment: Environment) throws(JobboxError) -> JobIdentity? {
        var user = request.user
        if user == nil && request.group == nil && caller.isRoot && !request.userns {
            user = try JobIdentity.ownerFromJobAd(environment)
        }
        guard user != nil || request.group != nil else { return nil }
        let callerIdentity = JobIdentity(uid: caller.uid, gid: caller.gid, groups: [], userName: nil)
        let wanted = try JobIdentity.resolve(user: user, group: request.group, caller: callerIdentity)
        if caller.isRoot && !request.userns { return wanted }
        // Without root (or inside a user namespace, which maps only the caller's own ids) no other identity exists.
        guard wanted.uid == caller.uid && wanted.gid == caller.gid else {
            let reason = request.userns
                ? "a user namespace of ns-exec maps only the caller's own uid \(caller.uid) and gid \(caller.gid)"
                : "only root can run a job as another user or group"
            throw JobboxError.invalid("cannot switch to", describe(user: user, group: request.group), reason)
        }
        return nil
    }

    private static func describe(user: String?, group: String?) -> String {
        switch (user, group) {
        case let (user?, group?): return "user '\(user)' and group '\(group)'"
        case let (user?, nil): return "user '\(user)'"
        case let (nil, group?): return "group '\(group)'"
        default: return "the caller"
        }
    }

    static func layout(_ request: NsExecRequest, config: JobboxConfig, caller: Caller, probe: PathProbe) throws(JobboxError) -> MountLayout {
        var layout = MountLayout()
        layout.freshProc = request.pid
        layout.privateDevShm = request.privateDevShm ?? config.mountPrivateDevShm
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

    /// Directories that must exist inside the chroot for the binds: the scratch directory at its own path and the
    /// targets of directory binds. Missing ones are created by the preparation.
    static func chrootMountPoints(_ layout: MountLayout, probe: PathProbe) -> [String] {
        var points: [String] = []
        if let scratch = layout.scratch { points.append(AbsolutePath.relative(scratch)) }
        for bind in layout.binds where probe.isDirectory(.host(bind.source), nil) {
            points.append(AbsolutePath.relative(bind.target))
        }
        return points.filter { !probe.isDirectory(.inRoot($0), layout.chroot) }
    }
}
