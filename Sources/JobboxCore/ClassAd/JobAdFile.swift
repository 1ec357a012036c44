#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Reading a job ad (`$_CONDOR_JOB_AD`) as bounded, hostile input.
///
/// The starter writes `.job.ad` into the job's scratch directory, which the job can write: once the job runs (and
/// for any other process of its user, before), the file is the job's. So it is read as `GuardedFile` reads
/// job-writable files (a regular file, no symlink the job made, one link), at most `maxBytes` and `maxAttributes`
/// (`_CONDOR_JOB_AD=/dev/zero` or an ad of a million attributes is a one-line error, not a memory or CPU sink).
/// As root, a caller that takes an identity or a limit from the ad requires `trusted`: the ad must lie where only
/// root can write.
package enum JobAdFile {
    /// The largest job ad read; HTCondor's are a few KiB to a few dozen.
    package static let maxBytes = 1024 * 1024
    /// The most attributes a job ad may have; HTCondor's have a few hundred.
    package static let maxAttributes = 10_000

    /// How far the ad's location must be trusted.
    package enum Trust: Sendable {
        /// Anywhere (the caller is not privileged over the job, or takes nothing from the ad it relies on).
        case anywhere
        /// When the process is root: only in a directory that, with every one above it, only root can write;
        /// `remedy` completes the refusal ("pass --job ID").
        case rootOnlyWhenPrivileged(remedy: String)
    }

    /// Reads and parses the ad at `path`; `operation` phrases errors ("cannot derive job id from").
    package static func read(_ path: String, for operation: String, trust: Trust = .anywhere) throws(JobboxError) -> ClassAd {
        if case .rootOnlyWhenPrivileged(let remedy) = trust, GuardedPath.isPrivileged {
            let (parent, _) = try GuardedPath.openParent(of: path, for: operation)
            let trusted = parent.isTrusted
            parent.close()
            guard trusted else {
                throw JobboxError.invalid(operation, path, "it lies in a directory the job can write, so root does not believe it; \(remedy)")
            }
        }
        return try parse(GuardedFile.read(path, limit: maxBytes, for: operation), path: path, for: operation)
    }

    /// Reads and parses the ad at `path` wherever it lies, with the uid that owns the file (from the descriptor
    /// its text was read from): for a caller that believes the ad only as far as its owner.
    package static func readWithOwner(_ path: String, for operation: String) throws(JobboxError) -> (ad: ClassAd, owner: uid_t) {
        let (bytes, owner) = try GuardedFile.readWithOwner(path, limit: maxBytes, for: operation)
        return (try parse(bytes, path: path, for: operation), owner)
    }

    static func parse(_ bytes: [UInt8], path: String, for operation: String) throws(JobboxError) -> ClassAd {
        let ad = ClassAdReader.parse(String(decoding: bytes, as: UTF8.self))
        guard ad.attributes.count <= maxAttributes else {
            throw JobboxError.invalid(operation, path, "it has more than \(maxAttributes) attributes")
        }
        return ad
    }
}
