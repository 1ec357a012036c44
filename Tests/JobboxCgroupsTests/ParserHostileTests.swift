import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore

/// Findings 6 and 10 of issue #12: what a job (or a user) writes is read as bounded input, and as root no job-
/// writable file names a job. Each test is an attack that worked on main before the fix.
@Suite("Hostile: parsers and the job's identity")
struct ParserHostileTests {
    /// A config where each knob doubles the one before: 2^26 bytes by the last line before the fix.
    static let doublingConfig: String = {
        var text = "A0 = x\n"
        for n in 1...26 { text += "A\(n) = $(A\(n - 1))$(A\(n - 1))\n" }
        return text
    }()

    @Test("a $(A) chain that doubles is one line and 125, not gigabytes")
    func configExpansionBounded() throws {
        let dir = try TestSupport.TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("jobbox.conf", Self.doublingConfig)
        let result = try TestSupport.run(["jobstat", "--config", dir.path + "/jobbox.conf", "--job", "1.0"])
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr == "jobstat: bad configuration \(dir.path)/jobbox.conf:18: A17: the value expands to more than 65536 bytes\n", "\(result)")
    }

    @Test("many values just under the limit together are refused too")
    func configTotalBounded() throws {
        var text = "A0 = " + String(repeating: "y", count: 60_000) + "\n"
        for n in 1...20 { text += "B\(n) = $(A0)\n" }
        #expect(throws: JobboxError.invalid("bad configuration", "/x.conf:18", "B17: the values expand to more than 1048576 bytes in all")) {
            try JobboxConfig.parse(text, path: "/x.conf")
        }
    }

    @Test(
        "configuration errors name the line, never the text of the file",
        arguments: [
            "root:$y$j9T$secretsecret:19000:0:99999:7:::",
            "sec ret = value",
            "BASE_CGROUP = ../secret",
            "NAMED_CHROOT = secret",
            "NETWORK_BACKEND = secret",
        ])
    func configErrorsQuoteNothing(line: String) throws {
        let dir = try TestSupport.TemporaryDirectory()
        defer { dir.remove() }
        try dir.write("private.conf", "# comment\n\(line)\n")
        chmod(dir.path + "/private.conf", 0o600)
        let result = try TestSupport.run(["jobstat", "--config", dir.path + "/private.conf", "--job", "1.0"])
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr.hasPrefix("jobstat: bad configuration \(dir.path)/private.conf:2: "), "\(result)")
        #expect(!result.stderr.contains("secret"), "\(result)")
    }

    @Test("a configuration that is not a regular file is refused, not read until memory runs out", arguments: ["/dev/zero", "/dev/null"])
    func configNotRegular(path: String) throws {
        let result = try TestSupport.run(["/usr/bin/prlimit", "--as=2147483648", "--", TestSupport.tool("jobstat"), "--config", path, "--job", "1.0"])
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr == "jobstat: cannot read configuration \(path): it is not a regular file\n", "\(result)")
    }

    @Test("$_CONDOR_JOB_AD=/dev/zero is one line and 125, not a read until memory runs out")
    func jobAdDevZero() throws {
        var environment = ProcessInfo.processInfo.environment
        environment["_CONDOR_JOB_AD"] = "/dev/zero"
        environment["SLURM_JOB_ID"] = nil
        let result = try TestSupport.run(["/usr/bin/prlimit", "--as=2147483648", "--", TestSupport.tool("jobstat")], environment: environment)
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr == "jobstat: cannot derive job id from /dev/zero: it is not a regular file\n", "\(result)")
    }

    @Test("a job ad larger than the limit, or with more attributes than the limit, is refused")
    func jobAdBounded() throws {
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        var many = "ClusterId = 1\nProcId = 0\n"
        for n in 0..<40_000 { many += "Attr\(n) = \(n)\n" }
        let manyPath = try dir.write("many.ad", many)
        #expect(throws: JobboxError.invalid("cannot derive job id from", manyPath, "it has more than 10000 attributes")) {
            try JobID.resolve(option: nil, environment: Environment(["_CONDOR_JOB_AD": manyPath]))
        }
        let bigPath = try dir.write("big.ad", "ClusterId = 1\nProcId = 0\nPad = \"" + String(repeating: "p", count: 1_100_000) + "\"\n")
        #expect(throws: JobboxError.invalid("cannot derive job id from", bigPath, "it is larger than 1M")) {
            try JobID.resolve(option: nil, environment: Environment(["_CONDOR_JOB_AD": bigPath]))
        }
    }

    @Test("a CRLF job ad gives its job id")
    func jobAdCRLF() throws {
        let dir = try ExecuteDirectory()
        defer { dir.remove() }
        let path = try dir.write("crlf.ad", "MyType = \"Job\"\r\nClusterId = 77\r\nProcId = 3\r\nOwner = \"bob\"\r\n")
        #expect(try JobID.resolve(option: nil, environment: Environment(["_CONDOR_JOB_AD": path])).rawValue == "77.3")
        #expect(ClassAdReader.parse("A = 1\r\nB = \"x\"\r\n") == ClassAdReader.parse("A = 1\nB = \"x\"\n"))
        #expect(try ConfigFile.parse("A = 1\r\nB = $(A)2\r\n", path: "x").map(\.value) == ["1", "12"])
    }

    @Test("job ids may not start with '-' (they would read as options)", arguments: ["-x", "--remove", "-1.0"])
    func dashIds(text: String) throws {
        #expect(throws: JobboxError.self) { try JobID(text) }
        let result = try TestSupport.run(["jobstat", "--job=\(text)"])
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr == "jobstat: invalid job id '\(text)': it starts with '-'\n", "\(result)")
    }
}

/// Finding 6: as root, a job ad the job can write names no job.
@Suite("Hostile: the job ad as root", .serialized, .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct JobAdAsRootHostileTests {
    @Test("a root cg-exec --remove without --job does not believe a job-writable ad naming another job: that job lives")
    func removeOtherJob() throws {
        let sandbox = try CgExecSandbox()
        let user = try TestUser()
        let execute = try ExecuteDirectory()
        defer {
            sandbox.cleanUp()
            user.remove()
            execute.remove()
        }
        // The victim: another job, running.
        #expect(try sandbox.run(["--job", "4242.0", "--"] + CgExecSandbox.leavingBackground("sleep 1000 </dev/null >/dev/null 2>&1 &")).status == 0)
        try sandbox.wait("the victim's sleep") { try sandbox.pids("memory", "4242.0").count == 1 }
        let victim = try #require(try sandbox.pids("memory", "4242.0").first)
        // The attacker's scratch dir, with an ad it rewrote after its job started.
        let scratch = try Hostile.jobWritableDirectory(in: execute.path, uid: user.uid, gid: user.gid)
        try Self.write("ClusterId = 4242\\nProcId = 0\\n", to: scratch + "/.job.ad", as: user)
        var environment = ProcessInfo.processInfo.environment
        environment["_CONDOR_JOB_AD"] = scratch + "/.job.ad"
        environment["SLURM_JOB_ID"] = nil
        let result = try sandbox.run(["--remove"], environment: environment)
        #expect(result.status == 125, "\(result)")
        #expect(
            result.stderr
                == "cg-exec: cannot derive job id from \(scratch)/.job.ad: it lies in a directory the job can write, so root does not believe it; pass --job ID\n",
            "\(result)")
        #expect(FileManager.default.fileExists(atPath: try sandbox.jobDirectory("memory", "4242.0")))
        #expect(!CgExecSandbox.isDead(victim), "the other job's process was killed")
        // jobstat and --from-job-ad take nothing from it either.
        let stat = try TestSupport.run(["jobstat", "--config", sandbox.configPath], environment: environment)
        #expect(stat.status == 125 && stat.stderr.contains("so root does not believe it; pass --job ID"), "\(stat)")
        let limits = try sandbox.run(["--job", "own", "--from-job-ad", "--", "true"], environment: environment)
        #expect(limits.status == 125 && limits.stderr.contains("so root does not believe it; pass --memory and --cpus"), "\(limits)")
    }

    /// Writes `text` (printf's format) to `file` as the job's `user`, as a job rewriting its ads would.
    static func write(_ text: String, to file: String, as user: TestUser) throws {
        let rewrite = try TestSupport.run([
            "/usr/bin/setpriv", "--reuid", String(user.uid), "--regid", String(user.gid), "--clear-groups", "--",
            "/bin/sh", "-c", "printf '\(text)' > \(file)",
        ])
        #expect(rewrite.status == 0, "\(rewrite)")
    }

    @Test("as root, a machine ad the job can write gives no limits: --from-job-ad refuses it where the job ad leaves a limit to the slot")
    func machineAdInScratch() throws {
        let sandbox = try CgExecSandbox(prefix: "jbicg")
        let user = try TestUser(prefix: "jbi")
        let execute = try ExecuteDirectory("jbi-execute")
        defer {
            sandbox.cleanUp()
            user.remove()
            execute.remove()
        }
        // The job ad is root's; the machine ad lies in the scratch dir, where the job rewrote it to a huge slot.
        let ad = try execute.write(".job.ad", "ClusterId = 4713\nProcId = 0\nRequestMemory = ifThenElse(true, 1, 2)\nRequestCpus = 1\n")
        let scratch = try Hostile.jobWritableDirectory(in: execute.path, uid: user.uid, gid: user.gid)
        try Self.write("Memory = 1048576\\nCpus = 64\\n", to: scratch + "/.machine.ad", as: user)
        var environment = ProcessInfo.processInfo.environment
        environment["_CONDOR_JOB_AD"] = ad
        environment["_CONDOR_MACHINE_AD"] = scratch + "/.machine.ad"
        let result = try sandbox.run(["--from-job-ad", "--", "true"], environment: environment)
        #expect(result.status == 125, "\(result)")
        #expect(
            result.stderr
                == "cg-exec: cannot read machine ad \(scratch)/.machine.ad: it lies in a directory the job can write, so root does not believe it; pass --memory and --cpus\n",
            "\(result)")
        #expect(!FileManager.default.fileExists(atPath: try sandbox.jobDirectory("memory", "4713.0")))
    }

    @Test("as root, a job ad that is a symlink to a file the job cannot read is refused, not followed")
    func symlinkedAd() throws {
        let user = try TestUser()
        let execute = try ExecuteDirectory()
        let secret = try ExecuteDirectory()
        defer {
            user.remove()
            execute.remove()
            secret.remove()
        }
        let target = try secret.write("shadow", "ClusterId = 1\nProcId = 0\nSecret = \"s\"\n", mode: 0o600)
        let scratch = try Hostile.jobWritableDirectory(in: execute.path, uid: user.uid, gid: user.gid)
        try FileManager.default.createSymbolicLink(atPath: scratch + "/.job.ad", withDestinationPath: target)
        #expect(throws: JobboxError.self) {
            try JobAdFile.read(scratch + "/.job.ad", for: "cannot read job ad")
        }
    }
}
