import Foundation
import JobboxTestSupport
import SystemPackage
import Testing

@testable import JobboxCgroups
@testable import JobboxCore

/// cg-exec switches on cgroup v1 block I/O accounting on the real kernel: since Linux commit a3166c51702b a disk
/// counts nothing in `blkio.throttle.io_service_bytes` until some cgroup writes a throttle rule for it.
@Suite("cg-exec block I/O accounting on the real kernel (cgroup v1)", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct CgExecBlockIOKernelTests {
    /// The devices the root of the blkio hierarchy lists: those whose I/O the kernel counts.
    static func countingDevices(_ sandbox: CgExecSandbox) throws -> Set<String> {
        let root = try sandbox.hierarchy("blkio").mountPoint
        let text = try String(contentsOfFile: root + "/" + BlockIOAccounting.statisticsFile, encoding: .utf8)
        return Set(
            text.split(separator: "\n").compactMap { line in
                let fields = line.split(separator: " ")
                return fields.count == 3 ? String(fields[0]) : nil
            })
    }

    /// A new loop disk the kernel does not count yet. Any cg-exec running beside this test switches on every disk
    /// with a medium, this one too if it starts between the binding and the check: then another disk is made.
    static func uncountedDisk(_ sandbox: CgExecSandbox) throws -> FreshLoopDisk {
        for _ in 0..<3 {
            let disk = try FreshLoopDisk()
            if try !countingDevices(sandbox).contains(disk.device) { return disk }
            disk.remove()
        }
        throw TestFailure("three new loop disks were counted before the job ran: something switches on every new disk at once")
    }

    @Test("a job writing 16 MiB with dd oflag=direct to a new loop disk shows BlockWriteBytes >= 16 MiB; the rule cg-exec wrote limits nothing")
    func directWritesCount() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        let disk = try Self.uncountedDisk(sandbox)
        defer { disk.remove() }
        let job = "blk.1"
        let rules = try sandbox.jobDirectory("blkio", job) + "/" + BlockIOAccounting.ruleFile
        // The job prints its own read_bps_device after writing: the rule cg-exec wrote must not show as a limit.
        let result = try sandbox.run([
            "--job", job, "--", "sh", "-c", "dd if=/dev/zero of=\(disk.path) bs=1M count=16 oflag=direct status=none && cat \(rules)",
        ])
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.isEmpty, "cg-exec warned: \(result.stderr)")
        #expect(!result.stdout.contains(disk.device), "a limit on \(disk.device): \(result.stdout)")
        #expect(try Self.countingDevices(sandbox).contains(disk.device), "the kernel still does not count \(disk.device)")

        // The disk's own line in the job's statistics: the job's writes reached the new disk and were counted there.
        let statistics = try sandbox.file("blkio", job, BlockIOAccounting.statisticsFile)
        let written = statistics.split(separator: "\n").first { $0.hasPrefix("\(disk.device) Write ") }.flatMap { UInt64($0.split(separator: " ")[2]) }
        #expect((written ?? 0) >= 16 << 20, "\(disk.device) in \(BlockIOAccounting.statisticsFile): \(statistics)")

        let stat = try TestSupport.run(["jobstat", "--config", sandbox.configPath, "--job", job])
        #expect(stat.status == 0, "\(stat)")
        let ad = ClassAdReader.parse(stat.stdout)
        let bytes = try #require(ad.int("BlockWriteBytes"), "no BlockWriteBytes: \(stat.stdout)")
        #expect(bytes >= 16 << 20, "BlockWriteBytes \(bytes) for 16 MiB written with O_DIRECT to \(disk.path)")
        #expect((ad.int("BlockWrites") ?? 0) >= 16)
    }
}

/// The disk list and the accounting switch against fixture trees and a recording cgroup filesystem.
@Suite("cg-exec block I/O accounting (fixtures)")
struct BlockIOAccountingTests {
    /// A /sys/block of its own: `name` -> (dev, size in sectors).
    static func sysBlock(_ disks: [String: (String, String)]) throws -> TestSupport.TemporaryDirectory {
        let directory = try TestSupport.TemporaryDirectory("jobbox-sysblock")
        for (name, (dev, size)) in disks {
            try directory.write(name + "/dev", dev + "\n")
            try directory.write(name + "/size", size + "\n")
        }
        return directory
    }

    /// Cgroup files in memory; writes to a rule file record the value, or fail with the errno set for the device.
    final class RecordingFilesystem: CgroupFilesystem {
        var files: [String: String]
        var written: [String] = []
        var failures: [String: Errno] = [:]

        init(files: [String: String]) { self.files = files }

        func makeDirectory(_ path: String) throws(Errno) { throw .notPermitted }
        func removeDirectory(_ path: String) throws(Errno) { throw .notPermitted }
        func read(_ path: String) throws(Errno) -> String {
            guard let text = files[path] else { throw .noSuchFileOrDirectory }
            return text
        }
        func write(_ text: String, to path: String) throws(Errno) {
            guard files[path] != nil else { throw .noSuchFileOrDirectory }
            if let device = text.split(separator: " ").first, let error = failures[String(device)] { throw error }
            written.append(text)
        }
        func exists(_ path: String) -> Bool { files[path] != nil }
        func subdirectories(of path: String) throws(Errno) -> [String] { [] }
    }

    static let job = "/cg/blkio/jobbox/job_1"
    static let rules = job + "/" + BlockIOAccounting.ruleFile
    static let root = "/cg/blkio"

    @Test("/sys/block: disks with a medium, sorted; size 0 (unbound loop, unset zram) and entries without dev are left out")
    func disksWithMedia() throws {
        let sys = try Self.sysBlock(["vda": ("254:0", "536870912"), "loop0": ("7:0", "0"), "sdb": ("8:16", "2048"), "zram0": ("253:0", "0")])
        defer { sys.remove() }
        try FileManager.default.createDirectory(atPath: sys.path + "/odd", withIntermediateDirectories: false)
        #expect(try BlockDisks(directory: sys.path).withMedia() == [BlockDisk(name: "sdb", device: "8:16"), BlockDisk(name: "vda", device: "254:0")])
    }

    @Test("the no-limit rule goes to each disk the hierarchy's root does not list as counting, and to no other")
    func onlyUncountedDisks() throws {
        let sys = try Self.sysBlock(["vda": ("254:0", "100"), "sdb": ("8:16", "100"), "sdc": ("8:32", "100")])
        defer { sys.remove() }
        let counting = "254:0 Read 0\n254:0 Write 4096\n254:0 Sync 0\n254:0 Async 4096\n254:0 Discard 0\n254:0 Total 4096\nTotal 4096\n"
        let filesystem = RecordingFilesystem(files: [Self.rules: "", Self.root + "/" + BlockIOAccounting.statisticsFile: counting])
        let warnings = BlockIOAccounting(filesystem: filesystem, disks: BlockDisks(directory: sys.path)).switchOn(in: Self.job, hierarchyRoot: Self.root)
        #expect(warnings.isEmpty)
        #expect(filesystem.written == ["8:16 0", "8:32 0"])
    }

    @Test("a kernel without blk-throttle (no rule file) gets no write and no warning")
    func noThrottleFiles() throws {
        let sys = try Self.sysBlock(["vda": ("254:0", "100")])
        defer { sys.remove() }
        let filesystem = RecordingFilesystem(files: [:])
        #expect(BlockIOAccounting(filesystem: filesystem, disks: BlockDisks(directory: sys.path)).switchOn(in: Self.job, hierarchyRoot: Self.root).isEmpty)
        #expect(filesystem.written.isEmpty)
    }

    @Test("a disk that went away (ENODEV, ENXIO) is skipped quietly; any other refusal is one warning line naming the disks, the file and why")
    func failures() throws {
        let sys = try Self.sysBlock(["vda": ("254:0", "100"), "sdb": ("8:16", "100"), "sdc": ("8:32", "100"), "nvme0c0n1": ("259:1", "100")])
        defer { sys.remove() }
        let filesystem = RecordingFilesystem(files: [Self.rules: ""])
        filesystem.failures = ["8:16": .operationNotSupportedByDevice, "259:1": .noSuchAddressOrDevice, "8:32": .permissionDenied, "254:0": .noMemory]
        let warnings = BlockIOAccounting(filesystem: filesystem, disks: BlockDisks(directory: sys.path)).switchOn(in: Self.job, hierarchyRoot: Self.root)
        #expect(warnings.count == 1)
        let warning = try #require(warnings.first)
        #expect(warning.hasPrefix("block I/O accounting stays off for sdc (8:32): \(Errno.permissionDenied), vda (254:0): \(Errno.noMemory): "), "\(warning)")
        #expect(warning.contains(Self.rules))
        #expect(!warning.contains("sdb") && !warning.contains("nvme0c0n1"))
        #expect(!warning.contains("\n"))
    }

    @Test("an unreadable /sys/block is one warning, and the job goes on")
    func noSysBlock() {
        let filesystem = RecordingFilesystem(files: [Self.rules: ""])
        let warnings = BlockIOAccounting(filesystem: filesystem, disks: BlockDisks(directory: "/nonexistent/sys/block")).switchOn(
            in: Self.job, hierarchyRoot: Self.root)
        #expect(warnings == ["block I/O accounting not switched on: cannot list the disks in /nonexistent/sys/block: \(Errno.noSuchFileOrDirectory)"])
        #expect(filesystem.written.isEmpty)
    }
}
