import CNetfilter
import JobboxCore

/// The hooks a job's traffic is counted at, each with its own base chain.
enum NftHook: CaseIterable {
    case input, forward, output, postrouting

    func chainName(_ chain: String) -> String {
        switch self {
        case .input: return chain + ".input"
        case .forward: return chain + ".forward"
        case .output: return chain + ".output"
        case .postrouting: return chain + ".postrouting"
        }
    }

    var hookNumber: UInt32 {
        switch self {
        case .input: return UInt32(NF_INET_LOCAL_IN.rawValue)
        case .forward: return UInt32(NF_INET_FORWARD.rawValue)
        case .output: return UInt32(NF_INET_LOCAL_OUT.rawValue)
        case .postrouting: return UInt32(NF_INET_POST_ROUTING.rawValue)
        }
    }

    /// `filter` at priority 0 for counting; `nat` at `srcnat` (100) for the masquerade.
    var type: String { self == .postrouting ? "nat" : "filter" }
    var priority: Int32 { self == .postrouting ? 100 : 0 }
}

/// A libnftnl object (table, chain, rule, object, expression holder) freed with its owner.
final class NftObject {
    let pointer: OpaquePointer
    private let free: (OpaquePointer) -> Void

    init(_ pointer: OpaquePointer?, free: @escaping (OpaquePointer) -> Void) {
        // libnftnl's allocators fail only when malloc does.
        guard let pointer else { fatalError("libnftnl: out of memory") }
        self.pointer = pointer
        self.free = free
    }

    deinit { free(pointer) }

    /// Runs `body` with the C object, keeping this owner (and so the object) alive until `body` returns.
    func withPointer<Result>(_ body: (OpaquePointer) -> Result) -> Result {
        withExtendedLifetime(self) { body(pointer) }
    }

    static func table() -> NftObject {
        let table = NftObject(nftnl_table_alloc(), free: nftnl_table_free)
        nftnl_table_set_u32(table.pointer, attr(NFTNL_TABLE_FAMILY), UInt32(NftablesBackend.family))
        nftnl_table_set_str(table.pointer, attr(NFTNL_TABLE_NAME), NftablesBackend.table)
        return table
    }

    /// A regular chain of the table (or, with no name, a filter for dumping the table's chains).
    static func chain(_ name: String?) -> NftObject {
        let chain = NftObject(nftnl_chain_alloc(), free: nftnl_chain_free)
        nftnl_chain_set_u32(chain.pointer, attr(NFTNL_CHAIN_FAMILY), UInt32(NftablesBackend.family))
        nftnl_chain_set_str(chain.pointer, attr(NFTNL_CHAIN_TABLE), NftablesBackend.table)
        if let name { nftnl_chain_set_str(chain.pointer, attr(NFTNL_CHAIN_NAME), name) }
        return chain
    }

    static func baseChain(_ name: String, hook: NftHook) -> NftObject {
        let chain = self.chain(name)
        nftnl_chain_set_u32(chain.pointer, attr(NFTNL_CHAIN_HOOKNUM), hook.hookNumber)
        nftnl_chain_set_s32(chain.pointer, attr(NFTNL_CHAIN_PRIO), hook.priority)
        nftnl_chain_set_str(chain.pointer, attr(NFTNL_CHAIN_TYPE), hook.type)
        nftnl_chain_set_u32(chain.pointer, attr(NFTNL_CHAIN_POLICY), UInt32(NF_ACCEPT))
        return chain
    }

    /// A named counter of the table (or, with no name, a filter for dumping the table's counters).
    static func counter(_ name: String?) -> NftObject {
        let object = NftObject(nftnl_obj_alloc(), free: nftnl_obj_free)
        nftnl_obj_set_u32(object.pointer, attr(NFTNL_OBJ_FAMILY), UInt32(NftablesBackend.family))
        nftnl_obj_set_str(object.pointer, attr(NFTNL_OBJ_TABLE), NftablesBackend.table)
        nftnl_obj_set_u32(object.pointer, attr(NFTNL_OBJ_TYPE), UInt32(NFT_OBJECT_COUNTER))
        if let name { nftnl_obj_set_str(object.pointer, attr(NFTNL_OBJ_NAME), name) }
        return object
    }
}

/// The rules netacct puts in a job's chains, as libnftnl rules.
enum NftRules {
    /// A rule in `chain` of the table, with an optional comment (nft shows it as `comment "..."`).
    static func rule(_ chain: String, comment: String? = nil, _ expressions: [OpaquePointer]) -> NftObject {
        let rule = NftObject(nftnl_rule_alloc(), free: nftnl_rule_free)
        nftnl_rule_set_u32(rule.pointer, attr(NFTNL_RULE_FAMILY), UInt32(NftablesBackend.family))
        nftnl_rule_set_str(rule.pointer, attr(NFTNL_RULE_TABLE), NftablesBackend.table)
        nftnl_rule_set_str(rule.pointer, attr(NFTNL_RULE_CHAIN), chain)
        // The rule owns its expressions from here on and frees them with itself.
        for expression in expressions { nftnl_rule_add_expr(rule.pointer, expression) }
        if let comment {
            let userData = commentUserData(comment)
            userData.withUnsafeBytes { _ = nftnl_rule_set_data(rule.pointer, attr(NFTNL_RULE_USERDATA), $0.baseAddress, UInt32($0.count)) }
        }
        return rule
    }

    /// The rule's user data as nft reads it: one TLV, type `NFTNL_UDATA_RULE_COMMENT` (0), a length byte, the
    /// text with its NUL (nft keeps comments to 128 bytes).
    static func commentUserData(_ comment: String) -> [UInt8] {
        let text = Array(comment.utf8.prefix(127)) + [0]
        return [0, UInt8(text.count)] + text
    }

    /// A counting rule: `iifname IF [ip daddr NET]` (outgoing) or `oifname IF [ip saddr NET]` (incoming),
    /// `counter name C`, then `return` or `reject`.
    static func accounting(_ rule: AccountingRule, chain: String, interface: String) -> NftObject {
        var expressions = interfaceMatch(rule.trafficClass.isOutgoing ? .iifname : .oifname, interface) + ipv4Only()
        if let remote = rule.remote, remote.prefixLength > 0 {
            expressions += addressMatch(destination: rule.trafficClass.isOutgoing, remote)
        }
        expressions.append(counterReference(rule.counterName))
        expressions.append(rule.reject ? rejectPortUnreachable() : verdict(NFT_RETURN))
        return self.rule(chain, comment: rule.trafficClass.rawValue, expressions)
    }

    /// The rules of one base chain: jumps to the job's chain, or the masquerade of its address.
    static func hookRules(_ hook: NftHook, chain: String, baseChain: String, interface: String, jobAddress: IPv4Address) -> [NftObject] {
        switch hook {
        case .input:
            return [rule(baseChain, interfaceMatch(.iifname, interface) + [verdict(NFT_JUMP, chain: chain)])]
        case .output:
            return [rule(baseChain, interfaceMatch(.oifname, interface) + [verdict(NFT_JUMP, chain: chain)])]
        case .forward:
            return [
                rule(baseChain, interfaceMatch(.iifname, interface) + [verdict(NFT_JUMP, chain: chain)]),
                rule(baseChain, interfaceMatch(.oifname, interface) + [verdict(NFT_JUMP, chain: chain)]),
            ]
        case .postrouting:
            let expressions = ipv4Only() + addressMatch(destination: false, IPv4Network(address: jobAddress, prefixLength: 32))
            return [rule(baseChain, expressions + [expression("masq")])]
        }
    }

    enum InterfaceKey { case iifname, oifname }

    static func expression(_ name: String) -> OpaquePointer {
        guard let expression = nftnl_expr_alloc(name) else { fatalError("libnftnl: no expression \(name)") }
        return expression
    }

    /// `iifname "NAME"` / `oifname "NAME"`: the name compared as the kernel's 16-byte, NUL-padded field.
    static func interfaceMatch(_ key: InterfaceKey, _ name: String) -> [OpaquePointer] {
        let meta = expression("meta")
        nftnl_expr_set_u32(meta, attr(NFTNL_EXPR_META_KEY), UInt32(key == .iifname ? NFT_META_IIFNAME.rawValue : NFT_META_OIFNAME.rawValue))
        nftnl_expr_set_u32(meta, attr(NFTNL_EXPR_META_DREG), UInt32(NFT_REG_1.rawValue))
        var padded = [UInt8](repeating: 0, count: Int(IFNAMSIZ))
        for (index, byte) in name.utf8.prefix(padded.count - 1).enumerated() { padded[index] = byte }
        return [meta, compare(padded)]
    }

    /// `meta nfproto ipv4`, so the address matches only ever look at IPv4 headers.
    static func ipv4Only() -> [OpaquePointer] {
        let meta = expression("meta")
        nftnl_expr_set_u32(meta, attr(NFTNL_EXPR_META_KEY), UInt32(NFT_META_NFPROTO.rawValue))
        nftnl_expr_set_u32(meta, attr(NFTNL_EXPR_META_DREG), UInt32(NFT_REG_1.rawValue))
        return [meta, compare([UInt8(NFPROTO_IPV4)])]
    }

    /// `ip daddr NET` / `ip saddr NET`: the address loaded from the network header, masked unless a /32.
    static func addressMatch(destination: Bool, _ network: IPv4Network) -> [OpaquePointer] {
        let payload = expression("payload")
        nftnl_expr_set_u32(payload, attr(NFTNL_EXPR_PAYLOAD_DREG), UInt32(NFT_REG_1.rawValue))
        nftnl_expr_set_u32(payload, attr(NFTNL_EXPR_PAYLOAD_BASE), UInt32(NFT_PAYLOAD_NETWORK_HEADER.rawValue))
        nftnl_expr_set_u32(payload, attr(NFTNL_EXPR_PAYLOAD_OFFSET), destination ? 16 : 12)
        nftnl_expr_set_u32(payload, attr(NFTNL_EXPR_PAYLOAD_LEN), 4)
        var expressions = [payload]
        if network.prefixLength < 32 {
            let bitwise = expression("bitwise")
            nftnl_expr_set_u32(bitwise, attr(NFTNL_EXPR_BITWISE_SREG), UInt32(NFT_REG_1.rawValue))
            nftnl_expr_set_u32(bitwise, attr(NFTNL_EXPR_BITWISE_DREG), UInt32(NFT_REG_1.rawValue))
            nftnl_expr_set_u32(bitwise, attr(NFTNL_EXPR_BITWISE_LEN), 4)
            let mask = IPv4Address(network.mask).octets
            let zero: [UInt8] = [0, 0, 0, 0]
            mask.withUnsafeBytes { _ = nftnl_expr_set(bitwise, attr(NFTNL_EXPR_BITWISE_MASK), $0.baseAddress, 4) }
            zero.withUnsafeBytes { _ = nftnl_expr_set(bitwise, attr(NFTNL_EXPR_BITWISE_XOR), $0.baseAddress, 4) }
            expressions.append(bitwise)
        }
        expressions.append(compare(network.address.octets))
        return expressions
    }

    /// `cmp eq` of register 1 with `data`.
    static func compare(_ data: [UInt8]) -> OpaquePointer {
        let compare = expression("cmp")
        nftnl_expr_set_u32(compare, attr(NFTNL_EXPR_CMP_SREG), UInt32(NFT_REG_1.rawValue))
        nftnl_expr_set_u32(compare, attr(NFTNL_EXPR_CMP_OP), UInt32(NFT_CMP_EQ.rawValue))
        data.withUnsafeBytes { _ = nftnl_expr_set(compare, attr(NFTNL_EXPR_CMP_DATA), $0.baseAddress, UInt32($0.count)) }
        return compare
    }

    /// `counter name "NAME"`.
    static func counterReference(_ name: String) -> OpaquePointer {
        let reference = expression("objref")
        nftnl_expr_set_u32(reference, attr(NFTNL_EXPR_OBJREF_IMM_TYPE), UInt32(NFT_OBJECT_COUNTER))
        nftnl_expr_set_str(reference, attr(NFTNL_EXPR_OBJREF_IMM_NAME), name)
        return reference
    }

    /// A verdict: `return`, or `jump CHAIN`.
    static func verdict(_ code: nft_verdicts, chain: String? = nil) -> OpaquePointer {
        let immediate = expression("immediate")
        nftnl_expr_set_u32(immediate, attr(NFTNL_EXPR_IMM_DREG), UInt32(NFT_REG_VERDICT.rawValue))
        nftnl_expr_set_u32(immediate, attr(NFTNL_EXPR_IMM_VERDICT), UInt32(bitPattern: code.rawValue))
        if let chain { nftnl_expr_set_str(immediate, attr(NFTNL_EXPR_IMM_CHAIN), chain) }
        return immediate
    }

    /// `reject with icmpx port-unreachable`.
    static func rejectPortUnreachable() -> OpaquePointer {
        let reject = expression("reject")
        nftnl_expr_set_u32(reject, attr(NFTNL_EXPR_REJECT_TYPE), UInt32(NFT_REJECT_ICMPX_UNREACH.rawValue))
        nftnl_expr_set_u8(reject, attr(NFTNL_EXPR_REJECT_CODE), UInt8(NFT_REJECT_ICMPX_PORT_UNREACH.rawValue))
        return reject
    }
}

/// libnftnl's attribute numbers, whether the header declares them in a named enum or an anonymous one.
func attr<Attribute: RawRepresentable>(_ attribute: Attribute) -> UInt16 where Attribute.RawValue: BinaryInteger {
    UInt16(attribute.rawValue)
}

func attr(_ attribute: Int) -> UInt16 { UInt16(attribute) }
