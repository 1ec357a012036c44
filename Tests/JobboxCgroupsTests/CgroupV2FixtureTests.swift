import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore

/// cg-exec's v2 file writes against fixture trees (this machine's cgroup2 mount has no controllers; the real
/// kernel's v2 behaviour is checked in the VM by scripts/vm/checks/cg-exec.sh).
@Suite("cg-exec on cgroup v2 (fixture trees)")
struct CgroupV2FixtureTests {
    /// A pid no process has (above the kernel's PID_MAX_LIMIT), so the killer's SIGKILL to it is harmless.
    static let fakePID: Int32 = 2_000_000_000
    static let allControllers = ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"]

    static func limits(_ configure: (inout CgroupLimitOptions) -> Void = { _ in }) throws -> CgroupLimits {
        var options = CgroupLimitOptions()
        configure(&options)
        return try CgroupLimits(parsing: options)
    }

    static func create(
        _ fixture: FixtureCgroupV2, parent: CgroupParent = .root, ownPath: String = "/", job: String = "7.0", limits: CgroupLimits
    ) throws -> JobCgroup {
        let locator = fixture.locator(parent: parent, ownPath: ownPath)
        let plan = try JobCgroupPlan.make(locator: locator, job: try JobID(job), limits: limits, controllers: nil)
        return try JobCgroupCreator(filesystem: fixture, layout: locator.layout, membership: locator.membership, pid: fakePID).create(plan)
    }

    static func failure(_ body: () throws -> Void) -> String {
        do {
            try body()
        } catch {
            return "\(error)"
        }
        return "no error"
    }

    @Test("as root from /: controllers enabled down the tree, limits on job_<id>, the process in job_<id>/main")
    func rootParent() throws {
        let fixture = try FixtureCgroupV2(controllers: Self.allControllers)
        defer { fixture.remove() }
        let limits = try Self.limits {
            $0.memory = "64M"
            $0.memoryHigh = "48M"
            $0.cpus = "2"
            $0.cpuQuota = "1.5"
            $0.pidsMax = "100"
            $0.ioWeight = "300"
            $0.cpuset = "1"
        }
        _ = try Self.create(fixture, limits: limits)
        let job = "/jobbox/job_7_0"
        for cgroup in ["", "/jobbox", job] {
            #expect(Set(fixture.words(cgroup + "/cgroup.subtree_control")) == ["memory", "cpu", "cpuset", "io", "pids"], "\(cgroup)")
        }
        #expect(fixture.contents(job + "/memory.max") == "67108864\n")
        #expect(fixture.contents(job + "/memory.high") == "50331648\n")
        #expect(fixture.contents(job + "/memory.oom.group") == "1\n")
        #expect(fixture.contents(job + "/cpu.weight") == "200\n")
        #expect(fixture.contents(job + "/cpu.max") == "150000 100000\n")
        #expect(fixture.contents(job + "/pids.max") == "100\n")
        #expect(fixture.contents(job + "/io.weight") == "default 300\n")
        #expect(fixture.contents(job + "/cpuset.cpus") == "1\n")
        #expect(fixture.contents(job + "/main/cgroup.procs") == "\(Self.fakePID)\n")
        #expect(fixture.contents(job + "/cgroup.procs") == "")
        #expect(fixture.contents(job + "/main/memory.max") == "max\n", "main has the controllers' files but no limits of its own")
        let log = fixture.log
        let enableRoot = try #require(log.firstIndex { $0.hasPrefix("write /cgroup.subtree_control") })
        let makeBase = try #require(log.firstIndex(of: "mkdir /jobbox"))
        let makeMain = try #require(log.firstIndex(of: "mkdir \(job)/main"))
        let limit = try #require(log.firstIndex(of: "write \(job)/memory.max 67108864"))
        #expect(enableRoot < makeBase)
        #expect(makeMain < limit)
        #expect(log.last == "write \(job)/main/cgroup.procs \(Self.fakePID)", "joining is the last step")
    }

    @Test("without cpuset limits the cpuset controller is left alone; without limits the job still gets memory.oom.group")
    func defaults() throws {
        let fixture = try FixtureCgroupV2(controllers: Self.allControllers)
        defer { fixture.remove() }
        _ = try Self.create(fixture, limits: try Self.limits())
        #expect(Set(fixture.words("/jobbox/cgroup.subtree_control")) == ["memory", "cpu", "io", "pids"])
        #expect(fixture.contents("/jobbox/job_7_0/memory.oom.group") == "1\n")
        #expect(fixture.contents("/jobbox/job_7_0/memory.max") == "max\n")
    }

    /// HTCondor's layout: the user owns `<uniq>.slice`, its cgroup.procs and subtree_control, and runs in
    /// `<uniq>.slice/<uniq>.scope`; nothing above the slice is writable.
    static func htcondorSlice(_ fixture: FixtureCgroupV2) throws -> String {
        let slice = "/system.slice/htcondor/slot1_1.slice"
        try fixture.write("+memory +pids +cpu +io", to: fixture.mountPoint + "/cgroup.subtree_control")
        for cgroup in ["/system.slice", "/system.slice/htcondor", slice] {
            try fixture.makeCgroup(cgroup)
            try fixture.write("+memory +pids +cpu +io", to: fixture.mountPoint + cgroup + "/cgroup.subtree_control")
        }
        try fixture.makeCgroup(slice + "/slot1_1.scope", procs: [4321])
        for cgroup in ["", "/system.slice", "/system.slice/htcondor"] {
            fixture.denied.insert(fixture.mountPoint + cgroup)
            fixture.denied.insert(fixture.mountPoint + cgroup + "/cgroup.subtree_control")
            fixture.denied.insert(fixture.mountPoint + cgroup + "/cgroup.procs")
        }
        fixture.denied.insert(fixture.mountPoint + slice + "/slot1_1.scope")
        fixture.denied.insert(fixture.mountPoint + slice + "/slot1_1.scope/cgroup.subtree_control")
        return slice
    }

    @Test("unprivileged in a delegated .slice: the job's cgroup goes below it, nothing above is written")
    func delegatedSlice() throws {
        let fixture = try FixtureCgroupV2(controllers: Self.allControllers)
        defer { fixture.remove() }
        let slice = try Self.htcondorSlice(fixture)
        _ = try Self.create(
            fixture, parent: .path(slice), ownPath: slice + "/slot1_1.scope",
            limits: try Self.limits {
                $0.memory = "1G"
                $0.pidsMax = "50"
            })
        let job = slice + "/jobbox/job_7_0"
        #expect(fixture.contents(job + "/memory.max") == "1073741824\n")
        #expect(fixture.contents(job + "/pids.max") == "50\n")
        #expect(fixture.contents(job + "/main/cgroup.procs") == "\(Self.fakePID)\n")
        #expect(fixture.log.allSatisfy { $0.contains(slice + "/jobbox") }, "\(fixture.log)")
    }

    @Test("--parent self inside a .scope that has processes: the error says which file and why, nothing is left")
    func selfInScopeWithProcesses() throws {
        let fixture = try FixtureCgroupV2(controllers: Self.allControllers)
        defer { fixture.remove() }
        let slice = try Self.htcondorSlice(fixture)
        fixture.denied.removeAll()  // even as root, v2 refuses controllers below a cgroup with processes
        let scope = slice + "/slot1_1.scope"
        let message = Self.failure { _ = try Self.create(fixture, parent: .current, ownPath: scope, limits: try Self.limits { $0.memory = "1G" }) }
        #expect(
            message
                == "cannot write '+memory' to \(fixture.mountPoint)\(scope)/cgroup.subtree_control: Device or resource busy (the cgroup has processes of its own, and cgroup v2 enables controllers only for cgroups without any: pass --parent with a cgroup that has none)"
        )
        #expect(!fixture.isDirectory(scope + "/jobbox"))
    }

    @Test("unprivileged where nothing is delegated: the error names the cgroup it may not create in")
    func notDelegated() throws {
        let fixture = try FixtureCgroupV2(controllers: Self.allControllers)
        defer { fixture.remove() }
        let slice = try Self.htcondorSlice(fixture)
        let scope = slice + "/slot1_1.scope"
        let message = Self.failure { _ = try Self.create(fixture, parent: .current, ownPath: scope, limits: try Self.limits()) }
        #expect(message.hasPrefix("cannot create cgroup \(fixture.mountPoint)\(scope)/jobbox: Permission denied ("))
        #expect(
            message.contains("may not create cgroups in \(fixture.mountPoint)\(scope): it is not delegated to this user (pass --parent with a cgroup you own)"))
        let denied = Self.failure { _ = try Self.create(fixture, parent: .path("/system.slice"), ownPath: scope, limits: try Self.limits()) }
        #expect(denied.hasPrefix("cannot create cgroup \(fixture.mountPoint)/system.slice/jobbox: Permission denied"))
    }

    @Test("a controller a limit needs but the cgroups above do not delegate is an error naming the file; one nothing needs is skipped")
    func undelegatedController() throws {
        let fixture = try FixtureCgroupV2(controllers: ["memory", "pids", "cpu"], enabled: ["memory", "pids"])
        defer { fixture.remove() }
        try fixture.makeCgroup("/deleg")
        fixture.denied = [fixture.mountPoint + "/cgroup.subtree_control", fixture.mountPoint + "/cgroup.procs"]
        let message = Self.failure { _ = try Self.create(fixture, parent: .path("/deleg"), limits: try Self.limits { $0.cpus = "2" }) }
        #expect(message.hasPrefix("cannot write '+cpu' to \(fixture.mountPoint)/cgroup.subtree_control: Permission denied ("), "\(message)")
        #expect(!fixture.isDirectory("/deleg/jobbox"))
        _ = try Self.create(fixture, parent: .path("/deleg"), limits: try Self.limits { $0.memory = "1G" })
        #expect(Set(fixture.words("/deleg/jobbox/cgroup.subtree_control")) == ["memory", "pids"])
        #expect(fixture.contents("/deleg/jobbox/job_7_0/memory.max") == "1073741824\n")
        #expect(fixture.contents("/deleg/jobbox/job_7_0/main/cgroup.procs") == "\(Self.fakePID)\n")
    }

    @Test("a limit the kernel refuses undoes everything made: the directories, the move, nothing half-made")
    func halfMade() throws {
        let fixture = try FixtureCgroupV2(controllers: Self.allControllers)
        defer { fixture.remove() }
        let message = Self.failure {
            _ = try Self.create(
                fixture,
                limits: try Self.limits {
                    $0.memory = "1G"
                    $0.cpuset = "9"
                })
        }
        #expect(
            message.hasPrefix(
                "cannot write '9' to \(fixture.mountPoint)/jobbox/job_7_0/cpuset.cpus: Invalid argument (--cpuset 9 is not within the parent's 0-3"))
        #expect(!fixture.isDirectory("/jobbox"))
        let removals = fixture.log.filter { $0.hasPrefix("rmdir") }
        #expect(removals == ["rmdir /jobbox/job_7_0/main", "rmdir /jobbox/job_7_0", "rmdir /jobbox"])
        #expect(!fixture.log.contains { $0.hasSuffix("cgroup.procs \(Self.fakePID)") }, "the process never moved")
    }

    @Test("a base that exists already is kept when a job fails; an existing job cgroup is refused and kept")
    func sharedBase() throws {
        let fixture = try FixtureCgroupV2(controllers: Self.allControllers)
        defer { fixture.remove() }
        _ = try Self.create(fixture, job: "1.0", limits: try Self.limits())
        _ = Self.failure { _ = try Self.create(fixture, job: "2.0", limits: try Self.limits { $0.cpuset = "9" }) }
        #expect(fixture.isDirectory("/jobbox/job_1_0/main"))
        #expect(!fixture.isDirectory("/jobbox/job_2_0"))
        let message = Self.failure { _ = try Self.create(fixture, job: "1.0", limits: try Self.limits()) }
        #expect(message.hasSuffix("job_1_0: File exists (a job with this id is running or its cgroup was not removed (cg-exec --remove --job ID))"))
        #expect(fixture.isDirectory("/jobbox/job_1_0/main"))
    }

    @Test("undo after a failed exec moves the process back and removes what was made")
    func undoAfterExecFailure() throws {
        let fixture = try FixtureCgroupV2(controllers: Self.allControllers)
        defer { fixture.remove() }
        try fixture.write(String(Self.fakePID), to: fixture.mountPoint + "/cgroup.procs")
        let locator = fixture.locator(parent: .root)
        let plan = try JobCgroupPlan.make(locator: locator, job: try JobID("3.1"), limits: try Self.limits { $0.memory = "1G" }, controllers: nil)
        let creator = JobCgroupCreator(filesystem: fixture, layout: locator.layout, membership: locator.membership, pid: Self.fakePID)
        let job = try creator.create(plan)
        #expect(fixture.contents("/cgroup.procs") == "")
        #expect(creator.undo(job).isEmpty)
        #expect(fixture.contents("/cgroup.procs") == "\(Self.fakePID)\n")
        #expect(!fixture.isDirectory("/jobbox"))
    }

    @Test("--remove on v2: freeze, cgroup.kill, thaw, then rmdir bottom-up including the job's own sub-cgroups; idempotent")
    func removal() throws {
        let fixture = try FixtureCgroupV2(controllers: Self.allControllers)
        defer { fixture.remove() }
        _ = try Self.create(fixture, limits: try Self.limits())
        try fixture.makeDirectory(fixture.mountPoint + "/jobbox/job_7_0/payload")
        try fixture.write(String(Self.fakePID), to: fixture.mountPoint + "/cgroup.procs")
        let registry = JobCgroupRegistry(locator: fixture.locator(parent: .root), filesystem: fixture)
        let before = fixture.log.count
        try registry.remove(try JobID("7.0"), timeout: .seconds(5))
        let log = Array(fixture.log[before...])
        #expect(
            log == [
                "write /jobbox/job_7_0/cgroup.freeze 1", "write /jobbox/job_7_0/cgroup.kill 1", "write /jobbox/job_7_0/cgroup.freeze 0",
                "rmdir /jobbox/job_7_0/main", "rmdir /jobbox/job_7_0/payload", "rmdir /jobbox/job_7_0",
            ])
        #expect(fixture.isDirectory("/jobbox"), "the base stays")
        let after = fixture.log.count
        try registry.remove(try JobID("7.0"), timeout: .seconds(5))
        #expect(fixture.log.count == after)
    }

    @Test("a process that does not die is named in the error and the cgroups stay, thawed")
    func survivors() throws {
        let fixture = try FixtureCgroupV2(controllers: Self.allControllers)
        defer { fixture.remove() }
        _ = try Self.create(fixture, limits: try Self.limits())
        let registry = JobCgroupRegistry(locator: fixture.locator(parent: .root), filesystem: fixture)
        let message = Self.failure { try registry.remove(try JobID("7.0"), timeout: .milliseconds(300)) }
        #expect(message == "cannot remove job '7.0': 1 process survived 0.3 s: \(Self.fakePID)")
        #expect(fixture.isDirectory("/jobbox/job_7_0/main"))
        #expect(fixture.contents("/jobbox/job_7_0/cgroup.freeze") == "0\n")
    }

    @Test("--remove from inside the job refuses instead of killing itself")
    func removeFromInside() throws {
        let fixture = try FixtureCgroupV2(controllers: Self.allControllers)
        defer { fixture.remove() }
        _ = try Self.create(fixture, limits: try Self.limits())
        let registry = JobCgroupRegistry(locator: fixture.locator(parent: .root, ownPath: "/jobbox/job_7_0/main"), filesystem: fixture)
        let message = Self.failure { try registry.remove(try JobID("7.0"), timeout: .seconds(1)) }
        #expect(message == "cannot remove job '7.0': this process runs inside it (\(fixture.mountPoint)/jobbox/job_7_0/main)")
        #expect(!fixture.log.contains { $0.contains("cgroup.freeze") })
    }

    @Test("--list: every job under the base with its processes counted over the subtree")
    func listing() throws {
        let fixture = try FixtureCgroupV2(controllers: Self.allControllers)
        defer { fixture.remove() }
        _ = try Self.create(fixture, job: "1.0", limits: try Self.limits())
        _ = try Self.create(fixture, job: "2.0", limits: try Self.limits())
        try fixture.makeDirectory(fixture.mountPoint + "/jobbox/job_2_0/payload")
        try fixture.write(String(Self.fakePID + 1), to: fixture.mountPoint + "/jobbox/job_2_0/payload/cgroup.procs")
        try fixture.makeDirectory(fixture.mountPoint + "/jobbox/not-a-job")
        let entries = JobCgroupRegistry(locator: fixture.locator(parent: .root), filesystem: fixture).list()
        #expect(entries == [.init(name: "job_1_0", processCount: 0), .init(name: "job_2_0", processCount: 2)])
    }
}

@Suite("cg-exec plans on the node layouts of the fixtures")
struct JobCgroupPlanTests {
    static func plan(_ name: String, parent: CgroupParent = .current, limits: CgroupLimits = CgroupLimits(), controllers: Set<CgroupController>? = nil) throws
        -> (JobCgroupPlan, String)
    {
        let (layout, membership) = try CgroupLayoutTests.fixture(name)
        let locator = JobCgroupLocator(layout: layout, parent: parent, base: "jobbox", membership: membership)
        return (try JobCgroupPlan.make(locator: locator, job: try JobID("12.3"), limits: limits, controllers: controllers), layout.fsRoot)
    }

    @Test("hybrid (this machine's kind): every controller in its v1 hierarchy, plus the unified tree to track and kill, with the process in main")
    func hybrid() throws {
        var limits = CgroupLimits()
        limits.memory = .bytes(1 << 30)
        let (plan, root) = try Self.plan("hybrid-debian12-vm", limits: limits)
        let mounts = plan.targets.map { String($0.hierarchy.mountPoint.dropFirst(root.count)) }
        #expect(
            mounts == [
                "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpuset", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/freezer",
                "/sys/fs/cgroup/blkio", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified",
            ])
        let memory = try #require(plan.targets.first { $0.controllers == [.memory] })
        #expect(memory.jobDirectory.hasSuffix("/sys/fs/cgroup/memory/process_api/786dda9ed5c9f6c4ff1fc0bad05026f4/jobbox/job_12_3"))
        #expect(memory.processDirectory == memory.jobDirectory)
        #expect(memory.writes.map(\.description) == ["memory.limit_in_bytes = 1073741824"])
        let unified = try #require(plan.targets.last)
        #expect(unified.controllers.isEmpty)
        #expect(unified.writes.isEmpty)
        #expect(unified.processDirectory == root + "/sys/fs/cgroup/unified/jobbox/job_12_3/main")
        #expect(plan.targets.first { $0.controllers == [.cpuset] }?.needsCpusetCopy == true)
    }

    @Test("EL7 v1: cpu and cpuacct share one hierarchy and one target; no unified tree")
    func el7() throws {
        let (plan, root) = try Self.plan("v1-el7")
        let cpu = try #require(plan.targets.first { $0.controllers.contains(.cpu) })
        #expect(cpu.controllers == [.cpu, .cpuacct])
        #expect(cpu.jobDirectory == root + "/sys/fs/cgroup/cpu,cpuacct/system.slice/condor.service/jobbox/job_12_3")
        #expect(plan.targets.count == 6)
        #expect(plan.targets.allSatisfy { $0.version == .v1 })
    }

    @Test("EL9 v2: one target in the unified tree; cpuset only when asked; --memory-high allowed")
    func el9() throws {
        var limits = CgroupLimits()
        limits.memoryHigh = .bytes(1 << 30)
        let (plan, _) = try Self.plan("v2-el9-systemd", parent: .path("/system.slice/htcondor"), limits: limits)
        #expect(plan.targets.count == 1)
        #expect(plan.targets[0].controllers == [.memory, .cpu, .cpuacct, .io, .pids, .freezer])
        #expect(plan.targets[0].controllersToEnable == ["memory", "cpu", "io", "pids"])
        #expect(plan.targets[0].writes.map(\.description) == ["memory.high = 1073741824", "memory.oom.group = 1"])
        limits.cpuset = CPUList([0, 1])
        let (withCpuset, _) = try Self.plan("v2-el9-systemd", parent: .path("/system.slice/htcondor"), limits: limits)
        #expect(withCpuset.targets[0].controllersToEnable == ["memory", "cpu", "cpuset", "io", "pids"])
    }

    @Test("refusals before anything is made: a limit --controllers leaves out, --memory-high on v1, a controller the node lacks")
    func refusals() throws {
        var limits = CgroupLimits()
        limits.pidsMax = .count(10)
        #expect(throws: JobboxError.self) { try Self.plan("hybrid-debian12-vm", limits: limits, controllers: [.memory]) }
        var high = CgroupLimits()
        high.memoryHigh = .bytes(1 << 20)
        #expect(throws: JobboxError.self) { try Self.plan("hybrid-debian12-vm", limits: high) }
        var io = CgroupLimits()
        io.ioWeight = 100
        let mounts = MountInfo.parse("35 24 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
        let layout = CgroupLayout(mounts: mounts, readFile: { _ in "memory pids\n" })
        let locator = JobCgroupLocator(layout: layout, parent: .root, base: "jobbox", membership: CgroupMembership(parsing: "0::/\n"))
        do {
            _ = try JobCgroupPlan.make(locator: locator, job: try JobID("1"), limits: io, controllers: nil)
            Issue.record("planned --io-weight without an io controller")
        } catch {
            #expect(
                error.description
                    == "cannot apply --io-weight: no mounted cgroup hierarchy has the io (v1: blkio) controller (cgroup v2 node offering memory pids)")
        }
        #expect(
            try JobCgroupPlan.make(locator: locator, job: try JobID("1"), limits: CgroupLimits(), controllers: nil).targets[0].controllersToEnable == [
                "memory", "pids",
            ])
    }
}
