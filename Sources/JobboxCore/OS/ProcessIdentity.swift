#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A process as a pid plus its start time (field 22 of `/proc/<pid>/stat`, in clock ticks since boot), so a
/// recorded owner is not mistaken for a later process that got the same pid.
package struct ProcessIdentity: Sendable, Equatable, CustomStringConvertible {
    /// The pid.
    package let pid: Int32
    /// The start time in clock ticks since boot.
    package let startTime: UInt64

    /// An identity from its parts.
    package init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// This process.
    package static var current: ProcessIdentity {
        let pid = getpid()
        return ProcessIdentity(pid: pid, startTime: startTime(of: pid) ?? 0)
    }

    /// Whether the process still runs (a zombie counts until it is reaped).
    package var isAlive: Bool {
        guard pid > 0, let now = Self.startTime(of: pid) else { return false }
        return now == startTime
    }

    /// The start time of `pid`, nil when there is no such process.
    package static func startTime(of pid: Int32) -> UInt64? {
        ProcessStat.read(pid: pid)?.startTime
    }

    package var description: String { "pid \(pid)" }
}
