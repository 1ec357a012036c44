import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Times as chroot-tool writes them: UTC, ISO 8601, to the second (`2026-11-25T13:40:00Z`).
package enum Timestamp {
    /// The time now, or `$SOURCE_DATE_EPOCH` when set (reproducible builds' convention, which tests use).
    package static func now(environment: Environment = .current) -> String {
        if let text = environment["SOURCE_DATE_EPOCH"], let seconds = Int(text), seconds >= 0 {
            return format(seconds)
        }
        return format(Int(time(nil)))
    }

    /// Formats seconds since the epoch.
    package static func format(_ seconds: Int) -> String {
        var value = time_t(seconds)
        var parts = tm()
        guard gmtime_r(&value, &parts) != nil else { return "1970-01-01T00:00:00Z" }
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
