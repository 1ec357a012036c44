import Foundation
import JobboxTestSupport
import Testing

/// The shell scripts sites copy (examples/) and the test harnesses: they must pass shellcheck, so quoting and
/// portability mistakes are caught before a batch system runs them.
@Suite("Example scripts")
struct ExampleScriptsTests {
    static let scripts = [
        "examples/htcondor/jobbox-wrapper.sh",
        "examples/slurm/jobbox-prolog.sh",
        "examples/slurm/jobbox-epilog.sh",
        "examples/slurm/jobbox-job.sh",
        "Tests/integration/htcondor-contract.sh",
        "Tests/integration/slurm-ci.sh",
        "Tests/Fixtures/integration/fake-tool.sh",
        "scripts/vm/checks/htcondor-wrapper.sh",
    ]

    @Test(
        "shellcheck finds nothing",
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/shellcheck"), "shellcheck is not installed (scripts/deps/integration.txt)"),
        arguments: scripts)
    func shellcheck(script: String) throws {
        // As make lint-shell runs it: from the repository's root, following what a script sources (`-x`), so
        // a `# shellcheck source=` path resolves and the variables a sourced file sets are known.
        let result = try Spawn.run(["/bin/sh", "-c", "cd \"$0\" && exec /usr/bin/shellcheck -x \"$1\"", TestSupport.repositoryRoot, script])
        #expect(result.status == 0, "\(result.stdout)")
    }

    @Test("is executable", arguments: scripts)
    func executable(script: String) {
        #expect(FileManager.default.isExecutableFile(atPath: TestSupport.repositoryRoot + "/" + script))
    }
}
