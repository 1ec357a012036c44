import CNetfilter
import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Legacy iptables through the kernel's own interface (`IptablesTable`): one `JOB_<id>` chain in `filter` with
/// the counting rules, four jumps to it at the top of `INPUT`, `FORWARD` (twice) and `OUTPUT`, and a
/// `MASQUERADE` rule at the top of the `nat` table's `POSTROUTING` tagged with the chain's name as comment.
///
/// Counting uses rules in the job's own chain, whose counters survive every commit of any job: the kernel starts a
/// replaced table at zero, and `IptablesTable.commit` adds every kept entry's old counts back right after (as
/// libiptc does for iptables).
package struct IptablesBackend: AccountingBackend {
    /// The lock taken around every read-modify-commit.
    package let lock: XtablesLock
    /// The kernel's list of instantiated legacy tables: removal and reading leave alone a table that does not
    /// exist yet, rather than creating it by looking.
    package var tablesFile = "/proc/net/ip_tables_names"

    /// A back end that serialises its commits with `lock`.
    package init(lock: XtablesLock) { self.lock = lock }

    package var kind: BackendKind { .iptables }

    package func install(_ plan: AccountingPlan) throws(JobboxError) {
        try lock.withLock { () throws(JobboxError) in
            do throws(JobboxError) {
                try IptablesTable.modify("filter") { table throws(JobboxError) in
                    try table.createChain(plan.chain)
                    for rule in plan.rules {
                        try table.append(plan.chain, Self.entry(for: rule, interface: plan.interface))
                    }
                    let jump = IptablesEntry.Target.standard(plan.chain)
                    try table.insert("INPUT", IptablesEntry.make(.init(input: plan.interface), target: jump))
                    try table.insert("FORWARD", IptablesEntry.make(.init(output: plan.interface), target: jump))
                    try table.insert("FORWARD", IptablesEntry.make(.init(input: plan.interface), target: jump))
                    try table.insert("OUTPUT", IptablesEntry.make(.init(output: plan.interface), target: jump))
                    return true
                }
                try IptablesTable.modify("nat") { table throws(JobboxError) in
                    let source = IPv4Network(address: plan.jobAddress, prefixLength: 32)
                    try table.insert("POSTROUTING", IptablesEntry.make(.init(source: source), comment: plan.chain, target: .masquerade))
                    return true
                }
            } catch {
                try? removeLocked(chain: plan.chain)
                throw error
            }
        }
    }

    /// The entry of one counting rule.
    static func entry(for rule: AccountingRule, interface: String) -> [UInt8] {
        var selector = IptablesEntry.Selector()
        if rule.trafficClass.isOutgoing {
            selector.input = interface
            selector.destination = rule.remote
        } else {
            selector.output = interface
            selector.source = rule.remote
        }
        return IptablesEntry.make(selector, comment: rule.trafficClass.rawValue, target: rule.reject ? .rejectPortUnreachable : .standard("RETURN"))
    }

    package func remove(chain: String) throws(JobboxError) {
        try requireJobChain(chain)
        try lock.withLock { () throws(JobboxError) in try removeLocked(chain: chain) }
    }

    /// Removes what `install` made. A job chain something else now jumps to (an admin's rule) stays, reported
    /// once the rest is gone: its jumps and its masquerade rule are removed all the same.
    private func removeLocked(chain: String) throws(JobboxError) {
        let tables = loadedTables()
        var chainLeft: JobboxError?
        if tables.contains("filter") {
            try IptablesTable.modify("filter") { table throws(JobboxError) in
                var changed = false
                for builtin in ["INPUT", "FORWARD", "OUTPUT"] {
                    changed = try table.deleteRules(in: builtin) { entry, target in target == chain } || changed
                }
                if table.isChain(chain) {
                    do throws(JobboxError) {
                        try table.deleteChain(chain)
                        changed = true
                    } catch {
                        chainLeft = error
                    }
                }
                return changed
            }
        }
        if tables.contains("nat") {
            try IptablesTable.modify("nat") { table throws(JobboxError) in
                try table.deleteRules(in: "POSTROUTING") { entry, target in
                    target == "MASQUERADE" && IptablesEntry.comment(of: entry) == chain
                }
            }
        }
        if let chainLeft { throw chainLeft }
    }

    /// Reading takes the lock too: a commit is two steps (the table is replaced with zeroed counters, then the old
    /// counts are added back), and a read between them would see a job's counters near zero.
    package func counters(chains: [String]) throws(JobboxError) -> [String: TrafficCounters] {
        guard loadedTables().contains("filter") else { return [:] }
        let table = try lock.withLock { () throws(JobboxError) in try IptablesTable(name: "filter") }
        var result: [String: TrafficCounters] = [:]
        for chain in chains where table.isChain(chain) {
            var counters = TrafficCounters()
            table.forEachRule(in: chain) { entry, _ in
                if let comment = IptablesEntry.comment(of: entry), let trafficClass = TrafficClass(rawValue: comment) {
                    counters.add(entry.pointee.counters.bcnt, to: trafficClass)
                }
            }
            result[chain] = counters
        }
        return result
    }

    /// The legacy tables the kernel has instantiated in this network namespace.
    func loadedTables() -> Set<String> {
        guard let text = try? SmallFile.read(tablesFile) else { return [] }
        return Set(text.split(separator: "\n").map(String.init))
    }
}
