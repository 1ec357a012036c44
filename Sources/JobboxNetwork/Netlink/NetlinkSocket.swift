import CNetfilter
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A netlink socket (libmnl) bound to the network namespace the process was in when it was opened.
///
/// The kernel handles a request inside `sendmsg`, so every acknowledgement is queued by the time the send
/// returns; a receive timeout turns a reply that never comes (a bug) into an error instead of a hang.
package final class NetlinkSocket {
    private let socket: OpaquePointer
    /// The port id the kernel gave the socket.
    package let portID: UInt32
    private var lastSequence: UInt32

    /// Opens and binds a socket on `bus` (`NETLINK_ROUTE`, `NETLINK_NETFILTER`).
    package init(bus: Int32) throws(Errno) {
        guard let socket = mnl_socket_open2(bus, Int32(SOCK_CLOEXEC.rawValue)) else { throw Errno.last }
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let error = Errno.last
            mnl_socket_close(socket)
            throw error
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        _ = setsockopt(mnl_socket_get_fd(socket), SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        self.socket = socket
        portID = mnl_socket_get_portid(socket)
        lastSequence = UInt32(truncatingIfNeeded: time(nil))
    }

    deinit { mnl_socket_close(socket) }

    /// A fresh sequence number for the next request.
    package func nextSequence() -> UInt32 {
        lastSequence &+= 1
        return lastSequence
    }

    /// Sends `message` (which must ask for an ack) and waits for the kernel's answer.
    package func request(_ message: NetlinkMessage) throws(Errno) {
        try send(UnsafeRawPointer(message.header), count: message.length)
        try awaitAcknowledgements(count: 1)
    }

    /// Sends `count` bytes at `bytes` holding `replies` messages that ask for an ack, and waits for all the
    /// answers; the first error is thrown after every answer has been read.
    package func transact(_ bytes: UnsafeRawPointer, count: Int, replies: Int) throws(Errno) {
        try send(bytes, count: count)
        try awaitAcknowledgements(count: replies)
    }

    /// Sends a dump request and calls `each` with every message of the answer until the kernel's done.
    package func dump(_ message: NetlinkMessage, _ each: (UnsafePointer<nlmsghdr>) -> Void) throws(Errno) {
        try exchange(message, answeredBy: .dump, each)
    }

    /// Sends a request answered by one message (`RTM_GETLINK` for one link) and calls `each` with it; an
    /// `NLMSG_ERROR` answer is thrown.
    package func query(_ message: NetlinkMessage, _ each: (UnsafePointer<nlmsghdr>) -> Void) throws(Errno) {
        try exchange(message, answeredBy: .oneMessage, each)
    }

    /// How the kernel answers a request that is not a change: with messages up to `NLMSG_DONE`, or with one.
    private enum Answer { case dump, oneMessage }

    private func exchange(_ message: NetlinkMessage, answeredBy answer: Answer, _ each: (UnsafePointer<nlmsghdr>) -> Void) throws(Errno) {
        try send(UnsafeRawPointer(message.header), count: message.length)
        let sequence = message.sequence
        var finished = false
        while !finished {
            var failure: Errno?
            try receive { header in
                guard header.pointee.nlmsg_seq == sequence, !finished else { return }
                switch Int32(header.pointee.nlmsg_type) {
                case NLMSG_DONE:
                    finished = true
                case NLMSG_ERROR:
                    let code = Self.errorCode(header)
                    if code != 0 { failure = Errno(rawValue: code) }
                    finished = true
                case NLMSG_NOOP:
                    break
                default:
                    each(header)
                    if answer == .oneMessage { finished = true }
                }
            }
            if let failure { throw failure }
        }
    }

    private func send(_ bytes: UnsafeRawPointer, count: Int) throws(Errno) {
        let sent = mnl_socket_sendto(socket, bytes, count)
        if sent < 0 { throw Errno.last }
        if sent != count { throw Errno.ioError }
    }

    private func awaitAcknowledgements(count: Int) throws(Errno) {
        var answered = 0
        var firstError: Errno?
        while answered < count {
            try receive { header in
                guard Int32(header.pointee.nlmsg_type) == NLMSG_ERROR else { return }
                answered += 1
                let code = Self.errorCode(header)
                if code != 0 && firstError == nil { firstError = Errno(rawValue: code) }
            }
        }
        if let firstError { throw firstError }
    }

    /// Reads one datagram and calls `each` for every message in it.
    private func receive(_ each: (UnsafePointer<nlmsghdr>) -> Void) throws(Errno) {
        let capacity = 65536
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        let received = retryingOnInterrupt { mnl_socket_recvfrom(socket, buffer, capacity) }
        if received < 0 { throw Errno.last }
        var remaining = Int32(received)
        var header = UnsafePointer(buffer.assumingMemoryBound(to: nlmsghdr.self))
        while mnl_nlmsg_ok(header, remaining) {
            if header.pointee.nlmsg_pid == portID || header.pointee.nlmsg_pid == 0 { each(header) }
            header = UnsafePointer(mnl_nlmsg_next(header, &remaining))
        }
    }

    /// The positive errno of an `NLMSG_ERROR` message (0 for an ack).
    static func errorCode(_ header: UnsafePointer<nlmsghdr>) -> Int32 {
        guard header.pointee.nlmsg_len >= UInt32(MemoryLayout<nlmsghdr>.size + MemoryLayout<Int32>.size) else { return EIO }
        let code = mnl_nlmsg_get_payload(header).load(as: Int32.self)
        return -code
    }
}
