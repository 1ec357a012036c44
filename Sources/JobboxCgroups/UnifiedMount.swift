import CLinux
import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

extension CgroupLayout {
    /// Where systemd mounts the unified hierarchy: beside the v1 ones (hybrid), or alone (v2).
    static let usualUnifiedMounts = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
    /// The inode of the initial cgroup namespace (`PROC_CGROUP_INIT_INO`, linux/proc_ns.h), fixed since 4.6.
    static let initialCgroupNamespace: UInt64 = 0xEFFF_FFFB

    /// The unified hierarchy, as `current().unified` finds it, for a caller that needs no other (netacct's bpf back
    /// end, for every job); nil when none is mounted. Its controllers are not read.
    ///
    /// Why: `current()` reads the whole mount table, which the kernel writes out line by line and is long on a
    /// node with many mounts, and parses every line; this asks the kernel three questions instead. The usual
    /// place is taken only when they say what the mount table would: the filesystem there is cgroup2 (statfs),
    /// its directory is the hierarchy's root (inode 1: the mount shows the whole tree, its root is `/`), and this
    /// process is in the initial cgroup namespace (so `/proc/self/cgroup`'s paths start at that root). Anything
    /// else (a container's cgroup namespace, a subtree bound there, another place) is found in the mount table.
    /// Where cgroup2 is mounted twice, the usual place wins over the first mount: every caller of this agrees.
    package static func currentUnified() throws(JobboxError) -> CgroupHierarchy? {
        if let usual = unifiedAtUsualPlace() { return usual }
        return try current().unified
    }

    /// The first of `candidates` that is the whole unified hierarchy as this process's cgroup paths see it, or nil.
    static func unifiedAtUsualPlace(_ candidates: [String] = usualUnifiedMounts) -> CgroupHierarchy? {
        var namespace = stat()
        guard stat("/proc/self/ns/cgroup", &namespace) == 0, UInt64(namespace.st_ino) == initialCgroupNamespace else { return nil }
        for path in candidates {
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_ino == 1, jb_cgroup_fs_kind(path) == 2 else { continue }
            return CgroupHierarchy(version: .v2, controllers: NameSet(), name: nil, mountPoint: path, mountRoot: "/")
        }
        return nil
    }
}
