import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The lock every legacy iptables writer takes (`iptables -w`): an exclusive `flock` on `/run/xtables.lock`
/// (or `$XTABLES_LOCKFILE`, as iptables honours it, unless netacct runs with more privilege than its caller).
///
/// libiptc replaces a whole table on commit, so two writers that read the same snapshot would lose each other's
/// changes; holding this lock from the read to the commit keeps netacct, other netacct runs and the admin's
/// own iptables from doing that.
package struct XtablesLock: Sendable {
    /// The lock file.
    package let path: String

    /// The lock file of this environment.
    package init(environment: Environment = .current) {
        let override = Environment.isPrivilegedExecution ? nil : environment["XTABLES_LOCKFILE"]
        path = (override?.isEmpty ?? true) ? "/run/xtables.lock" : override ?? "/run/xtables.lock"
    }

    /// Runs `body` while holding the lock, waiting for it as long as it takes.
    package func withLock<Result>(_ body: () throws(JobboxError) -> Result) throws(JobboxError) -> Result {
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        if fd < 0 { throw JobboxError.lastErrno("cannot open the xtables lock", path) }
        defer { close(fd) }
        do throws(Errno) {
            try FileLock.lockExclusive(fd)
        } catch {
            throw JobboxError.system("cannot take the xtables lock", path, error)
        }
        return try body()
    }
}
