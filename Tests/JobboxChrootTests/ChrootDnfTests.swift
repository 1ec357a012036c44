import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxChroot
@testable import JobboxCore

/// chroot-tool with the dnf (and yum) backend for real: RPMs made with rpmbuild, a local repository made with
/// createrepo_c, dnf --installroot; no RPM mirror is reached.
@Suite("chroot-tool with dnf", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct ChrootDnfTests {
    /// repo1: shell 1.0, base 1.0, old 1.0; repo2: shell 1.0, base 1.1, extra 2.0.
    static func makeRepositories(_ bed: ChrootTestBed) throws -> (String, String) {
        let old = TestRPM(name: "jbx-old", version: "1.0", files: ["/etc/jbx-old": "old"])
        let extra = TestRPM(name: "jbx-extra", version: "2.0", files: ["/etc/jbx-extra": "extra"])
        let repo1 = try TestRPMRepository.make(in: bed.directory.path, name: "repo1", packages: [.shell, .base("1.0"), old])
        let repo2 = try TestRPMRepository.make(in: bed.directory.path, name: "repo2", packages: [.shell, .base("1.1"), extra])
        return (repo1, repo2)
    }

    static func dnfBuild(_ repo: String, _ packages: String, _ more: [String] = []) -> [String] {
        ["build", "el", "--backend", "dnf", "--release", "9", "--repo", repo, "--packages", packages, "--no-gpg-check", "-q"] + more
    }

    @Test("the seed's workflow: build, build from a spec, show, diff, list --config, switch, rollback (outputs exact)")
    func workflow() throws {
        let bed = try ChrootTestBed()
        defer { bed.remove() }
        let (repo1, repo2) = try Self.makeRepositories(bed)

        let first = try bed.tool(Self.dnfBuild(repo1, "jbx-base jbx-old", ["--switch"]))
        #expect(first.status == 0, "\(first)")
        #expect(first.stdout == "el-v1\n")
        #expect(first.stderr.contains("chroot-tool: el-v1: installing 2 packages with dnf\n"))
        #expect(!first.stderr.contains("[dnf]"), "quiet mode shows phase lines only")

        let specPath = bed.directory.path + "/el.spec"
        let specText = """
            # the site's el chroot
            BACKEND  = dnf
            RELEASE  = 9
            REPOS    = \(repo2)
            PACKAGES = jbx-base, jbx-extra
            BINDS    = /cvmfs, /etc/grid-security:/grid
            GPGCHECK = false

            """
        try specText.write(toFile: specPath, atomically: false, encoding: .utf8)
        let second = try bed.tool(["build", "el", "--spec", specPath, "--switch"])
        #expect(second.status == 0, "\(second)")
        #expect(second.stdout == "el-v2\n")
        #expect(second.stderr.contains("[dnf] Complete!\n"), "without -q the backend's output streams with its prefix")

        let show = try bed.tool(["show", "el"])
        #expect(show.status == 0)
        #expect(
            show.stdout == """
                # chroot-tool manifest of el-v2: what it was built from and every package it holds
                NAME = el
                VERSION = 2
                BACKEND = dnf
                RELEASE = 9
                REPOS = \(repo2)
                PACKAGES = jbx-base jbx-extra
                BINDS = /cvmfs, /etc/grid-security:/grid
                GPGCHECK = false
                SPEC = \(specPath)
                BUILT = \(ChrootTestBed.epochText)
                BUILT_BY = chroot-tool \(JobboxVersion.string)
                INSTALLED = jbx-base 1.1-1 noarch
                INSTALLED = jbx-extra 2.0-1 noarch
                INSTALLED = jbx-shell 1.0-1 x86_64

                """)
        #expect(try bed.tool(["show", "el-v2", "--spec"]).stdout == specText)
        #expect(try bed.tool(["show", "el-v1"]).stdout.contains("\nINSTALLED = jbx-old 1.0-1 noarch\n"))
        // ns-exec reads the binds through the link jobs use.
        #expect(try ChrootManifest.read(chrootPath: bed.chrootDir + "/el").binds.map(\.description) == ["/cvmfs", "/etc/grid-security:/grid"])

        let diff = try bed.tool(["diff", "el", "v1", "v2"])
        #expect(diff.status == 0)
        #expect(diff.stdout == "~ jbx-base 1.0-1 -> 1.1-1 noarch\n+ jbx-extra 2.0-1 noarch\n- jbx-old 1.0-1 noarch\n")
        #expect(try bed.tool(["diff", "el", "el-v2", "1"]).stdout == "~ jbx-base 1.1-1 -> 1.0-1 noarch\n- jbx-extra 2.0-1 noarch\n+ jbx-old 1.0-1 noarch\n")
        #expect(try bed.tool(["diff", "el", "v2", "v2"]).stdout == "")

        let config = try bed.tool(["list", "--config"])
        #expect(config.stdout == "NAMED_CHROOT = el=\(bed.chrootDir)/el\n")
        #expect(try JobboxConfig.parse(config.stdout, path: "list").namedChroot("el")?.path == bed.chrootDir + "/el")

        #expect(try TestSupport.sh("chroot '\(bed.chrootDir)/el' /bin/busybox cat /etc/os-release").stdout == "VERSION_ID=1.1\n")
        let rollback = try bed.tool(["rollback", "el"])
        #expect(rollback.status == 0)
        #expect(rollback.stdout == "rolled back el from el-v2 to el-v1\n")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: bed.chrootDir + "/el") == "el-v1")
        #expect(try TestSupport.sh("chroot '\(bed.chrootDir)/el' /bin/busybox cat /etc/os-release").stdout == "VERSION_ID=1.0\n")

        #expect(try bed.tool(["switch", "el", "v2"]).stdout == "switched el from el-v1 to el-v2\n")
        #expect(try bed.tool(["rollback", "el"]).stdout == "rolled back el from el-v2 to el-v1\n")
        let nothingLeft = try bed.tool(["rollback", "el"])
        #expect(nothingLeft.status == 125)
        #expect(
            nothingLeft.stderr
                == "chroot-tool: cannot roll back el: no earlier version to go back to (\(bed.chrootDir)/.el.history records none that still exists)\n")
        #expect(
            try String(contentsOfFile: bed.chrootDir + "/.el.history", encoding: .utf8)
                == [
                    "build v1", "switch v1", "build v2", "switch v2", "rollback v1", "switch v2", "rollback v1",
                ].map { "\(ChrootTestBed.epochText) \($0)\n" }.joined())

        let list = try bed.tool(["list", "el"])
        let rows = list.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(rows.count == 3, "\(list.stdout)")
        #expect(rows.first == ["NAME", "VERSION", "STATE", "SIZE", "BUILT", "IN", "USE"])
        #expect(
            rows.dropFirst().map { [$0[0], $0[1], $0[2], $0[4], $0[5]] } == [
                ["el", "v1", "current", ChrootTestBed.epochText, "no"], ["el", "v2", "-", ChrootTestBed.epochText, "no"],
            ])
        #expect(rows.dropFirst().allSatisfy { $0[3].hasSuffix("M") }, "a chroot with static busybox takes megabytes")

        let verify = try bed.tool(["verify", "el"])
        #expect(verify.status == 0, "\(verify)")
        #expect(
            verify.stdout == """
                el-v1: link: ok (\(bed.chrootDir)/el -> el-v1)
                el-v1: manifest: ok (dnf, built \(ChrootTestBed.epochText))
                el-v1: packages: ok (3 as in the manifest)
                el-v1: files: ok (unchanged)
                el-v1: shell: ok (/bin/sh runs inside)

                """)
        // A damaged file and a package removed behind chroot-tool's back are found.
        try "tampered\n".write(toFile: bed.chrootDir + "/el-v2/etc/jbx-extra", atomically: false, encoding: .utf8)
        let removed = try TestSupport.run(["rpm", "--root", bed.chrootDir + "/el-v2", "--dbpath", "/var/lib/rpm", "-e", "--nodeps", "jbx-base"])
        #expect(removed.status == 0, "\(removed)")
        let damaged = try bed.tool(["verify", "el-v2"])
        #expect(damaged.status == 1)
        #expect(damaged.stdout.contains("el-v2: packages: FAILED\n  not as in the manifest: - jbx-base 1.1-1 noarch\n"), "\(damaged.stdout)")
        #expect(damaged.stdout.contains("el-v2: files: FAILED\n  S.5"), "\(damaged.stdout)")
        #expect(damaged.stdout.hasSuffix("/etc/jbx-extra\nel-v2: shell: ok (/bin/sh runs inside)\n"), "\(damaged.stdout)")
    }

    @Test("yum is the same backend, run as yum (here a yum that is dnf, as on EL8 and later)")
    func yumBackend() throws {
        let bed = try ChrootTestBed()
        defer { bed.remove() }
        let (repo1, _) = try Self.makeRepositories(bed)
        let bin = bed.directory.path + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try "#!/bin/sh\ntouch '\(bed.directory.path)/yum-ran'\nexec dnf \"$@\"\n".write(toFile: bin + "/yum", atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin + "/yum")
        let path = bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin")
        let result = try bed.tool(
            ["build", "sl", "--backend", "yum", "--release", "7", "--repo", repo1, "--packages", "jbx-base", "--no-gpg-check", "--switch"],
            environment: ["PATH": path])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "sl-v1\n")
        #expect(result.stderr.contains("[yum] Complete!\n"))
        #expect(FileManager.default.fileExists(atPath: bed.directory.path + "/yum-ran"))
        let manifest = try ChrootManifest.read(chrootPath: bed.chrootDir + "/sl")
        #expect(manifest.backend == .yum)
        #expect(manifest.release == "7")
        #expect(manifest.installed.map(\.description) == ["jbx-base 1.0-1 noarch", "jbx-shell 1.0-1 x86_64"])
    }

    @Test("a failed build leaves nothing: the backend fails, or no shell runs inside")
    func failedBuilds() throws {
        let bed = try ChrootTestBed()
        defer { bed.remove() }
        let (repo1, _) = try Self.makeRepositories(bed)
        let missing = try bed.tool(Self.dnfBuild(repo1, "jbx-no-such-package"))
        #expect(missing.status == 125)
        #expect(missing.stderr.hasSuffix("chroot-tool: dnf failed building el-v1: exit status 1\n"), "\(missing.stderr)")
        #expect(missing.stderr.contains("[dnf] "), "quiet mode shows the backend's last lines when it fails")
        #expect(bed.entries() == [".el.build.lock"])

        let noShell = try bed.tool(Self.dnfBuild(repo1, "jbx-old"))
        #expect(noShell.status == 125)
        #expect(
            noShell.stderr.hasSuffix("chroot-tool: no working shell in \(bed.chrootDir)/.el-v1.tmp/root: chroot /bin/sh exited with status 127\n"),
            "\(noShell.stderr)")
        #expect(bed.entries() == [".el.build.lock"])
        #expect(try bed.tool(["list"]).stdout == "")
    }

    @Test("an interrupted build (KILL during the backend) leaves nothing list shows; the next build removes its leftovers")
    func killedBuild() throws {
        let bed = try ChrootTestBed()
        defer { bed.remove() }
        let slow = TestRPM(name: "jbx-slow", version: "1.0", requires: ["jbx-shell"], post: "/bin/busybox touch /slow-started\n/bin/busybox sleep 120")
        let repo = try TestRPMRepository.make(in: bed.directory.path, name: "repo", packages: [.shell, .base("1.0"), slow])
        let build = try bed.start(Self.dnfBuild(repo, "jbx-slow"), log: bed.directory.path + "/build.log")
        let marker = bed.chrootDir + "/.el-v1.tmp/root/slow-started"
        try waitFor("the package script to start (\(bed.directory.path)/build.log)") { FileManager.default.fileExists(atPath: marker) }
        kill(build.processIdentifier, SIGKILL)
        build.waitUntilExit()
        #expect(build.terminationReason == .uncaughtSignal)

        let list = try bed.tool(["list"])
        #expect(list.status == 0)
        #expect(list.stdout == "")
        #expect(try bed.tool(["list", "el"]).stdout == "")
        #expect(try bed.tool(["show", "el-v1"]).status == 125)
        #expect(!bed.entries().contains { !$0.hasPrefix(".") }, "\(bed.entries())")

        let next = try bed.tool(Self.dnfBuild(repo, "jbx-base"))
        #expect(next.status == 0, "\(next)")
        #expect(next.stdout == "el-v1\n")
        #expect(next.stderr.hasPrefix("chroot-tool: el: removing what an earlier, crashed build left\n"))
        #expect(bed.entries() == [".el.build.lock", ".el.history", ".el.lock", "el-v1"])
        #expect(bed.processesRootedInside() == [], "the crashed build's package script was killed")
    }

    @Test("an interrupted build (TERM) stops the backend, removes everything at once and exits 128+15")
    func terminatedBuild() throws {
        let bed = try ChrootTestBed()
        defer { bed.remove() }
        let slow = TestRPM(name: "jbx-slow", version: "1.0", requires: ["jbx-shell"], post: "/bin/busybox touch /slow-started\n/bin/busybox sleep 120")
        let repo = try TestRPMRepository.make(in: bed.directory.path, name: "repo", packages: [.shell, slow])
        let log = bed.directory.path + "/build.log"
        let build = try bed.start(Self.dnfBuild(repo, "jbx-slow"), log: log)
        try waitFor("the package script to start (\(log))") { FileManager.default.fileExists(atPath: bed.chrootDir + "/.el-v1.tmp/root/slow-started") }
        build.terminate()
        build.waitUntilExit()
        #expect(build.terminationReason == .exit)
        #expect(build.terminationStatus == 143)
        #expect(try String(contentsOfFile: log, encoding: .utf8).hasSuffix("chroot-tool: build of el-v1 interrupted by signal 15: removed what it had made\n"))
        #expect(bed.entries() == [".el.build.lock"])
        #expect(bed.processesRootedInside() == [])
    }

    @Test("switch under load: a loop running a command in CHROOT_DIR/NAME never misses while versions switch 1000 times")
    func switchUnderLoad() throws {
        let bed = try ChrootTestBed()
        defer { bed.remove() }
        let (repo1, repo2) = try Self.makeRepositories(bed)
        #expect(try bed.tool(Self.dnfBuild(repo1, "jbx-base", ["--switch"])).status == 0)
        #expect(try bed.tool(Self.dnfBuild(repo2, "jbx-base")).status == 0)

        let stop = bed.directory.path + "/stop"
        let log = bed.directory.path + "/reader.log"
        let reader = Process()
        reader.executableURL = URL(fileURLWithPath: "/bin/sh")
        reader.arguments = [
            "-c",
            """
            while [ ! -e '\(stop)' ]; do
              chroot '\(bed.chrootDir)/el' /bin/busybox cat /etc/os-release || echo "FAILED $?"
            done > '\(log)' 2>&1
            """,
        ]
        try reader.run()
        let tool = TestSupport.tool("chroot-tool")
        let switcher = try TestSupport.sh(
            """
            failures=0
            i=0
            while [ $i -lt 500 ]; do
              '\(tool)' --config '\(bed.configPath)' switch el v1 >/dev/null || failures=$((failures + 1))
              '\(tool)' --config '\(bed.configPath)' switch el v2 >/dev/null || failures=$((failures + 1))
              i=$((i + 1))
            done
            echo $failures
            """, environment: bed.environment())
        _ = FileManager.default.createFile(atPath: stop, contents: nil)
        reader.waitUntilExit()

        #expect(switcher.stdout == "0\n", "\(switcher)")
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        let bad = lines.filter { $0 != "VERSION_ID=1.0" && $0 != "VERSION_ID=1.1" }
        #expect(bad.isEmpty, "the reader saw: \(Set(bad))")
        #expect(lines.contains("VERSION_ID=1.0") && lines.contains("VERSION_ID=1.1"), "the reader ran while the link changed (\(lines.count) reads)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: bed.chrootDir + "/el") == "el-v2")
        let history = try String(contentsOfFile: bed.chrootDir + "/.el.history", encoding: .utf8)
        #expect(history.split(separator: "\n").filter { $0.hasSuffix(" switch v1") || $0.hasSuffix(" switch v2") }.count == 1001)
        #expect(!bed.entries().contains { $0.contains(".link.") }, "no temporary link is left")
    }

    @Test("gc keeps a version a running process is chrooted into, and removes it once the process has ended")
    func gcKeepsVersionInUse() throws {
        let bed = try ChrootTestBed()
        defer { bed.remove() }
        let (repo1, _) = try Self.makeRepositories(bed)
        for switching in [false, false, true] {
            #expect(try bed.tool(Self.dnfBuild(repo1, "jbx-base", switching ? ["--switch"] : [])).status == 0)
        }
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/usr/sbin/chroot")
        sleeper.arguments = [bed.chrootDir + "/el-v1", "/bin/busybox", "sleep", "600"]
        try sleeper.run()
        defer {
            if sleeper.isRunning { kill(sleeper.processIdentifier, SIGKILL) }
        }
        try waitFor("the sleeper to be chrooted") {
            FileManager.default.destinationOfSymbolicLinkOrNil("/proc/\(sleeper.processIdentifier)/root") == bed.chrootDir + "/el-v1"
        }

        let listed = try bed.tool(["list", "el"]).stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(listed.dropFirst().map { [$0[1], $0[2], $0[5]] } == [["v1", "-", "yes"], ["v2", "-", "no"], ["v3", "current", "no"]])

        let first = try bed.tool(["gc", "el", "--keep", "0"])
        #expect(first.status == 0, "\(first)")
        #expect(first.stdout == "kept el-v1: in use: process \(sleeper.processIdentifier) (busybox) has its root in it\nremoved el-v2\n")
        #expect(bed.entries().filter { !$0.hasPrefix(".") } == ["el", "el-v1", "el-v3"])

        kill(sleeper.processIdentifier, SIGKILL)
        sleeper.waitUntilExit()
        let second = try bed.tool(["gc", "el", "--keep", "0"])
        #expect(second.stdout == "removed el-v1\n")
        #expect(bed.entries().filter { !$0.hasPrefix(".") } == ["el", "el-v3"])
        #expect(try bed.tool(["gc", "el", "--keep", "0"]).stdout == "", "the current version is never removed")
    }

    @Test("a version moved aside that cannot be removed is reported (125) and left for the next gc; the others are collected all the same")
    func gcGoesOnPastStubbornLeftover() throws {
        let bed = try ChrootTestBed()
        let stubborn = bed.chrootDir + "/.el-v9.removing/tmp/stuck"
        defer {
            _ = try? TestSupport.run(["chattr", "-i", stubborn])
            bed.remove()
        }
        let (repo1, _) = try Self.makeRepositories(bed)
        for switching in [false, true] {
            #expect(try bed.tool(Self.dnfBuild(repo1, "jbx-base", switching ? ["--switch"] : [])).status == 0)
        }
        // What an earlier gc left of a version whose /tmp held a file it could not remove (immutable here; in a
        // real store, whatever any user put in that world-writable /tmp).
        try FileManager.default.createDirectory(atPath: bed.chrootDir + "/.el-v9.removing/tmp", withIntermediateDirectories: true)
        try "x".write(toFile: stubborn, atomically: false, encoding: .utf8)
        let immutable = try TestSupport.run(["chattr", "+i", stubborn])
        #expect(immutable.status == 0, "\(immutable)")

        let result = try bed.tool(["gc", "el", "--keep", "0"])
        #expect(result.status == 125, "\(result)")
        #expect(result.stdout == "removed el-v1\n", "\(result)")
        #expect(result.stderr.hasPrefix("chroot-tool: cannot remove \(stubborn): ") && result.stderr.hasSuffix("(the next gc tries again)\n"), "\(result)")
        #expect(bed.entries().filter { !$0.hasPrefix(".") } == ["el", "el-v2"])

        #expect(try TestSupport.run(["chattr", "-i", stubborn]).status == 0)
        let again = try bed.tool(["gc", "el", "--keep", "0"])
        #expect(again.status == 0 && again.stdout.isEmpty && again.stderr.isEmpty, "\(again)")
        #expect(!bed.entries().contains(".el-v9.removing"))
    }

    @Test("gc keeps a version with a mount below it in another mount namespace, and the rollback target")
    func gcKeepsMountedAndRollbackTarget() throws {
        let bed = try ChrootTestBed()
        defer { bed.remove() }
        let (repo1, _) = try Self.makeRepositories(bed)
        for _ in 1...4 { #expect(try bed.tool(Self.dnfBuild(repo1, "jbx-base")).status == 0) }
        #expect(try bed.tool(["switch", "el", "v2"]).status == 0)
        #expect(try bed.tool(["switch", "el", "v4"]).status == 0)
        // v1 gets a tmpfs in a private mount namespace: the host never sees it, /proc/PID/mountinfo does.
        let ready = bed.directory.path + "/mounted"
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        holder.arguments = [
            "--mount", "--propagation", "private", "/bin/sh", "-c",
            "mount -t tmpfs jbx-test '\(bed.chrootDir)/el-v1/var' && cd / && touch '\(ready)' && exec sleep 600",
        ]
        try holder.run()
        defer {
            if holder.isRunning { kill(holder.processIdentifier, SIGKILL) }
        }
        try waitFor("the mount in the other namespace") { FileManager.default.fileExists(atPath: ready) }
        #expect(try TestSupport.sh("grep -c ' \(bed.chrootDir)/el-v1/var ' /proc/self/mountinfo").stdout == "0\n", "the host does not see the mount")

        let result = try bed.tool(["gc", "el", "--keep", "0"])
        #expect(result.status == 0, "\(result)")
        #expect(
            result.stdout
                == "kept el-v1: in use: \(bed.chrootDir)/el-v1/var is mounted in the mount namespace of process \(holder.processIdentifier)\nremoved el-v3\n")
        #expect(bed.entries().filter { !$0.hasPrefix(".") } == ["el", "el-v1", "el-v2", "el-v4"], "v2 is the rollback target, v4 the current one")
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        #expect(try bed.tool(["gc", "el", "--keep", "1"]).stdout == "removed el-v1\n")
    }

    @Test("a second build of the same chroot while one runs is refused; versions are numbered past any ever built")
    func concurrencyAndNumbering() throws {
        let bed = try ChrootTestBed()
        defer { bed.remove() }
        let slow = TestRPM(name: "jbx-slow", version: "1.0", requires: ["jbx-shell"], post: "/bin/busybox touch /slow-started\n/bin/busybox sleep 120")
        let repo = try TestRPMRepository.make(in: bed.directory.path, name: "repo", packages: [.shell, .base("1.0"), slow])
        #expect(try bed.tool(Self.dnfBuild(repo, "jbx-base")).stdout == "el-v1\n")
        #expect(try bed.tool(Self.dnfBuild(repo, "jbx-base", ["--switch"])).stdout == "el-v2\n")
        #expect(try bed.tool(["gc", "el", "--keep", "0"]).stdout == "removed el-v1\n")
        #expect(
            try bed.tool(["switch", "el", "1"]).stderr
                == "chroot-tool: no such version \(bed.chrootDir)/el-v1: it does not exist (chroot-tool list el shows the versions)\n")

        let build = try bed.start(Self.dnfBuild(repo, "jbx-slow"), log: bed.directory.path + "/build.log")
        defer {
            if build.isRunning { kill(build.processIdentifier, SIGTERM) }
            build.waitUntilExit()
        }
        try waitFor("the slow build to start") { FileManager.default.fileExists(atPath: bed.chrootDir + "/.el-v3.tmp/root/slow-started") }
        let second = try bed.tool(Self.dnfBuild(repo, "jbx-base"))
        #expect(second.status == 125)
        #expect(second.stderr == "chroot-tool: cannot lock \(bed.chrootDir)/.el.build.lock: another build of el is running\n")
        // Switching and listing go on while a build runs.
        #expect(try bed.tool(["switch", "el", "v2"]).stdout == "switched el from el-v2 to el-v2\n")
        #expect(try bed.tool(["list", "--config"]).stdout == "NAMED_CHROOT = el=\(bed.chrootDir)/el\n")
    }
}

/// Polls `condition` every 50 ms for up to two minutes (a bound so a broken build fails the test instead of hanging it).
func waitFor(_ what: String, _ condition: () -> Bool) throws {
    for _ in 0..<2400 {
        if condition() { return }
        usleep(50_000)
    }
    throw TestFailure("gave up waiting for \(what)")
}

extension FileManager {
    func destinationOfSymbolicLinkOrNil(_ path: String) -> String? {
        try? destinationOfSymbolicLink(atPath: path)
    }
}
