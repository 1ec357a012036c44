import CLinux
import Foundation

/// Runs programs for the tests with posix_spawn and waitpid, not Foundation's `Process`.
///
/// Three things go wrong with `Process` here. A child inherits the descriptors `Process` uses to watch other
/// children that other tests start at the same moment, so a long-lived daemon (munged) or a job's leftover keeps
/// another test waiting. The child also inherits the spawning thread's blocked signal mask, so TERM never reaches
/// a wrapper or daemon. And with many tests in parallel, the exit notifications queue up behind blocked
/// Dispatch threads for minutes. Here every child starts with no signal blocked or ignored, stdin from
/// /dev/null (or the given text), and no descriptor but stdio (a tiny perl launcher closes the rest: perl-base
/// is Essential on Debian). The parent reads both outputs with poll on its own thread and reaps the child with
/// waitpid.
package enum Spawn {
    /// Closes every descriptor above 2, then execs its arguments.
    package static let launcher = [
        "/usr/bin/perl", "-MPOSIX", "-e",
        #"opendir(my $d, "/proc/self/fd") or die "/proc/self/fd: $!\n"; my @fds = grep { /^\d+$/ && $_ > 2 } readdir($d); closedir($d); POSIX::close($_) for @fds; exec {$ARGV[0]} @ARGV or die "exec $ARGV[0]: $!\n""#,
    ]

    /// Copies the executable `source` to `destination` (mode kept) with `cp` in a child, so that no descriptor of
    /// the copy open for writing ever exists in this process: with tests in parallel, a program another test
    /// starts at that moment would inherit it, and every exec of the copy fails with ETXTBSY for as long as that
    /// program lives (seen: a job of the attach tests could not start its ns-exec copy).
    package static func copyExecutable(_ source: String, to destination: String) throws {
        let copied = try run(["/bin/cp", source, destination])
        guard copied.status == 0 else { throw TestFailure("cp \(source) \(destination): \(copied)") }
    }

    /// Runs `arguments` (the program is looked up in PATH), waits, and returns its status (128+N for signal N)
    /// and output. `environment` nil means this process's environment. `stdin` is written whole before the output
    /// is read, so it suits inputs the program reads before it writes much (ads for a parser), not a dialogue.
    @discardableResult
    package static func run(_ arguments: [String], environment: [String: String]? = nil, stdin: String? = nil) throws -> TestSupport.Result {
        var out: [Int32] = [-1, -1]
        var err: [Int32] = [-1, -1]
        var input: [Int32] = [-1, -1]
        guard jb_pipe2(&out, O_CLOEXEC) == 0, jb_pipe2(&err, O_CLOEXEC) == 0, stdin == nil || jb_pipe2(&input, O_CLOEXEC) == 0 else {
            throw TestFailure("pipe2: \(errno)")
        }
        let pid: pid_t
        do {
            pid = try start(arguments, environment: environment, stdin: stdin == nil ? nil : input[0], stdout: out[1], stderr: err[1])
        } catch {
            for fd in out + err + input where fd >= 0 { close(fd) }
            throw error
        }
        close(out[1])
        close(err[1])
        if let stdin {
            close(input[0])
            // A child that exits before reading it all (a program refusing its input at once) must fail the
            // write, not end the whole test run by SIGPIPE (seen in a clean-clone CI on a busy machine).
            let bytes = Array(stdin.utf8)
            _ = bytes.withUnsafeBytes { jb_write_without_sigpipe(input[1], $0.baseAddress, $0.count) }
            close(input[1])
        }
        let (stdout, stderr) = drain(out[0], err[0])
        close(out[0])
        close(err[0])
        return TestSupport.Result(status: wait(pid), stdout: stdout, stderr: stderr)
    }

    /// Runs a shell command line.
    @discardableResult
    package static func sh(_ script: String, environment: [String: String]? = nil) throws -> TestSupport.Result {
        try run(["/bin/sh", "-c", script], environment: environment)
    }

    /// Starts `arguments` in the background with stdout and stderr on `stdout`/`stderr` (nil: /dev/null) and
    /// returns its pid; end it with `kill` and `wait`.
    package static func start(_ arguments: [String], environment: [String: String]? = nil, stdin: Int32? = nil, stdout: Int32? = nil, stderr: Int32? = nil)
        throws -> pid_t
    {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin { posix_spawn_file_actions_adddup2(&actions, stdin, 0) } else { posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0) }
        if let stdout { posix_spawn_file_actions_adddup2(&actions, stdout, 1) } else { posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0) }
        if let stderr { posix_spawn_file_actions_adddup2(&actions, stderr, 2) } else { posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let variables = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let argv = (launcher + arguments).map { strdup($0) } + [nil]
        let envp = variables.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, launcher[0], &actions, &attributes, argv, envp)
        guard result == 0 else { throw TestFailure("posix_spawn \(arguments[0]): \(String(cString: strerror(result)))") }
        return pid
    }

    /// Waits for `pid` and returns its status (128+N for signal N).
    @discardableResult
    package static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { return -1 }
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Reads both descriptors to their end, on this thread.
    private static func drain(_ first: Int32, _ second: Int32) -> (String, String) {
        var buffers = [Data(), Data()]
        var fds = [pollfd(fd: first, events: Int16(POLLIN), revents: 0), pollfd(fd: second, events: Int16(POLLIN), revents: 0)]
        var chunk = [UInt8](repeating: 0, count: 65536)
        while fds.contains(where: { $0.fd >= 0 }) {
            guard poll(&fds, nfds_t(fds.count), -1) >= 0 else {
                if errno == EINTR { continue }
                break
            }
            for index in fds.indices where fds[index].fd >= 0 && fds[index].revents != 0 {
                let count = read(fds[index].fd, &chunk, chunk.count)
                if count > 0 {
                    buffers[index].append(contentsOf: chunk[0..<count])
                } else if count == 0 || errno != EINTR {
                    fds[index].fd = -1
                }
            }
        }
        return (String(decoding: buffers[0], as: UTF8.self), String(decoding: buffers[1], as: UTF8.self))
    }
}
