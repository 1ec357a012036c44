import CLinux
import CNsExec
import Foundation
import JobboxTestSupport
import Testing

/// Issue #12 for ns-exec: root never trusts what a job can write. Each test runs the attack for real, as a
/// throwaway user against the root tool, and checks that nothing outside the job changed and nothing leaked.
@Suite("Hostile: ns-exec", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct NsExecHostileTests {
    typealias Support = NsExecTestSupport

    /// A root-only canary file (mode 0600) holding a unique secret.
    struct Canary {
        let path: String
        let secret: String
        init(in dir: ExecuteDirectory, mode: Int = 0o600) throws {
            secret = TestSupport.uniqueName("secret-")
            path = dir.path + "/" + TestSupport.uniqueName("canary")
            try secret.write(toFile: path, atomically: false, encoding: .utf8)
            chown(path, 0, 0)
            chmod(path, mode_t(mode))
        }
    }

    /// A named chroot, as chroot-tool would have built it: busybox, the built-in mount points, the scratch dirs'
    /// parent, and a world-writable directory (`/srv/drop`), the kind a package may leave in a version.
    struct NamedChroot {
        let dir: ExecuteDirectory
        let root: String
        let name: String
        let config: String
        let execute: String

        init(configExtra: String = "") throws {
            dir = try ExecuteDirectory("jbhostile-")
            root = dir.path + "/chroots/tiny"
            name = TestSupport.uniqueName("HOSTILE")
            try Support.buildChroot(at: root, release: "ID=jobbox-hostile\n")
            chmod(dir.path + "/chroots", 0o755)
            execute = try dir.make("execute")
            for relative in ["run", "srv", String(execute.dropFirst())] {
                try FileManager.default.createDirectory(atPath: root + "/" + relative, withIntermediateDirectories: true)
            }
            try FileManager.default.createDirectory(atPath: root + "/srv/drop", withIntermediateDirectories: true)
            chmod(root + "/srv/drop", 0o1777)
            config = dir.path + "/jobbox.conf"
            try dir.write("jobbox.conf", "NAMED_CHROOT = \(name)=\(root)\n" + configExtra)
        }

        /// Every path in the version with its type, owner and mode, and the content of every regular file.
        func snapshot() throws -> [String] {
            let manager = FileManager.default
            let paths = manager.subpaths(atPath: root) ?? []
            return try paths.sorted().map { relative in
                let full = root + "/" + relative
                let attributes = try manager.attributesOfItem(atPath: full)
                let type = attributes[.type] as? FileAttributeType
                var line = "\(relative) \(type?.rawValue ?? "?") \(attributes[.ownerAccountID] ?? "?") \(attributes[.posixPermissions] ?? "?")"
                if type == .typeRegular, relative.hasPrefix("bin/") == false {
                    line += " " + ((try? String(contentsOfFile: full, encoding: .utf8)) ?? "<binary>")
                }
                return line
            }
        }

        /// A scratch directory for one job, in the execute directory the version has a mount point for.
        func scratch(owner user: TestUser) throws -> String {
            try dir.make("execute/" + TestSupport.uniqueName("dir_"), mode: 0o700, owner: (user.uid, user.gid))
        }
    }

    // MARK: finding 7: descriptors the launcher leaked

    @Test(
        "a descriptor of a root-only file the launcher left open does not reach a job run as another user",
        arguments: [[], ["--pid"]])
    func leakedDescriptorAcrossUser(extra: [String]) throws {
        try Self.withDirectoryAndUser { dir, user in
            let canary = try Canary(in: dir)
            let nsExec = TestSupport.tool("ns-exec")
            // The job tries both ways in: reading the inherited fd, and opening it again through /proc.
            let job = "cat <&7; cat /proc/self/fd/8; echo done"
            let launcher = "exec 7<\(canary.path) 8<\(canary.path); exec \(nsExec) \(extra.joined(separator: " ")) --user \(user.name) -- /bin/sh -c '\(job)'"
            let result = try TestSupport.sh(launcher)
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout == "done\n", "\(result)")
            #expect(!result.stdout.contains(canary.secret) && !result.stderr.contains(canary.secret))

            // --keep-fd passes exactly the one asked for (the control: the leak is real when a descriptor is passed).
            let kept =
                "exec 7<\(canary.path) 8<\(canary.path); exec \(nsExec) \(extra.joined(separator: " ")) --keep-fd 7 --user \(user.name) -- /bin/sh -c '\(job)'"
            let keptResult = try TestSupport.sh(kept)
            #expect(keptResult.stdout == canary.secret + "done\n", "\(keptResult)")
        }
    }

    @Test("a descriptor of the host's / the launcher left open does not lead a chrooted job out of its chroot")
    func leakedDescriptorOutOfChroot() throws {
        let before = try Support.hostMounts()
        let chroot = try NamedChroot()
        defer { chroot.dir.remove() }
        let canary = try Canary(in: chroot.dir, mode: 0o644)
        let nsExec = TestSupport.tool("ns-exec")
        let job = "cat /proc/self/fd/7\(canary.path); ls /proc/self/fd/7/ >/dev/null 2>&1 && echo escaped; echo done"
        // As root in the chroot (no --user, no job ad): the root changes, so the descriptor must go all the same.
        for extra in ["", "--pid"] {
            let launcher = "exec 7</; exec \(nsExec) --config \(chroot.config) --chroot \(chroot.name) \(extra) -- /bin/sh -c '\(job)'"
            let result = try TestSupport.sh(launcher)
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout == "done\n", "\(extra): \(result)")
            #expect(!result.stdout.contains(canary.secret))
        }
        try Support.expectMountsUnchanged(since: before, paths: [chroot.dir.path])
    }

    @Test("with --pid the job's init, which never execs, holds no descriptor of the launcher's either")
    func initHoldsNoLeakedDescriptor() throws {
        let dir = try ExecuteDirectory("jbhostile-")
        let user = try TestUser()
        defer {
            user.remove()
            dir.remove()
        }
        let canary = try Canary(in: dir)
        let release = dir.path + "/release"
        let script =
            "exec 7<\(canary.path); exec \(TestSupport.tool("ns-exec")) --pid --user \(user.name) -- /bin/sh -c 'while [ ! -e \(release) ]; do sleep 0.05; done'"
        let job = try Support.Background(["/bin/sh", "-c", script], directory: dir.path)
        defer { _ = FileManager.default.createFile(atPath: release, contents: nil) }
        var inits: [Int32] = []
        #expect(
            Support.eventually {
                inits = Self.children(of: job.pid).filter { Self.command(of: $0) == "ns-exec-init" }
                return !inits.isEmpty
            })
        for pid in inits {
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            let targets = fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)") }
            #expect(!targets.contains(canary.path), "the init holds \(targets)")
        }
        _ = FileManager.default.createFile(atPath: release, contents: nil)
        #expect(job.wait() == 0, "\(job.stderr)")
    }

    @Test("--keep-fd takes only an open descriptor above 2: else one line and 125, and the job does not run")
    func keepFDValidated() throws {
        let dir = try ExecuteDirectory("jbhostile-")
        defer { dir.remove() }
        let marker = dir.path + "/ran"
        for (value, reason) in [
            ("2", "descriptors 0, 1 and 2 are always passed on; give one above 2"), ("9", "descriptor 9 is not open"),
            ("x", "not a descriptor number"), ("-3", "not a descriptor number"),
        ] {
            let result = try TestSupport.run(["ns-exec", "--keep-fd=\(value)", "--user", "nobody", "--", "/bin/touch", marker])
            #expect(result.status == 125)
            #expect(result.stderr == "ns-exec: invalid --keep-fd '\(value)': \(reason)\n")
            #expect(!FileManager.default.fileExists(atPath: marker))
        }
    }

    @Test("the fallback for kernels without close_range marks every descriptor above 2, through /proc and without it")
    func descriptorFallback() async throws {
        await #expect(processExitsWith: .exitCode(0)) {
            // Descriptors without close-on-exec, high enough not to be the testing library's own; 0 to 2 must stay
            // as they are.
            func open(at number: Int32) -> Bool {
                let fd = Glibc.open("/dev/null", O_RDONLY)
                return fd >= 0 && (fd == number || (dup2(fd, number) == number && close(fd) == 0))
            }
            func marked() -> Bool {
                [Int32(500), 501, 900].allSatisfy { fcntl($0, F_GETFD) == FD_CLOEXEC } && (0...2).allSatisfy { fcntl(Int32($0), F_GETFD) == 0 }
            }
            func unmark() { for fd in [Int32(500), 501, 900] { _ = fcntl(fd, F_SETFD, 0) } }
            guard open(at: 500), open(at: 501), open(at: 900), fcntl(0, F_SETFD, 0) == 0, fcntl(1, F_SETFD, 0) == 0, fcntl(2, F_SETFD, 0) == 0 else { exit(2) }
            guard jb_mark_descriptors_slowly() == 0 else { exit(3) }
            guard marked() else { exit(6) }
            // Without /proc (a fresh mount namespace with a tmpfs over it): every number below the limit.
            unmark()
            guard jb_unshare(JB_CLONE_NEWNS) == 0, mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) == 0,
                mount("none", "/proc", "tmpfs", 0, nil) == 0, access("/proc/self/fd", F_OK) != 0
            else { exit(4) }
            guard jb_mark_descriptors_slowly() == 0, marked() else { exit(5) }
            exit(0)
        }
    }

    // MARK: finding 8: named chroots are shared by every job

    @Test("a job cannot change a named chroot: world-writable directories, new directories, files all stay out")
    func chrootVersionUnchanged() throws {
        try Self.withChrootAndUser { chroot, user in
            let snapshot = try chroot.snapshot()
            let scratch = try chroot.scratch(owner: user)
            let name = TestSupport.uniqueName("planted")
            // What a job would leave for the next job (or user) of the same version.
            let attack = """
                echo evil > /srv/drop/\(name) 2>/dev/null && echo wrote-drop; mkdir /\(name) 2>/dev/null && echo made-dir; \
                echo x > /etc/\(name) 2>/dev/null && echo wrote-etc; echo mine > /tmp/\(name) && echo wrote-tmp; \
                echo run > /run/\(name) && echo wrote-run; echo out > \(scratch)/\(name) && echo wrote-scratch; pwd
                """
            let result = try TestSupport.run([
                "ns-exec", "--config", chroot.config, "--chroot", chroot.name, "--pid", "--scratch", scratch, "--mount-under-scratch", "",
                "--user", user.name, "--", "/bin/sh", "-c", attack,
            ])
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout == "wrote-tmp\nwrote-run\nwrote-scratch\n\(scratch)\n", "\(result)")
            #expect(try String(contentsOfFile: scratch + "/" + name, encoding: .utf8) == "out\n")
            // Even root in the chroot, when asked for explicitly, cannot write the version.
            let asRoot = try TestSupport.run([
                "ns-exec", "--config", chroot.config, "--chroot", chroot.name, "--user", "root", "--", "/bin/sh", "-c", "echo x > /srv/\(name) || echo refused",
            ])
            #expect(asRoot.stdout == "refused\n", "\(asRoot)")
            #expect(try chroot.snapshot() == snapshot)
        }
    }

    @Test("a chroot without the scratch dir's parent is refused with one line: ns-exec makes no directory in it")
    func missingMountPointRefused() throws {
        let before = try Support.hostMounts()
        let chroot = try NamedChroot()
        defer { chroot.dir.remove() }
        try FileManager.default.removeItem(atPath: chroot.root + chroot.execute)
        let snapshot = try chroot.snapshot()
        let scratch = try chroot.dir.make("execute/dir_1")
        let result = try TestSupport.run([
            "ns-exec", "--config", chroot.config, "--chroot", chroot.name, "--scratch", scratch, "--", "/bin/echo", "ran",
        ])
        #expect(result.status == 125)
        #expect(result.stdout.isEmpty)
        #expect(
            result.stderr == "ns-exec: missing mount point \(chroot.root)\(chroot.execute): the scratch dir's parent is not a directory in the chroot; "
                + "ns-exec makes nothing in a chroot; add it to CHROOT_MOUNT_POINTS and build a new version\n")
        #expect(try chroot.snapshot() == snapshot)
        try Support.expectMountsUnchanged(since: before, paths: [chroot.dir.path])
    }

    // MARK: finding 9: the job ad names root

    @Test("a job ad whose Owner is root (by name or uid) is refused: 125, one line, nothing run", arguments: ["root", "0"])
    func jobAdNamingRootRefused(owner: String) throws {
        try Self.withDirectoryAndUser { dir, user in
            // The ad lies in the job's scratch dir, written as the job's user.
            let scratch = try dir.make("scratch", mode: 0o700, owner: (user.uid, user.gid))
            try "ClusterId = 1\nProcId = 0\nOwner = \"\(owner)\"\n".write(toFile: scratch + "/.job.ad", atomically: false, encoding: .utf8)
            chown(scratch + "/.job.ad", user.uid, user.gid)
            let marker = dir.path + "/ran-as-root"
            var environment = ProcessInfo.processInfo.environment
            environment["_CONDOR_JOB_AD"] = scratch + "/.job.ad"
            let result = try TestSupport.run(["ns-exec", "--pid", "--", "/bin/touch", marker], environment: environment)
            #expect(result.status == 125)
            #expect(result.stderr == "ns-exec: refusing to run the job as root: the job ad's Owner '\(owner)' is uid 0; pass --user root to mean it\n")
            #expect(!FileManager.default.fileExists(atPath: marker))
            // Root's own command line may still ask for root.
            let explicit = try TestSupport.run(["ns-exec", "--user", "root", "--", "/usr/bin/id", "-u"], environment: environment)
            #expect(explicit.stdout == "0\n", "\(explicit)")
        }
    }

    @Test("a job ad its user wrote may name only that user; a symlink or a FIFO in its place is refused")
    func jobAdOfItsUser() throws {
        try Self.withDirectoryAndUser { dir, user in
            let scratch = try dir.make("scratch", mode: 0o700, owner: (user.uid, user.gid))
            let ad = scratch + "/.job.ad"
            var environment = ProcessInfo.processInfo.environment
            environment["_CONDOR_JOB_AD"] = ad
            let write = { (owner: String) throws in
                try? FileManager.default.removeItem(atPath: ad)
                try "ClusterId = 1\nOwner = \"\(owner)\"\n".write(toFile: ad, atomically: false, encoding: .utf8)
                chown(ad, user.uid, user.gid)
            }
            // Its own name: fine.
            try write(user.name)
            let own = try TestSupport.run(["ns-exec", "--", "/usr/bin/id", "-un"], environment: environment)
            #expect(own.stdout == user.name + "\n", "\(own)")
            // Someone else's: the ad's user would become daemon.
            try write("daemon")
            let other = try TestSupport.run(["ns-exec", "--", "/usr/bin/id", "-un"], environment: environment)
            #expect(other.status == 125)
            #expect(other.stdout.isEmpty)
            #expect(
                other.stderr == "ns-exec: refusing to run the job as user 'daemon': the job ad \(ad) belongs to uid \(user.uid), "
                    + "whose ad may name only itself; pass --user\n")
            // A symlink to a root-owned ad elsewhere, and a FIFO that would hang root's ns-exec.
            try FileManager.default.removeItem(atPath: ad)
            try dir.write("root.ad", "Owner = \"daemon\"\n")
            try FileManager.default.createSymbolicLink(atPath: ad, withDestinationPath: dir.path + "/root.ad")
            let link = try TestSupport.run(["ns-exec", "--", "/usr/bin/id", "-un"], environment: environment)
            #expect(link.status == 125)
            #expect(link.stderr == "ns-exec: cannot read job ad \(ad): it is a symbolic link in a directory the job can write (refused as root)\n", "\(link)")
            try FileManager.default.removeItem(atPath: ad)
            #expect(mkfifo(ad, 0o644) == 0)
            let fifo = try TestSupport.run(["ns-exec", "--", "/usr/bin/id", "-un"], environment: environment)
            #expect(fifo.status == 125)
            #expect(fifo.stderr == "ns-exec: cannot read job ad \(ad): it is not a regular file\n", "\(fifo)")
        }
    }

    @Test("an ordinary user with --userns cannot change a named chroot either")
    func chrootUnchangedUnderUserns() throws {
        try Self.withChrootAndUser { chroot, user in
            chmod(chroot.config, 0o644)
            let scratch = try chroot.scratch(owner: user)
            // The admin made the scratch dir's own mount point in the chroot: the chroot has all the job needs.
            try FileManager.default.createDirectory(atPath: chroot.root + scratch, withIntermediateDirectories: true)
            let snapshot = try chroot.snapshot()
            let name = TestSupport.uniqueName("planted")
            let attack = "echo evil > /srv/drop/\(name) 2>/dev/null && echo wrote-drop; echo mine > /tmp/\(name) && echo wrote-tmp; pwd"
            let result = try TestSupport.run(
                user.command([
                    try chroot.dir.nsExecCopy(), "--config", chroot.config, "--userns", "--pid", "--chroot", chroot.name, "--scratch", scratch,
                    "--", "/bin/sh", "-c", attack,
                ]))
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout == "wrote-tmp\n\(scratch)\n", "\(result)")
            #expect(try chroot.snapshot() == snapshot)
        }
    }

    // MARK: also seen: the scratch dir below a directory mounted under scratch

    @Test("scratch below /tmp with /tmp mounted under scratch: /tmp is the job's own, the scratch dir still at its path", arguments: [false, true])
    func scratchBelowCoveredDirectory(inChroot: Bool) throws {
        let before = try Support.hostMounts()
        let user = try TestUser()
        let chroot = inChroot ? try NamedChroot() : nil
        let base = "/tmp/" + TestSupport.uniqueName("jbhostile-")
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: false)
        defer {
            try? FileManager.default.removeItem(atPath: base)
            chroot?.dir.remove()
            user.remove()
        }
        let scratch = base + "/scratch"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false)
        chown(scratch, user.uid, user.gid)
        chmod(scratch, 0o700)
        try "input\n".write(toFile: scratch + "/input", atomically: false, encoding: .utf8)
        let name = TestSupport.uniqueName("jobfile")
        let script = "echo private > /tmp/\(name) && cd \(scratch) && cat input && echo result > output && ls -a /tmp"
        var arguments = ["ns-exec", "--pid", "--scratch", scratch, "--mount-under-scratch", "/tmp", "--user", user.name]
        if let chroot { arguments += ["--config", chroot.config, "--chroot", chroot.name] }
        let result = try TestSupport.run(arguments + ["--", "/bin/sh", "-c", script])
        defer { try? FileManager.default.removeItem(atPath: "/tmp/" + name) }
        #expect(result.status == 0, "\(result)")
        // /tmp holds the job's file and the way to its scratch dir, nothing of the host's.
        #expect(result.stdout.split(separator: "\n").sorted() == [".", "..", Substring(base.dropFirst(5)), Substring(name), "input"].sorted(), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/" + name), "the job wrote the host's /tmp")
        #expect(try String(contentsOfFile: scratch + "/output", encoding: .utf8) == "result\n")
        #expect(try String(contentsOfFile: scratch + "/tmp/" + name, encoding: .utf8) == "private\n")
        try Support.expectMountsUnchanged(since: before, paths: [base])
    }

    // MARK: finding 10: the scratch path's last step, where the job's user can write

    @Test(
        "a symlink the job's user planted as its scratch dir is refused: root neither chowns nor mounts what it points at",
        arguments: [[], ["--pid"]])
    func plantedScratchSymlink(extra: [String]) throws {
        try Self.withDirectoryAndUser { dir, user in
            // The victim stands for /: a root-only directory whose tmp is root's (0755). The user owns the directory
            // above its scratch path (as with /scratch/$USER/$JOBID, or a path in /tmp made by a prolog).
            let victim = try dir.make("victim", mode: 0o755)
            let victimTmp = try dir.make("victim/tmp", mode: 0o755)
            let owned = try dir.make("user", mode: 0o700, owner: (user.uid, user.gid))
            let planted = owned + "/scratch"
            let plant = try TestSupport.run(user.command(["/bin/ln", "-s", victim, planted]))
            #expect(plant.status == 0, "\(plant)")

            let run = try TestSupport.run(
                ["ns-exec"] + extra + ["--scratch", planted, "--mount-under-scratch", "/tmp", "--user", user.name, "--", "/bin/sh", "-c", "touch /tmp/mine"])
            #expect(run.status == 125, "\(run)")
            #expect(run.stderr.hasPrefix("ns-exec: ") && run.stderr.contains(planted), "\(run)")
            var info = stat()
            #expect(stat(victimTmp, &info) == 0)
            #expect(info.st_uid == 0 && info.st_gid == 0 && info.st_mode & 0o7777 == 0o755, "root changed what the symlink points at")
            #expect(!FileManager.default.fileExists(atPath: victimTmp + "/mine"), "the job wrote through the symlink")
            #expect((try FileManager.default.contentsOfDirectory(atPath: victim)) == ["tmp"], "root made something in what the symlink points at")

            // The control: the same run on a real directory the user owns works.
            let real = try dir.make("user/real", mode: 0o700, owner: (user.uid, user.gid))
            let control = try TestSupport.run(
                ["ns-exec"] + extra + ["--scratch", real, "--mount-under-scratch", "/tmp", "--user", user.name, "--", "/bin/sh", "-c", "touch /tmp/mine"])
            #expect(control.status == 0, "\(control)")
            #expect(FileManager.default.fileExists(atPath: real + "/tmp/mine"), "\(control)")
        }
    }

    @Test("a bind source the job's user replaced with a symlink is refused: root does not show the job what it points at")
    func plantedBindSymlink() throws {
        try Self.withDirectoryAndUser { dir, user in
            // A directory only root can reach (its parent is 0700), whose file any user could read once reached.
            try dir.make("private", mode: 0o700)
            let inner = try dir.make("private/inner", mode: 0o755)
            let canary = try Canary(in: dir, mode: 0o644)
            guard rename(canary.path, inner + "/secret") == 0 else { throw TestFailure("cannot move the canary") }
            // The user's own area (as /scratch/$USER), where it puts a symlink in place of what root binds.
            let owned = try dir.make("user", mode: 0o700, owner: (user.uid, user.gid))
            let target = try dir.make("target", mode: 0o755)
            let plant = try TestSupport.run(user.command(["/bin/ln", "-s", inner, owned + "/data"]))
            #expect(plant.status == 0, "\(plant)")

            let run = try TestSupport.run(["ns-exec", "--bind", "\(owned)/data:\(target)", "--user", user.name, "--", "/bin/cat", target + "/secret"])
            #expect(run.status == 125, "\(run)")
            #expect(run.stderr == "ns-exec: cannot bind \(owned)/data: it is a symbolic link in a directory the job can write (refused as root)\n", "\(run)")
            #expect(!run.stdout.contains(canary.secret))

            // The control: a real directory of the user's binds.
            try dir.make("user/real", mode: 0o755, owner: (user.uid, user.gid))
            let control = try TestSupport.run(["ns-exec", "--bind", "\(owned)/real:\(target)", "--user", user.name, "--", "/bin/ls", "-a", target])
            #expect(control.status == 0 && control.stdout == ".\n..\n", "\(control)")
        }
    }

    @Test("a bind target the job's user replaced with a symlink is refused: root does not cover what it points at")
    func plantedBindTargetSymlink() throws {
        try Self.withDirectoryAndUser { dir, user in
            // What the symlink points at stands for /etc; the source is root's.
            let victim = try dir.make("victim", mode: 0o755)
            try dir.write("victim/shadow", "root's\n")
            let source = try dir.make("source", mode: 0o755)
            try dir.write("source/shadow", "the user's\n")
            let owned = try dir.make("user", mode: 0o700, owner: (user.uid, user.gid))
            let plant = try TestSupport.run(user.command(["/bin/ln", "-s", victim, owned + "/data"]))
            #expect(plant.status == 0, "\(plant)")

            let run = try TestSupport.run(["ns-exec", "--bind", "\(source):\(owned)/data", "--user", user.name, "--", "/bin/cat", victim + "/shadow"])
            #expect(run.status == 125, "\(run)")
            #expect(
                run.stderr == "ns-exec: cannot bind over \(owned)/data: it is a symbolic link in a directory the job can write (refused as root)\n", "\(run)")
            #expect(!run.stdout.contains("the user's"), "\(run)")
        }
    }

    @Test("in a chroot, a bind target reached through a symlink the job's user left in its /tmp is refused: the chroot's /etc stays")
    func plantedBindTargetSymlinkInChroot() throws {
        try Self.withChrootAndUser { chroot, user in
            // The mount point the planner checks in the version, and the symlink the user leaves where the job's /tmp
            // (its scratch dir's tmp) will be bound over it.
            try FileManager.default.createDirectory(atPath: chroot.root + "/tmp/data", withIntermediateDirectories: true)
            let source = try chroot.dir.make("source", mode: 0o755)
            try chroot.dir.write("source/os-release", "the user's\n")
            let scratch = try chroot.scratch(owner: user)
            let plant = try TestSupport.run(user.command(["/bin/sh", "-c", "mkdir -p \(scratch)/tmp && ln -s /etc \(scratch)/tmp/data"]))
            #expect(plant.status == 0, "\(plant)")

            let run = try TestSupport.run([
                "ns-exec", "--config", chroot.config, "--chroot", chroot.name, "--pid", "--scratch", scratch, "--mount-under-scratch", "/tmp",
                "--bind", "\(source):/tmp/data", "--user", user.name, "--", "/bin/cat", "/etc/os-release",
            ])
            #expect(run.status == 125, "\(run)")
            #expect(
                run.stderr
                    == "ns-exec: cannot bind over \(chroot.root)/tmp/data: it is reached through a symbolic link or a non-directory below an earlier mount of the job (name its real path)\n",
                "\(run)")
            #expect(!run.stdout.contains("the user's"), "\(run)")
        }
    }

    @Test("in a chroot, a bind target through the image's own symlink (root's, read-only) still lands where it points")
    func bindTargetThroughImageSymlink() throws {
        let before = try Support.hostMounts()
        let chroot = try NamedChroot()
        defer { chroot.dir.remove() }
        // As a usr-merged image has /lib -> usr/lib: the mount point is made through the link at build time.
        try FileManager.default.createDirectory(atPath: chroot.root + "/elsewhere/data", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: chroot.root + "/opt", withDestinationPath: "/elsewhere")
        let source = try chroot.dir.make("source", mode: 0o755)
        try chroot.dir.write("source/marker", "bound\n")
        let run = try TestSupport.run([
            "ns-exec", "--config", chroot.config, "--chroot", chroot.name, "--bind", "\(source):/opt/data", "--", "/bin/cat", "/elsewhere/data/marker",
        ])
        #expect(run.status == 0 && run.stdout == "bound\n", "\(run)")
        try Support.expectMountsUnchanged(since: before, paths: [chroot.dir.path])
    }

    // MARK: also seen: /dev/shm without a size

    @Test("the job's /dev/shm has JOB_TMPFS_SIZE: a job cannot fill the node's memory through it")
    func devShmSized() throws {
        try Self.withDirectoryAndUser { dir, user in
            try dir.write("jobbox.conf", "JOB_TMPFS_SIZE = 8M\n")
            let script = "stat -f -c '%b %S' /dev/shm; dd if=/dev/zero of=/dev/shm/fill bs=1M count=16 2>/dev/null && echo filled || echo full"
            let result = try TestSupport.run([
                "ns-exec", "--config", dir.path + "/jobbox.conf", "--pid", "--private-dev-shm", "--user", user.name, "--", "/bin/sh", "-c", script,
            ])
            #expect(result.status == 0, "\(result)")
            let lines = result.stdout.split(separator: "\n")
            let figures = lines.first?.split(separator: " ").compactMap { Int($0) } ?? []
            #expect(figures.count == 2 && figures[0] * figures[1] == 8 << 20, "\(result)")
            #expect(lines.last == "full", "\(result)")
        }
    }

    @Test(
        "without a knob, the job's /dev/shm is no larger than its memory cgroup's limit",
        .enabled(if: NsExecHostileTests.ownMemoryCgroup() != nil, "needs a cgroup v1 memory hierarchy"))
    func devShmFollowsMemoryLimit() throws {
        let own = try #require(Self.ownMemoryCgroup())
        let cgroup = "/sys/fs/cgroup/memory" + (own == "/" ? "" : own) + "/" + TestSupport.uniqueName("jbhostile")
        try FileManager.default.createDirectory(atPath: cgroup, withIntermediateDirectories: false)
        defer { rmdir(cgroup) }
        try "33554432".write(toFile: cgroup + "/memory.limit_in_bytes", atomically: false, encoding: .utf8)
        let script =
            "echo $$ > \(cgroup)/cgroup.procs && exec \(TestSupport.tool("ns-exec")) --pid --private-dev-shm --user nobody -- stat -f -c '%b %S' /dev/shm"
        let result = try TestSupport.sh(script)
        #expect(result.status == 0, "\(result)")
        let figures = result.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int($0) }
        #expect(figures.count == 2 && figures[0] * figures[1] == 32 << 20, "\(result)")
    }

    // MARK: helpers

    /// Runs `body` with a named chroot (`NamedChroot`) and a throwaway user, both removed after, and requires that no
    /// mount it made is left on the host.
    static func withChrootAndUser(_ body: (NamedChroot, TestUser) throws -> Void) throws {
        let before = try Support.hostMounts()
        let chroot = try NamedChroot()
        let user = try TestUser()
        defer {
            user.remove()
            chroot.dir.remove()
        }
        try body(chroot, user)
        try Support.expectMountsUnchanged(since: before, paths: [chroot.dir.path])
    }

    /// Runs `body` with a root-owned directory (`ExecuteDirectory`) and a throwaway user, both removed after, and
    /// requires that no mount it made is left on the host.
    static func withDirectoryAndUser(_ body: (ExecuteDirectory, TestUser) throws -> Void) throws {
        let before = try Support.hostMounts()
        let dir = try ExecuteDirectory("jbhostile-")
        let user = try TestUser()
        defer {
            user.remove()
            dir.remove()
        }
        try body(dir, user)
        try Support.expectMountsUnchanged(since: before, paths: [dir.path])
    }

    static func children(of pid: Int32) -> [Int32] {
        var result: [Int32] = []
        var pending = [pid]
        while let next = pending.popLast() {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(next)/task")) ?? []
            for task in tasks {
                let text = (try? String(contentsOfFile: "/proc/\(next)/task/\(task)/children", encoding: .utf8)) ?? ""
                let found = text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                result += found
                pending += found
            }
        }
        return result
    }

    static func command(of pid: Int32) -> String {
        ((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .newlines)
    }

    static func ownMemoryCgroup() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            if parts.count == 3, parts[1].split(separator: ",").contains("memory") {
                return FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory/memory.limit_in_bytes") ? String(parts[2]) : nil
            }
        }
        return nil
    }
}
