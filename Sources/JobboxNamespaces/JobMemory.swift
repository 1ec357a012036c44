import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The memory figures the tmpfs size is taken from.
package enum JobMemory {
    /// The node's RAM in bytes, nil when unknown.
    package static func physicalMemory() -> UInt64? {
        let pages = sysconf(Int32(_SC_PHYS_PAGES))
        let pageSize = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, pageSize > 0 else { return nil }
        return UInt64(pages) * UInt64(pageSize)
    }

    /// The memory limit of this process's own memory cgroup (v1 `memory.limit_in_bytes`, v2 `memory.max`), nil
    /// when there is none. Read from /proc/self/cgroup (the kernel's) and the cgroup file system, whose
    /// directories hold no symlinks and whose limit files only root writes; a job's user who was delegated its
    /// cgroup can raise no more than its own limit anyway.
    package static func ownCgroupLimit() -> UInt64? {
        guard let membership = try? SmallFile.read("/proc/self/cgroup") else { return nil }
        var unified: String?
        for line in membership.splitASCII("\n") {
            let fields = line.splitASCII(":", maxSplits: 2, omittingEmpty: false)
            guard fields.count == 3 else { continue }
            let path = String(fields[2])
            guard !path.splitASCII("/").contains("..") else { continue }
            if fields[1].splitASCII(",").contains("memory") {
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
