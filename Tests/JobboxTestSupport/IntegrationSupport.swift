import Foundation
import Synchronization
import Testing

/// Helpers for the end-to-end tests: the example wrappers, the HTCondor starter emulation, throwaway users,
/// execute directories, and which tools are still the foundation's stubs.
package enum Integration {
    /// `Tests/integration/htcondor-contract.sh`: does what HTCondor's starter does around USER_JOB_WRAPPER.
    package static let contractHarness = TestSupport.repositoryRoot + "/Tests/integration/htcondor-contract.sh"
    /// `Tests/Fixtures/integration`.
    package static let fixtures = TestSupport.fixtures + "/integration"

    /// A job number no other test, run or helper on this machine uses at the same time: job ids name kernel
    /// objects (cgroups, veth pairs, firewall chains) that are global.
    package static func uniqueJobNumber() -> Int {
        let n = jobCounter.withLock { value -> Int in
            value += 1
            return value
        }
        return Int(getpid() % 100_000) * 100 + n
    }

    private static let jobCounter = Mutex(0)

    /// The tools among `names` that are still the foundation's argument-checking stubs on this branch.
    package static func stubs(among names: [String]) -> [String] {
        names.filter { name in
            guard let help = try? Spawn.run([TestSupport.tool(name), "--help"]) else { return true }
            return help.stdout.contains("not built yet")
        }
    }

    /// Whether `tool --help` lists `option`.
    package static func tool(_ name: String, hasOption option: String) -> Bool {
        guard let help = try? Spawn.run([TestSupport.tool(name), "--help"]) else { return false }
        return help.stdout.contains(option)
    }

    /// The skip reason for tests of the real chain while some of `tools` are stubs (nil when all are built).
    package static func waitingFor(_ tools: [String]) -> Comment? {
        let missing = stubs(among: tools)
        return missing.isEmpty ? nil : Comment(rawValue: "waiting for the real \(missing.joined(separator: ", ")) (still the foundation's stub on this branch)")
    }

    /// The cgroup path of this process in the v1 hierarchy holding `controller` (e.g. `/process_api/abc`).
    package static func ownCgroup(_ controller: String) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[1].split(separator: ",").contains(Substring(controller)) { return String(parts[2]) }
        }
        return nil
    }

    /// Whether every user may search every directory down to `path` (and read it, if it is a file).
    package static func reachableByEveryone(_ path: String) -> Bool {
        var current = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        while true {
            var info = stat()
            guard stat(current, &info) == 0, info.st_mode & S_IXOTH != 0 || (info.st_mode & S_IFMT == S_IFREG && info.st_mode & S_IROTH != 0) else {
                return false
            }
            if current == "/" { return true }
            current = URL(fileURLWithPath: current).deletingLastPathComponent().path
        }
    }

    /// Whether this node runs cgroup v2 only (HTCondor's delegation then applies).
    package static var isUnifiedCgroupNode: Bool { FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers") }

    /// Every directory named `name` (or starting with `name` when `prefix`) below /sys/fs/cgroup, for checking that
    /// nothing was left behind.
    package static func cgroups(named name: String) -> [String] {
        let result = try? Spawn.sh("find /sys/fs/cgroup -type d -name '\(name)' 2>/dev/null")
        return (result?.stdout ?? "").split(separator: "\n").map(String.init)
    }

    /// Reads a file, nil when it is missing.
    package static func read(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }

    /// Parses `Name = value` lines (the long form jobbox prints) into raw right-hand sides.
    package static func attributes(_ ad: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in ad.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            let name = line[..<equals].trimmingCharacters(in: .whitespaces)
            result[name] = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        }
        return result
    }
}

/// A throwaway Unix user for running jobs unprivileged, with a group of its own: made with useradd (no home,
/// shell /bin/sh), removed with userdel.
package struct TestUser {
    package let name: String
    package let uid: UInt32
    package let gid: UInt32

    /// useradd and userdel take a lock on /etc/passwd; parallel tests queue here, other programs are retried.
    private static let lock = Mutex(())

    /// A new user named from `prefix` (unique).
    package init(prefix: String = "jbx") throws {
        let name = TestSupport.uniqueName(prefix)
        self.name = name
        try TestUser.retrying(["/usr/sbin/useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh", "--user-group", name])
        guard let entry = TestSupport.passwdEntry(name) else { throw TestFailure("useradd made no user \(name)") }
        uid = entry.uid
        gid = entry.gid
    }

    /// Removes the user and its group, even while a process of the user still runs (a failed test's).
    package func remove() {
        try? TestUser.retrying(["/usr/sbin/userdel", "--force", name])
    }

    /// `arguments` run as this user, with its groups (setpriv, util-linux).
    package func command(_ arguments: [String]) -> [String] {
        ["/usr/bin/setpriv", "--reuid", String(uid), "--regid", String(gid), "--init-groups", "--"] + arguments
    }

    private static func retrying(_ arguments: [String]) throws {
        try lock.withLock { _ in
            var last: TestSupport.Result?
            for _ in 0..<50 {
                let result = try TestSupport.run(arguments)
                if result.status == 0 { return }
                last = result
                usleep(100_000)
            }
            throw TestFailure("\(arguments.joined(separator: " ")) failed: \(last.map(\.description) ?? "")")
        }
    }
}

/// A root-owned directory that plays HTCondor's EXECUTE (or Slurm's spool) for one test: world-searchable like
/// the real one, and outside /tmp and /var/tmp, so a job's private /tmp can be mounted under a scratch dir in it.
/// It and every directory above it are root's alone, so root tools believe what lies in it (a job ad, a
/// configuration, a STATE_DIR, a chroot: `GuardedDirectory.isTrusted`).
package struct ExecuteDirectory {
    package let path: String

    package init(_ prefix: String = "jbx-execute") throws {
        path = "/var/lib/" + TestSupport.uniqueName(prefix)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
    }

    /// Makes `relative` (and its parents) with `mode`, owned by uid and gid, and returns its path.
    @discardableResult
    package func make(_ relative: String, mode: Int = 0o755, owner: (uid: UInt32, gid: UInt32)? = nil) throws -> String {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        chmod(full, mode_t(mode))
        if let owner { chown(full, owner.uid, owner.gid) }
        return full
    }

    /// A copy of the built ns-exec in this directory: the unprivileged tests' user may not be able to reach
    /// the build directory (a checkout under /root), but can reach this one.
    package func nsExecCopy() throws -> String {
        let copy = path + "/ns-exec"
        try Spawn.copyExecutable(TestSupport.tool("ns-exec"), to: copy)
        chmod(copy, 0o755)
        return copy
    }

    /// Writes an executable script (mode 0755) and returns its path.
    @discardableResult
    package func script(_ name: String, _ text: String) throws -> String {
        try write(name, text, mode: 0o755)
    }

    /// Writes a file (readable by everyone unless `mode` says otherwise) and returns its path.
    @discardableResult
    package func write(_ name: String, _ text: String, mode: Int = 0o644) throws -> String {
        let file = path + "/" + name
        try text.write(toFile: file, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file)
        return file
    }

    /// Where the job's user finds jobbox: the build and the checkout themselves when every user can reach them,
    /// else copies in this directory (a checkout under /root is out of a job user's reach). `JOBBOX_TEST_COPY_TOOLS=1`
    /// forces the copies.
    package func reachableJobbox() throws -> ReachableJobbox {
        let forced = ProcessInfo.processInfo.environment["JOBBOX_TEST_COPY_TOOLS"] == "1"
        if !forced && Integration.reachableByEveryone(TestSupport.productsDirectory) && Integration.reachableByEveryone(TestSupport.repositoryRoot) {
            return ReachableJobbox(bin: TestSupport.productsDirectory, root: TestSupport.repositoryRoot)
        }
        let manager = FileManager.default
        let root = path + "/jobbox"
        if !manager.fileExists(atPath: root) {
            for directory in ["bin", "examples", "Tests/Fixtures"] {
                try manager.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            }
            for tool in ["cg-exec", "ns-exec", "netacct", "jobstat", "chroot-tool"] {
                try Spawn.copyExecutable(TestSupport.tool(tool), to: root + "/bin/" + tool)
            }
            try manager.copyItem(atPath: TestSupport.repositoryRoot + "/examples/htcondor", toPath: root + "/examples/htcondor")
            try manager.copyItem(atPath: TestSupport.repositoryRoot + "/examples/slurm", toPath: root + "/examples/slurm")
            try manager.copyItem(atPath: Integration.fixtures, toPath: root + "/Tests/Fixtures/integration")
            _ = try Spawn.run(["chmod", "-R", "go+rX", root])
        }
        return ReachableJobbox(bin: root + "/bin", root: root)
    }

    package func remove() {
        // Scratch dirs hold a private /tmp that may have been left read-only or owned by the job's user.
        _ = try? Spawn.run(["rm", "-rf", "--one-file-system", path])
    }
}

/// The tools and scripts at paths a job's user can reach.
package struct ReachableJobbox {
    /// The directory with the tools (JOBBOX_BIN).
    package let bin: String
    /// A directory with the checkout's `examples/` and `Tests/Fixtures/integration/`.
    package let root: String

    package var htcondorWrapper: String { root + "/examples/htcondor/jobbox-wrapper.sh" }
    package var slurmJobWrapper: String { root + "/examples/slurm/jobbox-job.sh" }
    package var fakeTool: String { root + "/Tests/Fixtures/integration/fake-tool.sh" }

    /// Memberwise, for the test targets (a memberwise init is internal).
    package init(bin: String, root: String) {
        self.bin = bin
        self.root = root
    }
}

/// One run of the starter emulation (`htcondor-contract.sh`).
package struct ContractRun: CustomStringConvertible {
    /// The job's scratch dir, kept for inspection.
    package let scratch: String
    /// The wrapper's exit status.
    package let status: Int32
    /// The reason the starter would requeue the job with (the error file's text), if it would.
    package let requeue: String?
    /// The harness's own output.
    package let harness: TestSupport.Result

    /// The job's (and wrapper's) stdout and stderr, as the starter collected them.
    package var stdout: String { Integration.read(scratch + "/_condor_stdout") ?? "" }
    package var stderr: String { Integration.read(scratch + "/_condor_stderr") ?? "" }
    /// The wrapper error file's raw text, nil when there is none.
    package var errorFile: String? { Integration.read(scratch + "/.job_wrapper_failure") }
    /// The final figures the wrapper left in the scratch dir.
    package var finalAd: String? { Integration.read(scratch + "/.jobbox/job.ad") }

    package var description: String {
        "status \(status), requeue: \(requeue ?? "no")\n--- stdout\n\(stdout)--- stderr\n\(stderr)--- error file\n\(errorFile ?? "(none)")\n--- harness\n\(harness)"
    }

    /// Runs the harness with `options`, then `job`.
    package static func run(_ options: [String], job: [String]) throws -> ContractRun {
        let result = try Spawn.run(["/bin/bash", Integration.contractHarness] + options + ["--"] + job)
        return try parse(result)
    }

    /// Runs the harness with the wrapper of `jobbox` (the one the job's user can reach).
    ///
    /// As root the wrapper takes no setting from the job's environment, only from `jobbox-wrapper.conf` beside
    /// it: the `--env JOBBOX_*` settings then go into such a file beside a copy of the wrapper made for this run
    /// (and stay in the job's environment too, where the wrapper must ignore them).
    package static func run(_ options: [String], job: [String], jobbox: ReachableJobbox) throws -> ContractRun {
        guard options.contains("--wrapper-as-root") else { return try run(["--wrapper", jobbox.htcondorWrapper] + options, job: job) }
        var settings: [String] = []
        for (index, option) in options.enumerated() where option == "--env" && index + 1 < options.count {
            let assignment = options[index + 1]
            if ["JOBBOX_BIN=", "JOBBOX_CONFIG=", "JOBBOX_FIGURES=", "JOBBOX_WRAPPER_RUNDIR="].contains(where: assignment.hasPrefix) {
                settings.append(assignment)
            }
        }
        let directory = "/run/" + TestSupport.uniqueName("jbwrapper")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.copyItem(atPath: jobbox.htcondorWrapper, toPath: directory + "/jobbox-wrapper.sh")
        try (settings.map { $0 + "\n" }.joined()).write(toFile: directory + "/jobbox-wrapper.conf", atomically: false, encoding: .utf8)
        return try run(["--wrapper", directory + "/jobbox-wrapper.sh"] + options, job: job)
    }

    private static func parse(_ result: TestSupport.Result) throws -> ContractRun {
        guard result.status == 0 else { throw TestFailure("the starter emulation failed: \(result)") }
        var values: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        guard let scratch = values["scratch"], let status = values["status"].flatMap(Int32.init) else {
            throw TestFailure("the starter emulation printed no scratch/status: \(result)")
        }
        return ContractRun(scratch: scratch, status: status, requeue: values["requeue"], harness: result)
    }

    /// Memberwise, for the test targets (a memberwise init is internal).
    package init(scratch: String, status: Int32, requeue: String?, harness: TestSupport.Result) {
        self.scratch = scratch
        self.status = status
        self.requeue = requeue
        self.harness = harness
    }
}

/// A directory of stand-ins for the tools (`fake-tool.sh` under each tool's name) that log how the wrapper
/// called them, for tests of the wrapper's own logic.
package struct FakeTools {
    package let directory: String
    package let log: String

    package init(in execute: ExecuteDirectory) throws {
        let fakeTool = try execute.reachableJobbox().fakeTool
        directory = execute.path + "/fake-bin"
        log = execute.path + "/fake-tools.log"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        for tool in ["cg-exec", "ns-exec", "netacct", "jobstat", "chroot-tool"] {
            try FileManager.default.createSymbolicLink(atPath: directory + "/" + tool, withDestinationPath: fakeTool)
        }
        // The job's user appends to it too.
        try execute.write("fake-tools.log", "", mode: 0o666)
    }

    /// The logged calls, one per line: `name uid=N errfile=set|  [arg] [arg]...`.
    package var calls: [String] { (Integration.read(log) ?? "").split(separator: "\n").map(String.init) }

    /// The calls of one tool.
    package func calls(of tool: String) -> [String] { calls.filter { $0.hasPrefix(tool + " ") } }
}

/// A busybox chroot for the end-to-end tests, named for `NAMED_CHROOT` and lying where root alone can write (as
/// ns-exec requires); its os-release says which one it is.
package struct NamedTestChroot {
    package let directory: ExecuteDirectory
    package let name: String
    package let root: String
    package let release: String
    /// The jobbox.conf line that names it.
    package var configLine: String { "NAMED_CHROOT = \(name)=\(root)" }

    /// Builds one named `prefix` plus a unique suffix.
    package init(prefix: String) throws {
        directory = try ExecuteDirectory(prefix.lowercased())
        name = TestSupport.uniqueName(prefix)
        root = directory.path + "/tiny"
        release = "PRETTY_NAME=\"jobbox test chroot \(name)\"\n"
        do {
            try NsExecTestSupport.buildChroot(at: root, release: release)
        } catch {
            directory.remove()
            throw error
        }
    }

    /// Makes `path` in the chroot: a mount point, as chroot-tool makes them from CHROOT_MOUNT_POINTS (the job's user
    /// cannot make mount points in root's chroot).
    package func makeMountPoint(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: root + path, withIntermediateDirectories: true)
    }

    package func remove() { directory.remove() }
}
