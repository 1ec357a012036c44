import CLinux
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

extension GuardedPath {
    /// Opens the directory at `path`, which root keeps its own records in (netacct's `STATE_DIR`), and requires
    /// it to be *trusted* as chroots are: it and every directory above it owned by root and writable by neither
    /// group nor others (`GuardedPath.isRootOnly`, the one check). With `creating`, missing directories are made,
    /// one at a time relative to their trusted parent, mode 0755 and owned by root.
    ///
    /// Why: what root reads back from such a directory (a lease naming a chain and a link) it acts on; if the job
    /// could write there, it could forge those records, or plant a symlink where root creates a file.
    ///
    /// Run by an unprivileged user, nothing is trusted and nothing is checked (the tool fails later, on the first
    /// thing only root may do).
    package static func openTrustedDirectory(_ path: String, creating: Bool, for operation: String) throws(JobboxError) -> GuardedDirectory {
        let full = absolute(path)
        guard isPrivileged else { return try openDirectory(full, for: operation) }
        // One walk when the directory exists (every run after the first): making what is missing walks from `/`
        // once for each component, and a missing one is the only thing the first walk can fail on that it fixes.
        do {
            return try openRootOnlyDirectory(path, for: operation)
        } catch {
            guard creating, error.errno == .noSuchFileOrDirectory else { throw error }
        }
        try makeMissing(full, shown: path, operation: operation)
        return try openRootOnlyDirectory(path, for: operation)
    }

    /// Opens the directory `name` (one component) in `parent`, a directory opened by `openTrustedDirectory`, by the
    /// same rule without walking from `/` again: as root it must be root's alone (so all the way up, as `parent`
    /// is), and with `creating` it is made (0755, root's) when missing. For a state directory's subdirectory that
    /// a run uses several times (netacct's `bpf` leases).
    ///
    /// A symbolic link there (in a trusted directory only root can have made one) is resolved as
    /// `openTrustedDirectory` resolves it, by a walk of the whole path.
    package static func openTrustedDirectory(_ name: String, in parent: GuardedDirectory, creating: Bool, for operation: String) throws(JobboxError)
        -> GuardedDirectory
    {
        let path = parent.path == "/" ? "/" + name : parent.path + "/" + name
        guard isPrivileged else { return try openTrustedDirectory(path, creating: creating, for: operation) }
        guard parent.isTrusted else { throw JobboxError.invalid(operation, path, untrustedReason(parent.path, operation: operation)) }
        var fd = openat(parent.fd, name, JB_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 && errno == ENOENT && creating {
            if mkdirat(parent.fd, name, 0o755) != 0 && errno != EEXIST { throw JobboxError.lastErrno(operation, path) }
            fd = openat(parent.fd, name, JB_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        guard fd >= 0 else {
            let failure = Errno.last
            // ENOTDIR or ELOOP: a symbolic link (or no directory at all, which the walk reports as the kernel would).
            if failure == .notDirectory || failure == .tooManySymbolicLinkLevels { return try openTrustedDirectory(path, creating: creating, for: operation) }
            throw JobboxError.system(operation, path, failure)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = JobboxError.lastErrno(operation, path)
            Glibc.close(fd)
            throw error
        }
        guard isRootOnly(info) else {
            Glibc.close(fd)
            throw JobboxError.invalid(operation, path, untrustedReason(path, operation: operation))
        }
        return GuardedDirectory(fd: fd, path: path, isTrusted: true, owner: info.st_uid)
    }

    /// Opens the directory at `path` and requires it to be root's alone all the way up, whoever runs this (a
    /// chroot: whoever could write a directory on the way could swap the tree for one with a setuid shell in it).
    /// Symbolic links are followed only where root made them; the error names the first directory on the way
    /// that root does not alone control.
    package static func openRootOnlyDirectory(_ path: String, for operation: String) throws(JobboxError) -> GuardedDirectory {
        let full = absolute(path)
        let directory = try openDirectory(full, for: operation, strict: true)
        guard !directory.isTrusted else { return directory }
        directory.close()
        throw JobboxError.invalid(operation, path, untrustedReason(full, operation: operation))
    }

    /// Makes the missing directories of `full`, each under a parent that is already trusted.
    private static func makeMissing(_ full: String, shown: String, operation: String) throws(JobboxError) {
        var prefix = ""
        for component in full.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + String(component)
            if let existing = try? openDirectory(prefix, for: operation) {
                existing.close()
                continue
            }
            let (parent, name) = try openParent(of: prefix, for: operation)
            defer { parent.close() }
            guard parent.isTrusted else {
                throw JobboxError.invalid(operation, shown, untrustedReason(parent.path, operation: operation))
            }
            if mkdirat(parent.fd, name, 0o755) != 0 && errno != EEXIST {
                throw JobboxError.lastErrno(operation, prefix)
            }
        }
    }

    /// Names the first directory on the way to `full` that root does not alone control, and why.
    static func untrustedReason(_ full: String, operation: String) -> String {
        var prefix = ""
        for component in [""] + full.split(separator: "/", omittingEmptySubsequences: true).map(String.init) {
            prefix = component.isEmpty ? "/" : (prefix == "/" ? "" : prefix) + "/" + component
            guard let directory = try? openDirectory(prefix, for: operation, strict: true) else { continue }
            defer { directory.close() }
            var info = stat()
            guard fstat(directory.fd, &info) == 0, !isRootOnly(info) else { continue }
            if info.st_uid != 0 { return "\(directory.path) is owned by uid \(info.st_uid), not root" }
            return "\(directory.path) is writable by others than root (mode \(String(info.st_mode & 0o7777, radix: 8)))"
        }
        return "a directory on the way is not root's alone"
    }
}
