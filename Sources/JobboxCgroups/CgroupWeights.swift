import JobboxCore

/// Conversions between cgroup v1 and v2 units.
///
/// Weights convert in proportion to each version's default, clamped to the target's range, as systemd converts
/// `CPUShares=`/`CPUWeight=` and `BlockIOWeight=`/`IOWeight=`: v1 `cpu.shares` (2..262144, default 1024) and v2
/// `cpu.weight` (1..10000, default 100) by ×100/1024; v2 `io.weight` (1..10000, default 100) and v1 `blkio.weight`
/// (10..1000, default 500) by ×500/100. This keeps a default a default, and agrees with `--cpus N`, which is set
/// as HTCondor sets a slot's Cpus: shares 1024×N, weight 100×N.
package enum CgroupWeights {
    /// v2 `cpu.weight` and `io.weight`.
    package static let weightRange = 1...10_000
    /// v1 `cpu.shares`.
    package static let sharesRange = 2...262_144
    /// v1 `blkio.weight` (CFQ).
    package static let blkioWeightRange = 10...1000
    /// BFQ's `blkio.bfq.weight` and `io.bfq.weight` (default 100, like `io.weight`).
    package static let bfqWeightRange = 1...1000
    /// The CFS period cg-exec writes with a quota: 100 ms, the kernel's default.
    package static let quotaPeriodMicroseconds: UInt64 = 100_000
    /// The smallest quota the kernel accepts (1 ms).
    package static let minimumQuotaMicroseconds: UInt64 = 1000

    /// v2 `cpu.weight` for v1 `cpu.shares`: shares × 100 / 1024, clamped to 1..10000.
    package static func weight(fromShares shares: Int) -> Int {
        clamp(shares * 100 / 1024, weightRange)
    }

    /// v1 `cpu.shares` for v2 `cpu.weight`: weight × 1024 / 100, clamped to 2..262144.
    package static func shares(fromWeight weight: Int) -> Int {
        clamp(weight * 1024 / 100, sharesRange)
    }

    /// v1 `cpu.shares` for N CPUs: 1024 × N.
    package static func shares(forCPUs cpus: CPUAmount) -> Int {
        clamp(Int(clamping: cpus.milli * 1024 / 1000), sharesRange)
    }

    /// v2 `cpu.weight` for N CPUs: 100 × N (HTCondor fails above 100 CPUs; cg-exec clamps to 10000).
    package static func weight(forCPUs cpus: CPUAmount) -> Int {
        clamp(Int(clamping: cpus.milli * 100 / 1000), weightRange)
    }

    /// v1 `blkio.weight` for a v2 `io.weight`: weight × 500 / 100, clamped to 10..1000.
    package static func blkioWeight(fromIOWeight weight: Int) -> Int {
        clamp(weight * 500 / 100, blkioWeightRange)
    }

    /// BFQ's weight for a v2 `io.weight`: both default to 100, so the value is kept, clamped to 1..1000.
    package static func bfqWeight(fromIOWeight weight: Int) -> Int {
        clamp(weight, bfqWeightRange)
    }

    /// The CFS quota in microseconds per `quotaPeriodMicroseconds` for N CPUs (at least 1 ms).
    package static func quotaMicroseconds(forCPUs cpus: CPUAmount) -> UInt64 {
        max(minimumQuotaMicroseconds, cpus.milli * quotaPeriodMicroseconds / 1000)
    }

    static func clamp(_ value: Int, _ range: ClosedRange<Int>) -> Int {
        min(max(value, range.lowerBound), range.upperBound)
    }
}
