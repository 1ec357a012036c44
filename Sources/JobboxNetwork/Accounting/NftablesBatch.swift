import CNetfilter
import JobboxCore
import SystemPackage

/// An nfnetlink batch: begin, the messages, end, sent in one datagram and applied by the kernel all or nothing.
final class NftablesBatch {
    private var bytes: [UInt8]
    private var sequence: UInt32
    private var acknowledged = 0
    /// The batch-begin message's sequence number, which the kernel answers only when it refuses the whole batch.
    private let beginSequence: UInt32

    init(sequence: UInt32) {
        self.sequence = sequence
        beginSequence = sequence &+ 1
        bytes = []
        bytes += NftMessage.batchBegin(sequence: nextSequence()).bytes
    }

    private func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    /// Appends one message of `type` (an `NFT_MSG_*`) whose attributes `build` writes; every message asks for an
    /// ack, so the kernel answers each (the batch's begin and end are not answered).
    func add(_ type: nf_tables_msg_types, flags: Int32, _ build: (NetlinkMessage) -> Void) {
        let message = NftMessage.request(type, flags: flags | NLM_F_ACK, sequence: nextSequence())
        build(message)
        bytes += message.bytes
        acknowledged += 1
    }

    /// The batch as sent, end included.
    var message: [UInt8] {
        bytes + NftMessage.batchEnd(sequence: sequence &+ 1).bytes
    }

    /// Ends the batch, sends it and waits for every message's answer.
    func send(on socket: NetlinkSocket) throws(Errno) {
        try socket.transact(message, replies: acknowledged, refusedAllAs: beginSequence)
    }
}
