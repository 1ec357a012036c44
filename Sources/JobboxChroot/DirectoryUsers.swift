import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Something that keeps a directory in use, so it must not be removed.
package enum DirectoryUser: Sendable, Equatable, CustomStringConvertible {
    /// A process whose root directory (`/proc/PID/root`) is the directory or below it: a job chrooted into it.
    case root(pid: Int32, command: String)
    /// A process whose working directory is the directory or below it.
    case workingDirectory(pid: Int32, command: String)
    /// A mount at or below the directory, or a bind mount of it, in the mount namespace of process `pid`.
    case mount(mountPoint: String, namespacePID: Int32)

    package var description: String {
        switch self {
        case .root(let pid, let command): return "process \(pid) (\(command)) has its root in it"
        case .workingDirectory(let pid, let command): return "process \(pid) (\(command)) works in it"
        case .mount(let mountPoint, let pid): return "\(mountPoint) is mounted in the mount namespace of process \(pid)"
        }
    }

    /// The same user with mount points below `old` reported below `new` (a directory renamed while scanned).
    package func relocated(from old: String, to new: String) -> DirectoryUser {
        guard case .mount(let mountPoint, let pid) = self, DirectoryTree.isPath(mountPoint, inside: old) else { return self }
        return .mount(mountPoint: new + mountPoint.dropFirst(old.count), namespacePID: pid)
    }

    /// The process, for users that are processes.
    package var pid: Int32? {
        switch self {
        case .root(let pid, _), .workingDirectory(let pid, _): return pid
        case .mount: return nil
        }
    }
}

/// A snapshot of every process's root and working directory and of the mounts of every mount namespace, taken
/// once and asked about many directories (`list` shows whether each version is in use).
///
/// Directories are compared by device and inode, walking up from `/proc/PID/root` with `..`, so a job that
/// pivoted into a bind mount of a chroot in its own mount namespace is seen as well as one that called chroot.
package struct SystemUsage: Sendable {
    struct ProcessView: Sendable {
        let pid: Int32
        let command: String
        let rootAncestors: Set<FileIdentity>
        let cwdAncestors: Set<FileIdentity>
    }

    struct NamespaceMounts: Sendable {
        let pid: Int32
        let mounts: [MountInfoEntry]
    }

    let processes: [ProcessView]
    let namespaces: [NamespaceMounts]
    let ownMounts: [MountInfoEntry]

    /// Scans /proc now.
    package static func scan() -> SystemUsage {
        let ownRoot = FileSystem.identity("/")
        let own = getpid()
        var processes: [ProcessView] = []
        var namespaces: [NamespaceMounts] = []
        var seenNamespaces = Set<UInt64>()
        let ownNamespace = FileSystem.identity("/proc/self/ns/mnt")?.inode
        if let ownNamespace { seenNamespaces.insert(ownNamespace) }
        for entry in (try? FileSystem.entries("/proc")) ?? [] {
            guard let pid = Int32(entry), pid != own else { continue }
            let base = "/proc/\(entry)"
            guard let rootIdentity = FileSystem.identity(base + "/root") else { continue }
            let command = ((try? SmallFile.read(base + "/comm")) ?? "?").trimmingASCIISpaces()
            // Most processes share the host's root: skip the walk for them.
            let rootAncestors = rootIdentity == ownRoot ? [rootIdentity] : ancestors(of: base + "/root")
            processes.append(ProcessView(pid: pid, command: command, rootAncestors: rootAncestors, cwdAncestors: ancestors(of: base + "/cwd")))
            if let namespace = FileSystem.identity(base + "/ns/mnt")?.inode, seenNamespaces.insert(namespace).inserted,
                let text = try? SmallFile.read(base + "/mountinfo")
            {
                namespaces.append(NamespaceMounts(pid: pid, mounts: MountInfo.parse(text)))
            }
        }
        return SystemUsage(processes: processes, namespaces: namespaces, ownMounts: (try? MountInfo.read()) ?? [])
    }

    /// The identities of `path` and each directory above it, up to the top of its mount namespace.
    static func ancestors(of path: String) -> Set<FileIdentity> {
        var result = Set<FileIdentity>()
        var current = path
        for _ in 0..<256 {
            guard let identity = FileSystem.identity(current), result.insert(identity).inserted else { break }
            current += "/.."
        }
        return result
    }

    /// Everything that uses `directory` (a path in this mount namespace).
    package func users(of directory: String) -> [DirectoryUser] {
        guard let identity = FileSystem.identity(directory), let real = FileSystem.realPath(directory) else { return [] }
        var result: [DirectoryUser] = []
        for process in processes {
            if process.rootAncestors.contains(identity) {
                result.append(.root(pid: process.pid, command: process.command))
            } else if process.cwdAncestors.contains(identity) {
                result.append(.workingDirectory(pid: process.pid, command: process.command))
            }
        }
        let fileSystemPath = fileSystemLocation(of: real)
        var seenMounts = Set<String>()
        let all = [NamespaceMounts(pid: getpid(), mounts: ownMounts)] + namespaces
        for namespace in all {
            for mount in namespace.mounts {
                let below = DirectoryTree.isPath(mount.mountPoint, inside: real)
                let bindOfIt = fileSystemPath.map { mount.device == $0.device && DirectoryTree.isPath(mount.root, inside: $0.path) } ?? false
                if (below || bindOfIt) && seenMounts.insert("\(namespace.pid) \(mount.mountPoint)").inserted {
                    result.append(.mount(mountPoint: mount.mountPoint, namespacePID: namespace.pid))
                }
            }
        }
        return result
    }

    /// The device (`major:minor`) of the file system holding `realPath` and the path of it within that file
    /// system, from this namespace's mounts: what a bind mount of it shows as its root in any namespace.
    private func fileSystemLocation(of realPath: String) -> (device: String, path: String)? {
        guard let mount = ownMounts.filter({ DirectoryTree.isPath(realPath, inside: $0.mountPoint) }).max(by: { $0.mountPoint.count < $1.mountPoint.count })
        else { return nil }
        let remainder = mount.mountPoint == "/" ? realPath : String(realPath.dropFirst(mount.mountPoint.count))
        let joined = mount.root == "/" ? remainder : mount.root + remainder
        return (mount.device, joined.isEmpty ? "/" : joined)
    }
}

/// Ending the processes that keep a directory in use (what a crashed build left running in its tree).
enum ProcessReaper {
    /// Sends SIGKILL to every process whose root or working directory is inside `directory`, until none is left
    /// (bounded); returns the ones that would not go.
    @discardableResult
    static func killProcesses(inside directory: String) -> [DirectoryUser] {
        var remaining: [DirectoryUser] = []
        for attempt in 0..<50 {
            remaining = SystemUsage.scan().users(of: directory).filter { $0.pid != nil }
            if remaining.isEmpty { return [] }
            for user in remaining {
                if let pid = user.pid { _ = kill(pid, SIGKILL) }
            }
            // A killed process leaves /proc/PID/root once it is a zombie; give the kernel a moment.
            var pause = timespec(tv_sec: 0, tv_nsec: attempt < 10 ? 10_000_000 : 100_000_000)
            _ = nanosleep(&pause, nil)
        }
        return remaining
    }
}
