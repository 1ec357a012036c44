import JobboxCgroups
import JobboxCore
import JobboxNetacctClient
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The unified (cgroup2) hierarchy as the node service sees it: NETWORK_ACCOUNTING_CGROUP, the cgroups below it
/// and their ids (a cgroup's id is its directory's inode number, what bpf_skb_cgroup_id returns).
///
/// Paths are cgroup paths as /proc/PID/cgroup writes them (`/`, `/system.slice/x`), always clean
/// (`NetacctNodeRequest.cleanCgroupPath`); directories are opened one component at a time without following a
/// symbolic link (cgroupfs has none, but the path comes from a request).
package struct NodeCgroups: Sendable {
    /// Where the unified hierarchy is mounted.
    package let mountPoint: String
    /// NETWORK_ACCOUNTING_CGROUP.
    package let accounting: String

    /// The hierarchy of this mount namespace, with `accounting` (a clean cgroup path) in it.
    package static func current(accounting: String) throws(JobboxError) -> NodeCgroups {
        let layout = try CgroupLayout.current()
        guard let unified = layout.unified else {
            throw JobboxError.invalid(
                "cannot count the node", nil, "no cgroup2 hierarchy is mounted; cgroup BPF attaches there (nodes without it keep netacct's veth back ends)")
        }
        guard unified.mountRoot == "/" else {
            throw JobboxError.invalid("cannot count the node", unified.mountPoint, "this mount shows only part of the cgroup2 hierarchy (\(unified.mountRoot))")
        }
        guard let clean = NetacctNodeRequest.cleanCgroupPath(accounting) else {
            throw JobboxError.invalid("invalid NETWORK_ACCOUNTING_CGROUP", accounting, "not a clean absolute cgroup path")
        }
        return NodeCgroups(mountPoint: unified.mountPoint, accounting: clean)
    }

    /// The directory of cgroup `path`.
    package func directory(_ path: String) -> String { path == "/" ? mountPoint : mountPoint + path }

    /// The level of `path` (the root's is 0), as bpf_skb_ancestor_cgroup_id counts.
    package static func level(_ path: String) -> Int { path.split(separator: "/").count }

    /// Whether `path` is the accounting cgroup or below it.
    package func isCounted(_ path: String) -> Bool { NetacctNodeRequest.isWithin(path, accounting) }

    /// Opens cgroup `path`'s directory: its descriptor and id, or nil when there is no such cgroup.
    package func open(_ path: String) throws(JobboxError) -> (fd: Int32, id: UInt64)? {
        var fd = Glibc.open(mountPoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw JobboxError.lastErrno("cannot open the cgroup2 mount", mountPoint) }
        for component in path.split(separator: "/") {
            let next = openat(fd, String(component), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let saved = errno
            close(fd)
            guard next >= 0 else {
                if saved == ENOENT || saved == ENOTDIR || saved == ELOOP { return nil }
                throw JobboxError.system("cannot open cgroup", directory(path), Errno(rawValue: saved))
            }
            fd = next
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = JobboxError.lastErrno("cannot open cgroup", directory(path))
            close(fd)
            throw error
        }
        return (fd, UInt64(info.st_ino))
    }

    /// Who owns cgroup `path`: its directory's uid and its `cgroup.procs`'s; nil when there is no such cgroup.
    package func owners(of path: String) throws(JobboxError) -> (directory: uid_t, procs: uid_t)? {
        guard let (fd, _) = try open(path) else { return nil }
        defer { close(fd) }
        var directory = stat()
        var procs = stat()
        guard fstat(fd, &directory) == 0, fstatat(fd, "cgroup.procs", &procs, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw JobboxError.lastErrno("cannot read cgroup", self.directory(path))
        }
        return (directory.st_uid, procs.st_uid)
    }

    /// Whether cgroup `path` is delegated to `uid` by root for the service to move its processes in: below the
    /// accounting cgroup, made by root (its directory is root's, so no user made it in a subtree of its own) and
    /// its `cgroup.procs` handed to `uid`, as `cg-exec --delegate-to` does. The user of such a cgroup may read its
    /// counts wherever it runs and have the service move its own processes in (`join`), which the kernel's rule
    /// (write access to `cgroup.procs` of the common ancestor) keeps it from doing itself. Never root's.
    package func isDelegated(_ path: String, to uid: uid_t) throws(JobboxError) -> Bool {
        guard uid != 0, path != accounting, isCounted(path), let owners = try owners(of: path) else { return false }
        return Self.isRootDelegation(owners, to: uid)
    }

    /// Whether a process of `uid` in cgroup `own` may read cgroup `path` as delegated to it: a cgroup root delegated
    /// to the user (`isDelegated`), wherever the process runs; or a cgroup above `own` whose directory is the
    /// user's, as whoever delegates a subtree makes it (HTCondor's starter chowns the job's `.slice` and runs the
    /// wrapper in a root's `.scope` below it; systemd's `Delegate=`): a user makes such a directory only inside a
    /// subtree already its own.
    package func isDelegatedForReading(_ path: String, to uid: uid_t, from own: String) -> Bool {
        guard uid != 0, isCounted(path), let owners = try? owners(of: path) else { return false }
        if owners.directory == uid { return NetacctNodeRequest.isWithin(own, path) }
        return path != accounting && Self.isRootDelegation(owners, to: uid)
    }

    /// The mark `cg-exec --delegate-to` leaves: a directory root made, its `cgroup.procs` handed to `uid`.
    private static func isRootDelegation(_ owners: (directory: uid_t, procs: uid_t), to uid: uid_t) -> Bool {
        owners.directory == 0 && owners.procs == uid
    }

    /// The id of cgroup `path`, or nil when there is none.
    package func id(of path: String) throws(JobboxError) -> UInt64? {
        guard let (fd, id) = try open(path) else { return nil }
        close(fd)
        return id
    }

    /// Every cgroup from the accounting cgroup down (it first, then depth-first), with its id; at most `limit`.
    package func walk(limit: Int = 1 << 20) throws(JobboxError) -> [(path: String, id: UInt64)] {
        guard let (rootFD, rootID) = try open(accounting) else {
            throw JobboxError.invalid("cannot count the node", directory(accounting), "NETWORK_ACCOUNTING_CGROUP does not exist")
        }
        var result: [(path: String, id: UInt64)] = [(accounting, rootID)]
        var pending: [(fd: Int32, path: String)] = [(rootFD, accounting)]
        while let (fd, path) = pending.popLast() {
            defer { close(fd) }
            guard let listing = fdopendir(dup(fd)) else { continue }
            defer { closedir(listing) }
            while let entry = readdir(listing) {
                guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
                if name == "." || name == ".." { continue }
                let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else { continue }  // gone meanwhile
                var info = stat()
                guard fstat(child, &info) == 0, result.count < limit else {
                    close(child)
                    continue
                }
                let childPath = path == "/" ? "/" + name : path + "/" + name
                result.append((childPath, UInt64(info.st_ino)))
                pending.append((child, childPath))
            }
        }
        return result
    }
}
