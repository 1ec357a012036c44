import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Which chroots a job may enter, and the check that makes entering one safe.
///
/// A chroot is only as trustworthy as the directories that lead to it: whoever can write any of them can swap
/// the tree (or a symlink on the way) for one of their own, with a setuid shell in it. So the path is resolved
/// one component at a time, symlinks by hand, and every directory passed through must be owned by root and
/// writable by no one else.
package enum ChrootPolicy {
    /// Resolves `--chroot NAME|PATH`: a name from `NAMED_CHROOT`, or an absolute path when the caller is root.
    /// Returns the directory's canonical path (no symlinks), which is what the job's root becomes.
    package static func resolve(_ text: String, config: JobboxConfig, callerIsRoot: Bool) throws(JobboxError) -> String {
        let path: String
        if let named = config.namedChroot(text) {
            path = named.path
        } else if text.hasPrefix("/") {
            guard callerIsRoot else {
                throw JobboxError.invalid("refusing chroot", text, "only root may name a chroot by path; use a name from NAMED_CHROOT")
            }
            path = text
        } else {
            let known = config.namedChroots.map(\.name).joined(separator: ", ")
            throw JobboxError.invalid("unknown chroot", "'\(text)'", known.isEmpty ? "NAMED_CHROOT defines none" : "NAMED_CHROOT defines \(known)")
        }
        let canonical = try checkedCanonicalPath(path)
        if canonical == "/" { throw JobboxError.invalid("refusing chroot", path, "it is the host's own root") }
        return canonical
    }

    /// Resolves `path` and checks every directory the resolution passes through (see the type's comment).
    package static func checkedCanonicalPath(_ path: String) throws(JobboxError) -> String {
        guard path.hasPrefix("/") else { throw JobboxError.invalid("refusing chroot", path, "not an absolute path") }
        var resolved: [String] = []
        try requireRootOnly("/", chroot: path)
        var pending = Array(path.split(separator: "/").map(String.init).reversed())
        var symlinksFollowed = 0
        while let component = pending.popLast() {
            if component == "." { continue }
            if component == ".." {
                // The parent was checked on the way down.
                _ = resolved.popLast()
                continue
            }
            let candidate = "/" + (resolved + [component]).joined(separator: "/")
            var info = stat()
            guard lstat(candidate, &info) == 0 else { throw JobboxError.lastErrno("cannot use chroot", candidate) }
            if info.st_mode & S_IFMT == S_IFLNK {
                symlinksFollowed += 1
                guard symlinksFollowed <= 40 else { throw JobboxError.system("cannot use chroot", path, .tooManySymbolicLinkLevels) }
                let target = try readLink(candidate)
                if target.hasPrefix("/") { resolved = [] }
                pending.append(contentsOf: target.split(separator: "/").map(String.init).reversed())
                continue
            }
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw JobboxError.invalid("refusing chroot", path, "\(candidate) is not a directory")
            }
            try requireRootOnly(candidate, info: info, chroot: path)
            resolved.append(component)
        }
        return "/" + resolved.joined(separator: "/")
    }

    private static func requireRootOnly(_ directory: String, chroot: String) throws(JobboxError) {
        var info = stat()
        guard lstat(directory, &info) == 0 else { throw JobboxError.lastErrno("cannot use chroot", directory) }
        try requireRootOnly(directory, info: info, chroot: chroot)
    }

    private static func requireRootOnly(_ directory: String, info: stat, chroot: String) throws(JobboxError) {
        if info.st_uid != 0 {
            throw JobboxError.invalid("refusing chroot", chroot, "\(directory) is owned by uid \(info.st_uid), not root")
        }
        if info.st_mode & (S_IWGRP | S_IWOTH) != 0 {
            let mode = String(info.st_mode & 0o7777, radix: 8)
            throw JobboxError.invalid("refusing chroot", chroot, "\(directory) is writable by others than root (mode \(mode))")
        }
    }

    private static func readLink(_ path: String) throws(JobboxError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = buffer.withUnsafeMutableBufferPointer { bytes -> Int in
            guard let base = bytes.baseAddress else { return -1 }
            return readlink(path, base, bytes.count - 1)
        }
        guard count >= 0 else { throw JobboxError.lastErrno("cannot read symlink", path) }
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
