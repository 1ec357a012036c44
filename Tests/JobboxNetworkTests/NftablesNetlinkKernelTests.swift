import CNetfilter
import Foundation
import JobboxTestSupport
import SystemPackage
import Testing

@testable import JobboxCore
@testable import JobboxNetwork

#if canImport(Glibc)
import Glibc
#endif

/// The nftables back end's netlink paths the end-to-end runs do not reach, in a network namespace of the test's own
/// (a sleeper's: the namespace, and every table in it, goes with the sleeper).
@Suite("nftables over netlink", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct NftablesNetlinkKernelTests {
    static func plan(_ chain: String) throws -> AccountingPlan {
        AccountingPlan(
            chain: chain, interface: "jb_t", jobAddress: IPv4Address(0x0AD5_0002),
            internalNetworks: try #require(IPv4Network.parseList("172.20.0.0/16")),
            jobSubnet: try #require(IPv4Network(parsing: "10.213.0.0/16")), denyExternal: false)
    }

    /// `nft list ruleset` in the namespace of `pid`.
    static func ruleset(_ pid: pid_t) throws -> String {
        let result = try TestSupport.run(["nsenter", "--net=/proc/\(pid)/ns/net", "nft", "list", "ruleset"])
        guard result.status == 0 else { throw TestFailure("nft list ruleset: \(result)") }
        return result.stdout
    }

    @Test("a batch the kernel refuses is reported with the kernel's errno in one line and changes nothing; removal leaves no table")
    func refusedBatch() throws {
        try JobLinksKernelTests.withSleeperNetwork { pid in
            let chain = "JOB_" + TestSupport.uniqueName("nft")
            let backend = NftablesBackend()
            var before = ""
            try JobLinksKernelTests.inNamespace(of: pid) {
                try backend.install(try Self.plan(chain))
                before = try Self.ruleset(pid)
                #expect(before.contains("counter name \"\(chain).OutgoingInternal.0\""), "\(before)")
                // The same job again: its first counter exists (NLM_F_EXCL), so the kernel refuses the whole batch.
                let refusal = #expect(throws: JobboxError.self) { try backend.install(try Self.plan(chain)) }
                #expect(refusal?.errno == .fileExists)
                #expect(refusal?.description == "cannot add nftables accounting inet jobbox \(chain): \(Errno.fileExists)")
                #expect(try Self.ruleset(pid) == before)
                try backend.remove(chain: chain)
                #expect(try Self.ruleset(pid) == "")
            }
        }
    }

    @Test("counters are the same looked up by name (a few jobs) and read from one dump (many); a missing job is left out")
    func countersByNameAndByDump() throws {
        try JobLinksKernelTests.withSleeperNetwork { pid in
            let chain = "JOB_" + TestSupport.uniqueName("nft")
            let backend = NftablesBackend()
            try JobLinksKernelTests.inNamespace(of: pid) {
                try backend.install(try Self.plan(chain))
                defer { try? backend.remove(chain: chain) }
                let missing = (1...NftablesBackend.lookupLimit).map { "JOB_missing\($0)" }
                let byName = try backend.counters(chains: [chain])
                let byDump = try backend.counters(chains: [chain] + missing)
                #expect(byName == [chain: TrafficCounters()])
                #expect(byDump == byName)
                #expect(try backend.counters(chains: missing) == [:])
            }
        }
    }

    @Test("a batch the kernel refuses as a whole (no CAP_NET_ADMIN) fails at once with its errno, not after the receive timeout")
    func batchRefusedAsAWhole() async {
        // In a child process that gave up root (and with it every capability): the kernel answers only the batch's
        // begin message, with EPERM, and no message of the batch is answered after it.
        await #expect(processExitsWith: .exitCode(0)) {
            guard setgid(65534) == 0, setuid(65534) == 0 else { exit(2) }
            let started = ContinuousClock.now
            do {
                try NftablesBackend().install(try Self.plan("JOB_" + TestSupport.uniqueName("nftperm")))
                exit(3)
            } catch let error as JobboxError {
                exit(error.errno == .notPermitted && ContinuousClock.now - started < .seconds(5) ? 0 : 4)
            } catch {
                exit(5)
            }
        }
    }

    @Test("an answer another netlink socket sends to ours is dropped: only the kernel's is read")
    func forgedAnswer() throws {
        try JobLinksKernelTests.withSleeperNetwork { pid in
            try JobLinksKernelTests.inNamespace(of: pid) {
                let socket = try NetlinkSocket(bus: NETLINK_NETFILTER)
                // The sequence number of the next request, and an NLMSG_ERROR (EPERM) for it that claims to be the
                // kernel's (port id 0 in its header), sent from another socket: root may send to any port.
                let next = socket.nextSequence() &+ 1
                let forged = NetlinkMessage(type: UInt16(NLMSG_ERROR), flags: 0, sequence: next)
                forged.putRaw(Int32(-EPERM))
                forged.putRaw(nlmsghdr(nlmsg_len: 16, nlmsg_type: 0, nlmsg_flags: 0, nlmsg_seq: next, nlmsg_pid: socket.portID))
                let sender = Glibc.socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_NETFILTER)
                #expect(sender >= 0)
                defer { close(sender) }
                var target = sockaddr_nl()
                target.nl_family = sa_family_t(AF_NETLINK)
                target.nl_pid = socket.portID
                let sent = forged.bytes.withUnsafeBytes { raw in
                    withUnsafePointer(to: &target) { pointer in
                        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(sender, raw.baseAddress, raw.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                        }
                    }
                }
                #expect(sent == forged.length, "errno \(errno)")
                // The kernel's answer to the look-up: there is no table in the new namespace.
                #expect(try NftablesBackend.tableUse(socket) == nil)
            }
        }
    }
}
