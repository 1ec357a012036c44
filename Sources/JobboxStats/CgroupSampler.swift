import JobboxCgroups
import JobboxCore
import JobboxQuota

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// One raw figure of a kernel file, for `--raw`: the file, the key as the kernel spells it, the value.
package struct RawStat: Sendable, Equatable {
    /// The file the figure came from (`memory.stat`, `blkio.throttle.io_serviced_recursive`, ...).
    package var file: String
    /// The key as the file spells it (`total_rss`, `8:0 rbytes`, `8:0 Read`).
    package var key: String
    /// The value.
    package var value: UInt64
    /// The ClassAd attribute name: a prefix naming the controller and file, then the key with every character
    /// that cannot be in a ClassAd name replaced by `_` (`CgroupMemory_total_rss`, `CgroupIo_8_0_rbytes`).
    package var attribute: String

    /// Creates a raw figure named `prefix` + the sanitized key.
    package init(file: String, key: String, value: UInt64, prefix: String) {
        self.file = file
        self.key = key
        self.value = value
        self.attribute = prefix + RawStat.sanitize(key)
    }

    static func sanitize(_ key: String) -> String {
        String(
            key.unicodeScalars.map { scalar -> Character in
                switch scalar {
                case "A"..."Z", "a"..."z", "0"..."9", "_": return Character(scalar)
                default: return "_"
                }
            })
    }
}

/// One sample of a cgroup's figures, in the kernel's units. A figure the kernel does not provide on this node is
/// nil (never zero).
package struct CgroupStats: Sendable, Equatable {
    /// Resident memory as HTCondor counts it: v2 `anon + shmem`, v1 `total_rss` (bytes).
    package var residentSetBytes: UInt64?
    /// The kernel's high-water mark of the cgroup's memory, page cache included (bytes).
    package var memoryPeakBytes: UInt64?
    /// Page cache (bytes).
    package var memoryCacheBytes: UInt64?
    /// Swap in use (bytes).
    package var memorySwapBytes: UInt64?
    /// Processes the OOM killer killed in the subtree.
    package var oomKills: UInt64?
    /// User CPU time (seconds).
    package var userCPUSeconds: Double?
    /// System CPU time (seconds).
    package var systemCPUSeconds: Double?
    /// Time the cgroup's tasks were held back by a CFS quota (seconds).
    package var cpuThrottledSeconds: Double?
    /// Bytes read from block devices.
    package var blockReadBytes: UInt64?
    /// Bytes written to block devices.
    package var blockWriteBytes: UInt64?
    /// Read requests.
    package var blockReads: UInt64?
    /// Write requests.
    package var blockWrites: UInt64?
    /// Processes in the subtree.
    package var processes: UInt64?
    /// v2 PSI of CPU.
    package var cpuPressure: PressureStat?
    /// v2 PSI of memory.
    package var memoryPressure: PressureStat?
    /// v2 PSI of block I/O.
    package var ioPressure: PressureStat?
    /// Every key of the stat files read (only when asked for).
    package var raw: [RawStat] = []
    /// What the quota of the job's scratch directory counts (`--scratch`).
    package var scratch: ScratchUsage?
    /// The cgroup's network traffic, from the node service (`netacct --node`), nil when it does not answer.
    package var network: NetworkCounts?

    /// An empty sample.
    package init() {}
}

/// Reads one sample of a cgroup's figures from its `CgroupStatSources`.
///
/// Each file is read once per sample into the reader's buffer; figures the kernel keeps per cgroup rather than
/// per subtree (v1 `oom_kill`, v1 blkio files without `_recursive`, `cgroup.procs`) are summed over the subtree.
package struct CgroupSampler {
    /// Where to read.
    package let sources: CgroupStatSources
    /// Whether to collect every key of the stat files.
    package let includeRaw: Bool
    /// The kernel's USER_HZ, the unit of v1 `cpuacct.stat`.
    package let clockTicksPerSecond: UInt64
    private let reader: StatFileReader
    /// The v1 blkio files tried, in order (tests leave out the `_recursive` ones to check the subtree sum).
    let blkioFiles: [(bytes: String, requests: String, recursive: Bool, throttle: Bool)]

    /// Creates a sampler.
    package init(sources: CgroupStatSources, includeRaw: Bool = false, reader: StatFileReader = StatFileReader(), clockTicksPerSecond: UInt64? = nil) {
        self.init(sources: sources, includeRaw: includeRaw, reader: reader, clockTicksPerSecond: clockTicksPerSecond, blkioFiles: Self.defaultBlkioFiles)
    }

    init(
        sources: CgroupStatSources, includeRaw: Bool, reader: StatFileReader, clockTicksPerSecond: UInt64?,
        blkioFiles: [(bytes: String, requests: String, recursive: Bool, throttle: Bool)]
    ) {
        self.blkioFiles = blkioFiles
        self.sources = sources
        self.includeRaw = includeRaw
        self.reader = reader
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        self.clockTicksPerSecond = clockTicksPerSecond ?? (ticks > 0 ? UInt64(ticks) : 100)
    }

    /// Reads one sample.
    package func sample() throws(JobboxError) -> CgroupStats {
        var stats = CgroupStats()
        if let memory = sources.memory {
            switch memory.version {
            case .v1: try sampleMemoryV1(memory.directory, into: &stats)
            case .v2: try sampleMemoryV2(memory.directory, into: &stats)
            }
        }
        try sampleCPU(into: &stats)
        if let block = sources.block {
            switch block.version {
            case .v1: try sampleBlockV1(block.directory, into: &stats)
            case .v2: try sampleBlockV2(block.directory, into: &stats)
            }
        }
        if let directory = sources.processes {
            stats.processes = try countProcesses(below: directory)
        }
        if let directory = sources.pressure {
            stats.cpuPressure = try reader.read(directory + "/cpu.pressure", CgroupStatFormat.pressure).value
            stats.memoryPressure = try reader.read(directory + "/memory.pressure", CgroupStatFormat.pressure).value
            stats.ioPressure = try reader.read(directory + "/io.pressure", CgroupStatFormat.pressure).value
        }
        return stats
    }

    // MARK: memory

    private func sampleMemoryV1(_ directory: String, into stats: inout CgroupStats) throws(JobboxError) {
        if let stat = try reader.read(directory + "/memory.stat", CgroupStatFormat.flatKeyed).value {
            // The total_ keys cover the subtree (use_hierarchy is always on since Linux 5.16, and is how
            // cg-exec's jobs are made before that); rss leaves out shmem, which v1 counts as cache: HTCondor's rss.
            stats.residentSetBytes = stat.value("total_rss")
            stats.memoryCacheBytes = stat.value("total_cache")
            stats.memorySwapBytes = stat.value("total_swap")
            addRaw(stat, file: "memory.stat", prefix: "CgroupMemory_", to: &stats)
        }
        stats.memoryPeakBytes = try reader.read(directory + "/memory.max_usage_in_bytes", CgroupStatFormat.singleNumber).value ?? nil
        // v1 counts an OOM kill only in the cgroup of the killed task, so the subtree is summed.
        var kills: UInt64?
        for (index, path) in CgroupTree.subtree(of: directory).enumerated() {
            let stat = try reader.read(path + "/memory.oom_control", CgroupStatFormat.flatKeyed).value
            guard let count = stat?.value("oom_kill") else {
                if index == 0 { break }  // a kernel before 4.13 has no oom_kill line
                continue  // a sub-cgroup removed meanwhile
            }
            kills = (kills ?? 0) &+ count
        }
        stats.oomKills = kills
    }

    private func sampleMemoryV2(_ directory: String, into stats: inout CgroupStats) throws(JobboxError) {
        if let stat = try reader.read(directory + "/memory.stat", CgroupStatFormat.flatKeyed).value {
            if let anon = stat.value("anon"), let shmem = stat.value("shmem") {
                stats.residentSetBytes = anon &+ shmem
            }
            stats.memoryCacheBytes = stat.value("file")
            addRaw(stat, file: "memory.stat", prefix: "CgroupMemory_", to: &stats)
        }
        stats.memoryPeakBytes = try reader.read(directory + "/memory.peak", CgroupStatFormat.singleNumber).value ?? nil
        stats.memorySwapBytes = try reader.read(directory + "/memory.swap.current", CgroupStatFormat.singleNumber).value ?? nil
        // memory.events is hierarchical (memory.events.local is not).
        if let events = try reader.read(directory + "/memory.events", CgroupStatFormat.flatKeyed).value {
            stats.oomKills = events.value("oom_kill")
            addRaw(events, file: "memory.events", prefix: "CgroupMemoryEvents_", to: &stats)
        }
    }

    // MARK: CPU

    private func sampleCPU(into stats: inout CgroupStats) throws(JobboxError) {
        var v2CPUStat: (directory: String, stat: FlatKeyedStat?)?
        func readV2CPUStat(_ directory: String) throws(JobboxError) -> FlatKeyedStat? {
            if let cached = v2CPUStat, cached.directory == directory { return cached.stat }
            let stat = try reader.read(directory + "/cpu.stat", CgroupStatFormat.flatKeyed).value
            v2CPUStat = (directory, stat)
            if let stat { addRaw(stat, file: "cpu.stat", prefix: "CgroupCpu_", to: &stats) }
            return stat
        }
        if let source = sources.cpuTime {
            switch source.version {
            case .v1:
                if let stat = try reader.read(source.directory + "/cpuacct.stat", CgroupStatFormat.flatKeyed).value {
                    let hertz = Double(clockTicksPerSecond)
                    stats.userCPUSeconds = stat.value("user").map { Double($0) / hertz }
                    stats.systemCPUSeconds = stat.value("system").map { Double($0) / hertz }
                    addRaw(stat, file: "cpuacct.stat", prefix: "CgroupCpuacct_", to: &stats)
                }
            case .v2:
                let stat = try readV2CPUStat(source.directory)
                stats.userCPUSeconds = stat?.value("user_usec").map { Double($0) / 1e6 }
                stats.systemCPUSeconds = stat?.value("system_usec").map { Double($0) / 1e6 }
            }
        }
        if let source = sources.cpuThrottle {
            switch source.version {
            case .v1:
                if let stat = try reader.read(source.directory + "/cpu.stat", CgroupStatFormat.flatKeyed).value {
                    stats.cpuThrottledSeconds = stat.value("throttled_time").map { Double($0) / 1e9 }
                    addRaw(stat, file: "cpu.stat", prefix: "CgroupCpu_", to: &stats)
                }
            case .v2:
                // throttled_usec is there only when the cpu controller is enabled for the cgroup.
                stats.cpuThrottledSeconds = try readV2CPUStat(source.directory)?.value("throttled_usec").map { Double($0) / 1e6 }
            }
        }
    }

    // MARK: block I/O

    /// v1 blkio files in order of preference: the throttle policy's counts every bio of every device (on kernels
    /// that have `_recursive`, per subtree), CFQ's only requests CFQ scheduled (kernels before 5.0).
    static let defaultBlkioFiles: [(bytes: String, requests: String, recursive: Bool, throttle: Bool)] = [
        ("blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_serviced_recursive", true, true),
        ("blkio.throttle.io_service_bytes", "blkio.throttle.io_serviced", false, true),
        ("blkio.io_service_bytes_recursive", "blkio.io_serviced_recursive", true, false),
        ("blkio.io_service_bytes", "blkio.io_serviced", false, false),
    ]

    private func sampleBlockV1(_ directory: String, into stats: inout CgroupStats) throws(JobboxError) {
        for files in blkioFiles {
            guard let bytes = try readBlkio(directory, files.bytes, recursive: files.recursive) else { continue }
            let requests = try readBlkio(directory, files.requests, recursive: files.recursive)
            if includeRaw {
                addRaw(bytes, file: files.bytes, prefix: "CgroupBlkio_io_service_bytes_", to: &stats)
                if let requests { addRaw(requests, file: files.requests, prefix: "CgroupBlkio_io_serviced_", to: &stats) }
            }
            if files.throttle, try !throttleCountsAnyDevice() { return }
            stats.blockReadBytes = bytes.sum("Read")
            stats.blockWriteBytes = bytes.sum("Write")
            stats.blockReads = requests?.sum("Read")
            stats.blockWrites = requests?.sum("Write")
            return
        }
    }

    /// The file summed over the subtree unless the kernel already does; nil when the kernel lacks it.
    private func readBlkio(_ directory: String, _ file: String, recursive: Bool) throws(JobboxError) -> BlkioStat? {
        guard var total = try reader.read(directory + "/" + file, CgroupStatFormat.blkio).value else { return nil }
        if !recursive {
            for child in CgroupTree.subtree(of: directory).dropFirst() {
                if let stat = try reader.read(child + "/" + file, CgroupStatFormat.blkio).value { total.add(stat) }
            }
        }
        return total
    }

    /// Whether the throttle policy counts I/O on any device: since Linux commit a3166c51702b ("blk-throttle:
    /// delay initialization until configuration") it is switched on per device only once some cgroup sets a
    /// throttle limit there, and until then the v1 files show nothing for any cgroup. The root cgroup lists
    /// exactly the devices that count.
    private func throttleCountsAnyDevice() throws(JobboxError) -> Bool {
        guard let root = sources.blockRoot else { return true }
        guard let stat = try reader.read(root + "/blkio.throttle.io_service_bytes", CgroupStatFormat.blkio).value else { return true }
        return !stat.lines.isEmpty
    }

    private func sampleBlockV2(_ directory: String, into stats: inout CgroupStats) throws(JobboxError) {
        guard let devices = try reader.read(directory + "/io.stat", CgroupStatFormat.nestedKeyed).value else { return }
        var readBytes: UInt64 = 0
        var writeBytes: UInt64 = 0
        var reads: UInt64 = 0
        var writes: UInt64 = 0
        for device in devices {
            readBytes &+= device.value("rbytes") ?? 0
            writeBytes &+= device.value("wbytes") ?? 0
            reads &+= device.value("rios") ?? 0
            writes &+= device.value("wios") ?? 0
            if includeRaw {
                for field in device.fields {
                    stats.raw.append(RawStat(file: "io.stat", key: device.device + " " + field.key, value: field.value, prefix: "CgroupIo_"))
                }
            }
        }
        stats.blockReadBytes = readBytes
        stats.blockWriteBytes = writeBytes
        stats.blockReads = reads
        stats.blockWrites = writes
    }

    // MARK: processes

    /// The processes of the subtree, as HTCondor counts `NumPids` (`cgroup.procs` of every cgroup in it).
    private func countProcesses(below directory: String) throws(JobboxError) -> UInt64? {
        var total: UInt64?
        for (index, path) in CgroupTree.subtree(of: directory).enumerated() {
            guard let count = try reader.read(path + "/cgroup.procs", CgroupStatFormat.lineCount).value else {
                if index == 0 { return nil }
                continue
            }
            total = (total ?? 0) + UInt64(count)
        }
        return total
    }

    // MARK: raw

    private func addRaw(_ stat: FlatKeyedStat, file: String, prefix: String, to stats: inout CgroupStats) {
        guard includeRaw else { return }
        for entry in stat.entries {
            stats.raw.append(RawStat(file: file, key: entry.key, value: entry.value, prefix: prefix))
        }
    }

    private func addRaw(_ stat: BlkioStat, file: String, prefix: String, to stats: inout CgroupStats) {
        for line in stat.lines {
            stats.raw.append(RawStat(file: file, key: line.device + " " + line.operation, value: line.value, prefix: prefix))
        }
        if let total = stat.total {
            stats.raw.append(RawStat(file: file, key: "Total", value: total, prefix: prefix))
        }
    }
}

extension StatFileResult {
    /// The parsed contents, or nil when the file is absent.
    package var value: Value? {
        if case .value(let value) = self { return value }
        return nil
    }
}

/// A cgroup's IP bytes by direction and class, as `netacct --node` counts them (the subtree included).
package struct NetworkCounts: Sendable, Equatable {
    package var outgoingInternal: UInt64
    package var outgoingExternal: UInt64
    package var incomingInternal: UInt64
    package var incomingExternal: UInt64

    package init(outgoingInternal: UInt64, outgoingExternal: UInt64, incomingInternal: UInt64, incomingExternal: UInt64) {
        self.outgoingInternal = outgoingInternal
        self.outgoingExternal = outgoingExternal
        self.incomingInternal = incomingInternal
        self.incomingExternal = incomingExternal
    }

    /// The counts in a service answer (netacct's attribute names), nil when one is missing or negative.
    package init?(_ ad: ClassAd) {
        func count(_ name: String) -> UInt64? { ad.integer(name).flatMap { UInt64(exactly: $0) } }
        guard let outgoingInternal = count("NetworkOutgoingInternal"), let outgoingExternal = count("NetworkOutgoingExternal"),
            let incomingInternal = count("NetworkIncomingInternal"), let incomingExternal = count("NetworkIncomingExternal")
        else { return nil }
        self.init(
            outgoingInternal: outgoingInternal, outgoingExternal: outgoingExternal, incomingInternal: incomingInternal, incomingExternal: incomingExternal)
    }
}
