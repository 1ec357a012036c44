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
        if creating { try makeMissing(full, shown: path, operation: operation) }
        return try openRootOnlyDirectory(path, for: operation)
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
