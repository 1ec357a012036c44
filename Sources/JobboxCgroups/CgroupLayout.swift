import JobboxCore

/// How a node mounts cgroups.
package enum CgroupMode: String, Sendable {
    /// Only v1 hierarchies (EL7-style nodes).
    case v1
    /// Only the unified v2 hierarchy (EL9-style nodes, containers).
    case v2
    /// v1 controller hierarchies plus a cgroup2 mount (systemd's hybrid layout; this project's build machines).
    case hybrid
}

/// One mounted cgroup hierarchy.
package struct CgroupHierarchy: Sendable, Equatable {
    /// Which cgroup version the hierarchy is.
    package enum Version: Sendable, Equatable {
        /// A v1 hierarchy with its own set of controllers.
        case v1
        /// The unified hierarchy.
        case v2
    }

    /// v1 or v2.
    package let version: Version
    /// v1: the controllers bound to it (`cpu`, `cpuacct`, ...); v2: those enabled at its root (`cgroup.controllers`).
    package let controllers: NameSet
    /// v1: a named hierarchy's name (`systemd` for `name=systemd`).
    package let name: String?
    /// Where it is mounted (including the discovery's filesystem root prefix, if any).
    package let mountPoint: String
    /// The cgroup path that is mounted there (`/` unless a container sees only part of the tree).
    package let mountRoot: String

    /// Whether `controller` is bound to this hierarchy.
    package func has(_ controller: String) -> Bool { controllers.contains(controller) }

    /// The directory of the cgroup at `path` (as `/proc/<pid>/cgroup` writes it) in this hierarchy, or nil when it
    /// lies outside what this mount shows (a container's view).
    package func directory(forCgroupPath path: String) -> String? {
        var relative: Substring
        if mountRoot == "/" {
            relative = Substring(path)
        } else if path == mountRoot {
            relative = ""
        } else if path.hasPrefix(mountRoot + "/") {
            relative = path.dropFirst(mountRoot.count)
        } else {
            return nil
        }
        // A path outside a cgroup namespace's root reads as "/.." and cannot be reached from here.
        if relative.split(separator: "/").contains("..") { return nil }
        while relative.hasSuffix("/") { relative = relative.dropLast() }
        // String(relative): String + Substring would call the generic append(contentsOf:), unspecialized here.
        return mountPoint + String(relative)
    }
}

/// The cgroup hierarchies of a node, found from `mountinfo`.
package struct CgroupLayout: Sendable, Equatable {
    /// Every distinct hierarchy, in mount order (bind mounts of one hierarchy appear once).
    package let hierarchies: [CgroupHierarchy]
    /// The prefix prepended to every path (empty on a real node; a fixture tree in tests).
    package let fsRoot: String

    /// v1, v2 or hybrid.
    package var mode: CgroupMode {
        let hasV1Controllers = hierarchies.contains { $0.version == .v1 && !$0.controllers.isEmpty }
        if unified == nil { return .v1 }
        return hasV1Controllers ? .hybrid : .v2
    }

    /// The cgroup2 hierarchy, if mounted.
    package var unified: CgroupHierarchy? { hierarchies.first { $0.version == .v2 } }

    /// The hierarchy that has `controller`: a v1 hierarchy when one has it, else the unified one when it lists it.
    /// v1 and v2 spell one controller differently (`blkio` and `io`); ask with the name of the version you expect.
    package func hierarchy(for controller: String) -> CgroupHierarchy? {
        hierarchies.first { $0.version == .v1 && $0.has(controller) } ?? unified.flatMap { $0.has(controller) ? $0 : nil }
    }

    /// Finds the hierarchies in `mounts`; `readFile` reads `cgroup.controllers` of a v2 mount (relative to `fsRoot`).
    package init(mounts: [MountInfoEntry], fsRoot: String = "", readFile: (String) -> String? = { try? SmallFile.read($0) }) {
        var found: [CgroupHierarchy] = []
        for mount in mounts {
            let mountPoint = fsRoot + mount.mountPoint
            switch mount.fsType {
            case "cgroup":
                var controllers = NameSet()
                var name: String?
                for option in mount.superOptions {
                    if option.hasPrefix("name=") {
                        name = String(option.dropFirst(5))
                    } else if !CgroupLayout.v1MountOptions.contains(option) && !option.contains("=") {
                        controllers.insert(option)
                    }
                }
                let duplicate = found.contains { $0.version == .v1 && $0.controllers == controllers && $0.name == name }
                if !duplicate {
                    found.append(CgroupHierarchy(version: .v1, controllers: controllers, name: name, mountPoint: mountPoint, mountRoot: mount.root))
                }
            case "cgroup2":
                guard !found.contains(where: { $0.version == .v2 }) else { continue }
                let listed = readFile(mountPoint + "/cgroup.controllers") ?? ""
                let controllers = NameSet(listed.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
                found.append(CgroupHierarchy(version: .v2, controllers: controllers, name: nil, mountPoint: mountPoint, mountRoot: mount.root))
            default:
                continue
            }
        }
        hierarchies = found
        self.fsRoot = fsRoot
    }

    /// Options of a v1 cgroup mount that are not controllers.
    static let v1MountOptions: NameSet = ["rw", "ro", "noprefix", "xattr", "clone_children", "cpuset_v2_mode", "nosuid", "nodev", "noexec", "relatime"]

    /// The layout of this node, from `/proc/self/mountinfo`.
    package static func current() throws(JobboxError) -> CgroupLayout {
        CgroupLayout(mounts: try MountInfo.read())
    }

    /// The directory of `membership`'s cgroup in `hierarchy`, or nil when the process is not in it or its
    /// cgroup lies outside what this mount shows (a container's view).
    package func directory(of membership: CgroupMembership, in hierarchy: CgroupHierarchy) -> String? {
        guard let path = membership.path(in: hierarchy) else { return nil }
        return hierarchy.directory(forCgroupPath: path)
    }
}

/// A process's cgroup in each hierarchy, from `/proc/<pid>/cgroup`.
package struct CgroupMembership: Sendable, Equatable {
    /// One line: `hierarchy-id:controllers:path`.
    package struct Entry: Sendable, Equatable {
        /// The hierarchy id (0 for the unified hierarchy).
        package let hierarchyID: Int
        /// The controllers (and `name=` of a named hierarchy); empty for the unified hierarchy.
        package let controllers: NameSet
        /// The cgroup path.
        package let path: String
    }

    /// The lines.
    package let entries: [Entry]

    /// Parses the file's text.
    package init(parsing text: String) {
        entries = text.splitASCII("\n").compactMap { line in
            let parts = line.splitASCII(":", maxSplits: 2, omittingEmpty: false)
            guard parts.count == 3, let id = Int(parts[0]) else { return nil }
            return Entry(hierarchyID: id, controllers: NameSet(parts[1].splitASCII(",").map(String.init)), path: String(parts[2]))
        }
    }

    /// Reads `/proc/<pid>/cgroup`.
    package static func read(pid: String = "self") throws(JobboxError) -> CgroupMembership {
        let path = "/proc/\(pid)/cgroup"
        do {
            return CgroupMembership(parsing: try SmallFile.read(path))
        } catch {
            throw JobboxError.system("cannot read", path, error)
        }
    }

    /// The process's cgroup path in `hierarchy`, or nil.
    package func path(in hierarchy: CgroupHierarchy) -> String? {
        switch hierarchy.version {
        case .v2:
            return entries.first { $0.hierarchyID == 0 && $0.controllers.isEmpty }?.path
        case .v1:
            let key = hierarchy.name.map { NameSet(["name=\($0)"]) } ?? hierarchy.controllers
            return entries.first { $0.hierarchyID != 0 && $0.controllers == key }?.path
        }
    }
}
