import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A job's claim on its address pair: the empty file `slot.<n>.<interface>` beside its lease, made before the
/// lease and removed after it, on which the owning netacct holds a shared `flock` for as long as it runs.
///
/// Why: taking a lease must cost the same whatever the number of running jobs. With claims, which slots are
/// taken is one directory listing, and whether a claim's owner still runs is one non-blocking lock attempt; only
/// a claim nobody holds (its owner is gone, or a version of netacct that did not lock wrote it) makes the taker
/// read the lease and the owner's `/proc` entry, as every lease once did. The lock only ever says "alive": an
/// unheld claim is still checked against the recorded owner before anything is reclaimed.
package final class SlotClaim: Sendable, Equatable {
    /// The open claim file the lock is held on; closed (and so released) with this object.
    private let fd: Int32

    private init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// Claims are not part of a lease's value: two leases with the same fields are equal whoever holds them.
    package static func == (lhs: SlotClaim, rhs: SlotClaim) -> Bool { true }

    /// The file name of the claim on `slot` by `interface`.
    static func fileName(slot: Int, interface: String) -> String { "slot.\(slot).\(interface)" }

    /// The slot and interface a claim's file name stands for; nil for any other name.
    static func parse(fileName: String) -> (slot: Int, interface: String)? {
        let parts = fileName.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "slot", !parts[1].isEmpty, parts[1].allSatisfy(\.isASCIIDigit), parts[1].count <= 9,
            let slot = Int(parts[1]), parts[2].hasPrefix("jb_")
        else { return nil }
        return (slot, String(parts[2]))
    }

    /// Makes the claim file `name` in `parent` (it must not exist) and, when `hold` is true, takes the shared lock
    /// that tells other netacct runs its owner is alive.
    static func make(_ name: String, in parent: GuardedDirectory, hold: Bool) throws(JobboxError) -> SlotClaim? {
        let fd = openat(parent.fd, name, O_CREAT | O_EXCL | O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0o600)
        guard fd >= 0 else { throw JobboxError.lastErrno("cannot record address claim", parent.path + "/" + name) }
        guard hold else {
            close(fd)
            return nil
        }
        do throws(Errno) {
            try FileLock.lockShared(fd)
        } catch {
            close(fd)
            _ = unlinkat(parent.fd, name, 0)
            throw JobboxError.system("cannot lock address claim", parent.path + "/" + name, error)
        }
        return SlotClaim(fd: fd)
    }

    /// Whether someone holds the claim file `name` of `parent`, that is, its owner still runs. A claim that cannot
    /// be opened as a regular file counts as held: it is then never taken for stale.
    static func isHeld(_ name: String, in parent: GuardedDirectory) -> Bool {
        let fd = openat(parent.fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return true }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return true }
        do throws(Errno) {
            try FileLock.lockExclusive(fd, wait: false)
            return false
        } catch {
            return true
        }
    }
}
