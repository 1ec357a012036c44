import CLinux
import JobboxCore
import JobboxNetacctClient

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// What `netacct --node` is told by the configuration.
package struct NodeServiceOptions: Sendable {
    /// NETWORK_ACCOUNTING_CGROUP (a clean cgroup path).
    package var accountingCgroup: String
    /// NETACCT_PIN_DIR.
    package var pinDirectory: String
    /// NETACCT_SOCKET.
    package var socketPath: String
    /// STATE_DIR (the service's lock: one service per node).
    package var stateDirectory: String
    /// NETWORK_INTERNAL.
    package var internalIPv4: [IPv4Network]
    package var internalIPv6: [IPv6Network]
    /// Seconds between sweeps of gone cgroups' entries.
    package var sweepSeconds = 10
    /// Milliseconds a client has from connect to the end of its answer.
    package var clientTimeoutMilliseconds: Int64 = 5000
    /// Clients served at once; more are told to come back.
    package var maximumClients = 64
    /// Clients of one uid other than root's served at once, so that one user holding connections open cannot
    /// keep everyone else's jobstat and cg-exec --join out.
    package var maximumClientsPerUser = 8
    /// Of `maximumClients`, the slots only root's clients (a prolog's or epilog's jobstat) may take.
    package var clientsReservedForRoot = 8

    package init(
        accountingCgroup: String, pinDirectory: String, socketPath: String, stateDirectory: String, internalIPv4: [IPv4Network], internalIPv6: [IPv6Network]
    ) {
        self.accountingCgroup = accountingCgroup
        self.pinDirectory = pinDirectory
        self.socketPath = socketPath
        self.stateDirectory = stateDirectory
        self.internalIPv4 = internalIPv4
        self.internalIPv6 = internalIPv6
    }
}

/// `netacct --node`: the node service. Loads and attaches the programs once (`NodeAccounting`), then serves the
/// socket in one thread with one poll loop until TERM, INT or HUP.
///
/// Trusted inputs: the configuration (root's), the kernel's answers (SO_PEERCRED, /proc, the cgroup tree, the
/// maps). Hostile: everything a client sends. A request is one line of at most 4096 bytes; anything else gets one
/// error line. Sockets are non-blocking and every client has a deadline, so a client that sends half a line and
/// hangs, or never reads its answer, holds one slot of `maximumClients` until its deadline and blocks nobody. One
/// user holds at most `maximumClientsPerUser` slots, and users together leave `clientsReservedForRoot` to root.
///
/// Shutting down (TERM, INT, HUP) closes the socket and removes its file; the pinned links and map stay, so the
/// programs go on counting and the next start takes over with nothing lost. `netacct --cleanup --stale`, with no
/// service running, detaches them and removes the pins.
package final class NodeService {
    let options: NodeServiceOptions
    let diagnostics: Diagnostics
    private var clients: [Int32: Client] = [:]

    /// One connection: who connected (SO_PEERCRED), what it sent so far, what is left to send, and its deadline.
    struct Client {
        let uid: uid_t
        var input: [UInt8] = []
        var output: [UInt8] = []
        var answered = false
        let deadline: Int64
    }

    package init(_ options: NodeServiceOptions, diagnostics: Diagnostics) {
        self.options = options
        self.diagnostics = diagnostics
    }

    /// Runs the service until a shutdown signal; returns the exit status.
    package func run() throws(JobboxError) -> Int32 {
        let signals = jb_shutdown_signalfd()
        guard signals >= 0 else { throw JobboxError.lastErrno("cannot set up the shutdown signals", nil) }
        defer { close(signals) }
        var lock = NodeLock(directory: options.stateDirectory + "/netacct")
        guard try lock.take() else {
            throw JobboxError.invalid("cannot start the node service", lock.path, "another netacct --node holds its lock")
        }
        defer { lock.release() }
        let cgroups = try NodeCgroups.current(accounting: options.accountingCgroup)
        guard let (cgroupFD, cgroupID) = try cgroups.open(options.accountingCgroup) else {
            throw JobboxError.invalid("cannot count the node", cgroups.directory(options.accountingCgroup), "NETWORK_ACCOUNTING_CGROUP does not exist")
        }
        defer { close(cgroupFD) }
        try NodePins.prepare(options.pinDirectory)
        let accounting = try NodeAccounting(
            internalIPv4: options.internalIPv4, internalIPv6: options.internalIPv6, pinDirectory: options.pinDirectory,
            firstLevel: UInt32(NodeCgroups.level(options.accountingCgroup)))
        defer { accounting.close() }
        try accounting.attach(cgroupFD: cgroupFD, cgroupID: cgroupID, path: cgroups.directory(options.accountingCgroup), pinDirectory: options.pinDirectory)
        let reader = NodeReader(cgroups: cgroups, map: NodeCountersMap(fd: accounting.countersFD))
        let listener = try NodeSocket.listen(at: options.socketPath)
        defer { NodeSocket.remove(listener, at: options.socketPath) }
        diagnostics.note(
            "counting \(cgroups.directory(options.accountingCgroup)) (cgroup id \(cgroupID)), pins in \(options.pinDirectory), serving \(options.socketPath)")
        loop(listener: listener, signals: signals, reader: reader)
        for fd in clients.keys { close(fd) }
        clients = [:]
        return 0
    }

    /// Serves until a shutdown signal.
    private func loop(listener: Int32, signals: Int32, reader: NodeReader) {
        var nextSweep = MonotonicClock.milliseconds()
        while true {
            let now = MonotonicClock.milliseconds()
            if now >= nextSweep {
                do {
                    try reader.sweep()
                } catch {
                    diagnostics.error(error.description)
                }
                nextSweep = now + Int64(options.sweepSeconds) * 1000
            }
            for (fd, client) in clients where client.deadline <= now { expire(fd) }
            var entries = [pollfd(fd: signals, events: Int16(POLLIN), revents: 0), pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            for (fd, client) in clients { entries.append(pollfd(fd: fd, events: Int16(client.answered ? POLLOUT : POLLIN), revents: 0)) }
            let wake = clients.values.map(\.deadline).reduce(nextSweep, min)
            let timeout = Int32(clamping: max(0, wake - MonotonicClock.milliseconds()))
            let ready = poll(&entries, nfds_t(entries.count), timeout)
            if ready < 0 {
                if errno == EINTR { continue }
                diagnostics.error(JobboxError.lastErrno("cannot wait for clients", nil).description)
                return
            }
            if entries[0].revents != 0, jb_read_signalfd(signals) != 0 { return }
            // Clients before new connections: a slot a client gave up (it closed) is free before the next one is
            // counted against the limits.
            for entry in entries.dropFirst(2) where entry.revents != 0 {
                guard clients[entry.fd] != nil else { continue }
                if clients[entry.fd]?.answered == true { flush(entry.fd) } else { receive(entry.fd, reader: reader) }
            }
            if entries[1].revents != 0 { accept(listener) }
        }
    }

    /// Takes every pending connection; one over the limits (`refusal(uid:open:options:)`) is told so and closed.
    private func accept(_ listener: Int32) {
        while true {
            let fd = jb_accept_nonblocking(listener)
            if fd < 0 { return }
            var uid: uid_t = 0
            guard jb_peer_uid(fd, &uid) == 0 else {
                close(fd)
                continue
            }
            var refusal = Self.refusal(uid: uid, open: clients.values.map(\.uid), options: options)
            if refusal != nil {
                // A client that closed since the last poll round still holds its slot: free those first.
                dropHungUp()
                refusal = Self.refusal(uid: uid, open: clients.values.map(\.uid), options: options)
            }
            if let refusal {
                let line = Array(refusal.line.utf8)
                _ = line.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                close(fd)
                continue
            }
            clients[fd] = Client(uid: uid, deadline: MonotonicClock.milliseconds() + options.clientTimeoutMilliseconds)
        }
    }

    /// Closes the clients whose peer has gone (POLLHUP): there is no one left to answer.
    private func dropHungUp() {
        var entries = clients.keys.map { pollfd(fd: $0, events: 0, revents: 0) }
        guard poll(&entries, nfds_t(entries.count), 0) > 0 else { return }
        for entry in entries where entry.revents & Int16(POLLHUP | POLLERR) != 0 {
            clients[entry.fd] = nil
            close(entry.fd)
        }
    }

    /// Why one more client of `uid` is not served while clients of the uids `open` are, or nil when it is.
    static func refusal(uid: uid_t, open: [uid_t], options: NodeServiceOptions) -> NetacctNodeRefusal? {
        guard open.count < options.maximumClients else {
            return NetacctNodeRefusal("the service is busy (\(options.maximumClients) clients); try again")
        }
        guard uid != 0 else { return nil }
        guard open.count < options.maximumClients - options.clientsReservedForRoot else {
            return NetacctNodeRefusal(
                "the service is busy (the last \(options.clientsReservedForRoot) of \(options.maximumClients) clients are root's); try again")
        }
        guard open.lazy.filter({ $0 == uid }).count < options.maximumClientsPerUser else {
            return NetacctNodeRefusal("uid \(uid) has \(options.maximumClientsPerUser) requests open, the most one user may; try again")
        }
        return nil
    }

    /// Reads what the client sent; once a line is complete (or the limit passed, or the client closed), answers.
    private func receive(_ fd: Int32, reader: NodeReader) {
        guard var client = clients[fd] else { return }
        var buffer = [UInt8](repeating: 0, count: NetacctNodeRequest.maximumLength + 1)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count > 0 {
                client.input += buffer[..<count]
                if client.input.contains(UInt8(ascii: "\n")) || client.input.count > NetacctNodeRequest.maximumLength { break }
                continue
            }
            if count == 0 {
                if client.input.isEmpty {
                    clients[fd] = nil
                    close(fd)
                    return
                }
                break
            }
            if errno == EINTR { continue }
            if errno == EAGAIN {
                clients[fd] = client
                return
            }
            clients[fd] = nil
            close(fd)
            return
        }
        let answer: Result<[ClassAd], NetacctNodeRefusal>
        switch request(in: client.input) {
        case .failure(let refusal): answer = .failure(refusal)
        case .success(.join(let path)): answer = NodeJoin.join(path, socket: fd, cgroups: reader.cgroups, reader: reader)
        case .success(let request): answer = PeerCgroup.of(socket: fd).flatMap { reader.answer(request, peer: $0) }
        }
        let text: String
        switch answer {
        case .failure(let refusal): text = refusal.line
        case .success(let ads): text = (try? ClassAdWriter.render(ads)) ?? NetacctNodeRefusal("cannot render the answer").line
        }
        client.output = Array(text.utf8)
        client.answered = true
        client.input = []
        _ = shutdown(fd, Int32(SHUT_RD))
        clients[fd] = client
        flush(fd)
    }

    /// The request in `input`: one line, newline-terminated, no longer than the limit.
    func request(in input: [UInt8]) -> Result<NetacctNodeRequest, NetacctNodeRefusal> {
        guard let end = input.firstIndex(of: UInt8(ascii: "\n")) else {
            if input.count > NetacctNodeRequest.maximumLength {
                return .failure(NetacctNodeRefusal("the request is longer than \(NetacctNodeRequest.maximumLength) bytes"))
            }
            return .failure(NetacctNodeRefusal("the request did not end with a newline"))
        }
        guard end < NetacctNodeRequest.maximumLength, end + 1 == input.count else {
            return .failure(
                NetacctNodeRefusal(
                    end + 1 == input.count ? "the request is longer than \(NetacctNodeRequest.maximumLength) bytes" : "one request per connection"))
        }
        guard let line = String(validating: input[..<end], as: UTF8.self) else { return .failure(NetacctNodeRefusal("the request is not UTF-8")) }
        return NetacctNodeRequest.parse(Substring(line))
    }

    /// Sends what is left of the answer; closes the connection when all is sent or the client is gone.
    private func flush(_ fd: Int32) {
        guard var client = clients[fd] else { return }
        while !client.output.isEmpty {
            let sent = client.output.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if sent > 0 {
                client.output.removeFirst(sent)
                continue
            }
            if sent < 0 && errno == EINTR { continue }
            if sent < 0 && errno == EAGAIN {
                clients[fd] = client
                return
            }
            break
        }
        clients[fd] = nil
        close(fd)
    }

    /// Ends a client at its deadline: one error line when it never got an answer (it may not read it), then close.
    private func expire(_ fd: Int32) {
        if let client = clients[fd], !client.answered {
            let line = Array(NetacctNodeRefusal("no complete request within \(options.clientTimeoutMilliseconds) ms").line.utf8)
            _ = line.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        }
        clients[fd] = nil
        close(fd)
    }
}
