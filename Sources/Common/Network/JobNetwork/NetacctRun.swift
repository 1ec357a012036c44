import SystemPackage

/// What `netacct ... -- COMMAND` was asked to do.
public struct NetacctRunOptions: Sendable {
    /// The job.
    public var job: JobID
    /// The command and its arguments.
    public var command: [String]
    /// Remote networks counted as internal.
    public var internalNetworks: [IPv4Network]
    /// The pool of address pairs.
    public var jobSubnet: IPv4Network
    /// `STATE_DIR`.
    public var stateDirectory: String
    /// The back end asked for.
    public var backend: NetworkBackendChoice
    /// `--chirp`/`--chirp-delayed`: push the final ad into the running job's ad, or nil.
    public var chirp: ChirpUpdate? = nil
    /// Seconds between ad writes (with `adFile`).
    public var interval: Int
    /// Where the ad goes while the job runs and after; nil: the final ad goes to stderr.
    public var adFile: String?
    /// Reject external traffic instead of only counting it.
    public var denyExternal: Bool
    /// Say what is being made.
    public var verbose: Bool

    /// Options with every field given.
    public init(job: JobID, command: [String], internalNetworks: [IPv4Network], jobSubnet: IPv4Network, stateDirectory: String,
                backend: NetworkBackendChoice, interval: Int, adFile: String?, denyExternal: Bool, verbose: Bool) {
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
public struct NetacctRun {
    let options: NetacctRunOptions
    let diagnostics: Diagnostics
    let environment: Environment

    /// A run of `options`, reporting through `diagnostics`.
    public init(_ options: NetacctRunOptions, diagnostics: Diagnostics, environment: Environment = .current) {
        self.options = options
        self.diagnostics = diagnostics
        self.environment = environment
    }

    /// Sets up, runs the job, publishes the ad, takes everything down; returns the job's status.
    public func run() throws(JobboxError) -> Int32 {
        // A signal during set-up waits (blocked) and is forwarded to the job once it runs, so netacct is never
        // killed half-way with its objects left behind.
        HeldJob.blockSignals()
        let (kind, reason) = FirewallProbe(environment: environment).resolve(options.backend)
        if options.verbose { diagnostics.note("backend \(kind.rawValue): \(reason)") }
        let backend = makeAccountingBackend(kind, environment: environment)
        let names = JobNetworkNames(job: options.job)
        let namespace = try NetworkNamespace.currentID()
        let leases = JobNetworkLeases(stateDirectory: options.stateDirectory, subnet: options.jobSubnet, diagnostics: diagnostics)
        let lease = try leases.acquire(job: options.job, names: names, backend: kind, namespace: namespace, owner: .current) { stale in
            NetacctCleanup(leases: leases, diagnostics: diagnostics, environment: environment).dismantle(stale)
        }
        let plan = AccountingPlan(chain: names.chain, interface: names.interface, jobAddress: lease.jobAddress,
                                  internalNetworks: options.internalNetworks, jobSubnet: options.jobSubnet, denyExternal: options.denyExternal)
        if options.verbose {
            diagnostics.note("job \(options.job): veth \(names.interface) \(lease.hostAddress)/\(lease.prefixLength) <-> \(JobNetworkNames.jobInterface) \(lease.jobAddress)/\(lease.prefixLength) in the job, chain \(names.chain)")
        }

        let job: HeldJob
        do {
            job = try HeldJob(arguments: options.command)
        } catch {
            leases.release(lease)
            throw error
        }
        do {
            try job.waitUntilUnshared()
            try JobLinks.make(lease, jobPID: job.pid)
            try NetworkNamespace.setSysctl("/proc/sys/net/ipv4/ip_forward", "1")
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

        // The veth goes first, so nothing more is counted between the final read and the removal.
        do {
            try JobLinks.remove(names)
        } catch {
            diagnostics.error(error.description)
        }
        publish(backend: backend, chain: names.chain, final: true)
        takeDown(lease, backend: backend)
        return status
    }

    /// Reads the job's counters and writes the ad to `--ad-file`, or for the final ad without one, to stderr.
    /// A failure is reported and the job goes on: accounting never costs the job its run.
    func publish(backend: any AccountingBackend, chain: String, final: Bool) {
        do throws(JobboxError) {
            guard let counters = try backend.counters(chains: [chain])[chain] else {
                throw JobboxError.invalid("cannot read counters of", chain, "the chain is gone")
            }
            let text: String
            do {
                text = try ClassAdWriter.render(counters.classAd)
            } catch {
                throw JobboxError.invalid("cannot render the ad of", chain, error.description)
            }
            if let file = options.adFile {
                // The ad file usually lies in the job's scratch dir: written by GuardedPath's rule.
                try GuardedFile.replace(file, with: text, for: "cannot write ad file")
            } else if final {
                writeAll(.standardError, text)
            }
            if final, let update = options.chirp {
                try ChirpClient.publish(counters.classAd, update: update, environment: environment)
            }
        } catch {
            if final { diagnostics.error(error.description) } else { diagnostics.warning(error.description) }
        }
    }

    /// Removes everything of the job that exists and then its lease; failures are reported, and the lease stays
    /// so `--cleanup --stale` can finish the work.
    func takeDown(_ lease: JobNetworkLease, backend: any AccountingBackend) {
        var clean = true
        do {
            try JobLinks.remove(lease.names)
        } catch {
            diagnostics.error(error.description)
            clean = false
        }
        do {
            try backend.remove(chain: lease.names.chain)
        } catch {
            diagnostics.error(error.description)
            clean = false
        }
        if clean { JobNetworkLeases(stateDirectory: options.stateDirectory, subnet: options.jobSubnet, diagnostics: diagnostics).release(lease) }
    }
}
