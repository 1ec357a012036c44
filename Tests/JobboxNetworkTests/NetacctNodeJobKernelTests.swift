import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxNetwork

/// `netacct --backend bpf` below a node service's cgroup: counted by the service's programs (nothing loaded,
/// nothing attached to the job's cgroup), or by its own when it asks for what they cannot give.
@Suite("netacct --backend bpf counted by the node service", .enabled(if: TestSupport.isRoot && BPFTestSupport.unifiedMount != nil, TestSupport.needsRoot))
struct NetacctNodeJobKernelTests {
    typealias Node = NetacctNodeKernelTests

    /// Traffic to all four kinds of host, 3 datagrams of 200 bytes each answered by 400, and to loopback.
    static let traffic = Node.mixedTraffic(3, 200, 400) + ["send", "127.0.0.1", "9", "5", "1000"]

    /// Starts a bpf job `job` of netacct (`extra` options, verbose) in cgroup `jobs` below the bed's accounting
    /// cgroup; returns the run, netacct's pid and the job's cgroup directory once its traffic is sent.
    static func start(_ bed: NodeBed, job: String, extra: [String] = [], traffic: [String] = traffic, go: String) throws -> (
        BackgroundRun, netacct: Int32, cgroup: String
    ) {
        let pidFile = bed.net.directory.path + "/\(job).pids"
        let netacct = [TestSupport.tool("netacct"), "--config", bed.configPath, "--job", job, "--backend", "bpf", "-v"] + extra
        let run = try BackgroundRun(bed.command(in: "jobs", netacct + ["--"] + NetacctTopology.client(traffic + ["pidfile", pidFile, "wait", go])))
        try waitForFile(pidFile)
        let pids = try String(contentsOfFile: pidFile, encoding: .utf8).split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }
        guard pids.count == 2 else { throw TestFailure("bad pid file: \(pids)") }
        return (run, pids[1], bed.directory + "/jobs/" + BPFJobCgroup.madeName(for: try JobID(job)))
    }

    /// A bed with cgroup `jobs` below its accounting cgroup and its service running (removed again on failure).
    static func servedBed() throws -> NodeBed {
        let bed = try NodeBed()
        do {
            try bed.makeCgroups(["jobs"])
            try bed.startService()
        } catch {
            bed.remove()
            throw error
        }
        return bed
    }

    @Test(
        "below the node's cgroup with its networks: exact over IPv4 and IPv6, no program on the job's cgroup, --show reads the node's entry, which goes after")
    func countedByTheNode() throws {
        let bed = try Self.servedBed()
        defer { bed.remove() }
        let job = TestSupport.uniqueName("bpfnode")
        let go = bed.net.directory.path + "/go"
        let (run, _, cgroup) = try Self.start(bed, job: job, go: go)
        defer { try? "".write(toFile: go, atomically: false, encoding: .utf8) }
        let id = try BPFTestSupport.inode(cgroup)
        #expect(try BPFTestSupport.attachedPrograms(cgroup).isEmpty)
        #expect(try BPFTestSupport.attachedPrograms(bed.directory).count == 2)
        let show = try bed.netacct(["--show", "--job", job])
        #expect(show.status == 0, "\(show)")
        Node.expectMixed(ClassAdReader.parse(show.stdout), 3, 200, 400, "--show")
        #expect(try bed.pinnedIDs().contains(id))
        try "".write(toFile: go, atomically: false, encoding: .utf8)
        let result = run.wait()
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.contains("backend bpf: counted by the node service's programs"), "\(result)")
        Node.expectMixed(ClassAdReader.parse(result.stderr), 3, 200, 400, "final ad")
        #expect(!FileManager.default.fileExists(atPath: cgroup))
        #expect(bed.net.leaseFiles().isEmpty)
        #expect(try !bed.pinnedIDs().contains(id), "the job's entry is still in the node's map")
    }

    @Test("--deny-external, or other --internal networks than the node's: the job's own programs, on its cgroup, still exact", arguments: [true, false])
    func ownProgramsWhenAsked(denyExternal: Bool) throws {
        let bed = try Self.servedBed()
        defer { bed.remove() }
        let job = TestSupport.uniqueName("bpfown")
        let go = bed.net.directory.path + "/go"
        // The node's networks less fd00::/8: the IPv6 campus is external to this job.
        let extra = denyExternal ? ["--deny-external"] : ["--internal", NetacctTopology.internalNetworks]
        // Denied, an external datagram fails at once (EPERM): sent without waiting for an answer.
        let denied =
            [Node.campus, Node.campus6].flatMap { ["udp", $0, Node.port, "3", "200", "400"] }
            + [Node.internet, Node.internet6].flatMap { ["send", $0, Node.port, "3", "200"] }
        let (run, _, cgroup) = try Self.start(bed, job: job, extra: extra, traffic: denyExternal ? denied : Self.traffic, go: go)
        defer { try? "".write(toFile: go, atomically: false, encoding: .utf8) }
        #expect(try BPFTestSupport.attachedPrograms(cgroup).count == 2)
        try "".write(toFile: go, atomically: false, encoding: .utf8)
        let result = run.wait()
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.contains("backend bpf: loading the job's own programs; the node service's do not count it: "), "\(result)")
        let ad = ClassAdReader.parse(result.stderr)
        if denyExternal {
            // External datagrams are dropped (counted going out, refused, never answered).
            #expect(result.stdout.contains("send \(Node.internet) refused 3\nsend \(Node.internet6) refused 3\n"), "\(result)")
            #expect(Node.count(ad, "NetworkOutgoingInternal") == 3 * 228 + 3 * 248)
            #expect(Node.count(ad, "NetworkIncomingInternal") == 3 * 428 + 3 * 448)
            #expect(Node.count(ad, "NetworkOutgoingExternal") == 3 * 228 + 3 * 248)
            #expect(Node.count(ad, "NetworkIncomingExternal") == 0)
        } else {
            #expect(Node.count(ad, "NetworkOutgoingInternal") == 3 * 228)
            #expect(Node.count(ad, "NetworkIncomingInternal") == 3 * 428)
            #expect(Node.count(ad, "NetworkOutgoingExternal") == 3 * 228 + 2 * 3 * 248)
            #expect(Node.count(ad, "NetworkIncomingExternal") == 3 * 428 + 2 * 3 * 448)
        }
        #expect(bed.net.leaseFiles().isEmpty)
    }

    @Test("netacct counted by the node killed with KILL: --cleanup --stale removes its cgroup and lease and leaves the node's pins and links")
    func killedThenCleanup() throws {
        let bed = try Self.servedBed()
        defer { bed.remove() }
        let job = TestSupport.uniqueName("bpfnodekill")
        let go = bed.net.directory.path + "/go"
        let (run, netacct, cgroup) = try Self.start(bed, job: job, go: go)
        defer { try? "".write(toFile: go, atomically: false, encoding: .utf8) }
        let links = try BPFTestSupport.attachedPrograms(bed.directory)
        #expect(try BPFTestSupport.attachedPrograms(cgroup).isEmpty)
        kill(netacct, SIGKILL)
        #expect(run.wait().status == 137)
        #expect(bed.net.leaseFiles().count == 1)
        let cleanup = try bed.netacct(["--cleanup", "--stale"])
        #expect(cleanup.status == 0 && cleanup.stderr.contains("removed the accounting of job \(job)"), "\(cleanup)")
        #expect(cleanup.stderr.contains("netacct --node runs"), "\(cleanup)")
        #expect(!FileManager.default.fileExists(atPath: cgroup))
        #expect(bed.net.leaseFiles().isEmpty)
        for pin in ["counters", "egress", "ingress"] { #expect(FileManager.default.fileExists(atPath: bed.pinDirectory + "/" + pin)) }
        #expect(try BPFTestSupport.attachedPrograms(bed.directory) == links && links.count == 2)
    }
}
