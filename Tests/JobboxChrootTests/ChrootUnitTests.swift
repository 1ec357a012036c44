import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxChroot
@testable import JobboxCore

@Suite("chroot-tool: names, specs, manifests, history")
struct ChrootUnitTests {
    @Test("names and versions as users write them")
    func namesAndVersions() throws {
        let sl5 = try ChrootName("sl5")
        #expect(ChrootVersion.parseDirectoryName("sl5-v4") == ChrootVersion(name: sl5, number: 4))
        #expect(ChrootVersion.parseDirectoryName("el-9-v12")?.name.rawValue == "el-9")
        #expect(ChrootVersion.parseDirectoryName("el-9-v12")?.number == 12)
        for notAVersion in ["sl5", "sl5-v", "sl5-v0", "sl5-v01", "sl5-vx", ".sl5-v1", "-v1", "sl5-v1.tmp"] {
            #expect(ChrootVersion.parseDirectoryName(notAVersion) == nil, "\(notAVersion)")
        }
        for text in ["v4", "4", "sl5-v4"] {
            #expect(try ChrootVersion.parse(text, of: sl5) == ChrootVersion(name: sl5, number: 4))
        }
        #expect(throws: JobboxError.invalid("invalid version", "'v-1'", "expected vN, N or sl5-vN with N a positive number")) {
            try ChrootVersion.parse("v-1", of: sl5)
        }
        #expect(try ChrootReference(parsing: "sl5") == .current(sl5))
        #expect(try ChrootReference(parsing: "sl5-v2") == .version(ChrootVersion(name: sl5, number: 2)))
        for bad in ["", ".hidden", "-x", "a/b", "../x", "a b", String(repeating: "n", count: 65)] {
            #expect(throws: JobboxError.self, "\(bad)") { try ChrootName(bad) }
        }
        #expect(throws: JobboxError.invalid("invalid chroot name", "'a/b'", "only letters, digits and _ . - are allowed")) { try ChrootName("a/b") }
    }

    @Test("a spec file in jobbox.conf syntax; a bad knob names the file, the line and the knob")
    func specFiles() throws {
        let spec = try ChrootSpec.parse(
            """
            # el9 for the batch nodes
            BACKEND = DNF
            release = 9
            REPOS = https://mirror.example.org/el9/BaseOS/$basearch/os, \\
                    https://mirror.example.org/el9/AppStream/$basearch/os
            PACKAGES = bash coreutils,python3
            BINDS = /cvmfs, /etc/grid-security:/grid/security
            GPGCHECK = no
            GPGKEYS = file:///etc/pki/rpm-gpg/RPM-GPG-KEY-el9
            COLOR = blue
            """, path: "/etc/jobbox/el9.spec")
        #expect(spec.backend == .dnf)
        #expect(spec.release == "9")
        #expect(spec.repos == ["https://mirror.example.org/el9/BaseOS/$basearch/os", "https://mirror.example.org/el9/AppStream/$basearch/os"])
        #expect(spec.packages == ["bash", "coreutils", "python3"])
        #expect(spec.binds.map(\.description) == ["/cvmfs", "/etc/grid-security:/grid/security"])
        #expect(spec.gpgCheck == false)
        #expect(spec.gpgKeys == ["file:///etc/pki/rpm-gpg/RPM-GPG-KEY-el9"])
        #expect(spec.warnings == ["/etc/jobbox/el9.spec:10: unknown knob COLOR ignored"])

        let cases: [(String, String)] = [
            ("BACKEND = apt", "BACKEND: 'apt' is not dnf, yum or debootstrap"),
            ("REPOS = mirror.example.org/el9", "REPOS: 'mirror.example.org/el9' is not a repository URL (http://, https://, ftp:// or file:///)"),
            ("PACKAGES = bash --nogpgcheck", "PACKAGES: '--nogpgcheck' is not a package name"),
            ("BINDS = cvmfs", "BINDS: 'cvmfs' is not SRC[:DST] with absolute paths"),
            ("BINDS = /a:/../etc", "BINDS: '/a:/../etc' is not SRC[:DST] with absolute paths"),
            ("RELEASE = 9; rm -rf /", "RELEASE: '9; rm -rf /' is not a release such as 9 or bookworm"),
            ("GPGCHECK = maybe", "GPGCHECK: 'maybe' is not true or false"),
        ]
        for (line, reason) in cases {
            #expect(throws: JobboxError.invalid("bad chroot spec", "/x.spec:2", reason)) { try ChrootSpec.parse("# x\n" + line + "\n", path: "/x.spec") }
        }
    }

    @Test("a spec must name a backend, a release, and what the backend needs")
    func specValidation() throws {
        var spec = ChrootSpec()
        #expect(throws: JobboxError.invalid("no backend", nil, "pass --backend dnf|yum|debootstrap or set BACKEND in the spec")) { try spec.validated() }
        try spec.override("BACKEND", with: "yum", option: "--backend")
        #expect(throws: JobboxError.invalid("no release", nil, "pass --release or set RELEASE in the spec (dnf: 9; debootstrap: bookworm)")) {
            try spec.validated()
        }
        try spec.override("RELEASE", with: "7", option: "--release")
        #expect(throws: JobboxError.invalid("no repository", nil, "yum needs --repo URL or REPOS in the spec")) { try spec.validated() }
        try spec.override("REPOS", with: "file:///srv/repo", option: "--repo")
        #expect(throws: JobboxError.invalid("no packages", nil, "yum needs --packages or PACKAGES in the spec")) { try spec.validated() }
        try spec.override("PACKAGES", with: "bash", option: "--packages")
        #expect(try spec.validated().backend == .yum)
        #expect(throws: JobboxError.invalid("invalid value for", "--backend", "'zypper' is not dnf, yum or debootstrap")) {
            try spec.override("BACKEND", with: "zypper", option: "--backend")
        }
        var debian = ChrootSpec()
        debian.backend = .debootstrap
        debian.release = "bookworm"
        #expect(try debian.validated().repos.isEmpty, "debootstrap may use its default mirror")
        debian.repos = ["http://a/debian", "http://b/debian"]
        #expect(throws: JobboxError.invalid("too many repositories", nil, "debootstrap takes one mirror, got 2")) { try debian.validated() }
    }

    @Test("the dnf backend's configuration holds the repositories and nothing of the host's")
    func dnfConfiguration() throws {
        var spec = ChrootSpec()
        spec.backend = .dnf
        spec.release = "9"
        spec.repos = ["https://m/el9/BaseOS/$basearch/os", "file:///srv/extra"]
        spec.gpgKeys = ["file:///k1", "file:///k2"]
        #expect(
            RPMBackend(kind: .dnf, spec: spec).configurationText(reposDirectory: "/w/repos.d") == """
                # written by chroot-tool for one build
                [main]
                reposdir=/w/repos.d
                gpgcheck=1
                install_weak_deps=False
                keepcache=0
                assumeyes=True

                [jobbox-1]
                name=chroot-tool repository 1
                baseurl=https://m/el9/BaseOS/$basearch/os
                enabled=1
                gpgcheck=1
                gpgkey=file:///k1 file:///k2

                [jobbox-2]
                name=chroot-tool repository 2
                baseurl=file:///srv/extra
                enabled=1
                gpgcheck=1
                gpgkey=file:///k1 file:///k2

                """)
    }

    @Test("debootstrap's command line follows the spec")
    func debootstrapCommand() throws {
        let work = try TestSupport.TemporaryDirectory()
        defer { work.remove() }
        var spec = ChrootSpec()
        spec.backend = .debootstrap
        spec.release = "bookworm"
        spec.packages = ["ca-certificates", "python3"]
        spec.repos = ["http://deb.example.org/debian"]
        spec.gpgCheck = false
        let command = try DebootstrapBackend(spec: spec, cacheDirectory: work.path + "/cache").installCommand(
            root: "/c/.d-v1.tmp/root", workDirectory: work.path)
        #expect(
            command.arguments == [
                "debootstrap", "--variant=minbase", "--include=ca-certificates,python3", "--no-check-gpg", "--cache-dir=\(work.path)/cache", "bookworm",
                "/c/.d-v1.tmp/root", "http://deb.example.org/debian",
            ])
        #expect(FileManager.default.fileExists(atPath: work.path + "/cache"))
    }

    @Test("manifests round-trip through their jobbox.conf syntax")
    func manifestRoundTrip() throws {
        let manifest = ChrootManifest(
            version: ChrootVersion(name: try ChrootName("sl5"), number: 4), backend: .yum, release: "5", repos: ["http://a/x", "file:///b"],
            requestedPackages: ["bash", "glibc"], binds: [try BindRequest(parsing: "/cvmfs"), try BindRequest(parsing: "/a:/b")], gpgCheck: true,
            variant: nil, specPath: "/etc/jobbox/sl5.spec", built: "2026-01-02T03:04:05Z", builtBy: "chroot-tool 0.1.0",
            installed: [
                InstalledPackage(name: "glibc", version: "2.5-123", architecture: "i686"),
                InstalledPackage(name: "bash", version: "1:3.2-33", architecture: "x86_64"),
                InstalledPackage(name: "glibc", version: "2.5-123", architecture: "x86_64"),
            ])
        let text = manifest.render()
        #expect(
            text == """
                # chroot-tool manifest of sl5-v4: what it was built from and every package it holds
                NAME = sl5
                VERSION = 4
                BACKEND = yum
                RELEASE = 5
                REPOS = http://a/x, file:///b
                PACKAGES = bash glibc
                BINDS = /cvmfs, /a:/b
                GPGCHECK = true
                SPEC = /etc/jobbox/sl5.spec
                BUILT = 2026-01-02T03:04:05Z
                BUILT_BY = chroot-tool 0.1.0
                INSTALLED = bash 1:3.2-33 x86_64
                INSTALLED = glibc 2.5-123 i686
                INSTALLED = glibc 2.5-123 x86_64

                """)
        #expect(try ChrootManifest.parse(text, path: "m") == manifest)
        #expect(throws: JobboxError.invalid("bad manifest", "m:2", "INSTALLED: 'bash' is not NAME VERSION ARCH")) {
            try ChrootManifest.parse("NAME = x\nINSTALLED = bash\n", path: "m")
        }
        #expect(throws: JobboxError.invalid("bad manifest", "m", "no BACKEND")) { try ChrootManifest.parse("NAME = x\nVERSION = 1\n", path: "m") }
    }

    @Test("package diffs by name and architecture")
    func packageDiff() {
        func p(_ name: String, _ version: String, _ arch: String = "noarch") -> InstalledPackage {
            InstalledPackage(name: name, version: version, architecture: arch)
        }
        let old = [p("bash", "5.1-1", "x86_64"), p("glibc", "2.34-1", "i686"), p("glibc", "2.34-1", "x86_64"), p("zlib", "1.2", "x86_64")]
        let new = [p("bash", "5.1-1", "x86_64"), p("glibc", "2.34-2", "x86_64"), p("python3", "3.9-1", "x86_64"), p("zlib", "1.2", "x86_64")]
        #expect(PackageDiff(from: old, to: new).render() == "- glibc 2.34-1 i686\n~ glibc 2.34-1 -> 2.34-2 x86_64\n+ python3 3.9-1 x86_64\n")
        #expect(PackageDiff(from: new, to: new).isEmpty)
    }

    @Test("the history: numbers are never reused, rollback goes back through earlier switches")
    func history() {
        var history = ChrootHistory()
        func add(_ event: ChrootHistory.Event, _ number: Int) { history.records.append(.init(time: "t", event: event, number: number)) }
        add(.build, 1)
        add(.switch, 1)
        add(.build, 2)
        add(.switch, 2)
        add(.build, 3)
        add(.switch, 3)
        #expect(history.highestBuilt == 3)
        #expect(history.rollbackTarget(current: 3) { _ in true } == 2)
        #expect(history.rollbackTarget(current: 3) { $0 != 2 } == 1, "a version removed by hand is skipped")
        add(.rollback, 2)
        #expect(history.currentStack == [1, 2])
        #expect(history.rollbackTarget(current: 2) { _ in true } == 1)
        add(.switch, 3)
        add(.switch, 2)
        #expect(history.rollbackTarget(current: 2) { _ in true } == 3)
        #expect(history.rollbackTarget(current: 7) { _ in true } == 2, "a link changed by hand: back to the last version chroot-tool set")
        let parsed = ChrootHistory(parsing: history.records.map(\.line).joined(separator: "\n") + "\ngarbage line\n")
        #expect(parsed == history)
        #expect(ChrootHistory(parsing: "t switch v1\nt rollback v1\n").rollbackTarget(current: 1) { _ in true } == nil)
    }

    @Test("dpkg's status file: installed packages only")
    func dpkgStatus() {
        let status = """
            Package: bash
            Essential: yes
            Status: install ok installed
            Architecture: amd64
            Version: 5.2.15-2+b2
            Description: GNU Bourne Again SHell
             Bash is an sh-compatible command language interpreter.
             Version: 9.9 (a continuation line, not a field)

            Package: removed-one
            Status: deinstall ok config-files
            Architecture: amd64
            Version: 1.0

            Package: tzdata
            Status: hold ok installed
            Architecture: all
            Version: 2024a-0+deb12u1

            """
        #expect(DebootstrapBackend.parseStatus(status).map(\.description) == ["bash 5.2.15-2+b2 amd64", "tzdata 2024a-0+deb12u1 all"])
    }

    @Test("sizes in list as du -h shows them, and the table's alignment")
    func listFormatting() {
        #expect(ChrootListing.humanSize(512) == "512")
        #expect(ChrootListing.humanSize(4096) == "4.0K")
        #expect(ChrootListing.humanSize(2_700_000) == "2.6M")
        #expect(ChrootListing.humanSize(222_298_112) == "212M")
        #expect(ChrootListing.humanSize(222_298_113) == "213M")
        #expect(ChrootListing.humanSize(1_503_238_552) == "1.4G")
        #expect(ChrootListing.renderTable([["NAME", "V", "X"], ["el9", "v10", "y"]]) == "NAME  V    X\nel9   v10  y\n")
        #expect(Timestamp.format(1_700_000_000) == "2023-11-14T22:13:20Z")
        #expect(Timestamp.now(environment: Environment(["SOURCE_DATE_EPOCH": "0"])) == "1970-01-01T00:00:00Z")
    }
}

@Suite("chroot-tool: command line")
struct ChrootCommandLineTests {
    @Test("list --config after the subcommand is the flag; --config FILE before it is the configuration")
    func listConfig() throws {
        let dir = try TestSupport.TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("jobbox.conf", "CHROOT_DIR = \(dir.path)/chroot\n")
        try FileManager.default.createDirectory(atPath: dir.path + "/chroot/el9-v1", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir.path + "/chroot/sl7-v3", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir.path + "/chroot/.el9-v2.tmp", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/chroot/el9", withDestinationPath: "el9-v1")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/chroot/sl7", withDestinationPath: "sl7-v3")
        let result = try TestSupport.run(["chroot-tool", "--config", dir.path + "/jobbox.conf", "list", "--config"])
        #expect(result.status == 0, "\(result)")
        let expected = "NAMED_CHROOT = el9=\(dir.path)/chroot/el9, \\\n               sl7=\(dir.path)/chroot/sl7\n"
        #expect(result.stdout == expected)
        let parsed = try JobboxConfig.parse(result.stdout, path: "out")
        #expect(parsed.namedChroots == [NamedChroot(name: "el9", path: dir.path + "/chroot/el9"), NamedChroot(name: "sl7", path: dir.path + "/chroot/sl7")])
        // As root, a configuration from the environment must be root's alone: a copy in a root-only directory.
        let configDirectory = try ExecuteDirectory("jbconf")
        defer { configDirectory.remove() }
        let copy = try configDirectory.write("jobbox.conf", try String(contentsOfFile: dir.path + "/jobbox.conf", encoding: .utf8))
        let environment = ProcessInfo.processInfo.environment.merging(["JOBBOX_CONFIG": copy]) { $1 }
        #expect(try TestSupport.run(["chroot-tool", "list", "--config"], environment: environment).stdout == expected)

        let list = try TestSupport.run(["chroot-tool", "--config", dir.path + "/jobbox.conf", "list"])
        let rows = list.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(
            rows.map { $0.prefix(3) } == [["NAME", "VERSION", "STATE"], ["el9", "v1", "current"], ["sl7", "v3", "current"]], "temporary directories never show")
        #expect(rows.dropFirst().map { $0[4] } == ["?", "?"], "no manifest, no build time")
    }

    @Test("bad names, versions and options are one line and status 125")
    func badInput() throws {
        let dir = try TestSupport.TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("jobbox.conf", "CHROOT_DIR = \(dir.path)/chroot\n")
        let config = dir.path + "/jobbox.conf"
        let cases: [([String], String)] = [
            (["show", "../etc"], "chroot-tool: invalid chroot name '../etc': only letters, digits and _ . - are allowed\n"),
            (["show", "el9"], "chroot-tool: no current version of el9: \(dir.path)/chroot/el9 is not a link to a version; name one, such as el9-v1\n"),
            (["diff", "el9", "v1", "vx"], "chroot-tool: invalid version 'vx': expected vN, N or el9-vN with N a positive number\n"),
            (["gc", "el9"], "chroot-tool: Missing expected argument '--keep <k>' (see chroot-tool --help)\n"),
            ([], "chroot-tool: no subcommand: give one of build, switch, rollback, list, show, diff, gc, verify (see chroot-tool --help)\n"),
        ]
        for (arguments, message) in cases {
            let result = try TestSupport.run(["chroot-tool", "--config", config] + arguments)
            #expect(result.status == 125, "\(arguments)")
            #expect(result.stderr == message)
            #expect(result.stdout.isEmpty)
        }
        if TestSupport.isRoot {
            let result = try TestSupport.run(["chroot-tool", "--config", config, "build", "el9", "--backend", "dnf", "--release", "9", "--packages", "bash"])
            #expect(result.stderr == "chroot-tool: no repository: dnf needs --repo URL or REPOS in the spec\n")
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/chroot"), "nothing is made before the input is checked")
        }
    }
}

@Suite("chroot-tool: removing trees", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct DirectoryTreeTests {
    @Test("removing a tree never follows a symlink out of it or deletes through a bind mount in it")
    func staysInside() throws {
        let dir = try TestSupport.TemporaryDirectory()
        defer {
            _ = umount2(dir.path + "/tree/usr/bound", Int32(MNT_DETACH))
            dir.remove()
        }
        try dir.write("precious/keep", "keep\n")
        try dir.write("tree/usr/lib/file", "x\n")
        try dir.write("tree/usr/bound/.placeholder", "")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/tree/link", withDestinationPath: dir.path + "/precious")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/tree/usr/relative", withDestinationPath: "../../precious")
        let bound = try TestSupport.run(["mount", "--bind", dir.path + "/precious", dir.path + "/tree/usr/bound"])
        #expect(bound.status == 0, "\(bound)")
        #expect(FileManager.default.fileExists(atPath: dir.path + "/tree/usr/bound/keep"))

        try DirectoryTree.remove(dir.path + "/tree")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/tree"))
        #expect(try String(contentsOfFile: dir.path + "/precious/keep", encoding: .utf8) == "keep\n")
        #expect(try TestSupport.sh("grep -c ' \(dir.path)/tree' /proc/self/mountinfo").stdout == "0\n")
    }

    @Test("a tree nested deeper than the descriptor limit is removed all the same, nothing above it touched")
    func deepTree() async throws {
        let base = "/tmp/jbtest-deep-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: base) }
        try FileManager.default.createDirectory(atPath: base + "/precious", withIntermediateDirectories: true)
        try "keep\n".write(toFile: base + "/precious/keep", atomically: false, encoding: .utf8)
        // 300 levels (what a user can nest in a version's /tmp), a file half-way and one at the bottom.
        var level = base + "/tree"
        for depth in 0..<300 {
            level += "/d"
            try FileManager.default.createDirectory(atPath: level, withIntermediateDirectories: true)
            if depth == 150 || depth == 299 { try "x\n".write(toFile: level + "/file", atomically: false, encoding: .utf8) }
        }
        // In a child with room for 100 more descriptors than it has open (it inherits some from the test run, more
        // while other tests run): the walk must not hold one per level.
        await #expect(processExitsWith: .exitCode(0)) {
            let open = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int($0) }
            let room = rlim_t((open.max() ?? 2) + 101)
            var limit = rlimit(rlim_cur: room, rlim_max: room)
            guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { exit(2) }
            do {
                try DirectoryTree.remove("/tmp/jbtest-deep-\(getppid())/tree")
                exit(0)
            } catch {
                exit(1)
            }
        }
        #expect(!FileManager.default.fileExists(atPath: base + "/tree"))
        #expect(try String(contentsOfFile: base + "/precious/keep", encoding: .utf8) == "keep\n")
    }

    @Test("mount ids tell a bind mount from the same file system apart, where device numbers cannot")
    func mountIDs() throws {
        let dir = try TestSupport.TemporaryDirectory()
        defer {
            _ = umount2(dir.path + "/b", Int32(MNT_DETACH))
            dir.remove()
        }
        try FileManager.default.createDirectory(atPath: dir.path + "/a", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir.path + "/b", withIntermediateDirectories: true)
        #expect(try TestSupport.run(["mount", "--bind", dir.path + "/a", dir.path + "/b"]).status == 0)
        let plain = open(dir.path + "/a", O_RDONLY | O_DIRECTORY)
        let bound = open(dir.path + "/b", O_RDONLY | O_DIRECTORY)
        defer {
            close(plain)
            close(bound)
        }
        var plainInfo = stat()
        var boundInfo = stat()
        #expect(fstat(plain, &plainInfo) == 0 && fstat(bound, &boundInfo) == 0)
        #expect(plainInfo.st_dev == boundInfo.st_dev)
        #expect(DirectoryTree.mountID(of: plain) != nil)
        #expect(DirectoryTree.mountID(of: plain) != DirectoryTree.mountID(of: bound))
    }
}
