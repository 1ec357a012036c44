import CLinux
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The identity of a file: device and inode, which survive renames and are the same seen from any mount
/// namespace or chroot.
package struct FileIdentity: Sendable, Hashable {
    /// `st_dev`.
    package let device: UInt64
    /// `st_ino`.
    package let inode: UInt64
}

/// The few file system calls chroot-tool makes, as throwing Swift functions without Foundation.
enum FileSystem {
    /// `lstat(2)`, nil when `path` does not exist.
    static func lstatIfPresent(_ path: String) throws(JobboxError) -> stat? {
        var info = stat()
        if lstat(path, &info) == 0 { return info }
        let error = Errno.last
        if error == .noSuchFileOrDirectory { return nil }
        throw JobboxError.system("cannot stat", path, error)
    }

    /// `stat(2)` (following symlinks), nil when it fails.
    static func statFollowing(_ path: String) -> stat? {
        var info = stat()
        return stat(path, &info) == 0 ? info : nil
    }

    /// The identity of what `path` resolves to (following symlinks and /proc magic links), nil when it fails.
    static func identity(_ path: String) -> FileIdentity? {
        statFollowing(path).map { FileIdentity(device: UInt64($0.st_dev), inode: UInt64($0.st_ino)) }
    }

    static func isDirectory(_ info: stat) -> Bool { info.st_mode & S_IFMT == S_IFDIR }
    static func isSymlink(_ info: stat) -> Bool { info.st_mode & S_IFMT == S_IFLNK }

    /// Whether `path` is a real directory (not a symlink to one).
    static func isRealDirectory(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && isDirectory(info)
    }

    /// The names in directory `path` except `.` and `..`; empty when it does not exist.
    static func entries(_ path: String) throws(JobboxError) -> [String] {
        guard let dir = opendir(path) else {
            let error = Errno.last
            if error == .noSuchFileOrDirectory { return [] }
            throw JobboxError.system("cannot list", path, error)
        }
        defer { closedir(dir) }
        return readNames(dir)
    }

    /// Reads every name from an open directory stream except `.` and `..`.
    static func readNames(_ dir: OpaquePointer) -> [String] {
        DirectoryListing.entries(of: dir).map(\.name)
    }

    /// `readlink(2)`, nil when `path` is not a symlink or cannot be read.
    static func readLink(_ path: String) -> String? {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(PATH_MAX) + 1) { buffer -> String? in
            guard let base = buffer.baseAddress else { return nil }
            let count = readlink(path, base, Int(PATH_MAX))
            guard count >= 0 else { return nil }
            return String(decoding: UnsafeRawBufferPointer(start: base, count: count), as: UTF8.self)
        }
    }

    /// `realpath(3)`, nil when it fails.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Creates directory `path` with `mode`; an existing directory is fine when `existingIsFine`.
    static func makeDirectory(_ path: String, mode: mode_t, existingIsFine: Bool = false) throws(JobboxError) {
        if mkdir(path, mode) == 0 {
            // mkdir's mode is masked by the umask; a chroot's root must be exactly what was asked.
            _ = chmod(path, mode)
            return
        }
        let error = Errno.last
        if error == .fileExists && existingIsFine && isRealDirectory(path) { return }
        throw JobboxError.system("cannot create directory", path, error)
    }

    /// Creates `path` and its missing parents (mode 0755).
    static func makeDirectories(_ path: String) throws(JobboxError) {
        if isRealDirectory(path) { return }
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if !isRealDirectory(prefix) { try makeDirectory(prefix, mode: 0o755, existingIsFine: true) }
        }
    }

    /// Writes `text` to a new file `path` (replacing it) with `mode`, and flushes it to disk.
    static func writeFile(_ path: String, _ text: String, mode: FilePermissions = [.ownerReadWrite, .groupRead, .otherRead]) throws(JobboxError) {
        do {
            let fd = try FileDescriptor.open(path, .writeOnly, options: [.create, .truncate, .closeOnExec, .noFollow], permissions: mode)
            try fd.closeAfter {
                try fd.writeText(text)
                _ = fsync(fd.rawValue)
            }
        } catch let error as Errno {
            throw JobboxError.system("cannot write", path, error)
        } catch {
            throw JobboxError.system("cannot write", path, .ioError)
        }
    }

    /// Appends `line` to `path` (created when missing) in one write, and flushes it to disk.
    static func appendLine(_ path: String, _ line: String) throws(JobboxError) {
        do {
            let fd = try FileDescriptor.open(
                path, .writeOnly, options: [.create, .append, .closeOnExec, .noFollow], permissions: [.ownerReadWrite, .groupRead, .otherRead])
            try fd.closeAfter {
                try fd.writeText(line + "\n")
                _ = fsync(fd.rawValue)
            }
        } catch let error as Errno {
            throw JobboxError.system("cannot write", path, error)
        } catch {
            throw JobboxError.system("cannot write", path, .ioError)
        }
    }

    /// Flushes directory `path` itself, so a rename or a new entry in it survives a crash.
    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    /// Flushes the whole file system that holds `path` (a freshly built tree, before it becomes visible).
    static func syncFileSystem(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = jb_syncfs(fd)
        close(fd)
    }

    /// Removes file or symlink `path`; a missing one is fine.
    static func removeFile(_ path: String) throws(JobboxError) {
        guard unlink(path) != 0 else { return }
        let error = Errno.last
        if error != .noSuchFileOrDirectory { throw JobboxError.system("cannot remove", path, error) }
    }
}
