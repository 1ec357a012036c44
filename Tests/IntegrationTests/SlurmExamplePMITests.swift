import Foundation
import JobboxTestSupport
import Testing

/// examples/slurm/jobbox-job.sh and Slurm's PMI-1 descriptor: ns-exec closes the descriptors it is not told to
/// keep whenever it changes the job's user or root, so the batch script names `$PMI_FD` with `--keep-fd`.
@Suite("Example scripts: Slurm PMI_FD")
struct SlurmExamplePMITests {
    /// Runs jobbox-job.sh with a stand-in ns-exec (and jobstat) that prints its arguments and whether descriptor
    /// `fd` is open, as if Slurm had started it with `environment` (no prolog ran, or one did: `prolog`).
    static func run(pmiFD: String?, open fd: Int, prolog: Bool) throws -> TestSupport.Result {
        let dir = try TestSupport.TemporaryDirectory("jobbox-pmi")
        defer { dir.remove() }
        try dir.write("bin/ns-exec", "#!/bin/sh\nprintf '%s\\n' \"$@\"\nif [ -e /proc/self/fd/\(fd) ]; then echo fd-open; fi\n")
        try dir.write("bin/jobstat", "#!/bin/sh\necho 'NumPids = 1'\n")
        // cg-exec --join ... -- COMMAND: runs COMMAND.
        try dir.write("bin/cg-exec", "#!/bin/sh\nwhile [ \"$1\" != -- ]; do shift; done\nshift\nexec \"$@\"\n")
        for tool in ["ns-exec", "jobstat", "cg-exec"] { chmod(dir.path + "/bin/" + tool, 0o755) }
        if prolog {
            try FileManager.default.createDirectory(atPath: dir.path + "/slurm/jobs/77", withIntermediateDirectories: true)
        }
        var environment = ["PATH": "/usr/bin:/bin", "JOBBOX_BIN": dir.path + "/bin", "JOBBOX_SLURM_DIR": dir.path + "/slurm", "SLURM_JOB_ID": "77"]
        environment["PMI_FD"] = pmiFD
        environment["JOBBOX_AD_FILE"] = dir.path + "/job.ad"
        let script = TestSupport.repositoryRoot + "/examples/slurm/jobbox-job.sh"
        return try TestSupport.run(["/bin/bash", "-c", "exec \(fd)</dev/null; exec \"$0\" ./job arg", script], environment: environment)
    }

    @Test("with PMI_FD set, ns-exec gets --keep-fd PMI_FD and the descriptor is still open for it", arguments: [false, true])
    func keepsPMIFD(prolog: Bool) throws {
        let result = try Self.run(pmiFD: "7", open: 7, prolog: prolog)
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let keep = try #require(lines.firstIndex(of: "--keep-fd"), "\(result)")
        #expect(lines[keep + 1] == "7")
        #expect(lines.last == "fd-open")
        #expect(Array(lines.suffix(4).prefix(3)) == ["--", "./job", "arg"])
    }

    @Test("without PMI_FD there is no --keep-fd; a PMI_FD that is no number is one line and 125")
    func noPMIFD() throws {
        let plain = try Self.run(pmiFD: nil, open: 7, prolog: true)
        #expect(plain.status == 0, "\(plain)")
        #expect(!plain.stdout.contains("--keep-fd"))
        let bad = try Self.run(pmiFD: "7;rm", open: 7, prolog: false)
        #expect(bad.status == 125)
        #expect(bad.stderr == "jobbox-job: PMI_FD '7;rm' is not a descriptor number\n")
    }
}
