import CNetacctBPF
import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxNetwork
@testable import NetacctBPFObject

/// netacct's own BPF loader on the kernel, below the tools: the maps it makes, what it says when the verifier
/// refuses a program, and the node service's pinned counters map (made, reused with its counts, refused when
/// pinned with another shape or name). Each test removes its pins, also on failure; its maps and programs go with their
/// descriptors.
@Suite("netacct bpf: the loader on the kernel", .enabled(if: TestSupport.isRoot && BPFTestSupport.unifiedMount != nil, TestSupport.needsRoot))
struct NetacctBPFLoaderKernelTests {
    /// bpftool's description of a map (`id N` or `pinned PATH`), nil when there is none.
    static func map(_ selector: [String]) throws -> [String: Any]? {
        let result = try TestSupport.run(["bpftool", "-j", "map", "show"] + selector)
        guard result.status == 0 else { return nil }
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
    }

    static func string(_ info: [String: Any]?, _ key: String) -> String? { info?[key] as? String }
    static func number(_ info: [String: Any]?, _ key: String) -> Int? { info?[key] as? Int }

    @Test("a job's maps are made as the table says, its counters map with the job's size, and go with the instance")
    func jobMaps() throws {
        var accounting: BPFAccounting? = try BPFAccounting(internalIPv4: [], internalIPv6: [], denyExternal: false)
        defer { accounting?.close() }
        let id = try #require(accounting?.countersMapID)
        let info = try #require(try Self.map(["id", "\(id)"]))
        #expect(Self.string(info, "name") == "jb_counters")
        #expect(Self.string(info, "type") == "hash")
        #expect(Self.number(info, "bytes_key") == 8)
        #expect(Self.number(info, "bytes_value") == MemoryLayout<jb_netacct_counters>.size)
        #expect(Self.number(info, "max_entries") == Int(JB_NETACCT_JOB_MAX_CGROUPS))
        #expect(try accounting?.counters() == TrafficCounters())
        accounting?.close()
        accounting = nil
        // The kernel frees a map after its last descriptor closes, a moment later (RCU).
        var gone = false
        for _ in 0..<200 where !gone {
            gone = try Self.map(["id", "\(id)"]) == nil
            if !gone { usleep(10_000) }
        }
        #expect(gone, "map \(id) is still there")
    }

    @Test("a program the verifier refuses is named with the verifier's complaint")
    func verifierComplaint() throws {
        var elf = TestELF(try #require(NetacctBPFObject.bytes()))
        let program = try elf.symbol("jb_job_egress")
        // Its first instruction becomes exit: the rest can never run, which the verifier refuses first.
        let at = elf.sections[program.section].offset + program.value
        elf.bytes.replaceSubrange(at..<at + 8, with: [0x95, 0, 0, 0, 0, 0, 0, 0])
        do {
            let accounting = try BPFAccounting(object: elf.bytes, internalIPv4: [], internalIPv6: [], denyExternal: false)
            accounting.close()
            Issue.record("the verifier accepted a program with unreachable instructions")
        } catch {
            #expect(error.operation == "cannot load the BPF program jb_job_egress (verifier: unreachable insn 1)", "\(error)")
            #expect(error.errno == .permissionDenied || error.errno == .invalidArgument, "\(error)")
        }
    }

    @Test("the node's counters map is pinned, reused with its counts by the next load, and refused when pinned with another shape or name")
    func nodePinnedMap() throws {
        let pinDirectory = "/sys/fs/bpf/" + TestSupport.uniqueName("jbpin")
        let counters = pinDirectory + "/counters"
        guard mkdir(pinDirectory, 0o700) == 0 else { throw TestFailure("cannot make \(pinDirectory)") }
        defer { _ = try? TestSupport.run(["rm", "-rf", pinDirectory]) }

        let first = try NodeAccounting(internalIPv4: [], internalIPv6: [], pinDirectory: pinDirectory, firstLevel: 0)
        let made = try #require(try Self.map(["pinned", counters]))
        #expect(Self.string(made, "name") == "jb_counters")
        #expect(Self.number(made, "max_entries") == Int(JB_NETACCT_NODE_MAX_CGROUPS))
        // A count, as a job's traffic leaves it: cgroup 42 sent 7 internal bytes.
        let value = ["7"] + [String](repeating: "0", count: MemoryLayout<jb_netacct_counters>.size - 1)
        let update = try TestSupport.run(["bpftool", "map", "update", "pinned", counters, "key", "42", "0", "0", "0", "0", "0", "0", "0", "value"] + value)
        first.close()
        try #require(update.status == 0, "\(update)")

        let second = try NodeAccounting(internalIPv4: [], internalIPv6: [], pinDirectory: pinDirectory, firstLevel: 0)
        defer { second.close() }
        #expect(Self.number(try Self.map(["pinned", counters]), "id") == Self.number(made, "id"))
        let reused = NodeCountersMap(fd: second.countersFD)
        #expect(try reused.counters(of: 42).outgoingInternal == 7)
        #expect(try reused.ids().sorted() == [0, 42])
        second.close()
        #expect(try NodeCountersMap.removePins(pinDirectory) == 1)
        #expect(!FileManager.default.fileExists(atPath: pinDirectory))

        // A map of another size pinned there (another netacct's) is left alone, and the service does not start.
        guard mkdir(pinDirectory, 0o700) == 0 else { throw TestFailure("cannot make \(pinDirectory) again") }
        let other = try TestSupport.run([
            "bpftool", "map", "create", counters, "type", "hash", "key", "8", "value", "\(MemoryLayout<jb_netacct_counters>.size)", "entries", "100", "name",
            "jb_counters",
        ])
        try #require(other.status == 0, "\(other)")
        let foreign = Self.number(try Self.map(["pinned", counters]), "id")
        do {
            let third = try NodeAccounting(internalIPv4: [], internalIPv6: [], pinDirectory: pinDirectory, firstLevel: 0)
            third.close()
            Issue.record("a pinned counters map of another size was reused")
        } catch {
            #expect(error.operation.hasPrefix("cannot reuse the pinned counters map"), "\(error)")
            #expect(error.errno == .invalidArgument, "\(error)")
        }
        #expect(Self.number(try Self.map(["pinned", counters]), "id") == foreign)
        #expect(try FileManager.default.contentsOfDirectory(atPath: pinDirectory) == ["counters"])

        // Nor a map of the same shape under another name: it is not netacct's counters map.
        #expect(unlink(counters) == 0)
        let renamed = try TestSupport.run([
            "bpftool", "map", "create", counters, "type", "hash", "key", "8", "value", "\(MemoryLayout<jb_netacct_counters>.size)", "entries",
            "\(JB_NETACCT_NODE_MAX_CGROUPS)", "name", "jb_other",
        ])
        try #require(renamed.status == 0, "\(renamed)")
        let impostor = Self.number(try Self.map(["pinned", counters]), "id")
        #expect(throws: JobboxError.self) {
            try NodeAccounting(internalIPv4: [], internalIPv6: [], pinDirectory: pinDirectory, firstLevel: 0).close()
        }
        #expect(Self.number(try Self.map(["pinned", counters]), "id") == impostor)
    }
}
