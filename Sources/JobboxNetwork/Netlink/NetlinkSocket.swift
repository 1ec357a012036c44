import CNetfilter
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A netlink socket bound to the network namespace the process was in when it was opened.
///
/// The kernel handles a request inside `sendmsg`, so every acknowledgement is queued by the time the send
/// returns; a receive timeout turns a reply that never comes (a bug) into an error instead of a hang.
///
/// Other processes can send datagrams to a netlink socket's port id too (one with `CAP_NET_ADMIN` over the
/// namespace, or any on a bus the kernel opens to unprivileged senders), and they write the message headers,
/// `nlmsg_pid` included. What netacct acts on (acknowledgements, errors, counters, the table's use count) must be
/// the kernel's, so a datagram whose source address, which the kernel fills in, is not port id 0 is dropped unread.
package final class NetlinkSocket {
    private let descriptor: Int32
    /// The port id the kernel gave the socket.
    package let portID: UInt32
    private var lastSequence: UInt32
    /// Where datagrams are received, one allocation per socket: the kernel fills a dump's datagrams up to 32 KiB.
    private var receiveBuffer = [UInt8](repeating: 0, count: 65536)

    /// Opens and binds a socket on `bus` (`NETLINK_ROUTE`, `NETLINK_NETFILTER`).
    package init(bus: Int32) throws(Errno) {
        let descriptor = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), bus)
        guard descriptor >= 0 else { throw Errno.last }
        // Port id 0 in bind: the kernel picks a free one, which getsockname then reports.
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        var size = socklen_t(MemoryLayout<sockaddr_nl>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(descriptor, generic, size) == 0 && getsockname(descriptor, generic, &size) == 0
            }
        }
        guard bound, size == socklen_t(MemoryLayout<sockaddr_nl>.size) else {
            let error = bound ? Errno.invalidArgument : Errno.last
            close(descriptor)
            throw error
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        self.descriptor = descriptor
        portID = address.nl_pid
        lastSequence = UInt32(truncatingIfNeeded: time(nil))
    }

    deinit { close(descriptor) }

    /// A fresh sequence number for the next request.
    package func nextSequence() -> UInt32 {
        lastSequence &+= 1
        return lastSequence
    }

    /// Sends `message` (which must ask for an ack) and waits for the kernel's answer.
    package func request(_ message: NetlinkMessage) throws(Errno) {
        try send(message.bytes)
        try awaitAcknowledgements(count: 1)
    }

    /// Sends `bytes` holding `replies` messages that ask for an ack (an nfnetlink batch), and waits for all the
    /// answers; the first error is thrown after every answer has been read. An error answering `batchSequence`,
    /// the batch's begin message, is the kernel refusing the batch as a whole (no `CAP_NET_ADMIN` in the
    /// namespace, no nf_tables): no other answer follows, so it is thrown at once.
    package func transact(_ bytes: [UInt8], replies: Int, refusedAllAs batchSequence: UInt32) throws(Errno) {
        try send(bytes)
        try awaitAcknowledgements(count: replies, refusedAllAs: batchSequence)
    }

    /// Sends a dump request and calls `each` with every message of the answer until the kernel's done.
    package func dump(_ message: NetlinkMessage, _ each: (NetlinkReply) -> Void) throws(Errno) {
        try exchange(message, answeredBy: .dump, each)
    }

    /// Sends a request answered by one message (`RTM_GETLINK` for one link) and calls `each` with it; an
    /// `NLMSG_ERROR` answer is thrown.
    package func query(_ message: NetlinkMessage, _ each: (NetlinkReply) -> Void) throws(Errno) {
        try exchange(message, answeredBy: .oneMessage, each)
    }

    /// How the kernel answers a request that is not a change: with messages up to `NLMSG_DONE`, or with one.
    private enum Answer { case dump, oneMessage }

    private func exchange(_ message: NetlinkMessage, answeredBy answer: Answer, _ each: (NetlinkReply) -> Void) throws(Errno) {
        try send(message.bytes)
        let sequence = message.sequence
        var finished = false
        while !finished {
            var failure: Errno?
            try receive { header, reply in
                guard header.nlmsg_seq == sequence, !finished else { return }
                switch Int32(header.nlmsg_type) {
                case NLMSG_DONE:
                    finished = true
                case NLMSG_ERROR:
                    let code = Self.errorCode(reply)
                    if code != 0 { failure = Errno(rawValue: code) }
                    finished = true
                case NLMSG_NOOP:
                    break
                default:
                    each(reply)
                    if answer == .oneMessage { finished = true }
                }
            }
            if let failure { throw failure }
        }
    }

    private func send(_ bytes: [UInt8]) throws(Errno) {
        var kernel = sockaddr_nl()
        kernel.nl_family = sa_family_t(AF_NETLINK)
        let sent = bytes.withUnsafeBytes { raw in
            withUnsafePointer(to: &kernel) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                    retryingOnInterrupt { sendto(descriptor, raw.baseAddress, raw.count, 0, address, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
                }
            }
        }
        if sent < 0 { throw Errno.last }
        if sent != bytes.count { throw Errno.ioError }
    }

    private func awaitAcknowledgements(count: Int, refusedAllAs batchSequence: UInt32? = nil) throws(Errno) {
        var answered = 0
        var firstError: Errno?
        var refusedAll = false
        while answered < count && !refusedAll {
            do {
                try receive { header, reply in
                    guard Int32(header.nlmsg_type) == NLMSG_ERROR else { return }
                    answered += 1
                    let code = Self.errorCode(reply)
                    if code != 0 && firstError == nil { firstError = Errno(rawValue: code) }
                    if code != 0 && header.nlmsg_seq == batchSequence { refusedAll = true }
                }
            } catch {
                // A receive timeout after an error: that error is the news, not the silence after it.
                throw firstError ?? error
            }
        }
        if let firstError { throw firstError }
    }

    /// Reads one datagram from the kernel and calls `each` for every message in it (the header, and the message
    /// with its payload); a datagram from any other sender is dropped.
    private func receive(_ each: (nlmsghdr, NetlinkReply) -> Void) throws(Errno) {
        let datagram = try receiveFromKernel()
        var offset = 0
        let headerSize = NetlinkMessage.headerSize
        // The kernel's own walk (nlmsg_ok, nlmsg_next): a header that fits, a length that covers it and fits.
        while datagram.count - offset >= headerSize {
            let header = datagram.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: nlmsghdr.self) }
            let length = Int(header.nlmsg_len)
            guard length >= headerSize, length <= datagram.count - offset else { break }
            if header.nlmsg_pid == portID || header.nlmsg_pid == 0 {
                each(header, NetlinkReply(type: header.nlmsg_type, payload: datagram[(offset + headerSize)..<(offset + length)]))
            }
            offset += (length + 3) & ~3
        }
    }

    /// The next datagram whose sender is the kernel; one cut short by the buffer is an error (`ENOSPC`, as libmnl
    /// reported it), not half an answer.
    private func receiveFromKernel() throws(Errno) -> [UInt8] {
        while true {
            var sender = sockaddr_nl()
            var flags: Int32 = 0
            var failure: Errno?
            let received = receiveBuffer.withUnsafeMutableBytes { buffer in
                withUnsafeMutablePointer(to: &sender) { senderPointer in
                    var vector = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
                    return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                        var message = msghdr()
                        message.msg_name = UnsafeMutableRawPointer(senderPointer)
                        message.msg_namelen = socklen_t(MemoryLayout<sockaddr_nl>.size)
                        message.msg_iov = vectorPointer
                        message.msg_iovlen = 1
                        let count = retryingOnInterrupt { recvmsg(descriptor, &message, 0) }
                        if count < 0 { failure = Errno.last }
                        flags = message.msg_flags
                        return count
                    }
                }
            }
            if let failure { throw failure }
            guard sender.nl_family == sa_family_t(AF_NETLINK), sender.nl_pid == 0 else { continue }
            if flags & Int32(MSG_TRUNC) != 0 { throw Errno.noSpace }
            return Array(receiveBuffer[0..<received])
        }
    }

    /// The positive errno of an `NLMSG_ERROR` message (0 for an ack): the payload starts with the negative errno.
    static func errorCode(_ reply: NetlinkReply) -> Int32 {
        guard reply.payload.count >= MemoryLayout<Int32>.size else { return EIO }
        let code = Array(reply.payload.prefix(4)).withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
        return 0 &- code
    }
}
