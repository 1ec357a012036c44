import CLinux
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The job's process, forked by the C shim into a new network namespace and held there, before exec, until the
/// parent has made its network.
///
/// The child (C only, no Swift after fork) unshares its network namespace, writes one byte on the ready pipe and
/// blocks reading the go pipe; the parent then configures the namespace from outside and writes the go byte, or
/// closes the pipe, which makes the child `_exit(125)`. The child dies with SIGKILL if netacct dies.
package final class HeldJob {
    /// The job's pid.
    package let pid: Int32
    /// The command's name, for error messages.
    package let command: String
    private var readyFD: Int32
    private var goFD: Int32
    private var execErrorFD: Int32
    private var reaped = false

    /// Forks the child for `arguments` (the command and its arguments; the command is searched in `$PATH`), in a
    /// new network namespace unless `newNetwork` is false (the bpf back end holds it only to move it into a cgroup),
    /// and started in the cgroup open at `cgroupFD` when given (clone3; an error on kernels before 5.7).
    package init(arguments: [String], newNetwork: Bool = true, cgroupFD: Int32? = nil) throws(JobboxError) {
        guard let file = arguments.first else { throw JobboxError.invalid("no command", nil, "give the job's command after --") }
        command = file
        var ready: [Int32] = [-1, -1]
        var go: [Int32] = [-1, -1]
        if jb_pipe2(&ready, O_CLOEXEC) != 0 { throw JobboxError.lastErrno("cannot make a pipe", nil) }
        if jb_pipe2(&go, O_CLOEXEC) != 0 {
            let error = JobboxError.lastErrno("cannot make a pipe", nil)
            close(ready[0])
            close(ready[1])
            throw error
        }
        // Every C string is made before the fork; the child only reads them.
        guard let argv = CStringArray(arguments) else {
            for fd in [ready[0], ready[1], go[0], go[1]] { close(fd) }
            throw JobboxError.system("cannot fork the job", file, .noMemory)
        }
        var options = jb_spawn_options()
        options.unshare_flags = newNetwork ? JB_CLONE_NEWNET : 0
        options.ready_fd = ready[1]
        options.go_fd = go[0]
        options.death_signal = SIGKILL
        options.close_fds = (ready[0], go[1], -1, -1)
        if let cgroupFD {
            options.flags |= JB_SPAWN_CGROUP
            options.cgroup_fd = cgroupFD
        }
        var errorFD: Int32 = -1
        let pid = jb_spawn(file, argv.pointers, nil, &options, &errorFD)
        let spawnError = Errno.last
        close(ready[1])
        close(go[0])
        if pid < 0 {
            close(ready[0])
            close(go[1])
            throw JobboxError.system("cannot fork the job", file, spawnError)
        }
        self.pid = pid
        readyFD = ready[0]
        goFD = go[1]
        execErrorFD = errorFD
    }

    deinit {
        if goFD >= 0 { close(goFD) }
        if readyFD >= 0 { close(readyFD) }
        if execErrorFD >= 0 { close(execErrorFD) }
    }

    /// Waits until the child is in its new network namespace.
    package func waitUntilUnshared() throws(JobboxError) {
        var byte: UInt8 = 0
        let count = retryingOnInterrupt { read(readyFD, &byte, 1) }
        close(readyFD)
        readyFD = -1
        if count == 1 { return }
        // The child failed before the ready byte; the exec-error pipe has its errno.
        let code = takeExecResult()
        _ = reap()
        throw JobboxError.system("cannot make the job's network namespace for", command, Errno(rawValue: code == 0 ? EIO : code))
    }

    /// Lets the child exec; throws the exec error (127 not found, 126 not executable) after reaping it. Once the
    /// job runs, HUP, INT, QUIT, TERM, USR1 and USR2 are forwarded to it, and unblocked (see `SetUpSignals.hold`).
    package func release() throws(JobboxError) {
        let count = jb_release_child(goFD)
        close(goFD)
        goFD = -1
        let code = takeExecResult()
        if code != 0 {
            _ = reap()
            throw JobboxError.exec(command, Errno(rawValue: code))
        }
        if count != 1 {
            _ = reap()
            throw JobboxError.lastErrno("cannot start the job", command)
        }
        _ = jb_forward_signals(pid)
        _ = jb_block_forwarded_signals(0)
    }

    /// Stops the held child (it exits 125 without exec'ing) and reaps it.
    package func abandon() {
        if goFD >= 0 {
            close(goFD)
            goFD = -1
        }
        if !reaped {
            kill(pid, SIGKILL)
            _ = reap()
        }
    }

    private func takeExecResult() -> Int32 {
        guard execErrorFD >= 0 else { return 0 }
        let code = jb_exec_result(execErrorFD)
        execErrorFD = -1
        return code
    }

    /// Waits for the child and returns its shell status (128+N for signal N).
    package func reap() -> Int32 {
        var status: Int32 = 0
        let result = jb_wait_pid(pid, &status, 0)
        reaped = true
        return result == pid ? ExitStatus.fromWaitStatus(status) : ExitStatus.toolFailure
    }

    /// Gives the kernel back the free memory set-up left in malloc's heap (netlink buffers, parsed leases): netacct
    /// waits for the whole of the job, and on a node with hundreds of jobs its private memory is what counts.
    static func returnFreeMemory() {
        _ = jb_release_free_memory()
    }

    /// Waits for the job to end, calling `tick` every `interval` seconds while it runs (nil: never); returns its
    /// shell status. Forwarded signals interrupt the wait and it resumes. When the job has exited, forwarding
    /// stops and the signals are blocked again before it is reaped (so its pid cannot be reused under the
    /// forwarder, and a TERM cannot cut the tear-down short). Nothing after this may wait without bound while
    /// they are blocked: the chirp that follows takes them through a signalfd and stops (`ChirpAsJob`).
    package func wait(interval: Int?, tick: () -> Void) -> Int32 {
        let pidfd = jb_pidfd_open(pid)
        defer { if pidfd >= 0 { close(pidfd) } }
        var next = interval.map { MonotonicClock.milliseconds() + Int64($0) * 1000 }
        Self.returnFreeMemory()
        while jb_child_exited(pid) == 0 {
            let now = MonotonicClock.milliseconds()
            if let due = next, now >= due, let interval {
                tick()
                Self.returnFreeMemory()
                next = due + Int64(interval) * 1000
                continue
            }
            var timeout = next.map { Int32(clamping: $0 - now) } ?? -1
            if pidfd < 0 {
                // No pidfd (kernels before 5.3): look again every 100 ms.
                timeout = timeout < 0 ? 100 : min(timeout, 100)
                _ = poll(nil, 0, timeout)
            } else {
                var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                _ = poll(&entry, 1, timeout)
            }
        }
        // Blocked again before forwarding stops: a signal from here on waits instead of acting on netacct.
        _ = jb_block_forwarded_signals(1)
        _ = jb_forward_signals(0)
        return reap()
    }

}
