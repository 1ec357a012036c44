/// Where jobs' cgroups live: `<parent>/<BASE_CGROUP>/job_<id>` in each hierarchy.
///
/// cg-exec, jobstat and the tests share this so that they agree on every path.
public struct JobCgroupLocator: Sendable {
    /// The node's hierarchies.
    public let layout: CgroupLayout
    /// The parent of the base cgroup.
    public let parent: CgroupParent
    /// The base cgroup, relative to the parent (`jobbox`).
    public let base: String
    /// The caller's cgroups, for `CgroupParent.current`.
    public let membership: CgroupMembership

    /// Creates a locator.
    public init(layout: CgroupLayout, parent: CgroupParent, base: String, membership: CgroupMembership) {
        self.layout = layout
        self.parent = parent
        self.base = base
        self.membership = membership
    }

    /// A locator for this process from the configuration, with `parentOverride` (`--parent`) taking precedence.
    public static func current(config: JobboxConfig, parentOverride: String? = nil) throws(JobboxError) -> JobCgroupLocator {
        var parent = config.cgroupParent
        if let parentOverride {
            guard let parsed = CgroupParent(parsing: parentOverride) else {
                throw JobboxError.invalid("invalid --parent", "'\(parentOverride)'", "it is not /, self, or an absolute cgroup path without '..'")
            }
            parent = parsed
        }
        return JobCgroupLocator(layout: try CgroupLayout.current(), parent: parent, base: config.baseCgroup, membership: try CgroupMembership.read())
    }

    /// The parent's directory in `hierarchy`, or nil when the caller's cgroup there cannot be seen.
    public func parentDirectory(in hierarchy: CgroupHierarchy) -> String? {
        switch parent {
        case .root: return layout.directory(forCgroupPath: "/", in: hierarchy)
        case .current: return layout.directory(of: membership, in: hierarchy)
        case .path(let path): return layout.directory(forCgroupPath: path, in: hierarchy)
        }
    }

    /// The base cgroup's directory in `hierarchy`.
    public func baseDirectory(in hierarchy: CgroupHierarchy) -> String? {
        parentDirectory(in: hierarchy).map { $0 + "/" + base }
    }

    /// The job's cgroup directory in `hierarchy`.
    public func jobDirectory(_ job: JobID, in hierarchy: CgroupHierarchy) -> String? {
        baseDirectory(in: hierarchy).map { $0 + "/" + job.cgroupName }
    }
}
