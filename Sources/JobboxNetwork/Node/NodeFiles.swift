import CLinux
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The node service's lock, `STATE_DIR/netacct/node.lock`: held while a service runs (one per node), and what
/// `--cleanup --stale` tries to know that none does.
struct NodeLock {
    let directory: String
    var path: String { directory + "/node.lock" }
    private var fd: Int32 = -1

    /// The lock in netacct's state directory (`STATE_DIR/netacct`).
    init(directory: String) {
        self.directory = directory
    }

    /// Takes the lock without waiting: whether it was free.
    mutating func take() throws(JobboxError) -> Bool {
        let parent = try GuardedPath.openTrustedDirectory(directory, creating: true, for: "cannot use state directory")
        defer { parent.close() }
        let opened = openat(parent.fd, "node.lock", O_CREAT | O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0o600)
        if opened < 0 { throw JobboxError.lastErrno("cannot open lock", path) }
        var info = stat()
        guard fstat(opened, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(opened)
            throw JobboxError.invalid("cannot open lock", path, "it is not a regular file")
        }
        do throws(Errno) {
            try FileLock.lockExclusive(opened, wait: false)
        } catch {
            close(opened)
            if error == .wouldBlock { return false }
            throw JobboxError.system("cannot lock", path, error)
        }
        fd = opened
        return true
    }

    /// Lets the lock go.
    mutating func release() {
        if fd >= 0 { close(fd) }
        fd = -1
    }
}

/// The service's directory in bpffs.
enum NodePins {
    static let bpffsMount = "/sys/fs/bpf"

    /// Makes sure `pinDirectory` exists on a bpf filesystem: bpffs is mounted at /sys/fs/bpf when it is not
    /// (Debian does not mount it) and the directory is below it, and missing directories are made (0700).
    static func prepare(_ pinDirectory: String) throws(JobboxError) {
        if pinDirectory.hasPrefix(bpffsMount + "/"), jb_is_bpffs(bpffsMount) == 0 {
            if jb_mount_bpffs(bpffsMount) != 0 { throw JobboxError.lastErrno("cannot mount bpffs at", bpffsMount) }
        }
        var prefix = ""
        for component in pinDirectory.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST { throw JobboxError.lastErrno("cannot make the pin directory", prefix) }
        }
        var info = stat()
        guard lstat(pinDirectory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == 0 else {
            throw JobboxError.invalid("cannot use the pin directory", pinDirectory, "it is not a directory of root's")
        }
        guard jb_is_bpffs(pinDirectory) == 1 else {
            throw JobboxError.invalid(
                "cannot use the pin directory", pinDirectory, "it is not on a bpf filesystem (mount one, or set NETACCT_PIN_DIR below /sys/fs/bpf)")
        }
    }
}

extension NodePins {
    /// Opens `pinDirectory` for a job's run to read the service's pins from (an `O_PATH` descriptor the caller
    /// closes; its pins are then named `/proc/self/fd/<fd>/<pin>`, so the directory checked is the one read), or nil
    /// when it does not exist (no service ran). Believed only when root alone could have put what is there: each
    /// component is reached without following a symbolic link and is root's, each directory above it is writable by
    /// root alone or sticky (bpffs's root is 1777 unless mounted otherwise: a user may add entries beside root's
    /// there but not replace them), and the directory itself is writable by root alone (`prepare` makes it 0700).
    /// The service itself trusts the path (`prepare`): it made the directory.
    static func openForReading(_ pinDirectory: String) throws(JobboxError) -> Int32? {
        var fd = open("/", JB_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw JobboxError.lastErrno("cannot open", "/") }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw JobboxError.lastErrno("cannot open", "/")
        }
        for component in pinDirectory.split(separator: "/") {
            let above = info
            let next = openat(fd, String(component), JB_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let saved = errno
            close(fd)
            guard next >= 0 else {
                if saved == ENOENT { return nil }
                throw JobboxError.system("cannot open the pin directory", pinDirectory, Errno(rawValue: saved))
            }
            fd = next
            guard fstat(fd, &info) == 0, info.st_uid == 0, GuardedPath.isRootOnly(above) || above.st_mode & S_ISVTX != 0 else {
                close(fd)
                throw JobboxError.invalid("cannot trust the pin directory", pinDirectory, "a directory of its path is not root's, or others may replace it")
            }
        }
        guard GuardedPath.isRootOnly(info) else {
            close(fd)
            throw JobboxError.invalid("cannot trust the pin directory", pinDirectory, "others may write it")
        }
        return fd
    }
}

/// The service's listening socket.
enum NodeSocket {
    /// Binds and listens at `path`, in a directory root's alone (made 0755 when missing), mode 0666 so that
    /// every user can connect; a socket left there by a dead service is replaced, anything else is refused.
    static func listen(at path: String) throws(JobboxError) -> Int32 {
        let (directory, name) = GuardedPath.split(path)
        let parent = try GuardedPath.openTrustedDirectory(directory, creating: true, for: "cannot make the service's socket")
        defer { parent.close() }
        var info = stat()
        if fstatat(parent.fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else {
                throw JobboxError.invalid("cannot make the service's socket", path, "something other than a socket is there")
            }
            if unlinkat(parent.fd, name, 0) != 0 { throw JobboxError.lastErrno("cannot replace the old socket", path) }
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw JobboxError.invalid("cannot make the service's socket", path, "the path is longer than a Unix socket's")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in bytes.enumerated() { buffer[index] = byte }
        }
        let fd = jb_unix_stream_socket()
        guard fd >= 0 else { throw JobboxError.lastErrno("cannot make the service's socket", path) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, fchmodat(parent.fd, name, 0o666, 0) == 0, Glibc.listen(fd, 128) == 0 else {
            let error = JobboxError.lastErrno("cannot make the service's socket", path)
            close(fd)
            _ = unlinkat(parent.fd, name, 0)
            throw error
        }
        return fd
    }

    /// Closes the socket and removes its file (when it is still a socket).
    static func remove(_ fd: Int32, at path: String) {
        close(fd)
        removeStale(path)
    }

    /// Removes the socket file at `path` if a socket is there; whether one was.
    @discardableResult
    static func removeStale(_ path: String) -> Bool {
        let (directory, name) = GuardedPath.split(path)
        guard let parent = try? GuardedPath.openTrustedDirectory(directory, creating: false, for: "cannot remove the service's socket") else { return false }
        defer { parent.close() }
        var info = stat()
        guard fstatat(parent.fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0, info.st_mode & S_IFMT == S_IFSOCK else { return false }
        return unlinkat(parent.fd, name, 0) == 0
    }
}
