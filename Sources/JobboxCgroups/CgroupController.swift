import JobboxCore

/// A cgroup controller a job's cgroup can be made for, with its v1 and v2 names.
package enum CgroupController: String, Sendable, CaseIterable, Hashable, Comparable {
    case memory
    case cpu
    case cpuacct
    case cpuset
    /// Block I/O: `blkio` on v1, `io` on v2.
    case io
    case pids
    case freezer
    /// Device access: `devices` on v1; on v2 a BPF program on the job's cgroup, which every v2 cgroup takes.
    case devices

    /// The name in a v1 hierarchy's mount options.
    package var v1Name: String { self == .io ? "blkio" : rawValue }

    /// The name in v2's `cgroup.controllers`; nil for what v2 has in every cgroup without a controller
    /// (`cpu.stat` replaces cpuacct, `cgroup.freeze` the freezer).
    package var v2Name: String? {
        switch self {
        case .cpuacct, .freezer, .devices: return nil
        default: return rawValue
        }
    }

    /// The controllers cg-exec makes a job's cgroup for when `--controllers` is not given. cpuset is among them on
    /// v1 only: there a job's cpuset cgroup is needed for jobstat's view and costs nothing, while on v2 enabling
    /// cpuset in a delegated subtree often is not allowed, so it is enabled only when a limit asks for it. devices
    /// is used only when a job has a device fence.
    package static let defaults: Set<CgroupController> = Set(allCases)

    /// The name in messages: `io (v1: blkio)` for block I/O.
    package var displayName: String { self == .io ? "io (v1: blkio)" : rawValue }

    /// The names `--controllers` accepts, for messages.
    package static let acceptedNames = "memory, cpu, cpuacct, cpuset, io (or blkio), pids, freezer, devices"

    /// Parses one name (`blkio` is `io`).
    package init?(name: String) {
        if name == "blkio" {
            self = .io
        } else if let controller = CgroupController(rawValue: name) {
            self = controller
        } else {
            return nil
        }
    }

    /// Parses a comma- or space-separated list such as `memory,cpu,pids`.
    package static func parseList(_ text: String, for option: String) throws(JobboxError) -> Set<CgroupController> {
        var result = Set<CgroupController>()
        for name in text.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init) {
            guard let controller = CgroupController(name: name) else {
                throw JobboxError.invalid("unknown controller", "'\(name)' in \(option)", "known controllers are \(acceptedNames)")
            }
            result.insert(controller)
        }
        if result.isEmpty {
            throw JobboxError.invalid("invalid", option, "'\(text)' names no controller; known controllers are \(acceptedNames)")
        }
        return result
    }

    package static func < (lhs: CgroupController, rhs: CgroupController) -> Bool {
        (allCases.firstIndex(of: lhs) ?? 0) < (allCases.firstIndex(of: rhs) ?? 0)
    }
}
