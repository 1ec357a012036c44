import Foundation
import JobboxTestSupport
import Testing

/// The example USER_JOB_WRAPPER's own logic, run under the starter emulation with stand-ins for the tools (they
/// log how they were called and do the least the real tool would): what it derives from the job ad, which
/// chain it builds as the job's user and as root, how it propagates the job's status and signals, and what
/// reaches the error file. What the tools then do is checked with the real tools in `HTCondorContractTests`.
@Suite("HTCondor wrapper: the chain it builds", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct JobboxWrapperTests {
    /// A job that prints its arguments and identity, and exits with the status given in $JOB_STATUS.
    static let job = """
        #!/bin/sh
        echo "job ran as $(id -un) with: $*"
        exit "${JOB_STATUS:-0}"
        """

    struct Setup {
        let execute: ExecuteDirectory
        let user: TestUser
        let tools: FakeTools
        let job: String
        let jobbox: ReachableJobbox

        init() throws {
            execute = try ExecuteDirectory()
            user = try TestUser()
            tools = try FakeTools(in: execute)
            jobbox = try execute.reachableJobbox()
            job = try execute.script("job.sh", JobboxWrapperTests.job)
        }

        func remove() {
            user.remove()
            execute.remove()
        }

        /// Runs the wrapper under the starter emulation with the fake tools.
        func run(_ options: [String] = [], env: [String] = [], job arguments: [String] = ["one", "two words"]) throws -> ContractRun {
            let environment = (["JOBBOX_BIN=\(tools.directory)", "FAKE_TOOL_LOG=\(tools.log)"] + env).flatMap { ["--env", $0] }
            return try ContractRun.run(["--execute", execute.path, "--user", user.name] + environment + options, job: [job] + arguments, jobbox: jobbox)
        }
    }

    /// `calls` with the wrapper's parent pid (the starter's, unknown to the test) as `PPID`.
    static func withParentPID(_ calls: [String]) -> [String] {
        calls.map { $0.replacingOccurrences(of: #"\[--exclude-shared-with\] \[[0-9]+\]"#, with: "[--exclude-shared-with] [PPID]", options: .regularExpression) }
    }

    @Test("as the job's user: ns-exec --userns --pid --mount --requested-chroot around the job, then jobstat --self without the starter's figures")
    func unprivilegedChain() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let run = try setup.run(["--cluster", "31", "--proc", "4"], env: ["JOB_STATUS=3"])

        #expect(run.status == 3, "\(run)")
        #expect(run.stdout == "job ran as \(setup.user.name) with: one two words\n", "\(run)")
        #expect(run.errorFile == nil, "\(run)")
        let ns = setup.tools.calls(of: "ns-exec")
        #expect(
            ns == [
                "ns-exec uid=\(setup.user.uid) errfile=set [--userns] [--pid] [--mount] [--scratch] [\(run.scratch)] [--requested-chroot] [--] [\(setup.job)] [one] [two words]"
            ],
            "\(setup.tools.calls)")
        // Only with a delegated cgroup v2 slice, which the emulation makes when asked (--cgroup); not asked here.
        #expect(setup.tools.calls(of: "cg-exec").isEmpty, "\(setup.tools.calls)")
        // After the job: figures without the error file, so a failure there cannot requeue a finished job; jobstat
        // itself leaves out what the job shares with the starter, and decides whether to chirp.
        #expect(
            Self.withParentPID(setup.tools.calls(of: "jobstat")) == [
                "jobstat uid=\(setup.user.uid) errfile= [--self] [--exclude-shared-with] [PPID] [--chirp-auto]"
            ],
            "\(setup.tools.calls)")
        #expect(setup.tools.calls(of: "netacct").isEmpty, "netacct needs root: \(setup.tools.calls)")
        #expect(run.finalAd == "MemoryPeakKb = 100\nRemoteUserCpu = 1.5\nBlockReadBytes = 7\nNumPids = 1\nCpuPressureSomeAvg10 = 0.5\n", "\(run)")
    }

    @Test(
        "as root: the ads copied where only root writes -> cg-exec --from-job-ad -> netacct -> ns-exec --requested-chroot -> job; then jobstat, cg-exec --remove"
    )
    func privilegedChain() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let run = try setup.run(
            ["--wrapper-as-root", "--cluster", "7", "--proc", "3", "--request-memory", "256", "--request-cpus", "2"],
            env: ["JOB_STATUS=0"])

        #expect(run.status == 0, "\(run)")
        // The fake ns-exec cannot drop to the user, so the job runs as root here; the real one is checked elsewhere.
        #expect(run.stdout == "job ran as root with: one two words\n", "\(run)")
        let calls = setup.tools.calls
        #expect(calls.count == 5, "\(calls)")
        let chain = calls.prefix(3).map { $0.replacingOccurrences(of: #"/run/jobbox-wrapper\.[A-Za-z0-9]+"#, with: "PRIVATE", options: .regularExpression) }
        let rest = "[--] [\(setup.job)] [one] [two words]"
        let nsExec = "[\(setup.tools.directory)/ns-exec] [--pid] [--mount] [--scratch] [\(run.scratch)] [--requested-chroot] \(rest)"
        #expect(
            chain == [
                "cg-exec uid=0 errfile=set [--from-job-ad] [--] [\(setup.tools.directory)/netacct] [--ad-file] [PRIVATE/network.ad] [--chirp-auto] [--] \(nsExec)",
                "netacct uid=0 errfile=set [--ad-file] [PRIVATE/network.ad] [--chirp-auto] [--] \(nsExec)",
                "ns-exec uid=0 errfile=set [--pid] [--mount] [--scratch] [\(run.scratch)] [--requested-chroot] \(rest)",
            ])
        #expect(Array(calls.suffix(2)) == ["jobstat uid=0 errfile= [--chirp-auto]", "cg-exec uid=0 errfile= [--remove]"])
        // jobstat's ad and netacct's final ad become one, written into the scratch dir as the job's user.
        #expect(
            run.finalAd == "MemoryPeakKb = 100\nRemoteUserCpu = 1.5\nBlockReadBytes = 7\nNumPids = 1\nCpuPressureSomeAvg10 = 0.5\nNetworkOutgoing = 42\n",
            "\(run)")
        var info = stat()
        #expect(stat(run.scratch + "/.jobbox/job.ad", &info) == 0 && info.st_uid == setup.user.uid)
        #expect(run.errorFile == nil, "\(run)")
        // The private directory (with the ads' copies) is gone.
        let privateDir = calls.first.flatMap { $0.range(of: #"/run/jobbox-wrapper\.[A-Za-z0-9]+"#, options: .regularExpression).map { String(calls[0][$0]) } }
        #expect(privateDir != nil && !FileManager.default.fileExists(atPath: privateDir ?? "/"), "\(calls)")
    }

    @Test("as root the ads the tools read are copies in a directory only root can write, taken before the job ran")
    func privilegedAdCopies() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let job = try setup.execute.script(
            "show-ads.sh",
            """
            #!/bin/sh
            echo "job=$_CONDOR_JOB_AD machine=$_CONDOR_MACHINE_AD"
            stat -c '%u %a' "${_CONDOR_JOB_AD%/*}"
            grep -c ClusterId "$_CONDOR_JOB_AD"
            """)
        let run = try ContractRun.run(
            [
                "--execute", setup.execute.path, "--user", setup.user.name, "--wrapper-as-root", "--env", "JOBBOX_BIN=\(setup.tools.directory)", "--env",
                "FAKE_TOOL_LOG=\(setup.tools.log)",
            ], job: [job], jobbox: setup.jobbox)
        #expect(run.status == 0, "\(run)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(run)")
        #expect(lines.first?.contains("job=/run/jobbox-wrapper.") == true && lines.first?.contains("/machine.ad") == true, "\(run)")
        #expect(lines.dropFirst().first == "0 700", "\(run)")
        #expect(lines.last == "1", "\(run)")
    }

    @Test("with a chirp proxy the tools are asked to chirp and decide how themselves (--chirp-auto)")
    func chirp() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let config = try setup.execute.write("chirp.config", "127.0.0.1 9 cookie\n")
        let root = try setup.run(["--wrapper-as-root", "--chirp-config", config, "--job-attr", "WantIOProxy = false"])
        #expect(root.status == 0, "\(root)")
        #expect(setup.tools.calls.filter { $0.contains("[--chirp-auto]") }.count == 3, "cg-exec passes netacct's on, netacct, jobstat: \(setup.tools.calls)")
        #expect(setup.tools.calls.allSatisfy { !$0.contains("[--chirp]") && !$0.contains("[--chirp-delayed]") }, "\(setup.tools.calls)")
    }

    @Test("a tool that fails before the job: its line alone in the error file, status 125, no figures", arguments: [false, true])
    func toolFailure(asRoot: Bool) throws {
        let setup = try Setup()
        defer { setup.remove() }
        let failing = asRoot ? "netacct" : "ns-exec"
        let run = try setup.run(asRoot ? ["--wrapper-as-root"] : [], env: ["FAKE_TOOL_FAIL=\(failing)"])
        #expect(run.status == 125, "\(run)")
        #expect(run.errorFile == "\(failing): fake failure\n", "\(run)")
        #expect(run.requeue == "The job wrapper failed to execute the job: \(failing): fake failure")
        #expect(!run.stdout.contains("job ran"), "\(run)")
        #expect(setup.tools.calls(of: "jobstat").isEmpty, "\(setup.tools.calls)")
        #expect(run.finalAd == nil)
        if asRoot {
            // cg-exec made the job's cgroup before netacct failed: it is still removed.
            #expect(setup.tools.calls.last == "cg-exec uid=0 errfile= [--remove]", "\(setup.tools.calls)")
        }
    }

    @Test("a failure after the job (jobstat) is reported on stderr only: the finished job is not requeued", arguments: [false, true])
    func failureAfterJob(asRoot: Bool) throws {
        let setup = try Setup()
        defer { setup.remove() }
        let run = try setup.run(asRoot ? ["--wrapper-as-root"] : [], env: ["FAKE_TOOL_FAIL=jobstat", "JOB_STATUS=4"])
        #expect(run.status == 4, "\(run)")
        #expect(run.errorFile == nil, "\(run)")
        #expect(run.stderr.contains("jobbox-wrapper: after the job: jobstat"), "\(run)")
        #expect(run.finalAd == nil)
    }

    @Test("the wrapper's own failures: one line of its own in the error file, status 125, the job not run")
    func ownFailures() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let noArguments = try setup.run(env: ["_CONDOR_JOB_AD="])
        #expect(noArguments.status == 125, "\(noArguments)")
        #expect(noArguments.errorFile == "jobbox-wrapper: not started by an HTCondor starter: $_CONDOR_JOB_AD is not set\n", "\(noArguments)")

        let noTools = try ContractRun.run(
            ["--execute", setup.execute.path, "--user", setup.user.name, "--env", "JOBBOX_BIN=/nonexistent"], job: [setup.job], jobbox: setup.jobbox)
        #expect(noTools.status == 125)
        #expect(noTools.errorFile == "jobbox-wrapper: cg-exec not found in /nonexistent (set JOBBOX_BIN)\n", "\(noTools)")

        let noScratch = try setup.run(["--wrapper-as-root"], env: ["_CONDOR_SCRATCH_DIR=/nonexistent"])
        #expect(noScratch.status == 125)
        #expect(noScratch.errorFile == "jobbox-wrapper: no scratch directory: $_CONDOR_SCRATCH_DIR is not set or not a directory\n", "\(noScratch)")
        // The root-run wrapper wrote its line as the scratch dir's owner, not as root.
        var info = stat()
        #expect(stat(noScratch.scratch + "/.job_wrapper_failure", &info) == 0 && info.st_uid == setup.user.uid)

        for run in [noArguments, noTools, noScratch] {
            #expect(!run.stdout.contains("job ran"), "\(run)")
            #expect(run.errorFile?.filter { $0 == "\n" }.count == 1)
        }
        #expect(setup.tools.calls.isEmpty, "no tool may run when the wrapper fails first: \(setup.tools.calls)")
    }

    @Test("signals the starter sends to the wrapper reach the job, which starts with default INT and QUIT handling", arguments: [false, true])
    func signalForwarding(asRoot: Bool) throws {
        let setup = try Setup()
        defer { setup.remove() }
        // The fake tools exec, so the wrapper is the job's parent: the job signals it as the starter would.
        // SigIgn bits 1 and 2 are INT and QUIT, which a shell's asynchronous command would have ignored.
        let job = try setup.execute.script(
            "signalled.sh",
            """
            #!/bin/sh
            trap 'echo "job got TERM"; exit 143' TERM
            ignored=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status)
            echo "INT and QUIT ignored: $(( 0x$ignored & 6 ))"
            kill -TERM $PPID
            i=0
            while [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
            echo "no signal arrived"
            """)
        let run = try ContractRun.run(
            [
                "--execute", setup.execute.path, "--user", setup.user.name, "--env", "JOBBOX_BIN=\(setup.tools.directory)",
                "--env", "FAKE_TOOL_LOG=\(setup.tools.log)",
            ] + (asRoot ? ["--wrapper-as-root"] : []), job: [job], jobbox: setup.jobbox)
        #expect(run.stdout == "INT and QUIT ignored: 0\njob got TERM\n", "\(run)")
        #expect(run.status == 143, "\(run)")
    }
}
