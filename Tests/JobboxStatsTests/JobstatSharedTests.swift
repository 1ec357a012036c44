import Foundation
import JobboxTestSupport
import Testing

/// `jobstat --exclude-shared-with PID`: a job wrapper left by its batch system in cgroups it shares with the
/// system's daemon (HTCondor's v1 starter makes only memory, cpu, cpuacct and freezer cgroups per job) asks jobstat
/// to leave out the figures of those hierarchies, which would count more than the job.
@Suite("jobstat --exclude-shared-with", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct JobstatSharedTests {
    @Test("figures of hierarchies the cgroup shares with PID are left out; those of its own cgroups stay")
    func excludesSharedHierarchies() throws {
        let execute = try ExecuteDirectory("jbi-jobstat")
        let base = TestSupport.uniqueName("jbistat")
        defer {
            _ = try? Spawn.run([TestSupport.tool("cg-exec"), "--config", execute.path + "/jobbox.conf", "--remove", "--job", "shared"])
            _ = try? Spawn.sh("find /sys/fs/cgroup -depth -type d -name '\(base)' -exec rmdir {} + 2>/dev/null")
            execute.remove()
        }
        let config = try execute.write("jobbox.conf", "BASE_CGROUP = \(base)\nCGROUP_PARENT = self\n")
        // The job has a memory cgroup of its own (and the unified one cg-exec always makes); every other
        // hierarchy is this test's.
        let job = try Spawn.start(
            [TestSupport.tool("cg-exec"), "--config", config, "--job", "shared", "--controllers", "memory", "--", "sleep", "60"])
        defer {
            kill(job, SIGKILL)
            Spawn.wait(job)
        }
        var joined = false
        for _ in 0..<200 {
            if let text = Integration.read("/proc/\(job)/cgroup"), text.contains("/\(base)/job_shared") {
                joined = true
                break
            }
            usleep(10_000)
        }
        try #require(joined)

        let all = Integration.attributes(try Spawn.run([TestSupport.tool("jobstat"), "--pid", "\(job)"]).stdout)
        #expect(all["RemoteUserCpu"] != nil && all["MemoryPeakKb"] != nil, "\(all)")
        let result = try Spawn.run([TestSupport.tool("jobstat"), "--pid", "\(job)", "--exclude-shared-with", "\(getpid())"])
        #expect(result.status == 0, "\(result)")
        let own = Integration.attributes(result.stdout)
        #expect(own["MemoryPeakKb"] != nil && own["OOMKills"] == "0", "the job's own memory cgroup: \(result)")
        #expect(own["NumPids"] == "1", "processes counted in the job's own memory cgroup: \(result)")
        #expect(own["RemoteUserCpu"] == nil && own["CpuThrottledSeconds"] == nil, "cpu and cpuacct are the test's: \(result)")
        #expect(own.keys.allSatisfy { !$0.hasPrefix("Block") }, "blkio is the test's: \(result)")

        // Shared everywhere: one line and 125.
        let everything = try Spawn.run([TestSupport.tool("jobstat"), "--self", "--exclude-shared-with", "\(getpid())"])
        #expect(everything.status == 125)
        #expect(
            everything.stderr
                == "jobstat: no visible cgroup for this process: it shares its cgroup with the process of --exclude-shared-with in every hierarchy read\n",
            "\(everything)")
    }
}
