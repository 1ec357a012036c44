import JobboxTestSupport
import Testing

@testable import JobboxChroot
@testable import JobboxCore
@testable import JobboxNamespaces
@testable import JobboxQuota

/// The planner and the mount planner, without the kernel: a described file system instead of the real one.
@Suite("ns-exec plans")
struct NsExecPlanTests {
    static let root = Caller(uid: 0, gid: 0, isRoot: true, workingDirectory: "/work")
    static let alice = Caller(uid: 1000, gid: 1000, isRoot: false, workingDirectory: "/home/alice")

    /// A file system with these directories (host paths, and paths inside the chroot as `root:path`).
    static func probe(_ directories: Set<String>) -> PathProbe {
        PathProbe(
            isDirectory: { path, root in
                switch path {
                case .host(let host): return directories.contains(host)
                case .inRoot(let relative): return directories.contains("\(root ?? ""):/\(relative)")
                case .underScratch: return false
                }
            },
            exists: { directories.contains($0) })
    }

    static let host = probe(["/tmp", "/var/tmp", "/dev/shm", "/scratch", "/data", "/srv/view"])

    func plan(_ build: (inout NsExecRequest) -> Void, config: JobboxConfig = JobboxConfig(), caller: Caller = root, probe: PathProbe = host) throws
        -> NsExecPlan
    {
        var request = NsExecRequest()
        request.command = ["job"]
        build(&request)
        return try NsExecPlanner.plan(request, config: config, caller: caller, environment: Environment(), probe: probe)
    }

    @Test("--pid implies a mount namespace for the fresh /proc, an init, and /dev/shm by MOUNT_PRIVATE_DEV_SHM")
    func pidImpliesMount() throws {
        let plan = try plan { $0.pid = true }
        #expect(plan.namespaces == [.pid, .mount])
        #expect(plan.runInit)
        #expect(plan.mounts == [.makeSlave, .proc(target: .host("/proc")), .tmpfs(target: .host("/dev/shm"), options: "mode=1777,size=50%")])
        #expect(plan.workdir == "/work" && plan.workdirOptional)
        var config = JobboxConfig()
        config.mountPrivateDevShm = false
        #expect(
            try self.plan(
                {
                    $0.pid = true
                    $0.noInit = true
                }, config: config
            ).mounts == [.makeSlave, .proc(target: .host("/proc"))])
    }

    @Test("no namespace option: no namespaces, no mounts, the caller's directory untouched")
    func nothingAsked() throws {
        let plan = try plan { _ in }
        #expect(plan.namespaces.isEmpty)
        #expect(plan.mounts.isEmpty)
        #expect(plan.workdir == nil)
        #expect(!plan.noNewPrivs)
        #expect(plan.identity == nil)
    }

    @Test("scratch: MOUNT_UNDER_SCRATCH by default, directories that do not exist or are the scratch dir skipped")
    func scratchTargets() throws {
        var config = JobboxConfig()
        config.mountUnderScratch = ["/tmp", "/var/tmp", "/missing", "/scratch", "/"]
        #expect(throws: JobboxError.invalid("invalid directory to mount under scratch", "'/'", "not an absolute path without . or .. (and not /)")) {
            try self.plan({ $0.scratch = "/scratch/" }, config: config)
        }
        config.mountUnderScratch = ["/tmp", "/var/tmp", "/missing", "/scratch", "/tmp"]
        let plan = try plan({ $0.scratch = "/scratch/" }, config: config)
        #expect(plan.layout.scratch == "/scratch")
        #expect(plan.scratchTargets == ["/tmp", "/var/tmp"])
        #expect(
            plan.mounts == [
                .makeSlave, .tmpfs(target: .host("/dev/shm"), options: "mode=1777,size=50%"),
                .bind(source: .underScratch("tmp"), target: .host("/tmp"), recursive: false),
                .bind(source: .underScratch("var/tmp"), target: .host("/var/tmp"), recursive: false),
            ])
        let none = try self.plan({
            $0.scratch = "/scratch"
            $0.mountUnderScratch = []
            $0.privateDevShm = false
        })
        #expect(none.mounts == [.makeSlave])
    }

    @Test("a chroot: self-bind, read-only, /dev, /proc, /dev/shm, per-job tmpfs, the scratch dir at its path, scratch binds, binds, pivot")
    func chrootOrder() throws {
        let chroot = "/var/lib/jobbox-plan-test"
        let probe = Self.probe([
            "/tmp", "/var/tmp", "/dev/shm", "/scratch", "/data", "\(chroot):/tmp", "\(chroot):/var/tmp", "\(chroot):/run", "\(chroot):/scratch",
        ])
        var layout = MountLayout()
        layout.freshProc = true
        layout.scratch = "/scratch"
        layout.underScratch = ["/tmp"]
        layout.privateDevShm = true
        layout.chroot = chroot
        layout.binds = [BindRequest(source: "/data", target: "/data")]
        layout.tmpfsSize = "1048576"
        layout.jobOwner = UserIDs(uid: 1000, gid: 100)
        let operations = MountPlanner.operations(layout) { probe.isDirectory($0, chroot) }
        #expect(
            operations == [
                .makeSlave,
                .bind(source: .host(chroot), target: .host(chroot), recursive: true),
                .readOnly(target: .host(chroot)),
                .bind(source: .host("/dev"), target: .inRoot("dev"), recursive: true),
                .proc(target: .inRoot("proc")),
                .tmpfs(target: .inRoot("dev/shm"), options: "mode=1777,size=1048576"),
                .tmpfs(target: .inRoot("var/tmp"), options: "mode=1777,size=1048576"),
                .tmpfs(target: .inRoot("run"), options: "mode=0755,uid=1000,gid=100,size=1048576"),
                .bind(source: .underScratch(""), target: .inRoot("scratch"), recursive: true),
                .bind(source: .underScratch("tmp"), target: .inRoot("tmp"), recursive: false),
                .bind(source: .host("/data"), target: .inRoot("data"), recursive: true),
                .pivotRoot(chroot),
            ])
        layout.freshProc = false
        #expect(MountPlanner.operations(layout) { probe.isDirectory($0, chroot) }[4] == .bind(source: .host("/proc"), target: .inRoot("proc"), recursive: true))
    }

    @Test("a chroot lacking the scratch dir: a mount point on a tmpfs over its parent, or one line when the parent is missing too")
    func chrootScratchMountPoint() throws {
        let chroot = "/var/lib/jobbox-plan-test"
        var layout = MountLayout()
        layout.scratch = "/execute/dir_7"
        layout.chroot = chroot
        let withParent = Self.probe(["\(chroot):/execute", "\(chroot):/tmp"])
        #expect(MountPlanner.scratchPlacement(layout) { withParent.isDirectory($0, chroot) } == .onTmpfs(parent: "/execute", coverParent: true))
        let operations = MountPlanner.operations(layout) { withParent.isDirectory($0, chroot) }
        #expect(
            Array(operations.suffix(5)) == [
                .tmpfs(target: .inRoot("tmp"), options: "mode=1777"),
                .tmpfs(target: .inRoot("execute"), options: "mode=0755,size=1m"),
                .makeDirectory(in: .inRoot("execute"), name: "dir_7"),
                .bind(source: .underScratch(""), target: .inRoot("execute/dir_7"), recursive: true),
                .pivotRoot(chroot),
            ])
        // Below a per-job tmpfs already: only the directory.
        layout.scratch = "/tmp/dir_7"
        #expect(MountPlanner.scratchPlacement(layout) { withParent.isDirectory($0, chroot) } == .onTmpfs(parent: "/tmp", coverParent: false))
        layout.scratch = "/elsewhere/dir_7"
        #expect(MountPlanner.scratchPlacement(layout) { withParent.isDirectory($0, chroot) } == .missing(parent: "/elsewhere"))
    }

    @Test("a scratch dir below a directory mounted under scratch is bound back at its own path inside it; below two is refused")
    func scratchBelowCoveredDirectory() throws {
        let probe = Self.probe(["/tmp", "/var/tmp", "/tmp/execute/dir_1"])
        let plan = try plan(
            {
                $0.scratch = "/tmp/execute/dir_1"
                $0.privateDevShm = false
            }, probe: probe)
        #expect(plan.scratchTargets == ["/tmp", "/var/tmp", "/tmp/execute/dir_1"])
        #expect(
            plan.mounts == [
                .makeSlave,
                .bind(source: .underScratch(""), target: .underScratch("tmp/execute/dir_1"), recursive: false),
                .bind(source: .underScratch("tmp"), target: .host("/tmp"), recursive: true),
                .bind(source: .underScratch("var/tmp"), target: .host("/var/tmp"), recursive: false),
            ])
        let nested = Self.probe(["/tmp", "/tmp/a", "/tmp/a/dir_1"])
        #expect(
            throws: JobboxError.invalid(
                "invalid scratch directory", "/tmp/a/dir_1", "it lies below more than one directory mounted under scratch (/tmp, /tmp/a)")
        ) {
            try self.plan(
                {
                    $0.scratch = "/tmp/a/dir_1"
                    $0.mountUnderScratch = ["/tmp", "/tmp/a"]
                }, probe: nested)
        }
    }

    @Test("JOB_TMPFS_SIZE: a size or a share of RAM, capped by the memory cgroup's limit")
    func tmpfsSize() {
        #expect(JobTmpfsSize(parsing: "25%") == .percentOfRAM(25))
        #expect(JobTmpfsSize(parsing: "512M") == .bytes(512 << 20))
        for bad in ["0", "0%", "101%", "max", "lots", ""] { #expect(JobTmpfsSize(parsing: bad) == nil, "\(bad)") }
        #expect(JobTmpfsSize.percentOfRAM(50).tmpfsOption(ram: 8 << 30, cgroupLimit: nil) == String(4 << 30))
        #expect(JobTmpfsSize.percentOfRAM(50).tmpfsOption(ram: 8 << 30, cgroupLimit: 1 << 30) == String(1 << 30))
        #expect(JobTmpfsSize.percentOfRAM(25).tmpfsOption(ram: nil, cgroupLimit: nil) == "25%")
        #expect(JobTmpfsSize.bytes(64 << 20).tmpfsOption(ram: nil, cgroupLimit: 1 << 30) == String(64 << 20))
    }

    @Test("a non-root caller: no_new_privs always, no other user, --userns maps the caller's own ids")
    func unprivilegedCaller() throws {
        let plan = try plan(
            {
                $0.userns = true
                $0.pid = true
            }, caller: Self.alice)
        #expect(plan.noNewPrivs)
        #expect(plan.userNamespace == UserIDs(uid: 1000, gid: 1000))
        #expect(plan.identity == nil)
        #expect(plan.owner == UserIDs(uid: 1000, gid: 1000))
        #expect(throws: JobboxError.invalid("cannot switch to", "user 'root'", "only root can run a job as another user or group")) {
            try self.plan({ $0.user = "root" }, caller: Self.alice)
        }
        #expect(throws: JobboxError.invalid("refusing chroot", "/srv", "only root may name a chroot by path; use a name from NAMED_CHROOT")) {
            try self.plan(
                {
                    $0.userns = true
                    $0.chroot = "/srv"
                }, caller: Self.alice)
        }
    }

    @Test("root's --user resolves ids and groups before anything runs; the scratch dirs go to that user")
    func rootSwitchesUser() throws {
        let plan = try plan {
            $0.user = "nobody"
            $0.scratch = "/scratch"
        }
        let identity = try #require(plan.identity)
        #expect(identity.uid == 65534)
        #expect(identity.userName == "nobody")
        #expect(identity.groups.contains(identity.gid))
        #expect(!identity.groups.contains(0))
        #expect(plan.owner == UserIDs(uid: 65534, gid: identity.gid))
        #expect(!plan.noNewPrivs)
        #expect(
            try self.plan({
                $0.user = "nobody"
                $0.noNewPrivs = true
            }).noNewPrivs)
    }

    @Test("options that need another are refused before anything is made")
    func refusals() {
        #expect(throws: JobboxError.invalid("invalid option", "--no-init", "it only applies with --pid")) { try self.plan { $0.noInit = true } }
        #expect(throws: JobboxError.invalid("invalid option", "--mount-under-scratch", "it needs --scratch")) {
            try self.plan { $0.mountUnderScratch = ["/tmp"] }
        }
        #expect(throws: JobboxError.invalid("invalid scratch directory", "/nowhere", "no such directory")) { try self.plan { $0.scratch = "/nowhere" } }
        #expect(throws: JobboxError.invalid("invalid scratch directory", "'scratch'", "not an absolute path without . or ..")) {
            try self.plan { $0.scratch = "scratch" }
        }
        #expect(throws: JobboxError.invalid("invalid bind", "/nowhere:/data", "/nowhere does not exist")) {
            try self.plan { $0.binds = [BindRequest(source: "/nowhere", target: "/data")] }
        }
        #expect(throws: JobboxError.invalid("invalid hostname", "'\(String(repeating: "h", count: 65))'", "1 to 64 bytes")) {
            try self.plan { $0.hostname = String(repeating: "h", count: 65) }
        }
        #expect(throws: JobboxError.invalid("no command given", nil, "usage: ns-exec [OPTIONS] -- COMMAND [ARG...]")) {
            try NsExecPlanner.plan(NsExecRequest(), config: JobboxConfig(), caller: Self.root, environment: Environment(), probe: Self.host)
        }
    }

    @Test("--hostname implies UTS, --net brings lo up, --bind implies a mount namespace")
    func implications() throws {
        let plan = try plan {
            $0.hostname = "job"
            $0.net = true
            $0.binds = [BindRequest(source: "/data", target: "/srv/view")]
        }
        #expect(plan.namespaces == [.uts, .net, .mount])
        #expect(plan.loopbackUp)
        #expect(plan.mounts.last == .bind(source: .host("/data"), target: .host("/srv/view"), recursive: true))
    }

    @Test(
        "bind and path syntax",
        arguments: [
            ("/a", BindRequest(source: "/a", target: "/a")), ("/a//b/:/c", BindRequest(source: "/a/b", target: "/c")),
        ])
    func bindSyntax(text: String, expected: BindRequest) throws {
        #expect(try BindRequest(parsing: text) == expected)
    }

    @Test("paths with . or .. or relative ones are not absolute paths", arguments: ["", "a", "/a/../b", "/a/./b", "a:/b"])
    func badPaths(text: String) {
        #expect(AbsolutePath.normalize(text) == nil)
        #expect(throws: JobboxError.self) { try BindRequest(parsing: text) }
    }

    @Test("a path is within itself and its ancestors only")
    func within() {
        #expect(AbsolutePath.isWithin("/tmp/x", "/tmp"))
        #expect(AbsolutePath.isWithin("/tmp", "/tmp"))
        #expect(!AbsolutePath.isWithin("/tmpx", "/tmp"))
        #expect(AbsolutePath.isWithin("/anything", "/"))
    }
}

/// `--scratch-quota` and `SCRATCH_QUOTA` in the plan (the kernel side is Tests/JobboxQuotaTests).
@Suite("ns-exec plans: scratch quota")
struct NsExecScratchQuotaPlanTests {
    func plan(_ build: (inout NsExecRequest) -> Void, config: JobboxConfig = JobboxConfig(), caller: Caller = NsExecPlanTests.root) throws -> NsExecPlan {
        var request = NsExecRequest()
        request.command = ["job"]
        build(&request)
        return try NsExecPlanner.plan(request, config: config, caller: caller, environment: Environment(), probe: NsExecPlanTests.host)
    }

    @Test("--scratch-quota needs --scratch and root, takes SIZE[,INODES] or none, and SCRATCH_QUOTA is root's default")
    func scratchQuota() throws {
        #expect(
            try plan {
                $0.scratch = "/scratch"
                $0.scratchQuota = "10G,1000"
            }.scratchQuota == ScratchQuotaLimit(bytes: 10 << 30, inodes: 1000))
        #expect(throws: JobboxError.invalid("invalid option", "--scratch-quota", "it needs --scratch")) { try self.plan { $0.scratchQuota = "1G" } }
        #expect(throws: JobboxError.self) {
            try self.plan {
                $0.scratch = "/scratch"
                $0.scratchQuota = "1G,x"
            }
        }
        #expect(throws: JobboxError.self) {
            try self.plan(
                {
                    $0.scratch = "/scratch"
                    $0.scratchQuota = "1G"
                }, caller: NsExecPlanTests.alice)
        }
        var config = JobboxConfig()
        config.scratchQuota = ScratchQuotaLimit(bytes: 1 << 30)
        #expect(try plan({ $0.scratch = "/scratch" }, config: config).scratchQuota == ScratchQuotaLimit(bytes: 1 << 30))
        #expect(
            try plan(
                {
                    $0.scratch = "/scratch"
                    $0.scratchQuota = "none"
                }, config: config
            ).scratchQuota == nil)
        // The default is root's: an unprivileged run, or one without a scratch dir, goes on without it.
        #expect(try plan({ $0.scratch = "/scratch" }, config: config, caller: NsExecPlanTests.alice).scratchQuota == nil)
        #expect(try plan({ $0.pid = true }, config: config).scratchQuota == nil)
    }
}
