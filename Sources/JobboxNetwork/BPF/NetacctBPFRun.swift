import JobboxCgroups
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

extension NetacctRun {
    /// `--backend bpf`: the job keeps its network; its own unified cgroup (`BPFJobCgroup`) is counted by cgroup_skb
    /// programs, which count and classify every packet of its sockets: the node service's when they count that
    /// cgroup already with this job's networks (`BPFJobCounting.choose`), else netacct's own, loaded for the job.
    /// Nothing is made in any network namespace: no link, no route, no firewall rule. Returns the job's status.
    ///
    /// Order: the programs (a kernel without cgroup BPF fails here, with nothing made), lease, cgroup, attach (or
    /// the node's entry's start), then the job is forked and held before exec until it is in the cgroup, so every
    /// socket it opens belongs there. Tear-down: final read, detach, kill what the job left in its cgroup, remove
    /// the cgroup (and drop the node's entry of it), release the lease.
    func runBPF() throws(JobboxError) -> Int32 {
        SetUpSignals.hold()
        let unified = try CgroupLayout.currentUnified()
        let place = try BPFJobCgroup.place(for: options.job, unified: unified)
        if options.verbose { diagnostics.note("backend bpf: cgroup \(place.path)\(place.made ? "" : " (cg-exec's)")") }
        guard let unified else { throw JobboxError.invalid("cannot count job", options.job.rawValue, "no cgroup2 hierarchy is mounted") }
        let counting = try BPFJobCounting.choose(options, place: place, unified: unified, diagnostics: diagnostics)
        defer { counting.stop() }
        let network = JobNetworkLeases(stateDirectory: options.stateDirectory, subnet: options.jobSubnet, diagnostics: diagnostics)
        let leases = BPFJobLeases(network, unified: unified)
        let cleanup = NetacctCleanup(leases: network, diagnostics: diagnostics, environment: environment)
        // Opened once, each by its rule: the cgroup's parent for its making and removal, the state directories for
        // the lock, the lease's two writes and its removal.
        let parent = try place.openParent()
        defer { parent.close() }
        let directory = try BPFLeaseDirectory.open(network)
        defer { directory.close() }
        let mapIDs = counting.mapIDs
        var lease = try leases.acquire(job: options.job, cgroup: place, countersMapID: mapIDs.own, nodeCountersMapID: mapIDs.node, in: directory) {
            cleanup.dismantle($0)
        }
        let cgroupFD: Int32
        do {
            (cgroupFD, lease.cgroupID) = try place.create(in: parent)
        } catch {
            leases.release(lease, in: directory.leases)
            counting.finish(removed: false)
            throw error
        }
        defer { close(cgroupFD) }

        let job: HeldJob
        let movedIn: Bool
        do {
            try counting.start(cgroupFD: cgroupFD, cgroupID: lease.cgroupID, path: place.path)
            if case .node(let node) = counting { lease.nodeBase = node.base }
            try leases.write(lease, in: directory.leases)
            (job, movedIn) = try Self.spawnInto(place, cgroupFD: cgroupFD, command: options.command)
        } catch {
            takeDownBPF(lease, counting: counting, leases: leases, in: directory, parent: parent)
            throw error
        }
        do throws(JobboxError) {
            try job.waitUntilUnshared()
            if place.made && !movedIn { try place.add(pid: job.pid, cgroupFD: cgroupFD) }
            try job.release()
        } catch {
            job.abandon()
            takeDownBPF(lease, counting: counting, leases: leases, in: directory, parent: parent)
            throw error
        }
        let read = { () throws(JobboxError) -> TrafficCounters in try counting.counters() }
        let status = job.wait(interval: options.adFile == nil ? nil : options.interval) {
            publish(final: false, what: place.path, read: read)
        }
        let final = publish(final: true, what: place.path, read: read)
        // Detached first: a chirp from here (netacct's own traffic, in the host's network) is not the job's.
        counting.stop()
        if let update = options.chirp, let final {
            do {
                try ChirpClient.publish(final, update: update, environment: environment)
            } catch {
                // After the job: stderr only (a wrapper error file line would requeue a finished job).
                diagnostics.warning(error.description)
            }
        }
        takeDownBPF(lease, counting: counting, leases: leases, in: directory, parent: parent)
        return status
    }

    /// The held job, started in the cgroup netacct made (clone3 CLONE_INTO_CGROUP: moving it there afterwards costs
    /// an RCU grace period, most of a job's set-up), and whether it is there; on kernels without it (before 5.7)
    /// the caller moves it. In cg-exec's cgroup it is there already.
    static func spawnInto(_ place: BPFJobCgroup, cgroupFD: Int32, command: [String]) throws(JobboxError) -> (HeldJob, Bool) {
        guard place.made else { return (try HeldJob(arguments: command, newNetwork: false), true) }
        do {
            return (try HeldJob(arguments: command, newNetwork: false, cgroupFD: cgroupFD), true)
        } catch {
            guard let errno = error.errno, [Errno.noFunction, Errno.argListTooLong, Errno.invalidArgument].contains(errno) else { throw error }
            return (try HeldJob(arguments: command, newNetwork: false), false)
        }
    }

    /// Detaches, removes the cgroup netacct made (in `parent`), and releases the lease (in `directory`) when all
    /// went; failures are reported and the lease stays for `--cleanup --stale`.
    func takeDownBPF(_ lease: BPFJobLease, counting: BPFJobCounting, leases: BPFJobLeases, in directory: BPFLeaseDirectory, parent: GuardedDirectory) {
        counting.stop()
        var removed = false
        do {
            try lease.cgroup.remove(id: lease.cgroupID, in: parent)
            removed = lease.cgroup.made
            leases.release(lease, in: directory.leases)
        } catch {
            diagnostics.warning(error.description)
        }
        counting.finish(removed: removed)
    }
}

extension NetacctCleanup {
    /// Removes what dead bpf runs left: their cgroups (with any process the job left in them) and leases. Their
    /// programs went when their netacct died (bpf_links). Returns how many it removed.
    func removeStaleBPF() throws(JobboxError) -> Int {
        let bpf = BPFJobLeases(leases)
        if !bpf.isVisible {
            // Said only where bpf runs have been: a node without cgroup2 never had any.
            if access(bpf.directory, F_OK) == 0 {
                diagnostics.note(
                    "skipped the bpf back end's leases: no cgroup2 mount is visible here (run netacct --cleanup --stale in the host's mount namespace)")
            }
            return 0
        }
        return try leases.withLock { () throws(JobboxError) -> Int in
            var removed = 0
            for lease in try bpf.all() where bpf.isStale(lease) && dismantle(lease) {
                bpf.release(lease)
                removed += 1
            }
            return removed
        }
    }

    /// Removes a stale bpf lease's cgroup (not the lease file); whether it is gone.
    func dismantle(_ lease: BPFJobLease) -> Bool {
        do {
            try lease.cgroup.remove(id: lease.cgroupID)
            diagnostics.note(
                "removed the accounting of job \(lease.job) left by netacct pid \(lease.owner.pid): \(lease.cgroup.made ? "cgroup " + lease.cgroup.path : "nothing (cg-exec's cgroup stays)") (bpf)"
            )
            return true
        } catch {
            diagnostics.error(error.description)
            return false
        }
    }
}

extension NetacctShow {
    /// One ad per running bpf job (only `job` when given), read from its live counters map, with
    /// `JobboxJobId`, `JobboxNetworkBackend` and `JobboxNetworkCgroup`.
    func bpfAds(job: JobID?) throws(JobboxError) -> [ClassAd] {
        var ads: [ClassAd] = []
        for lease in try BPFJobLeases(leases).all() where lease.owner.isAlive && (job == nil || lease.job == job?.rawValue) {
            var ad = ClassAd()
            ad.set("JobboxJobId", lease.job)
            for (name, value) in try Self.counters(of: lease).classAd.attributes { ad.set(name, value) }
            ad.set("JobboxNetworkBackend", "bpf")
            ad.set("JobboxNetworkCgroup", lease.cgroup.path)
            ads.append(ad)
        }
        return ads
    }

    /// The counters of the running job of `lease`: the sum of its own map, or its cgroup's entry in the node
    /// service's less what it held at the job's start.
    static func counters(of lease: BPFJobLease) throws(JobboxError) -> TrafficCounters {
        guard lease.nodeCountersMapID != 0 else { return try BPFAccounting.counters(mapID: lease.countersMapID) }
        return try NodeCountersMap.counters(mapID: lease.nodeCountersMapID, of: lease.cgroupID).subtracting(lease.nodeBase)
    }
}
