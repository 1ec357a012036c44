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

/// A rule of a chain of the table: its expressions in order, and an optional comment.
struct NftRule: Equatable {
    let chain: String
    let comment: String?
    let expressions: [NftExpression]
}

/// The rules netacct puts in a job's chains.
enum NftRules {
    /// A rule in `chain` of the table, with an optional comment (nft shows it as `comment "..."`).
    static func rule(_ chain: String, comment: String? = nil, _ expressions: [NftExpression]) -> NftRule {
        NftRule(chain: chain, comment: comment, expressions: expressions)
    }

    /// The rule's user data as nft reads it: one TLV, type `NFTNL_UDATA_RULE_COMMENT` (0), a length byte, the
    /// text with its NUL (nft keeps comments to 128 bytes).
    static func commentUserData(_ comment: String) -> [UInt8] {
        let text = Array(comment.utf8.prefix(127)) + [0]
        return [0, UInt8(text.count)] + text
    }

    /// A counting rule: `iifname IF [ip daddr NET]` (outgoing) or `oifname IF [ip saddr NET]` (incoming),
    /// `counter name C`, then `return` or `reject`.
    static func accounting(_ rule: AccountingRule, chain: String, interface: String) -> NftRule {
        var expressions = interfaceMatch(rule.trafficClass.isOutgoing ? .iifname : .oifname, interface) + ipv4Only()
        if let remote = rule.remote, remote.prefixLength > 0 {
            expressions += addressMatch(destination: rule.trafficClass.isOutgoing, remote)
        }
        expressions.append(counterReference(rule.counterName))
        expressions.append(rule.reject ? rejectPortUnreachable : verdict(NFT_RETURN))
        return self.rule(chain, comment: rule.trafficClass.rawValue, expressions)
    }

    /// The rules of one base chain: jumps to the job's chain, or the masquerade of its address.
    static func hookRules(_ hook: NftHook, chain: String, baseChain: String, interface: String, jobAddress: IPv4Address) -> [NftRule] {
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
            return [rule(baseChain, expressions + [.masquerade])]
        }
    }

    enum InterfaceKey { case iifname, oifname }

    /// `iifname "NAME"` / `oifname "NAME"`: the name compared as the kernel's 16-byte, NUL-padded field.
    static func interfaceMatch(_ key: InterfaceKey, _ name: String) -> [NftExpression] {
        let meta = NftExpression.meta(key: UInt32(key == .iifname ? NFT_META_IIFNAME.rawValue : NFT_META_OIFNAME.rawValue))
        var padded = [UInt8](repeating: 0, count: Int(IFNAMSIZ))
        for (index, byte) in name.utf8.prefix(padded.count - 1).enumerated() { padded[index] = byte }
        return [meta, .compare(equal: padded)]
    }

    /// `meta nfproto ipv4`, so the address matches only ever look at IPv4 headers.
    static func ipv4Only() -> [NftExpression] {
        [.meta(key: UInt32(NFT_META_NFPROTO.rawValue)), .compare(equal: [UInt8(NFPROTO_IPV4)])]
    }

    /// `ip daddr NET` / `ip saddr NET`: the address loaded from the network header, masked unless a /32.
    static func addressMatch(destination: Bool, _ network: IPv4Network) -> [NftExpression] {
        var expressions = [NftExpression.payload(base: UInt32(NFT_PAYLOAD_NETWORK_HEADER.rawValue), offset: destination ? 16 : 12, length: 4)]
        if network.prefixLength < 32 {
            expressions.append(.bitwise(mask: IPv4Address(network.mask).octets, xor: [0, 0, 0, 0]))
        }
        expressions.append(.compare(equal: network.address.octets))
        return expressions
    }

    /// `counter name "NAME"`.
    static func counterReference(_ name: String) -> NftExpression {
        .counterReference(name)
    }

    /// A verdict: `return`, or `jump CHAIN`.
    static func verdict(_ code: nft_verdicts, chain: String? = nil) -> NftExpression {
        .verdict(code: code.rawValue, chain: chain)
    }

    /// `reject with icmpx port-unreachable`.
    static let rejectPortUnreachable = NftExpression.reject(
        type: UInt32(NFT_REJECT_ICMPX_UNREACH.rawValue), code: UInt8(NFT_REJECT_ICMPX_PORT_UNREACH.rawValue))
}
