import ArgumentParser
import JobboxCLI
import JobboxCore
import JobboxNetacctClient
import JobboxNetwork

@main
struct Netacct: JobboxTool {
    static let configuration = CommandConfiguration(
        commandName: "netacct",
        abstract: "Run a job and count its traffic, internal and external, in bytes (in its own network namespace, or with cgroup BPF).",
        usage: """
            netacct [--job ID] [--internal CIDRS] [--backend auto|iptables|nftables|bpf] [--interval SECONDS] [--ad-file FILE] [--deny-external] [-v] -- COMMAND [ARG...]
              netacct --show [--job ID | --all | --self | --cgroup PATH]
              netacct --node
              netacct --cleanup --stale
            """,
        discussion: """
            The job gets a veth pair to the host (jb_<id> on the host, eth0 in the job), an address pair from \
            NETWORK_JOB_SUBNET, a default route and NAT through the host, and an accounting chain JOB_<id> that \
            counts every packet crossing the veth by the remote address: NetworkOutgoingInternal, \
            NetworkOutgoingExternal, NetworkIncomingInternal, NetworkIncomingExternal (bytes, IP header \
            included), NetworkOutgoing and NetworkIncoming. Everything is removed after the job; netacct exits \
            with the job's status. IPv4 forwarding (net.ipv4.ip_forward, host-wide) is turned on, with a \
            warning when it was off, and left on. STATE_DIR must be root's and writable by no one else.

            With --backend bpf (or NETWORK_BACKEND = bpf) the job keeps its network: no namespace, veth or \
            firewall rule. It runs in a cgroup of its own on the unified (cgroup2) hierarchy, netacct_<id> below \
            netacct's own (cg-exec's job_<id> when netacct runs in its main), where two cgroup_skb programs count \
            each packet's IP length (a GSO packet as the segments it becomes) by its remote address, IPv4 and \
            IPv6 (NETWORK_INTERNAL and --internal take both); loopback (127.0.0.0/8, ::1) is not counted; \
            --deny-external drops external packets (still counted). Processes the job leaves in its cgroup are \
            killed when it ends. Limits: the kernel must have cgroup BPF (else use iptables or nftables, \
            IPv4 only); on hybrid nodes only the job's own unified cgroup is counted; traffic the node makes on \
            the job's behalf (NFS, CVMFS) is not the job's. When the node service (below) already counts the \
            job's cgroup with the job's networks and no --deny-external is asked for, no program is loaded: the \
            figures are that cgroup's entry in the service's map (-v says which is used and why).

            netacct --node is the node service (root, long-running, e.g. examples/systemd/netacct-node.service): \
            it attaches the programs once to NETWORK_ACCOUNTING_CGROUP (default: the unified root), counts every \
            cgroup below it and each cgroup's whole subtree, keeps its counters and links pinned in \
            NETACCT_PIN_DIR (a restart loses no count), and answers on NETACCT_SOCKET: any user gets the counters \
            of its own cgroup, one below it, or one above it delegated to the user (its directory is theirs: \
            HTCondor's .slice) (netacct --show --self, --show --cgroup PATH, jobstat), root any and --show --all. TERM or INT stops serving and leaves the programs counting; netacct --cleanup \
            --stale with no service running detaches them and removes the pins.
            """,
        version: JobboxVersion.string
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("The job's id (default: from $_CONDOR_JOB_AD or $SLURM_JOB_ID).", valueName: "id"))
    var job: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Remote networks counted as internal, IPv4 or IPv6 (bpf only), comma-separated (default: NETWORK_INTERNAL).", valueName: "cidrs"))
    var `internal`: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Where to count: auto, iptables (legacy), nftables, or bpf (cgroup BPF, no namespace) (default: NETWORK_BACKEND).", valueName: "backend"))
    var backend: String?

    @Option(name: .long, help: ArgumentHelp("Seconds between ad writes to --ad-file while the job runs.", valueName: "seconds"))
    var interval: Int = 60

    @Option(
        name: .customLong("ad-file"),
        help: ArgumentHelp("Write the ad to FILE every interval and after the job (default: the final ad to stderr).", valueName: "file"))
    var adFile: String?

    @OptionGroup var chirp: ChirpOptions

    @Flag(name: .customLong("deny-external"), help: "Reject the job's external traffic (still counted) instead of only counting it.")
    var denyExternal = false

    @Flag(name: .shortAndLong, help: "Say which back end, names and addresses are used, and that IPv4 forwarding is on.")
    var verbose = false

    @Flag(name: .long, help: "Print the live counters of a running job (--job, else this job) or of all jobs (--all).")
    var show = false

    @Flag(name: .long, help: "With --show: every running job of this network namespace.")
    var all = false

    @Flag(name: .customLong("self"), help: "With --show: the node service's counters of this process's own cgroup.")
    var current = false

    @Option(
        name: .long, help: ArgumentHelp("With --show: the node service's counters of the cgroup at PATH (as /proc/PID/cgroup writes it).", valueName: "path"))
    var cgroup: String?

    @Flag(name: .long, help: "Run the node service: count every cgroup below NETWORK_ACCOUNTING_CGROUP and answer on NETACCT_SOCKET.")
    var node = false

    @Flag(name: .long, help: "With --stale: remove what runs whose netacct died left behind.")
    var cleanup = false

    @Flag(name: .long, help: "With --cleanup: the jobs whose recorded netacct pid is gone.")
    var stale = false

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The job's command and its arguments.", valueName: "command"))
    var command: [String] = []

    func execute() throws -> Int32 {
        let diagnostics = Diagnostics(tool: "netacct")
        let config = try global.loadConfig(diagnostics)
        let environment = Environment.current
        let leases = JobNetworkLeases(stateDirectory: config.stateDir, subnet: config.networkJobSubnet, diagnostics: diagnostics)
        if node {
            guard !cleanup, !stale, !show, !all, !current, cgroup == nil, job == nil, command.isEmpty else {
                throw JobboxError.invalid("invalid options", nil, "use --node alone (its settings come from the configuration)")
            }
            try Self.requireRoot()
            let options = NodeServiceOptions(
                accountingCgroup: config.networkAccountingCgroup, pinDirectory: config.netacctPinDir, socketPath: config.netacctSocket,
                stateDirectory: config.stateDir, internalIPv4: config.networkInternal, internalIPv6: config.networkInternalIPv6)
            return try NodeService(options, diagnostics: diagnostics).run()
        }
        if (current || cgroup != nil) && !show { throw JobboxError.invalid("invalid options", nil, "--self and --cgroup go with --show") }
        if cleanup || stale {
            guard cleanup && stale, !show, job == nil, command.isEmpty else {
                throw JobboxError.invalid("invalid options", nil, "use --cleanup --stale alone")
            }
            try Self.requireRoot()
            let cleanup = NetacctCleanup(leases: leases, diagnostics: diagnostics, environment: environment)
            _ = try cleanup.removeStale()
            _ = try cleanup.removeStaleNode(pinDirectory: config.netacctPinDir, socketPath: config.netacctSocket)
            return 0
        }
        let nodeShow = NetacctNodeShow(socketPath: config.netacctSocket, pinDirectory: config.netacctPinDir, accountingCgroup: config.networkAccountingCgroup)
        if show && (current || cgroup != nil) {
            guard command.isEmpty, job == nil, !all, !(current && cgroup != nil) else {
                throw JobboxError.invalid("invalid options", nil, "use --show with one of --job, --all, --self, --cgroup")
            }
            var request = NetacctNodeRequest.current
            if let cgroup {
                guard let clean = NetacctNodeRequest.cleanCgroupPath(cgroup) else {
                    throw JobboxError.invalid("invalid --cgroup", "'\(cgroup)'", "give an absolute cgroup path without '.', '..' or empty components")
                }
                request = .cgroup(clean)
            }
            try printAds(try nodeShow.ads(request))
            return 0
        }
        if show {
            guard command.isEmpty else { throw JobboxError.invalid("invalid options", nil, "--show takes no command") }
            if all && job != nil { throw JobboxError.invalid("invalid options", nil, "use --show with --job or --all, not both") }
            try Self.requireRoot()
            let jobID = all ? nil : try JobID.resolve(option: job, environment: environment)
            var ads = try NetacctShow(leases: leases, environment: environment).ads(job: jobID)
            // --all adds the node service's cgroups when it counts (its pins are there).
            if all && nodeShow.isPinned { ads += try nodeShow.ads(.all) }
            try printAds(ads)
            return 0
        }
        if all { throw JobboxError.invalid("invalid options", nil, "--all goes with --show") }
        let request = JobRequest(
            job: job, internal: self.internal, backend: backend, interval: interval, adFile: adFile, denyExternal: denyExternal, verbose: verbose,
            chirp: (chirp.immediate, chirp.delayed, chirp.automatic), command: command)
        return try Self.run(request, config: config, environment: environment, diagnostics: diagnostics)
    }

    /// A job's run as its command line asks for it (the options that go with a command).
    struct JobRequest {
        var job: String?
        var `internal`: String?
        var backend: String?
        var interval: Int
        var adFile: String?
        var denyExternal: Bool
        var verbose: Bool
        /// --chirp, --chirp-delayed, --chirp-auto.
        var chirp: (immediate: Bool, delayed: Bool, automatic: Bool)
        var command: [String]
    }

    static let fastOptions = FastCommandLine.Options(
        flags: ["deny-external", "verbose", "chirp", "chirp-delayed", "chirp-auto"],
        single: ["config", "job", "internal", "backend", "interval", "ad-file"]
    )

    /// Every line that runs a job (options, then a command after `--`), as `execute` would read it; an
    /// --interval that is not a number is left to ArgumentParser, which words that error.
    static func fastPath(_ line: FastCommandLine) -> (() throws -> Int32)? {
        guard line.hasTerminator else { return nil }
        var interval = 60
        if let text = line.value("interval") {
            guard let value = Int(text) else { return nil }
            interval = value
        }
        return {
            let (environment, diagnostics, config) = try GlobalOptions.start(tool: "netacct", configPath: line.value("config"))
            let request = JobRequest(
                job: line.value("job"), internal: line.value("internal"), backend: line.value("backend"), interval: interval,
                adFile: line.value("ad-file"), denyExternal: line.flag("deny-external"), verbose: line.flag("verbose"),
                chirp: (line.flag("chirp"), line.flag("chirp-delayed"), line.flag("chirp-auto")), command: line.command)
            return try run(request, config: config, environment: environment, diagnostics: diagnostics)
        }
    }

    /// Runs the job of `request` with its accounting.
    static func run(_ request: JobRequest, config: JobboxConfig, environment: Environment, diagnostics: Diagnostics) throws -> Int32 {
        let jobID = try JobID.resolve(option: request.job, environment: environment)
        guard !request.command.isEmpty else { throw JobboxError.invalid("no command", nil, "give the job's command after --") }
        guard request.interval >= 1 else {
            throw JobboxError.invalid("invalid --interval", "\(request.interval)", "give a whole number of seconds, at least 1")
        }
        var internalNetworks = config.networkInternal
        var internalNetworksIPv6 = config.networkInternalIPv6
        if let text = request.internal {
            guard let parsed = IPNetwork.parseList(text), !parsed.v4.isEmpty || !parsed.v6.isEmpty else {
                throw JobboxError.invalid("invalid --internal", "'\(text)'", "give networks such as 10.0.0.0/8,192.168.0.0/16,fd00::/8")
            }
            (internalNetworks, internalNetworksIPv6) = parsed
        }
        var backendChoice = config.networkBackend
        if let text = request.backend {
            guard let choice = NetworkBackendChoice(rawValue: text.lowercased()) else {
                throw JobboxError.invalid("invalid --backend", "'\(text)'", "give auto, iptables, nftables or bpf")
            }
            backendChoice = choice
        }
        try Self.requireRoot()
        var options = NetacctRunOptions(
            job: jobID, command: request.command, internalNetworks: internalNetworks, jobSubnet: config.networkJobSubnet,
            stateDirectory: config.stateDir, backend: backendChoice, interval: request.interval, adFile: request.adFile,
            denyExternal: request.denyExternal, verbose: request.verbose)
        options.internalNetworksIPv6 = internalNetworksIPv6
        options.nodePinDirectory = config.netacctPinDir
        options.chirp = try ChirpOptions.update(
            immediate: request.chirp.immediate, delayed: request.chirp.delayed, automatic: request.chirp.automatic, environment: environment)
        return try NetacctRun(options, diagnostics: diagnostics, environment: environment).run()
    }

    func printAds(_ ads: [ClassAd]) throws(JobboxError) {
        do {
            printOut(try ClassAdWriter.render(ads))
        } catch {
            throw JobboxError.invalid("cannot render ads", nil, error.description)
        }
    }

    /// netacct changes the host's links and firewall: say so plainly instead of failing on the first EPERM.
    static func requireRoot() throws(JobboxError) {
        if !Privilege.isRoot {
            throw JobboxError.invalid(
                "netacct needs root", nil,
                "it makes veth pairs and firewall rules, or cgroups and BPF programs (run it as root, e.g. in a root-run job wrapper or Slurm prolog)")
        }
    }
}
