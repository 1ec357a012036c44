import Foundation
import JobboxTestSupport
import Testing

/// ns-exec's switch to the job's user, as root.
@Suite("ns-exec identity", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct NsExecIdentityTests {
    typealias Support = NsExecTestSupport

    /// `nobody`'s groups as the group database has them.
    static func groupsOfNobody() throws -> [String] {
        try TestSupport.run(["id", "-G", "nobody"]).stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init).sorted()
    }

    @Test("--user nobody: nobody's ids and groups only, no capabilities, and root cannot be regained")
    func nobody() throws {
        let before = try Support.hostMounts()
        let script =
            "id -u; id -g; id -G; grep -E '^(CapInh|CapPrm|CapEff|CapAmb|NoNewPrivs):' /proc/self/status; perl -e 'use POSIX; print POSIX::setuid(0) ? \"regained\\n\" : \"refused\\n\"'"
        let result = try TestSupport.run(["ns-exec", "--pid", "--user", "nobody", "--no-new-privs", "--", "/bin/sh", "-c", script])
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map { $0.split(whereSeparator: { $0 == "\t" || $0 == " " }).joined(separator: " ") }
        #expect(lines.count == 9, "\(lines)")
        guard lines.count == 9 else { return }
        #expect(lines[0] == "65534")
        #expect(lines[1] == "65534")
        #expect(lines[2].split(separator: " ").map(String.init).sorted() == (try Self.groupsOfNobody()))
        #expect(!lines[2].split(separator: " ").contains("0"))
        #expect(
            Array(lines[3...7]) == [
                "CapInh: 0000000000000000", "CapPrm: 0000000000000000", "CapEff: 0000000000000000", "CapAmb: 0000000000000000", "NoNewPrivs: 1",
            ])
        #expect(lines[8] == "refused")
        try Support.expectMountsUnchanged(since: before)
    }

    @Test("a setuid-root copy of id elevates nobody without --no-new-privs, and does not with it")
    func setuidBinaryDoesNotElevate() throws {
        let before = try Support.hostMounts()
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        let id = dir.path + "/id"
        try Spawn.copyExecutable("/usr/bin/id", to: id)
        chown(id, 0, 0)
        chmod(id, 0o4755)
        // The control: the copy really is a working setuid-root binary on this file system.
        let control = try TestSupport.run(["ns-exec", "--user", "nobody", "--", id, "-u"])
        #expect(control.status == 0, "\(control)")
        #expect(control.stdout == "0\n")
        let guarded = try TestSupport.run(["ns-exec", "--user", "nobody", "--no-new-privs", "--", id, "-u"])
        #expect(guarded.status == 0, "\(guarded)")
        #expect(guarded.stdout == "65534\n")
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }

    @Test("--user NAME: the supplementary groups the group database gives the user (through getent), nothing else")
    func supplementaryGroupsFromTheDatabase() throws {
        let user = try TestUser(prefix: "jbsg")
        defer { user.remove() }
        let groupName = TestSupport.uniqueName("jbsgg")
        #expect(try TestSupport.run(["/usr/sbin/groupadd", groupName]).status == 0)
        defer { _ = try? TestSupport.run(["/usr/sbin/groupdel", groupName]) }
        #expect(try TestSupport.run(["/usr/sbin/usermod", "-a", "-G", groupName, user.name]).status == 0)
        let extra = try #require(TestSupport.groupID(groupName))
        let result = try TestSupport.run(["ns-exec", "--user", user.name, "--", "/bin/sh", "-c", "id -u; id -g; id -G"])
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(result)")
        guard lines.count == 3 else { return }
        #expect(lines[0] == String(user.uid))
        #expect(lines[1] == String(user.gid))
        #expect(lines[2].split(separator: " ").compactMap { UInt32($0) }.sorted() == [user.gid, extra].sorted())
    }

    @Test("--group picks the primary group; a uid without a passwd entry needs --group; unknown names are refused")
    func groupsAndNumbers() throws {
        let before = try Support.hostMounts()
        let withGroup = try TestSupport.run(["ns-exec", "--user", "nobody", "--group", "daemon", "--", "id", "-g"])
        #expect(withGroup.stdout == String(TestSupport.groupID("daemon") ?? 1) + "\n", "\(withGroup)")
        let numeric = try TestSupport.run(["ns-exec", "--user", "4242", "--group", "4243", "--", "/bin/sh", "-c", "id -u; id -g; id -G"])
        #expect(numeric.stdout == "4242\n4243\n4243\n", "\(numeric)")
        let noGroup = try TestSupport.run(["ns-exec", "--user", "4242", "--", "/bin/true"])
        #expect(noGroup.status == 125)
        #expect(noGroup.stderr == "ns-exec: cannot run as user '4242': uid 4242 has no entry in the user database: give --group\n")
        let unknown = try TestSupport.run(["ns-exec", "--user", "jobbox-no-such-user", "--", "/bin/true"])
        #expect(unknown.status == 125)
        #expect(unknown.stderr == "ns-exec: unknown user 'jobbox-no-such-user': not in the user database\n")
        try Support.expectMountsUnchanged(since: before)
    }

    @Test("as root with $_CONDOR_JOB_AD, the job runs as the ad's Owner unless --user says otherwise")
    func ownerFromJobAd() throws {
        let before = try Support.hostMounts()
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        try dir.write(".job.ad", "ClusterId = 12\nProcId = 0\nOwner = \"nobody\"\n")
        var environment = ProcessInfo.processInfo.environment
        environment["_CONDOR_JOB_AD"] = dir.path + "/.job.ad"
        let fromAd = try TestSupport.run(["ns-exec", "--", "id", "-un"], environment: environment)
        #expect(fromAd.stdout == "nobody\n", "\(fromAd)")
        let explicit = try TestSupport.run(["ns-exec", "--user", "daemon", "--", "id", "-un"], environment: environment)
        #expect(explicit.stdout == "daemon\n", "\(explicit)")
        try dir.write(".job.ad", "ClusterId = 12\nProcId = 0\n")
        let noOwner = try TestSupport.run(["ns-exec", "--", "id", "-un"], environment: environment)
        #expect(noOwner.status == 125)
        #expect(noOwner.stderr == "ns-exec: cannot find the job's user in \(dir.path)/.job.ad: it has no Owner string: pass --user\n")
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }
}

/// ns-exec run by an unprivileged user (a throwaway account), with and without a user namespace.
@Suite("ns-exec user namespace", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct NsExecUserNamespaceTests {
    typealias Support = NsExecTestSupport

    @Test("without root and without --userns, namespaces are refused with a hint; --chroot PATH and --user are refused")
    func refusedWithoutUserns() throws {
        let before = try Support.hostMounts()
        let user = try TestUser()
        defer { user.remove() }
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        let tool = try dir.nsExecCopy()
        let plain = try TestSupport.run(user.command([tool, "--pid", "--", "/bin/true"]))
        #expect(plain.status == 125)
        #expect(plain.stderr == "ns-exec: cannot create namespaces mnt,pid: Operation not permitted (not root: add --userns)\n")
        let byPath = try TestSupport.run(user.command([tool, "--userns", "--chroot", "/var", "--", "/bin/true"]))
        #expect(byPath.status == 125)
        #expect(byPath.stderr == "ns-exec: refusing chroot /var: only root may name a chroot by path; use a name from NAMED_CHROOT\n")
        let other = try TestSupport.run(user.command([tool, "--userns", "--user", "root", "--", "/bin/true"]))
        #expect(other.status == 125)
        #expect(
            other.stderr
                == "ns-exec: cannot switch to user 'root': a user namespace of ns-exec maps only the caller's own uid \(user.uid) and gid \(user.gid)\n")
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }

    @Test("--userns: PID, mount, net, UTS namespaces and scratch binds work as an ordinary user, with no capabilities left")
    func namespacesWithoutRoot() throws {
        let before = try Support.hostMounts()
        let user = try TestUser()
        defer { user.remove() }
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        let scratch = try dir.make("scratch", mode: 0o755, owner: (user.uid, user.gid))
        let name = TestSupport.uniqueName("userfile")
        let script = """
            ps -e -o pid=,comm=; id -u; hostname; ip -o link | cut -d' ' -f2; echo mine > /tmp/\(name); \
            grep -E '^(CapEff|NoNewPrivs):' /proc/self/status
            """
        let result = try TestSupport.run(
            user.command([
                try dir.nsExecCopy(), "--userns", "--pid", "--net", "--hostname", "userjob", "--scratch", scratch, "--", "/bin/sh", "-c", script,
            ]))
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ") }
        #expect(lines == ["1 ns-exec-init", "2 sh", "3 ps", String(user.uid), "userjob", "lo:", "CapEff: 0000000000000000", "NoNewPrivs: 1"])
        #expect(try String(contentsOfFile: scratch + "/tmp/" + name, encoding: .utf8) == "mine\n")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/" + name))
        let owner = try FileManager.default.attributesOfItem(atPath: scratch + "/tmp")[.ownerAccountID] as? Int
        #expect(owner == Int(user.uid))
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }

    @Test("--userns with a named chroot: an ordinary user runs the chroot's userland with its scratch dir inside")
    func chrootWithoutRoot() throws {
        let before = try Support.hostMounts()
        let user = try TestUser()
        defer { user.remove() }
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        let root = dir.path + "/chroot"
        let release = "PRETTY_NAME=\"user chroot \(user.name)\"\n"
        try Support.buildChroot(at: root, release: release)
        let scratch = try dir.make("scratch", mode: 0o755, owner: (user.uid, user.gid))
        // The user cannot create mount points in root's chroot: the admin provides the scratch path, as for
        // HTCondor's EXECUTE directory.
        try FileManager.default.createDirectory(atPath: root + scratch, withIntermediateDirectories: true)
        try dir.write("jobbox.conf", "NAMED_CHROOT = usertiny=\(root)\n")
        chmod(dir.path + "/jobbox.conf", 0o644)
        let result = try TestSupport.run(
            user.command([
                try dir.nsExecCopy(), "--config", dir.path + "/jobbox.conf", "--userns", "--pid", "--chroot", "usertiny", "--scratch", scratch,
                "--", "/bin/sh", "-c", "ps -o pid,comm; cat /etc/os-release; id -u; pwd; echo in > /tmp/f",
            ]))
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        #expect(lines == ["PID COMMAND", "1 ns-exec-init", "2 sh", "3 ps", String(release.dropLast()), String(user.uid), scratch])
        #expect(try String(contentsOfFile: scratch + "/tmp/f", encoding: .utf8) == "in\n")
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }
}
