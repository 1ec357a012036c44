import CNetfilter
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// nftables through netlink (libmnl + libnftnl), one inet table per job.
///
/// Per job, in its own table `jobbox.JOB_<id>` (`table(of:)`): the regular chain `JOB_<id>` with the counting
/// rules, a named counter per rule (`JOB_<id>.<class>.<n>`), base chains `JOB_<id>.input`, `.forward`, `.output`
/// that jump to it for packets crossing the job's veth, and `JOB_<id>.postrouting` (type nat) that masquerades
/// the job's address. The table and everything in it are added in one atomic batch and removed in one message.
///
/// Why a table per job: no job ever touches another's objects, so jobs need no lock between them; removal is one
/// recursive table delete; and the kernel validates a table's jump graph at every rule added and every commit,
/// which in one shared table grew with the number of jobs (set-up at 500 jobs took twice as long as at one).
package struct NftablesBackend: AccountingBackend {
    /// What every job table's name starts with.
    package static let tablePrefix = "jobbox."
    static let family = UInt16(NFPROTO_INET)

    /// A back end for the current network namespace.
    package init() {}

    package var kind: BackendKind { .nftables }

    /// The table of the job whose chain is `chain`.
    package static func table(of chain: String) -> String { tablePrefix + chain }

    package func install(_ plan: AccountingPlan) throws(JobboxError) {
        let socket = try Self.open()
        let table = Self.table(of: plan.chain)
        let batch = NftablesBatch(sequence: socket.nextSequence())
        // NLM_F_EXCL everywhere: a leftover of the same job is an error here (its lease reclaim removes it first).
        let create = NLM_F_CREATE | NLM_F_EXCL
        batch.add(NFT_MSG_NEWTABLE, flags: create) { header in
            NftObject.table(table).withPointer { nftnl_table_nlmsg_build_payload(header, $0) }
        }
        for rule in plan.rules {
            batch.add(NFT_MSG_NEWOBJ, flags: create) { header in
                NftObject.counter(rule.counterName, table: table).withPointer { nftnl_obj_nlmsg_build_payload(header, $0) }
            }
        }
        batch.add(NFT_MSG_NEWCHAIN, flags: create) { header in
            NftObject.chain(plan.chain, table: table).withPointer { nftnl_chain_nlmsg_build_payload(header, $0) }
        }
        for rule in plan.rules {
            batch.add(NFT_MSG_NEWRULE, flags: NLM_F_CREATE | NLM_F_APPEND) { header in
                NftRules.accounting(rule, chain: plan.chain, table: table, interface: plan.interface).withPointer {
                    nftnl_rule_nlmsg_build_payload(header, $0)
                }
            }
        }
        for hook in NftHook.allCases {
            let name = hook.chainName(plan.chain)
            batch.add(NFT_MSG_NEWCHAIN, flags: create) { header in
                NftObject.baseChain(name, table: table, hook: hook).withPointer { nftnl_chain_nlmsg_build_payload(header, $0) }
            }
            for rule in NftRules.hookRules(hook, chain: plan.chain, table: table, baseChain: name, interface: plan.interface, jobAddress: plan.jobAddress) {
                batch.add(NFT_MSG_NEWRULE, flags: NLM_F_CREATE | NLM_F_APPEND) { header in
                    rule.withPointer { nftnl_rule_nlmsg_build_payload(header, $0) }
                }
            }
        }
        do {
            try batch.send(on: socket)
        } catch {
            throw JobboxError.system("cannot add nftables accounting", "inet \(table)", error)
        }
    }

    package func remove(chain: String) throws(JobboxError) {
        try requireJobChain(chain)
        let socket = try Self.open()
        let table = Self.table(of: chain)
        // The table holds this job's objects and nothing else: one recursive delete takes them all.
        let batch = NftablesBatch(sequence: socket.nextSequence())
        batch.add(NFT_MSG_DELTABLE, flags: 0) { header in
            NftObject.table(table).withPointer { nftnl_table_nlmsg_build_payload(header, $0) }
        }
        do {
            try batch.send(on: socket)
        } catch .noSuchFileOrDirectory {
            return
        } catch {
            throw JobboxError.system("cannot delete nftables accounting", "inet \(table)", error)
        }
    }

    package func counters(chains: [String]) throws(JobboxError) -> [String: TrafficCounters] {
        let socket = try Self.open()
        var values: [String: UInt64] = [:]
        do {
            // A few jobs (netacct's own, --show --job): each counter looked up by name. Many (--show --all): one
            // dump of every inet table's counters. Either way the cost per job does not grow with the number of jobs.
            if chains.count <= Self.lookupLimit {
                for chain in chains { values.merge(try Self.jobCounterValues(socket, chain: chain)) { $1 } }
            } else {
                values = try Self.counterValues(socket)
            }
        } catch {
            throw JobboxError.system("cannot read nftables counters", "inet \(Self.tablePrefix)*", error)
        }
        let wanted = Set(chains)
        var result: [String: TrafficCounters] = [:]
        // Install is one atomic batch: a job with counters has its chains, and one without has none.
        for (name, bytes) in values {
            if let (chain, trafficClass) = TrafficCounters.owner(ofCounter: name), wanted.contains(chain) {
                result[chain, default: TrafficCounters()].add(bytes, to: trafficClass)
            }
        }
        return result
    }

    /// Up to how many jobs `counters(chains:)` looks counters up by name rather than dumping them all.
    static let lookupLimit = 4

    static func open() throws(JobboxError) -> NetlinkSocket {
        do {
            return try NetlinkSocket(bus: NETLINK_NETFILTER)
        } catch {
            throw JobboxError.system("cannot open netlink socket", "NETLINK_NETFILTER", error)
        }
    }

    /// Asks the kernel for one object by name (a request without `NLM_F_DUMP`: a hash lookup in the kernel) and
    /// hands the answer to `each`; false when there is no such object (or no table).
    static func lookUp(
        _ socket: NetlinkSocket, _ type: nf_tables_msg_types, payload: @escaping (UnsafeMutablePointer<nlmsghdr>) -> Void,
        _ each: (UnsafePointer<nlmsghdr>) -> Void
    ) throws(Errno) -> Bool {
        let request = NetlinkMessage { buffer in
            let header = nftnl_nlmsg_build_hdr(
                buffer.assumingMemoryBound(to: CChar.self), UInt16(type.rawValue), family, UInt16(NLM_F_ACK), socket.nextSequence())
            guard let header else { fatalError("libnftnl: cannot build a message header") }
            payload(header)
            return header
        }
        do throws(Errno) {
            try socket.dump(request, each)
        } catch .noSuchFileOrDirectory {
            return false
        }
        return true
    }

    /// The bytes of the named counter `name` of `table`, nil when there is none.
    static func counterValue(_ socket: NetlinkSocket, _ name: String, table: String) throws(Errno) -> UInt64? {
        var bytes: UInt64?
        let found = try lookUp(
            socket, NFT_MSG_GETOBJ, payload: { header in NftObject.counter(name, table: table).withPointer { nftnl_obj_nlmsg_build_payload(header, $0) } }
        ) {
            header in
            NftObject(nftnl_obj_alloc(), free: nftnl_obj_free).withPointer { object in
                if nftnl_obj_nlmsg_parse(header, object) >= 0 { bytes = nftnl_obj_get_u64(object, attr(NFTNL_OBJ_CTR_BYTES)) }
            }
        }
        return found ? bytes : nil
    }

    /// The counters of the job whose chain is `chain`, by name: `AccountingPlan` numbers each class's counters from
    /// 0 without gaps and installs them in one batch, so the first missing number ends a class.
    static func jobCounterValues(_ socket: NetlinkSocket, chain: String) throws(Errno) -> [String: UInt64] {
        var values: [String: UInt64] = [:]
        for trafficClass in TrafficClass.allCases {
            var index = 0
            while let bytes = try counterValue(socket, "\(chain).\(trafficClass.rawValue).\(index)", table: table(of: chain)) {
                values["\(chain).\(trafficClass.rawValue).\(index)"] = bytes
                index += 1
            }
        }
        return values
    }

    /// The named counters of every job table and their byte counts (a counter counts only in its job's table).
    static func counterValues(_ socket: NetlinkSocket) throws(Errno) -> [String: UInt64] {
        let request = NetlinkMessage { buffer in
            let header = nftnl_nlmsg_build_hdr(
                buffer.assumingMemoryBound(to: CChar.self), UInt16(NFT_MSG_GETOBJ.rawValue), family, UInt16(NLM_F_DUMP), socket.nextSequence())
            guard let header else { fatalError("libnftnl: cannot build a message header") }
            NftObject.counter(nil, table: nil).withPointer { nftnl_obj_nlmsg_build_payload(header, $0) }
            return header
        }
        var values: [String: UInt64] = [:]
        do throws(Errno) {
            try socket.dump(request) { header in
                NftObject(nftnl_obj_alloc(), free: nftnl_obj_free).withPointer { object in
                    guard nftnl_obj_nlmsg_parse(header, object) >= 0,
                        let tableName = nftnl_obj_get_str(object, attr(NFTNL_OBJ_TABLE)),
                        nftnl_obj_get_u32(object, attr(NFTNL_OBJ_TYPE)) == UInt32(NFT_OBJECT_COUNTER),
                        let cName = nftnl_obj_get_str(object, attr(NFTNL_OBJ_NAME))
                    else { return }
                    let name = String(cString: cName)
                    guard let (chain, _) = TrafficCounters.owner(ofCounter: name), String(cString: tableName) == table(of: chain) else { return }
                    values[name] = nftnl_obj_get_u64(object, attr(NFTNL_OBJ_CTR_BYTES))
                }
            }
        } catch .noSuchFileOrDirectory {
            return [:]
        }
        return values
    }
}
