import CLinux
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Chirp as root, done as the job: root never reads the job's chirp configuration or connects where it says.
///
/// `$_CONDOR_CHIRP_CONFIG` lies in the job's scratch dir, so the job can write it: it picks the host and port
/// (root would connect from the host's network namespace, past `--deny-external`), it can make it a symlink to a
/// file only root can read (whose third word would go out as the cookie), a FIFO, or point it at a listener that
/// never answers. So a root tool does none of that itself. It starts a copy of itself (`/proc/self/exe`, hidden
/// mode `--jobbox-chirp-as-job`) that, before exec and in C (no Swift runs between fork and exec), drops every
/// group and becomes the job's user: the owner of the directory holding `$_CONDOR_CHIRP_CONFIG` (HTCondor's
/// starter makes the scratch dir for the job's user; a root-owned one is refused, never root), sets
/// no_new_privs and dies with its parent. The copy reads the configuration with the job's rights
/// (`GuardedFile`: no FIFO, device or hard-linked file, 4 KiB at most), takes the ad on stdin and publishes it
/// within `ChirpClient.timeout` for the whole exchange; the parent waits that long plus a grace, then kills it.
///
/// Where the connection comes from, for netacct, whose job has a network namespace of its own: HTCondor's
/// starter binds its chirp proxy to loopback in its own (the host's) namespace (io_proxy.cpp: "use the loopback
/// address, which is more secure"), which the job's namespace cannot reach. So the first copy runs in netacct's
/// namespace and may connect to loopback addresses only (nothing leaves the host: `--deny-external` has nothing
/// to stop); when the configuration names any other address, it exits `deferStatus` without connecting and a
/// second copy runs inside the job's network namespace (held open by netacct until the chirp is done), where the
/// job's veth and rules, `--deny-external` included, apply as to the job's own traffic. Each copy reads the file
/// itself and enforces its own rule, so a file changed between the two changes nothing. jobstat has no job
/// namespace: one copy, in jobstat's namespace, any address (as the job's user could connect itself).
///
/// TERM (and the other forwarded signals) arriving while netacct waits, with them blocked for its tear-down,
/// are taken through a signalfd: the copy is killed, the wait ends, and netacct finishes its tear-down and
/// returns the job's status. A copy runs with the job's rights only: the job can do to it (ptrace, kill) nothing
/// it could not do itself; its error text is taken back size-limited and as one line of printable characters.
package enum ChirpAsJob {
    /// The hidden first argument that makes any jobbox tool run as the chirp publisher.
    package static let childFlag = "--jobbox-chirp-as-job"

    /// Seconds the parent waits beyond `ChirpClient.timeout` before it kills the copy, so the copy's own timeout
    /// (with its clearer message) normally wins.
    static let grace = 2

    /// Largest ad accepted on stdin, and largest error text taken back.
    static let adLimit = 60_000
    static let errorLimit = 2048

    /// The status a loopback-only copy exits with when the proxy is not on loopback (and it did not connect).
    static let deferStatus: Int32 = 3

    /// Publishes `ad` as the job's user through the proxy `$_CONDOR_CHIRP_CONFIG` in `environment` names: from
    /// this process's network namespace when `jobNamespace` is nil, else (an open `/proc/PID/ns/net`) from here to
    /// loopback only, and from the job's namespace to anywhere else.
    package static func publish(_ ad: ClassAd, update: ChirpUpdate, environment: Environment, networkNamespace jobNamespace: Int32? = nil) throws(JobboxError) {
        guard let path = environment["_CONDOR_CHIRP_CONFIG"], !path.isEmpty else {
            throw JobboxError.invalid("cannot chirp", nil, "$_CONDOR_CHIRP_CONFIG is not set (the job needs +WantIOProxy = true)")
        }
        let (uid, gid) = try jobUser(configuration: path)
        let text: String
        do {
            text = try ClassAdWriter.render(ad)
        } catch {
            throw JobboxError.invalid("cannot chirp", nil, error.description)
        }
        guard text.utf8.count <= adLimit else { throw JobboxError.invalid("cannot chirp", nil, "the ad is larger than \(adLimit) bytes") }
        guard let jobNamespace else {
            _ = try runCopy(text, update: update, reach: "any", path: path, uid: uid, gid: gid, namespace: nil)
            return
        }
        if try runCopy(text, update: update, reach: "loopback", path: path, uid: uid, gid: gid, namespace: nil) == deferStatus {
            _ = try runCopy(text, update: update, reach: "any", path: path, uid: uid, gid: gid, namespace: jobNamespace)
        }
    }

    /// Runs one copy and waits for it; returns 0, or `deferStatus` for a loopback-only copy that did not connect.
    private static func runCopy(_ text: String, update: ChirpUpdate, reach: String, path: String, uid: uid_t, gid: gid_t, namespace: Int32?) throws(JobboxError)
        -> Int32
    {
        // The ad goes into the pipe before the copy starts (it fits in the pipe's buffer), so the parent never
        // blocks writing; the copy reads to end of file.
        var input: [Int32] = [-1, -1]
        var output: [Int32] = [-1, -1]
        guard jb_pipe2(&input, O_CLOEXEC) == 0 else { throw JobboxError.lastErrno("cannot chirp: cannot make a pipe", nil) }
        defer { close(input[0]) }
        guard jb_pipe2(&output, O_CLOEXEC | O_NONBLOCK) == 0 else {
            let error = JobboxError.lastErrno("cannot chirp: cannot make a pipe", nil)
            close(input[1])
            throw error
        }
        defer { close(output[0]) }
        var bytes = Array(text.utf8)
        let written = bytes.withUnsafeMutableBytes { Glibc.write(input[1], $0.baseAddress, $0.count) }
        close(input[1])
        guard written == bytes.count else {
            close(output[1])
            throw JobboxError.lastErrno("cannot chirp: cannot write the ad to a pipe", nil)
        }

        guard let argv = CStringArray(["/proc/self/exe", childFlag, update == .immediate ? "immediate" : "delayed", reach]),
            let envp = CStringArray(["_CONDOR_CHIRP_CONFIG=" + path, "PATH=/usr/bin:/bin"])
        else {
            close(output[1])
            throw JobboxError.system("cannot start the chirp publisher as uid", "\(uid)", .noMemory)
        }
        // The copy's stdout is the error pipe; its stderr stays the tool's.
        var options = jb_spawn_options()
        options.ready_fd = -1
        options.go_fd = -1
        options.death_signal = SIGKILL
        options.close_fds = (output[0], -1, -1, -1)
        options.flags = JB_SPAWN_STDIN | JB_SPAWN_STDOUT | JB_SPAWN_SETIDS | (namespace == nil ? 0 : JB_SPAWN_SETNS)
        options.stdin_fd = input[0]
        options.stdout_fd = output[1]
        options.netns_fd = namespace ?? -1
        options.uid = uid
        options.gid = gid
        var errorFD: Int32 = -1
        let pid = jb_spawn("/proc/self/exe", argv.pointers, envp.pointers, &options, &errorFD)
        let spawnError = Errno.last
        close(output[1])
        guard pid > 0 else { throw JobboxError.system("cannot start the chirp publisher as uid", "\(uid)", spawnError) }
        let code = jb_exec_result(errorFD)
        if code != 0 {
            _ = reap(pid)
            throw JobboxError.system("cannot start the chirp publisher as uid", "\(uid)", Errno(rawValue: code))
        }

        let waited = jb_wait_child_timeout(pid, Int32((ChirpClient.timeout + grace) * 1000))
        let waitError = Errno.last
        if waited != 0 {
            kill(pid, SIGKILL)
            _ = reap(pid)
            if waited > 0 {
                throw JobboxError.invalid("cannot chirp", nil, "interrupted by signal \(waited): the chirp publisher was stopped")
            }
            if waitError == .timedOut {
                throw JobboxError.invalid("cannot chirp", nil, "no answer within \(ChirpClient.timeout + grace) s: the chirp publisher was stopped")
            }
            throw JobboxError.system("cannot wait for the chirp publisher", nil, waitError)
        }
        let status = reap(pid)
        if status == 0 || (status == deferStatus && reach == "loopback") { return status }
        throw childError(output[0]) ?? JobboxError.invalid("cannot chirp", nil, "the chirp publisher ended with status \(status)")
    }

    /// The job's user: the owner of the directory holding the configuration, with its primary group.
    static func jobUser(configuration path: String) throws(JobboxError) -> (uid_t, gid_t) {
        let (parent, _) = try GuardedPath.openParent(of: path, for: "cannot chirp")
        defer { parent.close() }
        var info = stat()
        guard fstat(parent.fd, &info) == 0 else { throw JobboxError.lastErrno("cannot chirp", parent.path) }
        guard info.st_uid != 0 else {
            throw JobboxError.invalid(
                "cannot chirp", path, "\(parent.path) is root's; chirp runs as the job's user, the owner of the directory holding $_CONDOR_CHIRP_CONFIG")
        }
        let gid = try UserDatabase.user(id: info.st_uid)?.gid ?? info.st_gid
        guard gid != 0 else {
            throw JobboxError.invalid("cannot chirp", path, "the job's user \(info.st_uid) has group root; chirp never runs with root's group")
        }
        return (info.st_uid, gid)
    }

    private static func reap(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        return jb_wait_pid(pid, &status, 0) == pid ? ExitStatus.fromWaitStatus(status) : ExitStatus.toolFailure
    }

    /// The copy's error: three lines (operation, object, reason), size-limited, each flattened.
    private static func childError(_ fd: Int32) -> JobboxError? {
        var buffer = [UInt8](repeating: 0, count: errorLimit)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let lines = String(decoding: buffer[..<count], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 3 else { return nil }
        let printable = { (text: String) in String(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.map(Character.init)) }
        return JobboxError(printable(lines[0]), lines[1].isEmpty ? nil : printable(lines[1]), reason: printable(lines[2]))
    }

    // MARK: - the copy

    /// The hidden mode's body: `ARGS` = `immediate|delayed any|loopback`; the ad on stdin;
    /// `$_CONDOR_CHIRP_CONFIG`. Returns the exit status (`deferStatus`: loopback only, and the proxy is not on
    /// loopback); an error goes to stdout as three lines for the parent to report.
    package static func childMain(arguments: [String]) -> Int32 {
        do throws(JobboxError) {
            // Only ever the job's rights: as root (or setuid) this mode would be the very hole it closes.
            guard !GuardedPath.isPrivileged, jb_is_secure_exec() == 0, getuid() != 0 else {
                throw JobboxError.invalid("cannot chirp", nil, "the chirp publisher never runs as root")
            }
            guard arguments.count == 2, let update = arguments[0] == "immediate" ? ChirpUpdate.immediate : arguments[0] == "delayed" ? .delayed : nil,
                let reach = arguments[1] == "any" ? ChirpClient.Reach.any : arguments[1] == "loopback" ? .loopbackOnly : nil
            else {
                throw JobboxError.invalid("cannot chirp", nil, "usage: \(childFlag) immediate|delayed any|loopback")
            }
            let ad = ClassAdReader.parse(try readInput())
            do {
                try ChirpClient.publish(ad, update: update, config: ChirpConfig.load(environment: .current), reach: reach)
            } catch  where reach == .loopbackOnly && error.reason == ChirpClient.notLoopback {
                return deferStatus
            }
            return 0
        } catch {
            writeAll(
                .standardOutput, "\(JobboxError.oneLine(error.operation))\n\(JobboxError.oneLine(error.object ?? ""))\n\(JobboxError.oneLine(error.reason))\n")
            return ExitStatus.toolFailure
        }
    }

    private static func readInput() throws(JobboxError) -> String {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = retryingOnInterrupt { buffer.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, $0.count) } }
            guard count >= 0 else { throw JobboxError.lastErrno("cannot chirp: cannot read the ad", nil) }
            if count == 0 { break }
            result.append(contentsOf: buffer[..<count])
            guard result.count <= adLimit else { throw JobboxError.invalid("cannot chirp", nil, "the ad is larger than \(adLimit) bytes") }
        }
        return String(decoding: result, as: UTF8.self)
    }
}
