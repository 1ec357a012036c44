import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The file operations cg-exec performs on cgroup hierarchies.
///
/// The kernel's cgroupfs is the real one; tests substitute a fixture tree that behaves like cgroup v2 where this
/// machine's kernel cannot (its v2 hierarchy has no controllers).
package protocol CgroupFilesystem {
    /// `mkdir` with mode 0755.
    func makeDirectory(_ path: String) throws(Errno)
    /// `rmdir`.
    func removeDirectory(_ path: String) throws(Errno)
    /// The whole text of an interface file.
    func read(_ path: String) throws(Errno) -> String
    /// Writes `text` to an existing interface file in one write(2).
    func write(_ text: String, to path: String) throws(Errno)
    /// Whether `path` exists.
    func exists(_ path: String) -> Bool
    /// The names of the directories in `path` (child cgroups), sorted.
    func subdirectories(of path: String) throws(Errno) -> [String]
    /// Attaches a device fence program to the cgroup directory `path` (unified hierarchy).
    func attachDeviceFence(_ fence: DeviceFence, to path: String) throws(JobboxError)
}

extension CgroupFilesystem {
    /// The kernel's: `DeviceProgram.attach`.
    package func attachDeviceFence(_ fence: DeviceFence, to path: String) throws(JobboxError) {
        try DeviceProgram.attach(fence, to: path)
    }

    /// Every cgroup directory of the subtree at `path`, deepest first (children before their parent), `path` last.
    package func subtreeDeepestFirst(_ path: String) -> [String] {
        var result: [String] = []
        for child in (try? subdirectories(of: path)) ?? [] {
            result.append(contentsOf: subtreeDeepestFirst(path + "/" + child))
        }
        result.append(path)
        return result
    }

    /// The pids listed in `<path>/cgroup.procs` (none when it cannot be read).
    package func processIDs(in path: String) -> [Int32] {
        guard let text = try? read(path + "/cgroup.procs") else { return [] }
        return text.splitASCII("\n").compactMap { Int32($0.trimmingASCIISpaces()) }
    }

    /// The pids in every cgroup of the subtree at `path`.
    package func processIDs(inSubtree path: String) -> [Int32] {
        subtreeDeepestFirst(path).flatMap { processIDs(in: $0) }
    }
}

/// The kernel's cgroup filesystems.
package struct KernelCgroupFilesystem: CgroupFilesystem, Sendable {
    /// Creates the accessor.
    package init() {}

    package func makeDirectory(_ path: String) throws(Errno) {
        if mkdir(path, 0o755) != 0 { throw Errno.last }
    }

    package func removeDirectory(_ path: String) throws(Errno) {
        if rmdir(path) != 0 { throw Errno.last }
    }

    package func read(_ path: String) throws(Errno) -> String {
        try SmallFile.read(path)
    }

    package func write(_ text: String, to path: String) throws(Errno) {
        try SmallFile.write(text, to: path)
    }

    package func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    package func subdirectories(of path: String) throws(Errno) -> [String] {
        try DirectoryListing.subdirectories(atPath: path)
    }
}
