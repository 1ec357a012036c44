import CNetfilter
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// nftables through nfnetlink (`NftMessage` on jobbox's own netlink layer), in one `inet jobbox` table.
///
/// Per job, all named after its chain `JOB_<id>`: the regular chain `JOB_<id>` with the counting rules, a named
/// counter per rule (`JOB_<id>.<class>.<n>`), base chains `JOB_<id>.input`, `.forward`, `.output` that jump to
/// it for packets crossing the job's veth, and `JOB_<id>.postrouting` (type nat) that masquerades the job's
/// address. A job's objects are added in one atomic batch and removed in one; no job ever edits a chain another
/// job uses, so jobs need no lock between them. The table goes when its last job does: a non-recursive delete
/// (`NLM_F_NONREC`) that the kernel refuses while anything is left in it.
package struct NftablesBackend: AccountingBackend {
    /// The table's name.
    package static let table = "jobbox"
    static let family = UInt16(NFPROTO_INET)

    /// A back end for the current network namespace.
    package init() {}

    package var kind: BackendKind { .nftables }

    package func install(_ plan: AccountingPlan) throws(JobboxError) {
        let socket = try Self.open()
        do {
            try Self.installBatch(plan, sequence: socket.nextSequence()).send(on: socket)
        } catch {
            throw JobboxError.system("cannot add nftables accounting", "inet \(Self.table) \(plan.chain)", error)
        }
    }

    /// The batch that adds a job's objects: the table (unless it is there), the counters, the job's chain and its
    /// rules, then each base chain with its rules.
    static func installBatch(_ plan: AccountingPlan, sequence: UInt32) -> NftablesBatch {
        let batch = NftablesBatch(sequence: sequence)
        let create = NLM_F_CREATE | NLM_F_EXCL
        batch.add(NFT_MSG_NEWTABLE, flags: NLM_F_CREATE) { NftMessage.putTable($0) }
        for rule in plan.rules {
            batch.add(NFT_MSG_NEWOBJ, flags: create) { NftMessage.putCounter($0, rule.counterName) }
        }
        batch.add(NFT_MSG_NEWCHAIN, flags: create) { NftMessage.putChain($0, plan.chain) }
        for rule in plan.rules {
            batch.add(NFT_MSG_NEWRULE, flags: NLM_F_CREATE | NLM_F_APPEND) {
                NftMessage.putRule($0, NftRules.accounting(rule, chain: plan.chain, interface: plan.interface))
            }
        }
        for hook in NftHook.allCases {
            let name = hook.chainName(plan.chain)
            batch.add(NFT_MSG_NEWCHAIN, flags: create) { NftMessage.putBaseChain($0, name, hook: hook) }
            for rule in NftRules.hookRules(hook, chain: plan.chain, baseChain: name, interface: plan.interface, jobAddress: plan.jobAddress) {
                batch.add(NFT_MSG_NEWRULE, flags: NLM_F_CREATE | NLM_F_APPEND) { NftMessage.putRule($0, rule) }
            }
        }
        return batch
    }

    package func remove(chain: String) throws(JobboxError) {
        try requireJobChain(chain)
        let socket = try Self.open()
        var chains: [String] = []
        let counters: [String]
        do {
            // Looked up by name, never by listing the table: removal costs the same whatever the number of jobs.
            for name in [chain] + NftHook.allCases.map({ $0.chainName(chain) }) where try Self.chainExists(socket, name) { chains.append(name) }
            counters = Array(try Self.jobCounterValues(socket, chain: chain).keys)
        } catch {
            throw JobboxError.system("cannot look up nftables accounting", "inet \(Self.table) \(chain)", error)
        }
        if !chains.isEmpty || !counters.isEmpty {
            do {
                try Self.removalBatch(chain: chain, chains: chains, counters: counters, sequence: socket.nextSequence()).send(on: socket)
            } catch {
                throw JobboxError.system("cannot delete nftables accounting", "inet \(Self.table) \(chain)", error)
            }
        }
        try Self.deleteTableIfEmpty(socket)
    }

    /// The batch that deletes the job's `chains` and `counters`: base chains first, since their jumps hold the job's
    /// chain `chain`, whose rules hold the counters.
    static func removalBatch(chain: String, chains: [String], counters: [String], sequence: UInt32) -> NftablesBatch {
        let batch = NftablesBatch(sequence: sequence)
        for name in chains.sorted(by: { ($0 == chain ? 1 : 0) < ($1 == chain ? 1 : 0) }) {
            batch.add(NFT_MSG_DELCHAIN, flags: 0) { NftMessage.putChain($0, name) }
        }
        for name in counters {
            batch.add(NFT_MSG_DELOBJ, flags: 0) { NftMessage.putCounter($0, name) }
        }
        return batch
    }

    /// Deletes the table unless something is left in it; the kernel checks emptiness inside the transaction, so a
    /// job that adds its objects at the same moment either comes first (and the delete is refused) or after (and
    /// makes the table anew). The table's use count is looked at first, so a kernel too old to know
    /// `NLM_F_NONREC` (which would then delete recursively) is only asked when the table looked empty.
    static func deleteTableIfEmpty(_ socket: NetlinkSocket) throws(JobboxError) {
        do {
            guard try tableUse(socket) == 0 else { return }
        } catch {
            throw JobboxError.system("cannot look up nftables table", "inet \(table)", error)
        }
        do {
            try deleteTableBatch(sequence: socket.nextSequence()).send(on: socket)
        } catch .resourceBusy, .noSuchFileOrDirectory {
            return
        } catch {
            throw JobboxError.system("cannot delete nftables table", "inet \(table)", error)
        }
    }

    /// The batch that deletes the table unless something is in it (`NLM_F_NONREC`).
    static func deleteTableBatch(sequence: UInt32) -> NftablesBatch {
        let batch = NftablesBatch(sequence: sequence)
        batch.add(NFT_MSG_DELTABLE, flags: NLM_F_NONREC) { NftMessage.putTable($0) }
        return batch
    }

    package func counters(chains: [String]) throws(JobboxError) -> [String: TrafficCounters] {
        let socket = try Self.open()
        // A few jobs (netacct's own, --show --job): each counter looked up by name, so the cost does not grow with
        // the number of jobs. Many (--show --all): one snapshot of the table, the same cost per job.
        if chains.count <= Self.lookupLimit {
            var result: [String: TrafficCounters] = [:]
            for chain in chains {
                let values: [String: UInt64]
                do {
                    values = try Self.jobCounterValues(socket, chain: chain)
                } catch {
                    throw JobboxError.system("cannot read nftables counters", "inet \(Self.table) \(chain)", error)
                }
                // Install is one atomic batch: a job with no counters has no chain either.
                guard !values.isEmpty else { continue }
                var counters = TrafficCounters()
                for (name, bytes) in values {
                    if let (_, trafficClass) = TrafficCounters.owner(ofCounter: name) { counters.add(bytes, to: trafficClass) }
                }
                result[chain] = counters
            }
            return result
        }
        let values: [String: UInt64]
        let existing: Set<String>
        do {
            values = try Self.counterValues(socket)
            existing = Set(try Self.chainNames(socket))
        } catch {
            throw JobboxError.system("cannot read nftables counters", "inet \(Self.table)", error)
        }
        let wanted = Set(chains).intersection(existing)
        var result: [String: TrafficCounters] = [:]
        for chain in wanted { result[chain] = TrafficCounters() }
        for (name, bytes) in values {
            if let (chain, trafficClass) = TrafficCounters.owner(ofCounter: name), wanted.contains(chain) {
                result[chain]?.add(bytes, to: trafficClass)
            }
        }
        return result
    }

    /// Up to how many jobs `counters(chains:)` looks counters up by name rather than listing the table.
    static let lookupLimit = 4

    static func open() throws(JobboxError) -> NetlinkSocket {
        do {
            return try NetlinkSocket(bus: NETLINK_NETFILTER)
        } catch {
            throw JobboxError.system("cannot open netlink socket", "NETLINK_NETFILTER", error)
        }
    }

    /// Asks the kernel for one object by name (a request without `NLM_F_DUMP`: a hash lookup in the kernel) whose
    /// attributes `payload` writes; the answer's messages, or nil when there is no such object (or no table).
    static func lookUp(_ socket: NetlinkSocket, _ type: nf_tables_msg_types, _ payload: (NetlinkMessage) -> Void) throws(Errno) -> [NetlinkReply]? {
        let request = lookUpRequest(type, sequence: socket.nextSequence(), payload)
        var replies: [NetlinkReply] = []
        do throws(Errno) {
            try socket.dump(request) { replies.append($0) }
        } catch .noSuchFileOrDirectory {
            return nil
        }
        return replies
    }

    /// The request of `lookUp`: `type` with `NLM_F_ACK` and no `NLM_F_DUMP`.
    static func lookUpRequest(_ type: nf_tables_msg_types, sequence: UInt32, _ payload: (NetlinkMessage) -> Void) -> NetlinkMessage {
        let request = NftMessage.request(type, flags: NLM_F_ACK, sequence: sequence)
        payload(request)
        return request
    }

    /// Whether the table has the chain `name`.
    static func chainExists(_ socket: NetlinkSocket, _ name: String) throws(Errno) -> Bool {
        try lookUp(socket, NFT_MSG_GETCHAIN) { NftMessage.putChain($0, name) } != nil
    }

    /// The bytes of the named counter `name`, nil when there is none.
    static func counterValue(_ socket: NetlinkSocket, _ name: String) throws(Errno) -> UInt64? {
        try lookUp(socket, NFT_MSG_GETOBJ) { NftMessage.putCounter($0, name) }?.compactMap(NftMessage.counter).last?.bytes
    }

    /// The counters of the job whose chain is `chain`, by name: `AccountingPlan` numbers each class's counters from
    /// 0 without gaps and installs them in one batch, so the first missing number ends a class.
    static func jobCounterValues(_ socket: NetlinkSocket, chain: String) throws(Errno) -> [String: UInt64] {
        var values: [String: UInt64] = [:]
        for trafficClass in TrafficClass.allCases {
            var index = 0
            while let bytes = try counterValue(socket, "\(chain).\(trafficClass.rawValue).\(index)") {
                values["\(chain).\(trafficClass.rawValue).\(index)"] = bytes
                index += 1
            }
        }
        return values
    }

    /// How many objects (chains, counters, sets) the table holds, from the kernel's own count; nil when there is
    /// no table.
    static func tableUse(_ socket: NetlinkSocket) throws(Errno) -> UInt32? {
        try lookUp(socket, NFT_MSG_GETTABLE, NftMessage.putTable)?.last.map(NftMessage.tableUse)
    }

    /// A dump of the objects of `type` that `filter`'s attributes select; each answer is still checked for the table
    /// (`NftMessage.chainName`, `NftMessage.counter`), whatever the kernel filtered.
    static func dumpRequest(_ type: nf_tables_msg_types, sequence: UInt32, _ filter: (NetlinkMessage) -> Void) -> NetlinkMessage {
        let request = NftMessage.request(type, flags: NLM_F_DUMP, sequence: sequence)
        filter(request)
        return request
    }

    /// The names of the table's chains (none when the table does not exist).
    static func chainNames(_ socket: NetlinkSocket) throws(Errno) -> [String] {
        let request = dumpRequest(NFT_MSG_GETCHAIN, sequence: socket.nextSequence()) { NftMessage.putChain($0, nil) }
        var names: [String] = []
        do throws(Errno) {
            try socket.dump(request) { reply in
                if let name = NftMessage.chainName(reply) { names.append(name) }
            }
        } catch .noSuchFileOrDirectory {
            return []
        }
        return names
    }

    /// The table's named counters and their byte counts (none when the table does not exist).
    static func counterValues(_ socket: NetlinkSocket) throws(Errno) -> [String: UInt64] {
        let request = dumpRequest(NFT_MSG_GETOBJ, sequence: socket.nextSequence()) { NftMessage.putCounter($0, nil) }
        var values: [String: UInt64] = [:]
        do throws(Errno) {
            try socket.dump(request) { reply in
                if let counter = NftMessage.counter(reply) { values[counter.name] = counter.bytes }
            }
        } catch .noSuchFileOrDirectory {
            return [:]
        }
        return values
    }
}
