import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore
@testable import JobboxStats

/// A fixture node for jobstat: a mountinfo, a /proc/self/cgroup and a file tree standing in for the cgroup
/// mounts (Tests/Fixtures/jobstat/<name>).
struct JobstatFixture {
    let name: String
    let directory: String
    let layout: CgroupLayout
    let membership: CgroupMembership

    init(_ name: String) throws {
        self.name = name
        directory = TestSupport.fixtures + "/jobstat/" + name
        let mounts = MountInfo.parse(try String(contentsOfFile: directory + "/mountinfo", encoding: .utf8))
        layout = CgroupLayout(mounts: mounts, fsRoot: directory + "/tree")
        membership = CgroupMembership(parsing: try String(contentsOfFile: directory + "/cgroup", encoding: .utf8))
    }

    /// A planner for jobs under `<parent>/jobbox`.
    func planner(parent: CgroupParent) -> JobStatPlanner {
        JobStatPlanner(locator: JobCgroupLocator(layout: layout, parent: parent, base: "jobbox", membership: membership))
    }

    /// What jobstat prints for `request` (one sample), through the same runner the tool uses.
    func output(_ request: JobStatRequest, parent: CgroupParent) throws -> String {
        let collected = Collected()
        let runner = JobStatRunner(request: request, planner: planner(parent: parent), write: { collected.text += $0 }, sleepUntil: { _ in })
        let status = try runner.run()
        #expect(status == 0)
        return collected.text
    }

    /// The golden output `expected/<file>`.
    func golden(_ file: String) throws -> String {
        try String(contentsOfFile: directory + "/expected/" + file, encoding: .utf8)
    }
}

/// Text the runner wrote (a class so the write closure can append to it).
final class Collected: @unchecked Sendable {
    var text = ""
}

/// Checks that text parses back as the tests require.
enum OutputChecks {
    /// Every ad parses with HTCondor's own ClassAd library with the types jobstat meant: integers as `int`,
    /// reals as `float`, strings as `str`. Returns the parsed ads.
    @discardableResult
    static func htcondorParses(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: HTCondorClassAds.Parsed]] {
        let parsed = try HTCondorClassAds.parse(text)
        let ours = ClassAdReader.parseAll(text)
        #expect(parsed.count == ours.count, "HTCondor read \(parsed.count) ads, jobbox wrote \(ours.count)", sourceLocation: sourceLocation)
        for (theirs, mine) in zip(parsed, ours) {
            #expect(theirs.count == mine.attributes.count, sourceLocation: sourceLocation)
            for (name, value) in mine.attributes {
                let expected: String
                switch value {
                case .integer: expected = "int"
                case .real: expected = "float"
                case .string: expected = "str"
                case .boolean: expected = "bool"
                case .expression: expected = "expression"
                }
                #expect(
                    theirs[name]?.type == expected, "\(name): HTCondor read \(theirs[name]?.description ?? "nothing"), expected \(expected)",
                    sourceLocation: sourceLocation)
            }
        }
        return parsed
    }

    /// Parses JSON with Foundation and checks every number kept its kind: `q` (integer) or `d` (real).
    @discardableResult
    static func jsonParses(_ text: String, integers: Set<String>, reals: Set<String>, sourceLocation: SourceLocation = #_sourceLocation) throws -> Any {
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        let objects: [[String: Any]] = (object as? [[String: Any]]) ?? [(object as? [String: Any]) ?? [:]]
        for item in objects {
            for (key, value) in item {
                guard let number = value as? NSNumber, !(value is String) else { continue }
                // JSONSerialization keeps a number with a '.' or an exponent as a double ("d"), others as integers.
                let isReal = ["d", "f"].contains(String(cString: number.objCType))
                if integers.contains(key) { #expect(!isReal, "\(key) should be an integer in \(text)", sourceLocation: sourceLocation) }
                if reals.contains(key) { #expect(isReal, "\(key) should be a real in \(text)", sourceLocation: sourceLocation) }
            }
        }
        return object
    }

    /// `promtool check metrics` (Debian's prometheus package), when installed.
    static var promtool: String? {
        ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Whether the Prometheus checks can run (make check sets JOBBOX_REQUIRE_HTCONDOR=1, which also means the
    /// packages of scripts/deps are installed: then a missing promtool fails instead of skipping).
    static var promtoolAvailable: Bool { promtool != nil || HTCondorClassAds.required }

    /// Runs promtool's linter on the exposition text; fails with its complaints.
    static func promtoolAccepts(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard let promtool else {
            Issue.record("promtool is missing: install Debian's prometheus package (scripts/deps/jobstat.txt)", sourceLocation: sourceLocation)
            return
        }
        let result = try TestSupport.run([promtool, "check", "metrics"], stdin: text)
        #expect(result.status == 0, "promtool check metrics: \(result.stdout)\(result.stderr)\n\(text)", sourceLocation: sourceLocation)
        #expect(result.stdout.isEmpty && result.stderr.isEmpty, "promtool complained: \(result.stdout)\(result.stderr)", sourceLocation: sourceLocation)
    }

    /// The attribute names jobstat writes as integers and as reals.
    static let integerNames: Set<String> = Set(
        JobStatAttributes.all.filter {
            $0.name.hasSuffix("Kb") || $0.name.hasPrefix("Block") || ["MemoryUsage", "ResidentSetSize", "OOMKills", "NumPids"].contains($0.name)
        }.map(\.name))
    static let realNames: Set<String> = Set(JobStatAttributes.all.map(\.name)).subtracting(integerNames)
}
