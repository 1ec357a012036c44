import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore
@testable import JobboxQuota
@testable import JobboxStats

/// The parsers of cgroup stat files, the fixed-buffer reader and the small writers, on byte input.
@Suite("jobstat parsers and writers")
struct JobstatFormatTests {
    func parse<T>(_ text: String, _ parser: (UnsafeRawBufferPointer) -> T) -> T {
        Array(text.utf8).withUnsafeBytes { parser($0) }
    }

    @Test("flat-keyed files: key value lines in order; bad, negative, fractional and overflowing values are left out; no final newline needed")
    func flatKeyed() {
        let stat = parse(
            "anon 4096\nfile 0\nbad line here\nneg -1\nfrac 1.5\nhuge 99999999999999999999\nmax 18446744073709551615\nlast 7", CgroupStatFormat.flatKeyed)
        #expect(stat.entries.map(\.key) == ["anon", "file", "max", "last"])
        #expect(stat.value("anon") == 4096)
        #expect(stat.value("max") == UInt64.max)
        #expect(stat.value("last") == 7)
        #expect(stat.value("huge") == nil)
        #expect(parse("", CgroupStatFormat.flatKeyed).entries.isEmpty)
        #expect(parse("\n\n", CgroupStatFormat.flatKeyed).entries.isEmpty)
    }

    @Test("io.stat: one entry per device, integer fields only (the root's cost.vrate=100.00 is left out)")
    func ioStat() {
        let devices = parse(
            "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6\n253:1 rbytes=10 wbytes=0 rios=1 wios=0 dbytes=0 dios=0 cost.vrate=100.00 cost.usage=5\n",
            CgroupStatFormat.nestedKeyed)
        #expect(devices.map(\.device) == ["8:0", "253:1"])
        #expect(devices[0].fields.map(\.key) == ["rbytes", "wbytes", "rios", "wios", "dbytes", "dios"])
        #expect(devices[1].value("cost.vrate") == nil)
        #expect(devices[1].value("cost.usage") == 5)
        #expect(parse("", CgroupStatFormat.nestedKeyed).isEmpty)
    }

    @Test("v1 blkio: device operation value lines and the grand Total; sums per operation; adding a sub-cgroup's figures")
    func blkio() {
        var stat = parse(
            "8:0 Read 100\n8:0 Write 50\n8:0 Sync 150\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 150\n8:16 Read 1\n8:16 Write 2\nTotal 153\n",
            CgroupStatFormat.blkio)
        #expect(stat.sum("Read") == 101)
        #expect(stat.sum("Write") == 52)
        #expect(stat.total == 153)
        #expect(stat.devices == ["8:0", "8:16"])
        stat.add(parse("8:16 Write 8\n8:32 Read 4\nTotal 12\n", CgroupStatFormat.blkio))
        #expect(stat.sum("Write") == 60)
        #expect(stat.sum("Read") == 105)
        #expect(stat.total == 165)
        #expect(parse("Total 0\n", CgroupStatFormat.blkio).lines.isEmpty)
    }

    @Test("PSI: some and full lines; a kernel without the full line gives only some")
    func pressure() {
        let both = parse("some avg10=1.53 avg60=0.87 avg300=0.25 total=2210383\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", CgroupStatFormat.pressure)
        #expect(both.some == PressureStat.Line(avg10: 1.53, avg60: 0.87, avg300: 0.25, totalMicroseconds: 2_210_383))
        #expect(both.full?.totalMicroseconds == 0)
        let some = parse("some avg10=0.00 avg60=0.00 avg300=0.00 total=1200\n", CgroupStatFormat.pressure)
        #expect(some.full == nil)
        #expect(some.some?.totalMicroseconds == 1200)
        #expect(parse("some avg10=x total=1\n", CgroupStatFormat.pressure).some == nil)
    }

    @Test("single numbers (max is no number) and cgroup.procs line counts")
    func singles() {
        #expect(parse("2684354560\n", CgroupStatFormat.singleNumber) == 2_684_354_560)
        #expect(parse("max\n", CgroupStatFormat.singleNumber) == nil)
        #expect(parse("", CgroupStatFormat.singleNumber) == nil)
        #expect(parse("1\n22\n333\n", CgroupStatFormat.lineCount) == 3)
        #expect(parse("", CgroupStatFormat.lineCount) == 0)
    }

    @Test("the reader reuses one buffer, grows it for a large file, and tells a missing file from a failure")
    func reader() throws {
        let dir = try TestSupport.TemporaryDirectory("jobstat-reader")
        defer { dir.remove() }
        let big = (0..<2000).map { "key\($0) \($0)\n" }.joined()
        try dir.write("big.stat", big)
        try dir.write("small.stat", "a 1\n")
        let reader = StatFileReader(capacity: 256)
        let parsed = try reader.read(dir.path + "/big.stat", CgroupStatFormat.flatKeyed).value
        #expect(parsed?.entries.count == 2000)
        #expect(parsed?.value("key1999") == 1999)
        #expect(reader.capacity >= big.utf8.count)
        let grown = reader.capacity
        #expect(try reader.read(dir.path + "/small.stat", CgroupStatFormat.flatKeyed).value?.value("a") == 1)
        #expect(reader.capacity == grown)
        #expect(try reader.read(dir.path + "/none", CgroupStatFormat.flatKeyed).value == nil)
        #expect(try reader.read(dir.path + "/small.stat/below", CgroupStatFormat.flatKeyed).value == nil)
        #expect(throws: JobboxError.self) { try reader.read(dir.path, CgroupStatFormat.flatKeyed) }
    }

    @Test("raw keys become valid ClassAd names under their controller's prefix")
    func rawNames() throws {
        #expect(
            RawStat(file: "cpu.stat", key: "core_sched.force_idle_usec", value: 0, prefix: "CgroupCpu_").attribute == "CgroupCpu_core_sched_force_idle_usec")
        #expect(RawStat(file: "io.stat", key: "259:0 rbytes", value: 0, prefix: "CgroupIo_").attribute == "CgroupIo_259_0_rbytes")
        #expect(RawStat(file: "x", key: "a-b/c é", value: 0, prefix: "CgroupMemory_").attribute == "CgroupMemory_a_b_c__")
        for name in ["CgroupCpu_core_sched_force_idle_usec", "CgroupIo_259_0_rbytes"] { try ClassAdWriter.checkName(name) }
    }

    @Test("JSON text: strings escaped, reals keep a '.', integers plain, NaN as null")
    func json() throws {
        var ad = ClassAd()
        ad.set("S", .string("a\"b\\c\nd\u{1}"))
        ad.set("I", .integer(-3))
        ad.set("R", .real(2))
        ad.set("E", .real(1e-5))
        ad.set("N", .real(.nan))
        let text = JSONText.object(ad)
        #expect(text == #"{"S":"a\"b\\c\nd\u0001","I":-3,"R":2.0,"E":1e-05,"N":null}"#)
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        #expect(object?["S"] as? String == "a\"b\\c\nd\u{1}")
        #expect((object?["E"] as? NSNumber)?.doubleValue == 1e-5)
    }

    @Test("Prometheus text: label values escaped, one HELP and TYPE per metric, series only for figures the kernel gave")
    func prometheus() {
        var full = CgroupStats()
        full.residentSetBytes = 4096
        full.userCPUSeconds = 1.5
        var partial = CgroupStats()
        partial.userCPUSeconds = 0.25
        let text = PrometheusText.render([
            JobStatEntry(labels: [("job", "a\"b\\c\nd")], stats: full),
            JobStatEntry(labels: [("job", "2")], stats: partial),
        ])
        #expect(
            text == """
                # HELP jobbox_job_memory_rss_bytes Resident memory as HTCondor counts it: anon+shmem (v2), total_rss (v1).
                # TYPE jobbox_job_memory_rss_bytes gauge
                jobbox_job_memory_rss_bytes{job="a\\"b\\\\c\\nd"} 4096
                # HELP jobbox_job_cpu_user_seconds_total User CPU time of the cgroup's subtree.
                # TYPE jobbox_job_cpu_user_seconds_total counter
                jobbox_job_cpu_user_seconds_total{job="a\\"b\\\\c\\nd"} 1.5
                jobbox_job_cpu_user_seconds_total{job="2"} 0.25

                """)
        #expect(PrometheusText.render([]) == "")
    }

    @Test("the ClassAd of a sample: MemoryUsage rounds ResidentSetSize up to MiB, KiB round up, nothing for missing figures")
    func classAdRounding() throws {
        var stats = CgroupStats()
        stats.residentSetBytes = 1024 * 1024 + 4096
        stats.memoryCacheBytes = 1
        let ad = JobStatRenderer.classAd(JobStatEntry(labels: [], stats: stats))
        #expect(ad.attributes.map(\.name) == ["MemoryUsage", "ResidentSetSize", "MemoryCacheKb"])
        #expect(ad.int("ResidentSetSize") == 1028)
        #expect(ad.int("MemoryUsage") == 2)
        #expect(ad.int("MemoryCacheKb") == 1)
        var exact = CgroupStats()
        exact.residentSetBytes = 100 * 1024 * 1024
        #expect(JobStatRenderer.classAd(JobStatEntry(labels: [], stats: exact)).int("MemoryUsage") == 100)
        #expect(JobStatRenderer.classAd(JobStatEntry(labels: [], stats: CgroupStats())).attributes.isEmpty)
    }

    @Test("the scratch quota's figures: DiskUsage in KiB rounded up, the inode count, limits and reached only when there are any")
    func scratchFigures() {
        var stats = CgroupStats()
        stats.scratch = ScratchUsage(backend: .projectQuota(project: 9), bytes: 4_190_209, files: 8, byteLimit: 4 << 20, fileLimit: 40)
        let ad = JobStatRenderer.classAd(JobStatEntry(labels: [], stats: stats))
        #expect(ad.attributes.map(\.name) == ["DiskUsage", "ScratchDirFileCount", "ScratchQuotaKb", "ScratchQuotaFiles", "ScratchQuotaReached"])
        #expect(ad.int("DiskUsage") == 4093)
        #expect(ad.int("ScratchQuotaKb") == 4096)
        #expect(ad["ScratchQuotaReached"] == .boolean(true))
        let text = PrometheusText.render([JobStatEntry(labels: [("job", "1")], stats: stats)])
        #expect(text.contains("jobbox_job_scratch_bytes{job=\"1\"} 4190209\n"))
        #expect(text.contains("jobbox_job_scratch_quota_reached{job=\"1\"} 1\n"))
        // btrfs after the limit was removed: bytes only.
        stats.scratch = ScratchUsage(backend: .btrfsQgroup(subvolume: 256), bytes: 16384, files: nil, byteLimit: nil, fileLimit: nil)
        #expect(JobStatRenderer.classAd(JobStatEntry(labels: [], stats: stats)).attributes.map(\.name) == ["DiskUsage"])
    }

    @Test("v1 throttle counters on a kernel that counts no device (no throttle rule anywhere) leave the Block attributes out")
    func throttleNotCounting() throws {
        let dir = try TestSupport.TemporaryDirectory("jobstat-throttle")
        defer { dir.remove() }
        try dir.write("blkio/blkio.throttle.io_service_bytes", "Total 0\n")
        try dir.write("blkio/job/blkio.throttle.io_service_bytes_recursive", "Total 0\n")
        try dir.write("blkio/job/blkio.throttle.io_serviced_recursive", "Total 0\n")
        let sources = CgroupStatSources(block: .init(directory: dir.path + "/blkio/job", version: .v1), blockRoot: dir.path + "/blkio")
        let silent = try CgroupSampler(sources: sources, includeRaw: true).sample()
        #expect(silent.blockWriteBytes == nil)
        #expect(silent.raw.map(\.attribute) == ["CgroupBlkio_io_service_bytes_Total", "CgroupBlkio_io_serviced_Total"])
        // Once one disk counts, a job without I/O on it has a true zero.
        try dir.write("blkio/blkio.throttle.io_service_bytes", "254:0 Read 0\n254:0 Write 0\nTotal 0\n")
        let counting = try CgroupSampler(sources: sources).sample()
        #expect(counting.blockWriteBytes == 0)
        #expect(counting.blockWrites == 0)
    }
}
