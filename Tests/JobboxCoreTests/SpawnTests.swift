import JobboxTestSupport
import Testing

@Suite("The tests' Spawn")
struct SpawnTests {
    @Test("a child that exits without reading its stdin fails the write, not the whole test run (no SIGPIPE)")
    func stdinNobodyReads() throws {
        // Far more than a pipe holds (64 KiB), so the writes go on after `true` has exited and closed its end.
        let result = try Spawn.run(["/bin/true"], stdin: String(repeating: "x", count: 4 << 20))
        #expect(result.status == 0, "\(result)")
    }
}
