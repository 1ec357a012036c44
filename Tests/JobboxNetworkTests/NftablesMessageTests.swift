import CNetfilter
import Testing

@testable import JobboxCore
@testable import JobboxNetwork

#if canImport(Glibc)
import Glibc
#endif

/// The nftables back end's nfnetlink messages against what libnftnl 1.2.4 sent for the same job (the fixtures were
/// captured with strace from netacct when it still linked libnftnl), and the reading of the kernel's answers.
@Suite("netacct: nftables messages against libnftnl's bytes")
struct NftablesMessageTests {
    /// The job of the fixtures: `--job cap.job --internal 172.20.0.0/16,10.0.0.0/8 --deny-external`.
    static func plan() throws -> AccountingPlan {
        AccountingPlan(
            chain: "JOB_cap_job", interface: "jb_cap_job", jobAddress: IPv4Address(0x0AD5_0002),
            internalNetworks: try #require(IPv4Network.parseList("172.20.0.0/16,10.0.0.0/8")),
            jobSubnet: try #require(IPv4Network(parsing: "10.213.0.0/16")), denyExternal: true)
    }

    @Test("a job's install batch: table, counters, chain, rules (meta, cmp, payload, bitwise, objref, immediate, reject, masq)")
    func installBatch() throws {
        let batch = NftablesBackend.installBatch(try Self.plan(), sequence: 0)
        #expect(batch.message == (try hexFixture("nft-install-batch.hex")))
    }

    @Test("a job's removal batch: base chains before the job's chain, then the counters")
    func removalBatch() throws {
        let plan = try Self.plan()
        let chains = [plan.chain] + NftHook.allCases.map { $0.chainName(plan.chain) }
        let batch = NftablesBackend.removalBatch(chain: plan.chain, chains: chains, counters: plan.rules.map(\.counterName), sequence: 0)
        #expect(batch.message == (try hexFixture("nft-remove-batch.hex")))
        #expect(NftablesBackend.deleteTableBatch(sequence: 0).message == (try hexFixture("nft-delete-table.hex")))
    }

    @Test("look-ups by name and dumps")
    func lookUpsAndDumps() throws {
        let lookUps = [
            NftablesBackend.lookUpRequest(NFT_MSG_GETCHAIN, sequence: 1) { NftMessage.putChain($0, "JOB_cap_job") },
            NftablesBackend.lookUpRequest(NFT_MSG_GETOBJ, sequence: 2) { NftMessage.putCounter($0, "JOB_cap_job.OutgoingInternal.0") },
            NftablesBackend.lookUpRequest(NFT_MSG_GETTABLE, sequence: 3, NftMessage.putTable),
        ]
        #expect(lookUps.flatMap(\.bytes) == (try hexFixture("nft-lookups.hex")))
        let dumps = [
            NftablesBackend.dumpRequest(NFT_MSG_GETOBJ, sequence: 1) { NftMessage.putCounter($0, nil) },
            NftablesBackend.dumpRequest(NFT_MSG_GETCHAIN, sequence: 2) { NftMessage.putChain($0, nil) },
        ]
        #expect(dumps.flatMap(\.bytes) == (try hexFixture("nft-dumps.hex")))
    }

    /// The bytes of one expression in a message of its own, after the netlink header and `nfgenmsg`.
    static func encoded(_ expression: NftExpression) -> [UInt8] {
        let message = NftMessage.request(NFT_MSG_NEWRULE, flags: 0, sequence: 1)
        expression.put(into: message)
        return Array(message.bytes.dropFirst(20))
    }

    @Test("expressions encode as nf_tables.h lays them out")
    func expressions() {
        // jump to chain "J": immediate, verdict register 0, data { verdict { code -3 (NFT_JUMP), chain "J" } }.
        #expect(
            Self.encoded(.verdict(code: NFT_JUMP.rawValue, chain: "J")) == Self.name("immediate") + [
                0x24, 0x00, 0x02, 0x80,  // NFTA_EXPR_DATA (nested), 36 bytes
                0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,  //   NFTA_IMMEDIATE_DREG 0 (NFT_REG_VERDICT)
                0x18, 0x00, 0x02, 0x80,  //   NFTA_IMMEDIATE_DATA (nested), 24 bytes
                0x14, 0x00, 0x02, 0x80,  //     NFTA_DATA_VERDICT (nested), 20 bytes
                0x08, 0x00, 0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xFD,  //       NFTA_VERDICT_CODE -3, big-endian
                0x06, 0x00, 0x02, 0x00, 0x4A, 0x00, 0x00, 0x00,  //       NFTA_VERDICT_CHAIN "J"
            ])
        // reject with icmpx port-unreachable: type 2 (NFT_REJECT_ICMPX_UNREACH) as a big-endian 32-bit number, code
        // 1 (NFT_REJECT_ICMPX_PORT_UNREACH) as one byte.
        #expect(
            Self.encoded(NftRules.rejectPortUnreachable) == Self.name("reject") + [
                0x14, 0x00, 0x02, 0x80,  // NFTA_EXPR_DATA (nested), 20 bytes
                0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x02,  //   NFTA_REJECT_TYPE
                0x05, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00,  //   NFTA_REJECT_ICMP_CODE
            ])
        // masquerade takes no options: an empty data nest.
        #expect(Self.encoded(.masquerade) == Self.name("masq") + [0x04, 0x00, 0x02, 0x80])
    }

    /// `NFTA_EXPR_NAME` (1) holding `name` with its NUL, padded to 4 bytes.
    static func name(_ name: String) -> [UInt8] {
        let payload = Array(name.utf8) + [0]
        let padding = [UInt8](repeating: 0, count: (4 - payload.count % 4) % 4)
        return [UInt8(4 + payload.count), 0x00, 0x01, 0x00] + payload + padding
    }

    /// An answer as the kernel writes it: `nfgenmsg`, then the attributes `build` writes.
    static func reply(_ build: (NetlinkMessage) -> Void) -> NetlinkReply {
        let message = NftMessage.request(NFT_MSG_NEWOBJ, flags: 0, sequence: 1)
        build(message)
        return NetlinkReply(type: UInt16(NFNL_SUBSYS_NFTABLES << 8) | UInt16(NFT_MSG_NEWOBJ.rawValue), payload: message.bytes.dropFirst(16))
    }

    /// A counter's answer: table, name, type, and data with packets and bytes.
    static func counterReply(table: String = "jobbox", type: UInt32 = 1, name: String, bytes: UInt64) -> NetlinkReply {
        reply { message in
            message.put(Int32(NFTA_OBJ_TABLE.rawValue), string: table)
            message.put(Int32(NFTA_OBJ_NAME.rawValue), string: name)
            message.put(Int32(NFTA_OBJ_TYPE.rawValue), bigEndianU32: type)
            message.nest(Int32(NFTA_OBJ_DATA.rawValue)) {
                message.put(Int32(NFTA_COUNTER_BYTES.rawValue), bytes: withUnsafeBytes(of: bytes.bigEndian) { Array($0) })
                message.put(Int32(NFTA_COUNTER_PACKETS.rawValue), bytes: withUnsafeBytes(of: UInt64(3).bigEndian) { Array($0) })
            }
        }
    }

    @Test("answers: a counter's name and bytes, only of the jobbox table and of type counter; the table's use count; a chain's name")
    func answers() {
        let counter = NftMessage.counter(Self.counterReply(name: "JOB_x.OutgoingInternal.0", bytes: 0x1_0000_0002))
        #expect(counter?.name == "JOB_x.OutgoingInternal.0")
        #expect(counter?.bytes == 0x1_0000_0002)
        #expect(NftMessage.counter(Self.counterReply(table: "admin", name: "JOB_x.OutgoingInternal.0", bytes: 1)) == nil)
        #expect(NftMessage.counter(Self.counterReply(type: 2, name: "JOB_x.OutgoingInternal.0", bytes: 1)) == nil)
        let table = Self.reply { message in
            message.put(Int32(NFTA_TABLE_NAME.rawValue), string: "jobbox")
            message.put(Int32(NFTA_TABLE_FLAGS.rawValue), bigEndianU32: 0)
            message.put(Int32(NFTA_TABLE_USE.rawValue), bigEndianU32: 7)
        }
        #expect(NftMessage.tableUse(table) == 7)
        let chain = Self.reply { message in
            message.put(Int32(NFTA_CHAIN_TABLE.rawValue), string: "jobbox")
            message.put(Int32(NFTA_CHAIN_NAME.rawValue), string: "JOB_x.input")
        }
        #expect(NftMessage.chainName(chain) == "JOB_x.input")
        let otherTable = Self.reply { message in
            message.put(Int32(NFTA_CHAIN_TABLE.rawValue), string: "jobbox2")
            message.put(Int32(NFTA_CHAIN_NAME.rawValue), string: "JOB_x.input")
        }
        #expect(NftMessage.chainName(otherTable) == nil)
    }

    @Test("attributes: a length past the end stops the reading; numbers of the wrong size are not read; NLA_F_NESTED is masked")
    func malformedAttributes() {
        // USE (4 bytes, big-endian 5), then an attribute claiming 64 bytes of which 4 are there.
        let bytes: [UInt8] = [0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x05, 0x40, 0x00, 0x01, 0x00, 0x6A, 0x6F, 0x62, 0x00]
        let attributes = NetlinkAttributes(bytes[...])
        #expect(attributes.bigEndianU32(3) == 5)
        #expect(attributes[1] == nil)
        // A 2-byte "u32" and an attribute shorter than its own header.
        let short = NetlinkAttributes([0x06, 0x00, 0x03, 0x00, 0x00, 0x05, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00][...])
        #expect(short[3] != nil)
        #expect(short.bigEndianU32(3) == nil)
        #expect(short[1] == nil)
        let nested = NetlinkAttributes([0x0C, 0x00, 0x04, 0x80, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x09][...])
        #expect(nested.nested(4)?.bigEndianU32(1) == 9)
        // A message shorter than nfgenmsg has no attributes.
        #expect(NetlinkReply(type: 0, payload: [0x01, 0x00][...]).attributes(after: 4)[1] == nil)
    }

    @Test("an NLMSG_ERROR answer's errno: the negative number first in its payload; 0 is an acknowledgement; a short one is EIO")
    func errorAnswers() {
        let eexist = withUnsafeBytes(of: Int32(-EEXIST)) { Array($0) } + [UInt8](repeating: 0, count: 16)
        #expect(NetlinkSocket.errorCode(NetlinkReply(type: UInt16(NLMSG_ERROR), payload: eexist[...])) == EEXIST)
        #expect(NetlinkSocket.errorCode(NetlinkReply(type: UInt16(NLMSG_ERROR), payload: [0, 0, 0, 0][...])) == 0)
        #expect(NetlinkSocket.errorCode(NetlinkReply(type: UInt16(NLMSG_ERROR), payload: [0xEF, 0xFF][...])) == EIO)
    }
}
