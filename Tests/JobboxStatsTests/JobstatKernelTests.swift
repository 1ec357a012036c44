import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore
@testable import JobboxStats

/// jobstat on this machine's real cgroup v1 hierarchies (hybrid node: every controller on v1, cgroup2 with only
/// hugetlb), with jobs the tests run in cgroups they make below their own cgroup.
@Suite("jobstat on the real kernel", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct JobstatKernelTests {
    /// One ad from jobstat's output, after checking status, stderr and HTCondor's parser.
    func ad(_ result: TestSupport.Result, sourceLocation: SourceLocation = #_sourceLocation) throws -> ClassAd {
        #expect(result.status == 0, "\(result)", sourceLocation: sourceLocation)
        #expect(result.stderr.isEmpty, "\(result.stderr)", sourceLocation: sourceLocation)
        if HTCondorClassAds.available { try OutputChecks.htcondorParses(result.stdout, sourceLocation: sourceLocation) }
        return ClassAdReader.parse(result.stdout)
    }

    @Test(
        "a job that writes 32 MiB with dd oflag=direct (in a sub-cgroup of its own) shows BlockWriteBytes >= 32 MiB; the per-cgroup files summed over the subtree agree"
    )
    func blockWrites() throws {
        let scratch = try BlockScratch()
        defer { scratch.remove() }
        let job = try KernelJob()
        defer { job.remove() }
        // Since Linux commit a3166c51702b the v1 throttle statistics count only on disks where some cgroup has a
        // throttle rule; "MAJ:MIN 0" is a rule without a limit, set on the test's own job.
        try job.write("\(scratch.disk) 0", to: "blkio.throttle.read_bps_device", controller: "blkio")
        let step = try job.makeSubgroup("step_1", controller: "blkio")
        let file = scratch.path + "/" + TestSupport.uniqueName("direct") + ".dat"
        defer { unlink(file) }
        let written = try job.run("dd if=/dev/zero of=\(file) bs=1M count=32 oflag=direct 2>&1", subgroup: ("blkio", step))
        #expect(written.status == 0, "dd on \(scratch.description): \(written)")
        let ad = try ad(try job.jobstat())
        let bytes = try #require(ad.int("BlockWriteBytes"), "no BlockWriteBytes; I/O went to \(scratch.description)")
        #expect(bytes >= 32 << 20, "BlockWriteBytes \(bytes) for 32 MiB written with O_DIRECT to \(scratch.description)")
        #expect((ad.int("BlockWrites") ?? 0) >= 1)
        #expect(ad.int("BlockWriteKbytes") == bytes / 1024)
        if case .real(let stalled) = ad["IOPressureSomeSeconds"] {
            // dd waited for each direct write: the job's cgroup2 directory saw I/O stall time.
            #expect(stalled > 0, "IOPressureSomeSeconds \(stalled) after 32 synchronous writes")
        }
        // The same figures from the files that count one cgroup each, summed by jobstat over the subtree.
        let blkio = try #require(job.directory("blkio"))
        let sources = CgroupStatSources(block: .init(directory: blkio, version: .v1))
        let summed = try CgroupSampler(
            sources: sources, includeRaw: false, reader: StatFileReader(), clockTicksPerSecond: nil,
            blkioFiles: Array(CgroupSampler.defaultBlkioFiles.dropFirst())
        ).sample()
        #expect(summed.blockWriteBytes.map(Int.init) == bytes)
        #expect(summed.blockWrites.map(Int.init) == ad.int("BlockWrites"))
        print("jobstat blockWrites: dd oflag=direct went to \(scratch.description): BlockWriteBytes = \(bytes)")
    }

    @Test("a job holding 100 MiB of anonymous memory shows ResidentSetSize within 10 %; a job that cats a 256 MiB file gets page cache, not ResidentSetSize")
    func residentSetSize() throws {
        let job = try KernelJob()
        defer { job.remove() }
        let dir = try TestSupport.TemporaryDirectory("jobstat-mem")
        defer { dir.remove() }
        let ready = dir.path + "/ready"
        // vec() grows the string to 100 MiB and zero-fills it, touching every page.
        try job.start("exec perl -e 'vec($x, 100*1024*1024 - 1, 8) = 1; open(F, \">\(ready)\"); close(F); sleep 120'", readyFile: ready)
        let memory = try ad(try job.jobstat())
        let rss = try #require(memory.int("ResidentSetSize"))
        #expect(abs(rss - 102_400) <= 10_240, "ResidentSetSize \(rss) KiB for 100 MiB")
        #expect(memory.int("MemoryUsage") == (rss + 1023) / 1024)
        #expect((memory.int("MemoryPeakKb") ?? 0) >= rss)
        #expect(memory.int("NumPids") == 1)

        let reader = try job.sibling(id: "2.0")
        defer { reader.remove() }
        // The file is written around the page cache (and dropped from it), so the job's cat brings it in.
        let file = dir.path + "/big.dat"
        let made = try TestSupport.sh("dd if=/dev/zero of=\(file) bs=1M count=256 oflag=direct 2>&1 && dd if=\(file) iflag=nocache count=0 2>&1")
        #expect(made.status == 0, "\(made)")
        let catReady = dir.path + "/cat-ready"
        try reader.start("cat \(file) > /dev/null && : > \(catReady) && exec sleep 120", readyFile: catReady)
        let cached = try ad(try reader.jobstat())
        let cacheKb = try #require(cached.int("MemoryCacheKb"))
        #expect(cacheKb >= 200 * 1024, "MemoryCacheKb \(cacheKb) after reading 256 MiB")
        #expect((cached.int("ResidentSetSize") ?? .max) < 16 * 1024, "page cache inflated ResidentSetSize: \(cached)")
    }

    @Test("a CPU-bound job of about 1 s of user time shows RemoteUserCpu near 1.0 (a real) and little RemoteSysCpu")
    func userCPU() throws {
        let job = try KernelJob()
        defer { job.remove() }
        // Spins until its own user CPU time (times(2)) reaches 1 s, whatever the machine's load.
        let spun = try job.run("perl -e 'while ((times)[0] < 1.0) { for (1..100000) {} }'")
        #expect(spun.status == 0, "\(spun)")
        let result = try job.jobstat()
        let ad = try ad(result)
        guard case .real(let user) = ad["RemoteUserCpu"] else {
            Issue.record("RemoteUserCpu is not a real: \(result.stdout)")
            return
        }
        #expect(user >= 0.95 && user <= 1.3, "RemoteUserCpu \(user)")
        #expect((ad.real("RemoteSysCpu") ?? 1) < 0.3)
        #expect(ad["CpuThrottledSeconds"] == .real(0))
        #expect(result.stdout.contains("RemoteUserCpu = \(ClassAdWriter.formatReal(user))\n"))
    }

    @Test("OOM kills under a 32 MiB limit: one in the job's cgroup, one in a sub-cgroup; OOMKills counts the subtree")
    func oomKills() throws {
        let job = try KernelJob()
        defer { job.remove() }
        try job.write("32M", to: "memory.limit_in_bytes", controller: "memory")
        if let memory = job.directory("memory"), FileManager.default.fileExists(atPath: memory + "/memory.memsw.limit_in_bytes") {
            try job.write("32M", to: "memory.memsw.limit_in_bytes", controller: "memory")  // no swapping out of it
        }
        let hog = "exec perl -e 'vec($x, 100*1024*1024 - 1, 8) = 1; sleep 5'"
        let first = try job.run(hog)
        #expect(first.status == 128 + SIGKILL, "\(first)")
        let once = try ad(try job.jobstat())
        #expect(once.int("OOMKills") == 1)
        #expect((once.int("MemoryPeakKb") ?? .max) <= 32 * 1024, "the peak cannot pass the limit: \(once)")
        let step = try job.makeSubgroup("step_1", controller: "memory")
        let second = try job.run(hog, subgroup: ("memory", step))
        #expect(second.status == 128 + SIGKILL, "\(second)")
        #expect(try ad(try job.jobstat()).int("OOMKills") == 2, "v1 counts a kill only in the killed task's cgroup")
    }

    @Test("--all: one ad per job under the base with JobCgroup, as ClassAds, a JSON array and Prometheus series")
    func all() throws {
        let first = try KernelJob(id: "10.0")
        defer { first.remove() }
        let second = try first.sibling(id: "10.1")
        defer { second.remove() }
        try first.run("true")
        try second.run("perl -e '$x = 0; $x++ while $x < 1000000'")
        let classads = try first.jobstat(["--all"])
        #expect(classads.status == 0, "\(classads)")
        let ads = ClassAdReader.parseAll(classads.stdout)
        #expect(ads.map { $0.string("JobCgroup") } == ["job_10_0", "job_10_1"])
        #expect(ads.allSatisfy { $0["ResidentSetSize"] != nil && $0["RemoteUserCpu"] != nil && $0["NumPids"] != nil })
        let hasUnified = first.locator.layout.unified != nil
        #expect(ads.allSatisfy { $0["CpuPressureSomeSeconds"] != nil } == hasUnified, "PSI comes from the job's cgroup2 directory")
        if HTCondorClassAds.available { #expect(try OutputChecks.htcondorParses(classads.stdout).count == 2) }
        let json = try first.jobstat(["--all", "--format", "json", "--raw"])
        let array = try OutputChecks.jsonParses(json.stdout, integers: OutputChecks.integerNames, reals: OutputChecks.realNames) as? [[String: Any]]
        #expect(array?.count == 2)
        #expect(array?.allSatisfy { $0["CgroupMemory_total_rss"] != nil && $0["CgroupCpuacct_user"] != nil } == true)
        let prometheus = try first.jobstat(["--all", "--format", "prometheus", "--raw"])
        #expect(prometheus.stdout.contains("jobbox_job_processes{job=\"10_0\"} 0\njobbox_job_processes{job=\"10_1\"} 0\n"))
        if OutputChecks.promtoolAvailable { try OutputChecks.promtoolAccepts(prometheus.stdout) }
    }

    @Test("--pid and --cgroup read the same cgroup as --job; --raw names are valid ClassAd names")
    func pidAndCgroup() throws {
        let job = try KernelJob()
        defer { job.remove() }
        let dir = try TestSupport.TemporaryDirectory("jobstat-pid")
        defer { dir.remove() }
        let ready = dir.path + "/ready"
        try job.start("echo $$ > \(dir.path)/pid && : > \(ready) && exec sleep 120", readyFile: ready)
        let pid = try String(contentsOfFile: dir.path + "/pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let byJob = try ad(try job.jobstat(["--raw"]))
        let byPid = try ad(try job.jobstat(["--pid", pid, "--raw"]))
        #expect(byJob.int("NumPids") == 1)
        #expect(byPid.int("NumPids") == 1)
        #expect(byPid.int("CgroupMemory_total_rss") != nil)
        let memory = try #require(job.directory("memory"))
        let byDirectory = try ad(try TestSupport.run(["jobstat", "--cgroup", memory]))
        #expect(byDirectory.int("NumPids") == 1)
        #expect(byJob.attributes.map(\.name).filter { $0.hasPrefix("Cgroup") }.count > 40)
    }

    @Test("--watch prints a sample every interval until --count, and stops with status 0 when the cgroup disappears")
    func watch() throws {
        let job = try KernelJob()
        defer { job.remove() }
        let counted = try job.jobstat(["--watch", "0.1", "--count", "3"])
        #expect(counted.status == 0, "\(counted)")
        #expect(ClassAdReader.parseAll(counted.stdout).count == 3)
        #expect(counted.stdout.components(separatedBy: "\n\n").count == 3, "samples are separated by one blank line")
        if HTCondorClassAds.available { #expect(try OutputChecks.htcondorParses(counted.stdout).count == 3) }
        let json = try job.jobstat(["--watch", "0.1", "--count", "2", "--format", "json"])
        let lines = json.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        for line in lines { try OutputChecks.jsonParses(String(line), integers: OutputChecks.integerNames, reals: OutputChecks.realNames) }

        // Watch without a count; remove the job's directories once the first sample is out.
        let dir = try TestSupport.TemporaryDirectory("jobstat-watch")
        defer { dir.remove() }
        let command =
            ([
                TestSupport.tool("jobstat"), "--config", job.configDirectory.path + "/jobbox.conf", "--parent", "self", "--job", job.id.rawValue, "--watch",
                "0.1",
            ]).joined(separator: " ")
        let removal = job.jobDirectories.map { "rmdir \($0)" }.joined(separator: " && ")
        let script = """
            \(command) > \(dir.path)/out 2> \(dir.path)/err & pid=$!
            i=0; while [ ! -s \(dir.path)/out ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
            \(removal)
            wait $pid; echo "status=$?"
            """
        let watched = try TestSupport.sh(script)
        #expect(watched.stdout == "status=0\n", "\(watched)")
        let out = try String(contentsOfFile: dir.path + "/out", encoding: .utf8)
        #expect(ClassAdReader.parseAll(out).count >= 1)
        #expect(try String(contentsOfFile: dir.path + "/err", encoding: .utf8).isEmpty)
    }

    @Test("a job whose cgroup does not exist: status 125 and one line naming the directory")
    func missing() throws {
        let job = try KernelJob()
        defer { job.remove() }
        let result = try TestSupport.run(["jobstat", "--config", job.configDirectory.path + "/jobbox.conf", "--parent", "self", "--job", "404.0"])
        #expect(result.status == 125)
        #expect(result.stdout.isEmpty)
        let memory = try #require(job.directory("memory"))
        let expectedPath = String(memory.dropLast(job.id.cgroupName.count)) + "job_404_0"
        #expect(result.stderr == "jobstat: no cgroup for job 404.0: \(expectedPath) does not exist\n")
    }
}
