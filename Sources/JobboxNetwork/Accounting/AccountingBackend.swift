import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The firewall a job's accounting lives in.
package enum BackendKind: String, Sendable, CaseIterable {
    /// Legacy iptables (x_tables), through the kernel's socket options.
    case iptables
    /// nftables, through nfnetlink (jobbox's own netlink messages).
    case nftables
}

/// A firewall back end: installs, reads and removes the accounting of jobs in the current network namespace.
///
/// Both back ends keep every job's objects under its chain name, so removing one job never touches another's,
/// and removal is idempotent: it deletes what exists of the job and ignores what does not.
package protocol AccountingBackend {
    /// Which firewall this is.
    var kind: BackendKind { get }
    /// Installs the chain, its rules, the hooks and the NAT rule of `plan`, all or nothing.
    func install(_ plan: AccountingPlan) throws(JobboxError)
    /// Removes whatever exists of the job whose chain is `chain` (call `requireJobChain` first: the rules deleted
    /// are those that jump to `chain`).
    func remove(chain: String) throws(JobboxError)
    /// The counters of the jobs with these chains, read from one snapshot of the firewall; a chain that does not
    /// exist is missing from the result.
    func counters(chains: [String]) throws(JobboxError) -> [String: TrafficCounters]
}

/// Makes the back end of `kind`.
package func makeAccountingBackend(_ kind: BackendKind, environment: Environment = .current) -> any AccountingBackend {
    switch kind {
    case .iptables: return IptablesBackend(lock: XtablesLock(environment: environment))
    case .nftables: return NftablesBackend()
    }
}

/// What `--backend auto` looks at: which flavour the host's `iptables` command is, and whether the kernel has
/// legacy tables at all.
package struct FirewallProbe: Sendable {
    /// Directories searched for `iptables`.
    package var searchPath: [String]
    /// The kernel's list of legacy tables (absent when x_tables is not in the kernel).
    package var legacyTablesFile: String

    /// The probe of this machine: `$PATH` plus the sbin directories, and `/proc/net/ip_tables_names`.
    package init(environment: Environment = .current) {
        let path = environment["PATH"] ?? ""
        var directories = path.split(separator: ":").map(String.init)
        for extra in ["/usr/local/sbin", "/usr/sbin", "/sbin"] where !directories.contains(extra) { directories.append(extra) }
        self.init(searchPath: directories, legacyTablesFile: "/proc/net/ip_tables_names")
    }

    /// A probe of other places (tests use fixture trees).
    package init(searchPath: [String], legacyTablesFile: String) {
        self.searchPath = searchPath
        self.legacyTablesFile = legacyTablesFile
    }

    /// The back end `choice` stands for, and why, for `-v`.
    package func resolve(_ choice: NetworkBackendChoice) -> (kind: BackendKind, reason: String) {
        switch choice {
        case .iptables: return (.iptables, "asked for")
        case .nftables: return (.nftables, "asked for")
        // bpf needs no firewall (NetacctRun hands it to NetacctBPFRun first); asked here, it stands for auto.
        case .auto, .bpf: break
        }
        let command = iptablesCommand()
        if let command, command.flavour == "nft" {
            return (.nftables, "\(command.path) is the nf_tables flavour of iptables")
        }
        if access(legacyTablesFile, F_OK) != 0 {
            return (.nftables, "the kernel has no legacy iptables (\(legacyTablesFile) is missing)")
        }
        if let command {
            return (.iptables, "\(command.path) is the legacy flavour of iptables")
        }
        return (.iptables, "no iptables command, and the kernel has legacy tables")
    }

    /// The first `iptables` in the search path and its flavour (`nft` or `legacy`, from the multi-call binary
    /// it resolves to: `xtables-nft-multi` or `xtables-legacy-multi`).
    func iptablesCommand() -> (path: String, flavour: String)? {
        for directory in searchPath where !directory.isEmpty {
            let candidate = directory + "/iptables"
            guard access(candidate, X_OK) == 0 else { continue }
            guard let resolved = realpath(candidate, nil) else { continue }
            let target = String(cString: resolved)
            free(resolved)
            let name = target.split(separator: "/").last.map(String.init) ?? target
            return (candidate, name.contains("nft") ? "nft" : "legacy")
        }
        return nil
    }
}

/// Refuses to remove a chain netacct did not name: the iptables back end deletes every rule of INPUT, FORWARD and
/// OUTPUT whose target is `chain`, so `DROP` or `ACCEPT` would take the host's own rules with it. Leases are
/// validated before this (`JobNetworkLeases.validate`); this is the last line.
func requireJobChain(_ chain: String) throws(JobboxError) {
    let suffix = chain.utf8.dropFirst(4)
    guard chain.hasPrefix("JOB_"), !suffix.isEmpty, chain.utf8.count <= 28,
        suffix.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2D })
    else { throw JobboxError.invalid("refusing to remove chain", chain, "it is not a name netacct gives a job's chain (JOB_<id>)") }
}
