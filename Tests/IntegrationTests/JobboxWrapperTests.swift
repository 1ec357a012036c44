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

    @Test("as the job's user: ns-exec --userns --pid --mount around the job, then jobstat --self; the job's status")
    func unprivilegedChain() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let run = try setup.run(["--cluster", "31", "--proc", "4"], env: ["JOB_STATUS=3"])

        #expect(run.status == 3, "\(run)")
        #expect(run.stdout == "job ran as \(setup.user.name) with: one two words\n", "\(run)")
        #expect(run.errorFile == nil, "\(run)")
        let ns = setup.tools.calls(of: "ns-exec")
        #expect(
            ns == ["ns-exec uid=\(setup.user.uid) errfile=set [--userns] [--pid] [--mount] [--scratch] [\(run.scratch)] [--] [\(setup.job)] [one] [two words]"],
            "\(setup.tools.calls)")
        if Integration.isUnifiedCgroupNode {
            // Only with a delegated slice, which the emulation makes when asked (--cgroup); not asked here.
            #expect(setup.tools.calls(of: "cg-exec").isEmpty)
        } else {
            #expect(setup.tools.calls(of: "cg-exec").isEmpty, "no cgroup v2 delegation on this node: \(setup.tools.calls)")
            #expect(run.stderr.contains("jobbox-wrapper: not a cgroup v2 node"), "\(run)")
        }
        // After the job: figures without the error file, so a failure there cannot requeue a finished job.
        #expect(setup.tools.calls(of: "jobstat") == ["jobstat uid=\(setup.user.uid) errfile= [--self]"], "\(setup.tools.calls)")
        #expect(setup.tools.calls(of: "netacct").isEmpty, "netacct needs root: \(setup.tools.calls)")
        // Without a cgroup of its own (no --cgroup here) every figure of jobstat --self would be the starter's.
        #expect(run.finalAd == "", "\(run)")
    }

    @Test(
        "as the job's user in the starter's v1 cgroups: only the figures of the job's own hierarchies are kept, and not chirped",
        .enabled(if: !Integration.isUnifiedCgroupNode, "a cgroup v1 or hybrid node"))
    func unprivilegedFiguresOnV1() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let config = try setup.execute.write("chirp.config", "127.0.0.1 9 cookie\n")
        let run = try setup.run(["--cgroup", TestSupport.uniqueName("jbxstarter"), "--chirp-config", config])
        #expect(run.status == 0, "\(run)")
        // HTCondor's v1 starter makes memory, cpu, cpuacct and freezer cgroups; block I/O, pids and PSI are the starter's.
        #expect(run.finalAd == "MemoryPeakKb = 100\nRemoteUserCpu = 1.5\n", "\(run)")
        #expect(setup.tools.calls(of: "jobstat") == ["jobstat uid=\(setup.user.uid) errfile= [--self]"], "\(setup.tools.calls)")
        #expect(run.stderr.contains("jobbox-wrapper: figures not chirped: the job has no cgroup of its own for "), "\(run)")
    }

    @Test("as root: cg-exec with RequestMemory and RequestCpus -> netacct -> ns-exec --user Owner -> job; then jobstat, cg-exec --remove")
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
        #expect(
            chain == [
                "cg-exec uid=0 errfile=set [--job] [7.3] [--memory] [256M] [--cpus] [2] [--] [\(setup.tools.directory)/netacct] [--job] [7.3] [--ad-file] [PRIVATE/network.ad] [--] [\(setup.tools.directory)/ns-exec] [--pid] [--mount] [--scratch] [\(run.scratch)] [--user] [\(setup.user.name)] \(rest)",
                "netacct uid=0 errfile=set [--job] [7.3] [--ad-file] [PRIVATE/network.ad] [--] [\(setup.tools.directory)/ns-exec] [--pid] [--mount] [--scratch] [\(run.scratch)] [--user] [\(setup.user.name)] \(rest)",
                "ns-exec uid=0 errfile=set [--pid] [--mount] [--scratch] [\(run.scratch)] [--user] [\(setup.user.name)] \(rest)",
            ])
        #expect(Array(calls.suffix(2)) == ["jobstat uid=0 errfile= [--job] [7.3]", "cg-exec uid=0 errfile= [--remove] [--job] [7.3]"])
        // jobstat's ad and netacct's final ad become one, written into the scratch dir as the job's user.
        #expect(
            run.finalAd == "MemoryPeakKb = 100\nRemoteUserCpu = 1.5\nBlockReadBytes = 7\nNumPids = 1\nCpuPressureSomeAvg10 = 0.5\nNetworkOutgoing = 42\n",
            "\(run)")
        var info = stat()
        #expect(stat(run.scratch + "/.jobbox/job.ad", &info) == 0 && info.st_uid == setup.user.uid)
        #expect(run.errorFile == nil, "\(run)")
        // The private directory the wrapper used as root is gone.
        let privateDir = calls.first.flatMap { $0.range(of: #"/run/jobbox-wrapper\.[A-Za-z0-9]+"#, options: .regularExpression).map { String(calls[0][$0]) } }
        #expect(privateDir != nil && !FileManager.default.fileExists(atPath: privateDir ?? "/"), "\(calls)")
    }

    @Test("as root: RequestedChroot becomes ns-exec --chroot; as the job's user it is a one-line wrapper failure")
    func requestedChroot() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let root = try setup.run(["--wrapper-as-root", "--job-attr", "RequestedChroot = \"EL9\""])
        #expect(root.status == 0, "\(root)")
        #expect(setup.tools.calls(of: "ns-exec").first?.contains("[--chroot] [EL9] [--user]") == true, "\(setup.tools.calls)")

        let user = try setup.run(["--job-attr", "RequestedChroot = \"EL9\""])
        #expect(user.status == 125)
        #expect(
            user.errorFile == "jobbox-wrapper: RequestedChroot \"EL9\" needs the privileged chain, but the wrapper runs as uid \(setup.user.uid)\n", "\(user)")
        #expect(!user.stdout.contains("job ran"), "\(user)")
        #expect(user.requeue?.hasPrefix("The job wrapper failed to execute the job: jobbox-wrapper: RequestedChroot") == true)
    }

    @Test("an expression for RequestMemory (HTCondor's default) falls back to the slot's Memory")
    func memoryFromSlot() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let run = try setup.run([
            "--wrapper-as-root", "--request-memory", "512", "--request-cpus", "4",
            "--job-attr", "RequestMemory = ifthenelse(MemoryUsage =!= undefined, MemoryUsage * 3 / 2, 128)",
        ])
        #expect(run.status == 0, "\(run)")
        #expect(setup.tools.calls(of: "cg-exec").first?.contains("[--job] [1.0] [--memory] [512M] [--cpus] [4] [--]") == true, "\(setup.tools.calls)")
    }

    @Test("with a chirp proxy the figures are pushed: --chirp with +WantIOProxy, else --chirp-delayed")
    func chirp() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let config = try setup.execute.write("chirp.config", "127.0.0.1 9 cookie\n")
        // As the job's user, --self figures are chirped only where the job has cgroups of its own in every
        // hierarchy (unprivilegedFiguresOnV1 covers the other case).
        if Integration.isUnifiedCgroupNode {
            let user = try setup.run(["--cgroup", TestSupport.uniqueName("jbxstarter"), "--chirp-config", config])
            #expect(user.status == 0, "\(user)")
            #expect(setup.tools.calls(of: "jobstat").last?.hasSuffix("[--chirp]") == true, "\(setup.tools.calls)")
        }

        // Without +WantIOProxy the starter refuses set_job_attr and takes only set_job_attr_delayed.
        let earlier = setup.tools.calls.count
        let delayed = try setup.run(["--wrapper-as-root", "--chirp-config", config, "--job-attr", "WantIOProxy = false"])
        #expect(delayed.status == 0, "\(delayed)")
        let delayedCalls = Array(setup.tools.calls.dropFirst(earlier))
        #expect(delayedCalls.allSatisfy { !$0.contains("[--chirp]") }, "\(delayedCalls)")
        #expect(delayedCalls.filter { $0.contains("[--chirp-delayed]") }.count == 3, "cg-exec passes netacct's on, netacct, jobstat: \(delayedCalls)")

        let root = try setup.run(["--wrapper-as-root", "--chirp-config", config])
        #expect(root.status == 0, "\(root)")
        #expect(setup.tools.calls(of: "netacct").last?.contains("[--chirp] [--]") == true, "\(setup.tools.calls)")
        #expect(setup.tools.calls(of: "jobstat").last == "jobstat uid=0 errfile= [--job] [1.0] [--chirp]", "\(setup.tools.calls)")
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
            #expect(setup.tools.calls.last == "cg-exec uid=0 errfile= [--remove] [--job] [1.0]", "\(setup.tools.calls)")
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

    @Test("as root, a tool's line while the job runs to its own status is no requeue reason: stderr only")
    func toolComplaintAfterJob() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let run = try setup.run(["--wrapper-as-root"], env: ["FAKE_TOOL_COMPLAIN=netacct", "JOB_STATUS=5"])
        #expect(run.status == 5, "\(run)")
        #expect(run.errorFile == nil, "\(run)")
        #expect(run.stderr.contains("netacct: fake complaint") && run.stderr.contains("jobbox-wrapper: after the job: a tool failed"), "\(run)")
        #expect(run.finalAd != nil, "the figures are still gathered: \(run)")
    }

    @Test("the wrapper's own failures: one line of its own in the error file, status 125, the job not run")
    func ownFailures() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let noIds = try setup.run(["--omit-job-attr", "ProcId"])
        #expect(noIds.status == 125, "\(noIds)")
        #expect(
            noIds.errorFile == "jobbox-wrapper: cannot derive the job id from \(noIds.scratch)/.job.ad: it has no integer ClusterId and ProcId\n", "\(noIds)")

        let noTools = try ContractRun.run(
            ["--execute", setup.execute.path, "--user", setup.user.name, "--env", "JOBBOX_BIN=/nonexistent"], job: [setup.job], jobbox: setup.jobbox)
        #expect(noTools.status == 125)
        #expect(noTools.errorFile == "jobbox-wrapper: ns-exec not found: /nonexistent/ns-exec is not executable (JOBBOX_BIN)\n", "\(noTools)")

        let noOwner = try setup.run(["--wrapper-as-root", "--omit-job-attr", "Owner"])
        #expect(noOwner.status == 125)
        #expect(noOwner.errorFile == "jobbox-wrapper: cannot run the job as its owner: \(noOwner.scratch)/.job.ad has no Owner string\n", "\(noOwner)")
        // The root-run wrapper wrote its line as the scratch dir's owner, not as root.
        var info = stat()
        #expect(stat(noOwner.scratch + "/.job_wrapper_failure", &info) == 0 && info.st_uid == setup.user.uid)

        for run in [noIds, noTools, noOwner] {
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
