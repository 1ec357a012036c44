import Foundation
import JobboxCore
import Synchronization
import Testing

/// ChildProcess from many threads at once, as the tests (and any threaded caller) use it.
@Suite("child processes")
struct ChildProcessTests {
    /// The device and inode `fd` refers to.
    private static func identity(_ fd: Int32) -> [UInt64] {
        var status = stat()
        guard fstat(fd, &status) == 0 else { return [] }
        return [UInt64(status.st_dev), UInt64(status.st_ino)]
    }

    @Test("children started from many threads at once each get their own output, and this process's stdio stays its own")
    func concurrentChildren() {
        let before = (0...2).map(Self.identity)
        let mismatches = Mutex([String]())
        DispatchQueue.concurrentPerform(iterations: 16) { thread in
            for round in 0..<15 {
                let tag = "\(thread)-\(round)"
                let captured = try? ChildProcess.run(["/bin/echo", "out-\(tag)"], environment: [:], output: .capture)
                if captured?.output != "out-\(tag)\n" { mismatches.withLock { $0.append("capture \(tag): \(String(describing: captured?.output))") } }
                let tail = try? ChildProcess.run(["/bin/sh", "-c", "echo out-\(tag); echo err-\(tag) >&2"], environment: [:], output: .tail(lines: 5))
                if tail?.output != "out-\(tag)\nerr-\(tag)\n" { mismatches.withLock { $0.append("tail \(tag): \(String(describing: tail?.output))") } }
            }
        }
        #expect(mismatches.withLock { $0 } == [])
        #expect((0...2).map(Self.identity) == before)
    }
}
