import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore
@testable import JobboxStats

/// jobstat on fixture trees of nodes this machine cannot be: an EL6 node of the seed's era (v1, no oom_kill, no
/// `_recursive` blkio files), a v2 node with every controller (Linux 6.6), and an older v2 node (Linux 5.10)
/// without memory.peak and with io and cpu not enabled for the job. Golden outputs are in each fixture's
/// `expected/`; set JOBBOX_WRITE_GOLDEN=1 to rewrite them after a deliberate change (then review the diff).
@Suite("jobstat on fixture trees")
struct JobstatFixtureTests {
    static let writeGolden = ProcessInfo.processInfo.environment["JOBBOX_WRITE_GOLDEN"] == "1"

    /// Compares `text` with the golden file (or rewrites it).
    func expectGolden(_ text: String, _ fixture: JobstatFixture, _ file: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        if Self.writeGolden {
            try FileManager.default.createDirectory(atPath: fixture.directory + "/expected", withIntermediateDirectories: true)
            try text.write(toFile: fixture.directory + "/expected/" + file, atomically: true, encoding: .utf8)
        }
        #expect(text == (try fixture.golden(file)), "\(fixture.name)/expected/\(file) differs", sourceLocation: sourceLocation)
    }

    @Test("EL6 (the seed's era): v1 figures with HTCondor's names and units; blkio summed over the job's sub-cgroups; no oom_kill line, so no OOMKills")
    func el6() throws {
        let fixture = try JobstatFixture("v1-el6")
        let job = try JobID("1234.0")
        let text = try fixture.output(JobStatRequest(selection: .job(job)), parent: .root)
        try expectGolden(text, fixture, "job.classad")
        let ad = ClassAdReader.parse(text)
        // memory.stat total_rss 2040643584 B = 1992816 KiB; MemoryUsage = ceil(1992816/1024) MiB.
        #expect(ad.int("ResidentSetSize") == 1_992_816)
        #expect(ad.int("MemoryUsage") == 1947)
        #expect(ad.int("MemoryPeakKb") == 2_415_919_104 / 1024)
        #expect(ad.int("MemoryCacheKb") == 318_767_104 / 1024)
        #expect(ad.int("MemorySwapKb") == 0)
        #expect(ad["OOMKills"] == nil, "EL6's memory.oom_control has no oom_kill: the figure must be left out, not 0")
        // cpuacct.stat in USER_HZ (100 on Linux).
        #expect(ad["RemoteUserCpu"] == .real(3618.43))
        #expect(ad["RemoteSysCpu"] == .real(47.21))
        #expect(ad["CpuThrottledSeconds"] == .real(0))
        // blkio.throttle.* count one cgroup each: the job's own lines plus step_1's, over both disks.
        #expect(ad.int("BlockReadBytes") == 1_048_576 + 4096 + 2_147_483_648)
        #expect(ad.int("BlockWriteBytes") == 16384 + 8_589_934_592)
        #expect(ad.int("BlockReads") == 256 + 1 + 524_288)
        #expect(ad.int("BlockWrites") == 4 + 2_097_152)
        #expect(ad.int("BlockReadKbytes") == (1_048_576 + 4096 + 2_147_483_648) / 1024)
        // No pids controller on EL6: the memory hierarchy's cgroup.procs, job and step_1.
        #expect(ad.int("NumPids") == 4)
        #expect(!text.contains("Pressure"), "v1 has no PSI")
        try OutputChecks.htcondorParses(text)
    }

    @Test("EL6 --raw: every key of memory.stat, cpuacct.stat, cpu.stat and the blkio files, prefixed and valid names")
    func el6Raw() throws {
        let fixture = try JobstatFixture("v1-el6")
        let text = try fixture.output(JobStatRequest(selection: .job(try JobID("1234.0")), raw: true), parent: .root)
        try expectGolden(text, fixture, "job-raw.classad")
        let ad = ClassAdReader.parse(text)
        #expect(ad.int("CgroupMemory_total_rss") == 2_040_643_584)
        #expect(ad.int("CgroupMemory_hierarchical_memory_limit") == 4_294_967_296)
        #expect(ad.int("CgroupCpuacct_user") == 361_843)
        #expect(ad.int("CgroupCpu_nr_throttled") == 0)
        // Summed over the subtree, per device and operation, named <file>_<major>_<minor>_<operation>.
        #expect(ad.int("CgroupBlkio_io_serviced_8_16_Write") == 2_097_156)
        #expect(ad.int("CgroupBlkio_io_service_bytes_8_0_Read") == 2_148_532_224)
        #expect(ad.int("CgroupBlkio_io_serviced_Total") == 260 + 2_621_441)
        try OutputChecks.htcondorParses(text)
    }

    @Test("EL6 as JSON and as Prometheus text")
    func el6OtherFormats() throws {
        let fixture = try JobstatFixture("v1-el6")
        let json = try fixture.output(JobStatRequest(selection: .job(try JobID("1234.0")), format: .json), parent: .root)
        try expectGolden(json, fixture, "job.json")
        let object = try OutputChecks.jsonParses(json, integers: OutputChecks.integerNames, reals: OutputChecks.realNames) as? [String: Any]
        #expect((object?["BlockWriteBytes"] as? NSNumber)?.int64Value == 8_589_950_976)
        #expect((object?["RemoteUserCpu"] as? NSNumber)?.doubleValue == 3618.43)
        let prometheus = try fixture.output(JobStatRequest(selection: .job(try JobID("1234.0")), format: .prometheus), parent: .root)
        try expectGolden(prometheus, fixture, "job.prom")
        #expect(prometheus.contains("jobbox_job_block_written_bytes_total{job=\"1234_0\"} 8589950976\n"))
        #expect(prometheus.contains("jobbox_job_memory_rss_bytes{job=\"1234_0\"} 2040643584\n"))
        #expect(!prometheus.contains("oom_kills"))
    }

    @Test("EL6 Prometheus text passes promtool check metrics", .enabled(if: OutputChecks.promtoolAvailable, "needs promtool (Debian's prometheus package)"))
    func el6Promtool() throws {
        let fixture = try JobstatFixture("v1-el6")
        try OutputChecks.promtoolAccepts(try fixture.output(JobStatRequest(selection: .job(try JobID("1234.0")), format: .prometheus), parent: .root))
        try OutputChecks.promtoolAccepts(
            try fixture.output(JobStatRequest(selection: .job(try JobID("1234.0")), format: .prometheus, raw: true), parent: .root))
    }

    @Test("v2 (Linux 6.6): anon+shmem, memory.peak, memory.events, cpu.stat, io.stat over devices, PSI; the leaf and a delegated sibling counted")
    func v2() throws {
        let fixture = try JobstatFixture("v2-6.6")
        let text = try fixture.output(JobStatRequest(selection: .job(try JobID("1234.0"))), parent: .current)
        try expectGolden(text, fixture, "job.classad")
        let ad = ClassAdReader.parse(text)
        #expect(ad.int("ResidentSetSize") == (2_147_483_648 + 16_777_216) / 1024)
        #expect(ad.int("MemoryUsage") == 2064)
        #expect(ad.int("MemoryPeakKb") == 2_621_440)
        #expect(ad.int("MemoryCacheKb") == 367_001_600 / 1024)
        #expect(ad.int("MemorySwapKb") == 0)
        #expect(ad.int("OOMKills") == 1)
        #expect(ad["RemoteUserCpu"] == .real(6.512345))
        #expect(ad["RemoteSysCpu"] == .real(0.830676))
        #expect(ad["CpuThrottledSeconds"] == .real(1.234567))
        #expect(ad.int("BlockReadBytes") == 1_073_741_824 + 4096)
        #expect(ad.int("BlockWriteBytes") == 33_554_432)
        #expect(ad.int("BlockReads") == 8193)
        #expect(ad.int("BlockWrites") == 256)
        #expect(ad.int("NumPids") == 3)
        #expect(ad["CpuPressureSomeAvg10"] == .real(1.53))
        #expect(ad["CpuPressureSomeSeconds"] == .real(2.210383))
        #expect(ad["IOPressureFullAvg10"] == .real(11.92))
        #expect(ad["MemoryPressureFullSeconds"] == .real(0.398765))
        try OutputChecks.htcondorParses(text)
    }

    @Test("v2 --raw: memory.stat, memory.events, cpu.stat and io.stat per device, names sanitized")
    func v2Raw() throws {
        let fixture = try JobstatFixture("v2-6.6")
        let text = try fixture.output(JobStatRequest(selection: .job(try JobID("1234.0")), raw: true), parent: .current)
        try expectGolden(text, fixture, "job-raw.classad")
        let ad = ClassAdReader.parse(text)
        #expect(ad.int("CgroupMemory_anon") == 2_147_483_648)
        #expect(ad.int("CgroupMemory_thp_collapse_alloc") == 0)
        #expect(ad.int("CgroupMemoryEvents_max") == 3)
        #expect(ad.int("CgroupCpu_core_sched_force_idle_usec") == 0)
        #expect(ad.int("CgroupCpu_nr_throttled") == 14)
        #expect(ad.int("CgroupIo_259_0_rbytes") == 1_073_741_824)
        #expect(ad.int("CgroupIo_253_0_rios") == 1)
        try OutputChecks.htcondorParses(text)
        let prometheus = try fixture.output(JobStatRequest(selection: .job(try JobID("1234.0")), format: .prometheus, raw: true), parent: .current)
        #expect(prometheus.contains("jobbox_job_cgroup_stat{job=\"1234_0\",file=\"cpu.stat\",key=\"core_sched.force_idle_usec\"} 0\n"))
        #expect(prometheus.contains("jobbox_job_cgroup_stat{job=\"1234_0\",file=\"io.stat\",key=\"259:0 wbytes\"} 33554432\n"))
    }

    @Test("v2 --all: one ad per job_* (others ignored), blank-line separated; a JSON array; Prometheus series labelled by job")
    func v2All() throws {
        let fixture = try JobstatFixture("v2-6.6")
        let classad = try fixture.output(JobStatRequest(selection: .all), parent: .current)
        try expectGolden(classad, fixture, "all.classad")
        let ads = ClassAdReader.parseAll(classad)
        #expect(ads.map { $0.string("JobCgroup") } == ["job_1234_0", "job_1234_1"])
        #expect(ads.last?.int("BlockWriteBytes") == 0, "v2 counts every device: an empty io.stat is a real zero")
        #expect(ads.last?.int("NumPids") == 1)
        let parsed = try OutputChecks.htcondorParses(classad)
        #expect(parsed.count == 2)
        let json = try fixture.output(JobStatRequest(selection: .all, format: .json), parent: .current)
        try expectGolden(json, fixture, "all.json")
        let array = try OutputChecks.jsonParses(json, integers: OutputChecks.integerNames, reals: OutputChecks.realNames) as? [[String: Any]]
        #expect(array?.compactMap { $0["JobCgroup"] as? String } == ["job_1234_0", "job_1234_1"])
        let prometheus = try fixture.output(JobStatRequest(selection: .all, format: .prometheus), parent: .current)
        try expectGolden(prometheus, fixture, "all.prom")
        #expect(prometheus.components(separatedBy: "# TYPE jobbox_job_memory_rss_bytes gauge\n").count == 2, "one TYPE line per metric")
        #expect(prometheus.contains("jobbox_job_memory_rss_bytes{job=\"1234_0\"} 2164260864\njobbox_job_memory_rss_bytes{job=\"1234_1\"} 1048576\n"))
        #expect(prometheus.contains("jobbox_job_pressure_io_some_avg10_ratio{job=\"1234_0\"} 0.124\n"))
    }

    @Test(
        "v2 Prometheus text (one job, --all, --raw) passes promtool check metrics",
        .enabled(if: OutputChecks.promtoolAvailable, "needs promtool (Debian's prometheus package)"))
    func v2Promtool() throws {
        let fixture = try JobstatFixture("v2-6.6")
        try OutputChecks.promtoolAccepts(try fixture.output(JobStatRequest(selection: .job(try JobID("1234.0")), format: .prometheus), parent: .current))
        try OutputChecks.promtoolAccepts(try fixture.output(JobStatRequest(selection: .all, format: .prometheus, raw: true), parent: .current))
    }

    @Test("v2 on Linux 5.10: no memory.peak, no io.stat, no throttled_usec, cpu.pressure without full: those attributes are left out")
    func v2Old() throws {
        let fixture = try JobstatFixture("v2-5.10")
        let text = try fixture.output(JobStatRequest(selection: .job(try JobID("77.batch"))), parent: .root)
        try expectGolden(text, fixture, "job.classad")
        let ad = ClassAdReader.parse(text)
        for missing in [
            "MemoryPeakKb", "CpuThrottledSeconds", "BlockReadBytes", "BlockWriteBytes", "BlockReads", "BlockWrites", "BlockReadKbytes", "CpuPressureFullAvg10",
            "CpuPressureFullSeconds",
        ] {
            #expect(ad[missing] == nil, "\(missing) must be left out, not made up")
        }
        #expect(ad.int("ResidentSetSize") == 102_400)
        #expect(ad.int("MemoryUsage") == 100)
        #expect(ad.int("MemoryCacheKb") == 204_800)
        #expect(ad.int("OOMKills") == 0)
        #expect(ad["RemoteUserCpu"] == .real(0.99))
        #expect(ad["CpuPressureSomeSeconds"] == .real(0.0012))
        #expect(ad.int("NumPids") == 1)
        try OutputChecks.htcondorParses(text)
        let json = try fixture.output(JobStatRequest(selection: .job(try JobID("77.batch")), format: .json), parent: .root)
        try expectGolden(json, fixture, "job.json")
        try OutputChecks.jsonParses(json, integers: OutputChecks.integerNames, reals: OutputChecks.realNames)
    }

    @Test("a job without a cgroup is an error naming the directory, not an empty ad; --all on a node without jobs prints nothing")
    func missing() throws {
        let fixture = try JobstatFixture("v2-6.6")
        let planner = fixture.planner(parent: .current)
        guard case .missing(let error) = try planner.targets(.job(try JobID("99.0"))) else {
            Issue.record("a missing job was found")
            return
        }
        #expect(
            error.description == "no cgroup for job 99.0: \(fixture.directory)/tree/sys/fs/cgroup/system.slice/condor.service/jobbox/job_99_0 does not exist")
        #expect(error.exitStatus == 125)
        let runner = JobStatRunner(request: JobStatRequest(selection: .job(try JobID("99.0"))), planner: planner, write: { Issue.record("wrote \($0)") })
        #expect(throws: error) { try runner.run() }
        let empty = try JobstatFixture("v2-6.6").output(JobStatRequest(selection: .all, format: .json), parent: .root)
        #expect(empty == "[]\n")
    }

    @Test("--cgroup takes a cgroup path or a directory under a cgroup mount; relative paths and '..' are refused")
    func cgroupPaths() throws {
        let fixture = try JobstatFixture("v2-6.6")
        let byPath = try fixture.output(JobStatRequest(selection: .cgroup("/system.slice/condor.service/jobbox/job_1234_0")), parent: .root)
        let byDirectory = try fixture.output(JobStatRequest(selection: .cgroup("/sys/fs/cgroup/system.slice/condor.service/jobbox/job_1234_0/")), parent: .root)
        #expect(byPath == byDirectory)
        #expect(byPath == (try fixture.golden("job.classad")))
        let leaf = ClassAdReader.parse(
            try fixture.output(JobStatRequest(selection: .cgroup("/system.slice/condor.service/jobbox/job_1234_0/main")), parent: .root))
        #expect(leaf.int("NumPids") == 2, "the leaf alone has the job's two processes, not the sibling's")
        let prometheus = try fixture.output(
            JobStatRequest(selection: .cgroup("/system.slice/condor.service/jobbox/job_1234_0"), format: .prometheus), parent: .root)
        #expect(prometheus.contains("jobbox_job_processes{cgroup=\"/system.slice/condor.service/jobbox/job_1234_0\"} 3\n"))
        for bad in ["relative/path", "/a/../b", "/a/./b"] {
            #expect(throws: JobboxError.self) { try fixture.planner(parent: .root).targets(.cgroup(bad)) }
        }
    }

    @Test("--self reads the caller's own cgroup (the service's, here)")
    func current() throws {
        let fixture = try JobstatFixture("v2-5.10")
        guard case .found(let targets) = try fixture.planner(parent: .root).targets(.current) else {
            Issue.record("--self found nothing")
            return
        }
        #expect(targets.count == 1)
        #expect(targets.first?.labels.first?.value == "/system.slice/slurmd.service")
    }
}
