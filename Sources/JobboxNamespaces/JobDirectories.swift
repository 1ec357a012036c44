import CLinux
import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The directories ns-exec creates before the namespaces: `<scratch>/<D>` for each directory mounted under
/// scratch (never anything in a chroot, which is shared and read-only to jobs). Made in the host's view, before the
/// fork, so a refusal (a symlink planted in the scratch dir) costs nothing; the C shim opens them again, the same
/// careful way, inside the new mount namespace.
package enum JobDirectories {
    /// Makes `<scratch>/<D>` for each D of `directories` (absolute paths), mode 0700 and owned by `owner`, also
    /// for directories made on the way. Nothing under the scratch directory is followed: a symlink (or anything
    /// not a directory) where a directory should be is refused.
    package static func prepareScratch(
        _ scratchDirectory: JobScratch, directories: [String], owner: (uid: uid_t, gid: gid_t), created: inout CreatedDirectories
    ) throws(JobboxError) {
        let base = scratchDirectory.directory.fd
        let scratch = scratchDirectory.path
        for directory in directories {
            let components = AbsolutePath.relative(directory).split(separator: "/").map(String.init)
            var current = base
            defer { if current != base { close(current) } }
            for (index, component) in components.enumerated() {
                let relative = components[...index].joined(separator: "/")
                let shown = scratch + "/" + relative
                var next = openat(current, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                var made = false
                if next < 0 && errno == ENOENT {
                    if mkdirat(current, component, 0o700) == 0 {
                        made = true
                    } else if errno != EEXIST {
                        throw JobboxError.lastErrno("cannot create", shown)
                    }
                    if made { created.append(.underScratch(base: scratch, relative: relative)) }
                    next = openat(current, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                }
                guard next >= 0 else {
                    if errno == ELOOP || errno == ENOTDIR { throw refusal(shown) }
                    throw JobboxError.lastErrno("cannot open", shown)
                }
                if current != base { close(current) }
                current = next
                if made || index == components.count - 1 {
                    guard fchown(current, owner.uid, owner.gid) == 0 else { throw JobboxError.lastErrno("cannot chown to \(owner.uid):\(owner.gid)", shown) }
                    guard fchmod(current, 0o700) == 0 else { throw JobboxError.lastErrno("cannot set mode 0700 on", shown) }
                }
            }
        }
    }

    /// The refusal for a symlink (or non-directory) under the scratch directory.
    package static func refusal(_ path: String) -> JobboxError {
        JobboxError.invalid("refusing to mount", path, "it is a symlink or not a directory (nothing under the scratch directory is followed)")
    }
}

/// Directories ns-exec made, newest last, so a failure can remove them again (only those, only when empty).
package struct CreatedDirectories: Sendable, Equatable {
    /// One directory made.
    package enum Entry: Sendable, Equatable {
        /// `<base>/<relative>` under the scratch directory.
        case underScratch(base: String, relative: String)
    }

    /// The directories, in the order they were made.
    package private(set) var entries: [Entry] = []

    /// None yet.
    package init() {}

    mutating func append(_ entry: Entry) { entries.append(entry) }

    /// Removes every directory made (newest first), looking them up the same careful way they were made (the
    /// scratch dir by `GuardedPath`'s rule, nothing below it followed); errors (a directory the job filled
    /// meanwhile) leave the directory in place.
    package mutating func removeAll() {
        for entry in entries.reversed() {
            switch entry {
            case .underScratch(let base, let relative):
                Self.removeDirectory(relative, below: base)
            }
        }
        entries.removeAll()
    }

    private static func removeDirectory(_ relative: String, below base: String) {
        guard let baseDirectory = try? GuardedPath.openDirectory(base, for: "cannot open scratch directory") else { return }
        defer { baseDirectory.close() }
        var components = relative.split(separator: "/").map(String.init)
        guard let name = components.popLast() else { return }
        let parent = jb_open_no_symlinks(baseDirectory.fd, components.joined(separator: "/"), JB_O_PATH, 0)
        guard parent >= 0 else { return }
        _ = unlinkat(parent, name, AT_REMOVEDIR)
        close(parent)
    }
}
