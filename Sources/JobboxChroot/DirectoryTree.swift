import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Walking a chroot's tree without ever leaving it: no symlink is followed and no other file system is entered,
/// so removing a chroot with `/proc` or a bind still mounted in it can never reach the host's files.
enum DirectoryTree {
    /// Removes `path` and everything below it. Mounts below it in this mount namespace are detached first;
    /// a directory on another file system that is still there afterwards stops the removal with an error.
    static func remove(_ path: String) throws(JobboxError) {
        guard let top = try FileSystem.lstatIfPresent(path) else { return }
        guard FileSystem.isDirectory(top) else {
            try FileSystem.removeFile(path)
            return
        }
        try unmountAll(below: path)
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw JobboxError.lastErrno("cannot open", path) }
        try removeContents(of: fd, path: path, device: top.st_dev, mount: mountID(of: fd))
        if rmdir(path) != 0 { throw JobboxError.lastErrno("cannot remove", path) }
    }

    /// The id of the mount an open file is on (`mnt_id` of /proc/self/fdinfo), nil when unknown.
    ///
    /// A bind mount from the same file system has the same device number; only the mount id tells it apart.
    static func mountID(of fd: Int32) -> Int? {
        guard let text = try? SmallFile.read("/proc/self/fdinfo/\(fd)") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("mnt_id:") {
            return Int(line.dropFirst("mnt_id:".count).trimmingASCIISpaces())
        }
        return nil
    }

    /// Removes everything in the open directory `fd` (which it closes), staying on `device` and `mount`.
    private static func removeContents(of fd: Int32, path: String, device: dev_t, mount: Int?) throws(JobboxError) {
        guard let dir = fdopendir(fd) else {
            let error = Errno.last
            close(fd)
            throw JobboxError.system("cannot list", path, error)
        }
        defer { closedir(dir) }
        for name in FileSystem.readNames(dir) {
            let path = "\(path)/\(name)"
            var info = stat()
            guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
                let error = Errno.last
                if error == .noSuchFileOrDirectory { continue }
                throw JobboxError.system("cannot stat", path, error)
            }
            if FileSystem.isDirectory(info) {
                guard info.st_dev == device else {
                    throw JobboxError.invalid("refusing to remove", path, "another file system is mounted there")
                }
                let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else { throw JobboxError.lastErrno("cannot open", path) }
                guard mountID(of: child) == mount else {
                    close(child)
                    throw JobboxError.invalid("refusing to remove", path, "something is mounted there")
                }
                try removeContents(of: child, path: path, device: device, mount: mount)
            }
            if unlinkat(fd, name, FileSystem.isDirectory(info) ? AT_REMOVEDIR : 0) != 0 {
                let error = Errno.last
                if error != .noSuchFileOrDirectory { throw JobboxError.system("cannot remove", path, error) }
            }
        }
    }

    /// Detaches every mount at or below `path` in this mount namespace, deepest first.
    static func unmountAll(below path: String) throws(JobboxError) {
        guard let real = FileSystem.realPath(path) else { return }
        let mounts = try MountInfo.read().map(\.mountPoint).filter { isPath($0, inside: real) }
        for mountPoint in mounts.sorted(by: { $0.count > $1.count }) {
            guard umount2(mountPoint, Int32(MNT_DETACH)) != 0 else { continue }
            // Gone already: detached with a parent mount, or unmounted meanwhile.
            let error = Errno.last
            if error != .invalidArgument && error != .noSuchFileOrDirectory { throw JobboxError.system("cannot unmount", mountPoint, error) }
        }
    }

    /// The bytes `path` takes on disk (blocks, each hard-linked file once), not crossing into other file systems.
    static func diskUsage(_ path: String) -> UInt64 {
        var top = stat()
        guard lstat(path, &top) == 0 else { return 0 }
        var seen = Set<UInt64>()
        var total = UInt64(top.st_blocks) * 512
        if FileSystem.isDirectory(top) {
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd >= 0 { total += usage(of: fd, device: top.st_dev, seen: &seen) }
        }
        return total
    }

    private static func usage(of fd: Int32, device: dev_t, seen: inout Set<UInt64>) -> UInt64 {
        guard let dir = fdopendir(fd) else {
            close(fd)
            return 0
        }
        defer { closedir(dir) }
        var total: UInt64 = 0
        for name in FileSystem.readNames(dir) {
            var info = stat()
            guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0, info.st_dev == device else { continue }
            if info.st_nlink > 1 && !FileSystem.isDirectory(info) {
                guard seen.insert(UInt64(info.st_ino)).inserted else { continue }
            }
            total += UInt64(info.st_blocks) * 512
            if FileSystem.isDirectory(info) {
                let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if child >= 0 { total += usage(of: child, device: device, seen: &seen) }
            }
        }
        return total
    }

    /// Whether `path` is `directory` or below it (both absolute, without trailing slashes).
    static func isPath(_ path: String, inside directory: String) -> Bool {
        if directory == "/" { return path.hasPrefix("/") }
        return path == directory || path.hasPrefix(directory + "/")
    }
}
