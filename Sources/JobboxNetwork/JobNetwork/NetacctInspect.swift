import JobboxCore

/// `netacct --cleanup --stale`: removes what runs whose netacct died left behind, and only that.
package struct NetacctCleanup {
    let leases: JobNetworkLeases
    let diagnostics: Diagnostics
    let environment: Environment

    /// Cleanup of the leases in `leases`' state directory.
    package init(leases: JobNetworkLeases, diagnostics: Diagnostics, environment: Environment = .current) {
        self.leases = leases
        self.diagnostics = diagnostics
        self.environment = environment
    }

    /// Removes the veth, the firewall objects and the lease of every stale lease of this network namespace;
    /// returns how many it removed. Leases of other namespaces are left for a cleanup run there.
    package func removeStale() throws(JobboxError) -> Int {
        let namespace = try NetworkNamespace.currentID()
        let removedBPF = try removeStaleBPF()
        return try removedBPF
            + leases.withLock { () throws(JobboxError) -> Int in
                var removed = 0
                for lease in try leases.all() where leases.isStale(lease) {
                    guard lease.namespace == namespace else {
                        diagnostics.note("skipped job \(lease.job): its network was made in another network namespace (net:[\(lease.namespace)])")
                        continue
                    }
                    if dismantle(lease) {
                        leases.release(lease)
                        removed += 1
                    }
                }
                try leases.removeOrphanClaims()
                return removed
            }
    }

    /// Removes a stale lease's veth and firewall objects (not the lease file); whether everything went.
    package func dismantle(_ lease: JobNetworkLease) -> Bool {
        do {
            try JobLinks.remove(lease.names)
            try makeAccountingBackend(lease.backend, environment: environment).remove(chain: lease.names.chain)
            diagnostics.note(
                "removed the network of job \(lease.job) left by netacct pid \(lease.owner.pid): \(lease.names.interface), \(lease.names.chain) (\(lease.backend.rawValue)), \(lease.jobAddress)"
            )
            return true
        } catch {
            diagnostics.error(error.description)
            return false
        }
    }
}

/// `netacct --show`: live counters of running jobs.
package struct NetacctShow {
    let leases: JobNetworkLeases
    let environment: Environment

    /// A view of the jobs in `leases`' state directory.
    package init(leases: JobNetworkLeases, environment: Environment = .current) {
        self.leases = leases
        self.environment = environment
    }

    /// One ad per running job of this network namespace (only `job` when given), with its counters read from
    /// one snapshot per back end, plus `JobboxJobId`, `JobboxNetworkBackend`, `JobboxNetworkInterface` and
    /// `JobboxNetworkAddress`.
    package func ads(job: JobID?) throws(JobboxError) -> [ClassAd] {
        // A bpf job is in no network namespace: found by its lease alone.
        let bpf = try bpfAds(job: job)
        if job != nil && !bpf.isEmpty { return bpf }
        let namespace = try NetworkNamespace.currentID()
        var running = try leases.all().filter { $0.namespace == namespace }
        if let job {
            let names = JobNetworkNames(job: job)
            guard let lease = running.first(where: { $0.names == names && $0.job == job.rawValue }) else {
                throw JobboxError.invalid("no network accounting for job", job.rawValue, "netacct does not run it in this network namespace")
            }
            guard lease.owner.isAlive else {
                throw JobboxError.invalid(
                    "no network accounting for job", job.rawValue, "netacct pid \(lease.owner.pid) is gone; run netacct --cleanup --stale")
            }
            running = [lease]
        } else {
            running = running.filter { $0.owner.isAlive }
        }
        var counters: [String: TrafficCounters] = [:]
        for kind in BackendKind.allCases {
            let chains = running.filter { $0.backend == kind }.map(\.names.chain)
            if chains.isEmpty { continue }
            for (chain, value) in try makeAccountingBackend(kind, environment: environment).counters(chains: chains) { counters[chain] = value }
        }
        return bpf
            + running.compactMap { lease in
                guard let value = counters[lease.names.chain] else { return nil }
                var ad = ClassAd()
                ad.set("JobboxJobId", lease.job)
                for (name, attribute) in value.classAd.attributes { ad.set(name, attribute) }
                ad.set("JobboxNetworkBackend", lease.backend.rawValue)
                ad.set("JobboxNetworkInterface", lease.names.interface)
                ad.set("JobboxNetworkAddress", lease.jobAddress.description)
                return ad
            }
    }
}
