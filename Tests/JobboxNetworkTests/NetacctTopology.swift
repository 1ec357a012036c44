import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxNetwork

/// A test network made only of namespaces this test creates, so the host's links, routes and firewall are never
/// touched: netacct runs inside "node" (`ip netns exec`), which routes between the job, a "campus" host on an
/// internal network and an "internet" host on an external one. With the bpf back end the job runs in "node"
/// itself (no veth) and talks to both hosts directly, over IPv4 and IPv6 (fd20::/64 is internal, 2001:db8:18::/64
/// external).
///
/// ```
///   job (netacct's namespace)            node                        campus 172.20.0.2/24 fd20::2/64
///   eth0 10.213.N.2 <-- veth --> jb_<id> 10.213.N.1   c0 172.20.0.1 <---> c1
///                                                        fd20::1
///                                                     i0 198.18.0.1 <---> i1  internet 198.18.0.2/24
///                                                        2001:db8:18::1             2001:db8:18::2/64
/// ```
///
/// The node also holds an admin's rules in legacy iptables and in nftables, so a run is seen to leave other
/// rules alone and the before/after comparisons compare something.
final class NetacctTopology {
    static let campusAddress = "172.20.0.2"
    static let internetAddress = "198.18.0.2"
    static let internalNetworks = "172.20.0.0/16"
    static let campusAddress6 = "fd20::2"
    static let internetAddress6 = "2001:db8:18::2"
    /// The internal networks of both families (the veth back ends ignore the IPv6 one).
    static let internalNetworks6 = "172.20.0.0/16,fd00::/8"
    static let port = 7000
    static let peerScript = TestSupport.fixtures + "/netacct/peer.py"
    static let python = "/usr/bin/python3"

    let node: String
    let campus: String
    let internet: String
    let directory: TestSupport.TemporaryDirectory
    /// `STATE_DIR`: netacct only uses one that root alone can write, which /tmp is not.
    let state: ExecuteDirectory
    let configPath: String
    private var servers: [BackgroundRun] = []

    /// Creates the namespaces (named `prefix` and a unique suffix), links, addresses, routes and the admin's rules;
    /// removes what it made on failure.
    init(prefix namePrefix: String = "na") throws {
        let prefix = TestSupport.uniqueName(namePrefix)
        node = prefix + "n"
        campus = prefix + "c"
        internet = prefix + "i"
        directory = try TestSupport.TemporaryDirectory("netacct-test")
        configPath = directory.path + "/jobbox.conf"
        do {
            state = try ExecuteDirectory("jbstate")
        } catch {
            directory.remove()
            throw error
        }
        do {
            try directory.write("jobbox.conf", "STATE_DIR = \(state.path)\n")
            try build()
        } catch {
            remove()
            throw error
        }
    }

    private func build() throws {
        for name in [node, campus, internet] {
            try must(["ip", "netns", "add", name])
            try must(["ip", "-n", name, "link", "set", "lo", "up"])
        }
        // A new namespace starts with the host's IPv4 forwarding (net.core.devconf_inherit_init_net's default), so
        // the node's would be whatever this machine's is. A site's node that runs netacct has it on (netacct turns
        // it on once, with a warning that has its own test): the tests start from that, on any machine.
        try must(["ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for (peer, near, far, network, network6) in [(campus, "c0", "c1", "172.20.0", "fd20:"), (internet, "i0", "i1", "198.18.0", "2001:db8:18:")] {
            try must(["ip", "-n", node, "link", "add", near, "type", "veth", "peer", "name", far, "netns", peer])
            // nodad: the addresses are usable at once, with no duplicate address detection to wait for.
            try must(["ip", "-n", node, "-6", "addr", "add", "\(network6):1/64", "dev", near, "nodad"])
            try must(["ip", "-n", peer, "-6", "addr", "add", "\(network6):2/64", "dev", far, "nodad"])
            try must(["ip", "-n", node, "addr", "add", "\(network).1/24", "dev", near])
            try must(["ip", "-n", node, "link", "set", near, "up"])
            try must(["ip", "-n", peer, "addr", "add", "\(network).2/24", "dev", far])
            try must(["ip", "-n", peer, "link", "set", far, "up"])
            try must(["ip", "-n", peer, "route", "add", "default", "via", "\(network).1"])
        }
        // An admin's rules: one in each legacy table netacct writes, and an nftables table of its own.
        try must(["ip", "netns", "exec", node, "iptables-legacy", "-A", "FORWARD", "-s", "192.0.2.1", "-j", "DROP"])
        try must(["ip", "netns", "exec", node, "iptables-legacy", "-A", "INPUT", "-s", "192.0.2.1", "-j", "DROP"])
        try must(["ip", "netns", "exec", node, "iptables-legacy", "-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.1", "-j", "MASQUERADE"])
        try must([
            "ip", "netns", "exec", node, "nft",
            "add table inet admin; add chain inet admin forward { type filter hook forward priority 0; }; add rule inet admin forward ip saddr 192.0.2.1 drop",
        ])
    }

    /// Stops the servers and deletes the namespaces (which takes every link, address and rule in them) and the
    /// temporary directory.
    func remove() {
        for server in servers {
            kill(server.pid, SIGKILL)
            _ = server.wait()
        }
        for name in [node, campus, internet] {
            _ = try? TestSupport.run(["ip", "netns", "del", name])
        }
        directory.remove()
        state.remove()
    }

    @discardableResult
    private func must(_ arguments: [String]) throws -> TestSupport.Result {
        let result = try TestSupport.run(arguments)
        guard result.status == 0 else { throw TestFailure("\(arguments.joined(separator: " ")) failed: \(result)") }
        return result
    }

    /// Runs `arguments` in namespace `name`.
    @discardableResult
    func exec(_ name: String, _ arguments: [String]) throws -> TestSupport.Result {
        try TestSupport.run(["ip", "netns", "exec", name] + arguments)
    }

    /// The arguments that run netacct in the node with this topology's configuration. With `--backend bpf` it
    /// enters the node's network namespace only (nsenter): `ip netns exec` also mounts a fresh /sys, which hides
    /// the cgroup mounts the bpf back end works in.
    func netacctArguments(_ arguments: [String]) -> [String] {
        let bpf = zip(arguments, arguments.dropFirst()).contains { $0 == "--backend" && $1 == "bpf" }
        let enter = bpf ? ["nsenter", "--net=/run/netns/\(node)"] : ["ip", "netns", "exec", node]
        return enter + [TestSupport.tool("netacct"), "--config", configPath] + arguments
    }

    /// Runs netacct in the node and waits for it.
    @discardableResult
    func netacct(_ arguments: [String]) throws -> TestSupport.Result {
        try TestSupport.run(netacctArguments(arguments))
    }

    /// The job-side client command line for `actions`.
    static func client(_ actions: [String]) -> [String] {
        [python, peerScript, "client"] + actions
    }

    /// Starts the UDP/TCP server on the campus and the internet hosts and waits until both listen.
    func startServers() throws {
        for host in [campus, internet] {
            let dir = directory.path + "/" + host
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            servers.append(try BackgroundRun(["ip", "netns", "exec", host, Self.python, Self.peerScript, "serve", dir, String(Self.port)]))
        }
        for host in [campus, internet] {
            try waitForFile(directory.path + "/" + host + "/ready")
        }
    }

    /// What the server on `host` (campus or internet namespace name) logged: one line per datagram/connection.
    func serverLog(_ host: String) -> String {
        (try? String(contentsOfFile: directory.path + "/" + host + "/log", encoding: .utf8)) ?? ""
    }

    /// The node's legacy iptables and nftables rules, without what changes on its own (timestamps, counters),
    /// and its links: what a run must leave as it found it.
    func nodeState() throws -> String {
        let iptables = try exec(node, ["iptables-legacy-save"]).stdout
            .split(separator: "\n").filter { !$0.hasPrefix("#") }
            .map { line in line.replacingOccurrences(of: #"\[\d+:\d+\]"#, with: "[]", options: .regularExpression) }
            .joined(separator: "\n")
        let nft = try exec(node, ["nft", "list", "ruleset"]).stdout
        let links = try TestSupport.run(["ip", "-n", node, "-o", "link"]).stdout
        return "iptables-legacy:\n\(iptables)\nnft:\n\(nft)\nlinks:\n\(links)"
    }

    /// The lease files left in the state directory (the bpf back end's too).
    func leaseFiles() -> [String] {
        let dir = state.path + "/netacct"
        let files =
            ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []) + ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/bpf")) ?? [])
        return files.filter { $0.hasSuffix(".lease") }.sorted()
    }

    /// Expects the node's links and firewall as `before` and no lease or address claim left: what every run must
    /// leave behind.
    func expectNothingLeft(since before: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try nodeState() == before, sourceLocation: sourceLocation)
        #expect(leaseFiles().isEmpty, sourceLocation: sourceLocation)
        #expect(claimFiles().isEmpty, sourceLocation: sourceLocation)
    }

    /// The address claims left beside the veth leases (`slot.<n>.<interface>`).
    func claimFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: state.path + "/netacct")) ?? []).filter { $0.hasPrefix("slot.") }.sorted()
    }
}

/// Waits (up to a minute) for `path` to exist: a readiness wait, not a timing assertion.
func waitForFile(_ path: String, timeout: Double = 60) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while !FileManager.default.fileExists(atPath: path) {
        if Date() > deadline { throw TestFailure("\(path) did not appear within \(Int(timeout)) s") }
        usleep(20_000)
    }
}

/// A process started in the background through `Spawn` (clean signal mask, no inherited descriptors). Its stdout
/// and stderr go to files, since a pipe's EOF would also wait for every process that inherited its write end.
final class BackgroundRun: @unchecked Sendable {
    let pid: pid_t
    private let stdoutPath: String
    private let stderrPath: String

    init(_ arguments: [String]) throws {
        let base = "/tmp/" + TestSupport.uniqueName("netacct-run")
        stdoutPath = base + ".out"
        stderrPath = base + ".err"
        let out = open(stdoutPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        let err = open(stderrPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer {
            close(out)
            close(err)
        }
        guard out >= 0, err >= 0 else { throw TestFailure("cannot create \(base).out/.err") }
        pid = try Spawn.start(arguments, stdout: out, stderr: err)
    }

    /// Waits for the process and returns its status (128+N for signal N) and output.
    func wait() -> TestSupport.Result {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let out = (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: stdoutPath)
        try? FileManager.default.removeItem(atPath: stderrPath)
        return TestSupport.Result(status: ExitStatus.fromWaitStatus(status), stdout: out, stderr: err)
    }
}
