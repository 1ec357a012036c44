import CLinux
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The project ids given to scratch directories on XFS and ext4: chosen under `STATE_DIR/scratch-quota/lock`,
/// recorded in `STATE_DIR/scratch-quota/<device>-<inode>` (the directory's, holding the id in decimal).
///
/// Trusted: `STATE_DIR`, which must be root's alone all the way up (`GuardedPath.openTrustedDirectory`), and the
/// records in it, which only root writes. Not trusted: the project id the directory carries, which its owner can
/// change (the kernel lets a file's owner set it outside a user namespace): it is never used to pick which
/// project's limit is changed, only checked against the record before a limit is removed.
struct ProjectClaims {
    /// The records' directory.
    private let directory: GuardedDirectory
    /// The lock file's descriptor, holding the lock (released on close, or when the process ends).
    private let lock: Int32
    /// The ids that may be given.
    private let range: ProjectIDRange

    /// The name of the records' directory below `STATE_DIR`.
    static let directoryName = "scratch-quota"

    /// Opens (with `creating`, makes) the records' directory and takes the lock.
    init(_ settings: ScratchQuotaSettings, operation: String, creating: Bool = true) throws(JobboxError) {
        let path = AbsolutePath.join(settings.stateDirectory, Self.directoryName)
        let stateOperation = "cannot use state directory"
        let directory = try GuardedPath.openTrustedDirectory(path, creating: creating, for: stateOperation)
        let lock = openat(directory.fd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard lock >= 0 else {
            let error = JobboxError.lastErrno(stateOperation, path + "/lock")
            directory.close()
            throw error
        }
        do {
            try FileLock.lockExclusive(lock)
        } catch {
            Glibc.close(lock)
            directory.close()
            throw JobboxError.system(stateOperation, path + "/lock", error)
        }
        self.directory = directory
        self.lock = lock
        range = settings.projectIDs
    }

    /// Releases the lock.
    func close() {
        Glibc.close(lock)
        directory.close()
    }

    private static func recordName(_ scratch: ScratchDirectory) -> String { "\(scratch.device)-\(scratch.inode)" }

    /// The project id recorded for `scratch`, if any.
    func recorded(_ scratch: ScratchDirectory) -> UInt32? {
        let fd = openat(directory.fd, Self.recordName(scratch), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[0..<count], as: UTF8.self).trimmingASCIISpaces()
        guard let project = UInt32(text), range.contains(project) else { return nil }
        return project
    }

    /// Gives `scratch` a free project id with `limit`, or the id already recorded for it (ns-exec run again on the
    /// same directory); returns the id.
    func claim(_ scratch: ScratchDirectory, limit: ScratchQuotaLimit, operation: String) throws(JobboxError) -> UInt32 {
        var current: UInt32 = 0
        var inherit: Int32 = 0
        guard jb_project_get(scratch.fd, &current, &inherit) == 0 else {
            throw Self.error(operation, scratch, Errno.last)
        }
        // ext4 counts projects as soon as it has the quota feature, but limits them only when mounted with prjquota.
        switch jb_project_quota_enforced(scratch.fd) {
        case 1: break
        case 0: throw Self.error(operation, scratch, .noSuchProcess)
        default: throw Self.error(operation, scratch, Errno.last)
        }
        let mine = recorded(scratch).flatMap { $0 == current ? $0 : nil }
        if mine == nil && current != 0 && !range.contains(current) {
            throw JobboxError.invalid(
                operation, scratch.path,
                "it already carries project id \(current), outside SCRATCH_QUOTA_PROJECT_IDS \(range) (a project quota of the site's)")
        }
        let project: UInt32
        if let mine { project = mine } else { project = try freeProject(scratch, operation: operation) }
        if jb_project_quota_set(scratch.fd, project, limit.bytes, limit.inodes ?? 0) != 0 {
            throw Self.error(operation, scratch, Errno.last)
        }
        if jb_project_set(scratch.fd, project, 1) != 0 {
            let error = Self.error(operation, scratch, Errno.last)
            if mine == nil { _ = jb_project_quota_set(scratch.fd, project, 0, 0) }
            throw error
        }
        do throws(JobboxError) {
            try write(project, for: scratch)
        } catch {
            _ = jb_project_set(scratch.fd, current, inherit)
            if mine == nil { _ = jb_project_quota_set(scratch.fd, project, 0, 0) }
            throw JobboxError.invalid(operation, scratch.path, "cannot record its project id: \(error.description)")
        }
        return project
    }

    /// Removes the limit of the project recorded for `scratch` and the record; false when there is none. The
    /// limit is left when the directory no longer carries the recorded id (a record of an earlier directory with
    /// the same inode number must not clear another job's limit); a limit left on an id no file carries is
    /// replaced when the id is given again.
    func release(_ scratch: ScratchDirectory, operation: String) throws(JobboxError) -> Bool {
        guard let project = recorded(scratch) else { return false }
        var current: UInt32 = 0
        var inherit: Int32 = 0
        if jb_project_get(scratch.fd, &current, &inherit) == 0, current == project {
            if jb_project_quota_set(scratch.fd, project, 0, 0) != 0 { throw Self.error(operation, scratch, Errno.last) }
        }
        if unlinkat(directory.fd, Self.recordName(scratch), 0) != 0 && errno != ENOENT {
            throw JobboxError.lastErrno(operation, scratch.path)
        }
        return true
    }

    /// What the file system charges to `project`.
    static func readQuota(_ scratch: ScratchDirectory, project: UInt32, operation: String) throws(JobboxError) -> jb_project_quota {
        var quota = jb_project_quota()
        guard jb_project_quota_get(scratch.fd, project, &quota) == 0 else { throw error(operation, scratch, Errno.last) }
        return quota
    }

    /// An id of the range that the file system charges nothing to, trying from a random one on.
    private func freeProject(_ scratch: ScratchDirectory, operation: String) throws(JobboxError) -> UInt32 {
        let size = UInt64(range.upper - range.lower) + 1
        let start = UInt64.random(in: 0..<size)
        // Each try is one quotactl; a range so full that 10,000 tries find nothing is a leak to report, not to hide.
        for step in 0..<min(size, 10_000) {
            let candidate = range.lower + UInt32((start + step) % size)
            let quota = try Self.readQuota(scratch, project: candidate, operation: operation)
            if quota.bytes == 0 && quota.inodes == 0 { return candidate }
        }
        throw JobboxError.invalid(
            operation, scratch.path, "no free project id in SCRATCH_QUOTA_PROJECT_IDS \(range) (every one tried still has files charged to it)")
    }

    /// Writes the record for `scratch`: a new file of an unpredictable name renamed into place.
    private func write(_ project: UInt32, for scratch: ScratchDirectory) throws(JobboxError) {
        let path = AbsolutePath.join(directory.path, Self.recordName(scratch))
        try GuardedFile.replace(path, with: "\(project)\n", permissions: [.ownerReadWrite], for: "cannot write")
    }

    private static func error(_ operation: String, _ scratch: ScratchDirectory, _ error: Errno) -> JobboxError {
        switch error {
        case .noSuchProcess:
            return JobboxError.invalid(
                operation, scratch.path,
                "project quotas are off on its \(scratch.fileSystemName) file system (mount it with prjquota; ext4 also needs mkfs.ext4 -O quota,project)")
        case .noFunction where jb_quotactl_fd_exists() == 0:
            return JobboxError.invalid(operation, scratch.path, "this kernel has no quotactl_fd (Linux 5.14 or later)")
        case .noFunction:
            // The kernel's answer for a file system with no quota at all (XFS mounted without any quota option).
            return Self.error(operation, scratch, .noSuchProcess)
        case .notSupported, .notSupportedOnSocket, .inappropriateIOCTLForDevice:
            return JobboxError.invalid(
                operation, scratch.path, "its \(scratch.fileSystemName) file system has no project ids (ext4 needs mkfs.ext4 -O quota,project)")
        case .notPermitted, .permissionDenied:
            return JobboxError.invalid(operation, scratch.path, "project quotas need root (\(error))")
        default:
            return JobboxError.system(operation, scratch.path, error)
        }
    }
}
