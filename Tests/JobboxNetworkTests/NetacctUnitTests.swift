import CNetfilter
import Foundation
import JobboxTestSupport
import Synchronization
import Testing

@testable import JobboxCore
@testable import JobboxNetwork

/// Reads a byte fixture: hex bytes, `#` comments.
func hexFixture(_ name: String) throws -> [UInt8] {
    let text = try String(contentsOfFile: TestSupport.fixtures + "/netacct/" + name, encoding: .utf8)
    return try text.split(separator: "\n").flatMap { line -> [UInt8] in
        let data = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return try data.split(separator: " ").map { token in
            guard let byte = UInt8(token, radix: 16) else { throw TestFailure("bad hex \(token) in \(name)") }
            return byte
        }
    }
}

@Suite("netacct: rtnetlink requests against byte fixtures")
struct NetacctRouteRequestTests {
    @Test("a veth pair whose peer is made in the job's namespace by pid")
    func veth() throws {
        let message = RouteRequest.createVeth(name: "jb_x", peerName: "eth0", peerNamespacePID: 0x1234, sequence: 1)
        #expect(message.bytes == (try hexFixture("veth-create.hex")))
    }

    @Test("link up and delete by name")
    func linkUpAndDelete() throws {
        #expect(RouteRequest.setLinkUp(name: "jb_x", sequence: 1).bytes == (try hexFixture("link-up.hex")))
        #expect(RouteRequest.deleteLink(name: "jb_x", sequence: 1).bytes == (try hexFixture("link-delete.hex")))
    }

    @Test("address and default route are byte-identical to iproute2's")
    func addressAndRoute() throws {
        let address = try #require(IPv4Address(parsing: "10.213.0.1"))
        #expect(RouteRequest.addAddress(index: 3, address: address, prefixLength: 30, sequence: 1).bytes == (try hexFixture("address-add.hex")))
        #expect(RouteRequest.addDefaultRoute(gateway: address, index: 3, sequence: 1).bytes == (try hexFixture("route-default.hex")))
    }
}

@Suite("netacct: accounting plan, counters, ads")
struct NetacctPlanTests {
    static let subnet = IPv4Network(parsing: "10.213.0.0/16")!

    @Test("one rule per class and internal network, outgoing first, each ending in a catch-all")
    func rules() throws {
        let internalNetworks = try #require(IPv4Network.parseList("172.20.0.0/16,192.168.0.0/16"))
        let plan = AccountingPlan(
            chain: "JOB_1_0", interface: "jb_1_0", jobAddress: IPv4Address(0x0AD5_0002), internalNetworks: internalNetworks, jobSubnet: Self.subnet,
            denyExternal: false)
        #expect(
            plan.rules.map(\.trafficClass.rawValue) == [
                "OutgoingInternal", "OutgoingInternal", "OutgoingInternal", "OutgoingExternal",
                "IncomingInternal", "IncomingInternal", "IncomingInternal", "IncomingExternal",
            ])
        #expect(
            plan.rules.map { $0.remote?.description ?? "any" } == [
                "172.20.0.0/16", "192.168.0.0/16", "10.213.0.0/16", "any", "172.20.0.0/16", "192.168.0.0/16", "10.213.0.0/16", "any",
            ])
        #expect(
            plan.rules.map(\.counterName) == [
                "JOB_1_0.OutgoingInternal.0", "JOB_1_0.OutgoingInternal.1", "JOB_1_0.OutgoingInternal.2", "JOB_1_0.OutgoingExternal.0",
                "JOB_1_0.IncomingInternal.0", "JOB_1_0.IncomingInternal.1", "JOB_1_0.IncomingInternal.2", "JOB_1_0.IncomingExternal.0",
            ])
        #expect(plan.rules.allSatisfy { !$0.reject })
    }

    @Test("the job subnet is internal unless a listed network covers it; --deny-external rejects only the external classes")
    func subnetAndDeny() throws {
        let wide = try #require(IPv4Network.parseList("10.0.0.0/8"))
        #expect(AccountingPlan.internalNetworks(wide, jobSubnet: Self.subnet) == wide)
        let plan = AccountingPlan(chain: "C", interface: "jb_c", jobAddress: IPv4Address(1), internalNetworks: wide, jobSubnet: Self.subnet, denyExternal: true)
        #expect(plan.rules.filter(\.reject).map(\.trafficClass) == [.outgoingExternal, .incomingExternal])
    }

    @Test("counter names belong to exactly one chain")
    func counterNames() {
        #expect(TrafficCounters.trafficClass(ofCounter: "JOB_a.OutgoingInternal.0", chain: "JOB_a") == .outgoingInternal)
        #expect(TrafficCounters.trafficClass(ofCounter: "JOB_a_b.OutgoingInternal.0", chain: "JOB_a") == nil)
        #expect(TrafficCounters.trafficClass(ofCounter: "JOB_a.Nonsense.0", chain: "JOB_a") == nil)
        #expect(TrafficCounters.trafficClass(ofCounter: "JOB_a.IncomingExternal.", chain: "JOB_a") == nil)
    }

    @Test(
        "the ad has HTCondor's four names and the two totals, and HTCondor's parser reads them as integers",
        .enabled(if: HTCondorClassAds.available, "needs HTCondor's Python bindings (make deps)"))
    func ad() throws {
        var counters = TrafficCounters()
        counters.add(579, to: .outgoingInternal)
        counters.add(1, to: .outgoingExternal)
        counters.add(4_000_000_000_000, to: .incomingInternal)
        counters.add(20, to: .incomingExternal)
        let text = try ClassAdWriter.render(counters.classAd)
        #expect(
            text == """
                NetworkOutgoingInternal = 579
                NetworkOutgoingExternal = 1
                NetworkIncomingInternal = 4000000000000
                NetworkIncomingExternal = 20
                NetworkOutgoing = 580
                NetworkIncoming = 4000000000020

                """)
        let parsed = try HTCondorClassAds.parse(text)
        #expect(parsed.first?["NetworkIncoming"] == HTCondorClassAds.Parsed(type: "int", value: "4000000000020"))
        #expect(parsed.first?.values.allSatisfy { $0.type == "int" } == true)
    }

    @Test("nft rule comments are one user-data TLV as nft reads it")
    func nftComment() {
        #expect(NftRules.commentUserData("OutgoingInternal") == [0, 17] + Array("OutgoingInternal".utf8) + [0])
    }
}

@Suite("netacct: iptables entries")
struct NetacctIptablesEntryTests {
    @Test("an accounting entry: fixed part, comment match, standard target, each 8-byte aligned")
    func layout() throws {
        let network = try #require(IPv4Network(parsing: "172.20.0.0/16"))
        let bytes = IptablesEntry.make(.init(input: "jb_x", destination: network), comment: "OutgoingInternal", target: .standard("RETURN"))
        let entrySize = MemoryLayout<ipt_entry>.size
        #expect(entrySize == 112)
        #expect(bytes.count == 112 + 288 + 40)
        bytes.withUnsafeBytes { raw in
            let entry = raw.baseAddress!.assumingMemoryBound(to: ipt_entry.self)
            #expect(entry.pointee.target_offset == 400)
            #expect(entry.pointee.next_offset == 440)
            #expect(entry.pointee.ip.dst.s_addr == UInt32(0xAC14_0000).bigEndian)
            #expect(entry.pointee.ip.dmsk.s_addr == UInt32(0xFFFF_0000).bigEndian)
            #expect(IptablesEntry.comment(of: entry) == "OutgoingInternal")
        }
        // The interface and its mask: the name's bytes and its NUL, so "jb_x" does not also match "jb_xy".
        #expect(Array(bytes[16..<21]) == Array("jb_x".utf8) + [0])
        #expect(Array(bytes[48..<54]) == [0xff, 0xff, 0xff, 0xff, 0xff, 0])
        #expect(Array(bytes[400..<402]) == [40, 0])
        #expect(String(decoding: bytes[402..<408], as: UTF8.self) == "RETURN")
    }

    @Test("REJECT carries icmp-port-unreachable, MASQUERADE one empty range")
    func targets() {
        let reject = IptablesEntry.target(.rejectPortUnreachable)
        #expect(reject.count == 40)
        #expect(Array(reject[32..<36]) == [3, 0, 0, 0])
        let masquerade = IptablesEntry.target(.masquerade)
        #expect(masquerade.count == 56)
        #expect(Array(masquerade[32..<36]) == [1, 0, 0, 0])
        #expect(masquerade[36...].allSatisfy { $0 == 0 })
    }
}

@Suite("netacct: back end choice")
struct NetacctFirewallProbeTests {
    /// A fixture tree: `bin/iptables` -> `xtables-<flavour>-multi`, and a legacy tables file when `legacy`.
    func probe(flavour: String?, legacy: Bool) throws -> (FirewallProbe, TestSupport.TemporaryDirectory) {
        let dir = try TestSupport.TemporaryDirectory("netacct-probe")
        try FileManager.default.createDirectory(atPath: dir.path + "/bin", withIntermediateDirectories: true)
        if let flavour {
            let target = dir.path + "/bin/xtables-\(flavour)-multi"
            _ = FileManager.default.createFile(atPath: target, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
            try FileManager.default.createSymbolicLink(atPath: dir.path + "/bin/iptables", withDestinationPath: "xtables-\(flavour)-multi")
        }
        if legacy { try dir.write("ip_tables_names", "filter\n") }
        return (FirewallProbe(searchPath: [dir.path + "/bin"], legacyTablesFile: dir.path + "/ip_tables_names"), dir)
    }

    @Test("auto: nftables for the nft flavour or without legacy tables, else iptables")
    func auto() throws {
        for (flavour, legacy, expected) in [
            ("nft", true, BackendKind.nftables), ("legacy", true, .iptables), ("legacy", false, .nftables), (nil, true, .iptables), (nil, false, .nftables),
        ] as [(String?, Bool, BackendKind)] {
            let (probe, dir) = try probe(flavour: flavour, legacy: legacy)
            defer { dir.remove() }
            #expect(probe.resolve(.auto).kind == expected, "flavour \(flavour ?? "none"), legacy tables \(legacy)")
        }
    }

    @Test("an explicit choice wins")
    func explicit() throws {
        let (probe, dir) = try probe(flavour: "nft", legacy: true)
        defer { dir.remove() }
        #expect(probe.resolve(.iptables).kind == .iptables)
        #expect(probe.resolve(.nftables).kind == .nftables)
    }
}

@Suite("netacct: leases in the state directory")
struct NetacctLeaseTests {
    static let subnet = IPv4Network(parsing: "10.213.0.0/16")!

    func names(_ id: String) throws -> JobNetworkNames { JobNetworkNames(job: try JobID(id)) }

    @Test("names fit the kernel's limits and are the id when it fits")
    func shortNames() throws {
        #expect(try names("1234.0") == JobNetworkNames(interface: "jb_1234_0", chain: "JOB_1234_0"))
        let long = try names(String(repeating: "x", count: 64))
        #expect(long.interface.utf8.count <= 15 && long.chain.utf8.count <= 28)
        #expect(long.interface.hasPrefix("jb_") && long.chain.hasPrefix("JOB_"))
    }

    @Test("slots are /30s: host .1, job .2")
    func slots() {
        let leases = JobNetworkLeases(stateDirectory: "/nonexistent", subnet: Self.subnet)
        #expect(leases.slotCount == 16384)
        #expect(leases.addresses(of: 0).host.description == "10.213.0.1")
        #expect(leases.addresses(of: 0).job.description == "10.213.0.2")
        #expect(leases.addresses(of: 64).job.description == "10.213.1.2")
    }

    @Test("20 concurrent takers get 20 distinct slots; a lease round-trips through its file")
    func concurrent() throws {
        let dir = try ExecuteDirectory("jbstate")
        defer { dir.remove() }
        let leases = JobNetworkLeases(stateDirectory: dir.path, subnet: Self.subnet)
        let slots = Mutex<[Int]>([])
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 20) { index in
            do {
                let lease = try leases.acquire(job: try JobID("c\(index)"), names: try names("c\(index)"), backend: .nftables, namespace: 1, owner: .current) {
                    _ in true
                }
                slots.withLock { $0.append(lease.slot) }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
        #expect(Set(slots.withLock { $0 }) == Set(0..<20))
        let all = try leases.all()
        #expect(all.count == 20)
        #expect(all.first { $0.job == "c7" }?.names == (try names("c7")))
    }

    @Test("a lease whose owner is gone is reclaimed; a live one with the same names is refused")
    func staleAndConflict() throws {
        let dir = try ExecuteDirectory("jbstate")
        defer { dir.remove() }
        let leases = JobNetworkLeases(stateDirectory: dir.path, subnet: Self.subnet)
        let dead = ProcessIdentity(pid: ProcessIdentity.current.pid, startTime: ProcessIdentity.current.startTime + 1)
        let old = try leases.acquire(job: try JobID("old"), names: try names("old"), backend: .iptables, namespace: 5, owner: dead) { _ in true }
        #expect(old.slot == 0)
        var reclaimed: [String] = []
        let new = try leases.acquire(job: try JobID("new"), names: try names("new"), backend: .iptables, namespace: 5, owner: .current) { lease in
            reclaimed.append(lease.job)
            return true
        }
        #expect(reclaimed == ["old"])
        #expect(new.slot == 0)
        #expect(try leases.all().map(\.job) == ["new"])
        #expect(throws: JobboxError.self) {
            try leases.acquire(job: try JobID("new"), names: try names("new"), backend: .iptables, namespace: 5, owner: .current) { _ in true }
        }
        // A stale lease of another network namespace is not this run's to clean: it keeps its slot.
        _ = try leases.acquire(job: try JobID("elsewhere"), names: try names("elsewhere"), backend: .iptables, namespace: 9, owner: dead) { _ in true }
        let third = try leases.acquire(job: try JobID("third"), names: try names("third"), backend: .iptables, namespace: 5, owner: .current) { _ in
            Issue.record("a lease of another namespace was handed to reclaim")
            return true
        }
        #expect(third.slot == 2)
    }

    @Test("a lease read while its netacct ran, which then finished (lease removed) and exited, is not stale; one left behind is (chaos seed 20261203)")
    func finishedOwnerIsNotStale() throws {
        let dir = try ExecuteDirectory("jbstate")
        defer { dir.remove() }
        let leases = JobNetworkLeases(stateDirectory: dir.path, subnet: Self.subnet)
        // The owner: a child that is alive while the lease is read, then gone.
        let child = try Spawn.start(["/bin/sleep", "30"])
        let owner = ProcessIdentity(pid: child, startTime: try #require(ProcessIdentity.startTime(of: child)))
        let finished = try leases.acquire(job: try JobID("finished"), names: try names("finished"), backend: .iptables, namespace: 5, owner: owner) { _ in true
        }
        let left = try leases.acquire(job: try JobID("left"), names: try names("left"), backend: .iptables, namespace: 5, owner: owner) { _ in true }
        let read = try leases.all()
        #expect(read.map(\.job).sorted() == ["finished", "left"])
        #expect(!read.contains(where: leases.isStale), "the owner runs")
        // "finished" ends as netacct ends: its lease goes, then the process.
        leases.release(finished)
        kill(child, SIGKILL)
        _ = Spawn.wait(child)
        #expect(!leases.isStale(finished), "read before its owner finished, judged after: its owner took it down itself")
        #expect(leases.isStale(left), "its owner died with the lease on disk")
        // A lease whose file now names another owner (the job id reused by a new run) is not the old owner's.
        var reused = left
        reused.owner = .current
        try leases.write(reused)
        #expect(!leases.isStale(left))
    }

    @Test("a held address claim keeps its slot without its lease being read; an orphan claim is removed")
    func claims() throws {
        let dir = try ExecuteDirectory("jbstate")
        defer { dir.remove() }
        let leases = JobNetworkLeases(stateDirectory: dir.path, subnet: Self.subnet)
        let first = try leases.acquire(job: try JobID("one"), names: try names("one"), backend: .nftables, namespace: 5, owner: .current) { _ in true }
        let second = try leases.acquire(job: try JobID("two"), names: try names("two"), backend: .nftables, namespace: 5, owner: .current) { _ in true }
        #expect(first.claim != nil && second.claim != nil)
        let netacct = dir.path + "/netacct"
        #expect(FileManager.default.fileExists(atPath: netacct + "/slot.0.jb_one"))
        // The second lease's claim is held by this process, so the file is not read: even garbage keeps slot 1.
        try "garbage".write(toFile: netacct + "/jb_two.lease", atomically: false, encoding: .utf8)
        // A claim whose owner died before writing its lease frees its slot and goes.
        #expect(FileManager.default.createFile(atPath: netacct + "/slot.2.jb_ghost", contents: nil))
        let third = try leases.acquire(job: try JobID("three"), names: try names("three"), backend: .nftables, namespace: 5, owner: .current) { _ in true }
        #expect(third.slot == 2)
        #expect(!FileManager.default.fileExists(atPath: netacct + "/slot.2.jb_ghost"))
        #expect(throws: JobboxError.self) {
            try leases.acquire(job: try JobID("one"), names: try names("one"), backend: .nftables, namespace: 5, owner: .current) { _ in true }
        }
        leases.release(first)
        #expect(!FileManager.default.fileExists(atPath: netacct + "/slot.0.jb_one"))
        #expect(!FileManager.default.fileExists(atPath: netacct + "/jb_one.lease"))
    }

    @Test("the start time is field 22 even when the command name has spaces and parentheses")
    func startTime() {
        let stat = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615"
        #expect(ProcessStat(parsing: stat)?.startTime == 987654)
        #expect(ProcessIdentity.current.isAlive)
    }
}

@Suite("netacct: command line")
struct NetacctCommandLineTests {
    @Test(
        "bad options are one line and 125, before anything is made",
        arguments: [
            (
                ["--job", "x", "--internal", "10.0.0.0/33", "--", "true"],
                "netacct: invalid --internal '10.0.0.0/33': give networks such as 10.0.0.0/8,192.168.0.0/16,fd00::/8\n"
            ),
            (["--job", "x", "--backend", "pf", "--", "true"], "netacct: invalid --backend 'pf': give auto, iptables, nftables or bpf\n"),
            (["--job", "x", "--interval", "0", "--", "true"], "netacct: invalid --interval 0: give a whole number of seconds, at least 1\n"),
            (["--job", "x"], "netacct: no command: give the job's command after --\n"),
            (["--cleanup"], "netacct: invalid options: use --cleanup --stale alone\n"),
            (["--show", "--all", "--job", "x"], "netacct: invalid options: use --show with --job or --all, not both\n"),
            (["--job", "../x", "--", "true"], "netacct: invalid job id '../x': only letters, digits and _ . @ - are allowed\n"),
        ])
    func badOptions(arguments: [String], message: String) throws {
        let dir = try TestSupport.TemporaryDirectory("netacct-cli")
        defer { dir.remove() }
        try dir.write("jobbox.conf", "STATE_DIR = \(dir.path)/state\n")
        let result = try TestSupport.run(["netacct", "--config", dir.path + "/jobbox.conf"] + arguments)
        #expect(result.status == 125)
        #expect(result.stderr == message)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/state"))
    }
}
