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
/// one component at a time (`GuardedPath.openRootOnlyDirectory`), and every directory passed through must be
/// owned by root and writable by no one else.
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

    /// Resolves `path` and checks every directory the resolution passes through (see the type's comment), by the
    /// one rule of `GuardedPath`: root-only all the way, symlinks followed only where root made them.
    package static func checkedCanonicalPath(_ path: String) throws(JobboxError) -> String {
        guard path.hasPrefix("/") else { throw JobboxError.invalid("refusing chroot", path, "not an absolute path") }
        let directory = try GuardedPath.openRootOnlyDirectory(path, for: "refusing chroot")
        directory.close()
        return directory.path
    }
}

extension ChrootPolicy {
    /// `--requested-chroot`: the chroot the job ad (`$_CONDOR_JOB_AD`) asks for with `RequestedChroot`, nil when it
    /// asks for none. Only a name from `NAMED_CHROOT` is taken, never a path, so the ad may lie where the job can
    /// write it: a job that rewrites it can only pick another of the chroots the admin offers every job.
    package static func requestedByJobAd(_ environment: Environment) throws(JobboxError) -> String? {
        guard let path = environment["_CONDOR_JOB_AD"], !path.isEmpty else {
            throw JobboxError.invalid("cannot use --requested-chroot", nil, "$_CONDOR_JOB_AD is not set (run under HTCondor, or pass --chroot NAME)")
        }
        let ad = try JobAdFile.read(path, for: "cannot read job ad")
        guard let value = ad["RequestedChroot"] else { return nil }
        guard case .string(let name) = value, !name.isEmpty, !name.hasPrefix("/") else {
            throw JobboxError.invalid("cannot use RequestedChroot from", path, "it is not the name of a chroot (a string, not a path)")
        }
        return name
    }
}
