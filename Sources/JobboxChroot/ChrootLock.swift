import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// An exclusive `flock(2)` on a file next to the chroots; released when the process ends, however it ends, so a
/// crash never leaves a chroot locked.
///
/// The descriptor is close-on-exec: a backend (or a daemon a package starts) must not hold it after chroot-tool
/// is gone.
final class ChrootLock {
    private var fd: Int32

    /// Locks `path` (created when missing). Without `wait`, a lock someone else holds is an error that says
    /// `busyReason`.
    init(_ path: String, wait: Bool, busyReason: String) throws(JobboxError) {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard descriptor >= 0 else { throw JobboxError.lastErrno("cannot open lock", path) }
        do throws(Errno) {
            try FileLock.lockExclusive(descriptor, wait: wait)
        } catch {
            close(descriptor)
            if error == .wouldBlock { throw JobboxError.invalid("cannot lock", path, busyReason) }
            throw JobboxError.system("cannot lock", path, error)
        }
        fd = descriptor
    }

    /// Drops the lock (at the latest when the object goes).
    func release() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    deinit {
        release()
    }
}
