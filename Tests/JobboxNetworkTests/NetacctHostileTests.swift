import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxNetwork

/// Attacks on netacct as root through what a job (or anyone but root) can write: the state directory and its
/// leases and lock (issue #12, finding 5). Each runs the attack against the real tool, in namespaces the test
/// makes (`NetacctTopology`), and checks that nothing outside the job changed: the node's iptables and nftables
/// rules and its links, and a canary path outside the state directory.
@Suite("Hostile: netacct", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct NetacctHostileTests {
    /// A lease as netacct writes one, with every field open to forgery.
    static func lease(
        job: String, interface: String, chain: String, slot: Int = 0, host: String = "10.213.0.1", address: String = "10.213.0.2",
        namespace: String, backend: String = "iptables", ownerPid: Int = 999_999
    ) -> String {
        """
        JobboxJobId = "\(job)"
        OwnerPid = \(ownerPid)
        OwnerStartTime = 1
        NetworkNamespace = \(namespace)
        Slot = \(slot)
        HostAddress = "\(host)"
        JobAddress = "\(address)"
        PrefixLength = 30
        Interface = "\(interface)"
        Chain = "\(chain)"
        Backend = "\(backend)"

        """
    }

    /// The node's network namespace inode, which a lease must name to be acted on there.
    static func namespace(of net: NetacctTopology) throws -> String {
        try net.exec(net.node, ["stat", "-L", "-c", "%i", "/proc/self/ns/net"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func write(_ path: String, _ text: String, owner: TestUser? = nil) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        if let owner { chown(path, owner.uid, owner.gid) }
    }

    // MARK: - the state directory

    @Test(
        "a STATE_DIR the job's user owns, holding a forged lease (Chain DROP, Interface c0) and a lock symlink: refused, 125, nothing deleted or created",
        arguments: NetacctKernelTests.backends)
    func jobOwnedStateDirectory(backend: String) throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let user = try TestUser()
        defer { user.remove() }
        let before = try net.nodeState()
        // The job's user owns STATE_DIR/netacct (as if STATE_DIR pointed into its scratch dir) and planted there.
        let dir = net.state.path + "/netacct"
        #expect(mkdir(dir, 0o755) == 0)
        chown(dir, user.uid, user.gid)
        let canary = net.directory.path + "/created-by-root"
        try Self.write(
            dir + "/jb_x.lease", Self.lease(job: "x", interface: "c0", chain: "DROP", namespace: try Self.namespace(of: net), backend: backend), owner: user)
        #expect(symlink(canary, dir + "/lock") == 0)
        lchown(dir + "/lock", user.uid, user.gid)

        let cleanup = try net.netacct(["--cleanup", "--stale"])
        #expect(cleanup.status == 125, "\(cleanup)")
        #expect(cleanup.stderr == "netacct: cannot use state directory \(dir): \(dir) is owned by uid \(user.uid), not root\n")
        let run = try net.netacct(NetacctKernelTests.options("victim.\(backend)", backend) + ["--"] + NetacctTopology.client(["address"]))
        #expect(run.status == 125, "\(run)")
        #expect(run.stdout.isEmpty, "the job never ran")
        #expect(try net.nodeState() == before)
        #expect(!FileManager.default.fileExists(atPath: canary))
        #expect(FileManager.default.fileExists(atPath: dir + "/jb_x.lease"))
    }

    @Test("a STATE_DIR below a directory others can write (/tmp) is refused before anything is made")
    func stateDirectoryUnderTmp() throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let before = try net.nodeState()
        let config = net.directory.path + "/tmp.conf"
        try Self.write(config, "STATE_DIR = \(net.directory.path)/state\n")
        let run = try TestSupport.run(
            ["ip", "netns", "exec", net.node, TestSupport.tool("netacct"), "--config", config]
                + NetacctKernelTests.options("tmp", "iptables") + ["--"] + NetacctTopology.client(["address"]))
        #expect(run.status == 125, "\(run)")
        #expect(run.stderr == "netacct: cannot use state directory \(net.directory.path)/state/netacct: /tmp is writable by others than root (mode 1777)\n")
        #expect(!FileManager.default.fileExists(atPath: net.directory.path + "/state"))
        #expect(try net.nodeState() == before)
    }

    @Test("a missing STATE_DIR is made 0755 and root's")
    func stateDirectoryMade() throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let config = net.directory.path + "/fresh.conf"
        let fresh = net.state.path + "/a/b"
        try Self.write(config, "STATE_DIR = \(fresh)\n")
        let run = try TestSupport.run(["ip", "netns", "exec", net.node, TestSupport.tool("netacct"), "--config", config, "--cleanup", "--stale"])
        #expect(run.status == 0, "\(run)")
        for path in [net.state.path + "/a", fresh, fresh + "/netacct"] {
            var info = stat()
            #expect(stat(path, &info) == 0)
            #expect(info.st_uid == 0 && info.st_mode & 0o7777 == 0o755, "\(path)")
        }
    }

    // MARK: - forged leases in root's own state directory

    @Test(
        "a forged lease (Chain DROP, Interface c0) is reported, not acted on, by --cleanup --stale and by a run's reclaim",
        arguments: NetacctKernelTests.backends)
    func forgedLease(backend: String) throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let before = try net.nodeState()
        let dir = net.state.path + "/netacct"
        #expect(mkdir(dir, 0o755) == 0)
        let forged = dir + "/c0.lease"
        try Self.write(forged, Self.lease(job: "x", interface: "c0", chain: "DROP", namespace: try Self.namespace(of: net), backend: backend))
        let cleanup = try net.netacct(["--cleanup", "--stale"])
        #expect(cleanup.status == 0, "\(cleanup)")
        #expect(cleanup.stderr == "netacct: warning: ignored lease \(forged): its Interface is not jb_x, the name of job x\n")
        let run = try net.netacct(NetacctKernelTests.options("after.\(backend)", backend) + ["--"] + NetacctTopology.client(["address"]))
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout == "address 10.213.0.2\n", "the forged lease holds no slot")
        #expect(run.stderr.contains("ignored lease \(forged)"), "\(run)")
        #expect(try net.nodeState() == before)
    }

    @Test(
        "a lease in another file naming a live job (its id, so its interface and chain): refused; the live job keeps its network",
        arguments: NetacctKernelTests.backends)
    func leaseNamingLiveJob(backend: String) throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let before = try net.nodeState()
        let victim = "victim.\(backend)"
        let (run, _, _) = try NetacctKernelTests.startWaitingJob(net, job: victim, backend: backend)
        let live = try net.nodeState()
        let names = JobNetworkNames(job: try JobID(victim))
        // The victim's own lease is jb_victim_<backend>.lease; this one has a dead owner and another file name.
        let forged = net.state.path + "/netacct/jb_evil.lease"
        try Self.write(
            forged,
            Self.lease(
                job: victim, interface: names.interface, chain: names.chain, slot: 1, host: "10.213.0.5", address: "10.213.0.6",
                namespace: try Self.namespace(of: net), backend: backend))
        let cleanup = try net.netacct(["--cleanup", "--stale"])
        #expect(cleanup.status == 0, "\(cleanup)")
        #expect(cleanup.stderr == "netacct: warning: ignored lease \(forged): its file is not named \(names.interface).lease\n")
        #expect(try net.nodeState() == live, "the live job's veth and chain are untouched")
        try FileManager.default.createDirectory(atPath: net.directory.path + "/never", withIntermediateDirectories: false)
        #expect(run.wait().status == 0)
        #expect(try net.nodeState() == before)
        #expect(net.leaseFiles() == ["jb_evil.lease"], "only the job's own lease was released")
    }

    @Test("a lease whose addresses are not its slot's, or whose slot is outside the subnet, is not believed")
    func leaseAddressesChecked() throws {
        let dir = try ExecuteDirectory("jbstate")
        defer { dir.remove() }
        let leases = JobNetworkLeases(stateDirectory: dir.path, subnet: IPv4Network(parsing: "10.213.0.0/16")!)
        let names = JobNetworkNames(job: try JobID("a"))
        let good = JobNetworkLease(
            job: "a", owner: .current, namespace: 1, slot: 3, hostAddress: leases.addresses(of: 3).host, jobAddress: leases.addresses(of: 3).job,
            prefixLength: 30, names: names, backend: .iptables)
        #expect(leases.validate(good, fileName: "jb_a.lease") == nil)
        var moved = good
        moved.jobAddress = leases.addresses(of: 4).job
        #expect(leases.validate(moved, fileName: "jb_a.lease") == "its addresses are not 10.213.0.13/30 and 10.213.0.14/30 of slot 3")
        var outside = good
        outside.slot = 16384
        #expect(leases.validate(outside, fileName: "jb_a.lease") == "its Slot is not one of 10.213.0.0/16")
        var badID = good
        badID.job = "../a"
        #expect(leases.validate(badID, fileName: "jb_a.lease") == "its JobboxJobId is not a job id")
    }

    @Test("a lock file that is a symlink, even in root's own state directory: not followed, nothing created, 125")
    func lockSymlink() throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let before = try net.nodeState()
        let dir = net.state.path + "/netacct"
        #expect(mkdir(dir, 0o755) == 0)
        let canary = net.directory.path + "/created-by-root"
        #expect(symlink(canary, dir + "/lock") == 0)
        let run = try net.netacct(NetacctKernelTests.options("lock", "iptables") + ["--"] + NetacctTopology.client(["address"]))
        #expect(run.status == 125, "\(run)")
        #expect(run.stderr == "netacct: cannot open lock \(dir)/lock: Too many levels of symbolic links\n")
        #expect(!FileManager.default.fileExists(atPath: canary))
        #expect(try net.nodeState() == before)
    }

    @Test("a FIFO as a lease file or as the lock: reported or refused, never waited on")
    func fifoLease() throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let before = try net.nodeState()
        let dir = net.state.path + "/netacct"
        #expect(mkdir(dir, 0o755) == 0)
        #expect(mkfifo(dir + "/jb_f.lease", 0o644) == 0)
        // A kill after two minutes only keeps a regression from hanging the suite; nothing here is timed.
        let cleanup = try TestSupport.run(["timeout", "-s", "KILL", "120"] + net.netacctArguments(["--cleanup", "--stale"]))
        #expect(cleanup.status == 0, "\(cleanup)")
        #expect(cleanup.stderr == "netacct: warning: ignored lease \(dir)/jb_f.lease: it is not a regular file\n")
        unlink(dir + "/lock")
        #expect(mkfifo(dir + "/lock", 0o600) == 0)
        let run = try TestSupport.run(["timeout", "-s", "KILL", "120"] + net.netacctArguments(["--cleanup", "--stale"]))
        #expect(run.status == 125, "\(run)")
        #expect(run.stderr == "netacct: cannot open lock \(dir)/lock: it is not a regular file\n")
        #expect(try net.nodeState() == before)
    }
}
