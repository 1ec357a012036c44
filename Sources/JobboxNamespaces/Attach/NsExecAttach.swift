import CLinux
import CNsExec
import JobboxCgroups
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// `ns-exec --attach JOB -- COMMAND`: runs COMMAND inside a running job, in its cgroups, its namespaces, its root
/// and working directory, as its user; COMMAND dies with the job (it lives in the job's PID namespace, which the
/// kernel empties when the job's init dies).
///
/// The job is found by its record (`JobRecords`); a pidfd of its init is opened first and its start time checked
/// after, so that a pid reused since the record was written is never entered: the pidfd keeps naming the process
/// it was opened for, and every join goes through it.
package enum NsExecAttach {
    /// The namespaces joined, with the names of their `/proc/PID/ns` files.
    static let namespaces: [(name: String, flag: Int32)] = [
        ("user", JB_CLONE_NEWUSER), ("mnt", JB_CLONE_NEWNS), ("pid", JB_CLONE_NEWPID), ("uts", JB_CLONE_NEWUTS),
        ("ipc", JB_CLONE_NEWIPC), ("net", JB_CLONE_NEWNET), ("cgroup", JB_CLONE_NEWCGROUP),
    ]

    /// Attaches `command` to job `job`; returns its status (137 when the job ended under it).
    package static func run(_ job: JobID, command: [String], config: JobboxConfig, environment: Environment) throws(JobboxError) -> Int32 {
        guard !command.isEmpty else {
            throw JobboxError.invalid("no command", nil, "give one after -- (ns-exec --attach JOB -- COMMAND [ARG...])")
        }
        let records = JobRecords.forCaller(config: config, environment: environment)
        let operation = "cannot attach to job"
        guard let record = try records.read(job) else {
            throw JobboxError.invalid(operation, "'\(job)'", "no job of that id started with --pid is recorded in \(records.directory)")
        }
        let jobInit = try openInit(record, job: job)
        defer { close(jobInit.pidfd) }
        let isRoot = geteuid() == 0
        if !isRoot {
            // Only the user's own job; a record is the user's own writing, so the process's owner decides.
            guard jobInit.owner == getuid(), record.uid == getuid() else {
                throw JobboxError.invalid(operation, "'\(job)'", "its init (pid \(record.pid)) is not this user's (only root attaches to other users' jobs)")
            }
        }
        var flags: Int32 = 0
        for namespace in namespaces where namespaceInode("/proc/self/ns/" + namespace.name) != namespaceInode("/proc/\(record.pid)/ns/" + namespace.name) {
            flags |= namespace.flag
        }
        var descriptors: [Int32] = []
        defer { for fd in descriptors { close(fd) } }
        for path in try cgroupProcsFiles(of: record.pid) {
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw JobboxError.lastErrno("cannot join the job's cgroup", path) }
            descriptors.append(fd)
        }
        let rootFD = open("/proc/\(record.pid)/root", JB_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw JobboxError.lastErrno("cannot open the job's root", "/proc/\(record.pid)/root") }
        descriptors.append(rootFD)
        let cwdFD = open("/proc/\(record.pid)/cwd", JB_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard cwdFD >= 0 else { throw JobboxError.lastErrno("cannot open the job's working directory", "/proc/\(record.pid)/cwd") }
        descriptors.append(cwdFD)
        // The start time again, now that everything is open: the pidfd has named the recorded process throughout.
        guard ProcessStat.read(pid: record.pid)?.startTime == record.startTime, jb_pidfd_exited(jobInit.pidfd) == 0 else {
            throw JobboxError.invalid(operation, "'\(job)'", "it has ended")
        }

        let fenced = runsFenced(pid: record.pid)
        guard let arguments = CStringArray(command) else { throw JobboxError.system("cannot prepare the command", nil, .noMemory) }
        let cgroupFDs = Array(descriptors.dropLast(2))
        var failure = jb_attach_failure()
        var reportFD: Int32 = -1
        jb_block_forwarded_signals(1)
        let child: pid_t = cgroupFDs.withUnsafeBufferPointer { cgroups in
            record.groups.withUnsafeBufferPointer { groups in
                arguments.pointers.withUnsafeBufferPointer { argv in
                    var plan = jb_attach_plan()
                    plan.pidfd = jobInit.pidfd
                    plan.namespaces = flags
                    plan.cgroup_fds = cgroups.baseAddress
                    plan.cgroup_count = Int32(cgroups.count)
                    plan.root_fd = rootFD
                    plan.cwd_fd = cwdFD
                    plan.switch_identity = isRoot ? 1 : 0
                    plan.uid = record.uid
                    plan.gid = record.gid
                    plan.groups = groups.baseAddress
                    plan.group_count = Int32(groups.count)
                    plan.no_new_privs = (!isRoot || record.uid != 0) ? 1 : 0
                    plan.quota_fence = fenced ? 1 : 0
                    // Root becomes the job's user in the job's root: as for the job itself, nothing root holds
                    // open goes along (see jb_attach.h).
                    plan.close_fds = isRoot ? 1 : 0
                    plan.file = UnsafePointer(arguments.pointers[0])
                    plan.argv = argv.baseAddress
                    plan.envp = nil
                    return jb_attach_spawn(&plan, &reportFD, &failure)
                }
            }
        }
        guard child > 0 else {
            jb_block_forwarded_signals(0)
            throw describe(failure, job: job, command: command[0], cgroups: cgroupFDs.count)
        }
        jb_forward_signals(child)
        jb_block_forwarded_signals(0)
        if jb_attach_read_report(reportFD, &failure) == 1 {
            var status: Int32 = 0
            _ = jb_wait_pid(child, &status, 0)
            throw describe(failure, job: job, command: command[0], cgroups: cgroupFDs.count)
        }
        var status: Int32 = 0
        let waited = jb_wait_pid(child, &status, 0)
        jb_forward_signals(0)
        guard waited == child else { throw JobboxError.lastErrno("cannot wait for the attached command", String(child)) }
        return ExitStatus.fromWaitStatus(status)
    }

    /// A pidfd of the recorded init, checked to be the recorded process (its start time), with its owner.
    static func openInit(_ record: JobRecord, job: JobID) throws(JobboxError) -> (pidfd: Int32, owner: uid_t) {
        let ended = JobboxError.invalid("cannot attach to job", "'\(job)'", "it has ended (its init, pid \(record.pid), is gone)")
        let pidfd = jb_pidfd_open(record.pid)
        guard pidfd >= 0 else {
            if errno == ESRCH { throw ended }
            throw JobboxError.lastErrno("cannot open a pidfd of the job's init", String(record.pid))
        }
        var info = stat()
        guard ProcessStat.read(pid: record.pid)?.startTime == record.startTime, stat("/proc/\(record.pid)", &info) == 0 else {
            close(pidfd)
            throw ended
        }
        return (pidfd, info.st_uid)
    }

    /// The inode of a namespace file (0 when it cannot be read).
    static func namespaceInode(_ path: String) -> UInt64 {
        var info = stat()
        return stat(path, &info) == 0 ? UInt64(info.st_ino) : 0
    }

    /// The `cgroup.procs` files of the process's cgroups that differ from this process's own.
    static func cgroupProcsFiles(of pid: Int32) throws(JobboxError) -> [String] {
        let layout = try CgroupLayout.current()
        let own = try CgroupMembership.read()
        let theirs = try CgroupMembership.read(pid: String(pid))
        return layout.hierarchies.compactMap { hierarchy in
            guard let directory = layout.directory(of: theirs, in: hierarchy), directory != layout.directory(of: own, in: hierarchy) else { return nil }
            return directory + "/cgroup.procs"
        }
    }

    /// Whether the job's init runs under a seccomp filter (`Seccomp: 2` in its status). ns-exec installs one only
    /// for a job whose scratch directory has a quota (the fence of `jb_fence.h`), and a command attached to that
    /// job gets the same fence, so a session cannot do what the job may not. The kernel writes the status file, so
    /// the job cannot make its init look unfenced; a status that cannot be read fences (one without the line comes
    /// from a kernel without seccomp, where no job is fenced).
    static func runsFenced(pid: Int32) -> Bool {
        guard let status = ProcessStatus.read(pid: pid) else { return true }
        guard let mode = status.fields("Seccomp") else { return false }
        return mode.first == "2"
    }

    static func describe(_ failure: jb_attach_failure, job: JobID, command: String, cgroups: Int) -> JobboxError {
        let errno = Errno(rawValue: failure.error)
        switch failure.stage {
        case Int32(JB_ATTACH_CGROUP.rawValue): return .system("cannot join the cgroups of job", "'\(job)'", errno)
        case Int32(JB_ATTACH_SETNS.rawValue):
            var error = JobboxError.system("cannot enter the namespaces of job", "'\(job)'", errno)
            if errno == .invalidArgument { error.reason += " (setns through a pidfd needs Linux 5.8 or later)" }
            return error
        case Int32(JB_ATTACH_ROOT.rawValue): return .system("cannot enter the root of job", "'\(job)'", errno)
        case Int32(JB_ATTACH_CWD.rawValue): return .system("cannot enter the working directory of job", "'\(job)'", errno)
        case Int32(JB_ATTACH_IDENTITY.rawValue): return .system("cannot become the user of job", "'\(job)'", errno)
        case Int32(JB_ATTACH_EXEC.rawValue): return .exec(command, errno)
        case Int32(JB_ATTACH_FENCE.rawValue): return .system("cannot fence the attached command like job", "'\(job)'", errno)
        case Int32(JB_ATTACH_DESCRIPTORS.rawValue):
            return .system("cannot close the descriptors the attached command must not inherit in job", "'\(job)'", errno)
        default: return .system("cannot start the attached command in job", "'\(job)'", errno)
        }
    }
}
