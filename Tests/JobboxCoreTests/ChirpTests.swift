import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCLI
@testable import JobboxCore

@Suite("Chirp client")
struct ChirpTests {
    /// The attributes both clients send: every value type jobbox publishes, and a string that needs escaping.
    static var ad: ClassAd {
        var ad = ClassAd()
        ad.set("MemoryUsage", 129)
        ad.set("RemoteUserCpu", 1.25)
        ad.set("OOMKilled", false)
        ad.set("JobboxNote", "two words, a \"quote\" and C:\\dir")
        return ad
    }

    /// Runs the recording listener and `client` against it; returns the bytes the listener received.
    /// `lines`: how many request lines the connection to return has (htchirp connects twice); nil for the first
    /// connection recorded (a client that connects once and has exited).
    /// `owner`: who owns the listener's directory (as root, tools chirp as the owner of the directory holding the
    /// config, the job's user).
    static func record(
        lines expectedLines: Int? = 1 + ad.attributes.count, owner: TestUser? = nil,
        _ client: (_ configFile: String) throws -> Void
    ) throws -> [UInt8] {
        let dir = try TestSupport.TemporaryDirectory("jobbox-chirp")
        defer { dir.remove() }
        if let owner { chown(dir.path, owner.uid, owner.gid) }
        let python = try #require(HTCondorClassAds.python)
        let listener = Process()
        listener.executableURL = URL(fileURLWithPath: python)
        listener.arguments = [TestSupport.fixtures + "/chirp/recording_listener.py", dir.path + "/chirp.config", dir.path + "/received"]
        try listener.run()
        defer { if listener.isRunning { listener.terminate() } }
        for _ in 0..<600 where !FileManager.default.fileExists(atPath: dir.path + "/chirp.config") { usleep(10_000) }
        try client(dir.path + "/chirp.config")
        // The request connection is complete once its cookie line and one line per attribute are recorded.
        for _ in 0..<1000 {
            if let data = FileManager.default.contents(atPath: dir.path + "/received"), expectedLines == nil || data.filter({ $0 == 10 }).count == expectedLines
            {
                return Array(data)
            }
            usleep(10_000)
        }
        throw TestFailure("the listener recorded no complete request connection")
    }

    @Test(
        "sends exactly the bytes of HTCondor's own Python client (htchirp), immediate and delayed",
        .enabled(if: HTCondorClassAds.available, "the test venv with htchirp is not installed (make deps)"),
        arguments: [ChirpUpdate.immediate, .delayed])
    func matchesHTChirp(update: ChirpUpdate) throws {
        let python = try #require(HTCondorClassAds.python)
        let verb = update == .immediate ? "set_job_attr" : "set_job_attr_delayed"
        let calls = try Self.ad.attributes.map { name, value in
            "c.\(verb)(\(pythonString(update.publishedName(name))), \(pythonString(try ClassAdWriter.renderValue(value))))"
        }.joined(separator: "\n    ")
        let theirs = try Self.record { config in
            let script = "from htchirp import HTChirp\nwith HTChirp() as c:\n    \(calls)\n"
            let result = try TestSupport.run([python, "-c", script], environment: ["_CONDOR_CHIRP_CONFIG": config, "PATH": "/usr/bin:/bin"])
            #expect(result.status == 0, "\(result)")
        }
        let ours = try Self.record { config in
            try ChirpClient.publish(Self.ad, update: update, config: try ChirpConfig.load(environment: Environment(["_CONDOR_CHIRP_CONFIG": config])))
        }
        #expect(String(decoding: ours, as: UTF8.self) == String(decoding: theirs, as: UTF8.self))
        #expect(ours.starts(with: Array("cookie jobbox-test-cookie\n".utf8)))
    }

    @Test("a proxy that refuses the request is an error naming the attribute")
    func refusal() throws {
        // A listener that answers -2 (not authorized) to everything after the cookie.
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(server) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(server, $0, length) } }
        listen(server, 1)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(server, $0, &length) } }
        let port = UInt16(bigEndian: address.sin_port)
        let thread = Thread {
            let conn = accept(server, nil, nil)
            var buffer = [UInt8](repeating: 0, count: 4096)
            var answered = 0
            while read(conn, &buffer, buffer.count) > 0 {
                let reply = answered == 0 ? "0\n" : "-2\n"
                answered += 1
                _ = reply.withCString { write(conn, $0, strlen($0)) }
            }
            close(conn)
        }
        thread.start()
        var ad = ClassAd()
        ad.set("MemoryUsage", 1)
        let config = try #require(ChirpConfig(parsing: "127.0.0.1 \(port) c"))
        #expect(throws: JobboxError.invalid("cannot chirp", "set MemoryUsage", "not authorized (does the job have +WantIOProxy = true?)")) {
            try ChirpClient.publish(ad, update: .immediate, config: config)
        }
    }

    @Test(
        "jobstat --chirp pushes the ad it prints, attribute by attribute, with the same values",
        .enabled(if: HTCondorClassAds.available, "the test venv is not installed (make deps)"))
    func jobstatChirps() throws {
        var printed = ""
        // As root, jobstat chirps as the job's user: the owner of the directory holding the config.
        let user: TestUser? = TestSupport.isRoot ? try TestUser() : nil
        defer { user?.remove() }
        let sent = try Self.record(lines: nil, owner: user) { config in
            var environment = ProcessInfo.processInfo.environment
            environment["_CONDOR_CHIRP_CONFIG"] = config
            let result = try TestSupport.run(["jobstat", "--self", "--chirp-delayed"], environment: environment)
            #expect(result.status == 0, "\(result)")
            printed = result.stdout
        }
        let text = String(decoding: sent, as: UTF8.self)
        let ad = ClassAdReader.parse(printed)
        #expect(ad.attributes.count >= 4)
        let requests = text.split(separator: "\n").dropFirst()
        #expect(requests.count == ad.attributes.count, "one request per printed attribute")
        // The pushed values are those of the printed sample, not of a second read.
        for (name, value) in ad.attributes {
            #expect(text.contains("set_job_attr_delayed Chirp\(name) \(ChirpClient.quote(try ClassAdWriter.renderValue(value)))\n"), "\(name)")
        }
        #expect(requests.allSatisfy { $0.hasPrefix("set_job_attr_delayed Chirp") })
    }

    @Test("--chirp and --chirp-delayed together, or --chirp with --all, are refused before anything is read")
    func chirpOptionErrors() throws {
        let both = try TestSupport.run(["jobstat", "--self", "--chirp", "--chirp-delayed"])
        #expect(both.status == 125)
        #expect(both.stderr == "jobstat: invalid options --chirp --chirp-delayed: give one of them\n")
        let all = try TestSupport.run(["jobstat", "--all", "--chirp"])
        #expect(all.status == 125)
        #expect(all.stderr == "jobstat: invalid options --chirp --all: chirp publishes one job's figures into that job's ad\n")
    }

    @Test("delayed updates get HTCondor's Chirp prefix; words are escaped as chirp wants")
    func namesAndQuoting() {
        #expect(ChirpUpdate.delayed.publishedName("MemoryUsage") == "ChirpMemoryUsage")
        #expect(ChirpUpdate.delayed.publishedName("ChirpX") == "ChirpX")
        #expect(ChirpUpdate.immediate.publishedName("MemoryUsage") == "MemoryUsage")
        #expect(ChirpClient.quote("a b\\c\td") == "a\\ b\\\\c\\\td")
        #expect(ChirpConfig(parsing: "host 9618 abc\n") == ChirpConfig(parsing: "host  9618\tabc"))
        #expect(ChirpConfig(parsing: "host notaport abc") == nil)
    }
}

private func pythonString(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'").replacingOccurrences(of: "\t", with: "\\t") + "'"
}
