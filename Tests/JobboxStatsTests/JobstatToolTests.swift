import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore
@testable import JobboxStats

/// jobstat's command line: option checks (one line, status 125, nothing read), --help.
@Suite("jobstat command line")
struct JobstatToolTests {
    /// Runs jobstat with a configuration that points at a base no test uses.
    func jobstat(_ arguments: [String], environment extra: [String: String] = [:]) throws -> TestSupport.Result {
        let dir = try TestSupport.TemporaryDirectory("jobstat-cli")
        defer { dir.remove() }
        try dir.write("jobbox.conf", "BASE_CGROUP = \(TestSupport.uniqueName("jbstatcli"))\nCGROUP_PARENT = self\n")
        var environment = ProcessInfo.processInfo.environment
        environment["_CONDOR_JOB_AD"] = nil
        environment["SLURM_JOB_ID"] = nil
        environment.merge(extra) { $1 }
        return try TestSupport.run(["jobstat", "--config", dir.path + "/jobbox.conf"] + arguments, environment: environment)
    }

    @Test(
        "refused option combinations and values: one line, status 125, no output",
        arguments: [
            (["--job", "1", "--all"], "jobstat: invalid options --job --all: give at most one of --job, --cgroup, --pid, --self, --all\n"),
            (["--self", "--pid", "1"], "jobstat: invalid options --pid --self: give at most one of --job, --cgroup, --pid, --self, --all\n"),
            (["--self", "--count", "2"], "jobstat: invalid --count '2': it needs --watch\n"),
            (["--self", "--watch", "0"], "jobstat: invalid --watch '0': it is not a number of seconds between 0 and 86400\n"),
            (["--self", "--watch", "soon"], "jobstat: invalid --watch 'soon': it is not a number of seconds between 0 and 86400\n"),
            (["--self", "--watch", "1", "--count", "0"], "jobstat: invalid --count '0': it is not a positive number\n"),
            (["--pid", "0"], "jobstat: invalid --pid '0': it is not a process id\n"),
            (["--cgroup", "jobbox/job_1"], "jobstat: invalid --cgroup 'jobbox/job_1': it is not an absolute cgroup path without '.' or '..'\n"),
            (["--job", "../../x"], "jobstat: invalid job id '../../x': only letters, digits and _ . @ - are allowed\n"),
            (
                ["--job", "1", "--parent", "up/../there"],
                "jobstat: invalid --parent 'up/../there': it is not /, self, or an absolute cgroup path without '..'\n"
            ),
            ([], "jobstat: no job id: pass --job ID, or run under HTCondor ($_CONDOR_JOB_AD) or Slurm ($SLURM_JOB_ID)\n"),
        ])
    func refused(arguments: [String], message: String) throws {
        let result = try jobstat(arguments)
        #expect(result.status == 125)
        #expect(result.stderr == message)
        #expect(result.stdout.isEmpty)
    }

    @Test("a bad --format is one line and 125")
    func badFormat() throws {
        let result = try jobstat(["--self", "--format", "xml"])
        #expect(result.status == 125)
        #expect(result.stderr.hasPrefix("jobstat: "))
        #expect(result.stderr.filter { $0 == "\n" }.count == 1)
    }

    @Test("the job id comes from the environment: Slurm's, here, names a job that does not exist")
    func environmentJob() throws {
        let result = try jobstat([], environment: ["SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0"])
        #expect(result.status == 125)
        #expect(result.stderr.hasPrefix("jobstat: no cgroup for job 4242.0: "))
        #expect(result.stderr.hasSuffix("/job_4242_0 does not exist\n"))
    }

    @Test("a process that does not exist: 125 naming /proc/PID/cgroup")
    func deadPid() throws {
        let result = try jobstat(["--pid", "2147483646"])
        #expect(result.status == 125)
        #expect(result.stderr == "jobstat: cannot read /proc/2147483646/cgroup: No such file or directory\n")
    }

    @Test("--help shows every option; the man page documents every attribute (ManPageTests checks its options)")
    func help() throws {
        let result = try jobstat(["--help"])
        #expect(result.status == 0)
        for option in [
            "--config", "--job", "--cgroup", "--pid", "--self", "--all", "--parent", "--format", "--watch", "--count", "--raw", "--version", "--help",
        ] {
            #expect(result.stdout.contains(option), "\(option) missing from --help")
        }
        let manual = try String(contentsOfFile: TestSupport.repositoryRoot + "/man/jobstat.1", encoding: .utf8)
        for attribute in JobStatAttributes.all.map(\.name) {
            #expect(manual.contains(attribute), "\(attribute) missing from man/jobstat.1")
        }
    }
}
