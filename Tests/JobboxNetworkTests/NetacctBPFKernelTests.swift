import CNetacctBPF
import Foundation
import JobboxCgroups
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxNetwork

/// netacct's bpf back end on the real kernel: the job runs in the topology's "node" namespace itself (no veth),
/// in a cgroup netacct makes below the test's own unified cgroup, and talks to the campus and internet hosts
/// over IPv4 and IPv6.
@Suite("netacct --backend bpf on the kernel", .enabled(if: TestSupport.isRoot && BPFTestSupport.unifiedMount != nil, TestSupport.needsRoot))
struct NetacctBPFKernelTests {
    static let campus = NetacctTopology.campusAddress
    static let internet = NetacctTopology.internetAddress
    static let campus6 = NetacctTopology.campusAddress6
    static let internet6 = NetacctTopology.internetAddress6
    static let port = String(NetacctTopology.port)

    static func options(_ job: String) -> [String] {
        ["--job", job, "--backend", "bpf", "--internal", NetacctTopology.internalNetworks6]
    }

    static func count(_ ad: ClassAd, _ name: String) -> Int { ad.integer(name).map { Int($0) } ?? -1 }

    @Test("UDP over IPv4 and IPv6 to internal and external hosts: the four counters exact, loopback not counted, nothing made in the network")
    func exactDualStack() throws {
        let (net, job) = try BPFTestSupport.topology(job: "bpfudp")
        defer { BPFTestSupport.remove(net, jobs: [job]) }
        let before = try net.nodeState()
        let adFile = net.directory.path + "/job.ad"
        let netnsFile = net.directory.path + "/netns"
        let actions = [
            "netns", netnsFile,
            "udp", Self.campus, Self.port, "7", "300", "1000",
            "udp", Self.internet, Self.port, "5", "200", "1400",
            "udp", Self.campus6, Self.port, "3", "500", "700",
            "udp", Self.internet6, Self.port, "4", "100", "1200",
            // Loopback is not the network: neither family is counted.
            "send", "127.0.0.1", "9", "6", "1000",
            "send", "::1", "9", "6", "1000",
        ]
        let result = try net.netacct(Self.options(job) + ["--ad-file", adFile, "--"] + NetacctTopology.client(actions))
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("udp \(Self.internet6) ok 4\n"), "\(result)")
        let ad = ClassAdReader.parse(try String(contentsOfFile: adFile, encoding: .utf8))
        // IPv4: payload + 8 (UDP) + 20; IPv6: payload + 8 + 40.
        #expect(Self.count(ad, "NetworkOutgoingInternal") == 7 * (300 + 28) + 3 * (500 + 48))
        #expect(Self.count(ad, "NetworkIncomingInternal") == 7 * (1000 + 28) + 3 * (700 + 48))
        #expect(Self.count(ad, "NetworkOutgoingExternal") == 5 * (200 + 28) + 4 * (100 + 48))
        #expect(Self.count(ad, "NetworkIncomingExternal") == 5 * (1400 + 28) + 4 * (1200 + 48))
        // The job ran in the node's own network namespace, and no link, rule or table was made there.
        #expect(try String(contentsOfFile: netnsFile, encoding: .utf8) == "net:[\(try BPFTestSupport.inode("/run/netns/\(net.node)"))]")
        try net.expectNothingLeft(since: before)
        #expect(!FileManager.default.fileExists(atPath: BPFTestSupport.cgroupPath(job: job)))
    }

    @Test("a job whose traffic comes from more cgroups than its counters map holds is still counted exactly")
    func moreCgroupsThanTheMapHolds() throws {
        let (net, job) = try BPFTestSupport.topology(job: "bpfspread")
        defer { BPFTestSupport.remove(net, jobs: [job]) }
        let adFile = net.directory.path + "/job.ad"
        // 300 cgroups of the job's subtree against the map's 256: the rest count in its overflow entry.
        let cgroups = Int(JB_NETACCT_JOB_MAX_CGROUPS) + 44
        let actions = ["spread", String(cgroups), Self.campus, Self.port, "100", "200"]
        let result = try net.netacct(Self.options(job) + ["--ad-file", adFile, "--"] + NetacctTopology.client(actions))
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("spread \(Self.campus) ok \(cgroups)\n"), "\(result)")
        let ad = ClassAdReader.parse(try String(contentsOfFile: adFile, encoding: .utf8))
        #expect(Self.count(ad, "NetworkOutgoingInternal") == cgroups * (100 + 28))
        #expect(Self.count(ad, "NetworkIncomingInternal") == cgroups * (200 + 28))
        #expect(!FileManager.default.fileExists(atPath: BPFTestSupport.cgroupPath(job: job)))
    }

    @Test("--deny-external over IPv4 and IPv6: external datagrams dropped (EPERM) and counted, internal ones answered")
    func denyExternal() throws {
        let (net, job) = try BPFTestSupport.topology(job: "bpfdeny")
        defer { BPFTestSupport.remove(net, jobs: [job]) }
        let actions = [
            "udp", Self.campus, Self.port, "2", "100", "100",
            "udp", Self.campus6, Self.port, "2", "100", "100",
            "send", Self.internet, Self.port, "3", "100",
            "send", Self.internet6, Self.port, "3", "100",
        ]
        let result = try net.netacct(Self.options(job) + ["--deny-external", "--"] + NetacctTopology.client(actions))
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("send \(Self.internet) refused 3\nsend \(Self.internet6) refused 3\n"), "\(result)")
        let ad = ClassAdReader.parse(result.stderr)
        #expect(Self.count(ad, "NetworkOutgoingInternal") == 2 * 128 + 2 * 148)
        #expect(Self.count(ad, "NetworkIncomingInternal") == 2 * 128 + 2 * 148)
        #expect(Self.count(ad, "NetworkOutgoingExternal") == 3 * 128 + 3 * 148)
        #expect(Self.count(ad, "NetworkIncomingExternal") == 0)
        #expect(net.serverLog(net.internet).isEmpty)
    }

    @Test("netacct killed with KILL: its programs go with it; --cleanup --stale removes the cgroup and the lease, and --show reads a live job")
    func killedThenCleanup() throws {
        let (net, job) = try BPFTestSupport.topology(job: "bpfkill")
        let alive = TestSupport.uniqueName("bpfalive")
        var runs: [BackgroundRun] = []
        defer {
            try? FileManager.default.createDirectory(atPath: net.directory.path + "/never", withIntermediateDirectories: true)
            for run in runs { _ = run.wait() }
            BPFTestSupport.remove(net, jobs: [job, alive])
        }
        let (survivor, _, _) = try NetacctKernelTests.startWaitingJob(net, job: alive, backend: "bpf")
        runs.append(survivor)
        let (run, _, netacct) = try NetacctKernelTests.startWaitingJob(net, job: job, backend: "bpf")
        let cgroup = BPFTestSupport.cgroupPath(job: job)
        let programs = try BPFTestSupport.attachedPrograms(cgroup)
        #expect(programs.count == 2, "\(programs)")
        let show = try BPFTestSupport.netacct(net, ["--show", "--job", alive])
        #expect(show.status == 0 && show.stdout.contains("JobboxNetworkBackend = \"bpf\""), "\(show)")
        kill(netacct, SIGKILL)
        #expect(run.wait().status == 137)
        // The links died with netacct: nothing is attached and the programs are gone from the kernel.
        #expect(try BPFTestSupport.attachedPrograms(cgroup).isEmpty)
        let loaded = try TestSupport.run(["bpftool", "prog", "show"]).stdout
        for id in programs { #expect(!loaded.contains("\n\(id): ") && !loaded.hasPrefix("\(id): "), "program \(id) is still loaded") }
        #expect(net.leaseFiles().count == 2)
        let cleanup = try BPFTestSupport.netacct(net, ["--cleanup", "--stale"])
        #expect(cleanup.status == 0, "\(cleanup)")
        #expect(cleanup.stderr.contains("removed the accounting of job \(job)"), "\(cleanup)")
        #expect(!FileManager.default.fileExists(atPath: cgroup))
        #expect(FileManager.default.fileExists(atPath: BPFTestSupport.cgroupPath(job: alive)))
        #expect(net.leaseFiles() == [BPFJobCgroup.madeName(for: try JobID(alive)) + ".lease"])
        try FileManager.default.createDirectory(atPath: net.directory.path + "/never", withIntermediateDirectories: false)
        #expect(survivor.wait().status == 0)
        runs = []
        #expect(net.leaseFiles().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: BPFTestSupport.cgroupPath(job: alive)))
    }

    @Test("20 jobs at once: each one's counters are its own")
    func twentyJobsAtOnce() throws {
        let (net, prefix) = try BPFTestSupport.topology(job: "bpfmany")
        let count = 20
        defer { BPFTestSupport.remove(net, jobs: (0..<count).map { "\(prefix)\($0)" }) }
        let go = net.directory.path + "/go"
        var runs: [BackgroundRun] = []
        for index in 0..<count {
            let host = index % 2 == 0 ? Self.campus : Self.campus6
            let actions = [
                "pidfile", "\(net.directory.path)/started\(index)", "wait", go, "udp", host, Self.port, "\(index + 1)", "\(100 + index)", "\(200 + index)",
            ]
            runs.append(
                try BackgroundRun(
                    net.netacctArguments(
                        Self.options("\(prefix)\(index)") + ["--ad-file", "\(net.directory.path)/job\(index).ad", "--"] + NetacctTopology.client(actions))))
        }
        for index in 0..<count { try waitForFile("\(net.directory.path)/started\(index)") }
        try "".write(toFile: go, atomically: false, encoding: .utf8)
        for (index, result) in runs.map({ $0.wait() }).enumerated() {
            #expect(result.status == 0, "job \(index): \(result)")
            let ad = ClassAdReader.parse(try String(contentsOfFile: "\(net.directory.path)/job\(index).ad", encoding: .utf8))
            let header = index % 2 == 0 ? 28 : 48
            #expect(Self.count(ad, "NetworkOutgoingInternal") == (index + 1) * (100 + index + header), "job \(index)")
            #expect(Self.count(ad, "NetworkIncomingInternal") == (index + 1) * (200 + index + header), "job \(index)")
            #expect(Self.count(ad, "NetworkOutgoingExternal") == 0 && Self.count(ad, "NetworkIncomingExternal") == 0, "job \(index)")
        }
        #expect(net.leaseFiles().isEmpty)
    }
}

/// Where the bpf back end puts a test's jobs, and the clean-up of what a failed test left there.
enum BPFTestSupport {
    /// The cgroup2 mount point, nil when there is none.
    static let unifiedMount: String? = {
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count, fields[dash + 1] == "cgroup2" { return String(fields[4]) }
        }
        return nil
    }()

    /// This process's own unified cgroup, which netacct inherits.
    static func ownCgroup() -> String {
        let own =
            ((try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? "")
            .split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) } ?? "/"
        return (unifiedMount ?? "") + (own == "/" ? "" : own)
    }

    /// The bpf back end's leases in `stateDirectory`, as netacct keeps them.
    static func leases(stateDirectory: String) throws -> BPFJobLeases {
        BPFJobLeases(JobNetworkLeases(stateDirectory: stateDirectory, subnet: try #require(IPv4Network(parsing: "10.213.0.0/16"))))
    }

    /// The directory netacct makes for `job`: below this process's own unified cgroup.
    static func cgroupPath(job: String) -> String {
        ownCgroup() + "/" + ((try? JobID(job)).map { BPFJobCgroup.madeName(for: $0) } ?? job)
    }

    /// Kills what is left in `job`'s cgroup and removes it (a failed test's leftovers; nothing when it is gone).
    static func removeCgroup(job: String) {
        let path = cgroupPath(job: job)
        guard FileManager.default.fileExists(atPath: path) else { return }
        try? "1".write(toFile: path + "/cgroup.kill", atomically: false, encoding: .utf8)
        for _ in 0..<500 where rmdir(path) != 0 { usleep(10_000) }
    }

    /// Removes cg-exec's base cgroup `base` (its jobs removed already) below this process's cgroup in every hierarchy.
    static func removeBase(_ base: String) {
        guard let layout = try? CgroupLayout.current(), let membership = try? CgroupMembership.read() else { return }
        for hierarchy in layout.hierarchies {
            if let own = layout.directory(of: membership, in: hierarchy) { _ = rmdir(own + "/" + base) }
        }
    }

    /// The ids of the programs attached to the cgroup at `path` (none once it is gone).
    static func attachedPrograms(_ path: String) throws -> [String] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let result = try TestSupport.run(["bpftool", "cgroup", "show", path])
        guard result.status == 0 else { throw TestFailure("bpftool cgroup show \(path): \(result)") }
        return result.stdout.split(separator: "\n").compactMap { line in line.split(separator: " ").first.flatMap { Int($0) }.map(String.init) }
    }

    /// A topology with its servers started, and a unique job id starting with `prefix`.
    static func topology(job prefix: String) throws -> (NetacctTopology, String) {
        let net = try NetacctTopology()
        do {
            try net.startServers()
        } catch {
            net.remove()
            throw error
        }
        return (net, TestSupport.uniqueName(prefix))
    }

    /// Removes what a test made, also after a failure: the jobs' cgroups (and what runs in them), then `net`.
    static func remove(_ net: NetacctTopology, jobs: [String]) {
        for job in jobs { removeCgroup(job: job) }
        net.remove()
    }

    /// Runs netacct in the node's network namespace but the host's mounts, where the cgroup2 mount is (`ip netns
    /// exec` mounts a fresh /sys without it), as `--show` and `--cleanup` of bpf jobs need.
    static func netacct(_ net: NetacctTopology, _ arguments: [String]) throws -> TestSupport.Result {
        try TestSupport.run(["nsenter", "--net=/run/netns/\(net.node)", TestSupport.tool("netacct"), "--config", net.configPath] + arguments)
    }

    /// The inode of `path`.
    static func inode(_ path: String) throws -> UInt64 {
        var info = stat()
        guard stat(path, &info) == 0 else { throw TestFailure("cannot stat \(path)") }
        return UInt64(info.st_ino)
    }
}

extension NetacctBPFKernelTests {
    @Test("10 MiB each way over TCP, sent as GSO super-packets, matches the IP bytes on the campus link within 0.1%")
    func tcpMatchesTheWire() throws {
        let (net, job) = try BPFTestSupport.topology(job: "bpftcp")
        defer { BPFTestSupport.remove(net, jobs: [job]) }
        // A veth passes GSO super-packets whole and counts them as one; with TSO off they are cut into wire-sized
        // segments before it (in software, after netacct's egress program saw the super-packet), so the link's
        // counters are what a capture on a real wire would add up.
        for (namespace, link) in [(net.node, "c0"), (net.campus, "c1")] {
            let result = try net.exec(namespace, ["ethtool", "-K", link, "tso", "off", "gro", "off"])
            guard result.status == 0 else { throw TestFailure("ethtool: \(result)") }
        }
        let size = 10 * 1024 * 1024
        let before = try BPFTestSupport.linkIPBytes(net, net.campus, "c1")
        let result = try net.netacct(Self.options(job) + ["--"] + NetacctTopology.client(["tcp", Self.campus, Self.port, "\(size)", "\(size)"]))
        let after = try BPFTestSupport.linkIPBytes(net, net.campus, "c1")
        #expect(result.status == 0, "\(result)")
        let ad = ClassAdReader.parse(result.stderr)
        // What the campus end received is what the job sent, and the other way round.
        let wireOut = Double(after.received - before.received)
        let wireIn = Double(after.sent - before.sent)
        let outgoing = Double(Self.count(ad, "NetworkOutgoingInternal"))
        let incoming = Double(Self.count(ad, "NetworkIncomingInternal"))
        #expect(abs(outgoing - wireOut) <= wireOut * 0.001, "counted \(outgoing), wire \(wireOut)")
        #expect(abs(incoming - wireIn) <= wireIn * 0.001, "counted \(incoming), wire \(wireIn)")
        #expect(outgoing >= Double(size) && incoming >= Double(size))
    }
}

extension BPFTestSupport {
    /// The IP bytes a link has received and sent: its byte counters less 14 bytes of Ethernet header a packet.
    static func linkIPBytes(_ net: NetacctTopology, _ namespace: String, _ link: String) throws -> (received: Int, sent: Int) {
        func read(_ name: String) throws -> Int {
            let result = try net.exec(namespace, ["cat", "/sys/class/net/\(link)/statistics/\(name)"])
            guard result.status == 0, let value = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw TestFailure("\(name) of \(link): \(result)")
            }
            return value
        }
        return (try read("rx_bytes") - 14 * read("rx_packets"), try read("tx_bytes") - 14 * read("tx_packets"))
    }
}

extension NetacctBPFKernelTests {
    @Test("Hostile: netacct in a cgroup delegated to a user refuses to make the job's cgroup there: 125, one line, nothing made")
    func delegatedParentRefused() throws {
        let net = try NetacctTopology()
        let parent = BPFTestSupport.ownCgroup() + "/" + TestSupport.uniqueName("bpfdelegated")
        let job = TestSupport.uniqueName("bpfhostile")
        defer {
            _ = rmdir(parent + "/netacct_" + job)
            _ = rmdir(parent)
            net.remove()
        }
        guard mkdir(parent, 0o755) == 0, chown(parent, 65534, 65534) == 0 else { throw TestFailure("cannot make \(parent)") }
        // The shell moves itself into the user's cgroup, then becomes netacct (which the job's user could race).
        let command = "echo $$ > \(parent)/cgroup.procs && exec \"$@\""
        let result = try TestSupport.run(["sh", "-c", command, "sh"] + net.netacctArguments(Self.options(job) + ["--", "true"]))
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr.hasPrefix("netacct: cannot make the job's cgroup \(parent):"), "\(result)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent).allSatisfy { !$0.hasPrefix("netacct_") })
        #expect(net.leaseFiles().isEmpty)
    }
}

extension NetacctBPFKernelTests {
    @Test("Hostile: a leases directory (STATE_DIR/netacct/bpf) another user owns is refused before anything is made: 125, one line")
    func foreignLeaseDirectoryRefused() throws {
        let net = try NetacctTopology()
        let job = TestSupport.uniqueName("bpfstate")
        defer { BPFTestSupport.remove(net, jobs: [job]) }
        let directory = net.state.path + "/netacct/bpf"
        #expect(mkdir(net.state.path + "/netacct", 0o755) == 0 && mkdir(directory, 0o755) == 0)
        guard chown(directory, 65534, 65534) == 0 else { throw TestFailure("cannot chown \(directory)") }
        let result = try net.netacct(Self.options(job) + ["--", "true"])
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr == "netacct: cannot use state directory \(directory): \(directory) is owned by uid 65534, not root\n", "\(result)")
        #expect(!FileManager.default.fileExists(atPath: BPFTestSupport.cgroupPath(job: job)))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
    }
}

extension NetacctBPFKernelTests {
    @Test("netacct in a cgroup namespace whose root is below the unified mount's refuses: 125, one line, no cgroup made at the mount's root")
    func cgroupNamespaceRefused() throws {
        let net = try NetacctTopology()
        let parent = BPFTestSupport.ownCgroup() + "/" + TestSupport.uniqueName("bpfcgns")
        let job = TestSupport.uniqueName("bpfcgns")
        let mount = try #require(BPFTestSupport.unifiedMount)
        let name = BPFJobCgroup.madeName(for: try JobID(job))
        defer {
            _ = rmdir(mount + "/" + name)
            _ = rmdir(parent + "/" + name)
            _ = rmdir(parent)
            net.remove()
        }
        guard mkdir(parent, 0o755) == 0 else { throw TestFailure("cannot make \(parent)") }
        // In its own cgroup namespace /proc/self/cgroup says "0::/", which read against the whole tree's mount
        // would be its root: the mount table says the mount shows more than the namespace, so nothing is there.
        let command = "echo $$ > \(parent)/cgroup.procs && exec unshare --cgroup \"$@\""
        let result = try TestSupport.run(["sh", "-c", command, "sh"] + net.netacctArguments(Self.options(job) + ["--", "true"]))
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr == "netacct: cannot count job \(job): netacct's own cgroup2 cgroup is outside what \(mount) shows\n", "\(result)")
        #expect(!FileManager.default.fileExists(atPath: mount + "/" + name))
        #expect(!FileManager.default.fileExists(atPath: parent + "/" + name))
        #expect(net.leaseFiles().isEmpty)
    }
}

extension NetacctBPFKernelTests {
    @Test("inside cg-exec's job (its unified job_<id>/main) the programs sit on job_<id>, which netacct neither makes nor removes")
    func insideCgExec() throws {
        let (net, job) = try BPFTestSupport.topology(job: "bpfcg")
        // cg-exec with a base cgroup of this test's own, below the test process's cgroups.
        let base = TestSupport.uniqueName("jbbpfcg")
        let cgExecConfig = net.directory.path + "/cg-exec.conf"
        try "BASE_CGROUP = \(base)\nCGROUP_PARENT = self\n".write(toFile: cgExecConfig, atomically: true, encoding: .utf8)
        defer {
            try? FileManager.default.createDirectory(atPath: net.directory.path + "/never", withIntermediateDirectories: true)
            _ = try? TestSupport.run([TestSupport.tool("cg-exec"), "--config", cgExecConfig, "--remove", "--job", job])
            BPFTestSupport.removeBase(base)
            BPFTestSupport.remove(net, jobs: [job])
        }
        let adFile = net.directory.path + "/job.ad"
        let pidFile = net.directory.path + "/pids"
        let actions = [
            "udp", Self.campus, Self.port, "3", "200", "400", "udp", Self.internet6, Self.port, "2", "100", "300",
            "pidfile", pidFile, "wait", net.directory.path + "/never",
        ]
        let run = try BackgroundRun(
            [TestSupport.tool("cg-exec"), "--config", cgExecConfig, "--job", job, "--"]
                + net.netacctArguments(Self.options(job) + ["--ad-file", adFile, "--"] + NetacctTopology.client(actions)))
        try waitForFile(pidFile)
        let jobDirectory = BPFTestSupport.ownCgroup() + "/\(base)/" + (try JobID(job)).cgroupName
        #expect(try BPFTestSupport.attachedPrograms(jobDirectory).count == 2)
        #expect(try BPFTestSupport.attachedPrograms(jobDirectory + "/main").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: jobDirectory + "/main").allSatisfy { !$0.hasPrefix("netacct_") })
        try FileManager.default.createDirectory(atPath: net.directory.path + "/never", withIntermediateDirectories: false)
        let result = run.wait()
        #expect(result.status == 0, "\(result)")
        let ad = ClassAdReader.parse(try String(contentsOfFile: adFile, encoding: .utf8))
        #expect(Self.count(ad, "NetworkOutgoingInternal") == 3 * 228)
        #expect(Self.count(ad, "NetworkIncomingInternal") == 3 * 428)
        #expect(Self.count(ad, "NetworkOutgoingExternal") == 2 * 148)
        #expect(Self.count(ad, "NetworkIncomingExternal") == 2 * 348)
        #expect(try BPFTestSupport.attachedPrograms(jobDirectory).isEmpty)
        #expect(net.leaseFiles().isEmpty)
    }
}

extension NetacctBPFKernelTests {
    @Test("Hostile: --cleanup --stale removes a dead run's cgroup only when its inode is the recorded id")
    func cleanupChecksTheCgroupID() throws {
        let net = try NetacctTopology()
        let job = TestSupport.uniqueName("bpfid")
        defer { BPFTestSupport.remove(net, jobs: [job]) }
        let cgroup = BPFTestSupport.cgroupPath(job: job)
        guard mkdir(cgroup, 0o755) == 0 else { throw TestFailure("cannot make \(cgroup)") }
        let id = try BPFTestSupport.inode(cgroup)
        let leases = try BPFTestSupport.leases(stateDirectory: net.state.path)
        // A dead owner: this process's pid with a start time it never had.
        let dead = ProcessIdentity(pid: getpid(), startTime: 1)
        let made = BPFJobCgroup(path: cgroup, made: true)
        // Another cgroup of the same name than the one recorded (a new run's): left alone, the lease kept.
        try leases.write(BPFJobLease(job: job, owner: dead, cgroup: made, cgroupID: id + 1, countersMapID: 1))
        let refused = try BPFTestSupport.netacct(net, ["--cleanup", "--stale"])
        #expect(refused.stderr.contains("refusing to remove cgroup \(cgroup): it is not the one netacct made"), "\(refused)")
        #expect(FileManager.default.fileExists(atPath: cgroup))
        #expect(net.leaseFiles().count == 1)
        try leases.write(BPFJobLease(job: job, owner: dead, cgroup: made, cgroupID: id, countersMapID: 1))
        let removed = try BPFTestSupport.netacct(net, ["--cleanup", "--stale"])
        #expect(removed.status == 0 && removed.stderr.contains("removed the accounting of job \(job)"), "\(removed)")
        #expect(!FileManager.default.fileExists(atPath: cgroup))
        #expect(net.leaseFiles().isEmpty)
    }
}

extension NetacctBPFKernelTests {
    @Test("A run takes its cgroup's lease by reading that one file: a live one is refused, a stale one reclaimed, others never read")
    func leaseOfOneCgroup() throws {
        let net = try NetacctTopology()
        let job = TestSupport.uniqueName("bpfls")
        defer { BPFTestSupport.remove(net, jobs: [job]) }
        let leases = try BPFTestSupport.leases(stateDirectory: net.state.path)
        let cgroup = BPFJobCgroup(path: BPFTestSupport.cgroupPath(job: job), made: true)
        let other = BPFJobCgroup(path: BPFTestSupport.cgroupPath(job: job + "x"), made: true)
        // Another job's lease, unreadable: acquiring this job's cgroup never looks at it.
        try leases.write(BPFJobLease(job: job + "x", owner: .current, cgroup: other, cgroupID: 7, countersMapID: 1))
        try "garbage".write(toFile: net.state.path + "/netacct/bpf/" + GuardedPath.split(other.path).1 + ".lease", atomically: false, encoding: .utf8)
        let live = try leases.acquire(job: try JobID(job), cgroup: cgroup, countersMapID: 1) { _ in
            Issue.record("nothing is stale")
            return true
        }
        #expect(throws: JobboxError.self) {
            try leases.acquire(job: try JobID(job), cgroup: cgroup, countersMapID: 1) { _ in true }
        }
        // Its owner dies (a start time it never had): the next run reclaims it.
        var dead = live
        dead.owner = ProcessIdentity(pid: getpid(), startTime: 1)
        try leases.write(dead)
        var reclaimed: [String] = []
        let again = try leases.acquire(job: try JobID(job), cgroup: cgroup, countersMapID: 2) { lease in
            reclaimed.append(lease.job)
            return true
        }
        #expect(reclaimed == [job] && again.owner == .current && again.countersMapID == 2)
        leases.release(again)
        try? FileManager.default.removeItem(atPath: net.state.path + "/netacct/bpf/" + GuardedPath.split(other.path).1 + ".lease")
    }
}

/// The lease operations of a run, each in its state directories opened for the call (a run opens them once).
extension BPFJobLeases {
    func acquire(job: JobID, cgroup: BPFJobCgroup, countersMapID: UInt32, reclaim: (BPFJobLease) -> Bool) throws(JobboxError) -> BPFJobLease {
        let opened = try BPFLeaseDirectory.open(network)
        defer { opened.close() }
        return try acquire(job: job, cgroup: cgroup, countersMapID: countersMapID, in: opened, reclaim: reclaim)
    }

    func write(_ lease: BPFJobLease) throws(JobboxError) {
        let opened = try BPFLeaseDirectory.open(network)
        defer { opened.close() }
        try write(lease, in: opened.leases)
    }
}
