import CLinux
import Foundation
import JobboxCore

/// Sends a signal to a tool at a chosen point of its set-up: under strace, whose fault injection holds the first
/// call of some system calls for 10 seconds on its way back (`delay_exit`), so the signal arrives exactly
/// while the tool sits in that call. strace's record of the tool says how it ended, which a wait status seen
/// through strace cannot (strace ends by the signal that killed its tracee, so 143 would look the same).
package enum SetUpSignalProbe {
    /// How the tool ended, as strace recorded it, and what the run printed.
    package struct Ending: CustomStringConvertible {
        /// `exited with N` or `killed by SIGNAME`.
        package let ending: String
        /// The tool's stderr.
        package let stderr: String
        /// strace's whole record (for messages).
        package let trace: String
        /// Whether the tool was still held in the call right after the signal went out (else the test's timing,
        /// not the tool, decided the outcome).
        package let heldWhenSignalled: Bool
        package var description: String { "\(ending) (held when signalled: \(heldWhenSignalled))\nstderr: \(stderr)\ntrace:\n\(trace)" }
    }

    /// Runs `arguments` (a tool name resolves to the built tool), holds its first call of any of `syscalls`
    /// (comma-separated, strace's names), sends `signal` while the tool is held there and returns how it ended.
    package static func signal(_ signal: Int32, duringFirst syscalls: String, of arguments: [String], environment: [String: String]? = nil) throws -> Ending {
        let directory = try TestSupport.TemporaryDirectory("jobbox-setup-signal")
        defer { directory.remove() }
        let record = directory.path + "/trace"
        var tool = arguments
        if ["cg-exec", "ns-exec", "netacct", "chroot-tool", "jobstat"].contains(tool[0]) { tool[0] = TestSupport.tool(tool[0]) }
        // Only the first process (-f is off): the tool itself, whose set-up is the thing held.
        let strace = [
            "strace", "-o", record, "--seccomp-bpf", "-e", "trace=" + syscalls, "-e", "inject=\(syscalls):delay_exit=10000000:when=1",
        ]
        var errors: [Int32] = [-1, -1]
        guard jb_pipe2(&errors, O_CLOEXEC) == 0 else { throw TestFailure("pipe2: \(errno)") }
        let pid: pid_t
        do {
            pid = try Spawn.start(strace + tool, environment: environment, stderr: errors[1])
        } catch {
            close(errors[0])
            close(errors[1])
            throw error
        }
        close(errors[1])
        // strace writes the held call's line (ending in "(DELAYED)") before it holds the call.
        let held = NsExecTestSupport.eventually {
            ((try? String(contentsOfFile: record, encoding: .utf8)) ?? "").contains("(DELAYED)")
        }
        let tracee = held ? firstChild(of: pid) : nil
        var heldWhenSignalled = false
        if let tracee {
            kill(tracee, signal)
            // In the held call the tool sits in a tracing stop ("t") until the delay ends.
            heldWhenSignalled = ProcessStat.read(pid: tracee)?.state == "t"
        } else {
            kill(pid, SIGKILL)
        }
        let stderr = readAll(errors[0])
        close(errors[0])
        Spawn.wait(pid)
        let trace = (try? String(contentsOfFile: record, encoding: .utf8)) ?? ""
        guard tracee != nil else { throw TestFailure("strace never held \(syscalls) of \(arguments[0]): \(trace)\n\(stderr)") }
        let last = trace.split(separator: "\n").last { $0.contains("+++") }.map(String.init) ?? ""
        let ending = last.components(separatedBy: "+++").dropFirst().first?.trimmingCharacters(in: .whitespaces) ?? "no ending in the record"
        return Ending(ending: ending, stderr: stderr, trace: trace, heldWhenSignalled: heldWhenSignalled)
    }

    /// The launcher execs strace, which starts the tool as its one child.
    private static func firstChild(of pid: pid_t) -> pid_t? {
        let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return children.split(separator: " ").first.flatMap { pid_t($0) }
    }

    private static func readAll(_ fd: Int32) -> String {
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &chunk, chunk.count)
            if count > 0 {
                data.append(contentsOf: chunk[0..<count])
            } else if count == 0 || errno != EINTR {
                break
            }
        }
        return String(decoding: data, as: UTF8.self)
    }
}
