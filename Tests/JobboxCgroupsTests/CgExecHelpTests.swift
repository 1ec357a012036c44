import Foundation
import JobboxTestSupport
import Testing

@Suite("cg-exec --help and man page")
struct CgExecHelpTests {
    @Test("--help shows cg-exec(1)'s interface and the v1/v2 file of every limit")
    func help() throws {
        let result = try TestSupport.run(["cg-exec", "--help"])
        #expect(result.status == 0)
        let usage = """
            USAGE: cg-exec [--job ID] [--parent PATH|self] [--base NAME] [limits] -- COMMAND [ARG...]
                   cg-exec --delegate-to USER [--job ID] [limits]
                   cg-exec --join [--job ID] -- COMMAND [ARG...]
                   cg-exec --remove [--job ID] [--timeout S]
                   cg-exec --list
            """
        #expect(result.stdout.contains(usage), "\(result.stdout)")
        for row in [
            "--memory          memory.limit_in_bytes             memory.max",
            "--memory-high     (an error: v1 has none)           memory.high",
            "--cpus N          cpu.shares = 1024*N               cpu.weight = 100*N",
            "(always)          -                                 memory.oom.group = 1",
        ] {
            #expect(result.stdout.contains(row), "\(row)")
        }
    }
}
