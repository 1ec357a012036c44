import CLinux
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The kernel mechanism holding a scratch directory's quota.
package enum ScratchQuotaBackend: Sendable, Equatable, CustomStringConvertible {
    /// btrfs: the directory is a subvolume, limited by its level-0 qgroup `0/<subvolume>`.
    case btrfsQgroup(subvolume: UInt64)
    /// XFS or ext4: the directory and what is made in it carry `project`, whose quota limits them.
    case projectQuota(project: UInt32)

    package var description: String {
        switch self {
        case .btrfsQgroup(let subvolume): return "btrfs qgroup 0/\(subvolume)"
        case .projectQuota(let project): return "project \(project)"
        }
    }
}

/// What a scratch directory's quota counts, read from the quota itself (no walk of the directory).
package struct ScratchUsage: Sendable, Equatable {
    /// Where the figures come from.
    package var backend: ScratchQuotaBackend
    /// Bytes charged: btrfs's referenced bytes (data and the subvolume's metadata), or the project's space.
    package var bytes: UInt64
    /// Inodes charged (files, directories, links; the directory itself included), nil where the quota does not
    /// count them (btrfs).
    package var files: UInt64?
    /// The byte limit, nil when none is set.
    package var byteLimit: UInt64?
    /// The inode limit, nil when none is set.
    package var fileLimit: UInt64?

    /// A usage from its parts.
    package init(backend: ScratchQuotaBackend, bytes: UInt64, files: UInt64?, byteLimit: UInt64?, fileLimit: UInt64?) {
        self.backend = backend
        self.bytes = bytes
        self.files = files
        self.byteLimit = byteLimit
        self.fileLimit = fileLimit
    }

    /// Whether the usage stands at a limit, nil when no limit is set. A write the quota refused leaves the usage
    /// just under the byte limit (btrfs reserves room for metadata before it writes), so "at" means within 1/64 of
    /// the limit or 256 KiB, whichever is more; for inodes, exactly at it.
    package var limitReached: Bool? {
        guard byteLimit != nil || fileLimit != nil else { return nil }
        if let limit = byteLimit, bytes + max(limit / 64, 256 * 1024) >= limit { return true }
        if let limit = fileLimit, let files, files >= limit { return true }
        return false
    }
}

/// Where scratch quotas keep their records and which project ids they may use (from `JobboxConfig`).
package struct ScratchQuotaSettings: Sendable {
    /// `STATE_DIR`: records of project ids given to directories, and the lock taken while choosing one.
    package var stateDirectory: String
    /// `SCRATCH_QUOTA_PROJECT_IDS`.
    package var projectIDs: ProjectIDRange

    /// Settings from their parts.
    package init(stateDirectory: String, projectIDs: ProjectIDRange) {
        self.stateDirectory = stateDirectory
        self.projectIDs = projectIDs
    }

    /// The configuration's.
    package init(_ config: JobboxConfig) {
        self.init(stateDirectory: config.stateDir, projectIDs: config.scratchQuotaProjectIDs)
    }
}

/// A job's scratch directory limited in bytes (and inodes) by the file system's own quota, so the job gets
/// EDQUOT (btrfs, ext4) or ENOSPC (XFS) past it while the directory stays where it is, with everything in it:
/// the batch system transfers the output out of it after the job. Root only (the kernel's quota calls need
/// CAP_SYS_ADMIN). Every call works on one descriptor of the directory (`ScratchDirectory`).
///
/// - btrfs: the directory must be a subvolume; its level-0 qgroup, which btrfs made with it, gets a limit on
///   referenced bytes. qgroup ids are subvolume ids, unique on the file system, so two jobs' quotas cannot mix.
///   btrfs counts no inodes: an inode limit is refused.
/// - XFS, ext4 (project feature, mounted with prjquota): the directory gets a project id from
///   `SCRATCH_QUOTA_PROJECT_IDS` and the inherit flag, so everything made in it afterwards carries that id, and
///   the project gets the limits. The id is chosen under a lock in `STATE_DIR` among ids the file system charges
///   nothing to (no bytes, no inodes), starting at a random one, and is recorded in
///   `STATE_DIR/scratch-quota/<device>-<inode>` (root's): an id stays taken while any file carries it, so two
///   concurrent jobs never share one, and a directory left behind keeps its id until it is deleted.
package enum ScratchQuota {
    /// Limits `path` to `limit`. Nothing is left half-made: a step that fails undoes the ones before it.
    @discardableResult
    package static func apply(
        _ limit: ScratchQuotaLimit, to path: String, settings: ScratchQuotaSettings, expecting identity: (device: UInt64, inode: UInt64)? = nil
    ) throws(JobboxError) -> ScratchQuotaBackend {
        let operation = "cannot set a scratch quota on"
        let (directory, backend) = try open(path, for: operation)
        defer { directory.close() }
        // The directory the caller opened before (ns-exec's JobScratch), not one renamed to its path since.
        if let identity, identity.device != directory.device || identity.inode != directory.inode {
            throw JobboxError.invalid(operation, path, "another directory took its place")
        }
        switch backend {
        case .btrfsQgroup(let subvolume):
            guard limit.inodes == nil else {
                throw JobboxError.invalid(operation, path, "btrfs qgroups count bytes, not inodes: give --scratch-quota SIZE without ,INODES")
            }
            if jb_btrfs_qgroup_limit(directory.fd, subvolume, limit.bytes) != 0 {
                throw btrfsError(operation, directory, subvolume: subvolume, Errno.last)
            }
            return backend
        case .projectQuota:
            let claims = try ProjectClaims(settings, operation: operation)
            defer { claims.close() }
            return .projectQuota(project: try claims.claim(directory, limit: limit, operation: operation))
        }
    }

    /// Removes the limit `apply` set on `path`; returns whether there was one. The accounting stays (btrfs keeps
    /// the subvolume's qgroup; files keep their project id until they are deleted), so the figures stay readable.
    @discardableResult
    package static func remove(from path: String, settings: ScratchQuotaSettings) throws(JobboxError) -> Bool {
        let operation = "cannot remove the scratch quota of"
        let (directory, backend) = try open(path, for: operation)
        defer { directory.close() }
        switch backend {
        case .btrfsQgroup(let subvolume):
            let group: jb_btrfs_qgroup
            switch qgroup(directory, subvolume) {
            case .success(let read): group = read
            // Quotas off or no qgroup: there is no limit to remove.
            case .failure(let error) where error == .noSuchFileOrDirectory || error == .socketNotConnected: return false
            case .failure(let error): throw btrfsError(operation, directory, subvolume: subvolume, error)
            }
            guard group.max_referenced != UInt64.max else { return false }
            if jb_btrfs_qgroup_limit(directory.fd, subvolume, UInt64.max) != 0 {
                throw btrfsError(operation, directory, subvolume: subvolume, Errno.last)
            }
            return true
        case .projectQuota:
            let claims = try ProjectClaims(settings, operation: operation)
            defer { claims.close() }
            return try claims.release(directory, operation: operation)
        }
    }

    /// What the quota of `path` counts now. On btrfs the figures are those of the last transaction commit
    /// (`commit=`, 30 s by default; `sync` commits).
    package static func usage(of path: String, settings: ScratchQuotaSettings) throws(JobboxError) -> ScratchUsage {
        let operation = "cannot read the scratch quota of"
        let (directory, backend) = try open(path, for: operation)
        defer { directory.close() }
        switch backend {
        case .btrfsQgroup(let subvolume):
            let group = try qgroup(directory, subvolume).mapError { btrfsError(operation, directory, subvolume: subvolume, $0) }.get()
            return ScratchUsage(
                backend: backend, bytes: group.referenced, files: nil,
                byteLimit: group.max_referenced == UInt64.max ? nil : group.max_referenced, fileLimit: nil)
        case .projectQuota:
            let none = JobboxError.invalid(operation, path, "it has no scratch quota (ns-exec --scratch-quota gives it one)")
            let claims: ProjectClaims
            do throws(JobboxError) {
                claims = try ProjectClaims(settings, operation: operation, creating: false)
            } catch  where error.errno == .noSuchFileOrDirectory {
                // No quota was ever given on this node since STATE_DIR was made.
                throw none
            }
            defer { claims.close() }
            guard let project = claims.recorded(directory) else { throw none }
            let quota = try ProjectClaims.readQuota(directory, project: project, operation: operation)
            return ScratchUsage(
                backend: .projectQuota(project: project), bytes: quota.bytes, files: quota.inodes,
                byteLimit: quota.byte_limit == 0 ? nil : quota.byte_limit, fileLimit: quota.inode_limit == 0 ? nil : quota.inode_limit)
        }
    }

    /// Opens `path` and tells which back end its file system offers (a project quota's id is not known yet: 0);
    /// any other file system is refused.
    private static func open(_ path: String, for operation: String) throws(JobboxError) -> (ScratchDirectory, ScratchQuotaBackend) {
        let directory = try ScratchDirectory(path, for: operation)
        do throws(JobboxError) {
            switch directory.fileSystemType {
            case JB_BTRFS_SUPER_MAGIC: return (directory, .btrfsQgroup(subvolume: try btrfsSubvolume(directory, operation: operation)))
            case JB_XFS_SUPER_MAGIC, JB_EXT4_SUPER_MAGIC: return (directory, .projectQuota(project: 0))
            default: throw unsupported(operation, directory)
            }
        } catch {
            directory.close()
            throw error
        }
    }

    /// The qgroup of `subvolume` as btrfs counts it, or why it cannot be read.
    private static func qgroup(_ directory: ScratchDirectory, _ subvolume: UInt64) -> Result<jb_btrfs_qgroup, Errno> {
        var group = jb_btrfs_qgroup()
        return jb_btrfs_qgroup_read(directory.fd, subvolume, &group) == 0 ? .success(group) : .failure(Errno.last)
    }

    /// The subvolume whose root `directory` is.
    private static func btrfsSubvolume(_ directory: ScratchDirectory, operation: String) throws(JobboxError) -> UInt64 {
        guard directory.inode == UInt64(JB_BTRFS_SUBVOLUME_ROOT_INODE) else {
            throw JobboxError.invalid(
                operation, directory.path,
                "it is on btrfs but not a subvolume (btrfs limits subvolumes: make the scratch dir with btrfs subvolume create)")
        }
        var subvolume: UInt64 = 0
        guard jb_btrfs_subvolume_id(directory.fd, &subvolume) == 0 else { throw JobboxError.lastErrno(operation, directory.path) }
        return subvolume
    }

    private static func btrfsError(_ operation: String, _ directory: ScratchDirectory, subvolume: UInt64, _ error: Errno) -> JobboxError {
        switch error {
        case .socketNotConnected:
            return JobboxError.invalid(operation, directory.path, "quotas are off on its btrfs file system (btrfs quota enable MOUNTPOINT turns them on)")
        case .noSuchFileOrDirectory:
            return JobboxError.invalid(operation, directory.path, "its subvolume has no qgroup 0/\(subvolume) (btrfs qgroup create 0/\(subvolume) makes it)")
        case .notPermitted, .permissionDenied:
            return JobboxError.invalid(operation, directory.path, "btrfs qgroups need root (\(error))")
        default:
            return JobboxError.system(operation, directory.path, error)
        }
    }

    private static func unsupported(_ operation: String, _ directory: ScratchDirectory) -> JobboxError {
        JobboxError.invalid(
            operation, directory.path,
            "it is on \(directory.fileSystemName), which has no quota jobbox can use (a btrfs subvolume, or XFS or ext4 with project quotas)")
    }
}
