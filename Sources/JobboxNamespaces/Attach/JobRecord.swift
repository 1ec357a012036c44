import CLinux
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// What `ns-exec --attach` needs to find a running job: its init's pid and start time (so a reused pid is never
/// taken for the job) and the job's identity. ns-exec writes one per job it runs with `--pid`, named after the job
/// (`job_1234_5`), and removes it when the job ends.
package struct JobRecord: Sendable, Equatable {
    /// The job's init (PID 1 of its namespace), as this side sees it.
    package var pid: Int32
    /// Its start time (`/proc/PID/stat` field 22, clock ticks since boot).
    package var startTime: UInt64
    /// The job's user, group and supplementary groups.
    package var uid: uid_t
    package var gid: gid_t
    package var groups: [gid_t]

    /// Creates a record.
    package init(pid: Int32, startTime: UInt64, uid: uid_t, gid: gid_t, groups: [gid_t]) {
        self.pid = pid
        self.startTime = startTime
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    /// The most a record file may hold.
    static let maxBytes = 4096

    /// `pid N`, `start T`, `uid U`, `gid G`, `groups A,B` lines.
    package var text: String {
        "pid \(pid)\nstart \(startTime)\nuid \(uid)\ngid \(gid)\ngroups \(groups.map(String.init).joined(separator: ","))\n"
    }

    /// Parses `text`; nil unless it is exactly what `text` writes.
    package init?(parsing text: String) {
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2, values[parts[0]] == nil else { return nil }
            values[parts[0]] = parts[1]
        }
        guard values.count == 5, let pid = values["pid"].flatMap(Int32.init), pid > 0, let start = values["start"].flatMap(UInt64.init),
            let uid = values["uid"].flatMap(UInt32.init), let gid = values["gid"].flatMap(UInt32.init), let groupText = values["groups"]
        else { return nil }
        var groups: [gid_t] = []
        for item in groupText.split(separator: ",") {
            guard let group = UInt32(item) else { return nil }
            groups.append(group)
        }
        self.init(pid: pid, startTime: start, uid: uid, gid: gid, groups: groups)
    }
}

/// Where records live, and who may believe them.
///
/// Trusted inputs: as root, only `STATE_DIR/ns-exec`, which must be root's alone all the way up (the
/// trusted-directory rule netacct's leases follow): a record names a process whose namespaces root enters and a
/// user it becomes, so one a user could write would let them aim root at any process. An unprivileged user keeps
/// records in a directory of their own (`$XDG_RUNTIME_DIR/jobbox`, else `/tmp/jobbox-<uid>`, which must be theirs
/// and closed to others), and can only ever attach to their own processes: the kernel checks that at setns.
package struct JobRecords {
    /// The directory.
    package let directory: String

    /// The records directory for the caller.
    package static func forCaller(config: JobboxConfig, environment: Environment) -> JobRecords {
        if geteuid() == 0 { return JobRecords(directory: config.stateDir + "/ns-exec") }
        var info = stat()
        if let runtime = environment["XDG_RUNTIME_DIR"], runtime.hasPrefix("/"), !runtime.split(separator: "/").contains(".."),
            stat(runtime, &info) == 0, info.st_uid == getuid()
        {
            return JobRecords(directory: runtime + "/jobbox")
        }
        return JobRecords(directory: "/tmp/jobbox-\(getuid())")
    }

    /// Creates a store over `directory`.
    package init(directory: String) {
        self.directory = directory
    }

    /// The file of `job`.
    package func path(_ job: JobID) -> String { directory + "/" + job.cgroupName }

    /// Writes `record` for `job`, replacing an older one (atomically: renamed into place).
    package func write(_ record: JobRecord, for job: JobID) throws(JobboxError) {
        let operation = "cannot record job for --attach in"
        let opened = try open(creating: true, operation: operation)
        opened.close()
        try GuardedFile.replace(path(job), with: record.text, permissions: [.ownerReadWrite], for: operation)
    }

    /// The record of `job`, or nil when there is none.
    package func read(_ job: JobID) throws(JobboxError) -> JobRecord? {
        let operation = "cannot attach to job"
        let directory: GuardedDirectory
        do {
            directory = try open(creating: false, operation: operation)
        } catch  where error.errno == .noSuchFileOrDirectory {
            return nil
        }
        directory.close()
        let bytes: [UInt8]
        do {
            bytes = try GuardedFile.read(path(job), limit: JobRecord.maxBytes, for: operation)
        } catch  where error.errno == .noSuchFileOrDirectory {
            return nil
        }
        guard let record = JobRecord(parsing: String(decoding: bytes, as: UTF8.self)) else {
            throw JobboxError.invalid(operation, "'\(job)'", "\(path(job)) is not a record ns-exec wrote")
        }
        return record
    }

    /// Removes the record of `job` if it still names `pid` (a later job of the same id may have replaced it).
    package func remove(_ job: JobID, pid: Int32) {
        guard let record = try? read(job), record.pid == pid else { return }
        unlink(path(job))
        // A user's own directory goes when it is empty; root's STATE_DIR stays.
        if geteuid() != 0 { rmdir(directory) }
    }

    /// Opens the directory: root's must be root's alone all the way up; a user's must be the user's, 0700.
    private func open(creating: Bool, operation: String) throws(JobboxError) -> GuardedDirectory {
        if geteuid() == 0 { return try GuardedPath.openTrustedDirectory(directory, creating: creating, for: operation) }
        if creating && mkdir(directory, 0o700) != 0 && errno != EEXIST { throw JobboxError.lastErrno(operation, directory) }
        let opened = try GuardedPath.openDirectory(directory, for: operation)
        var info = stat()
        guard fstat(opened.fd, &info) == 0, info.st_uid == getuid(), info.st_mode & 0o077 == 0 else {
            opened.close()
            throw JobboxError.invalid(operation, directory, "it is not this user's own directory closed to others (mode 0700)")
        }
        return opened
    }
}
