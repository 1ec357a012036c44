import CNetfilter
import JobboxCore

/// The nfnetlink messages of the `inet jobbox` table: requests built attribute by attribute (in the order
/// libnftnl 1.2 wrote them, so a job's objects are the same bytes to the kernel as before), and the parts of the
/// kernel's answers netacct reads.
enum NftMessage {
    /// `nfgenmsg`'s size: every nfnetlink message has it between the netlink header and the attributes.
    static let familyHeaderSize = MemoryLayout<nfgenmsg>.size

    /// A request of `type` (`NFT_MSG_*`) for the table's family: message type `NFNL_SUBSYS_NFTABLES << 8 | type`,
    /// then `nfgenmsg` (version 0, resource id 0).
    static func request(_ type: nf_tables_msg_types, flags: Int32, sequence: UInt32) -> NetlinkMessage {
        let message = NetlinkMessage(type: UInt16(NFNL_SUBSYS_NFTABLES << 8) | UInt16(type.rawValue), flags: flags, sequence: sequence)
        message.putExtraHeader(nfgenmsg(nfgen_family: UInt8(NftablesBackend.family), version: UInt8(NFNETLINK_V0), res_id: 0))
        return message
    }

    /// The first message of a batch.
    static func batchBegin(sequence: UInt32) -> NetlinkMessage {
        batchDelimiter(UInt16(NLMSG_MIN_TYPE), sequence: sequence)
    }

    /// The last message of a batch.
    static func batchEnd(sequence: UInt32) -> NetlinkMessage {
        batchDelimiter(UInt16(NLMSG_MIN_TYPE) + 1, sequence: sequence)
    }

    /// `NFNL_MSG_BATCH_BEGIN` / `_END` (nfnetlink.h defines them as `NLMSG_MIN_TYPE` and `NLMSG_MIN_TYPE+1`,
    /// which Swift does not import): no family, the subsystem the batch is for as resource id (big-endian).
    private static func batchDelimiter(_ type: UInt16, sequence: UInt32) -> NetlinkMessage {
        let message = NetlinkMessage(type: type, flags: 0, sequence: sequence)
        message.putExtraHeader(nfgenmsg(nfgen_family: UInt8(AF_UNSPEC), version: UInt8(NFNETLINK_V0), res_id: UInt16(NFNL_SUBSYS_NFTABLES).bigEndian))
        return message
    }

    /// The table: `NFTA_TABLE_NAME`.
    static func putTable(_ message: NetlinkMessage) {
        message.put(Int32(NFTA_TABLE_NAME.rawValue), string: NftablesBackend.table)
    }

    /// A regular chain of the table (or, with no name, the filter for dumping the table's chains).
    static func putChain(_ message: NetlinkMessage, _ name: String?) {
        message.put(Int32(NFTA_CHAIN_TABLE.rawValue), string: NftablesBackend.table)
        if let name { message.put(Int32(NFTA_CHAIN_NAME.rawValue), string: name) }
    }

    /// A base chain at `hook`, accepting what it does not decide.
    static func putBaseChain(_ message: NetlinkMessage, _ name: String, hook: NftHook) {
        putChain(message, name)
        message.nest(Int32(NFTA_CHAIN_HOOK.rawValue)) {
            message.put(Int32(NFTA_HOOK_HOOKNUM.rawValue), bigEndianU32: hook.hookNumber)
            message.put(Int32(NFTA_HOOK_PRIORITY.rawValue), bigEndianU32: UInt32(bitPattern: hook.priority))
        }
        message.put(Int32(NFTA_CHAIN_POLICY.rawValue), bigEndianU32: UInt32(NF_ACCEPT))
        message.put(Int32(NFTA_CHAIN_TYPE.rawValue), string: hook.type)
    }

    /// A named counter of the table (or, with no name, the filter for dumping the table's counters); its data
    /// nest is empty, so a new counter starts at zero.
    static func putCounter(_ message: NetlinkMessage, _ name: String?) {
        message.put(Int32(NFTA_OBJ_TABLE.rawValue), string: NftablesBackend.table)
        if let name { message.put(Int32(NFTA_OBJ_NAME.rawValue), string: name) }
        message.put(Int32(NFTA_OBJ_TYPE.rawValue), bigEndianU32: UInt32(NFT_OBJECT_COUNTER))
        message.nest(Int32(NFTA_OBJ_DATA.rawValue)) {}
    }

    /// A rule, appended at the end of its chain: table, chain, the comment as user data, the expressions as a
    /// list of `NFTA_LIST_ELEM` nests.
    static func putRule(_ message: NetlinkMessage, _ rule: NftRule) {
        message.put(Int32(NFTA_RULE_TABLE.rawValue), string: NftablesBackend.table)
        message.put(Int32(NFTA_RULE_CHAIN.rawValue), string: rule.chain)
        if let comment = rule.comment { message.put(Int32(NFTA_RULE_USERDATA.rawValue), bytes: NftRules.commentUserData(comment)) }
        guard !rule.expressions.isEmpty else { return }
        message.nest(Int32(NFTA_RULE_EXPRESSIONS.rawValue)) {
            for expression in rule.expressions {
                message.nest(Int32(NFTA_LIST_ELEM.rawValue)) { expression.put(into: message) }
            }
        }
    }

    /// The attributes of a `NEWTABLE`, `NEWCHAIN` or `NEWOBJ` answer (from the kernel: `NetlinkSocket` takes no
    /// other sender's).
    static func attributes(_ reply: NetlinkReply) -> NetlinkAttributes {
        reply.attributes(after: familyHeaderSize)
    }

    /// The table's use count (`NFTA_TABLE_USE`); 0 when the answer has none.
    static func tableUse(_ reply: NetlinkReply) -> UInt32 {
        attributes(reply).bigEndianU32(Int32(NFTA_TABLE_USE.rawValue)) ?? 0
    }

    /// The chain's name, when the chain is the table's.
    static func chainName(_ reply: NetlinkReply) -> String? {
        let chain = attributes(reply)
        guard chain.string(Int32(NFTA_CHAIN_TABLE.rawValue)) == NftablesBackend.table else { return nil }
        return chain.string(Int32(NFTA_CHAIN_NAME.rawValue))
    }

    /// A named counter of the table: its name and its bytes (0 when the answer has none).
    static func counter(_ reply: NetlinkReply) -> (name: String, bytes: UInt64)? {
        let object = attributes(reply)
        guard object.string(Int32(NFTA_OBJ_TABLE.rawValue)) == NftablesBackend.table,
            object.bigEndianU32(Int32(NFTA_OBJ_TYPE.rawValue)) == UInt32(NFT_OBJECT_COUNTER),
            let name = object.string(Int32(NFTA_OBJ_NAME.rawValue))
        else { return nil }
        return (name, object.nested(Int32(NFTA_OBJ_DATA.rawValue))?.bigEndianU64(Int32(NFTA_COUNTER_BYTES.rawValue)) ?? 0)
    }
}
