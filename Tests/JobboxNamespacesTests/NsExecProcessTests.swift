import Foundation
import JobboxTestSupport
import Testing

/// ns-exec's PID namespace, init, signals and statuses, on the real kernel.
@Suite("ns-exec processes", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct NsExecProcessTests {
    typealias Support = NsExecTestSupport

    @Test("ps -e in --pid --mount lists exactly the init and ps; with --no-init only ps, as PID 1")
    func psListsOnlyTheJob() throws {
        let before = try Support.hostMounts()
        let withInit = try TestSupport.run(["ns-exec", "--pid", "--mount", "--", "ps", "-e", "-o", "pid=,ppid=,comm="])
        #expect(withInit.status == 0, "\(withInit)")
        let rows = withInit.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(rows == [["1", "0", "ns-exec-init"], ["2", "1", "ps"]])
        let noInit = try TestSupport.run(["ns-exec", "--pid", "--mount", "--no-init", "--", "ps", "-e", "-o", "pid=,ppid=,comm="])
        #expect(noInit.status == 0, "\(noInit)")
        #expect(noInit.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) } == [["1", "0", "ps"]])
        try Support.expectMountsUnchanged(since: before)
    }

    @Test("a double-forked daemon dies with the job under --pid; without a PID namespace it would have survived")
    func daemonLeavesNothing() throws {
        let before = try Support.hostMounts()
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        let seconds = Support.uniqueSleep()
        let daemon = ["sleep", seconds]
        let script = "(setsid sleep \(seconds) </dev/null >/dev/null 2>&1 &); exit 3"
        let result = try TestSupport.run(["ns-exec", "--pid", "--mount", "--", "/bin/sh", "-c", script])
        #expect(result.status == 3, "\(result)")
        // The init's exit returns only after the kernel has killed and reaped the rest of the namespace.
        #expect(Support.processes(withArguments: daemon).isEmpty)

        // The control: the same job without --pid leaves its daemon behind, which this test then kills (in the
        // background: the daemon inherits the socket by which Foundation's Process notices its child's end).
        let control = try Support.Background(["ns-exec", "--mount", "--", "/bin/sh", "-c", script], directory: dir.path)
        #expect(Support.eventually { Support.processes(withArguments: daemon).count == 1 })
        for pid in Support.processes(withArguments: daemon) { kill(pid, SIGKILL) }
        #expect(control.wait() == 3)
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }

    @Test(
        "HUP, INT, QUIT, TERM, USR1 and USR2 sent to ns-exec from outside reach the job through the init",
        arguments: [(SIGHUP, "HUP"), (SIGINT, "INT"), (SIGQUIT, "QUIT"), (SIGTERM, "TERM"), (SIGUSR1, "USR1"), (SIGUSR2, "USR2")])
    func signalsReachTheJob(signal: Int32, name: String) throws {
        let before = try Support.hostMounts()
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        let ready = dir.path + "/ready"
        let script = "trap 'echo job got \(name); exit 42' \(name); touch \(ready); while :; do sleep 0.05; done"
        let job = try Support.Background(["ns-exec", "--pid", "--mount", "--", "/bin/sh", "-c", script], directory: dir.path)
        #expect(Support.eventually { FileManager.default.fileExists(atPath: ready) })
        kill(job.pid, signal)
        #expect(job.wait() == 42, "\(job.stderr)")
        #expect(job.stdout == "job got \(name)\n")
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }

    @Test("TERM while ns-exec --pid is still setting the job up waits and goes to the job: 143, ns-exec not killed half-way")
    func termDuringSetUpReachesTheJob() throws {
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        let seconds = Support.uniqueSleep()
        // The first mkdirat is ns-exec making the job's directories under --scratch, long before the init exists.
        let run = try SetUpSignalProbe.signal(
            SIGTERM, duringFirst: "mkdir,mkdirat", of: ["ns-exec", "--pid", "--mount", "--scratch", dir.path, "--", "sleep", seconds])
        #expect(run.heldWhenSignalled, "\(run)")
        #expect(run.ending == "exited with 143", "\(run)")
        #expect(Support.processes(withArguments: ["sleep", seconds]).isEmpty)
    }

    @Test("KILL of ns-exec takes the whole namespace with it, a job that ignores TERM and its children included")
    func killTearsDownTheNamespace() throws {
        let before = try Support.hostMounts()
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        let ready = dir.path + "/ready"
        let seconds = Support.uniqueSleep()
        let script = "trap '' TERM; (trap '' TERM; exec sleep \(seconds)) & touch \(ready); wait"
        let job = try Support.Background(["ns-exec", "--pid", "--mount", "--", "/bin/sh", "-c", script], directory: dir.path)
        #expect(Support.eventually { FileManager.default.fileExists(atPath: ready) })
        #expect(Support.processes(withArguments: ["sleep", seconds]).count == 1)
        kill(job.pid, SIGKILL)
        #expect(job.wait() == 128 + SIGKILL)
        // The init gets SIGKILL as its parent-death signal; its exit kills the rest.
        #expect(Support.eventually { Support.processes(withArguments: ["sleep", seconds]).isEmpty })
        #expect(Support.eventually { Support.processes(withArguments: ["/bin/sh", "-c", script]).isEmpty })
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }

    @Test(
        "the job's exit status and 128+N for death by signal N come back",
        arguments: [
            (["--pid", "--mount"], "exit 7", Int32(7)),
            (["--pid", "--mount"], "kill -SEGV $$", Int32(128 + 11)),
            (["--pid", "--mount", "--no-init"], "exit 9", Int32(9)),
            (["--mount"], "kill -TERM $$", Int32(128 + 15)),
            (["--uts", "--ipc"], "exit 0", Int32(0)),
        ])
    func statusPropagates(options: [String], script: String, expected: Int32) throws {
        let before = try Support.hostMounts()
        let result = try TestSupport.run(["ns-exec"] + options + ["--", "/bin/sh", "-c", script])
        #expect(result.status == expected, "\(result)")
        #expect(result.stderr.isEmpty)
        try Support.expectMountsUnchanged(since: before)
    }

    @Test(
        "a command that is missing gives 127, one that is not executable 126, each with its reason",
        arguments: [[], ["--pid"], ["--pid", "--no-init"], ["--mount", "--net"]])
    func execFailures(options: [String]) throws {
        let before = try Support.hostMounts()
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        try dir.write("not-executable", "#!/bin/sh\n")
        let missing = try TestSupport.run(["ns-exec"] + options + ["--", dir.path + "/missing"])
        #expect(missing.status == 127)
        #expect(missing.stderr == "ns-exec: command not found: \(dir.path)/missing: No such file or directory\n")
        let notInPath = try TestSupport.run(["ns-exec"] + options + ["--", "jobbox-no-such-command"])
        #expect(notInPath.status == 127)
        #expect(notInPath.stderr == "ns-exec: command not found: jobbox-no-such-command: No such file or directory\n")
        let denied = try TestSupport.run(["ns-exec"] + options + ["--", dir.path + "/not-executable"])
        #expect(denied.status == 126)
        #expect(denied.stderr == "ns-exec: cannot execute \(dir.path)/not-executable: Permission denied\n")
        #expect(missing.stdout.isEmpty && denied.stdout.isEmpty)
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }

    @Test("--net gives a namespace with only lo, up; --uts --hostname names it; the host keeps its own")
    func netAndUTS() throws {
        let before = try Support.hostMounts()
        let hostName = try TestSupport.run(["hostname"]).stdout
        let result = try TestSupport.run(["ns-exec", "--net", "--hostname", "jobbox-job", "--ipc", "--", "/bin/sh", "-c", "hostname; ip -o link"])
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "jobbox-job")
        #expect(lines.count == 2)
        #expect(lines.last.map { $0.hasPrefix("1: lo: <LOOPBACK,UP,LOWER_UP>") } == true, "\(lines)")
        #expect(try TestSupport.run(["hostname"]).stdout == hostName)
        try Support.expectMountsUnchanged(since: before)
    }

    @Test("the job gets exactly the namespaces asked for, and the init and job of --pid sit in the new PID namespace")
    func namespacesDiffer() throws {
        let before = try Support.hostMounts()
        let host = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid")
        let result = try TestSupport.run(["ns-exec", "--pid", "--", "/bin/sh", "-c", "echo $$; readlink /proc/1/ns/pid /proc/self/ns/pid"])
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(result.status == 0, "\(result)")
        #expect(lines.count == 3)
        #expect(lines.first == "2")
        #expect(lines.dropFirst().allSatisfy { $0 == lines[1] && $0 != host && $0.hasPrefix("pid:[") }, "\(lines) vs host \(host)")

        let kinds = ["ipc", "uts", "net", "mnt", "user", "cgroup"]
        let hostNamespaces = try kinds.map { try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/" + $0) }
        let job = try TestSupport.run(["ns-exec", "--ipc", "--uts", "--net", "--mount", "--", "readlink"] + kinds.map { "/proc/self/ns/" + $0 })
        let jobNamespaces = job.stdout.split(separator: "\n").map(String.init)
        #expect(jobNamespaces.count == kinds.count, "\(job)")
        for (index, kind) in kinds.enumerated() where index < jobNamespaces.count {
            // Asked for: new; not asked for (user, cgroup): the host's.
            #expect((jobNamespaces[index] != hostNamespaces[index]) == (index < 4), "\(kind): \(jobNamespaces[index]) vs \(hostNamespaces[index])")
        }
        try Support.expectMountsUnchanged(since: before)
    }
}
