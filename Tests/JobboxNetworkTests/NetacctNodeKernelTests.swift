import Foundation
import JobboxCgroups
import JobboxNetacctClient
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxNetwork

/// `netacct --node` on the real kernel: the service counts a cgroup of the test's own (`jbn...` below this
/// process's unified cgroup, its NETWORK_ACCOUNTING_CGROUP) with its pins in a bpffs directory of the test's own
/// and its socket in the test's state directory. Jobs are processes moved into cgroups below it, in the topology's
/// "node" namespace (entered with nsenter: `ip netns exec` would hide the cgroup mounts).
@Suite("netacct --node on the kernel", .enabled(if: TestSupport.isRoot && BPFTestSupport.unifiedMount != nil, TestSupport.needsRoot))
struct NetacctNodeKernelTests {
    static let campus = NetacctTopology.campusAddress
    static let internet = NetacctTopology.internetAddress
    static let campus6 = NetacctTopology.campusAddress6
    static let internet6 = NetacctTopology.internetAddress6
    static let port = String(NetacctTopology.port)

    static func count(_ ad: ClassAd, _ name: String) -> Int { ad.integer(name).map { Int($0) } ?? -1 }

    /// UDP with replies to all four kinds of host: `count` datagrams of `size` bytes answered by `reply` bytes each.
    static func mixedTraffic(_ count: Int, _ size: Int, _ reply: Int) -> [String] {
        [campus, internet, campus6, internet6].flatMap { ["udp", $0, port, "\(count)", "\(size)", "\(reply)"] }
    }

    /// The counters `mixedTraffic` must give: IPv4 header 20 + UDP 8, IPv6 40 + 8.
    static func expectMixed(_ ad: ClassAd, _ count: Int, _ size: Int, _ reply: Int, _ what: String) {
        #expect(Self.count(ad, "NetworkOutgoingInternal") == count * (size + 28) + count * (size + 48), "\(what): \(ad)")
        #expect(Self.count(ad, "NetworkOutgoingExternal") == count * (size + 28) + count * (size + 48), "\(what): \(ad)")
        #expect(Self.count(ad, "NetworkIncomingInternal") == count * (reply + 28) + count * (reply + 48), "\(what): \(ad)")
        #expect(Self.count(ad, "NetworkIncomingExternal") == count * (reply + 28) + count * (reply + 48), "\(what): \(ad)")
    }

    @Test("UDP over IPv4 and IPv6: exact per cgroup, a job's figure holds its descendants (also gone ones), loopback not counted, gone entries dropped")
    func countsSubtrees() throws {
        let bed = try NodeBed()
        defer { bed.remove() }
        try bed.makeCgroups(["job", "job/main", "job/step", "sibling"])
        try bed.startService()
        #expect(try BPFTestSupport.attachedPrograms(bed.directory).count == 2)
        try bed.runJob(in: "job/main", Self.mixedTraffic(3, 200, 400) + ["send", "127.0.0.1", "9", "5", "1000", "send", "::1", "9", "5", "1000"])
        try bed.runJob(in: "job/step", Self.mixedTraffic(2, 100, 50))
        try bed.runJob(in: "sibling", Self.mixedTraffic(1, 300, 300))
        Self.expectMixed(try bed.show("job/main"), 3, 200, 400, "job/main")
        Self.expectMixed(try bed.show("job/step"), 2, 100, 50, "job/step")
        Self.expectMixed(try bed.show("sibling"), 1, 300, 300, "sibling")
        let job = try bed.show("job")
        #expect(Self.count(job, "NetworkOutgoingInternal") == 3 * (228 + 248) + 2 * (128 + 148))
        #expect(Self.count(job, "NetworkIncomingExternal") == 3 * (428 + 448) + 2 * (78 + 98))
        #expect(job.string("JobboxNetworkCgroup") == bed.cgroupPath + "/job")
        // The step is gone: its entry is dropped (at the next sweep: one runs at start), its counts stay in job's.
        let stepID = try BPFTestSupport.inode(bed.directory + "/job/step")
        guard rmdir(bed.directory + "/job/step") == 0 else { throw TestFailure("rmdir job/step: \(errno)") }
        try bed.restartService()
        #expect(try bed.show("job") == job)
        let ids = try bed.pinnedIDs()
        #expect(!ids.contains(stepID), "the gone cgroup's entry is still in the map")
        #expect(ids.contains(try BPFTestSupport.inode(bed.directory + "/job/main")))
        // --show --all (root): one ad per cgroup of the accounting subtree.
        let all = try bed.netacct(["--show", "--all"])
        #expect(all.status == 0, "\(all)")
        let paths = Set(ClassAdReader.parseAll(all.stdout).compactMap { $0.string("JobboxNetworkCgroup") })
        #expect(paths == Set(["", "/job", "/job/main", "/sibling"].map { bed.cgroupPath + $0 }))
    }

    @Test(
        "A user in a cgroup delegated to it reads its own counters (netacct --show --self, jobstat --self), also from a root's cgroup below it (HTCondor's .scope), and is refused a sibling's and its parent's"
    )
    func delegatedUser() throws {
        let bed = try NodeBed()
        let user = try TestUser()
        defer {
            bed.remove()
            user.remove()
        }
        try bed.makeCgroups(["user", "sibling"])
        for name in ["", "/cgroup.procs", "/cgroup.subtree_control", "/cgroup.threads"] {
            guard chown(bed.directory + "/user" + name, user.uid, user.gid) == 0 else { throw TestFailure("chown user\(name)") }
        }
        // As HTCondor's starter on a v2 node: the job's wrapper, as its user, in a root's .scope below the .slice
        // delegated to that user.
        try bed.makeCgroups(["user/scope"])
        try bed.startService()
        try bed.runJob(in: "user", Self.mixedTraffic(2, 150, 250), user: user)
        try bed.runJob(in: "sibling", Self.mixedTraffic(1, 10, 10))
        // The user makes a cgroup of its own below the delegated one and may read it too.
        let made = try bed.runAs(user, in: "user", ["/bin/mkdir", bed.directory + "/user/sub"])
        #expect(made.status == 0, "\(made)")

        let own = try bed.runAs(user, in: "user", bed.netacctCommand(["--show", "--self"]))
        #expect(own.status == 0, "\(own)")
        Self.expectMixed(ClassAdReader.parse(own.stdout), 2, 150, 250, "--show --self as the user")
        let below = try bed.runAs(user, in: "user", bed.netacctCommand(["--show", "--cgroup", bed.cgroupPath + "/user/sub"]))
        #expect(below.status == 0 && below.stdout.contains("NetworkOutgoing = 0\n"), "\(below)")
        // From the root's .scope: the delegated cgroup above it is the user's, its parent is not.
        let delegated = try bed.runAs(user, in: "user/scope", bed.netacctCommand(["--show", "--cgroup", bed.cgroupPath + "/user"]))
        #expect(delegated.status == 0, "\(delegated)")
        Self.expectMixed(ClassAdReader.parse(delegated.stdout), 2, 150, 250, "--show --cgroup of the delegated cgroup from the scope below it")
        let fromScope = try bed.runAs(user, in: "user/scope", [TestSupport.tool("jobstat"), "--config", bed.configPath, "--cgroup", bed.cgroupPath + "/user"])
        #expect(fromScope.status == 0, "\(fromScope)")
        Self.expectMixed(ClassAdReader.parse(fromScope.stdout), 2, 150, 250, "jobstat --cgroup of the delegated cgroup from the scope below it")
        for (cgroup, refused) in [("user", bed.cgroupPath + "/sibling"), ("user", bed.cgroupPath), ("user", "/"), ("user/scope", bed.cgroupPath)] {
            let result = try bed.runAs(user, in: cgroup, bed.netacctCommand(["--show", "--cgroup", refused]))
            #expect(result.status == 125, "\(refused) from \(cgroup): \(result)")
            #expect(result.stderr.contains("is neither the caller's cgroup"), "\(refused) from \(cgroup): \(result)")
            #expect(!result.stdout.contains("Network"), "\(refused) from \(cgroup): \(result)")
        }
        let all = try bed.runAs(user, in: "user", bed.netacctCommand(["--show", "--all"]))
        #expect(all.status == 125 && !all.stdout.contains("Network"), "\(all)")

        let jobstat = try bed.runAs(user, in: "user", [TestSupport.tool("jobstat"), "--config", bed.configPath, "--self"])
        #expect(jobstat.status == 0, "\(jobstat)")
        Self.expectMixed(ClassAdReader.parse(jobstat.stdout), 2, 150, 250, "jobstat --self as the user")
        let sibling = try bed.runAs(user, in: "user", [TestSupport.tool("jobstat"), "--config", bed.configPath, "--cgroup", bed.cgroupPath + "/sibling"])
        #expect(sibling.status == 0 && !sibling.stdout.contains("Network"), "jobstat says nothing of a cgroup the service refuses: \(sibling)")

        // Without a service jobstat is silent about network, and still succeeds.
        try bed.stopService()
        let silent = try bed.runAs(user, in: "user", [TestSupport.tool("jobstat"), "--config", bed.configPath, "--self"])
        #expect(silent.status == 0 && !silent.stdout.contains("Network") && silent.stderr.isEmpty, "\(silent)")
    }

    /// A client that sends one request line to the service as whoever runs it, then prints the answer and its
    /// own unified cgroup (to see whether it was moved).
    static let joinClient = """
        import socket, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sys.argv[1])
        s.sendall(sys.argv[2].encode() + b"\\n")
        answer = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
        print(answer.decode(), end="")
        print("cgroup=" + [l for l in open("/proc/self/cgroup").read().splitlines() if l.startswith("0::")][0][3:])
        """

    @Test(
        "Slurm on a hybrid node: the unified cgroup cg-exec --delegate-to made is joined through the service (cg-exec --join), counted, and read with jobstat --job by its user; another user, root, and cgroups not delegated are refused"
    )
    func joinDelegated() throws {
        let bed = try NodeBed()
        let user = try TestUser()
        let other = try TestUser()
        let job = TestSupport.uniqueName("jbnj")
        // cg-exec puts the job at <own cgroup>/<BASE_CGROUP>/job_<id>: below the bed's accounting cgroup.
        let config = bed.net.directory.path + "/cgexec.conf"
        let base = String(bed.directory.split(separator: "/").last ?? "")
        defer {
            _ = try? TestSupport.run([TestSupport.tool("cg-exec"), "--config", config, "--remove", "--job", job])
            NetacctNodeKernelTests.removeBaseCgroups(base)
            bed.remove()
            user.remove()
            other.remove()
        }
        let bedConfig = try String(contentsOfFile: bed.configPath, encoding: .utf8)
        try (bedConfig + "CGROUP_PARENT = self\nBASE_CGROUP = \(base)\n").write(toFile: config, atomically: false, encoding: .utf8)
        chmod(config, 0o644)
        try bed.makeCgroups(["plain"])
        try bed.startService()
        let delegated = try TestSupport.run([TestSupport.tool("cg-exec"), "--config", config, "--job", job, "--delegate-to", user.name])
        #expect(delegated.status == 0 && delegated.stderr.isEmpty, "\(delegated)")
        let jobPath = bed.cgroupPath + "/job_" + job
        var procs = stat()
        #expect(stat(bed.directory + "/job_\(job)/main/cgroup.procs", &procs) == 0 && procs.st_uid == user.uid, "the unified leaf is delegated")

        // The job script's way: as the user, from outside the job's cgroups, join and send.
        let inNode = { (who: TestUser, arguments: [String]) throws -> TestSupport.Result in
            try TestSupport.run(["nsenter", "--net=/run/netns/\(bed.net.node)"] + who.command(arguments))
        }
        let run = try inNode(
            user,
            [TestSupport.tool("cg-exec"), "--config", config, "--job", job, "--join", "--"]
                + NetacctTopology.client(["udp", Self.campus, Self.port, "4", "300", "500"]))
        #expect(run.status == 0 && run.stderr.isEmpty, "\(run)")
        let stat = try inNode(user, [TestSupport.tool("jobstat"), "--config", config, "--job", job])
        #expect(stat.status == 0, "\(stat)")
        let figures = ClassAdReader.parse(stat.stdout)
        #expect(Self.count(figures, "NetworkOutgoingInternal") == 4 * 328 && Self.count(figures, "NetworkIncomingInternal") == 4 * 528, "\(stat)")

        // The service's rule, asked directly.
        let client = ["/usr/bin/python3", "-c", Self.joinClient, bed.socketPath]
        let joined = try inNode(user, client + ["join \(jobPath)/main"])
        #expect(joined.stdout.contains("JobboxNetworkCgroup = \"\(jobPath)/main\"") && joined.stdout.hasSuffix("cgroup=\(jobPath)/main\n"), "\(joined)")
        for (who, request, reason) in [
            (other, "join \(jobPath)/main", "is not a cgroup delegated to uid \(other.uid)"),
            (user, "join \(bed.cgroupPath)/plain", "is not a cgroup delegated"),
            (user, "join \(bed.cgroupPath)", "is not a cgroup delegated"),
            (other, "cgroup \(jobPath)", "is neither the caller's cgroup"),
        ] {
            let refused = try inNode(who, client + [request])
            #expect(refused.stdout.contains("JobboxNetacctError") && refused.stdout.contains(reason), "\(request): \(refused)")
            #expect(!refused.stdout.contains("cgroup=\(jobPath)"), "\(request) moved the caller: \(refused)")
        }
        let root = try TestSupport.run(client + ["join \(jobPath)/main"])
        #expect(root.stdout.contains("root moves its processes itself"), "\(root)")

        // A service that refuses (the job's cgroup handed to another user) is one warning; the job still runs.
        #expect(chown(bed.directory + "/job_\(job)/main/cgroup.procs", other.uid, other.gid) == 0)
        let refused = try inNode(user, [TestSupport.tool("cg-exec"), "--config", config, "--job", job, "--join", "--", "/bin/true"])
        #expect(refused.status == 0, "\(refused)")
        #expect(
            refused.stderr.hasPrefix("cg-exec: warning: cannot join")
                && refused.stderr.hasSuffix(
                    "is not a cgroup delegated to uid \(user.uid) (cg-exec --delegate-to makes one)): the job runs without network figures\n"),
            "\(refused)")
        #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused)")
        // Without a service the node does not count by cgroup: the job runs and cg-exec says nothing.
        try bed.stopService()
        let alone = try inNode(user, [TestSupport.tool("cg-exec"), "--config", config, "--job", job, "--join", "--", "/bin/true"])
        #expect(alone.status == 0 && alone.stderr.isEmpty, "\(alone)")
    }

    /// Removes `base` below this process's own cgroup in every v1 hierarchy (cg-exec made it; the unified one goes
    /// with the bed).
    static func removeBaseCgroups(_ base: String) {
        guard let layout = try? CgroupLayout.current(), let membership = try? CgroupMembership.read() else { return }
        for hierarchy in layout.hierarchies where hierarchy.version == .v1 {
            if let own = layout.directory(of: membership, in: hierarchy) { rmdir(own + "/" + base) }
        }
    }

    @Test("Hostile: malformed, oversized and unfinished requests get one error line; a hanging client blocks nobody")
    func hostileRequests() throws {
        let bed = try NodeBed()
        defer { bed.remove() }
        try bed.makeCgroups(["job"])
        try bed.startService()
        // Clients that connect and send half a request, then hang, holding their connections open.
        let hanging = try (0..<8).map { _ in try RawClient(bed.socketPath) }
        for client in hanging { try client.send("cgroup /jb") }
        let started = MonotonicClock.now()
        let answer = try RawClient(bed.socketPath).exchange("cgroup \(bed.cgroupPath)/job\n")
        #expect(answer.contains("NetworkOutgoing = 0\n"), "\(answer)")
        #expect(MonotonicClock.now() - started < 2.5, "a hanging client held the answer up")
        let oversized = try RawClient(bed.socketPath).exchange("cgroup /" + String(repeating: "a", count: 100_000) + "\n")
        #expect(oversized == "JobboxNetacctError = \"the request is longer than 4096 bytes\"\n", "\(oversized)")
        for (request, reason) in [
            ("hello\n", "unknown request"), ("cgroup ../etc\n", "not a cgroup path"), ("cgroup /a/../b\n", "not a cgroup path"),
            ("self\nself\n", "one request per connection"), ("\u{0}\u{1}\u{ff}\n", "unknown request"), ("self", "did not end with a newline"),
            ("cgroup /nonexistent\n", "outside NETWORK_ACCOUNTING_CGROUP"), ("cgroup \(bed.cgroupPath)/none\n", "does not exist"),
        ] {
            let text = try RawClient(bed.socketPath).exchange(request, closeWrite: true)
            #expect(
                text.hasPrefix("JobboxNetacctError = ") && text.contains(reason) && text.split(separator: "\n").count == 1,
                "\(request.debugDescription): \(text)")
        }
        // The hanging clients are dropped at their deadline, with one error line.
        let late = try hanging[0].readAll()
        #expect(late.contains("no complete request within"), "\(late)")
        for client in hanging { client.close() }
        #expect(try bed.show("job").string("JobboxNetworkCgroup") == bed.cgroupPath + "/job")
        #expect(bed.service?.isRunning == true)
    }

    @Test("Hostile: a user holding 8 unfinished requests open is refused a ninth, by the uid the kernel gives; root is still answered")
    func oneUserCannotTakeEverySlot() throws {
        let bed = try NodeBed()
        let user = try TestUser()
        defer {
            bed.remove()
            user.remove()
        }
        try bed.makeCgroups(["job"])
        try bed.startService()
        // As the user: 8 connections with half a request each, then a ninth (its answer printed), then one more
        // after closing one of the 8 (its first bytes printed: no refusal, so it is being served).
        let holder = """
            import socket, sys
            def connect():
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(sys.argv[1])
                s.settimeout(20)
                return s
            held = [connect() for _ in range(8)]
            for s in held:
                s.sendall(b"cgroup /jb")
            print(connect().recv(4096).decode(), end="")
            held.pop().close()
            again = connect()
            again.sendall(b"self\\n")
            print("again=" + again.recv(4096).decode().split("\\n")[0])
            """
        let result = try TestSupport.run(user.command(["/usr/bin/python3", "-c", holder, bed.socketPath]))
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("JobboxNetacctError = \"uid \(user.uid) has 8 requests open, the most one user may; try again\"\n"), "\(result)")
        #expect(result.stdout.contains("again=") && !result.stdout.contains("again=JobboxNetacctError = \"uid"), "\(result)")
        // Root, meanwhile and after, is answered.
        let answer = try RawClient(bed.socketPath).exchange("cgroup \(bed.cgroupPath)/job\n")
        #expect(answer.contains("NetworkOutgoing = 0\n"), "\(answer)")
        #expect(bed.service?.isRunning == true)
    }

    @Test("Restart (TERM) and kill -9 under traffic lose no count; --cleanup --stale leaves no program, link or pin")
    func restartUnderTraffic() throws {
        let bed = try NodeBed()
        defer { bed.remove() }
        try bed.makeCgroups(["job"])
        try bed.startService()
        let programs = try BPFTestSupport.attachedPrograms(bed.directory)
        let datagrams = 20000
        let go = bed.net.directory.path + "/go"
        let done = bed.net.directory.path + "/done"
        let traffic = try BackgroundRun(
            bed.jobCommand(
                in: "job",
                [
                    "wait", go, "udp", Self.campus, Self.port, "\(datagrams)", "100", "200", "udp", Self.internet6, Self.port, "\(datagrams)", "50", "70",
                    "pidfile", done,
                ]
            ))
        try "".write(toFile: go, atomically: false, encoding: .utf8)
        try bed.restartService()
        bed.killService()
        try bed.startService()
        // The job was still sending through both: the restarts happened under traffic.
        let duringTraffic = !FileManager.default.fileExists(atPath: done)
        let result = traffic.wait()
        #expect(duringTraffic, "the traffic ended before the restarts; send more")
        #expect(result.status == 0, "\(result)")
        #expect(FileManager.default.fileExists(atPath: done))
        let ad = try bed.show("job")
        #expect(Self.count(ad, "NetworkOutgoingInternal") == datagrams * 128)
        #expect(Self.count(ad, "NetworkIncomingInternal") == datagrams * 228)
        #expect(Self.count(ad, "NetworkOutgoingExternal") == datagrams * 98)
        #expect(Self.count(ad, "NetworkIncomingExternal") == datagrams * 118)

        // While the service runs, --cleanup --stale leaves it alone.
        let busy = try bed.netacct(["--cleanup", "--stale"])
        #expect(busy.status == 0 && busy.stderr.contains("netacct --node runs"), "\(busy)")
        #expect(try BPFTestSupport.attachedPrograms(bed.directory).count == 2)
        try bed.stopService()
        // Stopped: the programs go on counting through the pinned links until the clean-up.
        let current = try BPFTestSupport.attachedPrograms(bed.directory)
        #expect(current.count == 2)
        let cleanup = try bed.netacct(["--cleanup", "--stale"])
        #expect(cleanup.status == 0 && cleanup.stderr.contains("removed the node service's programs"), "\(cleanup)")
        #expect(try BPFTestSupport.attachedPrograms(bed.directory).isEmpty)
        let tree = try TestSupport.run(["bpftool", "cgroup", "tree", bed.directory])
        #expect(!tree.stdout.contains("jb_netacct"), "\(tree)")
        let loaded = try TestSupport.run(["bpftool", "prog", "show"]).stdout
        for id in programs + current { #expect(!loaded.contains("\n\(id): ") && !loaded.hasPrefix("\(id): "), "program \(id) is still loaded") }
        #expect(!FileManager.default.fileExists(atPath: bed.pinDirectory))
        #expect(!FileManager.default.fileExists(atPath: bed.socketPath))
    }
}

/// One test's node service: its topology, accounting cgroup, pin directory, socket and configuration.
final class NodeBed {
    let net: NetacctTopology
    /// The accounting cgroup as a cgroup path, and its directory.
    let cgroupPath: String
    let directory: String
    let pinDirectory: String
    let socketPath: String
    let configPath: String
    private(set) var service: BackgroundRun?

    init() throws {
        net = try NetacctTopology(prefix: "jbn")
        let name = TestSupport.uniqueName("jbn")
        let own = String(BPFTestSupport.ownCgroup().dropFirst(BPFTestSupport.unifiedMount?.count ?? 0))
        cgroupPath = (own == "/" ? "" : own) + "/" + name
        directory = BPFTestSupport.ownCgroup() + "/" + name
        pinDirectory = "/sys/fs/bpf/" + name
        socketPath = net.state.path + "/run/netacct.sock"
        configPath = net.directory.path + "/node.conf"
        do {
            try net.startServers()
            guard mkdir(directory, 0o755) == 0 else { throw TestFailure("cannot make \(directory)") }
            try """
            STATE_DIR = \(net.state.path)
            NETWORK_INTERNAL = \(NetacctTopology.internalNetworks6)
            NETWORK_ACCOUNTING_CGROUP = \(cgroupPath)
            NETACCT_PIN_DIR = \(pinDirectory)
            NETACCT_SOCKET = \(socketPath)

            """.write(toFile: configPath, atomically: false, encoding: .utf8)
            chmod(configPath, 0o644)
            chmod(net.directory.path, 0o755)
        } catch {
            remove()
            throw error
        }
    }

    /// Stops the service, removes the pins (through the clean-up, else by hand), the cgroups and the topology.
    func remove() {
        if let service {
            kill(service.pid, SIGKILL)
            _ = service.wait()
        }
        service = nil
        _ = try? netacct(["--cleanup", "--stale"])
        _ = try? TestSupport.run(["rm", "-rf", pinDirectory])
        removeCgroups(directory)
        net.remove()
    }

    private func removeCgroups(_ path: String) {
        guard FileManager.default.fileExists(atPath: path) else { return }
        try? "1".write(toFile: path + "/cgroup.kill", atomically: false, encoding: .utf8)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
            var info = stat()
            if lstat(path + "/" + name, &info) == 0, info.st_mode & S_IFMT == S_IFDIR { removeCgroups(path + "/" + name) }
        }
        for _ in 0..<500 where rmdir(path) != 0 { usleep(10_000) }
    }

    func makeCgroups(_ names: [String]) throws {
        for name in names { guard mkdir(directory + "/" + name, 0o755) == 0 else { throw TestFailure("cannot make cgroup \(name)") } }
    }

    /// netacct with this bed's configuration, in the host's namespaces.
    func netacctCommand(_ arguments: [String]) -> [String] { [TestSupport.tool("netacct"), "--config", configPath] + arguments }

    func netacct(_ arguments: [String]) throws -> TestSupport.Result { try TestSupport.run(netacctCommand(arguments)) }

    /// Starts the service and waits for its socket.
    func startService() throws {
        service = try BackgroundRun(netacctCommand(["--node"]))
        try waitForFile(socketPath, timeout: 30)
    }

    /// Stops the service with TERM and checks it ended well and removed its socket.
    func stopService() throws {
        guard let service else { return }
        kill(service.pid, SIGTERM)
        let result = service.wait()
        self.service = nil
        guard result.status == 0 else { throw TestFailure("netacct --node after TERM: \(result)") }
        guard !FileManager.default.fileExists(atPath: socketPath) else { throw TestFailure("the socket outlived the service") }
    }

    /// Kills the service with SIGKILL (its socket file stays, replaced at the next start).
    func killService() {
        guard let service else { return }
        kill(service.pid, SIGKILL)
        _ = service.wait()
        self.service = nil
    }

    func restartService() throws {
        try stopService()
        try startService()
    }

    /// The command that runs `arguments` in cgroup `name` (below the accounting cgroup), in the topology's node
    /// namespace, as `user` when given.
    func command(in name: String, _ arguments: [String], user: TestUser? = nil) -> [String] {
        let inner = ["nsenter", "--net=/run/netns/\(net.node)"] + (user.map { $0.command(arguments) } ?? arguments)
        return ["/bin/sh", "-c", "echo $$ > \"$0\" && exec \"$@\"", directory + "/" + name + "/cgroup.procs"] + inner
    }

    func jobCommand(in name: String, _ actions: [String], user: TestUser? = nil) -> [String] {
        command(in: name, NetacctTopology.client(actions), user: user)
    }

    /// Runs the traffic `actions` in cgroup `name` and requires them to succeed.
    func runJob(in name: String, _ actions: [String], user: TestUser? = nil) throws {
        let result = try TestSupport.run(jobCommand(in: name, actions, user: user))
        guard result.status == 0 else { throw TestFailure("job in \(name): \(result)") }
    }

    func runAs(_ user: TestUser, in name: String, _ arguments: [String]) throws -> TestSupport.Result {
        try TestSupport.run(command(in: name, arguments, user: user))
    }

    /// Root's `netacct --show --cgroup` of cgroup `name` (below the accounting cgroup).
    func show(_ name: String) throws -> ClassAd {
        let result = try netacct(["--show", "--cgroup", cgroupPath + "/" + name])
        guard result.status == 0 else { throw TestFailure("--show \(name): \(result)") }
        return ClassAdReader.parse(result.stdout)
    }

    /// The cgroup ids with an entry in the pinned counters map.
    func pinnedIDs() throws -> [UInt64] {
        let map = try NodeCountersMap.openPinned(pinDirectory)
        defer { close(map.fd) }
        return try map.ids()
    }
}

/// A client of the service's socket that does what the real one never would.
final class RawClient {
    let fd: Int32

    init(_ path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, connected == 0 else { throw TestFailure("cannot connect to \(path): \(errno)") }
        var limit = timeval(tv_sec: 20, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            // The service stops reading past the limit and closes: what it did not take is no error here.
            if sent <= 0 { return }
            offset += sent
        }
    }

    func readAll() throws -> String {
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                answer += buffer[..<count]
            } else if count == 0 || errno == ECONNRESET {
                break
            } else {
                throw TestFailure("recv: \(errno)")
            }
        }
        return String(decoding: answer, as: UTF8.self)
    }

    func exchange(_ text: String, closeWrite: Bool = false) throws -> String {
        defer { close() }
        try send(text)
        if closeWrite { _ = shutdown(fd, Int32(SHUT_WR)) }
        return try readAll()
    }

    func close() { _ = Glibc.close(fd) }
}

extension BackgroundRun {
    /// Whether the process has not ended (it is not reaped here).
    var isRunning: Bool { kill(pid, 0) == 0 }
}
