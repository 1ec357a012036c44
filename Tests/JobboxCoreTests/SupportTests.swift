import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCLI
@testable import JobboxCore

@Suite("Configuration file")
struct ConfigTests {
    @Test("a missing default file means built-in defaults")
    func defaults() throws {
        let config = try JobboxConfig.load(explicitPath: nil, environment: Environment(["JOBBOX_CONFIG": "/nonexistent/jobbox.conf"]), privileged: true)
        #expect(config.baseCgroup == "jobbox")
        #expect(config.cgroupParent == .root)
        #expect(config.mountUnderScratch == ["/tmp", "/var/tmp"])
        #expect(config.chrootDir == "/chroot")
        #expect(config.stateDir == "/run/jobbox")
        #expect(config.networkBackend == .auto)
        #expect(config.networkInternal.map(\.description) == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"])
    }

    @Test("an explicit file that is missing is an error naming it")
    func missingExplicit() {
        #expect(throws: JobboxError.self) {
            try JobboxConfig.load(explicitPath: "/nonexistent/jobbox.conf", environment: Environment(), privileged: false)
        }
    }

    @Test("NameSet: a set of names in any order, each once, sorted")
    func nameSet() {
        var names: NameSet = ["memory", "cpu", "cpuacct", "cpu"]
        #expect(names.names == ["cpu", "cpuacct", "memory"])
        #expect(names == ["cpuacct", "memory", "cpu"])
        #expect(names != ["cpu", "memory"])
        #expect(names.insert("blkio") && !names.insert("memory"))
        #expect(Array(names) == ["blkio", "cpu", "cpuacct", "memory"])
        #expect(names.contains("cpuacct") && !names.contains("cpuset") && !names.contains(""))
        #expect(names.isDisjoint(with: ["pids", "freezer"]) && !names.isDisjoint(with: ["pids", "blkio"]))
        #expect(NameSet().isEmpty && NameSet().isDisjoint(with: names) && names.count == 4)
    }

    @Test("$(NAME) expands the last definition before the line, whether or not an earlier line referred to one")
    func macroExpansionOrder() throws {
        let text = "A = 1\na = 2\nB = $(A)\nA = 3\nC = $(a)$(B)\nD = $(NOWHERE)x\nE = $(E)y\n"
        #expect(try ConfigFile.parse(text, path: "x").map(\.value) == ["1", "2", "2", "3", "32", "x", "y"])
    }

    @Test("every knob in HTCondor syntax: comments, continuations, case-insensitive names, $(macros)")
    func allKnobs() throws {
        let text = """
            # jobbox on a worker node
            base_cgroup = htcondor/jobbox
            CGROUP_PARENT = self
            MOUNT_UNDER_SCRATCH = /tmp, /var/tmp,\\
                /scratch
            MOUNT_PRIVATE_DEV_SHM = False
            CHROOT_DIR = /srv/chroot/
            NAMED_CHROOT = SL7=$(CHROOT_DIR)/sl7, EL9=/chroot/el9
            STATE_DIR = /var/run/jobbox
            NETWORK_INTERNAL = 10.0.0.0/8 131.225.0.0/16
            NETWORK_JOB_SUBNET = 100.72.0.0/20
            NETWORK_BACKEND = NFTables
            SOME_FUTURE_KNOB = 1
            """
        let config = try JobboxConfig.parse(text, path: "/etc/jobbox/jobbox.conf")
        #expect(config.baseCgroup == "htcondor/jobbox")
        #expect(config.cgroupParent == .current)
        #expect(config.mountUnderScratch == ["/tmp", "/var/tmp", "/scratch"])
        #expect(config.mountPrivateDevShm == false)
        #expect(config.chrootDir == "/srv/chroot")
        #expect(config.namedChroots == [NamedChroot(name: "SL7", path: "/srv/chroot//sl7"), NamedChroot(name: "EL9", path: "/chroot/el9")])
        #expect(config.namedChroot("el9")?.path == "/chroot/el9")
        #expect(config.stateDir == "/var/run/jobbox")
        #expect(config.networkInternal.map(\.description) == ["10.0.0.0/8", "131.225.0.0/16"])
        #expect(config.networkJobSubnet.description == "100.72.0.0/20")
        #expect(config.networkBackend == .nftables)
        #expect(config.warnings == ["/etc/jobbox/jobbox.conf:13: unknown knob SOME_FUTURE_KNOB ignored"])
    }

    @Test(
        "a malformed value names the file, the line and the knob",
        arguments: [
            ("BASE_CGROUP = ../escape", "BASE_CGROUP"),
            ("CGROUP_PARENT = relative/path", "CGROUP_PARENT"),
            ("MOUNT_UNDER_SCRATCH = tmp", "MOUNT_UNDER_SCRATCH"),
            ("MOUNT_PRIVATE_DEV_SHM = maybe", "MOUNT_PRIVATE_DEV_SHM"),
            ("NAMED_CHROOT = SL7", "NAMED_CHROOT"),
            ("CHROOT_DIR = chroot", "CHROOT_DIR"),
            ("NETWORK_INTERNAL = 10.0.0.1/8", "NETWORK_INTERNAL"),
            ("NETWORK_JOB_SUBNET = 10.0.0.0/31", "NETWORK_JOB_SUBNET"),
            ("NETWORK_BACKEND = ipfw", "NETWORK_BACKEND"),
        ])
    func malformed(line: String, knob: String) {
        do {
            _ = try JobboxConfig.parse("# first line\n\n" + line + "\n", path: "/etc/jobbox/jobbox.conf")
            Issue.record("accepted \(line)")
        } catch {
            #expect(error.description.hasPrefix("bad configuration /etc/jobbox/jobbox.conf:3: \(knob): "), "\(error)")
        }
    }

    @Test("a line that is not NAME = value is an error with its line, not its text")
    func notAssignment() {
        #expect(throws: JobboxError.invalid("bad configuration", "/x.conf:2", "expected NAME = value")) {
            try JobboxConfig.parse("A = 1\nthis is not a knob\n", path: "/x.conf")
        }
    }

    @Test("each tool names the file and line of a bad configuration", arguments: ["cg-exec", "ns-exec", "netacct", "chroot-tool", "jobstat"])
    func toolsNameBadLine(tool: String) throws {
        let dir = try TestSupport.TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("jobbox.conf", "# ok\nSTATE_DIR = /run/jobbox\nNETWORK_BACKEND = carrier-pigeon\n")
        let arguments =
            tool == "chroot-tool"
            ? [tool, "--config", dir.path + "/jobbox.conf", "list"] : [tool, "--config", dir.path + "/jobbox.conf", "--job", "1.0", "--", "/bin/true"]
        let result = try TestSupport.run(tool == "jobstat" ? [tool, "--config", dir.path + "/jobbox.conf", "--job", "1.0"] : arguments)
        #expect(result.status == 125)
        #expect(result.stderr == "\(tool): bad configuration \(dir.path)/jobbox.conf:3: NETWORK_BACKEND: not auto, iptables, nftables or bpf\n")
        #expect(result.stdout.isEmpty)
    }
}

@Suite("Job identity")
struct JobIDTests {
    @Test("valid ids and their cgroup names")
    func valid() throws {
        #expect(try JobID("1234.5").cgroupName == "job_1234_5")
        #expect(try JobID("alice@submit-1_x").cgroupName == "job_alice@submit-1_x")
        #expect(try JobID(String(repeating: "a", count: 64)).rawValue.count == 64)
    }

    @Test(
        "ids that could escape a directory or make odd names are refused",
        arguments: ["", "../../x", "a/b", ".hidden", "a b", "x\n", String(repeating: "9", count: 65), "é"])
    func invalid(text: String) {
        #expect(throws: JobboxError.self) { try JobID(text) }
    }

    @Test("derived from the job ad, then Slurm, in that order")
    func resolve() throws {
        // As root the ad must lie where only root can write (see the Hostile suites); unprivileged, anywhere.
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        try dir.write(".job.ad", "ClusterId = 77\nProcId = 3\nOwner = \"bob\"\n")
        let condor = Environment(["_CONDOR_JOB_AD": dir.path + "/.job.ad", "SLURM_JOB_ID": "9"])
        #expect(try JobID.resolve(option: nil, environment: condor).rawValue == "77.3")
        #expect(try JobID.resolve(option: "given", environment: condor).rawValue == "given")
        #expect(try JobID.resolve(option: nil, environment: Environment(["SLURM_JOB_ID": "9", "SLURM_STEP_ID": "batch"])).rawValue == "9.batch")
        #expect(try JobID.resolve(option: nil, environment: Environment(["SLURM_JOB_ID": "9"])).rawValue == "9")
        #expect(throws: JobboxError.self) { try JobID.resolve(option: nil, environment: Environment()) }
        try dir.write("bad.ad", "ClusterId = \"x\"\n")
        #expect(throws: JobboxError.self) { try JobID.resolve(option: nil, environment: Environment(["_CONDOR_JOB_AD": dir.path + "/bad.ad"])) }
    }

    @Test("short names fit kernel limits and stay stable")
    func shortNames() throws {
        let short = try JobID("12.0")
        #expect(short.shortName(prefix: "jb", maxLength: 15) == "jb12_0")
        let long = try JobID("submit.example.org#1234.5".replacingOccurrences(of: "#", with: "-"))
        let name = long.shortName(prefix: "jb", maxLength: 15)
        #expect(name.utf8.count == 15)
        #expect(name == long.shortName(prefix: "jb", maxLength: 15))
        #expect(name != (try JobID("submit.example.org-1234.6")).shortName(prefix: "jb", maxLength: 15))
    }
}

@Suite("Sizes and CPU lists")
struct ValueTests {
    @Test(
        "sizes in bytes, powers of 1024, and max",
        arguments: [
            ("4096", ByteSize.bytes(4096)), ("64M", .bytes(64 << 20)), ("64m", .bytes(64 << 20)), ("2G", .bytes(2 << 30)),
            ("1T", .bytes(1 << 40)), ("512K", .bytes(512 << 10)), ("512KiB", .bytes(512 << 10)), ("3MB", .bytes(3 << 20)),
            ("100B", .bytes(100)), ("max", .unlimited), (" 7 ", .bytes(7)),
        ])
    func sizes(text: String, expected: ByteSize) {
        #expect(ByteSize(parsing: text) == expected)
    }

    @Test("malformed sizes are refused with the accepted forms", arguments: ["", "-1", "1.5G", "G", "12Q", "99999999999999999999", "16777216T", "0x10"])
    func badSizes(text: String) {
        #expect(ByteSize(parsing: text) == nil)
        #expect(throws: JobboxError.self) { try ByteSize.parse(text, for: "--memory") }
        do {
            _ = try ByteSize.parse(text, for: "--memory")
        } catch {
            #expect(error.description.contains(ByteSize.acceptedForms))
        }
    }

    /// The Character-wise parser ByteSize had before it parsed bytes, as the oracle for ASCII text.
    static func characterWiseSize(_ text: String) -> ByteSize? {
        let trimmed = text.trimmingASCIISpaces()
        if trimmed.lowercased() == "max" || trimmed.lowercased() == "unlimited" { return .unlimited }
        var digits = Substring(trimmed)
        var multiplier: UInt64 = 1
        for suffix in ["ib", "b"] where digits.lowercased().hasSuffix(suffix) && digits.count > suffix.count {
            let candidate = digits.dropLast(suffix.count)
            if let last = candidate.last, "kmgtKMGT".contains(last) || suffix == "b" {
                digits = candidate
                break
            }
        }
        if let last = digits.last, let power = ["k": 1, "m": 2, "g": 3, "t": 4][last.lowercased()] {
            multiplier = 1 << (10 * UInt64(power))
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit), let value = UInt64(digits) else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : .bytes(product)
    }

    @Test("the byte-wise size parser agrees with the Character-wise one it replaced on every short ASCII text")
    func sizesAsBefore() {
        let alphabet = ["0", "7", "9", " ", "\t", "k", "K", "m", "G", "t", "i", "I", "b", "B", "x", "-", "."]
        var texts = [
            "max", "MAX", "Max", " max ", "unlimited", "UNLIMITED", "maxb", "18446744073709551615", "18446744073709551616",
            "17179869183G", "17179869184G", "16777215T", "16777216T", "1KIB", "1kIb", "1ib", "kb", "kib", "b", "ib",
        ]
        var level = [""]
        for _ in 0..<4 {
            level = level.flatMap { prefix in alphabet.map { prefix + $0 } }
            texts += level
        }
        var differences: [String] = []
        for text in texts where ByteSize(parsing: text) != Self.characterWiseSize(text) {
            differences.append("'\(text)': \(String(describing: ByteSize(parsing: text))) against \(String(describing: Self.characterWiseSize(text)))")
        }
        #expect(differences == [], "\(differences.prefix(10))")
        #expect(texts.count > 80_000)
    }

    @Test("sizes print in their shortest exact form and as cgroup values")
    func sizeText() {
        #expect(ByteSize.bytes(64 << 20).description == "64M")
        #expect(ByteSize.bytes(1536 << 10).description == "1536K")
        #expect(ByteSize.bytes(1000).description == "1000")
        #expect(ByteSize.unlimited.cgroupValue(v2: true) == "max")
        #expect(ByteSize.unlimited.cgroupValue(v2: false) == "-1")
    }

    @Test("CPU lists in the kernel's form")
    func cpuLists() throws {
        #expect(CPUList(parsing: "0-3,8")?.members == [0, 1, 2, 3, 8])
        #expect(CPUList(parsing: "8,0-2,1")?.description == "0-2,8")
        #expect(CPUList(parsing: "5")?.description == "5")
        #expect(CPUList(parsing: "0-1,3-4,6")?.description == "0-1,3-4,6")
        #expect(CPUList(parsing: "")?.members == [])
        for bad in ["3-1", "a", "1,,2", "-1", "1-", "0-9999999"] {
            #expect(CPUList(parsing: bad) == nil, "\(bad)")
        }
        #expect(throws: JobboxError.self) { try CPUList.parse("", for: "--cpuset") }
        #expect(try CPUList.parse("1", for: "--cpuset").isSubset(of: CPUList([0, 1])))
    }

    @Test("IPv4 networks")
    func networks() {
        #expect(IPv4Network(parsing: "10.1.0.0/16")?.contains(IPv4Address(parsing: "10.1.200.3")!) == true)
        #expect(IPv4Network(parsing: "10.1.0.0/16")?.contains(IPv4Address(parsing: "10.2.0.1")!) == false)
        #expect(IPv4Network(parsing: "0.0.0.0/0")?.contains(IPv4Address(parsing: "8.8.8.8")!) == true)
        #expect(IPv4Network(parsing: "10.1.0.1/16") == nil)
        #expect(IPv4Network(parsing: "300.1.0.0/16") == nil)
        #expect(IPv4Network(parsing: "192.168.1.7")?.prefixLength == 32)
    }
}

@Suite("Tool conventions")
struct ToolConventionTests {
    static let tools = ["cg-exec", "ns-exec", "netacct", "chroot-tool", "jobstat"]

    @Test("every tool prints its version and help", arguments: tools)
    func versionAndHelp(tool: String) throws {
        let version = try TestSupport.run([tool, "--version"])
        #expect(version.status == 0)
        #expect(version.stdout == JobboxVersion.string + "\n")
        let help = try TestSupport.run([tool, "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("USAGE: \(tool)"))
        #expect(help.stderr.isEmpty)
    }

    @Test("an unknown option is one line on stderr and status 125", arguments: tools)
    func unknownOption(tool: String) throws {
        let result = try TestSupport.run([tool, "--no-such-option"])
        #expect(result.status == 125)
        #expect(result.stderr.hasPrefix("\(tool): "))
        #expect(result.stderr.filter { $0 == "\n" }.count == 1, "\(result.stderr)")
    }

    @Test("a job id with a path in it is refused before anything is made, and the wrapper error file gets the line")
    func badJobID() throws {
        let dir = try TestSupport.TemporaryDirectory()
        defer { dir.remove() }
        let errorFile = dir.path + "/.job_wrapper_failure"
        var environment = ProcessInfo.processInfo.environment
        environment["_CONDOR_WRAPPER_ERROR_FILE"] = errorFile
        // As root, a configuration from the environment must be root's alone.
        let configDirectory = try ExecuteDirectory("jbconf")
        defer { configDirectory.remove() }
        environment["JOBBOX_CONFIG"] = try configDirectory.write("jobbox.conf", "BASE_CGROUP = \(TestSupport.uniqueName("jbtest"))\nCGROUP_PARENT = self\n")
        let before = try TestSupport.sh("find /sys/fs/cgroup -name 'job_*' | sort").stdout
        let result = try TestSupport.run(["cg-exec", "--job", "../../x", "--", "true"], environment: environment)
        #expect(result.status == 125)
        #expect(result.stderr == "cg-exec: invalid job id '../../x': only letters, digits and _ . @ - are allowed\n")
        #expect(try String(contentsOfFile: errorFile, encoding: .utf8) == result.stderr)
        #expect(try TestSupport.sh("find /sys/fs/cgroup -name 'job_*' | sort").stdout == before)
    }
}

@Suite("/proc/PID/status")
struct ProcessStatusTests {
    @Test("the Uid line's second field is the effective uid; a missing or short line is nil")
    func effectiveUIDFromText() {
        let status = ProcessStatus(text: "Name:\tsleep\nUmask:\t0022\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t5\t5\t5\nSeccomp:\t2\n")
        #expect(status.effectiveUID == 1001)
        #expect(status.fields("Seccomp") == ["2"])
        #expect(status.fields("Cpus_allowed") == nil)
        #expect(ProcessStatus(text: "Name:\tx\n").effectiveUID == nil)
        #expect(ProcessStatus(text: "Uid:\t1000\n").effectiveUID == nil)
    }

    @Test(
        "a live process's effective uid, as the kernel writes it: this one's, and a throwaway user's shell's",
        .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
    func effectiveUIDOfLiveProcesses() throws {
        #expect(ProcessStatus.read(pid: getpid())?.effectiveUID == geteuid())
        let user = try TestUser()
        defer { user.remove() }
        let shell = try TestSupport.run(user.command(["/bin/sh", "-c", "cat /proc/$$/status"]))
        #expect(shell.status == 0, "\(shell)")
        #expect(ProcessStatus(text: shell.stdout).effectiveUID == user.uid, "\(shell)")
    }
}
