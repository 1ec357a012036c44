import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// What `netacct ... -- COMMAND` was asked to do.
package struct NetacctRunOptions: Sendable {
    /// The job.
    package var job: JobID
    /// The command and its arguments.
    package var command: [String]
    /// Remote networks counted as internal.
    package var internalNetworks: [IPv4Network]
    /// IPv6 remote networks counted as internal (the bpf back end only: the veth back ends count IPv4 alone).
    package var internalNetworksIPv6: [IPv6Network] = []
    /// The pool of address pairs.
    package var jobSubnet: IPv4Network
    /// `STATE_DIR`.
    package var stateDirectory: String
    /// The back end asked for.
    package var backend: NetworkBackendChoice
    /// `--chirp`/`--chirp-delayed`: push the final ad into the running job's ad, or nil.
    package var chirp: ChirpUpdate? = nil
    /// Seconds between ad writes (with `adFile`).
    package var interval: Int
    /// Where the ad goes while the job runs and after; nil: the final ad goes to stderr.
    package var adFile: String?
    /// Reject external traffic instead of only counting it.
    package var denyExternal: Bool
    /// Say what is being made.
    package var verbose: Bool
    /// `NETACCT_PIN_DIR`: where the node service's pins are, whose programs may count a bpf job
    /// (`BPFJobCounting.choose`); nil: the job's own programs always.
    package var nodePinDirectory: String? = nil

    /// Options with every field given.
    package init(
        job: JobID, command: [String], internalNetworks: [IPv4Network], jobSubnet: IPv4Network, stateDirectory: String,
        backend: NetworkBackendChoice, interval: Int, adFile: String?, denyExternal: Bool, verbose: Bool
    ) {
        self.job = job
        self.command = command
        self.internalNetworks = internalNetworks
        self.jobSubnet = jobSubnet
        self.stateDirectory = stateDirectory
        self.backend = backend
        self.interval = interval
        self.adFile = adFile
        self.denyExternal = denyExternal
        self.verbose = verbose
    }
}

/// Runs a job in its own network namespace with accounting, and takes everything down after it.
package struct NetacctRun {
    let options: NetacctRunOptions
    let diagnostics: Diagnostics
    let environment: Environment

    /// A run of `options`, reporting through `diagnostics`.
    package init(_ options: NetacctRunOptions, diagnostics: Diagnostics, environment: Environment = .current) {
        self.options = options
        self.diagnostics = diagnostics
        self.environment = environment
    }

    /// Sets up, runs the job, publishes the ad, takes everything down; returns the job's status.
    ///
    /// Trusted inputs (netacct runs as root): the command line and jobbox.conf (root's), and `STATE_DIR` only when
    /// it and every directory above it are root's alone (leases are still validated before anything named in
    /// one is deleted: `JobNetworkLeases`). Not trusted, because the job can write them: `--ad-file` (written by
    /// `GuardedFile`'s rule) and `$_CONDOR_CHIRP_CONFIG` (never read by root: the chirp is done by a copy of
    /// netacct as the job's user, to loopback from here or to anything else from inside the job's network
    /// namespace, with a timeout: `ChirpAsJob`).
    package func run() throws(JobboxError) -> Int32 {
        // A signal during set-up waits (blocked) and is forwarded to the job once it runs, so netacct is never
        // killed half-way with its objects left behind.
        if options.backend == .bpf { return try runBPF() }
        SetUpSignals.hold()
        let (kind, reason) = FirewallProbe(environment: environment).resolve(options.backend)
        if options.verbose { diagnostics.note("backend \(kind.rawValue): \(reason)") }
        if options.verbose && !options.internalNetworksIPv6.isEmpty {
            diagnostics.note("IPv6 internal networks ignored: the \(kind.rawValue) back end gives the job IPv4 only")
        }
        let backend = makeAccountingBackend(kind, environment: environment)
        // A lock that cannot be taken would fail the install and then the removal: find out before anything is made.
        if kind == .iptables { try XtablesLock(environment: environment).withLock {} }
        let names = JobNetworkNames(job: options.job)
        let namespace = try NetworkNamespace.currentID()
        let leases = JobNetworkLeases(stateDirectory: options.stateDirectory, subnet: options.jobSubnet, diagnostics: diagnostics)
        let lease = try leases.acquire(job: options.job, names: names, backend: kind, namespace: namespace, owner: .current) { stale in
            NetacctCleanup(leases: leases, diagnostics: diagnostics, environment: environment).dismantle(stale)
        }
        let plan = AccountingPlan(
            chain: names.chain, interface: names.interface, jobAddress: lease.jobAddress,
            internalNetworks: options.internalNetworks, jobSubnet: options.jobSubnet, denyExternal: options.denyExternal)
        if options.verbose {
            diagnostics.note(
                "job \(options.job): veth \(names.interface) \(lease.hostAddress)/\(lease.prefixLength) <-> \(JobNetworkNames.jobInterface) \(lease.jobAddress)/\(lease.prefixLength) in the job, chain \(names.chain)"
            )
        }

        let job: HeldJob
        do {
            job = try HeldJob(arguments: options.command)
        } catch {
            leases.release(lease)
            throw error
        }
        // With --chirp, the job's network namespace is held open (it outlives the job this way) so the chirp can
        // be sent from there after the job has ended.
        var jobNamespace: Int32 = -1
        defer { if jobNamespace >= 0 { close(jobNamespace) } }
        do throws(JobboxError) {
            try job.waitUntilUnshared()
            if options.chirp != nil {
                jobNamespace = open("/proc/\(job.pid)/ns/net", O_RDONLY | O_CLOEXEC)
                if jobNamespace < 0 { throw JobboxError.lastErrno("cannot open the job's network namespace", "/proc/\(job.pid)/ns/net") }
            }
            try JobLinks.make(lease, jobPID: job.pid)
            // Forwarding is a knob of the whole network namespace (the host's, usually): say so when netacct
            // turns it on. It is left on: other jobs' veths may need it, and netacct cannot know who else does.
            if try NetworkNamespace.setSysctl("/proc/sys/net/ipv4/ip_forward", "1") {
                diagnostics.warning("turned on net.ipv4.ip_forward in this network namespace (the job's traffic is routed through it); it stays on")
            } else if options.verbose {
                diagnostics.note("net.ipv4.ip_forward is on in this network namespace, as netacct needs")
            }
            try backend.install(plan)
            try job.release()
        } catch {
            job.abandon()
            takeDown(lease, backend: backend)
            throw error
        }

        let status = job.wait(interval: options.adFile == nil ? nil : options.interval) {
            publish(backend: backend, chain: names.chain, final: false)
        }

        // Without chirp the veth goes first, so nothing more is counted between the final read and the removal.
        // With chirp it stays until the chirp is done: a chirp to anything but loopback leaves from the job's
        // namespace, through the veth and the job's rules (--deny-external), after the final read, so it is not
        // in the figures it sends;
        // a process the job left behind could use the veth for that long (at most ChirpClient.timeout plus a
        // grace) uncounted, the price of not chirping from the host's namespace.
        // From here on the job has run: a failure is a warning on stderr, never a line in the wrapper error file,
        // which would make HTCondor requeue (and run again) a job that has finished.
        if options.chirp == nil {
            do {
                try JobLinks.remove(names)
            } catch {
                diagnostics.warning(error.description)
            }
        }
        let final = publish(backend: backend, chain: names.chain, final: true)
        if let update = options.chirp, let final {
            do {
                try ChirpClient.publish(final, update: update, environment: environment, networkNamespace: jobNamespace)
            } catch {
                diagnostics.warning(error.description)
            }
        }
        takeDown(lease, backend: backend)
        return status
    }

    /// Reads the job's counters and writes the ad to `--ad-file`, or for the final ad without one, to stderr;
    /// returns the ad. A failure is reported and the job goes on: accounting never costs the job its run.
    @discardableResult
    func publish(backend: any AccountingBackend, chain: String, final: Bool) -> ClassAd? {
        publish(final: final, what: chain) { () throws(JobboxError) -> TrafficCounters in
            guard let counters = try backend.counters(chains: [chain])[chain] else {
                throw JobboxError.invalid("cannot read counters of", chain, "the chain is gone")
            }
            return counters
        }
    }

    /// Reads the counters with `read` and writes the ad, as `publish(backend:chain:final:)` says; `what` names
    /// the accounting in errors.
    @discardableResult
    func publish(final: Bool, what: String, read: () throws(JobboxError) -> TrafficCounters) -> ClassAd? {
        do throws(JobboxError) {
            let counters = try read()
            let text: String
            do {
                text = try ClassAdWriter.render(counters.classAd)
            } catch {
                throw JobboxError.invalid("cannot render the ad of", what, error.description)
            }
            if let file = options.adFile {
                // The ad file usually lies in the job's scratch dir: written by GuardedPath's rule.
                try GuardedFile.replace(file, with: text, for: "cannot write ad file")
            } else if final {
                writeAll(.standardError, text)
            }
            return counters.classAd
        } catch {
            // After the job (or while it runs): stderr only, see `run`.
            diagnostics.warning(error.description)
            return nil
        }
    }

    /// Removes everything of the job that exists and then its lease; failures are warnings (after the job, or
    /// after the set-up failure that is the error), and the lease stays so `--cleanup --stale` can finish the work.
    func takeDown(_ lease: JobNetworkLease, backend: any AccountingBackend) {
        var clean = true
        do {
            try JobLinks.remove(lease.names)
        } catch {
            diagnostics.warning(error.description)
            clean = false
        }
        do {
            try backend.remove(chain: lease.names.chain)
        } catch {
            diagnostics.warning(error.description)
            clean = false
        }
        if clean { JobNetworkLeases(stateDirectory: options.stateDirectory, subnet: options.jobSubnet, diagnostics: diagnostics).release(lease) }
    }
}
