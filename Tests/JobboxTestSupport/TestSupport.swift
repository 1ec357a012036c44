import Foundation
import Synchronization
import Testing

/// Shared helpers for jobbox's tests: running the built tools, unique names, temporary directories, HTCondor's
/// own ClassAd parser. Tests may use Foundation; the tools' hot paths may not.
package enum TestSupport {
    /// Whether the tests run as root (kernel tests skip themselves otherwise).
    package static let isRoot = geteuid() == 0

    /// The skip reason for kernel tests when not root.
    package static let needsRoot: Comment = "needs root: creates cgroups, namespaces, mounts or firewall rules on the real kernel"

    /// The directory with the built executables (the test bundle sits beside them).
    package static let productsDirectory: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // swift-testing may run from inside the .xctest bundle directory.
        while dir.path != "/" && !FileManager.default.fileExists(atPath: dir.appendingPathComponent("cg-exec").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir.path
    }()

    /// The path of a built tool.
    package static func tool(_ name: String) -> String { productsDirectory + "/" + name }

    /// The repository's root (for fixtures and examples).
    package static let repositoryRoot: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }()

    /// The fixtures directory.
    package static let fixtures = repositoryRoot + "/Tests/Fixtures"

    /// A name no other test, run or parallel helper uses: `prefix` + pid + counter.
    package static func uniqueName(_ prefix: String) -> String {
        let n = counter.withLock { value -> Int in
            value += 1
            return value
        }
        return "\(prefix)\(getpid() % 100_000)x\(n)"
    }

    private static let counter = Mutex(0)

    /// The result of running a program.
    package struct Result: CustomStringConvertible {
        package let status: Int32
        package let stdout: String
        package let stderr: String
        package var description: String { "status \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }

        /// Memberwise, for the test targets (a memberwise init is internal).
        package init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
        }
    }

    /// Runs `arguments` (the first is the program, a tool name resolves to the built tool, else PATH), waits,
    /// and returns its status (128+N for signal N) and output. See `Spawn` for why not Foundation's `Process`.
    @discardableResult
    package static func run(_ arguments: [String], environment: [String: String]? = nil, stdin: String? = nil) throws -> Result {
        try Spawn.run(resolvingTool(arguments), environment: environment, stdin: stdin)
    }

    /// `arguments` with a first word that names a jobbox tool replaced by the built tool's path.
    package static func resolvingTool(_ arguments: [String]) -> [String] {
        var resolved = arguments
        if ["cg-exec", "ns-exec", "netacct", "chroot-tool", "jobstat"].contains(resolved[0]) { resolved[0] = tool(resolved[0]) }
        return resolved
    }

    /// Runs a shell command line.
    @discardableResult
    package static func sh(_ script: String, environment: [String: String]? = nil) throws -> Result {
        try run(["/bin/sh", "-c", script], environment: environment)
    }

    /// A fresh directory under /tmp, removed by `remove()`.
    package struct TemporaryDirectory {
        package let path: String
        package init(_ prefix: String = "jobbox-test") throws {
            path = "/tmp/" + TestSupport.uniqueName(prefix)
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        package func remove() { try? FileManager.default.removeItem(atPath: path) }
        package func write(_ relative: String, _ text: String) throws {
            let url = URL(fileURLWithPath: path + "/" + relative)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: false, encoding: .utf8)
        }
    }
}

/// HTCondor's own ClassAd library, through the `htcondor` Python bindings in the venv `make check` prepares.
package enum HTCondorClassAds {
    /// The venv's python, or nil when the bindings are not installed (then tests skip, unless
    /// JOBBOX_REQUIRE_HTCONDOR=1, as in `make check` and CI, makes that a failure).
    package static let python: String? = {
        let candidates = [ProcessInfo.processInfo.environment["JOBBOX_HTCONDOR_PYTHON"], TestSupport.repositoryRoot + "/.venv-htcondor/bin/python"]
        return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    package static var required: Bool { ProcessInfo.processInfo.environment["JOBBOX_REQUIRE_HTCONDOR"] == "1" }

    /// Whether tests that need the library can run.
    package static var available: Bool { python != nil || required }

    /// One attribute as HTCondor's parser sees it: its type name (`int`, `float`, `str`, `bool`) and value text.
    package struct Parsed: Equatable, CustomStringConvertible {
        package let type: String
        package let value: String
        package var description: String { "\(type):\(value)" }

        package init(type: String, value: String) {
            self.type = type
            self.value = value
        }
    }

    /// Parses `text` (several long-form ads separated by blank lines) with `classad2.parseAds` and returns each
    /// ad's attributes with their Python types.
    package static func parse(_ text: String) throws -> [[String: Parsed]] {
        guard let python else {
            throw TestFailure("HTCondor's Python bindings are missing: run `make deps` (JOBBOX_HTCONDOR_PYTHON unset)")
        }
        let script = """
            import sys, json, io, classad2
            ads = []
            for ad in classad2.parseAds(io.StringIO(sys.stdin.read())):
                row = {}
                for key in ad.keys():
                    value = ad.eval(key)
                    row[key] = [type(value).__name__, repr(value) if isinstance(value, float) else str(value)]
                ads.append(row)
            print(json.dumps(ads))
            """
        let result = try TestSupport.run([python, "-c", script], stdin: text)
        guard result.status == 0 else { throw TestFailure("HTCondor's parser rejected the ad:\n\(text)\n\(result.stderr)") }
        let decoded = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: [String]]] ?? []
        return decoded.map { ad in ad.mapValues { Parsed(type: $0[0], value: $0[1]) } }
    }
}

/// A failure with a message, for helpers that throw into tests.
package struct TestFailure: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}
