import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore

/// One kernel test's own corner of this machine's cgroups: a unique BASE_CGROUP below the test process's own
/// cgroup in every hierarchy (`CGROUP_PARENT = self`), a config file naming it, and a cleanup that removes
/// everything below the base, killing what is left, even when the test failed half-way.
final class CgExecSandbox {
    let base: String
    let directory: TestSupport.TemporaryDirectory
    let configPath: String
    let layout: CgroupLayout
    let membership: CgroupMembership

    /// A sandbox whose base cgroup is named `prefix` plus a unique suffix; `extraConfig` is added to its file.
    init(prefix: String = "jbcg", extraConfig: String = "") throws {
        base = TestSupport.uniqueName(prefix)
        directory = try TestSupport.TemporaryDirectory("jobbox-cgexec")
        configPath = directory.path + "/jobbox.conf"
        try directory.write("jobbox.conf", "BASE_CGROUP = \(base)\nCGROUP_PARENT = self\n" + extraConfig)
        layout = try CgroupLayout.current()
        membership = try CgroupMembership.read()
    }

    /// Runs cg-exec with this sandbox's configuration.
    @discardableResult
    func run(_ arguments: [String], environment: [String: String]? = nil) throws -> TestSupport.Result {
        try TestSupport.run(["cg-exec", "--config", configPath] + arguments, environment: environment)
    }

    /// A job command that starts `script`'s background processes and exits, leaving them in the job's cgroup.
    ///
    /// Foundation's Process hands its child a socket and counts the child running while any process holds it,
    /// so processes left behind would keep `run` waiting for as long as they live. The job's shell closes every
    /// descriptor above 2 first; it exits right after, so Foundation's wait for it is short.
    static func leavingBackground(_ script: String) -> [String] {
        ["bash", "-c", #"for fd in /proc/self/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done 2>/dev/null; "# + script]
    }

    /// Starts cg-exec without waiting, for a job that runs until the test removes it; its output is discarded.
    func start(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestSupport.tool("cg-exec"))
        process.arguments = ["--config", configPath] + arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// The hierarchy of `controller` (`unified` for the cgroup2 mount).
    func hierarchy(_ controller: String) throws -> CgroupHierarchy {
        try #require(controller == "unified" ? layout.unified : layout.hierarchies.first { $0.version == .v1 && $0.has(controller) })
    }

    /// The test process's own cgroup (the parent of the base) in the hierarchy of `controller`.
    func parentDirectory(_ controller: String) throws -> String {
        try #require(layout.directory(of: membership, in: try hierarchy(controller)))
    }

    /// A job's cgroup path as /proc/<pid>/cgroup shows it, in the hierarchy of `controller`.
    func cgroupPath(_ controller: String, _ job: String) throws -> String {
        try #require(membership.path(in: try hierarchy(controller))).trimmingTrailingSlashes()
            .appending("/\(base)/\(try JobID(job).cgroupName)").replacingOccurrences(of: "//", with: "/")
    }

    /// The base cgroup's directory in the hierarchy of `controller`.
    func baseDirectory(_ controller: String) throws -> String {
        try parentDirectory(controller) + "/" + base
    }

    /// Whether this kernel's blkio controller has a weight file (CFQ's blkio.weight or BFQ's blkio.bfq.weight) in a
    /// cgroup below the test's own: asked of a probe cgroup made and removed here, since BFQ's file is not in a
    /// hierarchy's root and the schedulers differ between kernels.
    func blkioOffersWeight() throws -> Bool {
        let probe = try parentDirectory("blkio") + "/jbprobe\(getpid())x\(UInt32.random(in: 0...UInt32.max))"
        guard mkdir(probe, 0o755) == 0 else { throw TestFailure("cannot make \(probe): errno \(errno)") }
        defer { rmdir(probe) }
        return ["blkio.weight", "blkio.bfq.weight"].contains { FileManager.default.fileExists(atPath: probe + "/" + $0) }
    }

    /// A job's directory in the hierarchy of `controller`.
    func jobDirectory(_ controller: String, _ job: String) throws -> String {
        try baseDirectory(controller) + "/" + JobID(job).cgroupName
    }

    /// The text of a job's interface file.
    func file(_ controller: String, _ job: String, _ name: String) throws -> String {
        try String(contentsOfFile: jobDirectory(controller, job) + "/" + name, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Every hierarchy directory of the base that exists.
    var existingBases: [String] {
        layout.hierarchies.compactMap { hierarchy in
            guard let own = layout.directory(of: membership, in: hierarchy) else { return nil }
            let path = own + "/" + base
            return FileManager.default.fileExists(atPath: path) ? path : nil
        }
    }

    /// The pids in the job's cgroup subtree in the hierarchy of `controller`.
    func pids(_ controller: String, _ job: String) throws -> [Int32] {
        let root = try jobDirectory(controller, job)
        return Self.directoriesDeepestFirst(root).flatMap { directory in
            ((try? String(contentsOfFile: directory + "/cgroup.procs", encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int32($0) }
        }
    }

    /// Waits (bounded, so a broken job cannot hang the suite) until `condition` holds.
    func wait(_ what: String, _ condition: () throws -> Bool) throws {
        for _ in 0..<1000 {
            if try condition() { return }
            usleep(10_000)
        }
        throw TestFailure("gave up waiting for \(what)")
    }

    /// Kills whatever is left below the base and removes every directory of it, in every hierarchy.
    func cleanUp() {
        for _ in 0..<3 {
            for basePath in existingBases {
                for directory in Self.directoriesDeepestFirst(basePath) {
                    if basePath.contains("/freezer/") { try? "THAWED".write(toFile: directory + "/freezer.state", atomically: false, encoding: .utf8) }
                    let procs = (try? String(contentsOfFile: directory + "/cgroup.procs", encoding: .utf8)) ?? ""
                    for pid in procs.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
                }
            }
            usleep(50_000)
            for basePath in existingBases {
                for directory in Self.directoriesDeepestFirst(basePath) { rmdir(directory) }
            }
            if existingBases.isEmpty { break }
        }
        directory.remove()
    }

    static func directoriesDeepestFirst(_ path: String) -> [String] {
        let children = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { name in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: path + "/" + name, isDirectory: &isDirectory) && isDirectory.boolValue
        }
        return children.sorted().flatMap { directoriesDeepestFirst(path + "/" + $0) } + [path]
    }

    /// Whether `pid` is gone or a zombie waiting for its new parent to reap it (it holds no resources).
    static func isDead(_ pid: Int32) -> Bool {
        guard let stat = ProcessStat.read(pid: pid) else { return true }
        return stat.state == "Z"
    }
}
