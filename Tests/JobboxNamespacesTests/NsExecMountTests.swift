import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxChroot
@testable import JobboxCore
@testable import JobboxNamespaces

/// ns-exec's mount namespace: scratch binds, the symlink refusal, /dev/shm, binds, propagation.
@Suite("ns-exec mounts", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct NsExecMountTests {
    typealias Support = NsExecTestSupport

    @Test("the mount-table check every test ends with sees a mount left on the host, and its removal")
    func mountCheckSeesLeftovers() throws {
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        let target = try dir.make("leftover")
        let before = try Support.hostMounts()
        #expect(before.contains { $0.mountPoint == "/" })
        #expect(mount("jobbox-leftover", target, "tmpfs", 0, nil) == 0)
        defer { umount2(target, Int32(MNT_DETACH)) }
        #expect(try Support.mountChanges(since: before, paths: [dir.path]).count == 1)
        let mounted = try Support.hostMounts()
        umount2(target, Int32(MNT_DETACH))
        let vanished = try Support.mountChanges(since: mounted, paths: [dir.path])
        #expect(vanished.count == 1 && vanished[0].hasPrefix("vanished: \(target) (tmpfs jobbox-leftover"), "\(vanished)")
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }

    @Test("a file the job writes to /tmp lands in <scratch>/tmp (0700, the job's user) and never in the host's /tmp")
    func tmpLandsInScratch() throws {
        let before = try Support.hostMounts()
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        let scratch = try dir.make("scratch")
        let name = TestSupport.uniqueName("jobfile")
        let script = "echo from-the-job > /tmp/\(name); echo var > /var/tmp/\(name); id -un"
        let result = try TestSupport.run([
            "ns-exec", "--pid", "--scratch", scratch, "--mount-under-scratch", "/tmp,/var/tmp", "--user", "nobody", "--",
            "/bin/sh", "-c", script,
        ])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "nobody\n")
        #expect(try String(contentsOfFile: scratch + "/tmp/" + name, encoding: .utf8) == "from-the-job\n")
        #expect(try String(contentsOfFile: scratch + "/var/tmp/" + name, encoding: .utf8) == "var\n")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/" + name))
        #expect(!FileManager.default.fileExists(atPath: "/var/tmp/" + name))
        let attributes = try FileManager.default.attributesOfItem(atPath: scratch + "/tmp")
        #expect(attributes[.posixPermissions] as? Int == 0o700)
        #expect(attributes[.ownerAccountName] as? String == "nobody")
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }

    @Test("MOUNT_UNDER_SCRATCH is the default list; a directory holding the scratch dir is the job's own too, the scratch dir still in it")
    func configuredListAndHoldingDirectory() throws {
        let before = try Support.hostMounts()
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        let scratch = try dir.make("scratch")
        // /var/lib holds the scratch dir: the job's /var/lib is <scratch>/var/lib, with the scratch dir bound back in.
        try dir.write("jobbox.conf", "MOUNT_UNDER_SCRATCH = /var/tmp, /var/lib\n")
        let name = TestSupport.uniqueName("jobfile")
        let result = try TestSupport.run([
            "ns-exec", "--config", dir.path + "/jobbox.conf", "--scratch", scratch, "--", "/bin/sh", "-c",
            "echo x > /var/tmp/\(name) && echo y > /tmp/\(name) && ls \(scratch) && ls /var/lib",
        ])
        defer { try? FileManager.default.removeItem(atPath: "/tmp/" + name) }
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "var\n" + String(dir.path.dropFirst("/var/lib/".count)) + "\n")
        #expect(FileManager.default.fileExists(atPath: scratch + "/var/tmp/" + name))
        // /tmp was not in the list: the job wrote the host's /tmp.
        #expect(FileManager.default.fileExists(atPath: "/tmp/" + name))
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }

    @Test("a symlink from <scratch>/tmp to /etc is refused with 125; nothing is mounted or made")
    func symlinkRefused() throws {
        let before = try Support.hostMounts()
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        let scratch = try dir.make("scratch")
        try FileManager.default.createSymbolicLink(atPath: scratch + "/tmp", withDestinationPath: "/etc")
        let marker = "/etc/" + TestSupport.uniqueName("jobbox-planted")
        let result = try TestSupport.run([
            "ns-exec", "--pid", "--scratch", scratch, "--mount-under-scratch", "/var/tmp,/tmp", "--", "/bin/sh", "-c", "touch /tmp/\(marker.dropFirst(5))",
        ])
        #expect(result.status == 125)
        #expect(
            result.stderr == "ns-exec: refusing to mount \(scratch)/tmp: it is a symlink or not a directory (nothing under the scratch directory is followed)\n"
        )
        #expect(!FileManager.default.fileExists(atPath: marker))
        // <scratch>/var/tmp, made before the refusal, was removed again.
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch) == ["tmp"])
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: scratch + "/tmp") == "/etc")
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }

    @Test("the C shim itself refuses a symlink planted after the checks: it opens every component with O_NOFOLLOW")
    func shimRefusesSymlink() async throws {
        let before = try Support.hostMounts()
        let dir = "/var/lib/jbtest-shim-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir + "/scratch", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createSymbolicLink(atPath: dir + "/scratch/tmp", withDestinationPath: "/etc")
        // In a child process: the plan skips the Swift-side preparation that would refuse the symlink first, as
        // if the symlink appeared between that check and the mount.
        await #expect(processExitsWith: .exitCode(125)) {
            let scratch = "/var/lib/jbtest-shim-\(getppid())/scratch"
            var plan = NsExecPlan()
            plan.namespaces = [.mount]
            plan.layout.scratch = scratch
            plan.mounts = [.makeSlave, .bind(source: .underScratch("tmp"), target: .host("/tmp"), recursive: false)]
            plan.command = ["/bin/true"]
            let opened = try JobScratch(scratch)
            let outcome = NamespaceLauncher.run(plan, scratch: opened)
            let refused = JobDirectories.refusal(scratch + "/tmp")
            exit(outcome == .failed(refused) ? 125 : 1)
        }
        try Support.expectMountsUnchanged(since: before, paths: [dir])
    }

    @Test("the C shim takes only the scratch dir ns-exec opened: another directory renamed to its path is refused")
    func shimRefusesSwappedScratch() async throws {
        let before = try Support.hostMounts()
        let dir = "/var/lib/jbtest-swap-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir + "/scratch/tmp", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/other/tmp", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        await #expect(processExitsWith: .exitCode(125)) {
            let dir = "/var/lib/jbtest-swap-\(getppid())"
            var plan = NsExecPlan()
            plan.namespaces = [.mount]
            plan.layout.scratch = dir + "/scratch"
            plan.mounts = [.makeSlave, .bind(source: .underScratch("tmp"), target: .host("/tmp"), recursive: false)]
            plan.command = ["/bin/true"]
            let opened = try JobScratch(dir + "/scratch")
            // What a job's user can do where it may write the directory above: swap another directory in.
            guard rename(dir + "/scratch", dir + "/old") == 0, rename(dir + "/other", dir + "/scratch") == 0 else { exit(2) }
            let outcome = NamespaceLauncher.run(plan, scratch: opened)
            let refused = JobboxError.invalid("cannot open scratch directory", dir + "/scratch", "another directory took its place")
            exit(outcome == .failed(refused) ? 125 : 1)
        }
        try Support.expectMountsUnchanged(since: before, paths: [dir])
    }

    @Test("the C shim binds only the source ns-exec checked: another directory renamed to its path is refused")
    func shimRefusesSwappedBindSource() async throws {
        let before = try Support.hostMounts()
        let dir = "/var/lib/jbtest-bindswap-\(getpid())"
        for name in ["data", "other", "target"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: true)
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        await #expect(processExitsWith: .exitCode(125)) {
            let dir = "/var/lib/jbtest-bindswap-\(getppid())"
            var plan = NsExecPlan()
            plan.namespaces = [.mount]
            plan.mounts = [.makeSlave, .bind(source: .host(dir + "/data"), target: .host(dir + "/target"), recursive: false)]
            plan.command = ["/bin/true"]
            let binds = try NsExec.pinBinds(plan)
            guard rename(dir + "/data", dir + "/old") == 0, rename(dir + "/other", dir + "/data") == 0 else { exit(2) }
            let outcome = NamespaceLauncher.run(plan, scratch: nil, binds: binds)
            exit(outcome == .failed(.invalid("cannot bind", dir + "/data", "another file took its place")) ? 125 : 1)
        }
        try Support.expectMountsUnchanged(since: before, paths: [dir])
    }

    @Test("binds onto earlier mounts still land: a bind inside another bind, /dev/shm both private and under scratch")
    func bindsBelowEarlierMounts() throws {
        let before = try Support.hostMounts()
        let dir = try ExecuteDirectory("jbtest-nested")
        defer { dir.remove() }
        let outer = try dir.make("outer/inner")
        try dir.write("outer/inner/host", "host's\n")
        try dir.make("first/inner")
        let second = try dir.make("second")
        try dir.write("second/marker", "second\n")
        let nested = try TestSupport.run([
            "ns-exec", "--bind", "\(dir.path)/first:\(dir.path)/outer", "--bind", "\(second):\(outer)", "--", "/bin/cat", outer + "/marker",
        ])
        #expect(nested.status == 0 && nested.stdout == "second\n", "\(nested)")

        let scratch = try dir.make("scratch")
        let shm = try TestSupport.run([
            "ns-exec", "--pid", "--private-dev-shm", "--scratch", scratch, "--mount-under-scratch", "/dev/shm", "--", "/bin/touch", "/dev/shm/jbtest",
        ])
        #expect(shm.status == 0, "\(shm)")
        #expect(FileManager.default.fileExists(atPath: scratch + "/dev/shm/jbtest"), "\(shm)")
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }

    @Test("--private-dev-shm gives the job its own /dev/shm; --no-private-dev-shm shares the host's")
    func privateDevShm() throws {
        let before = try Support.hostMounts()
        let name = TestSupport.uniqueName("jobbox-shm")
        defer { try? FileManager.default.removeItem(atPath: "/dev/shm/" + name) }
        let own = try TestSupport.run(["ns-exec", "--mount", "--private-dev-shm", "--", "/bin/sh", "-c", "echo x > /dev/shm/\(name) && ls /dev/shm"])
        #expect(own.status == 0, "\(own)")
        #expect(own.stdout == name + "\n")
        #expect(!FileManager.default.fileExists(atPath: "/dev/shm/" + name))
        let shared = try TestSupport.run(["ns-exec", "--mount", "--no-private-dev-shm", "--", "/bin/sh", "-c", "echo x > /dev/shm/\(name)"])
        #expect(shared.status == 0, "\(shared)")
        #expect(FileManager.default.fileExists(atPath: "/dev/shm/" + name))
        try Support.expectMountsUnchanged(since: before)
    }

    @Test("--bind shows a host directory at another path, only to the job")
    func bind() throws {
        let before = try Support.hostMounts()
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        let source = try dir.make("data")
        let target = try dir.make("view")
        try dir.write("data/file", "bound\n")
        let result = try TestSupport.run(["ns-exec", "--bind", "\(source):\(target)", "--", "/bin/cat", target + "/file"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "bound\n")
        #expect(!FileManager.default.fileExists(atPath: target + "/file"))
        let bad = try TestSupport.run(["ns-exec", "--bind", "relative:/x", "--", "/bin/true"])
        #expect(bad.status == 125)
        #expect(bad.stderr == "ns-exec: invalid bind 'relative:/x': expected SRC or SRC:DST with absolute paths without . or ..\n")
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }

    @Test("the job's mounts are slaves: a mount the host makes later reaches the job, the job's never reach the host")
    func slavePropagation() throws {
        let before = try Support.hostMounts()
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        // A shared mount of the test's own, since this machine's / is private (nothing would propagate at all).
        let shared = try dir.make("shared")
        try dir.make("shared/from-host")
        try dir.make("shared/from-job")
        #expect(mount(shared, shared, nil, UInt(MS_BIND), nil) == 0)
        defer { umount2(shared, Int32(MNT_DETACH)) }
        #expect(mount(nil, shared, nil, UInt(MS_SHARED), nil) == 0)
        let ready = dir.path + "/ready"
        let go = dir.path + "/go"
        let script = """
            mount -t tmpfs jobtmpfs \(shared)/from-job && touch \(ready); \
            while [ ! -e \(go) ]; do sleep 0.05; done; grep -c ' \(shared)/from-host ' /proc/self/mountinfo
            """
        let job = try Support.Background(["ns-exec", "--mount", "--", "/bin/sh", "-c", script], directory: dir.path)
        #expect(Support.eventually { FileManager.default.fileExists(atPath: ready) })
        #expect(try Support.hostMounts().filter { $0.mountPoint == shared + "/from-job" }.isEmpty)
        #expect(mount("hosttmpfs", shared + "/from-host", "tmpfs", 0, nil) == 0)
        defer { umount2(shared + "/from-host", Int32(MNT_DETACH)) }
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        #expect(job.wait() == 0, "\(job.stderr)")
        #expect(job.stdout == "1\n")
        umount2(shared + "/from-host", Int32(MNT_DETACH))
        umount2(shared, Int32(MNT_DETACH))
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }
}
