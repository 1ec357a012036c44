import CLinux
import JobboxCgroups
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Where the bpf back end counts a job: a cgroup of the unified hierarchy that holds the job and nothing else.
///
/// - Inside cg-exec (netacct's own unified cgroup is `.../job_<id>/main` of this job): the job directory
///   `job_<id>`, which netacct neither makes nor removes. The programs sit there, so cgroups the job makes beside
///   `main` are counted too (and so is netacct, which sends nothing of its own before the final read).
/// - Anywhere else: `netacct_<id>` below netacct's own unified cgroup, made for the job and removed after it.
///
/// On hybrid nodes the unified tree has no controllers; it is used only because BPF programs attach there.
package struct BPFJobCgroup: Sendable, Equatable {
    /// The cgroup's directory.
    package let path: String
    /// Whether netacct makes it (and so removes it and what is left in it).
    package let made: Bool

    /// The name of the cgroup netacct makes for `job`.
    package static func madeName(for job: JobID) -> String { job.shortName(prefix: "netacct_", maxLength: 200) }

    /// The cgroup for `job` run by this process, decided from the unified hierarchy it sees (`unified`, from
    /// `CgroupLayout.currentUnified`; nil: none) and `/proc/self/cgroup`.
    package static func place(for job: JobID, unified: CgroupHierarchy?) throws(JobboxError) -> BPFJobCgroup {
        guard let unified else {
            throw JobboxError.invalid(
                "cannot count job", job.rawValue, "no cgroup2 hierarchy is mounted; the bpf back end attaches there (use --backend iptables or nftables)")
        }
        guard let path = try CgroupMembership.read().path(in: unified), let own = unified.directory(forCgroupPath: path) else {
            throw JobboxError.invalid("cannot count job", job.rawValue, "netacct's own cgroup2 cgroup is outside what \(unified.mountPoint) shows")
        }
        let (parent, leaf) = GuardedPath.split(own)
        if leaf == JobCgroupPlan.leafName, GuardedPath.split(parent).1 == job.cgroupName {
            return BPFJobCgroup(path: parent, made: false)
        }
        return BPFJobCgroup(path: own + "/" + madeName(for: job), made: true)
    }

    /// The cgroup's name in its parent.
    var name: String { GuardedPath.split(path).1 }

    /// The directory above the cgroup, opened by `GuardedPath`'s rule: root's alone all the way up, or refused
    /// (a cgroup delegated to the job's user is one the job could rearrange under netacct). A run opens it once
    /// and keeps it from the cgroup's making to its removal; only root can change a directory root alone controls.
    package func openParent(for operation: String = "cannot make the job's cgroup") throws(JobboxError) -> GuardedDirectory {
        try GuardedPath.openTrustedDirectory(GuardedPath.split(path).0, creating: false, for: operation)
    }

    /// Makes the cgroup (when `made`) in `parent` (`openParent`'s) and opens it for the BPF attach; returns the
    /// descriptor and the cgroup's id (its inode). An existing `netacct_<id>` is an error: it belongs to another
    /// run of the job, or to a dead one that `--cleanup --stale` removes.
    package func create(in parent: GuardedDirectory) throws(JobboxError) -> (fd: Int32, id: UInt64) {
        let name = name
        if made, mkdirat(parent.fd, name, 0o755) != 0 {
            if errno == EEXIST {
                throw JobboxError.invalid(
                    "cannot make the job's cgroup", path,
                    "it exists already (another netacct of this job, or one whose netacct died: netacct --cleanup --stale)")
            }
            throw JobboxError.lastErrno("cannot make the job's cgroup", path)
        }
        let fd = openat(parent.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        var info = stat()
        guard fd >= 0, fstat(fd, &info) == 0 else {
            let error = JobboxError.lastErrno("cannot open the job's cgroup", path)
            if fd >= 0 { close(fd) }
            if made { _ = unlinkat(parent.fd, name, AT_REMOVEDIR) }
            throw error
        }
        return (fd, UInt64(info.st_ino))
    }

    /// Moves `pid` (held before exec) into the cgroup open at `fd`.
    package func add(pid: Int32, cgroupFD fd: Int32) throws(JobboxError) {
        try Self.write("\(pid)\n", to: "cgroup.procs", in: fd, path: path, for: "cannot move the job into")
    }

    /// Kills what is left in the cgroup (when netacct made it) and removes it; `id` (when not 0) must be the
    /// cgroup's inode, so a cgroup of the same name made since is never touched. A missing cgroup is no error.
    package func remove(id: UInt64) throws(JobboxError) {
        guard made else { return }
        let parent = try openParent(for: "cannot remove the job's cgroup")
        defer { parent.close() }
        try remove(id: id, in: parent)
    }

    /// Removes the cgroup as `remove(id:)` does, in `parent` (`openParent`'s, kept by the run that made it).
    package func remove(id: UInt64, in parent: GuardedDirectory) throws(JobboxError) {
        guard made else { return }
        let name = name
        let fd = openat(parent.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return }
            throw JobboxError.lastErrno("cannot open the job's cgroup", path)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw JobboxError.lastErrno("cannot open the job's cgroup", path) }
        if id != 0 && UInt64(info.st_ino) != id {
            throw JobboxError.invalid("refusing to remove cgroup", path, "it is not the one netacct made (id \(info.st_ino), not \(id))")
        }
        // The job is over when its process ends; what it left behind in its cgroup would run on uncounted.
        if !Self.isEmpty(fd) {
            try Self.write("1", to: "cgroup.kill", in: fd, path: path, for: "cannot kill what the job left in")
            var waited = 0
            while !Self.isEmpty(fd) {
                guard waited < 5000 else {
                    throw JobboxError.invalid("cannot remove the job's cgroup", path, "its processes did not die within 5 s of SIGKILL")
                }
                _ = poll(nil, 0, 10)
                waited += 10
            }
        }
        if unlinkat(parent.fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT {
            throw JobboxError.lastErrno("cannot remove the job's cgroup", path)
        }
    }

    /// Whether `cgroup.events` says no process is left in the cgroup or below it.
    static func isEmpty(_ fd: Int32) -> Bool {
        let events = openat(fd, "cgroup.events", O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard events >= 0 else { return true }
        defer { close(events) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { read(events, $0.baseAddress, $0.count) }
        guard count > 0 else { return true }
        return String(decoding: buffer[..<count], as: UTF8.self).split(separator: "\n").contains("populated 0")
    }

    /// Writes `text` to the control file `name` of the cgroup open at `fd`.
    static func write(_ text: String, to name: String, in fd: Int32, path: String, for operation: String) throws(JobboxError) {
        let file = openat(fd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
        guard file >= 0 else { throw JobboxError.lastErrno(operation, path + "/" + name) }
        defer { close(file) }
        let written = text.utf8CString.withUnsafeBufferPointer { Glibc.write(file, $0.baseAddress, $0.count - 1) }
        if written != text.utf8.count { throw JobboxError.lastErrno(operation, path + "/" + name) }
    }
}
