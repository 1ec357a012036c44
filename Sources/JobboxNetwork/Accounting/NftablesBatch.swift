import CNetfilter
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// An nfnetlink batch: begin, the messages, end, sent in one `sendmsg` and applied by the kernel all or nothing.
final class NftablesBatch {
    private static let capacity = 256 * 1024
    private let buffer: UnsafeMutableRawPointer
    private var length = 0
    private var sequence: UInt32
    private var acknowledged = 0

    init(sequence: UInt32) {
        buffer = UnsafeMutableRawPointer.allocate(byteCount: Self.capacity, alignment: 16)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: Self.capacity)
        self.sequence = sequence
        let begin = nftnl_batch_begin((buffer + length).assumingMemoryBound(to: CChar.self), nextSequence())
        length += Int(begin?.pointee.nlmsg_len ?? 0)
    }

    deinit { buffer.deallocate() }

    private func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    /// Appends one message of `type` (an `NFT_MSG_*`) whose payload `build` writes; every message asks for an ack.
    func add(_ type: nf_tables_msg_types, flags: Int32, _ build: (UnsafeMutablePointer<nlmsghdr>) -> Void) {
        precondition(length + 4096 <= Self.capacity, "nftables batch is full")
        let cursor = (buffer + length).assumingMemoryBound(to: CChar.self)
        guard let header = nftnl_nlmsg_build_hdr(cursor, UInt16(type.rawValue), NftablesBackend.family, UInt16(flags | NLM_F_ACK), nextSequence()) else {
            fatalError("libnftnl: cannot build a message header")
        }
        build(header)
        length += (Int(header.pointee.nlmsg_len) + 3) & ~3
        acknowledged += 1
    }

    /// Ends the batch, sends it and waits for every message's answer.
    func send(on socket: NetlinkSocket) throws(Errno) {
        let end = nftnl_batch_end((buffer + length).assumingMemoryBound(to: CChar.self), nextSequence())
        length += Int(end?.pointee.nlmsg_len ?? 0)
        try socket.transact(UnsafeRawPointer(buffer), count: length, replies: acknowledged)
    }
}
