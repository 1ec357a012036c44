#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Calls `systemCall` again for as long as it fails with `EINTR`, and returns its last result.
///
/// A signal that arrives while a call blocks (a forwarded SIGTERM, SIGCHLD of a child) interrupts calls the
/// kernel does not restart; the call itself did nothing, so trying again is always right. For calls that
/// return -1 and set `errno` on failure (read, write, recv, poll, flock, waitpid...).
package func retryingOnInterrupt<Result: SignedInteger>(_ systemCall: () -> Result) -> Result {
    while true {
        let result = systemCall()
        if result >= 0 || errno != EINTR { return result }
    }
}
