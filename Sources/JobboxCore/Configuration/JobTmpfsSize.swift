/// `JOB_TMPFS_SIZE`: how large a tmpfs ns-exec mounts for a job may grow.
package enum JobTmpfsSize: Sendable, Equatable, CustomStringConvertible {
    /// A share of the node's RAM, in percent (1 to 100).
    case percentOfRAM(Int)
    /// A number of bytes.
    case bytes(UInt64)

    /// The default: half the node's RAM, the kernel's own default for a tmpfs.
    package static let defaultSize = JobTmpfsSize.percentOfRAM(50)

    /// Parses `50%` or a byte size (`512M`, `2G`, `1073741824`); nil otherwise (also for `max`: a job's tmpfs is
    /// always bounded).
    package init?(parsing text: String) {
        let trimmed = text.trimmingASCIISpaces()
        if trimmed.hasSuffix("%") {
            guard let percent = Int(trimmed.dropLast()), (1...100).contains(percent) else { return nil }
            self = .percentOfRAM(percent)
            return
        }
        guard case .bytes(let bytes)? = ByteSize(parsing: trimmed), bytes > 0 else { return nil }
        self = .bytes(bytes)
    }

    /// The tmpfs `size=` value: this size, or the job's memory cgroup limit when that is smaller (tmpfs pages
    /// are charged to the writer's cgroup anyway; the size makes a full tmpfs fail with ENOSPC, not with the
    /// OOM killer). `ram` and `cgroupLimit` nil when unknown.
    package func tmpfsOption(ram: UInt64?, cgroupLimit: UInt64?) -> String {
        var bytes: UInt64?
        switch self {
        case .bytes(let value): bytes = value
        case .percentOfRAM(let percent): bytes = ram.map { $0 / 100 * UInt64(percent) + $0 % 100 * UInt64(percent) / 100 }
        }
        if let limit = cgroupLimit { bytes = min(bytes ?? limit, limit) }
        guard let bytes else {
            if case .percentOfRAM(let percent) = self { return "\(percent)%" }
            return "50%"
        }
        // The kernel rounds up to whole pages; a size of 0 would mean unlimited.
        return String(max(bytes, 4096))
    }

    package var description: String {
        switch self {
        case .percentOfRAM(let percent): return "\(percent)%"
        case .bytes(let bytes): return String(bytes)
        }
    }
}
