import CLinux
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A job's scratch directory, open for the quota calls (which take a descriptor, never a path).
///
/// Trusted: the path, which root's command line gives (the batch system made the directory). Not trusted:
/// anything below it, which the job can write; nothing below it is opened. The path is reached by
/// `GuardedPath`'s rule (a symbolic link is followed only where root made it) and the directory itself opened
/// with `O_NOFOLLOW`, so a job that could write the directory above cannot point root at another directory.
struct ScratchDirectory {
    /// A read-only descriptor of the directory (ioctls and quotactl_fd refuse `O_PATH` descriptors).
    let fd: Int32
    /// The path, for messages.
    let path: String
    /// Its device and inode: the key of its record (`ProjectClaims`).
    let device: UInt64
    /// See `device`.
    let inode: UInt64
    /// statfs's f_type.
    let fileSystemType: UInt32

    /// Opens `path`; `operation` phrases an error.
    init(_ path: String, for operation: String) throws(JobboxError) {
        let (parent, name) = try GuardedPath.openParent(of: path, for: operation)
        defer { parent.close() }
        let fd = openat(parent.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ELOOP || errno == ENOTDIR {
                throw JobboxError.invalid(operation, path, "it is a symbolic link or not a directory")
            }
            throw JobboxError.lastErrno(operation, path)
        }
        var info = stat()
        var fileSystem = statfs()
        guard fstat(fd, &info) == 0, fstatfs(fd, &fileSystem) == 0 else {
            let error = JobboxError.lastErrno(operation, path)
            Glibc.close(fd)
            throw error
        }
        self.fd = fd
        self.path = path
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        fileSystemType = UInt32(truncatingIfNeeded: fileSystem.f_type)
    }

    /// Closes the descriptor.
    func close() { Glibc.close(fd) }

    /// The file system's name for messages.
    var fileSystemName: String {
        switch fileSystemType {
        case JB_BTRFS_SUPER_MAGIC: return "btrfs"
        case JB_XFS_SUPER_MAGIC: return "xfs"
        case JB_EXT4_SUPER_MAGIC: return "ext4"
        case 0x0102_1994: return "tmpfs"
        case 0x6969: return "nfs"
        case 0x794C_7630: return "overlayfs"
        default: return "file system type 0x" + String(fileSystemType, radix: 16)
        }
    }
}
