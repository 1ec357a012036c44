import CNetfilter

/// One expression of an nftables rule, with the attributes the kernel keeps for it (nf_tables.h); every
/// register is register 1 (`NFT_REG_1`) and every number is in network byte order, as libnftnl 1.2 sent them.
enum NftExpression: Equatable {
    /// `meta KEY` into register 1 (`NFT_META_*`).
    case meta(key: UInt32)
    /// `length` bytes at `offset` in header `base` (`NFT_PAYLOAD_*`) into register 1.
    case payload(base: UInt32, offset: UInt32, length: UInt32)
    /// Register 1 becomes `(register 1 & mask) ^ xor`, over `mask.count` bytes.
    case bitwise(mask: [UInt8], xor: [UInt8])
    /// Register 1 equals `data`, or the rule ends here.
    case compare(equal: [UInt8])
    /// `counter name "NAME"`: a reference to the table's named counter.
    case counterReference(String)
    /// A verdict (`NFT_RETURN`, `NFT_JUMP` with its chain).
    case verdict(code: Int32, chain: String?)
    /// `reject` with `type` (`NFT_REJECT_*`) and `code`.
    case reject(type: UInt32, code: UInt8)
    /// `masquerade`.
    case masquerade

    /// The kernel's name of the expression type (`NFTA_EXPR_NAME`).
    var name: String {
        switch self {
        case .meta: return "meta"
        case .payload: return "payload"
        case .bitwise: return "bitwise"
        case .compare: return "cmp"
        case .counterReference: return "objref"
        case .verdict: return "immediate"
        case .reject: return "reject"
        case .masquerade: return "masq"
        }
    }

    /// Appends the expression's `NFTA_EXPR_NAME` and `NFTA_EXPR_DATA` (empty for `masq`, which takes no options).
    func put(into message: NetlinkMessage) {
        message.put(Int32(NFTA_EXPR_NAME.rawValue), string: name)
        message.nest(Int32(NFTA_EXPR_DATA.rawValue)) { putData(into: message) }
    }

    private static let register1 = UInt32(NFT_REG_1.rawValue)

    private func putData(into message: NetlinkMessage) {
        switch self {
        case .meta(let key):
            message.put(Int32(NFTA_META_KEY.rawValue), bigEndianU32: key)
            message.put(Int32(NFTA_META_DREG.rawValue), bigEndianU32: Self.register1)
        case .payload(let base, let offset, let length):
            message.put(Int32(NFTA_PAYLOAD_DREG.rawValue), bigEndianU32: Self.register1)
            message.put(Int32(NFTA_PAYLOAD_BASE.rawValue), bigEndianU32: base)
            message.put(Int32(NFTA_PAYLOAD_OFFSET.rawValue), bigEndianU32: offset)
            message.put(Int32(NFTA_PAYLOAD_LEN.rawValue), bigEndianU32: length)
        case .bitwise(let mask, let xor):
            message.put(Int32(NFTA_BITWISE_SREG.rawValue), bigEndianU32: Self.register1)
            message.put(Int32(NFTA_BITWISE_DREG.rawValue), bigEndianU32: Self.register1)
            message.put(Int32(NFTA_BITWISE_LEN.rawValue), bigEndianU32: UInt32(mask.count))
            Self.putValue(Int32(NFTA_BITWISE_MASK.rawValue), mask, into: message)
            Self.putValue(Int32(NFTA_BITWISE_XOR.rawValue), xor, into: message)
        case .compare(let data):
            message.put(Int32(NFTA_CMP_SREG.rawValue), bigEndianU32: Self.register1)
            message.put(Int32(NFTA_CMP_OP.rawValue), bigEndianU32: UInt32(NFT_CMP_EQ.rawValue))
            Self.putValue(Int32(NFTA_CMP_DATA.rawValue), data, into: message)
        case .counterReference(let name):
            message.put(Int32(NFTA_OBJREF_IMM_TYPE.rawValue), bigEndianU32: UInt32(NFT_OBJECT_COUNTER))
            // Without the NUL, as libnftnl sent it (`mnl_attr_put_str`): the kernel takes the name either way.
            message.put(Int32(NFTA_OBJREF_IMM_NAME.rawValue), bytes: Array(name.utf8))
        case .verdict(let code, let chain):
            message.put(Int32(NFTA_IMMEDIATE_DREG.rawValue), bigEndianU32: UInt32(NFT_REG_VERDICT.rawValue))
            message.nest(Int32(NFTA_IMMEDIATE_DATA.rawValue)) {
                message.nest(Int32(NFTA_DATA_VERDICT.rawValue)) {
                    message.put(Int32(NFTA_VERDICT_CODE.rawValue), bigEndianU32: UInt32(bitPattern: code))
                    if let chain { message.put(Int32(NFTA_VERDICT_CHAIN.rawValue), string: chain) }
                }
            }
        case .reject(let type, let code):
            message.put(Int32(NFTA_REJECT_TYPE.rawValue), bigEndianU32: type)
            message.put(Int32(NFTA_REJECT_ICMP_CODE.rawValue), u8: code)
        case .masquerade:
            break
        }
    }

    /// A constant as the kernel takes it: a nest `type` holding `NFTA_DATA_VALUE`.
    private static func putValue(_ type: Int32, _ value: [UInt8], into message: NetlinkMessage) {
        message.nest(type) { message.put(Int32(NFTA_DATA_VALUE.rawValue), bytes: value) }
    }
}
