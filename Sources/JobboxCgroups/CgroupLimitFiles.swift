import JobboxCore

/// One setting to write into a job's cgroup: the first of `candidates` whose file exists gets its value, so a
/// setting can fall back between files one kernel has and another lacks (`blkio.weight` or `blkio.bfq.weight`).
package struct CgroupLimitWrite: Sendable, Equatable, CustomStringConvertible {
    /// A file name (relative to the job's cgroup directory) and the value for it.
    package struct FileValue: Sendable, Equatable {
        /// The interface file, such as `memory.max`.
        package let file: String
        /// The text written.
        package let value: String

        /// Creates a file and value pair.
        package init(_ file: String, _ value: String) {
            self.file = file
            self.value = value
        }
    }

    /// What asked for it (`--memory`, or `OOM group` for cg-exec's own settings), for messages.
    package let source: String
    /// The controller whose files these are.
    package let controller: CgroupController
    /// The files to try, in order.
    package let candidates: [FileValue]

    /// Creates a setting.
    package init(_ source: String, _ controller: CgroupController, _ candidates: [FileValue]) {
        self.source = source
        self.controller = controller
        self.candidates = candidates
    }

    /// Creates a setting with one file.
    package init(_ source: String, _ controller: CgroupController, file: String, value: String) {
        self.init(source, controller, [FileValue(file, value)])
    }

    /// `file = value` of the first candidate.
    package var description: String {
        candidates.first.map { "\($0.file) = \($0.value)" } ?? source
    }
}

extension CgroupLimits {
    /// The files to write for `controller` in a hierarchy of `version`, in the order they must be written.
    ///
    /// Errors for what that version cannot do (`--memory-high` on v1, `--swap` without `--memory` on v1).
    package func writes(for controller: CgroupController, version: CgroupHierarchy.Version) throws(JobboxError) -> [CgroupLimitWrite] {
        let v2 = version == .v2
        var result: [CgroupLimitWrite] = []
        func add(_ source: String, _ file: String, _ value: String) {
            result.append(CgroupLimitWrite(source, controller, file: file, value: value))
        }
        switch controller {
        case .memory:
            if v2 {
                if let memory { add("--memory", "memory.max", memory.cgroupValue(v2: true)) }
                if let memorySoft { add("--memory-soft", "memory.low", memorySoft.cgroupValue(v2: true)) }
                if let memoryHigh { add("--memory-high", "memory.high", memoryHigh.cgroupValue(v2: true)) }
                if let swap { add("--swap", "memory.swap.max", swap.cgroupValue(v2: true)) }
                // One OOM kill takes the whole job, as HTCondor sets it, rather than leaving a maimed job running.
                add("OOM group", "memory.oom.group", "1")
            } else {
                if memoryHigh != nil {
                    throw JobboxError.invalid(
                        "cannot apply", "--memory-high",
                        "cgroup v1 has no memory.high and this node's memory controller is on v1 (use --memory or --memory-soft)")
                }
                if let memory { add("--memory", "memory.limit_in_bytes", memory.cgroupValue(v2: false)) }
                if let memorySoft { add("--memory-soft", "memory.soft_limit_in_bytes", memorySoft.cgroupValue(v2: false)) }
                if let swap {
                    guard let memory else {
                        throw JobboxError.invalid(
                            "cannot apply", "--swap", "on cgroup v1 it needs --memory: memory.memsw.limit_in_bytes limits memory plus swap together")
                    }
                    // Written after memory.limit_in_bytes: the kernel refuses memsw below the memory limit.
                    add("--swap", "memory.memsw.limit_in_bytes", Self.memoryPlusSwap(memory, swap))
                }
            }
        case .cpu:
            if let cpuWeight {
                if v2 { add(cpuWeightOption, "cpu.weight", String(cpuWeight.weight)) } else { add(cpuWeightOption, "cpu.shares", String(cpuWeight.shares)) }
            }
            if let cpuQuota {
                let period = String(CgroupWeights.quotaPeriodMicroseconds)
                switch (cpuQuota, v2) {
                case (.cpus(let cpus), true): add("--cpu-quota", "cpu.max", "\(CgroupWeights.quotaMicroseconds(forCPUs: cpus)) \(period)")
                case (.unlimited, true): add("--cpu-quota", "cpu.max", "max \(period)")
                case (.cpus(let cpus), false):
                    add("--cpu-quota", "cpu.cfs_period_us", period)
                    add("--cpu-quota", "cpu.cfs_quota_us", String(CgroupWeights.quotaMicroseconds(forCPUs: cpus)))
                case (.unlimited, false): add("--cpu-quota", "cpu.cfs_quota_us", "-1")
                }
            }
        case .cpuset:
            if let mems { add("--mems", "cpuset.mems", mems.description) }
            if let cpuset { add("--cpuset", "cpuset.cpus", cpuset.description) }
        case .pids:
            if let pidsMax { add("--pids-max", "pids.max", pidsMax.cgroupValue) }
        case .io:
            if let ioWeight {
                let bfq = String(CgroupWeights.bfqWeight(fromIOWeight: ioWeight))
                let candidates =
                    v2
                    ? [CgroupLimitWrite.FileValue("io.weight", "default \(ioWeight)"), .init("io.bfq.weight", bfq)]
                    : [.init("blkio.weight", String(CgroupWeights.blkioWeight(fromIOWeight: ioWeight))), .init("blkio.bfq.weight", bfq)]
                result.append(CgroupLimitWrite("--io-weight", .io, candidates))
            }
        case .devices:
            // v2 has no files for it: the fence is a BPF program, attached by JobCgroupCreator.
            if let devices, !v2 { result += devices.v1Writes }
        case .cpuacct, .freezer:
            break
        }
        return result
    }

    /// v1's memsw limit: memory plus swap, or -1 when either is unlimited (or the sum overflows).
    static func memoryPlusSwap(_ memory: ByteSize, _ swap: ByteSize) -> String {
        guard let m = memory.byteCount, let s = swap.byteCount else { return "-1" }
        let (sum, overflow) = m.addingReportingOverflow(s)
        return overflow ? "-1" : String(sum)
    }
}
