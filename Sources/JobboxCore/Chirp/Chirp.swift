import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Where the starter's chirp proxy listens: the `host port cookie` line of `$_CONDOR_CHIRP_CONFIG`.
package struct ChirpConfig: Sendable, Equatable {
    /// The proxy's host (usually the execute node itself).
    package let host: String
    /// Its TCP port.
    package let port: UInt16
    /// The cookie that authenticates this job.
    package let cookie: String

    /// Parses the file's text.
    package init?(parsing text: String) {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" })
        guard words.count >= 3, let port = UInt16(words[1]) else { return nil }
        host = String(words[0])
        self.port = port
        cookie = String(words[2])
    }

    /// Reads the file `$_CONDOR_CHIRP_CONFIG` names.
    package static func load(environment: Environment) throws(JobboxError) -> ChirpConfig {
        guard let path = environment["_CONDOR_CHIRP_CONFIG"], !path.isEmpty else {
            throw JobboxError.invalid("cannot chirp", nil, "$_CONDOR_CHIRP_CONFIG is not set (the job needs +WantIOProxy = true)")
        }
        // The job writes this file. Root never reads it (see ChirpAsJob); for everyone, a FIFO, device or huge
        // file is refused instead of waited on or read whole.
        let text = try GuardedFile.readText(path, limit: 4096, for: "cannot read chirp configuration")
        guard let config = ChirpConfig(parsing: text) else {
            throw JobboxError.invalid("cannot read chirp configuration", path, "expected 'host port cookie'")
        }
        return config
    }
}

/// How attributes reach the job's ad.
package enum ChirpUpdate: Sendable {
    /// `set_job_attr`: at once, through the shadow to the schedd (needs `+WantIOProxy = true`).
    case immediate
    /// `set_job_attr_delayed`: with the starter's next update; names must start with `Chirp`, so they are prefixed.
    case delayed

    /// The name under which `attribute` is published.
    package func publishedName(_ attribute: String) -> String {
        switch self {
        case .immediate: return attribute
        case .delayed: return attribute.lowercased().hasPrefix("chirp") ? attribute : "Chirp" + attribute
        }
    }
}

/// A client of HTCondor's chirp protocol, enough to publish attributes into the running job's ad.
///
/// The protocol is line-based: `cookie <c>` authenticates, then `set_job_attr <name> <expression>` per attribute;
/// each request is answered by a line holding a status (0 for success, negative chirp error codes). Within a
/// word, backslash, space, tab, CR and LF are escaped with a backslash.
package struct ChirpClient {
    private let socket: FileDescriptor
    private var pending: [UInt8] = []

    private let deadline: Int64

    /// Longest request line the proxy accepts.
    static let lineMax = 5120

    /// Seconds one publication may take in all (resolve, connect, every request and its answer): a proxy that
    /// never answers costs the tool this much, not its run.
    package static let timeout = 10

    /// Which of the proxy's addresses may be connected to.
    package enum Reach: Sendable {
        /// Any.
        case any
        /// Loopback addresses only (127.0.0.0/8, ::1): nothing leaves the host. `publish` throws
        /// `notLoopback` when the proxy has no such address.
        case loopbackOnly
    }

    /// The reason `publish` gives, with `.loopbackOnly`, for a proxy that is not on loopback.
    package static let notLoopback = "the proxy is not on a loopback address"

    /// Publishes every attribute of `ad` over one connection: connect, authenticate, one request per attribute,
    /// all within `timeout` seconds.
    package static func publish(_ ad: ClassAd, update: ChirpUpdate, config: ChirpConfig, reach: Reach = .any) throws(JobboxError) {
        let deadline = MonotonicClock.milliseconds() + Int64(timeout) * 1000
        var client = ChirpClient(socket: try connect(host: config.host, port: config.port, reach: reach, deadline: deadline), deadline: deadline)
        defer { try? client.socket.close() }
        try client.request("cookie \(config.cookie)\n", what: "authenticate")
        for (name, value) in ad.attributes {
            let expression: String
            do {
                expression = try ClassAdWriter.renderValue(value, of: name)
            } catch {
                throw JobboxError.invalid("cannot chirp attribute", name, error.reason)
            }
            let verb = update == .immediate ? "set_job_attr" : "set_job_attr_delayed"
            try client.request("\(verb) \(quote(update.publishedName(name))) \(quote(expression))\n", what: "set \(name)")
        }
    }

    /// Publishes through the proxy `$_CONDOR_CHIRP_CONFIG` names in `environment`. As root this process does
    /// not read that file or connect: a copy of the tool does, as the job's user, from `networkNamespace` (an
    /// open `/proc/PID/ns/net`, nil: this process's), see `ChirpAsJob`.
    package static func publish(_ ad: ClassAd, update: ChirpUpdate, environment: Environment, networkNamespace: Int32? = nil) throws(JobboxError) {
        if GuardedPath.isPrivileged {
            try ChirpAsJob.publish(ad, update: update, environment: environment, networkNamespace: networkNamespace)
        } else {
            try publish(ad, update: update, config: ChirpConfig.load(environment: environment))
        }
    }

    private init(socket: FileDescriptor, deadline: Int64) {
        self.socket = socket
        self.deadline = deadline
    }

    /// Waits until `fd` is ready for `events` or the deadline passes (then: timed out).
    private static func waitReady(_ fd: Int32, _ events: Int16, deadline: Int64, what: String) throws(JobboxError) {
        while true {
            let left = deadline - MonotonicClock.milliseconds()
            guard left > 0 else { throw JobboxError.invalid("cannot chirp", what, "the proxy did not answer within \(timeout) s") }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&entry, 1, Int32(clamping: left))
            if ready > 0 { return }
            // EINTR: the loop looks at the deadline again before it polls again.
            if ready < 0 && errno != EINTR { throw JobboxError.lastErrno("cannot chirp", what) }
        }
    }

    /// Escapes a word for a chirp request line.
    package static func quote(_ word: String) -> String {
        var result = ""
        for character in word {
            if character == "\\" || character == " " || character == "\n" || character == "\t" || character == "\r" { result.append("\\") }
            result.append(character)
        }
        return result
    }

    private mutating func request(_ line: String, what: String) throws(JobboxError) {
        guard line.utf8.count <= ChirpClient.lineMax else {
            throw JobboxError.invalid("cannot chirp", what, "the request is longer than \(ChirpClient.lineMax) bytes")
        }
        do throws(Errno) {
            try socket.writeText(line)
        } catch {
            throw JobboxError.system("cannot chirp", what, error)
        }
        let reply = try readLine(what: what)
        guard let status = Int(reply) else {
            throw JobboxError.invalid("cannot chirp", what, "the proxy answered '\(reply)'")
        }
        if status < 0 {
            throw JobboxError.invalid("cannot chirp", what, ChirpClient.errorText(status))
        }
    }

    private mutating func readLine(what: String) throws(JobboxError) -> String {
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return line.trimmingASCIISpaces()
            }
            if pending.count > ChirpClient.lineMax {
                throw JobboxError.invalid("cannot chirp", what, "the proxy's answer is too long")
            }
            let count: Int
            do {
                try Self.waitReady(socket.rawValue, Int16(POLLIN), deadline: deadline, what: what)
                count = try withUnsafeTemporaryAllocation(byteCount: 512, alignment: 1) { buffer in
                    let n = try socket.read(into: buffer, retryOnInterrupt: true)
                    pending.append(contentsOf: buffer[0..<n])
                    return n
                }
            } catch let error as JobboxError {
                throw error
            } catch {
                throw JobboxError.system("cannot chirp", what, (error as? Errno) ?? .ioError)
            }
            if count == 0 { throw JobboxError.invalid("cannot chirp", what, "the proxy closed the connection") }
        }
    }

    /// The text HTCondor's chirp client gives each error code.
    static func errorText(_ status: Int) -> String {
        switch status {
        case -1: return "the client has not authenticated its identity (wrong cookie)"
        case -2: return "not authorized (does the job have +WantIOProxy = true?)"
        case -3: return "there is no object by that name"
        case -5: return "the request is too big"
        case -8: return "the form of the request is invalid"
        case -11: return "a temporary condition prevented the request"
        default: return "chirp error \(status)"
        }
    }

    /// Whether `address` is a loopback address (127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104).
    static func isLoopback(_ address: UnsafePointer<sockaddr>) -> Bool {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) >> 24 == 127 }
        case AF_INET6:
            return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                withUnsafeBytes(of: pointer.pointee.sin6_addr) { bytes in
                    let loopback = bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1
                    let mapped = bytes.prefix(10).allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF && bytes[12] == 127
                    return loopback || mapped
                }
            }
        default:
            return false
        }
    }

    private static func connect(host: String, port: UInt16, reach: Reach, deadline: Int64) throws(JobboxError) -> FileDescriptor {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let first = result else {
            throw JobboxError.invalid("cannot resolve chirp proxy", host, String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(result) }
        var lastError = Errno.noRouteToHost
        var entry: UnsafeMutablePointer<addrinfo>? = first
        var tried = 0
        while let info = entry {
            if reach == .loopbackOnly, info.pointee.ai_addr == nil || !isLoopback(info.pointee.ai_addr) {
                entry = info.pointee.ai_next
                continue
            }
            tried += 1
            // Non-blocking, so a connect that is never answered (a firewall that drops) ends at the deadline.
            let fd = Glibc.socket(
                info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), info.pointee.ai_protocol)
            if fd >= 0 {
                if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return FileDescriptor(rawValue: fd) }
                lastError = Errno.last
                if lastError == .nowInProgress {
                    try waitReady(fd, Int16(POLLOUT), deadline: deadline, what: "\(host):\(port)")
                    var failure: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    if getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) == 0 && failure == 0 { return FileDescriptor(rawValue: fd) }
                    lastError = Errno(rawValue: failure == 0 ? errno : failure)
                }
                close(fd)
            } else {
                lastError = Errno.last
            }
            entry = info.pointee.ai_next
        }
        if tried == 0 && reach == .loopbackOnly { throw JobboxError.invalid("cannot connect to chirp proxy", "\(host):\(port)", notLoopback) }
        throw JobboxError.system("cannot connect to chirp proxy", "\(host):\(port)", lastError)
    }
}
