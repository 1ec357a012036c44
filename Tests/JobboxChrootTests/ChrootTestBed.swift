import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxChroot
@testable import JobboxCore

/// A throwaway CHROOT_DIR with its own jobbox.conf, and chroot-tool run against it.
///
/// `SOURCE_DATE_EPOCH` fixes the build time manifests and the history record, so outputs can be compared exactly.
struct ChrootTestBed {
    static let epoch = "1700000000"
    static let epochText = "2023-11-14T22:13:20Z"

    let directory: TestSupport.TemporaryDirectory
    var chrootDir: String { directory.path + "/chroot" }
    var configPath: String { directory.path + "/jobbox.conf" }

    init() throws {
        directory = try TestSupport.TemporaryDirectory("jbct")
        try directory.write("jobbox.conf", "# chroot-tool test\nCHROOT_DIR = \(directory.path)/chroot\n")
    }

    /// The environment chroot-tool runs with: ours, the fixed epoch, plus `extra`.
    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["SOURCE_DATE_EPOCH"] = Self.epoch
        environment.merge(extra) { $1 }
        return environment
    }

    /// Runs `chroot-tool --config <ours> ARGS...` and waits.
    @discardableResult
    func tool(_ arguments: [String], environment extra: [String: String] = [:]) throws -> TestSupport.Result {
        try TestSupport.run(["chroot-tool", "--config", configPath] + arguments, environment: environment(extra))
    }

    /// Starts `chroot-tool --config <ours> ARGS...` without waiting; output goes to `log`.
    func start(_ arguments: [String], log: String, environment extra: [String: String] = [:]) throws -> Process {
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestSupport.tool("chroot-tool"))
        process.arguments = ["--config", configPath] + arguments
        process.environment = environment(extra)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// The entries of CHROOT_DIR, dot files included, sorted.
    func entries() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: chrootDir)) ?? []).sorted()
    }

    /// Processes (not zombies) whose root directory is inside the test's directory.
    func processesRootedInside() -> [Int32] {
        SystemUsage.scan().users(of: directory.path).compactMap { user in
            guard case .root(let pid, _) = user, !Self.isZombie(pid) else { return nil }
            return pid
        }
    }

    static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = ProcessStat.read(pid: pid) else { return true }
        return stat.state == "Z"
    }

    /// Kills whatever still runs inside, then removes everything (never crossing into a mount).
    func remove() {
        ProcessReaper.killProcesses(inside: directory.path)
        try? DirectoryTree.remove(directory.path)
    }
}

/// A small RPM made with rpmbuild for a local repository.
struct TestRPM {
    var name: String
    var version: String
    var noarch = true
    var requires: [String] = []
    /// Files (absolute path in the chroot, one line of text).
    var files: [String: String] = [:]
    /// Installs the host's static busybox as /bin/busybox and /bin/sh.
    var busyboxShell = false
    /// A %post script.
    var post: String?

    var spec: String {
        var lines = [
            "Name: \(name)", "Version: \(version)", "Release: 1", "Summary: jobbox test package \(name)", "License: MIT",
        ]
        if noarch { lines.append("BuildArch: noarch") }
        lines += requires.map { "Requires: \($0)" }
        if post != nil && !requires.isEmpty { lines += requires.map { "Requires(post): \($0)" } }
        lines += ["%description", "A package for chroot-tool's tests.", "%install"]
        for (path, text) in files.sorted(by: { $0.key < $1.key }) {
            lines.append("mkdir -p %{buildroot}\((path as NSString).deletingLastPathComponent)")
            lines.append("echo '\(text)' > %{buildroot}\(path)")
        }
        if busyboxShell {
            lines += ["mkdir -p %{buildroot}/bin", "cp /bin/busybox %{buildroot}/bin/busybox", "ln -s busybox %{buildroot}/bin/sh"]
        }
        lines.append("%files")
        lines += files.keys.sorted()
        if busyboxShell { lines += ["/bin/busybox", "/bin/sh"] }
        if let post { lines += ["%post", post] }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The shell: static busybox.
    static let shell = TestRPM(name: "jbx-shell", version: "1.0", noarch: false, busyboxShell: true)

    /// The base, which needs the shell.
    static func base(_ version: String) -> TestRPM {
        TestRPM(name: "jbx-base", version: version, requires: ["jbx-shell"], files: ["/etc/os-release": "VERSION_ID=\(version)"])
    }
}

/// Builds RPMs with rpmbuild and makes a repository of them with createrepo_c: no mirror involved.
enum TestRPMRepository {
    /// Makes `directory/<name>` holding `packages`; returns its `file://` URL.
    static func make(in directory: String, name: String, packages: [TestRPM]) throws -> String {
        let top = directory + "/rpmbuild-" + name
        let repo = directory + "/" + name
        try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
        for package in packages {
            let specPath = top + "/\(package.name)-\(package.version).spec"
            try FileManager.default.createDirectory(atPath: top, withIntermediateDirectories: true)
            try package.spec.write(toFile: specPath, atomically: false, encoding: .utf8)
            let built = try TestSupport.run([
                "rpmbuild", "--quiet", "--define", "_topdir \(top)", "--define", "__strip /bin/true", "--define", "debug_package %{nil}", "-bb", specPath,
            ])
            guard built.status == 0 else { throw TestFailure("rpmbuild \(package.name) failed: \(built)") }
        }
        let copied = try TestSupport.sh("cp '\(top)'/RPMS/*/*.rpm '\(repo)'/ && createrepo_c -q '\(repo)'")
        guard copied.status == 0 else { throw TestFailure("createrepo_c failed: \(copied)") }
        return "file://" + repo
    }
}
