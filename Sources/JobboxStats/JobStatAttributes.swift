import JobboxCgroups
import JobboxCore
import JobboxQuota

/// A Prometheus metric type.
package enum MetricType: String, Sendable {
    /// A value that goes up and down.
    case gauge
    /// A value that only grows (name ends in `_total`).
    case counter
    /// Raw kernel figures of mixed meaning.
    case untyped
}

/// How one figure is published: its ClassAd attribute (HTCondor's name and unit where HTCondor has the figure)
/// and its Prometheus metric (base units: bytes, seconds, ratios).
package struct StatAttribute: Sendable {
    /// The ClassAd (and JSON) attribute name.
    package let name: String
    /// The Prometheus metric name, or nil when the figure is only a ClassAd convenience (another metric has it).
    package let metric: String?
    /// The Prometheus type.
    package let metricType: MetricType
    /// The Prometheus HELP text.
    package let help: String
    /// The ClassAd value, or nil when the kernel did not give the figure.
    package let classAdValue: @Sendable (CgroupStats) -> ClassAdValue?
    /// The Prometheus value (an integer or a real), or nil.
    package let metricValue: @Sendable (CgroupStats) -> ClassAdValue?
}

/// Every figure jobstat publishes, in the order it prints them.
package enum JobStatAttributes {
    /// The prefix of every Prometheus metric.
    package static let metricPrefix = "jobbox_job_"

    /// The metric of `--raw` figures (labels `file` and `key`).
    package static let rawMetric = metricPrefix + "cgroup_stat"

    /// The attributes, in print order.
    package static let all: [StatAttribute] = memory + cpu + block + [processes] + pressure + scratch + network

    /// KiB, rounded up, as HTCondor's KiB figures are (a byte count from the kernel is a whole number of pages).
    static func kibibytes(_ bytes: UInt64) -> Int64 {
        Int64(clamping: bytes / 1024 + (bytes % 1024 == 0 ? 0 : 1))
    }

    static func integer(_ value: UInt64?) -> ClassAdValue? {
        value.map { .integer(Int64(clamping: $0)) }
    }

    static func kib(_ value: UInt64?) -> ClassAdValue? {
        value.map { .integer(kibibytes($0)) }
    }

    static func real(_ value: Double?) -> ClassAdValue? {
        value.map { .real($0) }
    }

    static let memory: [StatAttribute] = [
        StatAttribute(
            name: "MemoryUsage", metric: nil, metricType: .gauge, help: "",
            classAdValue: { stats in
                // HTCondor's MEMORY_USAGE_METRIC: ((ResidentSetSize+1023)/1024).
                stats.residentSetBytes.map { .integer((kibibytes($0) + 1023) / 1024) }
            },
            metricValue: { _ in nil }),
        StatAttribute(
            name: "ResidentSetSize", metric: metricPrefix + "memory_rss_bytes", metricType: .gauge,
            help: "Resident memory as HTCondor counts it: anon+shmem (v2), total_rss (v1).",
            classAdValue: { kib($0.residentSetBytes) }, metricValue: { integer($0.residentSetBytes) }),
        StatAttribute(
            name: "MemoryPeakKb", metric: metricPrefix + "memory_peak_bytes", metricType: .gauge,
            help: "The kernel's peak of the cgroup's memory, page cache included (memory.peak, memory.max_usage_in_bytes).",
            classAdValue: { kib($0.memoryPeakBytes) }, metricValue: { integer($0.memoryPeakBytes) }),
        StatAttribute(
            name: "MemoryCacheKb", metric: metricPrefix + "memory_cache_bytes", metricType: .gauge,
            help: "Page cache charged to the cgroup (file on v2, total_cache on v1).",
            classAdValue: { kib($0.memoryCacheBytes) }, metricValue: { integer($0.memoryCacheBytes) }),
        StatAttribute(
            name: "MemorySwapKb", metric: metricPrefix + "memory_swap_bytes", metricType: .gauge,
            help: "Swap used by the cgroup (memory.swap.current on v2, total_swap on v1).",
            classAdValue: { kib($0.memorySwapBytes) }, metricValue: { integer($0.memorySwapBytes) }),
        StatAttribute(
            name: "OOMKills", metric: metricPrefix + "oom_kills_total", metricType: .counter,
            help: "Processes of the cgroup's subtree killed by the OOM killer.",
            classAdValue: { integer($0.oomKills) }, metricValue: { integer($0.oomKills) }),
    ]

    static let cpu: [StatAttribute] = [
        StatAttribute(
            name: "RemoteUserCpu", metric: metricPrefix + "cpu_user_seconds_total", metricType: .counter,
            help: "User CPU time of the cgroup's subtree.",
            classAdValue: { real($0.userCPUSeconds) }, metricValue: { real($0.userCPUSeconds) }),
        StatAttribute(
            name: "RemoteSysCpu", metric: metricPrefix + "cpu_system_seconds_total", metricType: .counter,
            help: "System CPU time of the cgroup's subtree.",
            classAdValue: { real($0.systemCPUSeconds) }, metricValue: { real($0.systemCPUSeconds) }),
        StatAttribute(
            name: "CpuThrottledSeconds", metric: metricPrefix + "cpu_throttled_seconds_total", metricType: .counter,
            help: "Time the cgroup was held back by its CPU quota.",
            classAdValue: { real($0.cpuThrottledSeconds) }, metricValue: { real($0.cpuThrottledSeconds) }),
    ]

    static let block: [StatAttribute] = [
        StatAttribute(
            name: "BlockReadBytes", metric: metricPrefix + "block_read_bytes_total", metricType: .counter,
            help: "Bytes read from block devices, all devices.",
            classAdValue: { integer($0.blockReadBytes) }, metricValue: { integer($0.blockReadBytes) }),
        StatAttribute(
            name: "BlockWriteBytes", metric: metricPrefix + "block_written_bytes_total", metricType: .counter,
            help: "Bytes written to block devices, all devices.",
            classAdValue: { integer($0.blockWriteBytes) }, metricValue: { integer($0.blockWriteBytes) }),
        StatAttribute(
            name: "BlockReads", metric: metricPrefix + "block_reads_total", metricType: .counter,
            help: "Read requests to block devices, all devices.",
            classAdValue: { integer($0.blockReads) }, metricValue: { integer($0.blockReads) }),
        StatAttribute(
            name: "BlockWrites", metric: metricPrefix + "block_writes_total", metricType: .counter,
            help: "Write requests to block devices, all devices.",
            classAdValue: { integer($0.blockWrites) }, metricValue: { integer($0.blockWrites) }),
        StatAttribute(
            name: "BlockReadKbytes", metric: nil, metricType: .counter, help: "",
            classAdValue: { stats in stats.blockReadBytes.map { .integer(Int64(clamping: $0 / 1024)) } }, metricValue: { _ in nil }),
        StatAttribute(
            name: "BlockWriteKbytes", metric: nil, metricType: .counter, help: "",
            classAdValue: { stats in stats.blockWriteBytes.map { .integer(Int64(clamping: $0 / 1024)) } }, metricValue: { _ in nil }),
    ]

    /// The scratch directory, from its quota's own accounting (`jobstat --scratch`): HTCondor's `DiskUsage` (KiB),
    /// the inode count where the quota counts inodes (project quotas), the limits and whether one is reached.
    static let scratch: [StatAttribute] = [
        scratchFigure(
            "DiskUsage", metric: "scratch_bytes", inKiB: true,
            help: "Bytes the scratch directory's quota charges (btrfs qgroup referenced bytes, or the project's space)."
        ) { $0.bytes },
        scratchFigure(
            "ScratchDirFileCount", metric: "scratch_files", inKiB: false,
            help: "Inodes (files, directories, links) the scratch directory's project quota charges, the directory included."
        ) { $0.files },
        scratchFigure("ScratchQuotaKb", metric: "scratch_quota_bytes", inKiB: true, help: "The scratch directory's byte limit.") { $0.byteLimit },
        scratchFigure("ScratchQuotaFiles", metric: "scratch_quota_files", inKiB: false, help: "The scratch directory's inode limit.") { $0.fileLimit },
        StatAttribute(
            name: "ScratchQuotaReached", metric: metricPrefix + "scratch_quota_reached", metricType: .gauge,
            help: "1 when the scratch directory's usage stands at a limit (within 1/64 or 256 KiB of the byte limit).",
            classAdValue: { $0.scratch?.limitReached.map { .boolean($0) } }, metricValue: { $0.scratch?.limitReached.map { .integer($0 ? 1 : 0) } }),
    ]

    /// A gauge of the scratch quota: bytes (KiB in the ClassAd when `inKiB`) or a count.
    static func scratchFigure(
        _ name: String, metric: String, inKiB: Bool, help: String, _ value: @escaping @Sendable (ScratchUsage) -> UInt64?
    ) -> StatAttribute {
        StatAttribute(
            name: name, metric: metricPrefix + metric, metricType: .gauge, help: help,
            classAdValue: { stats in inKiB ? kib(stats.scratch.flatMap(value)) : integer(stats.scratch.flatMap(value)) },
            metricValue: { integer($0.scratch.flatMap(value)) })
    }

    /// The node service's network counters (bytes, netacct's names and classes), when it answers.
    static let network: [StatAttribute] = {
        let figures: [(name: String, metric: String?, help: String, read: @Sendable (NetworkCounts) -> UInt64)] = [
            (
                "NetworkOutgoingInternal", "network_outgoing_internal_bytes_total", "IP bytes sent to internal networks (netacct --node).",
                { $0.outgoingInternal }
            ),
            (
                "NetworkOutgoingExternal", "network_outgoing_external_bytes_total", "IP bytes sent to external networks (netacct --node).",
                { $0.outgoingExternal }
            ),
            (
                "NetworkIncomingInternal", "network_incoming_internal_bytes_total", "IP bytes received from internal networks (netacct --node).",
                { $0.incomingInternal }
            ),
            (
                "NetworkIncomingExternal", "network_incoming_external_bytes_total", "IP bytes received from external networks (netacct --node).",
                { $0.incomingExternal }
            ),
            ("NetworkOutgoing", nil, "", { $0.outgoingInternal &+ $0.outgoingExternal }),
            ("NetworkIncoming", nil, "", { $0.incomingInternal &+ $0.incomingExternal }),
        ]
        return figures.map { figure in
            StatAttribute(
                name: figure.name, metric: figure.metric.map { metricPrefix + $0 }, metricType: .counter, help: figure.help,
                classAdValue: { stats in integer(stats.network.map(figure.read)) },
                metricValue: { stats in figure.metric == nil ? nil : integer(stats.network.map(figure.read)) })
        }
    }()

    static let processes = StatAttribute(
        name: "NumPids", metric: metricPrefix + "processes", metricType: .gauge,
        help: "Processes in the cgroup's subtree (cgroup.procs of every cgroup in it).",
        classAdValue: { integer($0.processes) }, metricValue: { integer($0.processes) })

    /// PSI: for CPU, memory and I/O, the `some` and `full` 10-second averages (percent in ClassAds, a ratio in
    /// Prometheus) and total stall times (seconds).
    static let pressure: [StatAttribute] = {
        let resources: [(attribute: String, metric: String, file: String, read: @Sendable (CgroupStats) -> PressureStat?)] = [
            ("Cpu", "cpu", "cpu.pressure", { $0.cpuPressure }),
            ("Memory", "memory", "memory.pressure", { $0.memoryPressure }),
            ("IO", "io", "io.pressure", { $0.ioPressure }),
        ]
        var result: [StatAttribute] = []
        for resource in resources {
            for kind in ["Some", "Full"] {
                let lowered = kind.lowercased()
                let read = resource.read
                let line: @Sendable (CgroupStats) -> PressureStat.Line? = { stats in
                    kind == "Some" ? read(stats)?.some : read(stats)?.full
                }
                let who = kind == "Some" ? "some" : "all non-idle"
                result.append(
                    StatAttribute(
                        name: "\(resource.attribute)Pressure\(kind)Avg10", metric: "\(metricPrefix)pressure_\(resource.metric)_\(lowered)_avg10_ratio",
                        metricType: .gauge,
                        help: "Share of the last 10 s in which \(who) tasks stalled on \(resource.metric) (\(resource.file) \(lowered) avg10/100).",
                        classAdValue: { real(line($0)?.avg10) },
                        // The kernel prints two decimals: dividing whole hundredths keeps 1.53 % at 0.0153.
                        metricValue: { real(line($0).map { ($0.avg10 * 100).rounded() / 10000 }) }))
                result.append(
                    StatAttribute(
                        name: "\(resource.attribute)Pressure\(kind)Seconds", metric: "\(metricPrefix)pressure_\(resource.metric)_\(lowered)_seconds_total",
                        metricType: .counter, help: "Total time in which \(who) tasks stalled on \(resource.metric) (\(resource.file) \(lowered) total).",
                        classAdValue: { real(line($0).map { Double($0.totalMicroseconds) / 1e6 }) },
                        metricValue: { real(line($0).map { Double($0.totalMicroseconds) / 1e6 }) }))
            }
        }
        return result
    }()
}
