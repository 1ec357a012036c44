import JobboxCore

/// Where jobs' cgroups live: `<parent>/<BASE_CGROUP>/job_<id>` in each hierarchy.
///
/// cg-exec, jobstat and the tests share this so that they agree on every path.
package struct JobCgroupLocator: Sendable {
    /// The node's hierarchies.
    package let layout: CgroupLayout
    /// The parent of the base cgroup.
    package let parent: CgroupParent
    /// The base cgroup, relative to the parent (`jobbox`).
    package let base: String
    /// The caller's cgroups, for `CgroupParent.current`.
    package let membership: CgroupMembership

    /// Creates a locator.
    package init(layout: CgroupLayout, parent: CgroupParent, base: String, membership: CgroupMembership) {
        self.layout = layout
        self.parent = parent
        self.base = base
        self.membership = membership
    }

    /// A locator for this process from the configuration, with `parentOverride` (`--parent`) taking precedence.
    package static func current(config: JobboxConfig, parentOverride: String? = nil) throws(JobboxError) -> JobCgroupLocator {
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
    package func parentDirectory(in hierarchy: CgroupHierarchy) -> String? {
        switch parent {
        case .root: return hierarchy.directory(forCgroupPath: "/")
        case .current: return layout.directory(of: membership, in: hierarchy)
        case .path(let path): return hierarchy.directory(forCgroupPath: path)
        }
    }

    /// The base cgroup's directory in `hierarchy`.
    package func baseDirectory(in hierarchy: CgroupHierarchy) -> String? {
        parentDirectory(in: hierarchy).map { $0 + "/" + base }
    }

    /// The job's cgroup directory in `hierarchy`.
    package func jobDirectory(_ job: JobID, in hierarchy: CgroupHierarchy) -> String? {
        baseDirectory(in: hierarchy).map { $0 + "/" + job.cgroupName }
    }
}
