import CNetfilter
import JobboxCore

/// One legacy iptables table as chains of entries: the blob `IPT_SO_GET_ENTRIES` returns, taken apart so that
/// chains and rules can be added and removed, and put back together for `IPT_SO_SET_REPLACE` with every offset
/// recomputed.
///
/// The layout is libiptc's, which the kernel does not enforce but iptables always writes: a built-in chain runs
/// from its hook's entry to its underflow, the policy; a user chain is an `ERROR` entry carrying its name, its
/// rules, and an unconditional `RETURN`; the table ends with an `ERROR` entry. A standard target's verdict is a
/// verdict when negative, else the offset it jumps (or goes) to: the first rule of a user chain, or the next
/// entry (a rule with no target).
///
/// Not trusted: the blob comes from the kernel but holds what any root process (Docker, the admin's scripts, a
/// tool run as root) put there. Every size and offset is checked before it is used, and a table laid out in any
/// other way is refused, never guessed at, so that it is never committed back damaged. An entry's bytes
/// (matches, targets of any kind, counters) are kept exactly as they came; only the verdicts of jumps are
/// rewritten, to where their chains now start.
struct IptablesImage {
    /// One entry: an `ipt_entry` with its matches and target.
    struct Entry {
        /// Where a standard target's non-negative verdict leads; `verdict` for everything else, whose bytes are
        /// kept as they are.
        enum Flow: Equatable {
            case verdict
            /// To the first rule of the user chain of this name (`-j CHAIN`, or `-g CHAIN` with `IPT_F_GOTO`).
            case jump(String)
            /// To the next entry: a rule without a target.
            case fallThrough
        }

        var bytes: [UInt8]
        var flow: Flow
        /// Its position in the table as read, whose counters it gets back after a commit; nil for a new entry.
        var readIndex: Int?
    }

    /// A chain: a built-in one (`hook` set, no head) or a user one.
    struct Chain {
        var name: String
        /// The netfilter hook (`NF_INET_*`) of a built-in chain.
        var hook: Int?
        /// A user chain's `ERROR` entry, which names it.
        var head: Entry?
        var rules: [Entry]
        /// The built-in chain's policy, or the user chain's closing `RETURN`.
        var foot: Entry
    }

    /// What `IPT_SO_SET_REPLACE` takes besides the table's name and valid hooks.
    struct Serialised {
        var entries: [UInt8]
        var count: Int
        var hookEntry: [UInt32]
        var underflow: [UInt32]
        /// For each entry in order, the position it had in the table as read.
        var readIndices: [Int?]
    }

    /// The chains in table order (built-in ones first, as iptables writes them).
    var chains: [Chain]
    /// The closing `ERROR` entry.
    var end: Entry
    /// The hooks the table is attached to (`valid_hooks`).
    let validHooks: UInt32
    /// The hook arrays as read, which the kernel ignores for hooks not valid: kept so the round trip is exact.
    private let readHookEntry: [UInt32]
    private let readUnderflow: [UInt32]
    /// The number of entries the table had when read.
    let readCount: Int

    /// The kernel's layout constants (`ip_tables.h`, `x_tables.h`).
    enum Layout {
        static let entrySize = MemoryLayout<ipt_entry>.size
        static let targetOffsetField = MemoryLayout<ipt_entry>.offset(of: \ipt_entry.target_offset) ?? 88
        static let nextOffsetField = MemoryLayout<ipt_entry>.offset(of: \ipt_entry.next_offset) ?? 90
        static let countersField = MemoryLayout<ipt_entry>.offset(of: \ipt_entry.counters) ?? 96
        /// `struct xt_entry_target`/`xt_entry_match`: a 2-byte size, a 29-byte name, a revision.
        static let extensionHeaderSize = 32
        static let extensionNameSize = 29
        /// `XT_ALIGN(sizeof(struct xt_standard_target))`: the header and an `int` verdict.
        static let standardTargetSize = 40
        /// `XT_ALIGN(sizeof(struct xt_error_target))`: the header and a 30-byte name.
        static let errorTargetSize = 64
        static let errorNameSize = 30
        static let hookCount = 5
        /// `XT_RETURN`, and the verdicts `NF_DROP`, `NF_ACCEPT`, `NF_QUEUE` as a standard target stores them.
        static let returnVerdict: Int32 = -5
        static let dropVerdict: Int32 = -1
        static let acceptVerdict: Int32 = -2
        static let queueVerdict: Int32 = -4
    }

    // MARK: - Reading entries

    /// The size at `offset` of `bytes` (native byte order, as the kernel wrote it); the caller checked the bounds.
    static func load<Value: FixedWidthInteger>(_ bytes: [UInt8], _ offset: Int, as type: Value.Type) -> Value {
        bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: Value.self) }
    }

    static func targetOffset(_ entry: [UInt8]) -> Int { Int(load(entry, Layout.targetOffsetField, as: UInt16.self)) }

    /// The target's name (`""` for the standard target); the entry was checked by `split`.
    static func targetName(_ entry: [UInt8]) -> String {
        let start = targetOffset(entry) + 2
        return String(decoding: entry[start..<start + Layout.extensionNameSize].prefix { $0 != 0 }, as: UTF8.self)
    }

    /// A standard target's verdict, nil for any other target.
    static func verdict(_ entry: [UInt8]) -> Int32? {
        let target = targetOffset(entry)
        guard entry[target + 2] == 0, entry.count - target >= Layout.standardTargetSize else { return nil }
        return load(entry, target + Layout.extensionHeaderSize, as: Int32.self)
    }

    /// The name an `ERROR` entry carries, nil for any other entry.
    static func errorName(_ entry: [UInt8]) -> String? {
        let target = targetOffset(entry)
        guard targetName(entry) == "ERROR", entry.count - target >= Layout.errorTargetSize else { return nil }
        let start = target + Layout.extensionHeaderSize
        return String(decoding: entry[start..<start + Layout.errorNameSize].prefix { $0 != 0 }, as: UTF8.self)
    }

    static func malformed(_ table: String, _ reason: String) -> JobboxError {
        JobboxError("cannot read iptables table", table, reason: "the kernel's table is not laid out as iptables writes it: \(reason)")
    }

    /// The entries of `blob` with their offsets, each checked to lie within the blob, its matches and target
    /// within the entry, and the next entry aligned (the checks that make every later read in bounds).
    static func split(_ blob: [UInt8], table: String) throws(JobboxError) -> [(offset: Int, bytes: [UInt8])] {
        var entries: [(offset: Int, bytes: [UInt8])] = []
        var offset = 0
        while offset < blob.count {
            guard blob.count - offset >= Layout.entrySize else { throw malformed(table, "the entry at offset \(offset) runs past the table's end") }
            let target = Int(load(blob, offset + Layout.targetOffsetField, as: UInt16.self))
            let next = Int(load(blob, offset + Layout.nextOffsetField, as: UInt16.self))
            guard next % 8 == 0, next <= blob.count - offset, target >= Layout.entrySize, target <= next - Layout.extensionHeaderSize else {
                throw malformed(table, "the entry at offset \(offset) has target offset \(target) and size \(next)")
            }
            var part = Layout.entrySize
            while part < target {
                let size = Int(load(blob, offset + part, as: UInt16.self))
                guard part + Layout.extensionHeaderSize <= target, size >= Layout.extensionHeaderSize, size <= target - part else {
                    throw malformed(table, "a match of the entry at offset \(offset) does not fit in it")
                }
                part += size
            }
            let targetSize = Int(load(blob, offset + target, as: UInt16.self))
            guard targetSize >= Layout.extensionHeaderSize, targetSize <= next - target else {
                throw malformed(table, "the target of the entry at offset \(offset) does not fit in it")
            }
            let bytes = Array(blob[offset..<offset + next])
            if bytes[target + 2] == 0 && targetSize != Layout.standardTargetSize {
                throw malformed(table, "the standard target of the entry at offset \(offset) has size \(targetSize)")
            }
            entries.append((offset, bytes))
            offset += next
        }
        return entries
    }

    // MARK: - Parsing

    /// Takes apart the blob of table `table` as `IPT_SO_GET_ENTRIES` returned it, with the hook offsets and entry
    /// count of its `IPT_SO_GET_INFO`.
    init(table: String, blob: [UInt8], validHooks: UInt32, hookEntry: [UInt32], underflow: [UInt32], count: Int) throws(JobboxError) {
        let entries = try Self.split(blob, table: table)
        guard entries.count == count, count >= 1, hookEntry.count == Layout.hookCount, underflow.count == Layout.hookCount else {
            throw Self.malformed(table, "\(entries.count) entries where the kernel announced \(count)")
        }
        var indexOf: [Int: Int] = [:]
        for (index, entry) in entries.enumerated() { indexOf[entry.offset] = index }

        // The built-in chains by the index of their first entry: (hook, index of the policy).
        var builtins: [Int: (hook: Int, foot: Int)] = [:]
        for hook in 0..<Layout.hookCount where validHooks & (1 << UInt32(hook)) != 0 {
            guard let first = indexOf[Int(hookEntry[hook])], let foot = indexOf[Int(underflow[hook])], first <= foot, foot < count - 1,
                builtins[first] == nil
            else { throw Self.malformed(table, "hook \(hook)'s chain is not a run of entries") }
            builtins[first] = (hook, foot)
        }

        var chains: [Chain] = []
        var index = 0
        while index < count - 1 {
            if let builtin = builtins[index] {
                guard let name = Self.builtinNames[builtin.hook] else { throw Self.malformed(table, "hook \(builtin.hook) has no chain name") }
                for inner in index...builtin.foot where Self.errorName(entries[inner].bytes) != nil || (inner > index && builtins[inner] != nil) {
                    throw Self.malformed(table, "chain \(name) holds the start of another chain")
                }
                let rules = (index..<builtin.foot).map { Entry(bytes: entries[$0].bytes, flow: .verdict, readIndex: $0) }
                chains.append(
                    Chain(
                        name: name, hook: builtin.hook, head: nil, rules: rules,
                        foot: Entry(bytes: entries[builtin.foot].bytes, flow: .verdict, readIndex: builtin.foot)))
                index = builtin.foot + 1
                continue
            }
            guard let name = Self.errorName(entries[index].bytes) else {
                throw Self.malformed(table, "the entry at offset \(entries[index].offset) belongs to no chain")
            }
            var next = index + 1
            while next < count - 1 && builtins[next] == nil && Self.errorName(entries[next].bytes) == nil { next += 1 }
            guard next - index >= 2 else { throw Self.malformed(table, "user chain \(name) has no closing RETURN") }
            let rules = (index + 1..<next - 1).map { Entry(bytes: entries[$0].bytes, flow: .verdict, readIndex: $0) }
            chains.append(
                Chain(
                    name: name, hook: nil, head: Entry(bytes: entries[index].bytes, flow: .verdict, readIndex: index), rules: rules,
                    foot: Entry(bytes: entries[next - 1].bytes, flow: .verdict, readIndex: next - 1)))
            index = next
        }
        guard Self.errorName(entries[count - 1].bytes) != nil else { throw Self.malformed(table, "the last entry is not an ERROR entry") }
        guard chains.count(where: { $0.hook != nil }) == builtins.count else { throw Self.malformed(table, "a built-in chain lies inside another chain") }

        // Jumps, by the offset of the first entry after each user chain's head.
        var chainAt: [Int: String] = [:]
        var names: Set<String> = []
        for chain in chains {
            guard names.insert(chain.name).inserted else { throw Self.malformed(table, "two chains are named \(chain.name)") }
            if let head = chain.head?.readIndex { chainAt[entries[head + 1].offset] = chain.name }
        }
        for chainIndex in chains.indices {
            let chain = chains[chainIndex]
            guard let policy = Self.verdict(chain.foot.bytes), chain.hook == nil ? policy == Layout.returnVerdict : policy < 0 else {
                throw Self.malformed(table, "chain \(chain.name) does not end in a \(chain.hook == nil ? "RETURN" : "policy")")
            }
            for ruleIndex in chain.rules.indices {
                guard let read = chain.rules[ruleIndex].readIndex, let verdict = Self.verdict(entries[read].bytes), verdict >= 0 else { continue }
                let offset = entries[read].offset
                if Int(verdict) == offset + entries[read].bytes.count {
                    chains[chainIndex].rules[ruleIndex].flow = .fallThrough
                } else if let target = chainAt[Int(verdict)] {
                    chains[chainIndex].rules[ruleIndex].flow = .jump(target)
                } else {
                    throw Self.malformed(table, "the rule at offset \(offset) in chain \(chain.name) jumps to offset \(verdict), which starts no user chain")
                }
            }
        }
        self.chains = chains
        end = Entry(bytes: entries[count - 1].bytes, flow: .verdict, readIndex: count - 1)
        self.validHooks = validHooks
        readHookEntry = hookEntry
        readUnderflow = underflow
        readCount = count
    }

    /// The built-in chains' names by hook (`NF_INET_PRE_ROUTING` ... `NF_INET_POST_ROUTING`).
    static let builtinNames: [Int: String] = [0: "PREROUTING", 1: "INPUT", 2: "FORWARD", 3: "OUTPUT", 4: "POSTROUTING"]

    // MARK: - Serialising

    /// The table as one blob: chains in order, then the closing entry, with every jump pointed at where its
    /// chain now starts and the hooks at where their chains now are.
    func serialised() -> Serialised {
        // Where each user chain's rules start, before any byte is written.
        var start: [String: Int] = [:]
        var offset = 0
        for chain in chains {
            offset += chain.head?.bytes.count ?? 0
            start[chain.name] = offset
            offset += chain.rules.reduce(0) { $0 + $1.bytes.count } + chain.foot.bytes.count
        }
        var result = Serialised(entries: [], count: 0, hookEntry: readHookEntry, underflow: readUnderflow, readIndices: [])
        result.entries.reserveCapacity(offset + end.bytes.count)
        func append(_ entry: Entry) {
            var bytes = entry.bytes
            let verdictAt = Self.targetOffset(bytes) + Layout.extensionHeaderSize
            switch entry.flow {
            case .verdict: break
            case .jump(let chain):
                // A chain a rule jumps to is never deleted (`IptablesTable.deleteChain`), so it is there.
                let target = Int32(start[chain] ?? 0)
                withUnsafeBytes(of: target) { bytes.replaceSubrange(verdictAt..<verdictAt + 4, with: $0) }
            case .fallThrough:
                let target = Int32(result.entries.count + bytes.count)
                withUnsafeBytes(of: target) { bytes.replaceSubrange(verdictAt..<verdictAt + 4, with: $0) }
            }
            result.entries += bytes
            result.readIndices.append(entry.readIndex)
        }
        for chain in chains {
            if let head = chain.head { append(head) }
            if let hook = chain.hook { result.hookEntry[hook] = UInt32(result.entries.count) }
            chain.rules.forEach(append)
            if let hook = chain.hook { result.underflow[hook] = UInt32(result.entries.count) }
            append(chain.foot)
        }
        append(end)
        result.count = result.readIndices.count
        return result
    }
}
