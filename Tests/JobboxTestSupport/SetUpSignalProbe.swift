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
        let errorFile = directory.path + "/stderr"
        // Only the first process (-f is off): the tool itself, whose set-up is the thing held.
        let strace = [
            "strace", "-o", record, "--seccomp-bpf", "-e", "trace=" + syscalls, "-e", "inject=\(syscalls):delay_exit=10000000:when=1",
        ]
        // stderr to a file, read once the tool is gone.
        let errors = open(errorFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard errors >= 0 else { throw TestFailure("cannot open \(errorFile): errno \(errno)") }
        defer { close(errors) }
        let pid = try Spawn.start(strace + TestSupport.resolvingTool(arguments), environment: environment, stderr: errors)
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
        Spawn.wait(pid)
        let stderr = (try? String(contentsOfFile: errorFile, encoding: .utf8)) ?? ""
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
}
