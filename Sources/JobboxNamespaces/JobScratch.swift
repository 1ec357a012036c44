import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The job's scratch directory, opened once by `GuardedPath`'s rule before anything is made in it or mounted
/// from it.
///
/// Trusted: the path, which root's command line gives. Not trusted: a step of it that lies in a directory the
/// job's user can write (a scratch dir in /tmp, or in a directory the user owns, as `/scratch/$USER/$JOBID`),
/// where the user can leave a symlink to `/` or rename another directory in: root would then make and chown the
/// job's `tmp` in the host's `/` and mount it. So the directories below are made through this descriptor, and the
/// job's mount namespace opens it again as `pinned` (`PinnedPath`).
package struct JobScratch {
    /// The directory (an `O_PATH` descriptor); closed by `close()`.
    package let directory: GuardedDirectory
    /// The path as given, for messages.
    package let path: String
    /// The directory as the job's mount namespace opens it again.
    package let pinned: PinnedPath

    /// Opens `path`.
    package init(_ path: String) throws(JobboxError) {
        let operation = "cannot open scratch directory"
        let directory = try GuardedPath.openDirectory(path, for: operation)
        guard let pinned = PinnedPath(descriptor: directory.fd) else {
            let error = JobboxError.lastErrno(operation, path)
            directory.close()
            throw error
        }
        self.directory = directory
        self.path = path
        self.pinned = pinned
    }

    /// Closes the descriptor.
    package func close() { directory.close() }
}
