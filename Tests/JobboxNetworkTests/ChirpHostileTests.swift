import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxNetwork

/// Attacks through `$_CONDOR_CHIRP_CONFIG` on jobstat and netacct run as root (issue #12, finding 3): the file
/// lies in the job's scratch dir, so the job picks where root connects, can make it a symlink to a root-only file
/// or a FIFO, or name a listener that never answers. Root must chirp only as the job's user, from the job's side
/// of the network, and within a bounded time. Listeners run on loopback or in namespaces the test makes.
@Suite("Hostile: chirp as root", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct ChirpHostileTests {
    static let listener = TestSupport.fixtures + "/chirp/recording_listener.py"
    /// A kill after two minutes only keeps a regression (a hang) from stopping the suite; nothing here is timed.
    static let guardKill = ["timeout", "-s", "KILL", "120"]

    /// A job's scratch dir (`Hostile.Scratch`) with recording listeners that write `.chirp.config` into it.
    final class Scratch: Hostile.Scratch {
        private var listeners: [pid_t] = []
        var path: String { scratch }

        /// Starts the recording listener (`prefix`: e.g. `ip netns exec NS`), which writes `.chirp.config` here.
        func listen(_ options: [String] = [], prefix: [String] = []) throws -> (config: String, received: String) {
            let config = path + "/.chirp.config"
            let received = base + "/received"
            unlink(config)
            listeners.append(try Spawn.start(prefix + [NetacctTopology.python, ChirpHostileTests.listener] + options + [config, received]))
            try waitForFile(config)
            return (config, received)
        }

        override func remove() {
            for pid in listeners {
                kill(pid, SIGKILL)
                _ = Spawn.wait(pid)
            }
            super.remove()
        }
    }

    static func jobstat(config: String) throws -> TestSupport.Result {
        try TestSupport.run(guardKill + ["env", "_CONDOR_CHIRP_CONFIG=\(config)", TestSupport.tool("jobstat"), "--self", "--chirp"])
    }

    // MARK: - jobstat

    @Test("jobstat: a config that is a symlink to a root-only file is not read; its third word never goes out as the cookie")
    func symlinkToRootOnlyFile() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let (config, received) = try scratch.listen()
        // A root-only file whose words would make a valid config: the listener's address and a secret.
        let secret = scratch.base + "/secret"
        let address = try String(contentsOfFile: config, encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
        try "\(address) root-only-secret\n".write(toFile: secret, atomically: false, encoding: .utf8)
        chmod(secret, 0o600)
        let link = scratch.path + "/link.config"
        #expect(symlink(secret, link) == 0)
        let result = try Self.jobstat(config: link)
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr == "jobstat: cannot read chirp configuration \(link): it is a symbolic link in a directory the job can write (refused as root)\n")
        #expect(!FileManager.default.fileExists(atPath: received), "nothing reached the listener")
    }

    @Test("jobstat: a FIFO as the config is refused at once, not waited on")
    func fifoConfig() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let fifo = scratch.path + "/fifo.config"
        #expect(mkfifo(fifo, 0o644) == 0)
        chown(fifo, scratch.user.uid, scratch.user.gid)
        let result = try Self.jobstat(config: fifo)
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr == "jobstat: cannot read chirp configuration \(fifo): it is not a regular file\n")
    }

    @Test("jobstat: a config in a root-owned directory is refused: there is no job's user to chirp as")
    func rootOwnedDirectory() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let (config, received) = try scratch.listen()
        let rootConfig = scratch.base + "/root.config"
        try String(contentsOfFile: config, encoding: .utf8).write(toFile: rootConfig, atomically: false, encoding: .utf8)
        let result = try Self.jobstat(config: rootConfig)
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr.hasPrefix("jobstat: cannot chirp \(rootConfig): \(scratch.base) is root's;"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: received))
    }

    @Test("jobstat: a listener that never answers costs the chirp timeout, then one line and 125")
    func silentListener() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let (config, _) = try scratch.listen(["--silent"])
        let result = try Self.jobstat(config: config)
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr == "jobstat: cannot chirp authenticate: the proxy did not answer within \(ChirpClient.timeout) s\n")
    }

    @Test("jobstat as root chirps as the job's user: the listener sees a connection from that uid")
    func chirpsAsJobUser() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let (config, received) = try scratch.listen()
        // The publisher is a process of the job's user: a config only root can read is out of its reach.
        chmod(config, 0o600)
        chown(config, 0, 0)
        let denied = try Self.jobstat(config: config)
        #expect(denied.status == 125, "a config only root can read is not readable by the chirp: \(denied)")
        #expect(denied.stderr == "jobstat: cannot read chirp configuration \(config): Permission denied\n")
        chown(config, scratch.user.uid, scratch.user.gid)
        let result = try Self.jobstat(config: config)
        #expect(result.status == 0, "\(result)")
        try waitForFile(received)
        #expect(try String(contentsOfFile: received, encoding: .utf8).hasPrefix("cookie jobbox-test-cookie\nset_job_attr MemoryUsage "))
    }

    // MARK: - netacct

    /// netacct in the node with the job's chirp config, running `actions` as the job.
    static func netacct(_ net: NetacctTopology, config: String, job: String, extra: [String] = [], actions: [String] = ["address"]) -> [String] {
        guardKill + ["ip", "netns", "exec", net.node, "env", "_CONDOR_CHIRP_CONFIG=\(config)", TestSupport.tool("netacct"), "--config", net.configPath]
            + NetacctKernelTests.options(job, "nftables") + ["--chirp"] + extra + ["--"] + NetacctTopology.client(actions)
    }

    @Test(
        "netacct: a proxy on the node's loopback (where HTCondor's starter binds it) is reached as the job's user, and nothing else from the node's namespace")
    func loopbackFromNodeNamespace() throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let before = try net.nodeState()
        let (config, received) = try scratch.listen(prefix: ["ip", "netns", "exec", net.node])
        // Readable by root only: the chirp, as the job's user, cannot read it; with the job's user's it can.
        chmod(config, 0o600)
        let denied = try TestSupport.run(Self.netacct(net, config: config, job: "loop0", extra: ["--ad-file", net.directory.path + "/job.ad"]))
        #expect(denied.status == 0, "the job's status: \(denied)")
        #expect(denied.stderr == "netacct: warning: cannot read chirp configuration \(config): Permission denied\n")
        #expect(!FileManager.default.fileExists(atPath: received))
        chown(config, scratch.user.uid, scratch.user.gid)
        let result = try TestSupport.run(Self.netacct(net, config: config, job: "loop", extra: ["--ad-file", net.directory.path + "/job.ad"]))
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.isEmpty, "\(result)")
        try waitForFile(received)
        #expect(try String(contentsOfFile: received, encoding: .utf8).hasPrefix("cookie jobbox-test-cookie\nset_job_attr Network"))
        try net.expectNothingLeft(since: before)
    }

    @Test("netacct: the job's own proxy on the campus is reached from the job's namespace, as the job's user, with the final ad")
    func chirpsFromJobNamespace() throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let before = try net.nodeState()
        let (config, received) = try scratch.listen(["--bind", NetacctTopology.campusAddress], prefix: ["ip", "netns", "exec", net.campus])
        let adFile = net.directory.path + "/job.ad"
        let result = try TestSupport.run(Self.netacct(net, config: config, job: "campus", extra: ["--ad-file", adFile]))
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.isEmpty, "\(result)")
        try waitForFile(received)
        let text = try String(contentsOfFile: received, encoding: .utf8)
        let ad = ClassAdReader.parse(try String(contentsOfFile: adFile, encoding: .utf8))
        #expect(text.hasPrefix("cookie jobbox-test-cookie\n"))
        for (name, value) in ad.attributes {
            #expect(text.contains("set_job_attr \(name) \(try ClassAdWriter.renderValue(value))\n"), "\(name)")
        }
        try net.expectNothingLeft(since: before)
    }

    @Test("netacct --deny-external: a proxy on an external host is rejected like the job's own traffic")
    func denyExternalApplies() throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let before = try net.nodeState()
        let (config, received) = try scratch.listen(["--bind", NetacctTopology.internetAddress], prefix: ["ip", "netns", "exec", net.internet])
        let result = try TestSupport.run(Self.netacct(net, config: config, job: "deny", extra: ["--deny-external"]))
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.contains("netacct: warning: cannot connect to chirp proxy \(NetacctTopology.internetAddress):"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: received))
        #expect(try net.nodeState() == before)
    }

    @Test("netacct: a proxy that never answers costs the chirp timeout; the job's status and the tear-down stand")
    func silentProxy() throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let before = try net.nodeState()
        let (config, _) = try scratch.listen(["--bind", NetacctTopology.campusAddress, "--silent"], prefix: ["ip", "netns", "exec", net.campus])
        let result = try TestSupport.run(
            Self.netacct(net, config: config, job: "silent", extra: ["--ad-file", net.directory.path + "/job.ad"], actions: ["address", "exit", "3"]))
        #expect(result.status == 3, "\(result)")
        #expect(result.stderr == "netacct: warning: cannot chirp authenticate: the proxy did not answer within \(ChirpClient.timeout) s\n")
        try net.expectNothingLeft(since: before)
    }

    @Test("netacct sent TERM while it waits for the chirp: the publisher is killed, the tear-down completes, the job's status stands")
    func termDuringChirp() throws {
        let net = try NetacctTopology()
        defer { net.remove() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let before = try net.nodeState()
        let (config, _) = try scratch.listen(["--bind", NetacctTopology.campusAddress, "--silent"], prefix: ["ip", "netns", "exec", net.campus])
        let run = try BackgroundRun(
            Array(Self.netacct(net, config: config, job: "term", extra: ["--ad-file", net.directory.path + "/job.ad"]).dropFirst(Self.guardKill.count)))
        // `ip netns exec` execs netacct: the run's pid is netacct's. Wait for its chirp publisher to exist.
        var publisher: pid_t = 0
        for _ in 0..<6000 where publisher == 0 {
            publisher = Self.child(of: run.pid, containing: ChirpAsJob.childFlag) ?? 0
            if publisher == 0 { usleep(20_000) }
        }
        #expect(publisher > 0, "the chirp publisher started")
        let status = try String(contentsOfFile: "/proc/\(publisher)/status", encoding: .utf8)
        #expect(status.contains("Uid:\t\(scratch.user.uid)\t\(scratch.user.uid)\t\(scratch.user.uid)\t\(scratch.user.uid)"), "it runs as the job's user")
        kill(run.pid, SIGTERM)
        let result = run.wait()
        #expect(result.status == 0, "the job's status: \(result)")
        #expect(result.stderr == "netacct: warning: cannot chirp: interrupted by signal 15: the chirp publisher was stopped\n")
        #expect(kill(publisher, 0) == -1 && errno == ESRCH, "the publisher is gone")
        try net.expectNothingLeft(since: before)
    }

    /// A child of `parent` whose command line contains `word`.
    static func child(of parent: pid_t, containing word: String) -> pid_t? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for entry in entries {
            // Field 4 of /proc/PID/stat is the parent's pid.
            guard let pid = pid_t(entry), let ppid = ProcessStat.read(pid: pid)?.field(4), pid_t(ppid) == parent else { continue }
            if let line = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), String(decoding: line, as: UTF8.self).contains(word) { return pid }
        }
        return nil
    }
}

extension ChirpHostileTests {
    @Test(
        "netacct --backend bpf: the ad file is rewritten every --interval while the job runs, and --chirp pushes the final ad as the job's user",
        .enabled(if: BPFTestSupport.unifiedMount != nil))
    func bpfIntervalAndChirp() throws {
        let net = try NetacctTopology(prefix: "jbn")
        defer { BPFTestSupport.remove(net, jobs: ["chirpbpf"]) }
        try net.startServers()
        let scratch = try Scratch()
        defer { scratch.remove() }
        // The job stays in the node's namespace (no veth): HTCondor's proxy on the node's loopback.
        let (config, received) = try scratch.listen(prefix: ["nsenter", "--net=/run/netns/\(net.node)"])
        chown(config, scratch.user.uid, scratch.user.gid)
        let adFile = net.directory.path + "/job.ad"
        let ready = net.directory.path + "/ready"
        let go = net.directory.path + "/go"
        let run = try BackgroundRun(
            Self.guardKill + ["env", "_CONDOR_CHIRP_CONFIG=\(config)"]
                + net.netacctArguments(
                    NetacctBPFKernelTests.options("chirpbpf") + ["--interval", "1", "--ad-file", adFile, "--chirp", "--"]
                        + NetacctTopology.client([
                            "udp", NetacctTopology.campusAddress, String(NetacctTopology.port), "4", "250", "500", "pidfile", ready, "wait", go,
                        ])))
        try waitForFile(ready)
        // The job has sent everything and waits: an interval's ad (written while it runs) has its counts.
        var periodic = ClassAd()
        for _ in 0..<300 {
            if let text = try? String(contentsOfFile: adFile, encoding: .utf8) {
                periodic = ClassAdReader.parse(text)
                if periodic.integer("NetworkOutgoingInternal") == Int64(4 * 278) { break }
            }
            usleep(100_000)
        }
        #expect(periodic.integer("NetworkOutgoingInternal") == Int64(4 * 278), "\(periodic)")
        #expect(periodic.integer("NetworkIncomingInternal") == Int64(4 * 528), "\(periodic)")
        #expect(!FileManager.default.fileExists(atPath: received), "the chirp goes after the job, with the final ad")
        try "".write(toFile: go, atomically: false, encoding: .utf8)
        let result = run.wait()
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.isEmpty, "\(result)")
        try waitForFile(received)
        let text = try String(contentsOfFile: received, encoding: .utf8)
        #expect(text.hasPrefix("cookie jobbox-test-cookie\n"), "\(text)")
        let final = ClassAdReader.parse(try String(contentsOfFile: adFile, encoding: .utf8))
        #expect(final.integer("NetworkOutgoingInternal") == Int64(4 * 278))
        for (name, value) in final.attributes {
            #expect(text.contains("set_job_attr \(name) \(try ClassAdWriter.renderValue(value))\n"), "\(name)")
        }
        #expect(net.leaseFiles().isEmpty)
    }
}
