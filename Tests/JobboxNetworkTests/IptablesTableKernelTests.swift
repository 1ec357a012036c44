import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxNetwork

/// jobbox's own reading, editing and committing of legacy iptables tables (`IptablesTable`, no libiptc) against
/// `iptables-legacy` on the real kernel, each test in a network namespace of a sleeper's own: its legacy tables
/// go with it.
@Suite("iptables tables without libiptc", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct IptablesTableKernelTests {
    /// Another firewall's rules, Docker's and an admin's, with counters: user chains that jump to each other, a
    /// goto, RETURNs, a rule without a target, comments, extension matches and targets, DROP policies, nat.
    static let foreignRules = """
        *nat
        :PREROUTING ACCEPT [11:1100]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [3:180]
        :POSTROUTING ACCEPT [4:240]
        :DOCKER - [0:0]
        [5:300] -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
        [6:360] -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
        [7:420] -A DOCKER -i docker0 -j RETURN
        [8:480] -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
        COMMIT
        *filter
        :INPUT DROP [21:2100]
        :FORWARD DROP [22:2200]
        :OUTPUT ACCEPT [23:2300]
        :ADMIN-IN - [0:0]
        :ADMIN-LOG - [0:0]
        :DOCKER - [0:0]
        :DOCKER-USER - [0:0]
        [31:3100] -A INPUT -i lo -j ACCEPT
        [32:3200] -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        [33:3300] -A INPUT -j ADMIN-IN
        [34:3400] -A FORWARD -j DOCKER-USER
        [35:3500] -A FORWARD -o docker0 -g DOCKER
        [44:4400] -A OUTPUT -p udp -m udp --dport 53
        [38:3800] -A ADMIN-IN -s 192.0.2.0/24 -m comment --comment "campus \\"ssh\\"" -j ADMIN-LOG
        [39:3900] -A ADMIN-IN -p tcp -m tcp --dport 22 -j ACCEPT
        [40:4000] -A ADMIN-IN -p icmp -m icmp --icmp-type 8 -m limit --limit 5/sec -j ACCEPT
        [41:4100] -A ADMIN-IN -j RETURN
        [42:4200] -A ADMIN-LOG -j LOG --log-prefix "admin: "
        [43:4300] -A ADMIN-LOG -j DROP
        [37:3700] -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
        [36:3600] -A DOCKER-USER -j RETURN
        COMMIT

        """

    /// Runs `arguments` in the network namespace of `pid`; its stdout.
    @discardableResult
    static func run(_ pid: pid_t, _ arguments: [String], stdin: String? = nil) throws -> String {
        let result = try TestSupport.run(["nsenter", "--net=/proc/\(pid)/ns/net"] + arguments, stdin: stdin)
        guard result.status == 0 else { throw TestFailure("\(arguments.joined(separator: " ")) failed: \(result)") }
        return result.stdout
    }

    /// `iptables-legacy-save -c` without its comment lines (which carry the time).
    static func save(_ pid: pid_t) throws -> [String] {
        try run(pid, ["iptables-legacy-save", "-c"]).split(separator: "\n").filter { !$0.hasPrefix("#") }.map(String.init)
    }

    /// The back end as netacct makes it, reading the calling thread's namespace's list of tables.
    static func backend() -> IptablesBackend {
        var backend = IptablesBackend(lock: XtablesLock())
        backend.tablesFile = "/proc/thread-self/net/ip_tables_names"
        return backend
    }

    static func plan(_ chain: String, interface: String, internalNetwork: String = "172.20.0.0/16") -> AccountingPlan {
        AccountingPlan(
            chain: chain, interface: interface, jobAddress: IPv4Address(parsing: "10.213.9.2")!, internalNetworks: [IPv4Network(parsing: internalNetwork)!],
            jobSubnet: IPv4Network(parsing: "10.213.0.0/16")!, denyExternal: true)
    }

    /// A unique job chain name (at most 28 bytes).
    static func chainName() -> String { TestSupport.uniqueName("JOB_t") }

    @Test("another firewall's rules, policies and counters come back exactly after a job's rules are installed and removed")
    func foreignRulesSurvive() throws {
        try JobLinksKernelTests.withSleeperNetwork { pid in
            try Self.run(pid, ["iptables-legacy-restore", "-c"], stdin: Self.foreignRules)
            let before = try Self.save(pid)
            #expect(before.contains("[35:3500] -A FORWARD -o docker0 -g DOCKER"), "\(before)")
            let chain = Self.chainName()
            let backend = Self.backend()
            try JobLinksKernelTests.inNamespace(of: pid) {
                try backend.install(Self.plan(chain, interface: "jbt0"))
            }
            let during = try Self.save(pid)
            // Every foreign line, counters included, is still there beside the job's rules.
            #expect(Set(before).subtracting(during).isEmpty, "lost: \(Set(before).subtracting(during).sorted())")
            #expect(during.contains("[0:0] -A INPUT -i jbt0 -j \(chain)"), "\(during)")
            #expect(during.contains("[0:0] -A \(chain) -i jbt0 -m comment --comment OutgoingExternal -j REJECT --reject-with icmp-port-unreachable"))
            #expect(during.contains("[0:0] -A POSTROUTING -s 10.213.9.2/32 -m comment --comment \(chain) -j MASQUERADE"))
            #expect(during.firstIndex(of: "[0:0] -A INPUT -i jbt0 -j \(chain)")! < during.firstIndex(of: "[31:3100] -A INPUT -i lo -j ACCEPT")!)
            try JobLinksKernelTests.inNamespace(of: pid) {
                try backend.remove(chain: chain)
            }
            #expect(try Self.save(pid) == before)
        }
    }

    @Test("a job chain another rule jumps to stays, reported, while its jumps and its masquerade rule go")
    func referencedChainStays() throws {
        try JobLinksKernelTests.withSleeperNetwork { pid in
            let chain = Self.chainName()
            let backend = Self.backend()
            try JobLinksKernelTests.inNamespace(of: pid) {
                try backend.install(Self.plan(chain, interface: "jbt2"))
            }
            try Self.run(pid, ["iptables-legacy", "-N", "ADMIN"])
            try Self.run(pid, ["iptables-legacy", "-A", "ADMIN", "-j", chain])
            try JobLinksKernelTests.inNamespace(of: pid) {
                let refusal = #expect(throws: JobboxError.self) { try backend.remove(chain: chain) }
                #expect(refusal?.errno == .resourceBusy, "\(String(describing: refusal))")
            }
            let after = try Self.save(pid)
            #expect(after.contains(":\(chain) - [0:0]"), "\(after)")
            #expect(after.contains("[0:0] -A ADMIN -j \(chain)"), "\(after)")
            #expect(!after.contains { $0.contains("-j \(chain)") && !$0.contains("-A ADMIN") }, "\(after)")
            #expect(!after.contains { $0.contains("MASQUERADE") }, "\(after)")
        }
    }

    @Test("a job's rule counters survive other jobs' commits and keep counting")
    func countersSurviveCommits() throws {
        try JobLinksKernelTests.withSleeperNetwork { pid in
            try Self.run(pid, ["ip", "link", "set", "lo", "up"])
            let first = Self.chainName()
            let second = Self.chainName()
            let backend = Self.backend()
            // Datagrams to 127.0.0.1 leave by lo and come back in by it: both directions of job "first" count them.
            let send = [
                "/usr/bin/python3", "-c",
                "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(b'x' * 100, ('127.0.0.1', 9)) for _ in range(5)]",
            ]
            try JobLinksKernelTests.inNamespace(of: pid) {
                try backend.install(Self.plan(first, interface: "lo", internalNetwork: "127.0.0.0/8"))
                defer { try? backend.remove(chain: first) }
                try Self.run(pid, send)
                let counted = try backend.counters(chains: [first])[first]
                #expect((counted?.outgoingInternal ?? 0) >= 5 * 128, "\(String(describing: counted))")
                #expect((counted?.incomingInternal ?? 0) >= 5 * 128, "\(String(describing: counted))")
                let saved = try Self.save(pid).filter { $0.contains("-A \(first) ") }

                try backend.install(Self.plan(second, interface: "jbt1"))
                #expect(try backend.counters(chains: [first])[first] == counted)
                try backend.remove(chain: second)
                #expect(try backend.counters(chains: [first])[first] == counted)
                #expect(try Self.save(pid).filter { $0.contains("-A \(first) ") } == saved)

                try Self.run(pid, send)
                let later = try backend.counters(chains: [first])[first]
                #expect((later?.outgoingInternal ?? 0) >= (counted?.outgoingInternal ?? 0) + 5 * 128, "\(String(describing: later))")
                try backend.remove(chain: first)
                #expect(try backend.counters(chains: [first]).isEmpty)
            }
            #expect(try !Self.save(pid).contains { $0.contains("JOB_t") })
        }
    }

    @Test("a table read from the kernel serialises to the same bytes, hooks and entry count; an unchanged commit keeps every counter")
    func roundTrip() throws {
        try JobLinksKernelTests.withSleeperNetwork { pid in
            try Self.run(pid, ["iptables-legacy-restore", "-c"], stdin: Self.foreignRules)
            let chain = Self.chainName()
            try JobLinksKernelTests.inNamespace(of: pid) {
                try Self.backend().install(Self.plan(chain, interface: "jbt2"))
            }
            let before = try Self.save(pid)
            try JobLinksKernelTests.inNamespace(of: pid) {
                for name in ["filter", "nat"] {
                    let snapshot = try IptablesSocket(table: name).read(name)
                    let table = try IptablesTable(name: name)
                    let serialised = table.serialised()
                    #expect(serialised.entries == snapshot.entries, "\(name)")
                    #expect(serialised.count == Int(snapshot.info.num_entries), "\(name)")
                    #expect(serialised.readIndices == Array(0..<serialised.count), "\(name)")
                    #expect(serialised.hookEntry == withUnsafeBytes(of: snapshot.info.hook_entry) { Array($0.bindMemory(to: UInt32.self)) }, "\(name)")
                    #expect(serialised.underflow == withUnsafeBytes(of: snapshot.info.underflow) { Array($0.bindMemory(to: UInt32.self)) }, "\(name)")
                    try table.commit()
                }
            }
            #expect(try Self.save(pid) == before)
            try JobLinksKernelTests.inNamespace(of: pid) {
                try Self.backend().remove(chain: chain)
            }
        }
    }

    @Test("a table laid out in a way iptables does not write is refused, never edited")
    func malformedTables() throws {
        try JobLinksKernelTests.withSleeperNetwork { pid in
            try Self.run(pid, ["iptables-legacy-restore", "-c"], stdin: Self.foreignRules)
            try JobLinksKernelTests.inNamespace(of: pid) {
                let snapshot = try IptablesSocket(table: "filter").read("filter")
                let info = snapshot.info
                func parse(_ blob: [UInt8], count: Int = Int(info.num_entries)) throws(JobboxError) {
                    _ = try IptablesImage(
                        table: "filter", blob: blob, validHooks: info.valid_hooks,
                        hookEntry: withUnsafeBytes(of: info.hook_entry) { Array($0.bindMemory(to: UInt32.self)) },
                        underflow: withUnsafeBytes(of: info.underflow) { Array($0.bindMemory(to: UInt32.self)) }, count: count)
                }
                try parse(snapshot.entries)
                let entries = try IptablesImage.split(snapshot.entries, table: "filter")
                func patched(_ offset: Int, _ value: some FixedWidthInteger) -> [UInt8] {
                    var blob = snapshot.entries
                    withUnsafeBytes(of: value) { blob.replaceSubrange(offset..<offset + $0.count, with: $0) }
                    return blob
                }
                let layout = IptablesImage.Layout.self
                // An entry that claims to run past the end of the table.
                #expect(throws: JobboxError.self) { try parse(patched(layout.nextOffsetField, UInt16(0xfff8))) }
                // A target offset past the entry.
                #expect(throws: JobboxError.self) { try parse(patched(layout.targetOffsetField, UInt16(0xfff0))) }
                // A match whose size is past its entry's target.
                let matched = try #require(entries.first { IptablesImage.targetOffset($0.bytes) > layout.entrySize })
                #expect(throws: JobboxError.self) { try parse(patched(matched.offset + layout.entrySize, UInt16(0x7ff8))) }
                // A jump into the middle of an entry, and one to a built-in chain's first rule.
                let jump = try #require(
                    entries.first { entry in
                        IptablesImage.verdict(entry.bytes).map { $0 >= 0 && Int($0) != entry.offset + entry.bytes.count } ?? false
                    })
                let verdictAt = jump.offset + IptablesImage.targetOffset(jump.bytes) + layout.extensionHeaderSize
                #expect(throws: JobboxError.self) { try parse(patched(verdictAt, Int32(jump.offset + 8))) }
                #expect(throws: JobboxError.self) { try parse(patched(verdictAt, Int32(0))) }
                // A policy that is not a verdict, and a count that is not the blob's.
                let policy = Int(withUnsafeBytes(of: info.underflow) { $0.load(fromByteOffset: 4, as: UInt32.self) })
                let policyEntry = try #require(entries.first { $0.offset == policy })
                #expect(throws: JobboxError.self) {
                    try parse(patched(policy + IptablesImage.targetOffset(policyEntry.bytes) + layout.extensionHeaderSize, Int32(0)))
                }
                #expect(throws: JobboxError.self) { try parse(snapshot.entries, count: entries.count + 1) }
                #expect(throws: JobboxError.self) { try parse(Array(snapshot.entries.dropLast(8))) }

                // A chain another rule jumps to cannot be deleted; a built-in chain cannot be jumped to.
                let table = try IptablesTable(name: "filter")
                #expect(throws: JobboxError.self) { try table.deleteChain("ADMIN-LOG") }
                #expect(throws: JobboxError.self) { try table.append("OUTPUT", IptablesEntry.make(.init(), target: .standard("INPUT"))) }
                #expect(throws: JobboxError.self) { try table.createChain("ADMIN-IN") }
                #expect(throws: JobboxError.self) { try table.deleteChain("DOCKER-USER") }
                #expect(!table.isChain("JOB_none"))
            }
        }
    }
}
