import Foundation
import JobboxTestSupport
import Testing

/// `make demo` (examples/demo.sh) from a clone under /tmp: the chain runs in the README's order (cg-exec ->
/// netacct -> ns-exec), so the job's private /tmp, made last, cannot hide the clone's tools from the steps before
/// it (ns-exec before netacct failed with "command not found: /tmp/.../.build/debug/netacct").
@Suite("make demo", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct DemoTests {
    @Test("runs from a clone under /tmp: the job's figures with exact network bytes, and nothing left behind")
    func demoFromACloneUnderTmp() throws {
        let clone = "/tmp/" + TestSupport.uniqueName("jbi-demo-")
        let manager = FileManager.default
        try manager.createDirectory(atPath: clone + "/examples", withIntermediateDirectories: true)
        try manager.createDirectory(atPath: clone + "/.build/debug", withIntermediateDirectories: true)
        defer { try? manager.removeItem(atPath: clone) }
        try manager.copyItem(atPath: TestSupport.repositoryRoot + "/examples/demo.sh", toPath: clone + "/examples/demo.sh")
        for tool in ["cg-exec", "ns-exec", "netacct", "jobstat"] {
            try Spawn.copyExecutable(TestSupport.tool(tool), to: clone + "/.build/debug/" + tool)
        }
        // A short tag: it names the demo's namespaces and links (15 bytes at most with their suffixes).
        let tag = "jbid\(getpid() % 100_000)"
        let result = try Spawn.run(
            ["/bin/bash", clone + "/examples/demo.sh"],
            environment: ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "JOBBOX_DEMO_TAG": tag])
        #expect(result.status == 0, "\(result)")
        let ad = Integration.attributes(result.stdout)
        // 10 datagrams to campus and 4 to the internet, 1000 bytes per IP packet, each echoed.
        #expect(ad["NetworkOutgoingInternal"] == "10000" && ad["NetworkOutgoingExternal"] == "4000", "\(result)")
        #expect(ad["NetworkIncomingInternal"] == "10000" && ad["NetworkIncomingExternal"] == "4000", "\(result)")
        #expect(ad["ExitCode"] == "0", "\(result)")
        #expect(result.stdout.contains("job: pid 2 in its own PID namespace"), "\(result)")
        #expect(result.stdout.contains("/tmp and /var/tmp of the job were /run/\(tag)/scratch/tmp and var/tmp: from-the-job.txt"), "\(result)")
        #expect(result.stdout.hasSuffix("left behind: 0 cgroups, 0 namespaces, 0 links, 0 work directories\n"), "\(result)")
        #expect(Integration.cgroups(named: tag).isEmpty)
    }
}
