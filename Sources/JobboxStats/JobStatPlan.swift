import JobboxCgroups
import JobboxCore

/// Which cgroups jobstat reads.
package enum JobStatSelection: Sendable, Equatable {
    /// `--job ID` (or the job of the environment): `<parent>/<BASE_CGROUP>/job_<id>` in each hierarchy.
    case job(JobID)
    /// `--cgroup PATH`: a cgroup path as `/proc/<pid>/cgroup` writes it, or a directory under a cgroup mount.
    case cgroup(String)
    /// `--pid PID`: that process's cgroup in each hierarchy.
    case pid(Int32)
    /// `--self`: the caller's own cgroup.
    case current
    /// `--all`: every `job_*` under the base.
    case all
}

/// One cgroup to sample and how the output names it.
package struct JobStatTarget: Sendable {
    /// Prometheus labels.
    package var labels: [(name: String, value: String)]
    /// The ClassAd/JSON attribute naming it (with `--all`).
    package var identity: (name: String, value: String)?
    /// Where its figures are.
    package var sources: CgroupStatSources
}

/// What a selection found.
package enum JobStatTargets: Sendable {
    /// The cgroups to sample (empty for `--all` on a node without jobs).
    case found([JobStatTarget])
    /// The selected cgroup does not exist (any more): the error to report.
    case missing(JobboxError)
}

/// Resolves a selection to cgroup directories with `JobCgroupLocator` and `CgroupLayout`.
package struct JobStatPlanner: Sendable {
    /// The node's hierarchies, the base cgroup and its parent, and the caller's cgroups.
    package let locator: JobCgroupLocator
    /// Reads `/proc/<pid>/cgroup` (replaced in fixture tests).
    package let membershipOf: @Sendable (Int32) throws(JobboxError) -> CgroupMembership
    /// Whether a directory exists (replaced in tests only if needed).
    package let exists: @Sendable (String) -> Bool
    /// `--exclude-shared-with PID`: that process's cgroups. A hierarchy where the selected cgroup is also this one
    /// is left out: its figures count more than the job (a job wrapper in the cgroup its batch system's daemon
    /// shares with other jobs, as HTCondor's v1 starter leaves it for blkio and pids).
    package var excluded: CgroupMembership?

    /// The prefix of job cgroups' names.
    package static let jobPrefix = "job_"

    /// Creates a planner.
    package init(
        locator: JobCgroupLocator,
        membershipOf: @escaping @Sendable (Int32) throws(JobboxError) -> CgroupMembership = { pid throws(JobboxError) in
            try CgroupMembership.read(pid: String(pid))
        },
        exists: @escaping @Sendable (String) -> Bool = StatFileReader.isDirectory
    ) {
        self.locator = locator
        self.membershipOf = membershipOf
        self.exists = exists
    }

    /// The cgroups `selection` names now.
    package func targets(_ selection: JobStatSelection) throws(JobboxError) -> JobStatTargets {
        let layout = locator.layout
        switch selection {
        case .job(let job):
            let name = job.cgroupName
            return single(labels: [("job", String(name.dropFirst(Self.jobPrefix.count)))], missing: "no cgroup for job", object: job.rawValue) {
                locator.jobDirectory(job, in: $0)
            }
        case .cgroup(let text):
            let path = try cgroupPath(text)
            return single(labels: [("cgroup", path)], missing: "no cgroup", object: path) { $0.directory(forCgroupPath: path) }
        case .pid(let pid):
            let membership = try membershipOf(pid)
            return single(labels: [("cgroup", primaryPath(membership))], missing: "no visible cgroup for pid", object: String(pid)) {
                layout.directory(of: membership, in: $0)
            }
        case .current:
            let membership = locator.membership
            return single(labels: [("cgroup", primaryPath(membership))], missing: "no visible cgroup for", object: "this process") {
                layout.directory(of: membership, in: $0)
            }
        case .all:
            return .found(allJobs())
        }
    }

    /// The hierarchies jobstat reads, the one with memory first (its directory names a missing cgroup).
    var readHierarchies: [CgroupHierarchy] {
        let wanted: NameSet = ["memory", "cpu", "cpuacct", "blkio", "pids"]
        let v1 = locator.layout.hierarchies.filter { $0.version == .v1 && !$0.controllers.isDisjoint(with: wanted) }
        let ordered = v1.filter { $0.has("memory") } + v1.filter { !$0.has("memory") }
        return ordered + (locator.layout.unified.map { [$0] } ?? [])
    }

    private func single(labels: [(name: String, value: String)], missing: String, object: String, directory found: (CgroupHierarchy) -> String?)
        -> JobStatTargets
    {
        func directory(_ hierarchy: CgroupHierarchy) -> String? {
            guard let path = found(hierarchy) else { return nil }
            if let excluded, locator.layout.directory(of: excluded, in: hierarchy) == path { return nil }
            return path
        }
        let sources = CgroupStatSources(layout: locator.layout, directory: directory, exists: exists)
        guard !sources.isEmpty else {
            let candidate = readHierarchies.compactMap(found).first
            let shared = excluded != nil && readHierarchies.contains { found($0) != nil && directory($0) == nil }
            let reason =
                shared
                ? "it shares its cgroup with the process of --exclude-shared-with in every hierarchy read"
                : candidate.map { "\($0) does not exist" } ?? "no cgroup hierarchy shows it"
            return .missing(JobboxError(missing, object, reason: reason))
        }
        return .found([JobStatTarget(labels: labels, identity: nil, sources: sources)])
    }

    /// Every `job_*` directory under the base in any hierarchy jobstat reads, sorted by name.
    private func allJobs() -> [JobStatTarget] {
        // A Set (not NameSet, whose insert is linear): thousands of jobs on a big node.
        var names: Set<String> = []
        for hierarchy in readHierarchies {
            guard let base = locator.baseDirectory(in: hierarchy) else { continue }
            for name in CgroupTree.names(in: base) where name.hasPrefix(Self.jobPrefix) { names.insert(name) }
        }
        return names.sorted().compactMap { name in
            let sources = CgroupStatSources(layout: locator.layout, directory: { locator.baseDirectory(in: $0).map { $0 + "/" + name } }, exists: exists)
            guard !sources.isEmpty else { return nil }
            return JobStatTarget(labels: [("job", String(name.dropFirst(Self.jobPrefix.count)))], identity: ("JobCgroup", name), sources: sources)
        }
    }

    /// The process's cgroup path in the first hierarchy jobstat reads that lists it.
    private func primaryPath(_ membership: CgroupMembership) -> String {
        readHierarchies.lazy.compactMap { membership.path(in: $0) }.first ?? "/"
    }

    /// `--cgroup`'s argument as a cgroup path: absolute, no `..`; a directory under a cgroup mount is turned
    /// into the cgroup path it shows.
    func cgroupPath(_ text: String) throws(JobboxError) -> String {
        guard text.hasPrefix("/"), !text.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
            throw JobboxError.invalid("invalid --cgroup", "'\(text)'", "it is not an absolute cgroup path without '.' or '..'")
        }
        var path = text
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        let mounts = locator.layout.hierarchies.sorted { $0.mountPoint.count > $1.mountPoint.count }
        for hierarchy in mounts {
            let mountPoint = String(hierarchy.mountPoint.dropFirst(locator.layout.fsRoot.count))
            if path == mountPoint || path.hasPrefix(mountPoint + "/") {
                let rest = path.dropFirst(mountPoint.count)
                let root = hierarchy.mountRoot == "/" ? "" : hierarchy.mountRoot
                let joined = root + rest
                return joined.isEmpty ? "/" : joined
            }
        }
        return path
    }
}
