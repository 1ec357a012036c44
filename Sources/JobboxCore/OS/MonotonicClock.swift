#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The one clock jobbox measures time with: `CLOCK_MONOTONIC`, which no one can set and which stops while the
/// machine sleeps (as the kernel's own timeouts do).
package enum MonotonicClock {
    /// Nanoseconds since an arbitrary start.
    package static func nanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    /// Milliseconds since an arbitrary start, for deadlines handed to poll(2).
    package static func milliseconds() -> Int64 {
        Int64(nanoseconds() / 1_000_000)
    }

    /// Seconds since an arbitrary start.
    package static func now() -> Double {
        Double(nanoseconds()) / 1e9
    }

    /// Sleeps until `now()` reaches `deadline` (restarting after signals).
    package static func sleep(until deadline: Double) {
        let seconds = deadline.rounded(.down)
        var spec = timespec(tv_sec: Int(seconds), tv_nsec: Int((deadline - seconds) * 1e9))
        // clock_nanosleep returns the error number itself instead of setting errno.
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &spec, nil) == EINTR {}
    }
}

extension Duration {
    /// The duration in seconds, for deadlines on `MonotonicClock.now()`.
    package var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
