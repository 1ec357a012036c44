import Foundation
import JobboxTestSupport
import SystemPackage
import Testing

@testable import JobboxCore
@testable import JobboxNetwork

/// Whether a job's veth can send before the job starts, on veth pairs in a network namespace of the test's own
/// (a sleeper's, gone with it).
@Suite("job links", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct JobLinksKernelTests {
    /// A process alone in a new network namespace, once it is there.
    static func sleeperInNewNetwork() throws -> BackgroundRun {
        let sleeper = try BackgroundRun(["/usr/bin/unshare", "--net", "--", "/bin/sleep", "60"])
        let ours = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        let deadline = Date().addingTimeInterval(10)
        while (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(sleeper.pid)/ns/net")) == ours {
            guard Date() < deadline else {
                kill(sleeper.pid, SIGKILL)
                _ = sleeper.wait()
                throw TestFailure("unshare --net did not move pid \(sleeper.pid) within 10 s")
            }
            usleep(2_000)
        }
        return sleeper
    }

    /// Runs `body` with the pid of a sleeper alone in a new network namespace; the namespace, with every link,
    /// table and chain made in it, goes with the sleeper.
    static func withSleeperNetwork(_ body: (pid_t) throws -> Void) throws {
        let sleeper = try sleeperInNewNetwork()
        defer {
            kill(sleeper.pid, SIGKILL)
            _ = sleeper.wait()
        }
        try body(sleeper.pid)
    }

    /// Runs `body` in the network namespace of `pid` (this thread only, as setns does).
    static func inNamespace(of pid: pid_t, _ body: () throws -> Void) throws {
        var failure: (any Error)?
        try NetworkNamespace.withNamespace(ofProcess: pid) { () throws(JobboxError) in
            do { try body() } catch { failure = error }
        }
        if let failure { throw failure }
    }

    @Test("an end whose peer is down cannot send and the wait ends at its deadline in one line; once the peer is up both can")
    func awaitSending() throws {
        try Self.withSleeperNetwork { pid in
            try Self.inNamespace(of: pid) {
                let route = try RouteNetlink()
                try route.createVeth(name: "jbla", peerName: "jblb", peerNamespacePID: pid)
                try route.setUp("jbla")
                // Its peer is down, so there is no carrier: the kernel keeps the noop queue, which drops everything,
                // and says the lower layer is down.
                #expect(try route.operationalState("jbla") == 3)  // IF_OPER_LOWERLAYERDOWN
                let refusal = #expect(throws: JobboxError.self) { try JobLinks.awaitSending("jbla", deadline: .milliseconds(300)) }
                #expect(
                    refusal?.description.hasPrefix(
                        "cannot bring up link jbla: the kernel has not made it able to send within 0.3 s (operational state 3, not up)")
                        == true, "\(String(describing: refusal))")
                try route.setUp("jblb")
                // jbla was up first, so its queue comes from the kernel's link-watch work, possibly after this line.
                try JobLinks.awaitSending("jbla")
                try JobLinks.awaitSending("jblb")
                for name in ["jbla", "jblb"] {
                    #expect(try route.operationalState(name) == RouteNetlink.operationalUp, "\(name)")
                }
                #expect(throws: Errno(rawValue: ENODEV)) { try route.operationalState("jblnone") }
            }
        }
    }
}
