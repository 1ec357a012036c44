import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore
@testable import JobboxStats

/// A job cgroup made by a test on this machine's real hierarchies, as cg-exec makes them:
/// `<own cgroup>/<unique BASE_CGROUP>/job_<id>` in each v1 hierarchy jobstat reads (or the unified one on v2).
///
/// `remove()` (call it in a `defer`) kills whatever is still inside, then removes every directory it made,
/// deepest first, so nothing is left even when the test fails.
final class KernelJob: @unchecked Sendable {
    /// The v1 controllers a job gets here (cg-exec also makes cpuset and freezer, which jobstat does not read).
    static let controllers = ["memory", "cpu", "cpuacct", "blkio", "pids"]

    let base: String
    let id: JobID
    let locator: JobCgroupLocator
    /// The job's directory per hierarchy (the hierarchy's mount point is the key).
    private(set) var jobDirectories: [String] = []
    private var baseDirectories: [String] = []
    private var extraDirectories: [String] = []
    let configDirectory: TestSupport.TemporaryDirectory
    private var processes: [Process] = []

    /// Makes the base and the job's directory in every hierarchy; `id` names the job.
    init(id: String = "1.0", base: String? = nil) throws {
        self.base = base ?? TestSupport.uniqueName("jbstat")
        self.id = try JobID(id)
        configDirectory = try TestSupport.TemporaryDirectory("jobstat-conf")
        try configDirectory.write("jobbox.conf", "BASE_CGROUP = \(self.base)\nCGROUP_PARENT = self\n")
        let layout = try CgroupLayout.current()
        locator = JobCgroupLocator(layout: layout, parent: .current, base: self.base, membership: try CgroupMembership.read())
        do {
            for hierarchy in Self.hierarchies(layout) {
                guard let baseDirectory = locator.baseDirectory(in: hierarchy), let jobDirectory = locator.jobDirectory(self.id, in: hierarchy) else {
                    continue
                }
                if !baseDirectories.contains(baseDirectory) {
                    try Self.makeDirectory(baseDirectory)
                    baseDirectories.append(baseDirectory)
                }
                try Self.makeDirectory(jobDirectory)
                jobDirectories.append(jobDirectory)
            }
        } catch {
            remove()
            throw error
        }
    }

    /// Another job under the same base (for --all); it shares the base, so remove it before this one.
    func sibling(id: String) throws -> KernelJob {
        try KernelJob(id: id, base: base)
    }

    /// The hierarchies a job is made in: the v1 ones with a controller jobstat reads, and the unified one (on a
    /// hybrid node it has no controllers but keeps PSI per cgroup, and cg-exec makes the job there too).
    static func hierarchies(_ layout: CgroupLayout) -> [CgroupHierarchy] {
        layout.hierarchies.filter { $0.version == .v1 && !$0.controllers.isDisjoint(with: NameSet(controllers)) } + (layout.unified.map { [$0] } ?? [])
    }

    /// The job's directory in the hierarchy with `controller`.
    func directory(_ controller: String) -> String? {
        guard let hierarchy = locator.layout.hierarchy(for: controller) else { return nil }
        return locator.jobDirectory(id, in: hierarchy).flatMap { jobDirectories.contains($0) ? $0 : nil }
    }

    /// Makes `name` below the job in the hierarchy with `controller` (a job's own sub-cgroup).
    func makeSubgroup(_ name: String, controller: String) throws -> String {
        guard let parent = directory(controller) else { throw TestFailure("no \(controller) hierarchy") }
        let path = parent + "/" + name
        try Self.makeDirectory(path)
        extraDirectories.append(path)
        return path
    }

    /// A shell line that moves the shell into every job directory (or, for `controller`, into `subgroup`).
    func enterScript(subgroup: (controller: String, path: String)? = nil) -> String {
        jobDirectories.map { directory in
            var target = directory
            if let subgroup, directory == self.directory(subgroup.controller) { target = subgroup.path }
            return "echo $$ > \(target)/cgroup.procs"
        }.joined(separator: " && ")
    }

    /// Runs `script` in the job and waits for it; returns its status (128+N for signal N).
    @discardableResult
    func run(_ script: String, subgroup: (controller: String, path: String)? = nil) throws -> TestSupport.Result {
        try TestSupport.sh("\(enterScript(subgroup: subgroup)) && { \(script)\n}")
    }

    /// Starts `script` in the job without waiting; it must create `readyFile` when it is ready. Waits for that
    /// (up to 60 s, to get past a busy machine; no assertion depends on the time).
    func start(_ script: String, readyFile: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "\(enterScript()) && { \(script)\n}"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        processes.append(process)
        for _ in 0..<600 {
            if FileManager.default.fileExists(atPath: readyFile) { return }
            if !process.isRunning { throw TestFailure("the job exited with \(process.terminationStatus) before it was ready") }
            usleep(100_000)
        }
        throw TestFailure("the job did not get ready in 60 s")
    }

    /// Runs jobstat on this job with the test's configuration.
    func jobstat(_ arguments: [String] = []) throws -> TestSupport.Result {
        let selects = arguments.contains { ["--all", "--pid", "--cgroup", "--self", "--job"].contains($0) }
        return try TestSupport.run(
            ["jobstat", "--config", configDirectory.path + "/jobbox.conf", "--parent", "self"] + (selects ? [] : ["--job", id.rawValue]) + arguments)
    }

    /// Kills what is left in the job and removes every directory this object made.
    func remove() {
        let all = jobDirectories + extraDirectories
        for _ in 0..<100 {
            var alive = false
            for directory in all {
                for path in CgroupTree.subtree(of: directory) {
                    let pids = (try? String(contentsOfFile: path + "/cgroup.procs", encoding: .utf8)) ?? ""
                    for pid in pids.split(separator: "\n").compactMap({ Int32($0) }) {
                        kill(pid, SIGKILL)
                        alive = true
                    }
                }
            }
            if !alive { break }
            usleep(50_000)
        }
        for process in processes where process.isRunning { process.waitUntilExit() }
        for path in (extraDirectories + jobDirectories).reversed() {
            for child in CgroupTree.subtree(of: path).reversed() { rmdir(child) }
        }
        for path in baseDirectories where CgroupTree.children(of: path).isEmpty { rmdir(path) }
        configDirectory.remove()
    }

    static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw TestFailure("mkdir \(path): \(String(cString: strerror(errno)))") }
    }

    /// Writes a cgroup knob of this job.
    func write(_ value: String, to file: String, controller: String) throws {
        guard let directory = directory(controller) else { throw TestFailure("no \(controller) hierarchy") }
        try SmallFile.write(value, to: directory + "/" + file)
    }
}

/// A scratch directory on a real block device for `dd oflag=direct`: /tmp when it is on one, else an ext4
/// filesystem on a loop device made for the test.
final class BlockScratch {
    let path: String
    /// `major:minor` of the whole disk the I/O goes to.
    let disk: String
    /// What the test used, for its messages.
    let description: String
    private var cleanups: [() -> Void] = []

    init() throws {
        let probe = try TestSupport.TemporaryDirectory("jobstat-io")
        cleanups.append { probe.remove() }
        var info = stat()
        // JOBSTAT_TEST_LOOP=1 takes the loop-device path on a machine whose /tmp is on a disk.
        let forceLoop = ProcessInfo.processInfo.environment["JOBSTAT_TEST_LOOP"] == "1"
        if !forceLoop, stat(probe.path, &info) == 0, let disk = Self.wholeDisk(major: Self.major(info.st_dev), minor: Self.minor(info.st_dev)) {
            path = probe.path
            self.disk = disk
            description = "\(probe.path) on the block device \(disk)"
            return
        }
        // The scratch filesystem is not on a block device (tmpfs, overlay): make one.
        let image = probe.path + "/disk.img"
        let mountPoint = probe.path + "/mnt"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let loop = try TestSupport.sh("truncate -s 256M \(image) && losetup --find --show \(image)")
        guard loop.status == 0 else { throw TestFailure("losetup: \(loop)") }
        let device = loop.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        cleanups.append { _ = try? TestSupport.sh("losetup -d \(device)") }
        let made = try TestSupport.sh("mkfs.ext4 -q \(device) && mount \(device) \(mountPoint)")
        guard made.status == 0 else {
            for cleanup in cleanups.reversed() { cleanup() }
            throw TestFailure("mkfs/mount: \(made)")
        }
        cleanups.append { _ = try? TestSupport.sh("umount \(mountPoint)") }
        var loopInfo = stat()
        stat(device, &loopInfo)
        path = mountPoint
        disk = "\(Self.major(loopInfo.st_rdev)):\(Self.minor(loopInfo.st_rdev))"
        description = "ext4 on the loop device \(device) (\(disk))" + (forceLoop ? " (JOBSTAT_TEST_LOOP=1)" : ", since /tmp is not on a block device")
    }

    /// The whole disk of a device (throttle rules take disks, not partitions), or nil when it is not a block device.
    static func wholeDisk(major: UInt32, minor: UInt32) -> String? {
        let sys = "/sys/dev/block/\(major):\(minor)"
        guard major != 0, FileManager.default.fileExists(atPath: sys) else { return nil }
        if FileManager.default.fileExists(atPath: sys + "/partition"),
            let parent = try? String(contentsOfFile: sys + "/../dev", encoding: .utf8)
        {
            return parent.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return "\(major):\(minor)"
    }

    /// glibc's encoding of dev_t (gnu_dev_major/minor are macros Swift does not import).
    static func major(_ dev: UInt) -> UInt32 {
        let device = UInt64(dev)
        return UInt32(truncatingIfNeeded: ((device >> 8) & 0xfff) | ((device >> 32) & ~UInt64(0xfff)))
    }
    static func minor(_ dev: UInt) -> UInt32 {
        let device = UInt64(dev)
        return UInt32(truncatingIfNeeded: (device & 0xff) | ((device >> 12) & ~UInt64(0xff)))
    }

    func remove() {
        for cleanup in cleanups.reversed() { cleanup() }
        cleanups.removeAll()
    }
}
