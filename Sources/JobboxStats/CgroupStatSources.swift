import JobboxCgroups
import JobboxCore

/// Where one cgroup's figures are read: for each kind of figure, the cgroup's directory in the hierarchy that
/// has the controller (v1 first, else the unified hierarchy), kept only when it exists.
///
/// On a hybrid node memory, CPU and block I/O come from the v1 hierarchies while PSI, which only cgroup2 has,
/// comes from the unified one when the cgroup has a directory there.
package struct CgroupStatSources: Sendable, Equatable {
    /// A directory and the version of its hierarchy.
    package struct Source: Sendable, Equatable {
        /// The cgroup's directory.
        package var directory: String
        /// v1 or v2 (the file names and meanings differ).
        package var version: CgroupHierarchy.Version

        /// Creates a source.
        package init(directory: String, version: CgroupHierarchy.Version) {
            self.directory = directory
            self.version = version
        }
    }

    /// v1 `memory` hierarchy, or the unified one.
    package var memory: Source?
    /// User and system CPU time: v1 `cpuacct`, or the unified hierarchy (`cpu.stat` is always there on v2).
    package var cpuTime: Source?
    /// CFS throttling: v1 `cpu`, or the unified hierarchy.
    package var cpuThrottle: Source?
    /// Block I/O: v1 `blkio`, or the unified hierarchy when it has `io`.
    package var block: Source?
    /// v1 only: the root of the `blkio` hierarchy, whose throttle statistics list the devices the kernel counts
    /// (nil when this mount shows only part of the tree, as in a container).
    package var blockRoot: String?
    /// The cgroup whose subtree's processes are counted (v1 `pids`, else `memory`, else the unified hierarchy).
    package var processes: String?
    /// The cgroup's directory in the unified hierarchy, for PSI.
    package var pressure: String?

    /// Creates sources by hand (fixture tests).
    package init(
        memory: Source? = nil, cpuTime: Source? = nil, cpuThrottle: Source? = nil, block: Source? = nil, blockRoot: String? = nil, processes: String? = nil,
        pressure: String? = nil
    ) {
        self.memory = memory
        self.cpuTime = cpuTime
        self.cpuThrottle = cpuThrottle
        self.block = block
        self.blockRoot = blockRoot
        self.processes = processes
        self.pressure = pressure
    }

    /// Finds the sources in `layout`, where `directory` gives the cgroup's directory in a hierarchy (nil when it
    /// has none there) and `exists` tells whether a directory exists.
    package init(layout: CgroupLayout, directory: (CgroupHierarchy) -> String?, exists: (String) -> Bool = StatFileReader.isDirectory) {
        func source(_ controller: String, v2Needs: String?) -> Source? {
            if let hierarchy = layout.hierarchies.first(where: { $0.version == .v1 && $0.has(controller) }) {
                guard let path = directory(hierarchy), exists(path) else { return nil }
                return Source(directory: path, version: .v1)
            }
            guard let unified = layout.unified, v2Needs.map(unified.has) ?? true,
                let path = directory(unified), exists(path)
            else { return nil }
            return Source(directory: path, version: .v2)
        }
        memory = source("memory", v2Needs: "memory")
        cpuTime = source("cpuacct", v2Needs: nil)
        cpuThrottle = source("cpu", v2Needs: nil)
        block = source("blkio", v2Needs: "io")
        if block?.version == .v1, let hierarchy = layout.hierarchies.first(where: { $0.version == .v1 && $0.has("blkio") }), hierarchy.mountRoot == "/" {
            blockRoot = hierarchy.mountPoint
        }
        processes = source("pids", v2Needs: nil)?.directory ?? memory?.directory ?? cpuTime?.directory
        if let unified = layout.unified, let path = directory(unified), exists(path) {
            pressure = path
        }
    }

    /// Whether no directory was found at all: the cgroup does not exist.
    package var isEmpty: Bool {
        memory == nil && cpuTime == nil && cpuThrottle == nil && block == nil && processes == nil && pressure == nil
    }

    /// Every directory read, without repeats.
    package var directories: [String] {
        var result: [String] = []
        for path in [memory?.directory, cpuTime?.directory, cpuThrottle?.directory, block?.directory, processes, pressure] {
            if let path, !result.contains(path) { result.append(path) }
        }
        return result
    }
}
