import CLinux
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// What happens to a child's output.
package enum ChildOutput: Sendable, Equatable {
    /// stdout and stderr go, line by line, to our stderr after `prefix`.
    case stream(prefix: String)
    /// stdout and stderr are not shown; the last `lines` lines are kept for an error report.
    case tail(lines: Int)
    /// stdout is collected and returned; stderr is ours.
    case capture
}

/// How a child ended.
package struct ChildResult: Sendable {
    /// The shell's view of its status: the exit code, or 128+N when signal N killed it.
    package let status: Int32
    /// The collected stdout (`capture`) or the last lines (`tail`); empty for `stream`.
    package let output: String
}

/// Runs a program (a backend, rpm, chroot, getent): forked and exec'd by the C shim, so no Swift runs in the
/// child. The child's stdin, stdout and stderr are placed in the child, never by pointing this process's own
/// 0-2 at them around the fork: a threaded caller (the tests run tools' code from many threads) would hand
/// one child another's pipe and leave its own stdout on a pipe that closes (seen: a lookup got another test's
/// user, and the test run died of SIGPIPE).
///
/// The child leads its own process group, so an interruption reaches everything it started (debootstrap's
/// dpkg runs) and stragglers are killed once it exits; it gets SIGKILL if chroot-tool itself dies, so a killed
/// build never keeps writing into a directory the next build removes.
package enum ChildProcess {
    /// Runs `arguments` (the first is searched in PATH) with `environment` and returns how it ended.
    package static func run(_ arguments: [String], environment: [String: String], output: ChildOutput) throws(JobboxError) -> ChildResult {
        try start(arguments, environment: environment, output: output).finish()
    }

    /// Starts `arguments` (the first is searched in PATH) with `environment`; `finish` collects it. Several may
    /// run at once (`UserDatabase` asks two questions of getent in parallel): a child whose output fills its
    /// pipe before it is collected waits for its turn.
    package static func start(_ arguments: [String], environment: [String: String], output: ChildOutput) throws(JobboxError) -> RunningChild {
        var outputPipe: [Int32] = [-1, -1]
        guard jb_pipe2(&outputPipe, O_CLOEXEC) == 0 else { throw JobboxError.lastErrno("cannot create a pipe for", arguments[0]) }
        var goPipe: [Int32] = [-1, -1]
        guard jb_pipe2(&goPipe, O_CLOEXEC) == 0 else {
            let error = Errno.last
            close(outputPipe[0])
            close(outputPipe[1])
            throw JobboxError.system("cannot create a pipe for", arguments[0], error)
        }
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer {
            if devNull >= 0 { close(devNull) }
        }

        var options = jb_spawn_options()
        options.unshare_flags = 0
        options.ready_fd = -1
        options.go_fd = goPipe[0]
        options.death_signal = SIGKILL
        options.close_fds = (outputPipe[0], goPipe[1], -1, -1)
        options.flags = (devNull >= 0 ? JB_SPAWN_STDIN : 0) | JB_SPAWN_STDOUT | (output == .capture ? 0 : JB_SPAWN_STDERR)
        options.stdin_fd = devNull
        options.stdout_fd = outputPipe[1]
        options.stderr_fd = outputPipe[1]

        guard let argv = CStringArray(arguments), let envp = CStringArray(environment: environment) else {
            for fd in [outputPipe[0], outputPipe[1], goPipe[0], goPipe[1]] { close(fd) }
            throw JobboxError.system("cannot start", arguments[0], .noMemory)
        }
        var execErrorFD: Int32 = -1
        let pid = jb_spawn(argv.pointers[0], argv.pointers, envp.pointers, &options, &execErrorFD)
        let spawnError = Errno.last
        close(outputPipe[1])
        close(goPipe[0])
        guard pid > 0 else {
            close(outputPipe[0])
            close(goPipe[1])
            throw JobboxError.system("cannot start", arguments[0], spawnError)
        }
        // The child waits for this byte before exec, so it is in its own group before it can start anyone.
        _ = setpgid(pid, pid)
        _ = jb_release_child(goPipe[1])
        close(goPipe[1])
        let execError = jb_exec_result(execErrorFD)
        if execError != 0 {
            close(outputPipe[0])
            var ignored: Int32 = 0
            _ = jb_wait_pid(pid, &ignored, 0)
            throw JobboxError.exec(arguments[0], Errno(rawValue: execError))
        }
        return RunningChild(pid: pid, outputFD: outputPipe[0], mode: output)
    }

    /// A child `start` started, until `finish` collects it; one never collected (an error in between) is killed
    /// and reaped when it goes.
    package final class RunningChild {
        private let pid: pid_t
        private let outputFD: Int32
        private let mode: ChildOutput
        private var finished = false

        fileprivate init(pid: pid_t, outputFD: Int32, mode: ChildOutput) {
            self.pid = pid
            self.outputFD = outputFD
            self.mode = mode
        }

        /// Reads the child's output until it has exited, kills what it left in its process group, and returns how
        /// it ended (call it once). An interruption of this tool meanwhile is passed to the child's group.
        package func finish() -> ChildResult {
            precondition(!finished, "a child is collected once")
            finished = true
            jb_interrupt_set_target(-pid)
            defer { jb_interrupt_set_target(0) }
            var collector = OutputCollector(mode: mode)
            let status = ChildProcess.pump(outputFD, childPID: pid, into: &collector)
            close(outputFD)
            // Whatever the child left running in its group (a daemon a package started) goes with it.
            _ = kill(-pid, SIGKILL)
            return ChildResult(status: status, output: collector.finish())
        }

        deinit {
            guard !finished else { return }
            _ = kill(-pid, SIGKILL)
            close(outputFD)
            var ignored: Int32 = 0
            _ = jb_wait_pid(pid, &ignored, 0)
        }
    }

    /// Reads `fd` until the child has exited and its output is drained; returns the child's shell status.
    ///
    /// EOF alone is not waited for: a grandchild that keeps the pipe open must not hang the build.
    fileprivate static func pump(_ fd: Int32, childPID: pid_t, into collector: inout OutputCollector) -> Int32 {
        var exitStatus: Int32?
        var buffer = [UInt8](repeating: 0, count: 65536)
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&descriptor, 1, 200)
            if ready > 0 {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    collector.append(buffer[0..<count])
                } else if count == 0 || Errno.last != .interrupted {
                    break
                }
            }
            if exitStatus == nil {
                var status: Int32 = 0
                if jb_wait_pid(childPID, &status, WNOHANG) == childPID {
                    exitStatus = ExitStatus.fromWaitStatus(status)
                    drain(fd, buffer: &buffer, into: &collector)
                    break
                }
            }
        }
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        guard jb_wait_pid(childPID, &status, 0) == childPID else { return ExitStatus.toolFailure }
        return ExitStatus.fromWaitStatus(status)
    }

    /// Reads what is already in the pipe without waiting for more.
    private static func drain(_ fd: Int32, buffer: inout [UInt8], into collector: inout OutputCollector) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                collector.append(buffer[0..<count])
            } else if count < 0 && Errno.last == .interrupted {
                continue
            } else {
                return
            }
        }
    }
}

/// Splits a child's output into lines and streams, keeps or collects them.
private struct OutputCollector {
    let mode: ChildOutput
    var partial: [UInt8] = []
    var collected: [UInt8] = []
    var lastLines: [String] = []

    init(mode: ChildOutput) { self.mode = mode }

    mutating func append(_ bytes: ArraySlice<UInt8>) {
        if mode == .capture {
            collected.append(contentsOf: bytes)
            return
        }
        partial.append(contentsOf: bytes)
        while let newline = partial.firstIndex(of: UInt8(ascii: "\n")) {
            emit(String(decoding: partial[..<newline], as: UTF8.self))
            partial.removeSubrange(...newline)
        }
    }

    private mutating func emit(_ rawLine: String) {
        // Progress bars redraw with carriage returns; keep only what the line ended as.
        let line = rawLine.split(separator: "\r", omittingEmptySubsequences: false).last.map(String.init) ?? rawLine
        switch mode {
        case .stream(let prefix):
            writeAll(.standardError, prefix + line + "\n")
        case .tail(let count):
            lastLines.append(line)
            if lastLines.count > count { lastLines.removeFirst(lastLines.count - count) }
        case .capture:
            break
        }
    }

    mutating func finish() -> String {
        if !partial.isEmpty {
            emit(String(decoding: partial, as: UTF8.self))
            partial.removeAll()
        }
        switch mode {
        case .capture: return String(decoding: collected, as: UTF8.self)
        case .tail: return lastLines.map { $0 + "\n" }.joined()
        case .stream: return ""
        }
    }
}
