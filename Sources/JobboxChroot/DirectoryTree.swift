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
    /// Directories deeper than this below the top are moved up to it before they are entered (`remove`).
    static let maximumDepth = 64

    /// Removes `path` and everything below it. Mounts below it in this mount namespace are detached first;
    /// a directory on another file system that is still there afterwards stops the removal with an error.
    ///
    /// The walk holds a descriptor per level, and a version's `/tmp` is any user's to write: a tree nested past
    /// the descriptor limit would stop the removal (and every later `gc`) with EMFILE. So a directory
    /// `maximumDepth` levels down is renamed to the top instead of entered, and the top is walked again until
    /// nothing was moved: everything stays inside `path`, and at most `maximumDepth` descriptors are open.
    static func remove(_ path: String) throws(JobboxError) {
        guard let top = try FileSystem.lstatIfPresent(path) else { return }
        guard FileSystem.isDirectory(top) else {
            try FileSystem.removeFile(path)
            return
        }
        try unmountAll(below: path)
        var walk = Walk(device: top.st_dev)
        repeat {
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw JobboxError.lastErrno("cannot open", path) }
            walk.mount = mountID(of: fd)
            walk.top = fd
            walk.moved = 0
            try removeContents(of: fd, path: path, depth: 0, walk: &walk)
            walk.passes += 1
            if walk.passes > 10_000 { throw JobboxError.invalid("cannot remove", path, "something keeps filling it") }
        } while walk.moved > 0
        if rmdir(path) != 0 { throw JobboxError.lastErrno("cannot remove", path) }
    }

    /// One removal: the file system and mount it stays on, the top directory's descriptor (valid during a pass),
    /// and how many directories a pass moved up.
    struct Walk {
        let device: dev_t
        var mount: Int?
        var top: Int32 = -1
        var moved = 0
        var passes = 0
        var nextName = 0
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

    /// Removes everything in the open directory `fd` (which it closes), `depth` levels below the top, staying on
    /// the walk's file system and mount.
    private static func removeContents(of fd: Int32, path: String, depth: Int, walk: inout Walk) throws(JobboxError) {
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
                guard info.st_dev == walk.device else {
                    throw JobboxError.invalid("refusing to remove", path, "another file system is mounted there")
                }
                if depth + 1 >= maximumDepth, try moveToTop(name, in: fd, path: path, walk: &walk) { continue }
                let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else { throw JobboxError.lastErrno("cannot open", path) }
                guard mountID(of: child) == walk.mount else {
                    close(child)
                    throw JobboxError.invalid("refusing to remove", path, "something is mounted there")
                }
                try removeContents(of: child, path: path, depth: depth + 1, walk: &walk)
            }
            if unlinkat(fd, name, FileSystem.isDirectory(info) ? AT_REMOVEDIR : 0) != 0 {
                let error = Errno.last
                if error != .noSuchFileOrDirectory { throw JobboxError.system("cannot remove", path, error) }
            }
        }
    }

    /// Renames the directory `name` in `fd` (`path`, for messages) to a new name in the walk's top directory; false
    /// when it is gone.
    private static func moveToTop(_ name: String, in fd: Int32, path: String, walk: inout Walk) throws(JobboxError) -> Bool {
        while true {
            walk.nextName += 1
            let newName = ".jobbox-deep-\(walk.nextName)"
            if renameat(fd, name, walk.top, newName) == 0 {
                walk.moved += 1
                return true
            }
            let error = Errno.last
            if error == .noSuchFileOrDirectory { return false }
            // A name taken by an earlier move (or by the tree itself): try the next.
            if error != .directoryNotEmpty && error != .fileExists && error != .notDirectory { throw JobboxError.system("cannot move up", path, error) }
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
