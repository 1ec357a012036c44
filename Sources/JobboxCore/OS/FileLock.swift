import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// `flock(2)`: the locks jobbox takes on lock files (leases, address claims, the xtables lock, chroots).
///
/// The lock belongs to the open file, so it goes with the last descriptor of it: when the process ends, however
/// it ends, nothing stays locked.
package enum FileLock {
    /// Takes the exclusive lock on `fd`, waiting as long as it takes (retrying after signals) when `wait`, else
    /// failing at once with `.wouldBlock` when someone else holds it.
    package static func lockExclusive(_ fd: Int32, wait: Bool = true) throws(Errno) {
        let result = retryingOnInterrupt { flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) }
        if result != 0 { throw Errno.last }
    }

    /// Takes the shared lock on `fd`, waiting as long as it takes.
    package static func lockShared(_ fd: Int32) throws(Errno) {
        let result = retryingOnInterrupt { flock(fd, LOCK_SH) }
        if result != 0 { throw Errno.last }
    }
}
