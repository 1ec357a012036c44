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
/// A legacy iptables commit replaces a whole table (iptables' own and `IptablesTable`'s), so two writers that
/// read the same snapshot would lose each other's changes; holding this lock from the read to the commit keeps
/// netacct, other netacct runs and the admin's own iptables from doing that.
package struct XtablesLock: Sendable {
    /// The lock file.
    package let path: String

    /// The lock file of this environment.
    package init(environment: Environment = .current) {
        let override = Environment.isPrivilegedExecution ? nil : environment["XTABLES_LOCKFILE"]
        path = (override?.isEmpty ?? true) ? XtablesLock.defaultPath : override ?? XtablesLock.defaultPath
    }

    /// Where iptables keeps the lock unless told otherwise.
    static let defaultPath = "/run/xtables.lock"

    /// Runs `body` while holding the lock, waiting for it as long as it takes.
    ///
    /// `$XTABLES_LOCKFILE` may come from a job (a root-run wrapper's environment): the file is reached by
    /// `GuardedPath`'s rule, and as root only the default is ever created, so the variable cannot make root create
    /// a file (`/etc/nologin`) or follow a link the job planted.
    package func withLock<Result>(_ body: () throws(JobboxError) -> Result) throws(JobboxError) -> Result {
        let operation = "cannot open the xtables lock"
        let (parent, name) = try GuardedPath.openParent(of: path, for: operation)
        defer { parent.close() }
        let create = !GuardedPath.isPrivileged || path == XtablesLock.defaultPath ? O_CREAT : 0
        let fd = openat(parent.fd, name, create | O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0o600)
        if fd < 0 { throw JobboxError.lastErrno(operation, path) }
        defer { close(fd) }
        do throws(Errno) {
            try FileLock.lockExclusive(fd)
        } catch {
            throw JobboxError.system("cannot take the xtables lock", path, error)
        }
        return try body()
    }
}
