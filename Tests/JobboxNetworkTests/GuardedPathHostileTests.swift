import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxNetwork

/// GuardedPath and GuardedFile as root against what a job can plant in its own directory: symlinks to root-only
/// files and directories, FIFOs, hard links and huge files. Each of these attacks worked on the code before.
@Suite("Hostile: files root writes or reads where the job can write", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct GuardedPathHostileTests {
    @Test("a symlinked directory in the job's scratch dir is refused, not followed into a root-only directory")
    func symlinkedDirectory() throws {
        let job = try Hostile.Scratch()
        defer { job.remove() }
        try job.asUser("ln -s \(job.canaryDirectory) \(job.scratch)/.jobbox")
        #expect(throws: JobboxError.self) {
            try GuardedFile.replace(job.scratch + "/.jobbox/shadow", with: "owned\n", for: "cannot write ad file")
        }
        #expect(throws: JobboxError.self) {
            try GuardedFile.append("owned\n", to: job.scratch + "/.jobbox/nologin", for: "cannot append")
        }
        #expect(throws: JobboxError.self) {
            _ = try GuardedFile.read(job.scratch + "/.jobbox/shadow", limit: 4096, for: "cannot read")
        }
        #expect(job.canaryState() == Hostile.Scratch.untouched)
    }

    @Test("the message names the planted link and says why it is refused")
    func refusalMessage() throws {
        let job = try Hostile.Scratch()
        defer { job.remove() }
        try job.asUser("ln -s \(job.canaryDirectory) \(job.scratch)/.jobbox")
        do {
            try GuardedFile.replace(job.scratch + "/.jobbox/network.ad", with: "x\n", for: "cannot write ad file")
            Issue.record("the planted link was followed")
        } catch {
            #expect(
                error.description
                    == "cannot write ad file \(job.scratch)/.jobbox/network.ad: \(job.scratch)/.jobbox is a symbolic link in a directory the job can write (refused as root)"
            )
        }
    }

    @Test("a symlink planted at the file's own name is replaced by the file, its target untouched")
    func symlinkAtTheName() throws {
        let job = try Hostile.Scratch()
        defer { job.remove() }
        try job.asUser("ln -s \(job.canary) \(job.scratch)/network.ad")
        try GuardedFile.replace(job.scratch + "/network.ad", with: "NetworkOutgoing = 1\n", for: "cannot write ad file")
        #expect(try String(contentsOfFile: job.scratch + "/network.ad", encoding: .utf8) == "NetworkOutgoing = 1\n")
        var info = stat()
        #expect(lstat(job.scratch + "/network.ad", &info) == 0 && info.st_mode & S_IFMT == S_IFREG)
        #expect(job.canaryState() == Hostile.Scratch.untouched)
        // No temporary is left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: job.scratch) == ["network.ad"])
    }

    @Test("appending to a planted symlink, FIFO or hard link is refused and creates nothing")
    func appendRefusals() throws {
        let job = try Hostile.Scratch()
        defer { job.remove() }
        try job.asUser(
            "ln -s \(job.canaryDirectory)/nologin \(job.scratch)/err; mkfifo \(job.scratch)/fifo; echo mine > \(job.scratch)/own; echo theirs > \(job.scratch)/other; ln \(job.scratch)/other \(job.scratch)/linked"
        )
        for name in ["err", "fifo", "linked"] {
            #expect(throws: JobboxError.self, "\(name)") {
                try GuardedFile.append("tool: failed\n", to: job.scratch + "/" + name, for: "cannot append")
            }
        }
        #expect(job.canaryState() == Hostile.Scratch.untouched)
        #expect(try String(contentsOfFile: job.scratch + "/own", encoding: .utf8) == "mine\n")
        // A plain file of the job's is appended to.
        try GuardedFile.append("tool: failed\n", to: job.scratch + "/own", for: "cannot append")
        #expect(try String(contentsOfFile: job.scratch + "/own", encoding: .utf8) == "mine\ntool: failed\n")
    }

    @Test("reading refuses a FIFO without blocking, a hard link, a device and a file over the limit")
    func readRefusals() throws {
        let job = try Hostile.Scratch()
        defer { job.remove() }
        try job.asUser(
            "mkfifo \(job.scratch)/fifo; echo mine > \(job.scratch)/own; echo theirs > \(job.scratch)/other; ln \(job.scratch)/other \(job.scratch)/linked; ln -s /dev/zero \(job.scratch)/zero; head -c 100000 /dev/zero > \(job.scratch)/big"
        )
        for name in ["fifo", "linked", "zero", "big"] {
            #expect(throws: JobboxError.self, "\(name)") {
                _ = try GuardedFile.read(job.scratch + "/" + name, limit: 65536, for: "cannot read job ad")
            }
        }
        #expect(throws: JobboxError.self) { _ = try GuardedFile.read("/dev/zero", limit: 65536, for: "cannot read job ad") }
        #expect(try GuardedFile.readText(job.scratch + "/own", limit: 65536, for: "cannot read") == "mine\n")
    }

    @Test("a job swapping .jobbox between a directory and a link to a root-only one, while root writes 2000 times, never wins the race")
    func checkAndUseRace() throws {
        let job = try Hostile.Scratch()
        defer { job.remove() }
        try job.asUser("mkdir \(job.scratch)/real")
        // The user's loop renames a link over .jobbox and the real directory back, as fast as it can.
        let swapper = try BackgroundRun(
            job.user.command([
                "/bin/sh", "-c",
                """
                cd \(job.scratch) && while [ ! -e stop ]; do mv -T real .jobbox; mv -T .jobbox real; ln -s \(job.canaryDirectory) .jobbox; rm -f .jobbox; done
                """,
            ]))
        defer {
            _ = FileManager.default.createFile(atPath: job.scratch + "/stop", contents: nil)
            _ = swapper.wait()
        }
        var written = 0
        for index in 0..<2000 {
            if (try? GuardedFile.replace(job.scratch + "/.jobbox/shadow", with: "round \(index)\n", for: "cannot write")) != nil { written += 1 }
            _ = try? GuardedFile.append("round \(index)\n", to: job.scratch + "/.jobbox/shadow", for: "cannot append")
        }
        #expect(job.canaryState() == Hostile.Scratch.untouched, "\(written) writes went through")
    }

    @Test("symlinks root made in root-only directories are followed, as the kernel would")
    func trustedSymlinks() throws {
        let base = "/run/" + TestSupport.uniqueName("jbguarded")
        defer { try? FileManager.default.removeItem(atPath: base) }
        try FileManager.default.createDirectory(atPath: base + "/real", withIntermediateDirectories: true)
        chmod(base, 0o755)
        chmod(base + "/real", 0o755)
        try FileManager.default.createSymbolicLink(atPath: base + "/link", withDestinationPath: "real")
        try FileManager.default.createSymbolicLink(atPath: base + "/real/file", withDestinationPath: "../real/target")
        try GuardedFile.replace(base + "/link/target", with: "one\n", for: "cannot write")
        #expect(try String(contentsOfFile: base + "/real/target", encoding: .utf8) == "one\n")
        #expect(try GuardedFile.readText(base + "/link/file", limit: 100, for: "cannot read") == "one\n")
        let directory = try GuardedPath.openDirectory(base + "/link", for: "cannot open")
        defer { directory.close() }
        #expect(directory.isTrusted && directory.path == base + "/real")
        // The same link in a directory others can write is not followed.
        chmod(base, 0o777)
        #expect(throws: JobboxError.self) { _ = try GuardedFile.readText(base + "/link/target", limit: 100, for: "cannot read") }
    }
}

extension GuardedPathHostileTests {
    @Test("a trusted directory's subdirectory opened from it: made 0755 when missing, refused unless root's alone, a link root made followed")
    func trustedSubdirectory() throws {
        let base = "/run/" + TestSupport.uniqueName("jbsubdir")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let parent = try GuardedPath.openTrustedDirectory(base, creating: true, for: "cannot use")
        defer { parent.close() }
        #expect(throws: JobboxError.self) { try GuardedPath.openTrustedDirectory("made", in: parent, creating: false, for: "cannot use").close() }
        let made = try GuardedPath.openTrustedDirectory("made", in: parent, creating: true, for: "cannot use")
        made.close()
        #expect(made.isTrusted && made.path == base + "/made")
        var info = stat()
        #expect(stat(base + "/made", &info) == 0 && info.st_uid == 0 && info.st_mode & 0o7777 == 0o755)
        let again = try GuardedPath.openTrustedDirectory("made", in: parent, creating: true, for: "cannot use")
        again.close()
        #expect(again.path == base + "/made")
        // Not root's alone: refused with the message a walk from / gives.
        for (name, owner, mode, reason) in [
            ("theirs", UInt32(65534), mode_t(0o755), "is owned by uid 65534, not root"), ("open", 0, 0o775, "is writable by others than root (mode 775)"),
        ] {
            #expect(mkdir(base + "/" + name, 0o700) == 0 && chown(base + "/" + name, owner, owner) == 0 && chmod(base + "/" + name, mode) == 0)
            do {
                try GuardedPath.openTrustedDirectory(name, in: parent, creating: true, for: "cannot use").close()
                Issue.record("\(name) was opened")
            } catch {
                #expect(error.description == "cannot use \(base)/\(name): \(base)/\(name) \(reason)")
            }
        }
        // A link root made in the trusted directory is followed, as the walk follows it.
        #expect(symlink("made", base + "/link") == 0)
        let linked = try GuardedPath.openTrustedDirectory("link", in: parent, creating: true, for: "cannot use")
        linked.close()
        #expect(linked.isTrusted && linked.path == base + "/made")
        // A parent others can write gives nothing, however it was opened.
        #expect(chmod(base, 0o777) == 0)
        let open = try GuardedPath.openDirectory(base, for: "cannot use")
        defer { open.close() }
        #expect(!open.isTrusted)
        #expect(throws: JobboxError.self) { try GuardedPath.openTrustedDirectory("made", in: open, creating: true, for: "cannot use").close() }
        #expect(throws: JobboxError.self) { try GuardedPath.openTrustedDirectory("new", in: open, creating: true, for: "cannot use").close() }
        #expect(!FileManager.default.fileExists(atPath: base + "/new"))
    }
}

/// The audit's findings 1 and 4, end to end: a job's user plants symlinks where root netacct writes its ad and
/// where root tools append their errors (HTCondor's `$_CONDOR_WRAPPER_ERROR_FILE` lies in the scratch dir).
@Suite("Hostile: netacct's ad file and the wrapper error file", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct AdAndErrorFileHostileTests {
    @Test("the job links .jobbox to a root-only directory and plants network.ad.tmp.<netacct's pid>: nothing outside the scratch dir changes")
    func netacctAdFile() throws {
        let job = try Hostile.Scratch()
        defer { job.remove() }
        let net = try NetacctTopology()
        defer { net.remove() }
        try job.asUser("mkdir \(job.scratch)/.jobbox")
        // The job, as its user, plants a link at the temporary name the old code used (its parent is netacct).
        let plant = "ln -s \(job.canary) \(job.scratch)/.jobbox/network.ad.tmp.$PPID"
        let result = try net.netacct(
            NetacctKernelTests.options(TestSupport.uniqueName("adf"), "iptables") + ["--ad-file", job.scratch + "/.jobbox/network.ad", "--"]
                + job.user.command(["/bin/sh", "-c", plant]))
        #expect(result.status == 0, "\(result)")
        #expect(job.canaryState() == Hostile.Scratch.untouched)
        let ad = ClassAdReader.parse(try String(contentsOfFile: job.scratch + "/.jobbox/network.ad", encoding: .utf8))
        #expect(ad.integer("NetworkOutgoing") != nil)

        // Then .jobbox itself becomes a link to the root-only directory: refused, and said.
        try job.asUser("rm -rf \(job.scratch)/.jobbox; ln -s \(job.canaryDirectory) \(job.scratch)/.jobbox")
        let linked = try net.netacct(
            NetacctKernelTests.options(TestSupport.uniqueName("adf"), "iptables") + ["--ad-file", job.scratch + "/.jobbox/network.ad", "--", "true"])
        #expect(linked.status == 0, "\(linked)")
        #expect(
            linked.stderr.contains(
                "netacct: warning: cannot write ad file \(job.scratch)/.jobbox/network.ad: \(job.scratch)/.jobbox is a symbolic link in a directory the job can write (refused as root)"
            ), "\(linked)")
        #expect(job.canaryState() == Hostile.Scratch.untouched)
    }

    @Test("the wrapper error file is a link to a root-only file or a missing one: root tools append nowhere", arguments: ["shadow", "nologin"])
    func wrapperErrorFile(target: String) throws {
        let job = try Hostile.Scratch()
        defer { job.remove() }
        try job.asUser("ln -s \(job.canaryDirectory)/\(target) \(job.scratch)/.job_wrapper_failure")
        let environment = ["_CONDOR_WRAPPER_ERROR_FILE": job.scratch + "/.job_wrapper_failure", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        // A bad option (cg-exec's shared main) and a failed launch (ns-exec's reporter, which opens the directory early).
        let badOption = try TestSupport.run([TestSupport.tool("cg-exec"), "--job", "7", "--memory", "2Q", "--", "true"], environment: environment)
        #expect(badOption.status == 125)
        #expect(badOption.stderr.contains("cg-exec: cannot append to the wrapper error file"), "\(badOption)")
        let notFound = try TestSupport.run([TestSupport.tool("ns-exec"), "--", "/nonexistent/command"], environment: environment)
        #expect(notFound.status == 127)
        #expect(notFound.stderr.contains("ns-exec: cannot append to the wrapper error file"), "\(notFound)")
        #expect(job.canaryState() == Hostile.Scratch.untouched)
    }

    @Test("a real wrapper error file in the scratch dir still gets the line")
    func wrapperErrorFileWorks() throws {
        let job = try Hostile.Scratch()
        defer { job.remove() }
        let file = job.scratch + "/.job_wrapper_failure"
        let result = try TestSupport.run(
            [TestSupport.tool("cg-exec"), "--job", "7", "--memory", "2Q", "--", "true"], environment: ["_CONDOR_WRAPPER_ERROR_FILE": file])
        #expect(result.status == 125)
        #expect(try String(contentsOfFile: file, encoding: .utf8) == result.stderr)
    }
}

/// HTCondor fills a root-run wrapper's environment from the job's description (`environment = ...` in the submit
/// file), so the variables the tools read are the job's to choose: as root they must not pick a file.
@Suite("Hostile: the environment of a root-run wrapper", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct EnvironmentHostileTests {
    @Test("$JOBBOX_CONFIG naming a configuration the job's user wrote is refused as root; --config is root's own choice")
    func configFromEnvironment() throws {
        let job = try Hostile.Scratch()
        defer { job.remove() }
        try job.asUser("printf 'BASE_CGROUP = hijacked\\n' > \(job.scratch)/jobbox.conf")
        let result = try TestSupport.run([TestSupport.tool("cg-exec"), "--list"], environment: ["JOBBOX_CONFIG": job.scratch + "/jobbox.conf"])
        #expect(result.status == 125, "\(result)")
        #expect(
            result.stderr
                == "cg-exec: cannot read configuration \(job.scratch)/jobbox.conf: as root, a configuration not given with --config must be root's alone (owned by root, in directories only root can write)\n"
        )
        // A root-owned file the user can still replace (its directory is theirs) is no better.
        chown(job.scratch + "/jobbox.conf", 0, 0)
        let rootOwned = try TestSupport.run([TestSupport.tool("cg-exec"), "--list"], environment: ["JOBBOX_CONFIG": job.scratch + "/jobbox.conf"])
        #expect(rootOwned.status == 125, "\(rootOwned)")
    }

    @Test("$XTABLES_LOCKFILE naming a missing file in a root-only directory does not make root netacct create it")
    func xtablesLockFromEnvironment() throws {
        let job = try Hostile.Scratch()
        defer { job.remove() }
        let net = try NetacctTopology()
        defer { net.remove() }
        let result = try TestSupport.run(
            ["/usr/bin/env", "XTABLES_LOCKFILE=\(job.canaryDirectory)/nologin"]
                + net.netacctArguments(NetacctKernelTests.options(TestSupport.uniqueName("xtl"), "iptables") + ["--", "true"]))
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr.contains("netacct: cannot open the xtables lock \(job.canaryDirectory)/nologin: No such file or directory"), "\(result)")
        #expect(job.canaryState() == Hostile.Scratch.untouched)
        #expect(net.leaseFiles().isEmpty)
    }
}
