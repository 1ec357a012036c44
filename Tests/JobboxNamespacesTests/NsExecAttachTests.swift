import Foundation
import JobboxCgroups
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxNamespaces

/// A throwaway user (`jbd...`) whose unprivileged ns-exec keeps its records in `/tmp/jobbox-<uid>`; both go in
/// `remove()`.
final class AttachUser {
    let user: TestUser
    var records: String { "/tmp/jobbox-\(user.uid)" }

    init() throws { user = try TestUser(prefix: "jbd") }

    /// The ns-exec copy `nsExec` with `arguments`, as this user and without an `XDG_RUNTIME_DIR` (the test's own
    /// would not be this user's).
    func nsExec(_ nsExec: String, _ arguments: [String]) -> [String] {
        user.command(["/usr/bin/env", "-u", "XDG_RUNTIME_DIR", nsExec] + arguments)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: records)
        user.remove()
    }
}

/// `ns-exec --attach` on the real kernel: a session put into a running job sees what the job sees and dies with it.
@Suite("ns-exec --attach", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct NsExecAttachTests {
    typealias Support = NsExecTestSupport

    /// A root-run job in a chroot with a scratch dir, its own cgroups (cg-exec) and a PID namespace, recorded in
    /// the test's own STATE_DIR.
    final class RootJob {
        let dir: ExecuteDirectory
        let config: String
        let job = TestSupport.uniqueName("jbd")
        let base = TestSupport.uniqueName("jbd")
        let release: String
        let scratch: String
        let sleep = Support.uniqueSleep()
        let background: Support.Background

        init() throws {
            dir = try ExecuteDirectory("jbdattach")
            let root = dir.path + "/chroots/tiny"
            release = "PRETTY_NAME=\"jobbox attach test \(job)\"\n"
            try Support.buildChroot(at: root, release: release)
            chmod(dir.path + "/chroots", 0o755)
            scratch = try dir.make("execute/dir_1/scratch")
            try FileManager.default.createDirectory(atPath: root + dir.path + "/execute/dir_1", withIntermediateDirectories: true)
            config = dir.path + "/jobbox.conf"
            try dir.write("jobbox.conf", "STATE_DIR = \(dir.path)/state\nBASE_CGROUP = \(base)\nCGROUP_PARENT = self\n")
            background = try Support.Background(
                [
                    TestSupport.tool("cg-exec"), "--config", config, "--job", job, "--", TestSupport.tool("ns-exec"), "--config", config, "--job", job,
                    "--pid", "--chroot", root, "--scratch", scratch, "--", "/bin/sh", "-c", "echo made-by-the-job > /tmp/marker; exec sleep \(sleep)",
                ], directory: dir.path)
            guard
                Support.eventually({
                    FileManager.default.fileExists(atPath: self.recordPath) && !Support.processes(withArguments: ["sleep", self.sleep]).isEmpty
                })
            else {
                remove()
                throw TestFailure("the job did not start: \(background.stderr)")
            }
        }

        var recordPath: String { dir.path + "/state/ns-exec/" + ((try? JobID(job).cgroupName) ?? "") }

        /// The init's pid, from the record.
        func initPID() throws -> Int32 {
            try #require(JobRecord(parsing: String(contentsOfFile: recordPath, encoding: .utf8))?.pid)
        }

        func attach(_ command: [String]) throws -> TestSupport.Result {
            try TestSupport.run(["ns-exec", "--config", config, "--attach", job, "--"] + command)
        }

        func remove() {
            _ = try? TestSupport.run(["cg-exec", "--config", config, "--remove", "--job", job])
            _ = background.wait()
            // cg-exec --remove takes the job's cgroups; the base the test named is the test's to remove, in every
            // hierarchy, below the test's own cgroup (CGROUP_PARENT = self).
            if let layout = try? CgroupLayout.current(), let membership = try? CgroupMembership.read() {
                for hierarchy in layout.hierarchies {
                    if let own = layout.directory(of: membership, in: hierarchy) { rmdir(own + "/" + base) }
                }
            }
            dir.remove()
        }
    }

    @Test("an attached shell sees the job's processes (its PID namespace), its private /tmp, its chroot and directory, as the job's user")
    func seesWhatTheJobSees() throws {
        let job = try RootJob()
        defer { job.remove() }
        let result = try job.attach(["/bin/sh", "-c", "ps -o pid,args; cat /tmp/marker; cat /etc/os-release; pwd; id -u"])
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let sleeper = lines.first { $0.hasSuffix("sleep \(job.sleep)") }
        let sleeperPID = sleeper.flatMap { Int($0.split(separator: " ").first ?? "") }
        #expect(sleeperPID.map { $0 <= 2 } == true, "the job's sleep is pid 1 or 2 of its namespace (as init runs it): \(result)")
        #expect(lines.count < 12, "only the job's processes: \(result)")
        #expect(lines.contains("made-by-the-job"), "the job's private /tmp: \(result)")
        #expect(result.stdout.contains(job.release), "the job's chroot: \(result)")
        #expect(lines.contains(job.scratch), "the job's working directory: \(result)")
        #expect(lines.last == "0")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/marker") || (try? String(contentsOfFile: "/tmp/marker", encoding: .utf8)) != "made-by-the-job\n")
    }

    @Test("an attached process counts in the job's cgroups and is killed when the job's init dies (137)")
    func countsInTheCgroupAndDiesWithTheJob() throws {
        let job = try RootJob()
        defer { job.remove() }
        let sleep = Support.uniqueSleep()
        let attached = try Support.Background(
            ["ns-exec", "--config", job.config, "--attach", job.job, "--", "/bin/sleep", sleep], directory: job.dir.path + "/execute")
        #expect(Support.eventually { !Support.processes(withArguments: ["/bin/sleep", sleep]).isEmpty }, "\(attached.stderr)")
        let pid = try #require(Support.processes(withArguments: ["/bin/sleep", sleep]).first)
        let theirs = try String(contentsOfFile: "/proc/\(try job.initPID())/cgroup", encoding: .utf8)
        let ours = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)
        #expect(ours == theirs, "the attached process is in every cgroup of the job")
        #expect(theirs.contains("/\(job.base)/job_"), "\(theirs)")
        kill(try job.initPID(), SIGKILL)
        #expect(attached.wait() == 137, "\(attached.stderr)")
        #expect(Support.eventually { Support.processes(withArguments: ["/bin/sleep", sleep]).isEmpty })
        #expect(Support.eventually { !FileManager.default.fileExists(atPath: job.recordPath) }, "the record goes with the job")
    }

    @Test("an unknown job, an ended job and a job without a command are one line and 125")
    func unknownJob() throws {
        let job = try RootJob()
        defer { job.remove() }
        let unknown = try TestSupport.run(["ns-exec", "--config", job.config, "--attach", "jbdnone", "--", "true"])
        #expect(unknown.status == 125)
        #expect(
            unknown.stderr == "ns-exec: cannot attach to job 'jbdnone': no job of that id started with --pid is recorded in \(job.dir.path)/state/ns-exec\n")
        let noCommand = try TestSupport.run(["ns-exec", "--config", job.config, "--attach", job.job, "--"])
        #expect(noCommand.status == 125 && noCommand.stderr.split(separator: "\n").count == 1, "\(noCommand)")
        let mixed = try TestSupport.run(["ns-exec", "--config", job.config, "--attach", job.job, "--pid", "--", "true"])
        #expect(mixed.status == 125 && mixed.stderr.contains("invalid use of --attach"), "\(mixed)")
        // A stale record (the job was killed with ns-exec, so nothing removed it) names a pid that is gone.
        let record = try String(contentsOfFile: job.recordPath, encoding: .utf8)
        kill(try job.initPID(), SIGKILL)
        _ = job.background.wait()
        try record.write(toFile: job.recordPath, atomically: false, encoding: .utf8)
        let ended = try job.attach(["true"])
        #expect(ended.status == 125 && ended.stderr.contains("it has ended"), "\(ended)")
    }

    @Test("a throwaway user attaches to their own --userns job: its processes, its private /tmp; the record goes with the job")
    func userAttachesToOwnUsernsJob() throws {
        let dir = try ExecuteDirectory("jbdattach")
        defer { dir.remove() }
        let attacher = try AttachUser()
        defer { attacher.remove() }
        let user = attacher.user
        let records = attacher.records
        let nsExec = try dir.nsExecCopy()
        let scratch = try dir.make("scratch", mode: 0o700, owner: (user.uid, user.gid))
        let sleep = Support.uniqueSleep()
        let job = try Support.Background(
            attacher.nsExec(
                nsExec,
                ["--userns", "--pid", "--scratch", scratch, "--job", "jbdu", "--", "/bin/sh", "-c", "echo the-users-job > /tmp/marker; exec sleep \(sleep)"]),
            directory: dir.path)
        defer {
            for pid in Support.processes(withArguments: ["sleep", sleep]) { kill(pid, SIGKILL) }
            _ = job.wait()
        }
        #expect(Support.eventually { FileManager.default.fileExists(atPath: records + "/job_jbdu") }, "\(job.stderr)")
        let result = try TestSupport.run(
            attacher.nsExec(
                nsExec, ["--attach", "jbdu", "--", "/bin/sh", "-c", "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done; cat /tmp/marker; id -u"]))
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("sleep \(sleep)"), "the job's processes: \(result)")
        #expect(result.stdout.split(separator: "\n").count < 12, "only the job's: \(result)")
        #expect(result.stdout.contains("the-users-job\n"), "the job's private /tmp: \(result)")
        #expect(result.stdout.hasSuffix("\(user.uid)\n"))
        for pid in Support.processes(withArguments: ["sleep", sleep]) { kill(pid, SIGKILL) }
        #expect(job.wait() == 137)
        #expect(!FileManager.default.fileExists(atPath: records), "the user's record directory goes when empty")
    }
}
