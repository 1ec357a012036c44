import JobboxCgroups
import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The record of one job counted by the bpf back end: `STATE_DIR/netacct/bpf/<cgroup name>.lease`, written
/// before the cgroup is made and removed after it is gone, for `--show` and `--cleanup --stale`.
///
/// Nothing is pinned: the programs hang on bpf_links only netacct holds (the kernel detaches them when it dies),
/// so a dead run leaves at most its cgroup and this file.
package struct BPFJobLease: Sendable, Equatable {
    /// The job's id.
    package var job: String
    /// The netacct process that owns the lease.
    package var owner: ProcessIdentity
    /// The cgroup the programs are attached to.
    package var cgroup: BPFJobCgroup
    /// The cgroup's id (inode), 0 until it is made.
    package var cgroupID: UInt64
    /// The kernel id of the job's own counters map, whose entries are summed (`--show`); 0 when the node service's
    /// programs count the job.
    package var countersMapID: UInt32
    /// The kernel id of the node service's counters map when its programs count the job (`BPFNodeCounting`): the
    /// job's figures are the entry of `cgroupID` there less `nodeBase`. 0 otherwise. Recorded as
    /// `NodeCountersMapId` (with `CountersMapId = 0`, so that a netacct that knows only its own maps fails to read
    /// the lease's counts rather than summing every cgroup of the node).
    package var nodeCountersMapID: UInt32 = 0
    /// What the node's entry held when the job started (`NodeBase<class>`, with `nodeCountersMapID`).
    package var nodeBase = TrafficCounters()

    /// The lease as a ClassAd, the state directory's format.
    package var classAd: ClassAd {
        var ad = ClassAd()
        ad.set("JobboxJobId", job)
        ad.set("OwnerPid", Int64(owner.pid))
        ad.set("OwnerStartTime", Int64(clamping: owner.startTime))
        ad.set("Backend", "bpf")
        ad.set("Cgroup", cgroup.path)
        ad.set("CgroupMade", cgroup.made)
        ad.set("CgroupId", Int64(clamping: cgroupID))
        ad.set("CountersMapId", Int64(countersMapID))
        if nodeCountersMapID != 0 {
            ad.set("NodeCountersMapId", Int64(nodeCountersMapID))
            ad.set("NodeBaseOutgoingInternal", nodeBase.outgoingInternal)
            ad.set("NodeBaseOutgoingExternal", nodeBase.outgoingExternal)
            ad.set("NodeBaseIncomingInternal", nodeBase.incomingInternal)
            ad.set("NodeBaseIncomingExternal", nodeBase.incomingExternal)
        }
        return ad
    }

    /// A lease from its parts.
    package init(job: String, owner: ProcessIdentity, cgroup: BPFJobCgroup, cgroupID: UInt64, countersMapID: UInt32) {
        self.job = job
        self.owner = owner
        self.cgroup = cgroup
        self.cgroupID = cgroupID
        self.countersMapID = countersMapID
    }

    /// A lease from its ad; nil when anything is missing or malformed.
    package init?(classAd ad: ClassAd) {
        guard let job = ad.string("JobboxJobId"), let pid = ad.integer("OwnerPid"), let start = ad.integer("OwnerStartTime"),
            ad.string("Backend") == "bpf", let path = ad.string("Cgroup"), let made = ad.boolean("CgroupMade"), let id = ad.integer("CgroupId"),
            let map = ad.integer("CountersMapId"), let mapID = UInt32(exactly: map)
        else { return nil }
        self.init(
            job: job, owner: ProcessIdentity(pid: Int32(truncatingIfNeeded: pid), startTime: UInt64(clamping: start)),
            cgroup: BPFJobCgroup(path: path, made: made), cgroupID: UInt64(clamping: id), countersMapID: mapID)
        // A lease of an older netacct has no node attributes: its counts are its own map's.
        if let node = ad.integer("NodeCountersMapId") {
            guard let nodeID = UInt32(exactly: node), nodeID != 0, let outgoingInternal = ad.integer("NodeBaseOutgoingInternal"),
                let outgoingExternal = ad.integer("NodeBaseOutgoingExternal"), let incomingInternal = ad.integer("NodeBaseIncomingInternal"),
                let incomingExternal = ad.integer("NodeBaseIncomingExternal")
            else { return nil }
            nodeCountersMapID = nodeID
            nodeBase.outgoingInternal = UInt64(clamping: outgoingInternal)
            nodeBase.outgoingExternal = UInt64(clamping: outgoingExternal)
            nodeBase.incomingInternal = UInt64(clamping: incomingInternal)
            nodeBase.incomingExternal = UInt64(clamping: incomingExternal)
        }
    }
}

/// The bpf leases of a state directory, under the lock of `JobNetworkLeases` (one lock for every back end).
///
/// Trusted inputs: as for `JobNetworkLeases`, only files in a directory root's alone, and a lease is believed
/// only when it names what netacct itself would (`validate`): the cgroup's last component derived from the job
/// id, an absolute path without `..` below a cgroup2 mount.
package struct BPFJobLeases: Sendable {
    /// `STATE_DIR/netacct`, whose lock is shared.
    package let network: JobNetworkLeases
    /// The unified hierarchy this process sees (nil when there is none or it cannot be found), found once: a run
    /// needs it for its own cgroup too.
    let unified: CgroupHierarchy?
    /// The name of the leases' directory in `STATE_DIR/netacct`.
    static let subdirectory = "bpf"
    /// `STATE_DIR/netacct/bpf`.
    package var directory: String { network.directory + "/" + Self.subdirectory }

    /// The bpf leases beside `network`'s, judged against `unified`.
    package init(_ network: JobNetworkLeases, unified: CgroupHierarchy?) {
        self.network = network
        self.unified = unified
    }

    /// The bpf leases beside `network`'s, judged against the unified hierarchy this process sees.
    package init(_ network: JobNetworkLeases) {
        self.init(network, unified: (try? CgroupLayout.currentUnified()) ?? nil)
    }

    func fileName(_ lease: BPFJobLease) -> String { GuardedPath.split(lease.cgroup.path).1 + ".lease" }

    /// Whether this process sees a cgroup2 mount, below which every bpf job's cgroup lies.
    package var isVisible: Bool { unified != nil }

    /// Why `lease`, read from `fileName`, is not one netacct wrote; nil when it is.
    package func validate(_ lease: BPFJobLease, fileName: String) -> String? {
        guard let job = try? JobID(lease.job) else { return "its JobboxJobId is not a job id" }
        let path = lease.cgroup.path
        guard path.hasPrefix("/"), !path.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
            return "its Cgroup is not an absolute path without '..'"
        }
        let name = GuardedPath.split(path).1
        let expected = lease.cgroup.made ? BPFJobCgroup.madeName(for: job) : job.cgroupName
        if name != expected { return "its Cgroup does not end in \(expected), the name of job \(lease.job)" }
        if fileName != name + ".lease" { return "its file is not named \(name).lease" }
        guard let unified, path.hasPrefix(unified.mountPoint + "/") else {
            return "its Cgroup is not below the cgroup2 mount"
        }
        if lease.owner.pid <= 0 { return "its OwnerPid is not a process id" }
        return nil
    }

    /// Every believable lease; others are reported and skipped. A missing directory has none.
    package func all() throws(JobboxError) -> [BPFJobLease] {
        // Without a cgroup2 mount in sight (`ip netns exec` mounts a /sys without it) no lease can be checked or
        // acted on: they are left for a run that sees the host's mounts (see `isVisible`).
        guard isVisible else { return [] }
        return try LeaseFiles.all(in: directory, diagnostics: network.diagnostics, parse: lease(fileName:ad:)).sorted { $0.job < $1.job }
    }

    /// The lease in the file `name` whose ad is `ad`, if netacct could have written it.
    func lease(fileName name: String, ad: ClassAd) throws(JobboxError) -> BPFJobLease {
        guard let lease = BPFJobLease(classAd: ad) else { throw JobboxError.invalid("cannot read lease", name, "an attribute is missing or malformed") }
        if let problem = validate(lease, fileName: name) { throw JobboxError.invalid("cannot read lease", name, problem) }
        return lease
    }

    /// The lease in the file `name` of `parent` (the leases' directory), nil when there is none; one netacct could
    /// not have written is reported and ignored, as `all` does.
    func read(_ name: String, in parent: GuardedDirectory) -> BPFJobLease? {
        do throws(JobboxError) {
            return try lease(fileName: name, ad: try LeaseFiles.readAd(name, in: parent, path: directory + "/" + name))
        } catch {
            if error.errno == .noSuchFileOrDirectory { return nil }
            network.diagnostics.warning("ignored lease \(directory)/\(name): \(error.reason)")
            return nil
        }
    }

    /// Whether `lease` is stale: its owner is gone, and then its file still names that owner (`LeaseFiles.stillNames`).
    package func isStale(_ lease: BPFJobLease) -> Bool {
        !lease.owner.isAlive && LeaseFiles.stillNames(lease.owner, file: fileName(lease), in: directory)
    }

    /// Takes the lease of `cgroup` for `job` in `opened` (this state directory's, kept open by the run): a stale
    /// one in its file (named after the cgroup) is handed to `reclaim` first (which removes its leftovers and says
    /// whether it could); a live one is an error. One file is read, whatever the number of running jobs.
    package func acquire(
        job: JobID, cgroup: BPFJobCgroup, countersMapID: UInt32, nodeCountersMapID: UInt32 = 0, in opened: BPFLeaseDirectory,
        reclaim: (BPFJobLease) -> Bool
    ) throws(JobboxError) -> BPFJobLease {
        try network.withLock(in: opened.state) { () throws(JobboxError) -> BPFJobLease in
            let name = GuardedPath.split(cgroup.path).1 + ".lease"
            if isVisible, let lease = read(name, in: opened.leases) {
                if isStale(lease) && reclaim(lease) {
                    release(lease, in: opened.leases)
                    return try take(job: job, cgroup: cgroup, countersMapID: countersMapID, nodeCountersMapID: nodeCountersMapID, in: opened.leases)
                }
                let state =
                    lease.owner.isAlive
                    ? "running under netacct pid \(lease.owner.pid)" : "left by netacct pid \(lease.owner.pid), whose leftovers could not be removed"
                throw JobboxError.invalid(
                    "cannot start network accounting for job", job.rawValue, "its cgroup \(lease.cgroup.path) is in use by job \(lease.job), \(state)")
            }
            return try take(job: job, cgroup: cgroup, countersMapID: countersMapID, nodeCountersMapID: nodeCountersMapID, in: opened.leases)
        }
    }

    /// Records this process's lease of `cgroup` in `parent` (under the lock).
    private func take(job: JobID, cgroup: BPFJobCgroup, countersMapID: UInt32, nodeCountersMapID: UInt32, in parent: GuardedDirectory) throws(JobboxError)
        -> BPFJobLease
    {
        var lease = BPFJobLease(job: job.rawValue, owner: .current, cgroup: cgroup, cgroupID: 0, countersMapID: countersMapID)
        lease.nodeCountersMapID = nodeCountersMapID
        try write(lease, in: parent)
        return lease
    }

    /// Writes `lease` (atomically) in `parent`, the leases' directory.
    package func write(_ lease: BPFJobLease, in parent: GuardedDirectory) throws(JobboxError) {
        let text: String
        do {
            text = try ClassAdWriter.render(lease.classAd)
        } catch {
            throw JobboxError.invalid("cannot record lease of job", lease.job, error.description)
        }
        let name = fileName(lease)
        try GuardedFile.replace(in: parent, name: name, path: directory + "/" + name, with: text, for: "cannot record lease")
    }

    /// Removes `lease`'s file.
    package func release(_ lease: BPFJobLease) {
        guard let parent = try? LeaseFiles.openDirectory(directory) else { return }
        defer { parent.close() }
        release(lease, in: parent)
    }

    /// Removes `lease`'s file from `parent`, the leases' directory.
    package func release(_ lease: BPFJobLease, in parent: GuardedDirectory) {
        _ = unlinkat(parent.fd, fileName(lease), 0)
    }
}
