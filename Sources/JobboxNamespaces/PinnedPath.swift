import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A host path as ns-exec checked it, for the job's mount namespace to open again (`jb_pinned_path`): what a
/// descriptor opened by `GuardedPath`'s rule resolves to (absolute, no symlink in it), and the file's device and
/// inode. The namespace walks that path without following any symlink and takes nothing but the same file, so a
/// step of the path the job's user can write cannot be swapped in between.
package struct PinnedPath: Sendable, Equatable {
    /// The path the descriptor resolved to.
    package let resolved: String
    /// The file's device.
    package let device: UInt64
    /// The file's inode.
    package let inode: UInt64

    /// What the open descriptor `fd` names; nil (errno set) when that cannot be read.
    package init?(descriptor fd: Int32) {
        var info = stat()
        guard fstat(fd, &info) == 0, let resolved = GuardedPath.readLink(AT_FDCWD, "/proc/self/fd/\(fd)"), resolved.hasPrefix("/") else { return nil }
        self.resolved = resolved
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }

    /// Pins the file or directory at `path`, reached by `GuardedPath`'s rule (`openNode`): as root, a symbolic link
    /// is followed only where root made it (a bind source in `/scratch/$USER` is the user's to replace);
    /// unprivileged, as the kernel resolves it. `operation` phrases errors ("cannot bind").
    package static func open(_ path: String, for operation: String) throws(JobboxError) -> PinnedPath {
        let fd = try GuardedPath.openNode(path, for: operation)
        defer { close(fd) }
        guard let pinned = PinnedPath(descriptor: fd) else { throw JobboxError.lastErrno(operation, path) }
        return pinned
    }
}

/// The host paths of one bind as ns-exec checked them (nil: not a host path, or not checkable), and how its target
/// is looked up in the job's namespace (`NsExec.pinBinds`).
package struct PinnedBind: Sendable, Equatable {
    /// The source.
    package var source: PinnedPath?
    /// The target (the mount point, when the job has no chroot).
    package var target: PinnedPath?
    /// Whether the target is looked up without following any symlink (it lies below an earlier mount).
    package var targetWithoutSymlinks = false

    /// Neither.
    package init() {}
}
