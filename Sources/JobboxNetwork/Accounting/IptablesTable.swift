import CNetfilter
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A snapshot of one legacy iptables table, changed in memory and committed as a whole: what libiptc's handle
/// does, on the kernel's socket options (`IptablesSocket`) and jobbox's own parser (`IptablesImage`).
///
/// Rules are added as `IptablesEntry` builds them, with libiptc's meaning of a standard target's name: `ACCEPT`,
/// `DROP`, `QUEUE`, `RETURN`, a user chain to jump to, or else the name of a target extension.
final class IptablesTable {
    let name: String
    private let socket: IptablesSocket
    private var image: IptablesImage

    /// Reads table `name` of the calling thread's network namespace (the kernel creates it if it is not there).
    init(name: String) throws(JobboxError) {
        self.name = name
        socket = try IptablesSocket(table: name)
        let snapshot = try socket.read(name)
        image = try IptablesImage(
            table: name, blob: snapshot.entries, validHooks: snapshot.info.valid_hooks, hookEntry: snapshot.hookEntry, underflow: snapshot.underflow,
            count: Int(snapshot.info.num_entries))
    }

    /// Reads table `name`, lets `body` change it, and commits when `body` says it changed something.
    static func modify(_ name: String, _ body: (IptablesTable) throws(JobboxError) -> Bool) throws(JobboxError) {
        let table = try IptablesTable(name: name)
        if try body(table) { try table.commit() }
    }

    /// The table as it is now in memory, as `IPT_SO_SET_REPLACE` would take it.
    func serialised() -> IptablesImage.Serialised { image.serialised() }

    func isChain(_ chain: String) -> Bool { image.chains.contains { $0.name == chain } }

    private func failure(_ operation: String, _ chain: String, _ reason: String, _ code: Errno) -> JobboxError {
        JobboxError(operation, "\(name)/\(chain)", reason: reason, errno: code)
    }

    private func chainIndex(_ chain: String, _ operation: String) throws(JobboxError) -> Int {
        guard let index = image.chains.firstIndex(where: { $0.name == chain }) else {
            throw failure(operation, chain, "no such chain", .noSuchFileOrDirectory)
        }
        return index
    }

    /// Creates user chain `chain` (empty: its head and its `RETURN`), among the user chains in name order as
    /// libiptc keeps them.
    func createChain(_ chain: String) throws(JobboxError) {
        let operation = "cannot create iptables chain"
        guard !chain.isEmpty, chain.utf8.count <= IptablesEntry.maxExtensionName, !chain.utf8.contains(0), Self.verdicts[chain] == nil else {
            throw failure(operation, chain, "not a valid chain name", .invalidArgument)
        }
        guard !isChain(chain) else { throw failure(operation, chain, "the chain exists", .fileExists) }
        let head = IptablesImage.Entry(bytes: IptablesEntry.make(.init(), target: .error(chain)), flow: .verdict, readIndex: nil)
        let foot = try mapped(IptablesEntry.make(.init(), target: .standard("RETURN")), operation, chain)
        let new = IptablesImage.Chain(name: chain, hook: nil, head: head, rules: [], foot: foot)
        let position = image.chains.firstIndex { $0.hook == nil && !Array($0.name.utf8).lexicographicallyPrecedes(Array(chain.utf8)) }
        image.chains.insert(new, at: position ?? image.chains.endIndex)
    }

    /// Deletes user chain `chain` with its rules; refused while a rule of another chain jumps to it.
    func deleteChain(_ chain: String) throws(JobboxError) {
        let operation = "cannot delete iptables chain"
        let index = try chainIndex(chain, operation)
        guard image.chains[index].hook == nil else { throw failure(operation, chain, "a built-in chain", .invalidArgument) }
        let referenced = image.chains.enumerated().contains { other in
            other.offset != index && other.element.rules.contains { $0.flow == .jump(chain) }
        }
        guard !referenced else { throw failure(operation, chain, "other rules jump to it", .resourceBusy) }
        image.chains.remove(at: index)
    }

    func append(_ chain: String, _ entry: [UInt8]) throws(JobboxError) {
        let operation = "cannot append iptables rule to"
        let index = try chainIndex(chain, operation)
        image.chains[index].rules.append(try mapped(entry, operation, chain))
    }

    /// Inserts `entry` as the first rule of `chain`.
    func insert(_ chain: String, _ entry: [UInt8]) throws(JobboxError) {
        let operation = "cannot insert iptables rule into"
        let index = try chainIndex(chain, operation)
        image.chains[index].rules.insert(try mapped(entry, operation, chain), at: 0)
    }

    /// Calls `each` with every rule of `chain` and its target's name (a jump's chain, a verdict's name, `""` for
    /// none, else the target extension's name).
    func forEachRule(in chain: String, _ each: (UnsafePointer<ipt_entry>, String) -> Void) {
        guard let found = image.chains.first(where: { $0.name == chain }) else { return }
        for rule in found.rules { _ = Self.withEntry(rule) { entry, label in each(entry, label) } }
    }

    /// Deletes every rule of `chain` that `matches`; whether any was deleted.
    func deleteRules(in chain: String, where matches: (UnsafePointer<ipt_entry>, String) -> Bool) throws(JobboxError) -> Bool {
        guard let index = image.chains.firstIndex(where: { $0.name == chain }) else { return false }
        let before = image.chains[index].rules.count
        image.chains[index].rules.removeAll { rule in Self.withEntry(rule, matches) ?? false }
        return image.chains[index].rules.count != before
    }

    /// Calls `body` with `rule` as an `ipt_entry` and its target's name (nil for an entry without bytes, which
    /// `IptablesImage` never makes).
    private static func withEntry<Result>(_ rule: IptablesImage.Entry, _ body: (UnsafePointer<ipt_entry>, String) -> Result) -> Result? {
        let label = label(of: rule)
        // Array storage is 16-byte aligned, enough for the entry's 8-byte counters.
        return rule.bytes.withUnsafeBytes { raw in raw.baseAddress.map { body($0.assumingMemoryBound(to: ipt_entry.self), label) } }
    }

    /// Replaces the kernel's table with this one, then gives every entry that was kept the counters it had at
    /// that moment (the kernel hands them over as it swaps the tables, and starts the new table at zero): so
    /// rules, policies and chains keep counting across commits, and packets counted between the read and the
    /// commit are not lost.
    func commit() throws(JobboxError) {
        let table = image.serialised()
        let old = try socket.replace(name, with: table, validHooks: image.validHooks, readCount: image.readCount)
        let counters = table.readIndices.map { index in index.flatMap { $0 < old.count ? old[$0] : nil } ?? xt_counters() }
        try socket.addCounters(name, counters)
    }

    // MARK: - Targets

    /// The standard verdicts by name, as a standard target stores them.
    static let verdicts: [String: Int32] = [
        "ACCEPT": IptablesImage.Layout.acceptVerdict, "DROP": IptablesImage.Layout.dropVerdict,
        "QUEUE": IptablesImage.Layout.queueVerdict, "RETURN": IptablesImage.Layout.returnVerdict,
    ]

    /// A rule's target as iptables names it.
    static func label(of rule: IptablesImage.Entry) -> String {
        switch rule.flow {
        case .jump(let chain): return chain
        case .fallThrough: return ""
        case .verdict:
            guard let verdict = IptablesImage.verdict(rule.bytes) else { return IptablesImage.targetName(rule.bytes) }
            return verdicts.first { $0.value == verdict }?.key ?? ""
        }
    }

    /// `entry` (jobbox's own, from `IptablesEntry`) checked and with its target resolved as libiptc resolves it:
    /// a verdict's or a chain's name becomes the standard target (name `""`) with that verdict or jump.
    private func mapped(_ entry: [UInt8], _ operation: String, _ chain: String) throws(JobboxError) -> IptablesImage.Entry {
        let parts: [(offset: Int, bytes: [UInt8])]
        do throws(JobboxError) {
            parts = try IptablesImage.split(entry, table: name)
        } catch {
            throw failure(operation, chain, "a malformed rule", .invalidArgument)
        }
        guard parts.count == 1 else { throw failure(operation, chain, "a malformed rule", .invalidArgument) }
        var bytes = entry
        let target = IptablesImage.targetOffset(bytes)
        let label = IptablesImage.targetName(bytes)
        var flow = IptablesImage.Entry.Flow.verdict
        var verdict: Int32 = 0
        if label.isEmpty {
            flow = .fallThrough
        } else if let standard = Self.verdicts[label] {
            verdict = standard
        } else if let found = image.chains.first(where: { $0.name == label }) {
            guard found.hook == nil else { throw failure(operation, chain, "a rule cannot jump to built-in chain \(label)", .invalidArgument) }
            flow = .jump(label)
        } else {
            // A target extension (REJECT, MASQUERADE): the kernel checks it at commit.
            return IptablesImage.Entry(bytes: bytes, flow: .verdict, readIndex: nil)
        }
        guard Int(IptablesImage.load(bytes, target, as: UInt16.self)) == IptablesImage.Layout.standardTargetSize else {
            throw failure(operation, chain, "a malformed standard target", .invalidArgument)
        }
        // The name and revision zeroed: the kernel's standard target is named "" (XT_STANDARD_TARGET).
        let nameStart = target + 2
        let nameAndRevision = IptablesImage.Layout.extensionNameSize + 1
        bytes.replaceSubrange(nameStart..<nameStart + nameAndRevision, with: repeatElement(0, count: nameAndRevision))
        let verdictAt = target + IptablesImage.Layout.extensionHeaderSize
        withUnsafeBytes(of: verdict) { bytes.replaceSubrange(verdictAt..<verdictAt + 4, with: $0) }
        return IptablesImage.Entry(bytes: bytes, flow: flow, readIndex: nil)
    }
}
