import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore

/// `cg-exec --delegate-to USER` (root makes a job's cgroups for a user to join, as a Slurm prolog does) and
/// `cg-exec --join` (the user moves in, as the job script does), on the real kernel.
@Suite("cg-exec --delegate-to and --join", .serialized, .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct CgExecDelegationTests {
    /// The sandbox, a job user, another user, and a configuration both can read.
    struct World {
        let sandbox: CgExecSandbox
        let user: TestUser
        let other: TestUser
        let execute: ExecuteDirectory
        let config: String

        init() throws {
            sandbox = try CgExecSandbox(prefix: "jbidlg")
            user = try TestUser(prefix: "jbi")
            other = try TestUser(prefix: "jbi")
            execute = try ExecuteDirectory("jbi-delegation")
            config = try execute.write("jobbox.conf", "BASE_CGROUP = \(sandbox.base)\nCGROUP_PARENT = self\n")
        }

        func remove() {
            sandbox.cleanUp()
            user.remove()
            other.remove()
            execute.remove()
        }

        /// cg-exec run as `user` with the shared configuration.
        func runAs(_ user: TestUser, _ arguments: [String]) throws -> TestSupport.Result {
            try Spawn.run(
                ["setpriv", "--reuid=\(user.uid)", "--regid=\(user.gid)", "--clear-groups", TestSupport.tool("cg-exec"), "--config", config] + arguments)
        }
    }

    @Test(
        "the user gets only cgroup.procs and tasks: it joins and runs under the job's limits, but cannot make cgroups or change limits; another user cannot join"
    )
    func delegateAndJoin() throws {
        let world = try World()
        defer { world.remove() }
        let made = try world.sandbox.run(["--job", "77", "--memory", "96M", "--cpus", "2", "--delegate-to", world.user.name])
        #expect(made.status == 0 && made.stdout.isEmpty, "\(made)")
        let memory = try world.sandbox.jobDirectory("memory", "77")
        let owner = { (path: String) -> UInt32 in
            var info = stat()
            return stat(path, &info) == 0 ? info.st_uid : UInt32.max
        }
        #expect(owner(memory + "/cgroup.procs") == world.user.uid && owner(memory + "/tasks") == world.user.uid)
        #expect(owner(memory) == 0 && owner(memory + "/memory.limit_in_bytes") == 0 && owner(memory + "/cgroup.clone_children") == 0)
        #expect(try world.sandbox.file("memory", "77", "memory.limit_in_bytes") == "\(96 << 20)")
        // On this hybrid node the unified cgroup is made too (it is what the node service counts by), and only its
        // cgroup.procs, the job's and its leaf's, are handed over: the mark of the delegation the service checks.
        let unified = try world.sandbox.jobDirectory("unified", "77")
        #expect(owner(unified) == 0 && owner(unified + "/main") == 0 && owner(unified + "/cgroup.subtree_control") == 0)
        #expect(owner(unified + "/cgroup.procs") == world.user.uid && owner(unified + "/main/cgroup.procs") == world.user.uid)

        let script =
            "cat /proc/self/cgroup; mkdir \(memory)/child 2>/dev/null && echo made-child; echo 1073741824 > \(memory)/memory.limit_in_bytes 2>/dev/null && echo raised; true"
        let joined = try world.runAs(world.user, ["--job", "77", "--join", "--", "/bin/sh", "-c", script])
        #expect(joined.status == 0, "\(joined)")
        // The kernel keeps the user out of the unified cgroup and no node service runs here to move it: the job runs
        // under its v1 limits, and cg-exec says nothing (NetacctNodeKernelTests.joinDelegated has the service).
        #expect(!joined.stderr.contains("cg-exec"), "\(joined)")
        #expect(!joined.stdout.contains("0::" + (try world.sandbox.cgroupPath("unified", "77"))), "\(joined)")
        #expect(joined.stdout.contains(":memory:" + (try world.sandbox.cgroupPath("memory", "77")) + "\n"), "\(joined)")
        #expect(joined.stdout.contains(":cpu:") || joined.stdout.contains(",cpu"), "\(joined)")
        #expect(!joined.stdout.contains("made-child") && !joined.stdout.contains("raised"), "\(joined)")
        #expect(try world.sandbox.file("memory", "77", "memory.limit_in_bytes") == "\(96 << 20)")

        let intruder = try world.runAs(world.other, ["--job", "77", "--join", "--", "/bin/true"])
        #expect(intruder.status == 125)
        #expect(intruder.stderr.hasPrefix("cg-exec: cannot join /sys/fs/cgroup/") && intruder.stderr.hasSuffix(": Permission denied\n"), "\(intruder)")

        #expect(try world.sandbox.run(["--remove", "--job", "77"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: memory))
    }

    @Test("bad uses are one line and 125, with nothing made")
    func refusals() throws {
        let world = try World()
        defer { world.remove() }
        let cases: [([String], String)] = [
            (["--job", "78", "--delegate-to", "root"], "cg-exec: invalid --delegate-to 'root': root needs no delegation\n"),
            (["--job", "78", "--delegate-to", "jbi-no-such-user"], "cg-exec: invalid --delegate-to 'jbi-no-such-user': no such user\n"),
            (["--job", "78", "--delegate-to", world.user.name, "--", "true"], "cg-exec: invalid use of --delegate-to: it runs no command\n"),
            (
                ["--job", "78", "--join", "--memory", "1G", "--", "true"],
                "cg-exec: invalid use of --join: it takes a command after -- and no limits (the cgroups have theirs)\n"
            ),
        ]
        for (arguments, message) in cases {
            let result = try world.sandbox.run(arguments)
            #expect(result.status == 125 && result.stderr == message, "\(arguments): \(result)")
        }
        let nothing = try world.runAs(world.user, ["--job", "78", "--join", "--", "/bin/true"])
        #expect(nothing.status == 125, "\(nothing)")
        #expect(
            nothing.stderr.hasPrefix("cg-exec: no cgroup to join for job 78: ") && nothing.stderr.hasSuffix("does not exist (did the prolog run?)\n"),
            "\(nothing)")
        #expect(!FileManager.default.fileExists(atPath: try world.sandbox.jobDirectory("memory", "78")))
    }
}
