import JobboxCgroups
import JobboxCore

/// What counts a bpf job: programs of its own (`BPFAccounting`: loaded, attached to its cgroup, a map of its own),
/// or the node service's, which count its cgroup already (`BPFNodeCounting`: nothing loaded or attached). The
/// figures are the same; the service's cost the job's set-up no verifier run, no map and no attach.
package enum BPFJobCounting {
    case own(BPFAccounting)
    case node(BPFNodeCounting)

    /// The node service's counting when it counts the job of `options` in `place` (and `options.nodePinDirectory`
    /// names its pins), else the job's own programs, loaded; `--verbose` says which and why.
    static func choose(_ options: NetacctRunOptions, place: BPFJobCgroup, unified: CgroupHierarchy, diagnostics: Diagnostics) throws(JobboxError)
        -> BPFJobCounting
    {
        var why = "no NETACCT_PIN_DIR"
        if let pinDirectory = options.nodePinDirectory {
            switch BPFNodeCounting.open(
                pinDirectory: pinDirectory, place: place, unified: unified, internalIPv4: options.internalNetworks, internalIPv6: options.internalNetworksIPv6,
                denyExternal: options.denyExternal)
            {
            case .success(let node):
                if options.verbose { diagnostics.note("backend bpf: counted by the node service's programs (its map id \(node.mapID)); none loaded") }
                return .node(node)
            case .failure(let refusal):
                why = refusal.reason
            }
        }
        if options.verbose { diagnostics.note("backend bpf: loading the job's own programs; the node service's do not count it: \(why)") }
        return .own(
            try BPFAccounting(internalIPv4: options.internalNetworks, internalIPv6: options.internalNetworksIPv6, denyExternal: options.denyExternal))
    }

    /// The lease's map ids: the job's own counters map, or the node service's.
    var mapIDs: (own: UInt32, node: UInt32) {
        switch self {
        case .own(let accounting): (accounting.countersMapID, 0)
        case .node(let node): (0, node.mapID)
        }
    }

    /// Starts counting in the cgroup open at `cgroupFD` (id `cgroupID`, at `path`): attaches the job's programs, or
    /// takes what the node's entry of the cgroup holds now as its start.
    func start(cgroupFD: Int32, cgroupID: UInt64, path: String) throws(JobboxError) {
        switch self {
        case .own(let accounting): try accounting.attach(cgroupFD: cgroupFD, path: path)
        case .node(let node): try node.start(cgroupID: cgroupID)
        }
    }

    /// The job's counters so far.
    func counters() throws(JobboxError) -> TrafficCounters {
        switch self {
        case .own(let accounting): try accounting.counters()
        case .node(let node): try node.counters()
        }
    }

    /// Stops counting (idempotent): the job's programs are detached; the node's count on.
    func stop() {
        if case .own(let accounting) = self { accounting.close() }
    }

    /// After the tear-down: the node's entry of a cgroup netacct made and removed (`removed`) is dropped, and the
    /// map closed.
    func finish(removed: Bool) {
        guard case .node(let node) = self else { return }
        if removed { node.dropEntry() }
        node.close()
    }
}
