import Foundation
import JobboxTestSupport
import SystemPackage

@testable import JobboxCgroups
@testable import JobboxCore

/// A cgroup v2 hierarchy as a plain directory tree, for the v2 paths this machine's kernel cannot reach (its
/// cgroup2 mount has no controllers). It keeps the kernel's rules that cg-exec depends on:
/// - `mkdir` creates the core files and, for each controller the parent's `cgroup.subtree_control` enables, that
///   controller's files; `cgroup.controllers` lists what the parent enabled;
/// - writing a file that does not exist is ENOENT (cgroupfs never creates files on write);
/// - `cgroup.subtree_control` takes `+x -y`, refuses a controller the cgroup does not have (ENOENT) and any
///   change in a non-root cgroup that has processes (EBUSY), and gives existing children the files;
/// - `cgroup.procs` moves a pid (it leaves every other cgroup), refused (EBUSY) where controllers are enabled
///   below (no internal processes);
/// - `cpuset.cpus` must lie within the parent's effective cpus (EINVAL);
/// - `rmdir` is EBUSY while the cgroup has children or processes;
/// - `denied` paths answer EACCES, as for a user the subtree is not delegated to.
/// Every mutation is logged (relative to the mount) so tests can check order.
final class FixtureCgroupV2: CgroupFilesystem {
    let directory: TestSupport.TemporaryDirectory
    let mountPoint: String
    var denied: Set<String> = []
    private(set) var log: [String] = []
    /// The device fences attached, by cgroup directory (relative to the mount).
    private(set) var deviceFences: [String: DeviceFence] = [:]

    /// Records the fence instead of loading a program (which needs the kernel's cgroup).
    func attachDeviceFence(_ fence: DeviceFence, to path: String) throws(JobboxError) {
        let relative = String(path.dropFirst(mountPoint.count))
        deviceFences[relative] = fence
        log.append("attach device fence \(relative)")
    }

    static let controllerFiles: [String: [String: String]] = [
        "memory": [
            "memory.max": "max\n", "memory.low": "0\n", "memory.high": "max\n", "memory.swap.max": "max\n", "memory.oom.group": "0\n",
            "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n", "memory.current": "0\n",
        ],
        "cpu": ["cpu.weight": "100\n", "cpu.max": "max 100000\n"],
        "cpuset": ["cpuset.cpus": "\n", "cpuset.mems": "\n", "cpuset.cpus.effective": "0-3\n", "cpuset.mems.effective": "0\n"],
        "io": ["io.weight": "default 100\n", "io.stat": ""],
        "pids": ["pids.max": "max\n", "pids.current": "0\n"],
    ]

    /// A hierarchy mounted at `<tmp>/sys/fs/cgroup` whose root offers `controllers` and enables `enabled`.
    init(controllers: [String], enabled: [String] = []) throws {
        directory = try TestSupport.TemporaryDirectory("jobbox-v2fixture")
        mountPoint = directory.path + "/sys/fs/cgroup"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try put(mountPoint + "/cgroup.controllers", controllers.joined(separator: " ") + "\n")
        try put(mountPoint + "/cgroup.subtree_control", enabled.joined(separator: " ") + "\n")
        try put(mountPoint + "/cgroup.procs", "")
        try put(mountPoint + "/cpuset.cpus.effective", "0-3\n")
        try put(mountPoint + "/cpuset.mems.effective", "0\n")
    }

    func remove() { directory.remove() }

    /// The layout a process sees with this hierarchy as its only cgroup mount.
    var layout: CgroupLayout {
        let mounts = MountInfo.parse("35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n")
        return CgroupLayout(mounts: mounts, fsRoot: directory.path)
    }

    /// A locator for `--parent` (`self`, a path) and base `jobbox`, for a process in cgroup `ownPath`.
    func locator(parent: CgroupParent, ownPath: String = "/") -> JobCgroupLocator {
        JobCgroupLocator(layout: layout, parent: parent, base: "jobbox", membership: CgroupMembership(parsing: "0::\(ownPath)\n"))
    }

    /// Makes a pre-existing cgroup (relative path) with `procs` in it, as the node's manager would have.
    func makeCgroup(_ relative: String, procs: [Int32] = []) throws {
        try makeDirectory(mountPoint + relative)
        if !procs.isEmpty { try put(mountPoint + relative + "/cgroup.procs", procs.map { "\($0)\n" }.joined()) }
        log.removeAll()
    }

    func contents(_ relative: String) -> String? {
        try? String(contentsOfFile: mountPoint + relative, encoding: .utf8)
    }

    func words(_ relative: String) -> [String] {
        (contents(relative) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
    }

    func isDirectory(_ relative: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: mountPoint + relative, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    // MARK: CgroupFilesystem

    func makeDirectory(_ path: String) throws(Errno) {
        let parent = CgroupFailure.parentOf(path)
        if denied.contains(parent) || denied.contains(path) { throw .permissionDenied }
        if FileManager.default.fileExists(atPath: path) { throw .fileExists }
        guard FileManager.default.fileExists(atPath: parent) else { throw .noSuchFileOrDirectory }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
            let offered = words(relative(parent) + "/cgroup.subtree_control")
            try put(path + "/cgroup.controllers", offered.joined(separator: " ") + "\n")
            for (file, text) in [
                ("cgroup.subtree_control", "\n"), ("cgroup.procs", ""), ("cgroup.events", "populated 0\nfrozen 0\n"), ("cgroup.freeze", "0\n"),
                ("cgroup.kill", ""), ("cgroup.type", "domain\n"), ("cpu.stat", "usage_usec 0\n"),
            ] {
                try put(path + "/" + file, text)
            }
            for controller in offered { try addFiles(of: controller, to: path) }
        } catch {
            throw .ioError
        }
        log.append("mkdir \(relative(path))")
    }

    func removeDirectory(_ path: String) throws(Errno) {
        guard FileManager.default.fileExists(atPath: path) else { throw .noSuchFileOrDirectory }
        if denied.contains(path) { throw .permissionDenied }
        if (try? subdirectories(of: path))?.isEmpty == false { throw .resourceBusy }
        if !processIDs(in: path).isEmpty { throw .resourceBusy }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            throw .ioError
        }
        log.append("rmdir \(relative(path))")
    }

    func read(_ path: String) throws(Errno) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .noSuchFileOrDirectory }
        return text
    }

    func write(_ text: String, to path: String) throws(Errno) {
        guard FileManager.default.fileExists(atPath: path) else { throw .noSuchFileOrDirectory }
        if denied.contains(path) { throw .permissionDenied }
        let cgroup = CgroupFailure.parentOf(path)
        let name = String(path.split(separator: "/").last ?? "")
        switch name {
        case "cgroup.subtree_control":
            var enabled = words(relative(path))
            let available = Set(words(relative(cgroup) + "/cgroup.controllers"))
            for token in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
                let controller = String(token.dropFirst())
                guard available.contains(controller) else { throw .noSuchFileOrDirectory }
                if token.hasPrefix("+") && !enabled.contains(controller) { enabled.append(controller) }
                if token.hasPrefix("-") { enabled.removeAll { $0 == controller } }
            }
            if cgroup != mountPoint && !processIDs(in: cgroup).isEmpty { throw .resourceBusy }
            try? put(path, enabled.joined(separator: " ") + "\n")
            for child in (try? subdirectories(of: cgroup)) ?? [] {
                try? put(cgroup + "/" + child + "/cgroup.controllers", enabled.joined(separator: " ") + "\n")
                for controller in enabled { try? addFiles(of: controller, to: cgroup + "/" + child) }
            }
        case "cgroup.procs":
            guard let pid = Int32(text.trimmingASCIISpaces()) else { throw .invalidArgument }
            if cgroup != mountPoint && !words(relative(cgroup) + "/cgroup.subtree_control").isEmpty { throw .resourceBusy }
            for other in subtreeDeepestFirst(mountPoint) {
                let others = processIDs(in: other).filter { $0 != pid }
                try? put(other + "/cgroup.procs", others.map { "\($0)\n" }.joined())
            }
            try? put(path, (processIDs(in: cgroup) + [pid]).map { "\($0)\n" }.joined())
        case "cgroup.freeze":
            try? put(path, text + "\n")
            try? put(cgroup + "/cgroup.events", "populated \(processIDs(inSubtree: cgroup).isEmpty ? 0 : 1)\nfrozen \(text.trimmingASCIISpaces())\n")
        case "cpuset.cpus":
            let parent = CgroupFailure.parentOf(cgroup)
            let allowed = CPUList(parsing: (try? read(parent + "/cpuset.cpus.effective")) ?? "") ?? CPUList([])
            guard let requested = CPUList(parsing: text), requested.isSubset(of: allowed) else { throw .invalidArgument }
            try? put(path, text + "\n")
        default:
            try? put(path, text + "\n")
        }
        log.append("write \(relative(path)) \(text)")
    }

    func exists(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: path)
    }

    func subdirectories(of path: String) throws(Errno) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { throw .noSuchFileOrDirectory }
        return names.filter { isDirectory(relative(path) + "/" + $0) }.sorted()
    }

    // MARK: helpers

    private func relative(_ path: String) -> String {
        path.hasPrefix(mountPoint) ? String(path.dropFirst(mountPoint.count)) : path
    }

    private func addFiles(of controller: String, to path: String) throws {
        for (file, text) in Self.controllerFiles[controller] ?? [:] where !FileManager.default.fileExists(atPath: path + "/" + file) {
            try put(path + "/" + file, text)
        }
    }

    private func put(_ path: String, _ text: String) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }
}
