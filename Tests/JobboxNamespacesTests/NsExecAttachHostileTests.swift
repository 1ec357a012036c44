import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxNamespaces

/// Attacks on `ns-exec --attach`: another user's job, forged records, a records directory the job's user can write.
@Suite("Hostile: ns-exec --attach", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct NsExecAttachHostileTests {
    typealias Support = NsExecTestSupport

    @Test("another user cannot attach to a user's job: not through a record of their own naming its init, nor without one (125)")
    func anotherUsersJob() throws {
        let dir = try ExecuteDirectory("jbdattach")
        defer { dir.remove() }
        let ownerUser = try AttachUser()
        defer { ownerUser.remove() }
        let intruderUser = try AttachUser()
        defer { intruderUser.remove() }
        let (owner, intruder) = (ownerUser.user, intruderUser.user)
        let (ownerRecords, intruderRecords) = (ownerUser.records, intruderUser.records)
        let nsExec = try dir.nsExecCopy()
        let sleep = Support.uniqueSleep()
        let job = try Support.Background(ownerUser.nsExec(nsExec, ["--userns", "--pid", "--job", "jbdv", "--", "/bin/sleep", sleep]), directory: dir.path)
        defer {
            for pid in Support.processes(withArguments: ["/bin/sleep", sleep]) { kill(pid, SIGKILL) }
            _ = job.wait()
        }
        #expect(Support.eventually { FileManager.default.fileExists(atPath: ownerRecords + "/job_jbdv") }, "\(job.stderr)")
        // Without a record of their own, the intruder finds nothing.
        let attach = intruderUser.nsExec(nsExec, ["--attach", "jbdv", "--", "/bin/true"])
        let nothing = try TestSupport.run(attach)
        #expect(nothing.status == 125 && nothing.stderr.contains("no job of that id"), "\(nothing)")
        // A forged record naming the owner's init: refused before any setns.
        try FileManager.default.createDirectory(atPath: intruderRecords, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        chown(intruderRecords, intruder.uid, intruder.gid)
        let record = try String(contentsOfFile: ownerRecords + "/job_jbdv", encoding: .utf8)
        let forged = record.replacingOccurrences(of: "uid \(owner.uid)", with: "uid \(intruder.uid)")
        try forged.write(toFile: intruderRecords + "/job_jbdv", atomically: false, encoding: .utf8)
        chown(intruderRecords + "/job_jbdv", intruder.uid, intruder.gid)
        let refused = try TestSupport.run(attach)
        #expect(refused.status == 125, "\(refused)")
        #expect(refused.stderr.contains("is not this user's"), "\(refused)")
        #expect(refused.stderr.split(separator: "\n").count == 1)
    }

    @Test("as root, records in a STATE_DIR the job's user can write are not believed (125): a forged record cannot aim root at a process")
    func rootDistrustsUserWritableState() throws {
        let dir = try ExecuteDirectory("jbdattach")
        defer { dir.remove() }
        let user = try TestUser(prefix: "jbd")
        defer { user.remove() }
        let state = try dir.make("state", mode: 0o755, owner: (user.uid, user.gid))
        try dir.make("state/ns-exec", mode: 0o755, owner: (user.uid, user.gid))
        // The "job" is pid 1 of the host, running as root: what a forged record would want root to enter.
        let start = try #require(ProcessStat.read(pid: 1)?.startTime)
        try "pid 1\nstart \(start)\nuid 0\ngid 0\ngroups \n".write(toFile: state + "/ns-exec/job_jbdf", atomically: false, encoding: .utf8)
        try dir.write("jobbox.conf", "STATE_DIR = \(state)\n")
        let result = try TestSupport.run(["ns-exec", "--config", dir.path + "/jobbox.conf", "--attach", "jbdf", "--", "/bin/true"])
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr.hasPrefix("ns-exec: cannot attach to job \(state)/ns-exec"), "\(result)")
        #expect(result.stderr.split(separator: "\n").count == 1)
    }

    @Test("a descriptor of a root-only file root's caller left open does not reach a command root attaches as the job's user")
    func leakedDescriptorAcrossUser() throws {
        let dir = try ExecuteDirectory("jbdattach")
        defer { dir.remove() }
        let user = try TestUser(prefix: "jbd")
        defer { user.remove() }
        let canary = try NsExecHostileTests.Canary(in: dir)
        let config = try dir.write("jobbox.conf", "STATE_DIR = \(dir.path)/state\n")
        let sleep = Support.uniqueSleep()
        let job = try Support.Background(
            ["ns-exec", "--config", config, "--job", "jbdfd", "--pid", "--user", user.name, "--", "/bin/sleep", sleep], directory: dir.path)
        defer {
            for pid in Support.processes(withArguments: ["/bin/sleep", sleep]) { kill(pid, SIGKILL) }
            _ = job.wait()
        }
        #expect(Support.eventually { FileManager.default.fileExists(atPath: dir.path + "/state/ns-exec/job_jbdfd") }, "\(job.stderr)")
        // The command tries both ways in: reading the inherited descriptor, and opening it again through /proc.
        let command = "cat <&7; cat /proc/self/fd/7; id -u; echo done"
        let result = try TestSupport.sh(
            "exec 7<\(canary.path); exec \(TestSupport.tool("ns-exec")) --config \(config) --attach jbdfd -- /bin/sh -c '\(command)'")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "\(user.uid)\ndone\n", "\(result)")
        #expect(!result.stdout.contains(canary.secret) && !result.stderr.contains(canary.secret), "\(result)")
    }
}
