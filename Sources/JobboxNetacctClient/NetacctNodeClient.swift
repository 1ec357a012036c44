import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Asks the node service (`netacct --node`) over its Unix socket: what `netacct --show` (unprivileged) and
/// `jobstat` use. One request per connection; the service closes it after the answer.
///
/// Trusted inputs: the answer is only parsed as ClassAd text and its `Network*` attributes copied; it is never
/// acted on. The socket path comes from the configuration.
package struct NetacctNodeClient: Sendable {
    /// The socket's path (`NETACCT_SOCKET`).
    package let socketPath: String
    /// How long a request may take in all, in milliseconds.
    package var timeoutMilliseconds: Int32 = 5000
    /// Answers larger than this are cut off (and refused as incomplete).
    package static let maximumAnswer = 16 << 20

    package init(socketPath: String) { self.socketPath = socketPath }

    /// Why an answer could not be had.
    package enum Failure: Error, Sendable, Equatable {
        /// No service listens there (no socket, or nobody accepting): the node does not count by cgroup.
        case unavailable(String)
        /// The service answered with an error line.
        case refused(String)
        /// The exchange broke (timeout, truncated answer).
        case broken(String)
    }

    /// The ads answering `request`.
    package func ask(_ request: NetacctNodeRequest) throws(Failure) -> [ClassAd] {
        let text = try exchange(request.line)
        let ads = ClassAdReader.parseAll(text)
        if let first = ads.first, let reason = first.string(NetacctNodeRequest.errorAttribute) { throw .refused(reason) }
        return ads
    }

    /// Sends `line` and reads the answer to the end.
    func exchange(_ line: String) throws(Failure) -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .unavailable("cannot make a socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw .unavailable("\(socketPath): the path is too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in pathBytes.enumerated() { buffer[index] = byte }
        }
        let deadline = MonotonicClock.milliseconds() + Int64(timeoutMilliseconds)
        // A Unix socket's connect waits only while the service's backlog is full, for at most SO_SNDTIMEO.
        var limit = timeval(tv_sec: Int(timeoutMilliseconds / 1000), tv_usec: Int(timeoutMilliseconds % 1000) * 1000)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if connected != 0 { throw .unavailable("\(socketPath): \(String(cString: strerror(errno)))") }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var output = Array(line.utf8)[...]
        while !output.isEmpty {
            let sent = output.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent > 0 {
                output = output.dropFirst(sent)
            } else if sent < 0 && (errno == EAGAIN || errno == EINTR) {
                try wait(fd, for: Int16(POLLOUT), until: deadline)
            } else {
                throw .broken("cannot send the request to \(socketPath): \(String(cString: strerror(errno)))")
            }
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                answer += buffer[..<count]
                if answer.count > Self.maximumAnswer { throw .broken("the answer of \(socketPath) is longer than \(Self.maximumAnswer) bytes") }
            } else if count == 0 {
                break
            } else if errno == EAGAIN || errno == EINTR {
                try wait(fd, for: Int16(POLLIN), until: deadline)
            } else {
                throw .broken("cannot read the answer of \(socketPath): \(String(cString: strerror(errno)))")
            }
        }
        return String(decoding: answer, as: UTF8.self)
    }

    private func wait(_ fd: Int32, for events: Int16, until deadline: Int64) throws(Failure) {
        while true {
            let left = deadline - MonotonicClock.milliseconds()
            guard left > 0 else { throw .broken("\(socketPath) did not answer within \(timeoutMilliseconds) ms") }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&entry, 1, Int32(left))
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw .broken("cannot wait for \(socketPath): \(String(cString: strerror(errno)))") }
        }
    }
}
