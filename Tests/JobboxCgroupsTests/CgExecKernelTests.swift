import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore

/// cg-exec on this machine's real cgroup v1 hierarchies (hybrid: cgroup2 mounted beside them), as root, each
/// test in its own base cgroup below the test process's own cgroups.
@Suite("cg-exec on the real kernel (cgroup v1 / hybrid)", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct CgExecKernelTests {
    @Test("--memory 64M: a job allocating 256 MiB is OOM-killed (137) and memory.oom_control and memory.failcnt show it")
    func oomKill() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        let result = try sandbox.run(["--job", "oom", "--memory", "64M", "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"])
        #expect(result.status == 137, "\(result)")
        #expect(try sandbox.file("memory", "oom", "memory.limit_in_bytes") == "67108864")
        let oomControl = try sandbox.file("memory", "oom", "memory.oom_control")
        let kills = oomControl.split(separator: "\n").first { $0.hasPrefix("oom_kill ") }.flatMap { Int($0.dropFirst(9)) }
        #expect((kills ?? 0) >= 1, "\(oomControl)")
        #expect((Int(try sandbox.file("memory", "oom", "memory.failcnt")) ?? 0) > 0)
        #expect(try sandbox.run(["--remove", "--job", "oom"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: try sandbox.jobDirectory("memory", "oom")))
    }

    @Test("TERM while cg-exec makes the job's cgroups waits: the command never runs, nothing is left, cg-exec ends by TERM")
    func termDuringSetUp() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        let marker = sandbox.directory.path + "/ran"
        // The first mkdir is the base cgroup's, in the first hierarchy: most of the set-up is still to come.
        let run = try SetUpSignalProbe.signal(
            SIGTERM, duringFirst: "mkdir,mkdirat",
            of: ["cg-exec", "--config", sandbox.configPath, "--job", "term", "--memory", "64M", "--", "/usr/bin/touch", marker])
        #expect(run.heldWhenSignalled, "\(run)")
        #expect(run.ending == "killed by SIGTERM", "\(run)")
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(sandbox.existingBases.isEmpty, "\(sandbox.existingBases)")
    }

    @Test("a hierarchy mounted read-only (chaos suite): one line blaming the mount, not delegation; 125; nothing made elsewhere")
    func readOnlyHierarchy() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        // The pids hierarchy comes after memory, cpu and others, so the ones already made must be undone. The
        // read-only remount is private to the mount namespace unshare makes.
        let script = #"mount -o remount,bind,ro /sys/fs/cgroup/pids && exec "$@""#
        let result = try TestSupport.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", TestSupport.tool("cg-exec"), "--config", sandbox.configPath]
                + ["--job", "ro", "--", "/bin/true"])
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result)")
        #expect(result.stderr.contains("Read-only file system (this cgroup hierarchy is mounted read-only here"), "\(result)")
        #expect(!result.stderr.contains("delegated"), "\(result)")
        for base in sandbox.existingBases {
            #expect(CgExecSandbox.directoriesDeepestFirst(base) == [base], "\(base) still has the job's cgroup")
        }
    }

    @Test("a job that forked 50 background sleepers leaves nothing after --remove, in any hierarchy")
    func removeFiftySleepers() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        let started = try sandbox.run(
            ["--job", "s50", "--"] + CgExecSandbox.leavingBackground("for i in $(seq 50); do sleep 1000 </dev/null >/dev/null 2>&1 & done"))
        #expect(started.status == 0, "\(started)")
        let pids = try sandbox.pids("pids", "s50")
        #expect(pids.count == 50)
        #expect(Set(try sandbox.pids("memory", "s50")) == Set(pids))
        #expect(Set(try sandbox.pids("unified", "s50")) == Set(pids), "hybrid: the unified tree tracks the job too")
        #expect(try sandbox.run(["--list"]).stdout == "job_s50 50\n")
        let removed = try sandbox.run(["--remove", "--job", "s50"])
        #expect(removed.status == 0, "\(removed)")
        #expect(removed.stdout.isEmpty && removed.stderr.isEmpty)
        for pid in pids { #expect(CgExecSandbox.isDead(pid), "pid \(pid) survived") }
        for base in sandbox.existingBases {
            #expect(CgExecSandbox.directoriesDeepestFirst(base) == [base], "\(base) still has job cgroups")
        }
        #expect(try sandbox.run(["--list"]).stdout.isEmpty)
    }

    @Test("--remove stops a job that keeps forking (freeze, kill, thaw) and the job's own sub-cgroups go too")
    func removeForkingJob() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        // bash, not sh: when pids.max is reached bash reports the failed fork and loops on, where dash would exit.
        let job = try sandbox.start(["--job", "fork", "--pids-max", "200", "--", "bash", "-c", "exec 2>/dev/null; while :; do sleep 1000 & done"])
        try sandbox.wait("the job to fork") { try sandbox.pids("pids", "fork").count >= 20 }
        let sub = try sandbox.jobDirectory("memory", "fork") + "/payload"
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: false)
        let removed = try sandbox.run(["--remove", "--job", "fork"])
        #expect(removed.status == 0, "\(removed)")
        job.waitUntilExit()
        #expect(job.terminationReason == .uncaughtSignal && job.terminationStatus == SIGKILL)
        #expect(!FileManager.default.fileExists(atPath: sub))
        #expect(sandbox.existingBases.allSatisfy { CgExecSandbox.directoriesDeepestFirst($0) == [$0] })
    }

    @Test("limits land in the right v1 files; the process is in the job's cgroup in every hierarchy and in unified job/main")
    func limitFiles() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        let parentCPUs = try #require(CPUList(parsing: try String(contentsOfFile: sandbox.parentDirectory("cpuset") + "/cpuset.cpus", encoding: .utf8)))
        let cpu = try #require(parentCPUs.members.last)
        // blkio's weight files come with the kernel's I/O schedulers (CFQ's blkio.weight, BFQ's blkio.bfq.weight):
        // a kernel with neither takes no --io-weight (tested below), so the limit is asked for only where it can land.
        let weighted = try sandbox.blkioOffersWeight()
        let result = try sandbox.run(
            [
                "--job", "lim.1", "--memory", "100M", "--memory-soft", "50M", "--swap", "28M", "--cpus", "2", "--cpu-quota", "1.5",
                "--cpuset", String(cpu), "--mems", "0", "--pids-max", "77",
            ] + (weighted ? ["--io-weight", "200"] : []) + ["--", "cat", "/proc/self/cgroup"])
        #expect(result.status == 0, "\(result)")
        let job = "lim.1"
        #expect(try sandbox.file("memory", job, "memory.limit_in_bytes") == "104857600")
        #expect(try sandbox.file("memory", job, "memory.soft_limit_in_bytes") == "52428800")
        #expect(try sandbox.file("memory", job, "memory.memsw.limit_in_bytes") == "134217728")
        #expect(try sandbox.file("cpu", job, "cpu.shares") == "2048")
        #expect(try sandbox.file("cpu", job, "cpu.cfs_period_us") == "100000")
        #expect(try sandbox.file("cpu", job, "cpu.cfs_quota_us") == "150000")
        #expect(try sandbox.file("cpuset", job, "cpuset.cpus") == String(cpu))
        #expect(try sandbox.file("cpuset", job, "cpuset.mems") == "0")
        #expect(try sandbox.file("pids", job, "pids.max") == "77")
        let blkio = try sandbox.jobDirectory("blkio", job)
        if FileManager.default.fileExists(atPath: blkio + "/blkio.weight") {
            #expect(try sandbox.file("blkio", job, "blkio.weight") == "1000")
        } else if weighted {
            #expect(try sandbox.file("blkio", job, "blkio.bfq.weight") == "200")
        }
        let joined = CgroupMembership(parsing: result.stdout)
        for controller in ["memory", "cpu", "cpuacct", "cpuset", "blkio", "pids", "freezer", "unified"] {
            let expected = try sandbox.cgroupPath(controller, job) + (controller == "unified" ? "/main" : "")
            #expect(joined.path(in: try sandbox.hierarchy(controller)) == expected, "\(controller): \(result.stdout)")
        }
    }

    @Test("--io-weight on a kernel whose blkio offers no weight file: one line naming the files, 125, no cgroup left")
    func ioWeightWithoutWeightFiles() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        let result = try sandbox.run(["--job", "iow", "--io-weight", "200", "--", "true"])
        if try sandbox.blkioOffersWeight() {
            #expect(result.status == 0, "\(result)")
            return
        }
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr.hasPrefix("cg-exec: cannot apply --io-weight in "), "\(result)")
        #expect(result.stderr.contains("the kernel offers no blkio.weight or blkio.bfq.weight there"), "\(result)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result)")
        for controller in ["memory", "cpu", "blkio", "pids", "unified"] {
            #expect(!FileManager.default.fileExists(atPath: try sandbox.jobDirectory(controller, "iow")), "\(controller)")
        }
    }

    @Test("without --cpuset/--mems the job's v1 cpuset inherits the parent's cpus and mems; --cpu-weight/--cpu-shares convert")
    func inheritedCpusetAndWeights() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        #expect(try sandbox.run(["--job", "w", "--cpu-weight", "50", "--", "true"]).status == 0)
        let parent = try sandbox.parentDirectory("cpuset")
        #expect(
            try sandbox.file("cpuset", "w", "cpuset.cpus")
                == String(contentsOfFile: parent + "/cpuset.cpus", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(
            try sandbox.file("cpuset", "w", "cpuset.mems")
                == String(contentsOfFile: parent + "/cpuset.mems", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(try sandbox.file("cpu", "w", "cpu.shares") == "512")
        #expect(try sandbox.run(["--job", "s", "--cpu-shares", "3000", "--", "true"]).status == 0)
        #expect(try sandbox.file("cpu", "s", "cpu.shares") == "3000")
    }

    @Test("two jobs started together get their own cgroups and limits; removing one leaves the other running")
    func parallelJobs() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        let first = try sandbox.start(["--job", "p1", "--memory", "100M", "--pids-max", "10", "--", "sleep", "1000"])
        let second = try sandbox.start(["--job", "p2", "--memory", "200M", "--pids-max", "20", "--", "sleep", "1000"])
        try sandbox.wait("both jobs to start") { try sandbox.pids("memory", "p1").count == 1 && sandbox.pids("memory", "p2").count == 1 }
        #expect(try sandbox.pids("memory", "p1") == [first.processIdentifier])
        #expect(try sandbox.pids("memory", "p2") == [second.processIdentifier])
        #expect(try sandbox.pids("pids", "p1") == [first.processIdentifier])
        #expect(try sandbox.file("memory", "p1", "memory.limit_in_bytes") == "104857600")
        #expect(try sandbox.file("memory", "p2", "memory.limit_in_bytes") == "209715200")
        #expect(try sandbox.file("pids", "p1", "pids.max") == "10")
        #expect(try sandbox.file("pids", "p2", "pids.max") == "20")
        #expect(try sandbox.run(["--list"]).stdout == "job_p1 1\njob_p2 1\n")
        #expect(try sandbox.run(["--remove", "--job", "p1"]).status == 0)
        first.waitUntilExit()
        #expect(second.isRunning)
        #expect(try sandbox.pids("memory", "p2") == [second.processIdentifier])
        #expect(try sandbox.file("memory", "p2", "memory.limit_in_bytes") == "209715200")
        #expect(try sandbox.run(["--remove", "--job", "p2"]).status == 0)
        second.waitUntilExit()
        #expect(second.terminationStatus == SIGKILL)
    }

    @Test("--remove signals a listed pid only while that process is still the job's: one outside the job survives")
    func killOnlyWhatIsInTheJob() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        let job = try sandbox.start(["--job", "k1", "--", "sleep", "1000"])
        try sandbox.wait("the job to start") { try sandbox.pids("memory", "k1").count == 1 }
        // A process outside the job (in the test's own cgroups): what a pid read from the job's cgroup.procs can
        // name once the job's process exited and the pid was reused.
        let outside = Process()
        outside.executableURL = URL(fileURLWithPath: "/bin/sleep")
        outside.arguments = ["1000"]
        try outside.run()
        defer {
            if outside.isRunning { kill(outside.processIdentifier, SIGKILL) }
            outside.waitUntilExit()
        }
        let locator = JobCgroupLocator(layout: sandbox.layout, parent: .current, base: sandbox.base, membership: sandbox.membership)
        let locations = JobCgroupRegistry(locator: locator).locations(of: try JobID("k1"))
        #expect(!locations.isEmpty)
        CgroupKiller.kill(outside.processIdentifier, ifIn: locations)
        CgroupKiller.kill(job.processIdentifier, ifIn: locations)
        job.waitUntilExit()
        #expect(job.terminationStatus == SIGKILL)
        // The kernel's word (a killed child is a zombie until Foundation reaps it), after the job's own SIGKILL
        // has been seen to work.
        usleep(100_000)
        let state = ProcessStat.read(pid: outside.processIdentifier)?.state
        #expect(state != nil && state != "Z", "a process outside the job was killed (state \(state ?? "gone"))")
    }

    @Test(
        "bad input exits 125 with one line before anything is created",
        arguments: [
            (["--job", "a/b"], "cg-exec: invalid job id 'a/b': only letters, digits and _ . @ - are allowed"),
            (["--job", "x", "--controllers", "memory,bogus"], "cg-exec: unknown controller 'bogus' in --controllers: known controllers are"),
            (["--job", "x", "--memory", "12Q"], "cg-exec: invalid size for --memory: '12Q' is not a number of bytes"),
            (["--job", "x", "--cpuset", "3-1"], "cg-exec: invalid list for --cpuset: '3-1' is not a list of numbers and ranges such as 0-3,8"),
            (["--job", "x", "--cpus", "0"], "cg-exec: invalid number of CPUs for --cpus: '0'"),
            (["--job", "x", "--pids-max", "lots"], "cg-exec: invalid value for --pids-max: 'lots'"),
            (["--job", "x", "--base", "../x"], "cg-exec: invalid --base '../x': it is not a relative cgroup path without '..'"),
            (["--job", "x", "--parent", "/a/../b"], "cg-exec: invalid --parent '/a/../b': it is not /, self, or an absolute cgroup path without '..'"),
            (["--job", "x", "--memory-high", "1G"], "cg-exec: cannot apply --memory-high: cgroup v1 has no memory.high"),
            (["--job", "x", "--swap", "1G"], "cg-exec: cannot apply --swap: on cgroup v1 it needs --memory"),
            (["--job", "x", "--cpus", "1", "--cpu-shares", "100"], "cg-exec: conflicting options --cpus, --cpu-weight and --cpu-shares"),
            (
                ["--job", "x", "--controllers", "memory", "--pids-max", "5"],
                "cg-exec: cannot apply --pids-max: it needs the pids controller, which --controllers leaves out"
            ),
            (["--job", "x", "--timeout", "5"], "cg-exec: invalid use of --timeout: it goes with --remove"),
            (["--remove", "--job", "x", "--memory", "1G"], "cg-exec: invalid use of --remove: it takes no limits and no command"),
            (["--job", "x", "--from-job-ad"], "cg-exec: cannot use --from-job-ad: $_CONDOR_JOB_AD is not set"),
        ])
    func badInput(arguments: [String], message: String) throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        let marker = sandbox.directory.path + "/ran"
        var environment = ProcessInfo.processInfo.environment
        environment["_CONDOR_JOB_AD"] = nil
        let result = try sandbox.run(arguments + (arguments.contains("--remove") ? [] : ["--", "touch", marker]), environment: environment)
        #expect(result.status == 125)
        #expect(result.stderr.hasPrefix(message), "\(result.stderr)")
        #expect(result.stderr.filter { $0 == "\n" }.count == 1, "\(result.stderr)")
        #expect(sandbox.existingBases.isEmpty, "\(sandbox.existingBases)")
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test("a limit the kernel refuses (a cpuset outside the parent's) removes the cgroups just made and runs nothing")
    func halfMade() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        let marker = sandbox.directory.path + "/ran"
        let result = try sandbox.run(["--job", "half", "--memory", "64M", "--cpuset", "1023", "--", "touch", marker])
        #expect(result.status == 125)
        #expect(result.stderr.hasPrefix("cg-exec: cannot write '1023' to \(try sandbox.jobDirectory("cpuset", "half"))/cpuset.cpus: "), "\(result.stderr)")
        #expect(result.stderr.contains("--cpuset 1023 is not within the parent's"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(sandbox.existingBases.isEmpty, "\(sandbox.existingBases)")
    }

    @Test("a failing job start keeps a base another job uses, and that job untouched")
    func halfMadeBesideRunningJob() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        let running = try sandbox.start(["--job", "keep", "--", "sleep", "1000"])
        try sandbox.wait("the first job") { try sandbox.pids("memory", "keep").count == 1 }
        #expect(try sandbox.run(["--job", "fail", "--cpuset", "1023", "--", "true"]).status == 125)
        #expect(
            sandbox.existingBases.count
                == sandbox.layout.hierarchies.filter {
                    $0.name == nil
                        && ($0.version == .v2 || !$0.controllers.isDisjoint(with: ["memory", "cpu", "cpuacct", "cpuset", "blkio", "pids", "freezer"]))
                }.count)
        #expect(!FileManager.default.fileExists(atPath: try sandbox.jobDirectory("memory", "fail")))
        #expect(try sandbox.pids("memory", "keep") == [running.processIdentifier])
        #expect(try sandbox.run(["--remove", "--job", "keep"]).status == 0)
        running.waitUntilExit()
    }

    @Test("a command that is missing exits 127, one that is not executable 126; neither leaves a cgroup")
    func execFailures() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        let missing = try sandbox.run(["--job", "nx", "--memory", "64M", "--", "/nonexistent/command"])
        #expect(missing.status == 127)
        #expect(missing.stderr == "cg-exec: command not found: /nonexistent/command: No such file or directory\n")
        let notExecutable = try sandbox.run(["--job", "nx", "--", sandbox.configPath])
        #expect(notExecutable.status == 126)
        #expect(notExecutable.stderr == "cg-exec: cannot execute \(sandbox.configPath): Permission denied\n")
        #expect(sandbox.existingBases.isEmpty, "\(sandbox.existingBases)")
    }

    @Test("the job's exit status is cg-exec's; stdout is the job's alone")
    func exitStatus() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        let result = try sandbox.run(["--job", "st", "--", "sh", "-c", "echo out; exit 42"])
        #expect(result.status == 42)
        #expect(result.stdout == "out\n")
        #expect(result.stderr.isEmpty)
    }

    @Test("the job gets cg-exec's descriptors and signal state as they were, nothing added")
    func cleanExec() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        let probe = ["sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status; ls /proc/self/fd | wc -l"]
        let direct = try TestSupport.run(probe)
        let viaCgExec = try sandbox.run(["--job", "clean", "--"] + probe)
        #expect(viaCgExec.status == 0)
        #expect(viaCgExec.stdout == direct.stdout)
    }

    @Test("--remove is idempotent: a job that never existed, and a second removal, exit 0")
    func removeIdempotent() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        #expect(try sandbox.run(["--remove", "--job", "never"]).status == 0)
        #expect(try sandbox.run(["--job", "twice", "--", "true"]).status == 0)
        #expect(try sandbox.run(["--remove", "--job", "twice"]).status == 0)
        #expect(try sandbox.run(["--remove", "--job", "twice"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: try sandbox.jobDirectory("memory", "twice")))
    }

    @Test("a process that cannot die in time (frozen in another freezer cgroup) is named in the error, status 125")
    func survivorsNamed() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        #expect(try sandbox.run(["--job", "stuck", "--"] + CgExecSandbox.leavingBackground("sleep 1000 </dev/null >/dev/null 2>&1 &")).status == 0)
        // The job's shell may still be exiting: wait until only the background sleep is left.
        let comm: (Int32) -> String = {
            ((try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        try sandbox.wait("only the sleep left") {
            let left = try sandbox.pids("freezer", "stuck")
            return left.count == 1 && comm(left[0]) == "sleep"
        }
        let pid = try #require(try sandbox.pids("freezer", "stuck").first)
        // A frozen v1 task keeps a pending SIGKILL until it is thawed: the job's process cannot die.
        let holder = try sandbox.baseDirectory("freezer") + "/holder"
        try FileManager.default.createDirectory(atPath: holder, withIntermediateDirectories: false)
        try "\(pid)".write(toFile: holder + "/cgroup.procs", atomically: false, encoding: .utf8)
        try "FROZEN".write(toFile: holder + "/freezer.state", atomically: false, encoding: .utf8)
        let result = try sandbox.run(["--remove", "--job", "stuck", "--timeout", "0.5"])
        #expect(result.status == 125)
        #expect(result.stderr == "cg-exec: cannot remove job 'stuck': 1 process survived 0.5 s: \(pid) (sleep, state D)\n")
        #expect(FileManager.default.fileExists(atPath: try sandbox.jobDirectory("memory", "stuck")))
        try "THAWED".write(toFile: holder + "/freezer.state", atomically: false, encoding: .utf8)
        #expect(try sandbox.run(["--remove", "--job", "stuck"]).status == 0)
        #expect(CgExecSandbox.isDead(pid))
    }

    @Test("--from-job-ad takes RequestMemory (MiB) and RequestCpus from $_CONDOR_JOB_AD, and the job id; options win")
    func fromJobAd() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        // As root the ad is believed only where only root can write (Hostile: the job ad as root).
        let adDirectory = try ExecuteDirectory()
        defer { adDirectory.remove() }
        var environment = ProcessInfo.processInfo.environment
        environment["_CONDOR_JOB_AD"] = try adDirectory.write(".job.ad", "ClusterId = 4711\nProcId = 2\nRequestMemory = 128\nRequestCpus = 3\n")
        #expect(try sandbox.run(["--from-job-ad", "--", "true"], environment: environment).status == 0)
        #expect(try sandbox.file("memory", "4711.2", "memory.limit_in_bytes") == "134217728")
        #expect(try sandbox.file("cpu", "4711.2", "cpu.shares") == "3072")
        #expect(try sandbox.run(["--job", "own", "--from-job-ad", "--memory", "1G", "--", "true"], environment: environment).status == 0)
        #expect(try sandbox.file("memory", "own", "memory.limit_in_bytes") == "1073741824")
        #expect(try sandbox.file("cpu", "own", "cpu.shares") == "3072")
    }

    @Test("--from-job-ad with HTCondor's default RequestMemory (an expression) and no RequestCpus takes the slot's Memory and Cpus from $_CONDOR_MACHINE_AD")
    func fromMachineAd() throws {
        let sandbox = try CgExecSandbox(prefix: "jbicg")
        defer { sandbox.cleanUp() }
        let adDirectory = try ExecuteDirectory("jbi-ads")
        defer { adDirectory.remove() }
        var environment = ProcessInfo.processInfo.environment
        environment["_CONDOR_JOB_AD"] = try adDirectory.write(
            ".job.ad", "ClusterId = 4712\nProcId = 0\nRequestMemory = ifThenElse(MemoryUsage =!= undefined, MemoryUsage * 3 / 2, 128)\n")
        environment["_CONDOR_MACHINE_AD"] = try adDirectory.write(".machine.ad", "Memory = 192\nCpus = 2\n")
        let result = try sandbox.run(["--from-job-ad", "--", "true"], environment: environment)
        #expect(result.status == 0, "\(result)")
        #expect(try sandbox.file("memory", "4712.0", "memory.limit_in_bytes") == "\(192 << 20)")
        #expect(try sandbox.file("cpu", "4712.0", "cpu.shares") == "2048")
        // Without a machine ad the expression is refused, as before: only HTCondor can evaluate it.
        environment["_CONDOR_MACHINE_AD"] = nil
        let refused = try sandbox.run(["--job", "noslot", "--from-job-ad", "--", "true"], environment: environment)
        #expect(refused.status == 125)
        #expect(refused.stderr.hasPrefix("cg-exec: cannot use RequestMemory from "), "\(refused)")
    }

    @Test("--controllers limits the hierarchies the job's cgroup is made in")
    func controllerSelection() throws {
        let sandbox = try CgExecSandbox()
        defer { sandbox.cleanUp() }
        #expect(try sandbox.run(["--job", "c", "--controllers", "memory,pids", "--memory", "64M", "--", "true"]).status == 0)
        #expect(FileManager.default.fileExists(atPath: try sandbox.jobDirectory("memory", "c")))
        #expect(FileManager.default.fileExists(atPath: try sandbox.jobDirectory("pids", "c")))
        #expect(FileManager.default.fileExists(atPath: try sandbox.jobDirectory("unified", "c") + "/main"))
        #expect(!FileManager.default.fileExists(atPath: try sandbox.jobDirectory("cpuset", "c")))
        #expect(!FileManager.default.fileExists(atPath: try sandbox.jobDirectory("freezer", "c")))
        #expect(try sandbox.run(["--remove", "--job", "c"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: try sandbox.jobDirectory("memory", "c")))
    }
}
