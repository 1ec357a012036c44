import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// `JOB_TMPFS_SIZE`: how large a tmpfs ns-exec mounts for a job may grow.
public enum JobTmpfsSize: Sendable, Equatable, CustomStringConvertible {
    /// A share of the node's RAM, in percent (1 to 100).
    case percentOfRAM(Int)
    /// A number of bytes.
    case bytes(UInt64)

    /// The default: half the node's RAM, the kernel's own default for a tmpfs.
    public static let defaultSize = JobTmpfsSize.percentOfRAM(50)

    /// Parses `50%` or a byte size (`512M`, `2G`, `1073741824`); nil otherwise (also for `max`: a job's tmpfs is
    /// always bounded).
    public init?(parsing text: String) {
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
    public func tmpfsOption(ram: UInt64?, cgroupLimit: UInt64?) -> String {
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

    public var description: String {
        switch self {
        case .percentOfRAM(let percent): return "\(percent)%"
        case .bytes(let bytes): return String(bytes)
        }
    }
}

/// The memory figures the tmpfs size is taken from.
public enum JobMemory {
    /// The node's RAM in bytes, nil when unknown.
    public static func physicalMemory() -> UInt64? {
        let pages = sysconf(Int32(_SC_PHYS_PAGES))
        let pageSize = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, pageSize > 0 else { return nil }
        return UInt64(pages) * UInt64(pageSize)
    }

    /// The memory limit of this process's own memory cgroup (v1 `memory.limit_in_bytes`, v2 `memory.max`), nil
    /// when there is none. Read from /proc/self/cgroup (the kernel's) and the cgroup file system, whose
    /// directories hold no symlinks and whose limit files only root writes; a job's user who was delegated its
    /// cgroup can raise no more than its own limit anyway.
    public static func ownCgroupLimit() -> UInt64? {
        guard let membership = try? SmallFile.read("/proc/self/cgroup") else { return nil }
        var unified: String?
        for line in membership.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let path = String(fields[2])
            guard !path.contains("/../"), !path.hasSuffix("/..") else { continue }
            if fields[1].split(separator: ",").contains("memory") {
                return limit(in: "/sys/fs/cgroup/memory" + path, file: "memory.limit_in_bytes")
            }
            if fields[0] == "0" && fields[1].isEmpty { unified = path }
        }
        guard let unified, (try? SmallFile.readIfPresent("/sys/fs/cgroup/cgroup.controllers")) != nil else { return nil }
        return limit(in: "/sys/fs/cgroup" + unified, file: "memory.max")
    }

    private static func limit(in directory: String, file: String) -> UInt64? {
        guard let text = try? SmallFile.read(directory + "/" + file), let value = UInt64(text.trimmingASCIISpaces()) else { return nil }
        // v1 says "no limit" with a huge page-rounded number.
        return value >= 1 << 62 ? nil : value
    }
}
