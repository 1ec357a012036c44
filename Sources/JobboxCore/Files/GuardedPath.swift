import CLinux
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The one place that enforces jobbox's rule for privileged tools: **as root, nothing the job can write is followed
/// or believed.**
///
/// A path is resolved one component at a time from `/`, each directory opened relative to the one before with
/// `O_NOFOLLOW`. A directory is *trusted* when it and every directory above it are owned by root and writable by
/// neither group nor others: only root can have put anything there. A symbolic link is followed only where it
/// lies in a trusted directory (root made it, as `/var/run -> /run`); anywhere else (the job's scratch dir, its
/// `.jobbox`, `/tmp`) it is refused. Files in untrusted directories are created under unpredictable names with
/// `O_EXCL` and renamed into place (never opened through a name the job could have planted), and read only when
/// they are regular files with a single link and within a size limit.
///
/// Run by an unprivileged user (the job's own wrapper), nothing here protects anyone: the job could do the same
/// itself. Paths then resolve as the kernel resolves them, so users' own symlinks keep working.
package enum GuardedPath {
    /// At most this many symbolic links are followed in one path (the kernel's own limit).
    static let maxSymbolicLinks = 40

    /// Whether this process can write what the job cannot: then every job-writable path is handled guardedly.
    package static var isPrivileged: Bool { geteuid() == 0 }

    /// Whether `info` describes a directory only root can change: owned by root, no group or other write bit.
    package static func isRootOnly(_ info: stat) -> Bool {
        info.st_uid == 0 && info.st_mode & (S_IWGRP | S_IWOTH) == 0
    }

    /// Opens the directory at `path` (an `O_PATH` descriptor) without following a symbolic link that lies in a
    /// directory the job could write; `operation` phrases the error ("cannot write ad file"). `strict` walks by
    /// the rule even unprivileged (for a chroot, which must be root's alone whoever enters it).
    package static func openDirectory(_ path: String, for operation: String, strict: Bool = isPrivileged) throws(JobboxError) -> GuardedDirectory {
        var links = 0
        return try resolveDirectory(absolute(path), links: &links, operation: operation, shown: path, strict: strict)
    }

    /// Opens the file or directory at `path` as an `O_PATH` descriptor (the caller closes it): as root, a final
    /// symbolic link is followed only where root made it and refused anywhere else; unprivileged, as the kernel
    /// resolves it. For what is looked at, never read, by descriptor (a device node, a bind's source).
    package static func openNode(_ path: String, for operation: String) throws(JobboxError) -> Int32 {
        if absolute(path) == "/" { return try openDirectory("/", for: operation).fd }
        let (parent, name) = try openParent(of: path, for: operation)
        defer { parent.close() }
        // With O_PATH, O_NOFOLLOW opens a symlink itself: one still here lies where the job could have made it.
        let fd = openat(parent.fd, name, JB_O_PATH | O_CLOEXEC | (isPrivileged ? O_NOFOLLOW : 0))
        guard fd >= 0 else { throw JobboxError.lastErrno(operation, path) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT != S_IFLNK else {
            close(fd)
            throw JobboxError.invalid(operation, path, "it is a symbolic link in a directory the job can write (refused as root)")
        }
        return fd
    }

    /// Opens the directory that holds `path` and returns it with the last component's name, resolving a final
    /// symbolic link only where root made it.
    package static func openParent(of path: String, for operation: String) throws(JobboxError) -> (GuardedDirectory, String) {
        var links = 0
        var full = absolute(path)
        while true {
            let (parentPath, name) = split(full)
            guard !name.isEmpty, name != ".", name != ".." else {
                throw JobboxError.invalid(operation, path, "it names a directory, not a file")
            }
            let parent = try resolveDirectory(parentPath, links: &links, operation: operation, shown: path)
            guard parent.isTrusted else { return (parent, name) }
            // Root made any symlink here: follow it, as the kernel would.
            guard let target = readLink(parent.fd, name) else { return (parent, name) }
            links += 1
            guard links <= maxSymbolicLinks else { throw JobboxError.system(operation, path, .tooManySymbolicLinkLevels) }
            full = target.hasPrefix("/") ? target : parent.path + "/" + target
        }
    }

    static func resolveDirectory(_ full: String, links: inout Int, operation: String, shown: String, strict: Bool = isPrivileged) throws(JobboxError)
        -> GuardedDirectory
    {
        guard strict else {
            let fd = open(full, JB_O_PATH | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { throw JobboxError.lastErrno(operation, shown) }
            return GuardedDirectory(fd: fd, path: full, isTrusted: false, owner: owner(of: fd))
        }
        var stack: [GuardedDirectory] = []
        defer { for directory in stack { close(directory.fd) } }
        var pending = Array(full.split(separator: "/", omittingEmptySubsequences: true).map(String.init).reversed())
        stack.append(try root(operation: operation, shown: shown))
        while let name = pending.popLast() {
            guard let current = stack.last else { break }
            if name == "." { continue }
            if name == ".." {
                if stack.count > 1, let top = stack.popLast() { close(top.fd) }
                continue
            }
            let fd = openat(current.fd, name, JB_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd >= 0 {
                var info = stat()
                guard fstat(fd, &info) == 0 else {
                    let error = JobboxError.lastErrno(operation, shown)
                    close(fd)
                    throw error
                }
                let trusted = current.isTrusted && isRootOnly(info)
                stack.append(
                    GuardedDirectory(fd: fd, path: current.path == "/" ? "/" + name : current.path + "/" + name, isTrusted: trusted, owner: info.st_uid))
                continue
            }
            let failure = Errno.last
            guard failure == .notDirectory || failure == .tooManySymbolicLinkLevels, let target = readLink(current.fd, name) else {
                throw JobboxError.system(operation, shown, failure)
            }
            guard current.isTrusted else {
                throw JobboxError.invalid(
                    operation, shown, "\(current.path == "/" ? "" : current.path)/\(name) is a symbolic link in a directory the job can write (refused as root)"
                )
            }
            links += 1
            guard links <= maxSymbolicLinks else { throw JobboxError.system(operation, shown, .tooManySymbolicLinkLevels) }
            if target.hasPrefix("/") {
                for directory in stack.dropFirst() { close(directory.fd) }
                stack.removeSubrange(1...)
            }
            pending.append(contentsOf: target.split(separator: "/", omittingEmptySubsequences: true).map(String.init).reversed())
        }
        guard let last = stack.popLast() else { throw JobboxError.system(operation, shown, .noSuchFileOrDirectory) }
        return last
    }

    private static func root(operation: String, shown: String) throws(JobboxError) -> GuardedDirectory {
        let fd = open("/", JB_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw JobboxError.lastErrno(operation, shown) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = JobboxError.lastErrno(operation, shown)
            close(fd)
            throw error
        }
        return GuardedDirectory(fd: fd, path: "/", isTrusted: isRootOnly(info), owner: info.st_uid)
    }

    /// The target of the symbolic link `name` in `directory`, or nil when it is not one.
    package static func readLink(_ directory: Int32, _ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlinkat(directory, name, &buffer, Int(PATH_MAX))
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func owner(of fd: Int32) -> uid_t {
        var info = stat()
        return fstat(fd, &info) == 0 ? info.st_uid : uid_t.max
    }

    /// `path` made absolute against the working directory (which the job may have chosen, so it is resolved
    /// from `/` like any other path).
    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let directory = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return directory == "/" ? "/" + path : directory + "/" + path
    }

    /// The directory part and the last component of an absolute path (`/a/b/` gives `/a` and `b`).
    package static func split(_ path: String) -> (String, String) {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return (".", String(trimmed)) }
        let parent = trimmed[..<slash]
        return (parent.isEmpty ? "/" : String(parent), String(trimmed[trimmed.index(after: slash)...]))
    }
}

/// A directory reached through `GuardedPath`: an `O_PATH` descriptor to open names relative to.
package struct GuardedDirectory: Sendable {
    /// The descriptor; the caller closes it (`close()`).
    package let fd: Int32
    /// The path it was reached by (symbolic links root made resolved).
    package let path: String
    /// Whether it and every directory above it can be changed by root only.
    package let isTrusted: Bool
    /// Its owner.
    package let owner: uid_t

    /// Closes the descriptor.
    package func close() {
        _ = Glibc.close(fd)
    }
}

/// Reading, replacing and appending files that may lie where the job can write, by `GuardedPath`'s rule.
package enum GuardedFile {
    /// Reads the regular file at `path`, at most `limit` bytes (a larger file is an error, not truncated).
    /// A symbolic link the job could have made, a FIFO, a device or, in a directory the job can write, a file
    /// with more than one link (a hard link to a file the job cannot read) is refused.
    package static func read(_ path: String, limit: Int, for operation: String) throws(JobboxError) -> [UInt8] {
        try readWithOwner(path, limit: limit, for: operation).bytes
    }

    /// Reads the file as `read` does, with the uid that owns it, taken from the same descriptor (so the file
    /// cannot be swapped between the check of its owner and the read of its text).
    package static func readWithOwner(_ path: String, limit: Int, for operation: String) throws(JobboxError) -> (bytes: [UInt8], owner: uid_t) {
        let (parent, name) = try GuardedPath.openParent(of: path, for: operation)
        defer { parent.close() }
        let fd = openat(parent.fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { throw refusal(operation, path, Errno.last, parent: parent, name: name) }
        let descriptor = FileDescriptor(rawValue: fd)
        defer { try? descriptor.close() }
        let owner = try checkRegular(fd, operation: operation, path: path, untrusted: GuardedPath.isPrivileged && !parent.isTrusted)
        var result: [UInt8] = []
        while true {
            let count: Int
            do {
                count = try withUnsafeTemporaryAllocation(byteCount: 65536, alignment: 1) { buffer in
                    let n = try descriptor.read(into: buffer, retryOnInterrupt: true)
                    result.append(contentsOf: buffer[0..<n])
                    return n
                }
            } catch {
                throw JobboxError.system(operation, path, (error as? Errno) ?? .ioError)
            }
            if result.count > limit {
                throw JobboxError.invalid(operation, path, "it is larger than \(ByteSize.bytes(UInt64(limit)))")
            }
            if count == 0 { return (result, owner) }
        }
    }

    /// Reads the file at `path` as UTF-8 text, as `read` does.
    package static func readText(_ path: String, limit: Int, for operation: String) throws(JobboxError) -> String {
        String(decoding: try read(path, limit: limit, for: operation), as: UTF8.self)
    }

    /// Creates or replaces `path` atomically: the text goes to a new file of an unpredictable name, created with
    /// `O_EXCL` beside it, which is then renamed over `path` (rename replaces a planted symlink, never follows it).
    package static func replace(
        _ path: String, with text: String, permissions: FilePermissions = [.ownerReadWrite, .groupRead, .otherRead], for operation: String
    ) throws(JobboxError) {
        let (parent, name) = try GuardedPath.openParent(of: path, for: operation)
        defer { parent.close() }
        try replace(in: parent, name: name, path: path, with: text, permissions: permissions, for: operation)
    }

    /// Creates or replaces the file `name` in `parent` (opened earlier and kept: a lease a run writes twice) as
    /// `replace(_:with:permissions:for:)` does; `path` names the file in errors.
    package static func replace(
        in parent: GuardedDirectory, name: String, path: String, with text: String,
        permissions: FilePermissions = [.ownerReadWrite, .groupRead, .otherRead], for operation: String
    ) throws(JobboxError) {
        var temporary = ""
        var fd: Int32 = -1
        for _ in 0..<8 {
            temporary = ".\(name).\(randomSuffix())"
            fd = openat(parent.fd, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, permissions.rawValue)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw JobboxError.lastErrno(operation, path) }
        let descriptor = FileDescriptor(rawValue: fd)
        do {
            try descriptor.writeText(text)
            try descriptor.close()
        } catch {
            try? descriptor.close()
            unlinkat(parent.fd, temporary, 0)
            throw JobboxError.system(operation, path, (error as? Errno) ?? .ioError)
        }
        if renameat(parent.fd, temporary, parent.fd, name) != 0 {
            let error = JobboxError.lastErrno(operation, path)
            unlinkat(parent.fd, temporary, 0)
            throw error
        }
    }

    /// Appends `text` to `path`, creating it when missing; a symbolic link the job could have made, a FIFO or
    /// device, or (where the job can write) a file with more than one link is refused and left untouched.
    package static func append(_ text: String, to path: String, for operation: String) throws(JobboxError) {
        let (parent, name) = try GuardedPath.openParent(of: path, for: operation)
        defer { parent.close() }
        try append(text, in: parent, name: name, path: path, for: operation)
    }

    /// Appends `text` to the file `name` in `parent` (opened earlier, e.g. before a chroot), as `append(_:to:for:)`;
    /// `path` names the file in errors.
    package static func append(_ text: String, in parent: GuardedDirectory, name: String, path: String, for operation: String) throws(JobboxError) {
        let fd = openat(parent.fd, name, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0o644)
        guard fd >= 0 else { throw refusal(operation, path, Errno.last, parent: parent, name: name) }
        let descriptor = FileDescriptor(rawValue: fd)
        defer { try? descriptor.close() }
        try checkRegular(fd, operation: operation, path: path, untrusted: GuardedPath.isPrivileged && !parent.isTrusted)
        do throws(Errno) {
            try descriptor.writeText(text)
        } catch {
            throw JobboxError.system(operation, path, error)
        }
    }

    /// Requires `fd` to be a regular file (with one link where `untrusted`); returns its owner.
    @discardableResult
    private static func checkRegular(_ fd: Int32, operation: String, path: String, untrusted: Bool) throws(JobboxError) -> uid_t {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw JobboxError.lastErrno(operation, path) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw JobboxError.invalid(operation, path, "it is not a regular file") }
        if untrusted && info.st_nlink != 1 {
            throw JobboxError.invalid(operation, path, "it has \(info.st_nlink) hard links in a directory the job can write (refused as root)")
        }
        return info.st_uid
    }

    private static func refusal(_ operation: String, _ path: String, _ error: Errno, parent: GuardedDirectory, name: String) -> JobboxError {
        if error == .tooManySymbolicLinkLevels, GuardedPath.readLink(parent.fd, name) != nil {
            return JobboxError.invalid(operation, path, "it is a symbolic link in a directory the job can write (refused as root)")
        }
        return JobboxError.system(operation, path, error)
    }

    /// 16 hex digits from the kernel's random pool: a name no one can predict and plant.
    static func randomSuffix() -> String {
        var value: UInt64 = 0
        let count = withUnsafeMutableBytes(of: &value) { jb_random_bytes($0.baseAddress, $0.count) }
        if count != MemoryLayout<UInt64>.size {
            // getrandom cannot fail for 8 bytes once the pool is ready; the clock is the fallback, and O_EXCL
            // still makes a planted name an error, not a hole.
            let now = MonotonicClock.nanoseconds()
            value = now ^ (now / 1_000_000_000) << 30
        }
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
