import CLinux
import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore

@Suite("cgroup discovery")
struct CgroupLayoutTests {
    /// Loads a fixture layout: its mountinfo, its /proc/self/cgroup, and its file tree as the filesystem root.
    static func fixture(_ name: String) throws -> (CgroupLayout, CgroupMembership) {
        let dir = TestSupport.fixtures + "/cgroup-layouts/" + name
        let mounts = MountInfo.parse(try String(contentsOfFile: dir + "/mountinfo", encoding: .utf8))
        let layout = CgroupLayout(mounts: mounts, fsRoot: dir + "/tree")
        let membership = CgroupMembership(parsing: try String(contentsOfFile: dir + "/cgroup", encoding: .utf8))
        return (layout, membership)
    }

    @Test("EL7: v1 only, cpu and cpuacct mounted together, a named systemd hierarchy")
    func el7() throws {
        let (layout, membership) = try Self.fixture("v1-el7")
        let root = TestSupport.fixtures + "/cgroup-layouts/v1-el7/tree"
        #expect(layout.mode == .v1)
        #expect(layout.unified == nil)
        #expect(layout.hierarchies.count == 11)
        let cpu = try #require(layout.hierarchy(for: "cpu"))
        #expect(cpu.controllers == ["cpu", "cpuacct"])
        #expect(cpu.mountPoint == root + "/sys/fs/cgroup/cpu,cpuacct")
        #expect(layout.hierarchy(for: "cpuacct") == cpu)
        #expect(layout.directory(of: membership, in: cpu) == root + "/sys/fs/cgroup/cpu,cpuacct/system.slice/condor.service")
        let memory = try #require(layout.hierarchy(for: "memory"))
        #expect(layout.directory(of: membership, in: memory) == root + "/sys/fs/cgroup/memory/system.slice/condor.service")
        let cpuset = try #require(layout.hierarchy(for: "cpuset"))
        #expect(layout.directory(of: membership, in: cpuset) == root + "/sys/fs/cgroup/cpuset")
        let systemd = try #require(layout.hierarchies.first { $0.name == "systemd" })
        #expect(systemd.controllers.isEmpty)
        #expect(membership.path(in: systemd) == "/system.slice/condor.service")
        #expect(layout.hierarchy(for: "io") == nil)
    }

    @Test("this project's VMs: hybrid, every controller on v1, cgroup2 with only hugetlb")
    func hybrid() throws {
        let (layout, membership) = try Self.fixture("hybrid-debian12-vm")
        let root = TestSupport.fixtures + "/cgroup-layouts/hybrid-debian12-vm/tree"
        #expect(layout.mode == .hybrid)
        #expect(layout.unified?.controllers == ["hugetlb"])
        #expect(layout.unified?.mountPoint == root + "/sys/fs/cgroup/unified")
        for controller in ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"] {
            let hierarchy = try #require(layout.hierarchy(for: controller), "\(controller)")
            #expect(hierarchy.version == .v1)
            #expect(hierarchy.controllers == [controller])
            #expect(hierarchy.mountPoint == root + "/sys/fs/cgroup/" + controller)
        }
        let memory = try #require(layout.hierarchy(for: "memory"))
        let memoryPath = try #require(membership.path(in: memory))
        #expect(memoryPath.hasPrefix("/process_api/"))
        #expect(layout.directory(of: membership, in: memory) == root + "/sys/fs/cgroup/memory" + memoryPath)
        #expect(layout.directory(of: membership, in: try #require(layout.unified)) == root + "/sys/fs/cgroup/unified")
        #expect(layout.hierarchy(for: "io") == nil)
    }

    @Test("EL9 with systemd: v2 only, the job in HTCondor's .slice/.scope")
    func el9() throws {
        let (layout, membership) = try Self.fixture("v2-el9-systemd")
        let root = TestSupport.fixtures + "/cgroup-layouts/v2-el9-systemd/tree"
        #expect(layout.mode == .v2)
        let unified = try #require(layout.unified)
        #expect(unified.controllers == ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"])
        #expect(layout.hierarchy(for: "memory") == unified)
        #expect(layout.hierarchy(for: "io") == unified)
        #expect(layout.hierarchy(for: "blkio") == nil)
        #expect(
            layout.directory(of: membership, in: unified)
                == root
                + "/sys/fs/cgroup/system.slice/htcondor/condor_var_lib_condor_execute_slot1_1@ospool.slice/condor_var_lib_condor_execute_slot1_1@ospool.scope")
    }

    @Test("a container with its own cgroup namespace: v2, its cgroup is the mount's root")
    func container() throws {
        let (layout, membership) = try Self.fixture("v2-container-cgroupns")
        let root = TestSupport.fixtures + "/cgroup-layouts/v2-container-cgroupns/tree"
        #expect(layout.mode == .v2)
        let unified = try #require(layout.unified)
        #expect(layout.directory(of: membership, in: unified) == root + "/sys/fs/cgroup")
        #expect(layout.hierarchy(for: "pids") == unified)
    }

    @Test("a container without a cgroup namespace sees its own subtree mounted at /sys/fs/cgroup")
    func containerWithoutNamespace() {
        let mounts = MountInfo.parse("617 616 0:28 /system.slice/docker-7f3c.scope /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n")
        let layout = CgroupLayout(mounts: mounts, readFile: { _ in "memory pids" })
        let unified = layout.unified!
        #expect(unified.directory(forCgroupPath: "/system.slice/docker-7f3c.scope/job") == "/sys/fs/cgroup/job")
        #expect(unified.directory(forCgroupPath: "/system.slice/docker-7f3c.scope") == "/sys/fs/cgroup")
        #expect(unified.directory(forCgroupPath: "/system.slice/other.scope") == nil)
        #expect(unified.directory(forCgroupPath: "/../..") == nil)
    }

    @Test("mountinfo's octal escapes are undone")
    func escapes() {
        let entry = MountInfo.parse("50 27 0:40 / /mnt/with\\040space rw shared:1 master:2 - tmpfs my\\011tmp rw\n").first
        #expect(entry?.mountPoint == "/mnt/with space")
        #expect(entry?.source == "my\ttmp")
        #expect(entry?.optionalFields == ["shared:1", "master:2"])
    }

    @Test("on this machine, the layout agrees with the kernel's statfs and /proc/self/cgroup")
    func thisMachine() throws {
        let layout = try CgroupLayout.current()
        let membership = try CgroupMembership.read()
        #expect(!layout.hierarchies.isEmpty)
        for hierarchy in layout.hierarchies {
            let kind = jbKind(hierarchy.mountPoint)
            #expect(kind == (hierarchy.version == .v2 ? 2 : 1), "\(hierarchy.mountPoint)")
            let dir = try #require(layout.directory(of: membership, in: hierarchy), "\(hierarchy.mountPoint)")
            // Read to the end: a cgroup with many processes gives its list over several reads.
            let handle = try #require(FileHandle(forReadingAtPath: dir + "/cgroup.procs"))
            let procs = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
            #expect(procs.split(separator: "\n").contains(Substring(String(getpid()))), "this process is listed in \(dir)")
        }
    }

    @Test("on this machine, the unified hierarchy found without the mount table is the one the mount table names")
    func unifiedWithoutMountTable() throws {
        let fromTable = try CgroupLayout.current().unified
        let found = try CgroupLayout.currentUnified()
        #expect(found?.mountPoint == fromTable?.mountPoint && found?.mountRoot == fromTable?.mountRoot && found?.version == fromTable?.version)
        guard let fromTable, fromTable.mountRoot == "/", CgroupLayout.usualUnifiedMounts.contains(fromTable.mountPoint) else { return }
        #expect(CgroupLayout.unifiedAtUsualPlace([fromTable.mountPoint])?.mountPoint == fromTable.mountPoint)
        // Not cgroup2, not there, or a cgroup below the root (a subtree bound in its place would look so): no.
        #expect(CgroupLayout.unifiedAtUsualPlace(["/tmp", "/nonexistent"]) == nil)
        guard TestSupport.isRoot else { return }
        let child = fromTable.mountPoint + "/" + TestSupport.uniqueName("jbunified")
        guard mkdir(child, 0o755) == 0 else { throw TestFailure("cannot make \(child)") }
        defer { rmdir(child) }
        #expect(CgroupLayout.unifiedAtUsualPlace([child]) == nil)
    }
}

private func jbKind(_ path: String) -> Int32 { jb_cgroup_fs_kind(path) }
