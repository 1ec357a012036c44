import Foundation
import JobboxTestSupport
import Testing

/// ns-exec's chroots: named and by path, what is bound into them, and the ownership check.
@Suite("ns-exec chroot", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct NsExecChrootTests {
    typealias Support = NsExecTestSupport

    /// A test directory with a busybox chroot in `root` and a config naming it `name`.
    struct Fixture {
        let dir: ExecuteDirectory
        let root: String
        let name: String
        let release: String
        let config: String

        init() throws {
            dir = try ExecuteDirectory()
            root = dir.path + "/chroots/tiny"
            name = TestSupport.uniqueName("TINY")
            release = "PRETTY_NAME=\"jobbox test chroot \(name)\"\nID=jobbox-test\n"
            try Support.buildChroot(at: root, release: release)
            chmod(dir.path + "/chroots", 0o755)
            config = dir.path + "/jobbox.conf"
            try dir.write("jobbox.conf", "NAMED_CHROOT = OTHER=/nonexistent, \(name)=\(root)\n")
            chmod(config, 0o644)
        }
    }

    @Test("a chroot named in NAMED_CHROOT, or given by path as root, runs the chroot's own userland")
    func runsTheChrootsUserland() throws {
        let before = try Support.hostMounts()
        let fixture = try Fixture()
        defer { fixture.dir.remove() }
        let script = "cat /etc/os-release; pwd"
        let byName = try TestSupport.run(["ns-exec", "--config", fixture.config, "--chroot", fixture.name, "--", "/bin/sh", "-c", script])
        #expect(byName.status == 0, "\(byName)")
        #expect(byName.stdout == fixture.release + "/\n")
        let byPath = try TestSupport.run(["ns-exec", "--chroot", fixture.root, "--", "/bin/sh", "-c", script])
        #expect(byPath.stdout == fixture.release + "/\n", "\(byPath)")
        // The host's os-release is another file: the test would fail if the chroot were not entered.
        #expect(try String(contentsOfFile: "/etc/os-release", encoding: .utf8) != fixture.release)
        let unknown = try TestSupport.run(["ns-exec", "--config", fixture.config, "--chroot", "nope", "--", "/bin/true"])
        #expect(unknown.status == 125)
        #expect(unknown.stderr == "ns-exec: unknown chroot 'nope': NAMED_CHROOT defines OTHER, \(fixture.name)\n")
        try Support.expectMountsUnchanged(since: before, paths: [fixture.dir.path])
    }

    @Test("in a chroot with --pid and --scratch: the scratch dir at its own path, /tmp from scratch, only the job's processes")
    func scratchAndPidInsideTheChroot() throws {
        let before = try Support.hostMounts()
        let fixture = try Fixture()
        defer { fixture.dir.remove() }
        let scratch = try fixture.dir.make("execute/dir_1/scratch")
        try fixture.dir.write("execute/dir_1/scratch/input", "input file\n")
        // The scratch dir's parent, as chroot-tool makes it from CHROOT_MOUNT_POINTS.
        try FileManager.default.createDirectory(atPath: fixture.root + fixture.dir.path + "/execute/dir_1", withIntermediateDirectories: true)
        let name = TestSupport.uniqueName("jobfile")
        let script = "ps -o pid,comm; pwd; cat input; echo made > /tmp/\(name); ls /dev/null"
        let result = try TestSupport.run([
            "ns-exec", "--config", fixture.config, "--chroot", fixture.name, "--pid", "--scratch", scratch, "--user", "nobody", "--",
            "/bin/sh", "-c", script,
        ])
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        #expect(lines == ["PID COMMAND", "1 ns-exec-init", "2 sh", "3 ps", scratch, "input file", "/dev/null"])
        #expect(try String(contentsOfFile: scratch + "/tmp/" + name, encoding: .utf8) == "made\n")
        #expect(!FileManager.default.fileExists(atPath: fixture.root + "/tmp/" + name))
        // Its mount point lived on a per-job tmpfs: nothing was made in the chroot.
        #expect(!FileManager.default.fileExists(atPath: fixture.root + scratch))
        try Support.expectMountsUnchanged(since: before, paths: [fixture.dir.path])
    }

    @Test(
        "a chroot writable by anyone but root, itself or above, is refused with 125",
        arguments: [("", 0o777), ("", 0o775), ("/..", 0o757)])
    func writableChrootRefused(suffix: String, mode: Int) throws {
        let before = try Support.hostMounts()
        let fixture = try Fixture()
        defer { fixture.dir.remove() }
        let weak = URL(fileURLWithPath: fixture.root + suffix).standardized.path
        chmod(weak, mode_t(mode))
        let marker = TestSupport.uniqueName("ran")
        let result = try TestSupport.run(["ns-exec", "--config", fixture.config, "--chroot", fixture.name, "--", "/bin/sh", "-c", "echo \(marker)"])
        #expect(result.status == 125)
        #expect(result.stderr == "ns-exec: refusing chroot \(fixture.root): \(weak) is writable by others than root (mode \(String(mode, radix: 8)))\n")
        #expect(result.stdout.isEmpty)
        try Support.expectMountsUnchanged(since: before, paths: [fixture.dir.path])
    }

    @Test("a chroot owned by another user, or reached through a directory another user owns, is refused")
    func foreignOwnerRefused() throws {
        let before = try Support.hostMounts()
        let fixture = try Fixture()
        defer { fixture.dir.remove() }
        chown(fixture.dir.path + "/chroots", 65534, 65534)
        let result = try TestSupport.run(["ns-exec", "--chroot", fixture.root, "--", "/bin/true"])
        #expect(result.status == 125)
        #expect(result.stderr == "ns-exec: refusing chroot \(fixture.root): \(fixture.dir.path)/chroots is owned by uid 65534, not root\n")
        // A root-owned symlink does not help when the directory it leads through is someone else's.
        chown(fixture.dir.path + "/chroots", 0, 0)
        let elsewhere = try fixture.dir.make("users-dir", mode: 0o755, owner: (65534, 65534))
        try FileManager.default.createSymbolicLink(atPath: elsewhere + "/tiny", withDestinationPath: fixture.root)
        try FileManager.default.createSymbolicLink(atPath: fixture.dir.path + "/link", withDestinationPath: elsewhere + "/tiny")
        let viaLink = try TestSupport.run(["ns-exec", "--chroot", fixture.dir.path + "/link", "--", "/bin/true"])
        #expect(viaLink.status == 125)
        // The walk stops at the user's link itself: it is not followed at all.
        #expect(
            viaLink.stderr
                == "ns-exec: refusing chroot \(fixture.dir.path)/link: \(elsewhere)/tiny is a symbolic link in a directory the job can write (refused as root)\n"
        )
        try Support.expectMountsUnchanged(since: before, paths: [fixture.dir.path])
    }
}
