import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxNetwork

/// netacct on the real kernel, for both firewall back ends, inside namespaces the tests make (see
/// `NetacctTopology`): exact byte counts, TCP within a bounded overhead, 20 jobs at once, kills, cleanup,
/// `--deny-external`, `--show`, and nothing left behind.
@Suite("netacct on the kernel", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct NetacctKernelTests {
    static let backends = ["iptables", "nftables"]
    static let campus = NetacctTopology.campusAddress
    static let internet = NetacctTopology.internetAddress
    static let port = String(NetacctTopology.port)

    /// The options every run here shares.
    static func options(_ job: String, _ backend: String) -> [String] {
        ["--job", job, "--backend", backend, "--internal", NetacctTopology.internalNetworks]
    }

    /// An integer attribute as `Int` (-1 when missing), so comparisons with plain arithmetic type-check as intended.
    static func count(_ ad: ClassAd, _ name: String) -> Int {
        ad.integer(name).map { Int($0) } ?? -1
    }

    static func ad(_ path: String) throws -> ClassAd {
        ClassAdReader.parse(try String(contentsOfFile: path, encoding: .utf8))
    }

    @Test("UDP to a campus and an internet host: each counter is exactly payload + 28 bytes per datagram", arguments: backends + ["bpf"])
    func exactUDPCounts(backend: String) throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        try net.startServers()
        let before = try net.nodeState()
        let adFile = net.directory.path + "/job.ad"
        let result = try net.netacct(
            Self.options("udp.\(backend)", backend) + ["--ad-file", adFile, "--"]
                + NetacctTopology.client(["udp", Self.campus, Self.port, "7", "300", "1000", "udp", Self.internet, Self.port, "5", "200", "1400"]))
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "udp \(Self.campus) ok 7\nudp \(Self.internet) ok 5\n")
        let ad = try Self.ad(adFile)
        #expect(Self.count(ad, "NetworkOutgoingInternal") == 7 * (300 + 28))
        #expect(Self.count(ad, "NetworkIncomingInternal") == 7 * (1000 + 28))
        #expect(Self.count(ad, "NetworkOutgoingExternal") == 5 * (200 + 28))
        #expect(Self.count(ad, "NetworkIncomingExternal") == 5 * (1400 + 28))
        #expect(Self.count(ad, "NetworkOutgoing") == 7 * 328 + 5 * 228)
        #expect(Self.count(ad, "NetworkIncoming") == 7 * 1028 + 5 * 1428)
        if HTCondorClassAds.available {
            let parsed = try HTCondorClassAds.parse(try String(contentsOfFile: adFile, encoding: .utf8))
            #expect(parsed.first?["NetworkOutgoingExternal"] == HTCondorClassAds.Parsed(type: "int", value: "\(5 * 228)"))
            #expect(parsed.first?.count == 6)
        }
        // The servers saw the job's traffic come from the node (masqueraded), not from the job's private address.
        #expect(net.serverLog(net.campus).split(separator: "\n").allSatisfy { $0 == "udp 172.20.0.1 300" })
        #expect(net.serverLog(net.internet).split(separator: "\n").count == 5)
        try net.expectNothingLeft(since: before)
    }

    @Test("10 MiB each way over TCP is counted within the TCP/IP header overhead; the final ad goes to stderr", arguments: backends)
    func tcpTransfer(backend: String) throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        try net.startServers()
        let size = 10 * 1024 * 1024
        let result = try net.netacct(
            Self.options("tcp.\(backend)", backend) + ["--"] + NetacctTopology.client(["tcp", Self.campus, Self.port, "\(size)", "\(size)"]))
        #expect(result.status == 0, "\(result)")
        let ad = ClassAdReader.parse(result.stderr)
        // Payload: the 16-byte request header plus the upload one way, the download the other. Overhead: at most
        // 52 bytes (IP 20, TCP 20, timestamps 12) per segment at the 1448-byte MSS of a 1500-byte MTU, for the
        // data segments of both directions (each direction carries the other's ACKs, at most one per segment),
        // plus the handshake and teardown.
        let up = UInt64(size + 16)
        let down = UInt64(size)
        let segments = (up + 1447) / 1448 + (down + 1447) / 1448 + 10
        let overhead = 52 * segments
        let outgoing = UInt64(clamping: ad.integer("NetworkOutgoingInternal") ?? 0)
        let incoming = UInt64(clamping: ad.integer("NetworkIncomingInternal") ?? 0)
        #expect(outgoing >= up && outgoing <= up + overhead, "outgoing \(outgoing), payload \(up), bound \(overhead)")
        #expect(incoming >= down && incoming <= down + overhead, "incoming \(incoming), payload \(down), bound \(overhead)")
        #expect(Self.count(ad, "NetworkOutgoingExternal") == 0)
        #expect(Self.count(ad, "NetworkIncomingExternal") == 0)
        #expect(net.serverLog(net.campus) == "tcp 172.20.0.1 \(size)\n")
    }

    @Test("20 jobs at once get distinct addresses, their counters do not mix, and the node is left as it was", arguments: backends)
    func twentyJobsAtOnce(backend: String) throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        try net.startServers()
        let before = try net.nodeState()
        let count = 20
        let go = net.directory.path + "/go"
        var runs: [BackgroundRun] = []
        for index in 0..<count {
            // Each job reports its address, then waits until all 20 run, so they overlap for certain.
            let actions = [
                "address", "pidfile", "\(net.directory.path)/started\(index)", "wait", go,
                "udp", Self.campus, Self.port, "\(index + 1)", "\(100 + index)", "\(200 + index)",
            ]
            runs.append(
                try BackgroundRun(
                    net.netacctArguments(
                        Self.options("many\(index).\(backend)", backend) + ["--ad-file", "\(net.directory.path)/job\(index).ad", "--"]
                            + NetacctTopology.client(actions))))
        }
        for index in 0..<count { try waitForFile("\(net.directory.path)/started\(index)") }
        #expect(net.leaseFiles().count == count)
        try "".write(toFile: go, atomically: false, encoding: .utf8)
        let results = runs.map { $0.wait() }
        var addresses: Set<String> = []
        for (index, result) in results.enumerated() {
            #expect(result.status == 0, "job \(index): \(result)")
            let address = result.stdout.split(separator: "\n").first { $0.hasPrefix("address ") }.map { String($0.dropFirst(8)) }
            if let address { addresses.insert(address) }
            let ad = try Self.ad("\(net.directory.path)/job\(index).ad")
            #expect(Self.count(ad, "NetworkOutgoingInternal") == (index + 1) * (100 + index + 28), "job \(index)")
            #expect(Self.count(ad, "NetworkIncomingInternal") == (index + 1) * (200 + index + 28), "job \(index)")
            #expect(Self.count(ad, "NetworkOutgoingExternal") == 0)
            #expect(Self.count(ad, "NetworkIncomingExternal") == 0)
        }
        #expect(addresses.count == count, "\(addresses.sorted())")
        #expect(addresses.allSatisfy { IPv4Network(parsing: "10.213.0.0/16")?.contains(IPv4Address(parsing: $0) ?? IPv4Address(0)) == true })
        try net.expectNothingLeft(since: before)
    }

    /// Starts a job that writes its pid and netacct's to a file and then waits forever; returns the run and the pids.
    static func startWaitingJob(_ net: NetacctTopology, job: String, backend: String, extra: [String] = []) throws -> (
        BackgroundRun, job: Int32, netacct: Int32
    ) {
        let pidFile = net.directory.path + "/\(job).pids"
        let run = try BackgroundRun(
            net.netacctArguments(
                options(job, backend) + extra + ["--"] + NetacctTopology.client(["pidfile", pidFile, "wait", net.directory.path + "/never"])))
        try waitForFile(pidFile)
        let pids = try String(contentsOfFile: pidFile, encoding: .utf8).split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }
        guard pids.count == 2 else { throw TestFailure("bad pid file: \(pids)") }
        return (run, pids[0], pids[1])
    }

    /// Who gets which signal: KILL to the job (netacct reports 137), TERM to netacct (forwarded; 143).
    enum Ending: String, CaseIterable, Sendable {
        case jobKilled
        case netacctTerminated
    }

    @Test(
        "a job killed with KILL, or netacct sent TERM (forwarded to the job): status 128+N, everything removed",
        arguments: backends, Ending.allCases)
    func jobEnds(backend: String, ending: Ending) throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let before = try net.nodeState()
        let (run, job, netacct) = try Self.startWaitingJob(net, job: "\(ending.rawValue).\(backend)", backend: backend)
        #expect(try net.nodeState() != before)
        switch ending {
        case .jobKilled: kill(job, SIGKILL)
        case .netacctTerminated: kill(netacct, SIGTERM)
        }
        let result = run.wait()
        #expect(result.status == (ending == .jobKilled ? 137 : 143), "\(result)")
        try net.expectNothingLeft(since: before)
    }

    @Test("netacct killed with KILL leaves its objects and lease; --cleanup --stale removes exactly those", arguments: backends)
    func netacctKilledThenCleanup(backend: String) throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let before = try net.nodeState()
        // A live job beside the crashed one: cleanup must leave it alone.
        let (survivor, _, _) = try Self.startWaitingJob(net, job: "alive.\(backend)", backend: backend)
        let withSurvivor = try net.nodeState()
        let (run, _, netacct) = try Self.startWaitingJob(net, job: "crashed.\(backend)", backend: backend)
        kill(netacct, SIGKILL)
        #expect(run.wait().status == 137)
        #expect(net.leaseFiles().count == 2)
        #expect(try net.nodeState() != withSurvivor)
        let cleanup = try net.netacct(["--cleanup", "--stale"])
        #expect(cleanup.status == 0, "\(cleanup)")
        #expect(cleanup.stderr.contains("removed the network of job crashed.\(backend)"), "\(cleanup)")
        #expect(net.leaseFiles() == [JobNetworkNames(job: try JobID("alive.\(backend)")).interface + ".lease"])
        #expect(
            try net.nodeState().replacingOccurrences(of: #"[0-9]+: jb_"#, with: "N: jb_", options: .regularExpression)
                == withSurvivor.replacingOccurrences(of: #"[0-9]+: jb_"#, with: "N: jb_", options: .regularExpression))
        try FileManager.default.createDirectory(atPath: net.directory.path + "/never", withIntermediateDirectories: false)
        #expect(survivor.wait().status == 0)
        try net.expectNothingLeft(since: before)
    }

    @Test("the next run of a job whose netacct was killed reclaims the dead lease and removes its leftovers", arguments: backends)
    func deadLeaseReclaimed(backend: String) throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let before = try net.nodeState()
        let (run, _, netacct) = try Self.startWaitingJob(net, job: "again.\(backend)", backend: backend)
        kill(netacct, SIGKILL)
        #expect(run.wait().status == 137)
        #expect(net.leaseFiles().count == 1)
        let result = try net.netacct(Self.options("again.\(backend)", backend) + ["-v", "--"] + NetacctTopology.client(["address"]))
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.contains("removed the network of job again.\(backend) left by netacct pid \(netacct)"), "\(result)")
        #expect(result.stdout == "address 10.213.0.2\n")
        try net.expectNothingLeft(since: before)
    }

    @Test("--deny-external: the campus host answers, the internet host is unreachable and sees nothing", arguments: backends + ["bpf"])
    func denyExternal(backend: String) throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        try net.startServers()
        let before = try net.nodeState()
        let adFile = net.directory.path + "/job.ad"
        let result = try net.netacct(
            Self.options("deny.\(backend)", backend) + ["--deny-external", "--ad-file", adFile, "--"]
                + NetacctTopology.client(["udp", Self.campus, Self.port, "3", "100", "100", "refused", Self.internet, Self.port]))
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("udp \(Self.campus) ok 3"), "\(result)")
        #expect(result.stdout.contains("refused \(Self.internet) failed"), "\(result)")
        #expect(net.serverLog(net.campus).split(separator: "\n").count == 3)
        #expect(net.serverLog(net.internet).isEmpty)
        // The rejected SYN is still counted: external traffic is refused, not hidden.
        #expect((try Self.ad(adFile).integer("NetworkOutgoingExternal") ?? 0) > 0)
        #expect(try net.nodeState() == before)
    }

    @Test("--show prints live counters, the ad file is rewritten every interval, and the rules are the documented ones", arguments: backends)
    func showWhileRunning(backend: String) throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        try net.startServers()
        let job = "show.\(backend)"
        let adFile = net.directory.path + "/job.ad"
        let ready = net.directory.path + "/ready"
        let go = net.directory.path + "/go"
        let run = try BackgroundRun(
            net.netacctArguments(
                Self.options(job, backend) + ["--interval", "1", "--ad-file", adFile, "--"]
                    + NetacctTopology.client(["udp", Self.campus, Self.port, "4", "250", "500", "pidfile", ready, "wait", go])))
        try waitForFile(ready)
        // The job has sent everything and now waits: the next interval's ad has its counts.
        let deadline = Date().addingTimeInterval(30)
        var periodic = ClassAd()
        while Date() < deadline {
            if let text = try? String(contentsOfFile: adFile, encoding: .utf8) {
                periodic = ClassAdReader.parse(text)
                if Self.count(periodic, "NetworkOutgoingInternal") == 4 * 278 { break }
            }
            usleep(100_000)
        }
        #expect(Self.count(periodic, "NetworkOutgoingInternal") == 4 * 278)
        #expect(Self.count(periodic, "NetworkIncomingInternal") == 4 * 528)

        let show = try net.netacct(["--show", "--job", job])
        #expect(show.status == 0, "\(show)")
        let ad = ClassAdReader.parse(show.stdout)
        #expect(ad.string("JobboxJobId") == job)
        #expect(Self.count(ad, "NetworkOutgoingInternal") == 4 * 278)
        #expect(Self.count(ad, "NetworkIncomingInternal") == 4 * 528)
        #expect(ad.string("JobboxNetworkBackend") == backend)
        let all = try net.netacct(["--show", "--all"])
        #expect(all.status == 0)
        #expect(ClassAdReader.parseAll(all.stdout).map { $0.string("JobboxJobId") } == [job])
        if HTCondorClassAds.available {
            #expect(try HTCondorClassAds.parse(all.stdout).first?["NetworkIncomingInternal"] == HTCondorClassAds.Parsed(type: "int", value: "\(4 * 528)"))
        }
        try expectDocumentedRules(net, backend: backend)

        try "".write(toFile: go, atomically: false, encoding: .utf8)
        let result = run.wait()
        #expect(result.status == 0, "\(result)")
        #expect(Self.count(try Self.ad(adFile), "NetworkOutgoingInternal") == 4 * 278)
        let gone = try net.netacct(["--show", "--job", job])
        #expect(gone.status == 125)
    }

    /// The job `show.<backend>`'s rules, as `iptables-legacy-save` and `nft` print them (the man page shows the same).
    func expectDocumentedRules(_ net: NetacctTopology, backend: String) throws {
        let names = JobNetworkNames(job: try JobID("show.\(backend)"))
        let chain = names.chain
        let link = names.interface
        #expect(chain == "JOB_show_\(backend)")
        if backend == "iptables" {
            let save = try net.exec(net.node, ["iptables-legacy-save"]).stdout.split(separator: "\n").map(String.init)
            #expect(
                save.filter { $0.contains(chain) && !$0.hasPrefix(":") } == [
                    "-A POSTROUTING -s 10.213.0.2/32 -m comment --comment \(chain) -j MASQUERADE",
                    "-A INPUT -i \(link) -j \(chain)",
                    "-A FORWARD -i \(link) -j \(chain)",
                    "-A FORWARD -o \(link) -j \(chain)",
                    "-A OUTPUT -o \(link) -j \(chain)",
                    "-A \(chain) -d 172.20.0.0/16 -i \(link) -m comment --comment OutgoingInternal -j RETURN",
                    "-A \(chain) -d 10.213.0.0/16 -i \(link) -m comment --comment OutgoingInternal -j RETURN",
                    "-A \(chain) -i \(link) -m comment --comment OutgoingExternal -j RETURN",
                    "-A \(chain) -s 172.20.0.0/16 -o \(link) -m comment --comment IncomingInternal -j RETURN",
                    "-A \(chain) -s 10.213.0.0/16 -o \(link) -m comment --comment IncomingInternal -j RETURN",
                    "-A \(chain) -o \(link) -m comment --comment IncomingExternal -j RETURN",
                ])
        } else {
            let listing = try net.exec(net.node, ["nft", "list", "table", "inet", "jobbox"]).stdout
            let lines = listing.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                $0.contains("jb_") || $0.contains("masquerade") || $0.hasPrefix("chain") || $0.hasPrefix("type")
            }
            #expect(
                lines == [
                    "chain \(chain) {",
                    "iifname \"\(link)\" ip daddr 172.20.0.0/16 counter name \"\(chain).OutgoingInternal.0\" return comment \"OutgoingInternal\"",
                    "iifname \"\(link)\" ip daddr 10.213.0.0/16 counter name \"\(chain).OutgoingInternal.1\" return comment \"OutgoingInternal\"",
                    "iifname \"\(link)\" meta nfproto ipv4 counter name \"\(chain).OutgoingExternal.0\" return comment \"OutgoingExternal\"",
                    "oifname \"\(link)\" ip saddr 172.20.0.0/16 counter name \"\(chain).IncomingInternal.0\" return comment \"IncomingInternal\"",
                    "oifname \"\(link)\" ip saddr 10.213.0.0/16 counter name \"\(chain).IncomingInternal.1\" return comment \"IncomingInternal\"",
                    "oifname \"\(link)\" meta nfproto ipv4 counter name \"\(chain).IncomingExternal.0\" return comment \"IncomingExternal\"",
                    "chain \(chain).input {",
                    "type filter hook input priority filter; policy accept;",
                    "iifname \"\(link)\" jump \(chain)",
                    "chain \(chain).forward {",
                    "type filter hook forward priority filter; policy accept;",
                    "iifname \"\(link)\" jump \(chain)",
                    "oifname \"\(link)\" jump \(chain)",
                    "chain \(chain).output {",
                    "type filter hook output priority filter; policy accept;",
                    "oifname \"\(link)\" jump \(chain)",
                    "chain \(chain).postrouting {",
                    "type nat hook postrouting priority srcnat; policy accept;",
                    "ip saddr 10.213.0.2 masquerade",
                ], "\(listing)")
        }
    }

    @Test("a command that is not found: 127, one line, nothing left", arguments: backends + ["bpf"])
    func commandNotFound(backend: String) throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let before = try net.nodeState()
        let result = try net.netacct(Self.options("missing.\(backend)", backend) + ["--", "/nonexistent/command"])
        #expect(result.status == 127)
        #expect(result.stderr == "netacct: command not found: /nonexistent/command: No such file or directory\n")
        try net.expectNothingLeft(since: before)
        #expect(!FileManager.default.fileExists(atPath: BPFTestSupport.cgroupPath(job: "missing.\(backend)")))
    }

    @Test(
        "failures after the job (the ad file, the chirp) are warnings on stderr, never lines in the wrapper error file; the job's status stands",
        arguments: backends + ["bpf"])
    func failuresAfterTheJob(backend: String) throws {
        let net = try NetacctTopology(prefix: "jbi")
        defer { net.remove() }
        let before = try net.nodeState()
        let errorFile = net.directory.path + "/.job_wrapper_failure"
        var environment = ProcessInfo.processInfo.environment
        environment["_CONDOR_WRAPPER_ERROR_FILE"] = errorFile
        environment["_CONDOR_CHIRP_CONFIG"] = net.directory.path + "/no-such-chirp.config"
        let result = try TestSupport.run(
            net.netacctArguments(
                Self.options("after.\(backend)", backend) + [
                    "--ad-file", net.directory.path + "/no-such-dir/job.ad", "--chirp", "--", "/bin/sh", "-c", "exit 3",
                ]),
            environment: environment)
        #expect(result.status == 3, "\(result)")
        let lines = result.stderr.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("netacct: warning: cannot write ad file \(net.directory.path)/no-such-dir/job.ad") }, "\(result)")
        #expect(lines.filter { !$0.hasPrefix("netacct: warning: ") && !$0.contains("ip_forward") }.isEmpty, "only warnings: \(result)")
        #expect(!FileManager.default.fileExists(atPath: errorFile), "a finished job must not be requeued: \(Integration.read(errorFile) ?? "")")
        try net.expectNothingLeft(since: before)
    }

    @Test("IPv4 forwarding: turned on with one warning when it was off, left on, and no warning when it is on (-v notes it)")
    func forwardingSaid() throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        // A new namespace inherits the host's value; the node starts with forwarding off here.
        try net.exec(net.node, ["sysctl", "-qw", "net.ipv4.ip_forward=0"])
        let first = try net.netacct(Self.options("fwd1", "nftables") + ["--"] + NetacctTopology.client(["address"]))
        #expect(first.status == 0, "\(first)")
        #expect(first.stderr.hasPrefix("netacct: warning: turned on net.ipv4.ip_forward in this network namespace"), "\(first)")
        #expect(first.stderr.components(separatedBy: "ip_forward").count == 2, "one warning: \(first)")
        #expect(try net.exec(net.node, ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout == "1\n", "left on")
        let second = try net.netacct(Self.options("fwd2", "nftables") + ["-v", "--"] + NetacctTopology.client(["address"]))
        #expect(second.status == 0, "\(second)")
        #expect(!second.stderr.contains("warning"), "\(second)")
        #expect(second.stderr.contains("netacct: net.ipv4.ip_forward is on in this network namespace, as netacct needs\n"), "\(second)")
    }

    @Test("--backend auto picks the back end the host's iptables implies and says so with -v")
    func autoBackend() throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let expected = FirewallProbe().resolve(.auto)
        let result = try net.netacct(["--job", "auto1", "--backend", "auto", "-v", "--"] + NetacctTopology.client(["address"]))
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.hasPrefix("netacct: backend \(expected.kind.rawValue): \(expected.reason)\n"), "\(result)")
        #expect(result.stdout == "address 10.213.0.2\n")
    }
}
