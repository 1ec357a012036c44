import CNetacctBPF
import JobboxCgroups
import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A bpf job counted by the node service's programs (`netacct --node`) instead of programs of its own: when its
/// cgroup lies below the cgroup the service's pinned links are attached to, the service's programs already add
/// each of its packets to the entry of its cgroup (and of every ancestor) in the pinned counters map, with the same
/// classes. So the run loads no program and makes no map: the job's figures are its cgroup's entry, less what the
/// entry held when the job started (nothing for a cgroup netacct makes; cg-exec's may have counted before).
///
/// Trusted inputs: the configuration (root's: the pin directory), the kernel (the pinned objects, their info, the
/// cgroup tree), and the pin directory only as `NodePins.openForReading` checks it (root's alone); every pinned
/// object is checked to be the service's (`jb_netacct_node_programs_open`) before anything in it is believed.
package final class BPFNodeCounting {
    /// The pinned counters map.
    let map: NodeCountersMap
    /// Its kernel id, recorded in the lease for `--show`.
    package let mapID: UInt32
    /// The job cgroup's id (its entry's key), 0 until it is made.
    package private(set) var cgroupID: UInt64 = 0
    /// What the entry held when the job started.
    package private(set) var base = TrafficCounters()
    private var closed = false

    private init(map: NodeCountersMap, mapID: UInt32) {
        self.map = map
        self.mapID = mapID
    }

    deinit { close() }

    /// The node service's counting for a job in `place` (below `unified`'s mount) that counts `internal` networks
    /// and asks for `denyExternal`, or why there is none (said with `--verbose`, then the job's own programs load).
    package static func open(
        pinDirectory: String, place: BPFJobCgroup, unified: CgroupHierarchy, internalIPv4: [IPv4Network], internalIPv6: [IPv6Network],
        denyExternal: Bool
    ) -> Result<BPFNodeCounting, NodeCountingRefusal> {
        // Only the job's own programs drop packets: the service's never do.
        if denyExternal { return .failure(NodeCountingRefusal("--deny-external needs the job's own programs")) }
        let directory: Int32?
        do {
            directory = try NodePins.openForReading(pinDirectory)
        } catch {
            return .failure(NodeCountingRefusal(error.description))
        }
        guard let directory else { return .failure(NodeCountingRefusal("no node service's pins in \(pinDirectory)")) }
        defer { Glibc.close(directory) }
        var programs = jb_netacct_node_programs()
        var reason: UnsafePointer<CChar>? = nil
        guard jb_netacct_node_programs_open("/proc/self/fd/\(directory)", &programs, &reason) == 0 else {
            return .failure(NodeCountingRefusal("\(reason.map { String(cString: $0) } ?? "the node service's pins are not usable") (\(pinDirectory))"))
        }
        let counting = BPFNodeCounting(map: NodeCountersMap(fd: programs.counters_fd), mapID: programs.counters_id)
        defer { Glibc.close(programs.networks_fd) }
        if programs.deny_external != 0 { return .failure(NodeCountingRefusal("the node service's programs drop external packets")) }
        if let refusal = Self.levelRefusal(place: place, unified: unified, programs: programs) { return .failure(refusal) }
        let expected = Self.networks(BPFAccounting.networkEntries(internalIPv4: internalIPv4, internalIPv6: internalIPv6))
        guard let counted = Self.readNetworks(programs.networks_fd, capacity: expected.count + 1), counted == expected else {
            return .failure(NodeCountingRefusal("the node service's internal networks are not this job's"))
        }
        return .success(counting)
    }

    /// Why the service's programs do not count the job's cgroup in an entry of its own: its cgroup is not below
    /// theirs, or deeper than they count (`JB_NETACCT_MAX_LEVELS` levels from theirs), or they were told another
    /// level than their cgroup's. Levels are counted from the hierarchy's root, so the mount must show it (its
    /// root's inode is 1), as the kernel's `bpf_skb_ancestor_cgroup_id` counts them.
    static func levelRefusal(place: BPFJobCgroup, unified: CgroupHierarchy, programs: jb_netacct_node_programs) -> NodeCountingRefusal? {
        // Where each component below the mount ends in the path: level L's directory is the path up to the Lth.
        // Offsets, not split-off pieces: an array of slices is a generic type the runtime would build per job.
        let path = Array(place.path.utf8)
        var ends: [Int] = []
        var index = unified.mountPoint.utf8.count
        while index < path.count {
            while index < path.count, path[index] == UInt8(ascii: "/") { index += 1 }
            guard index < path.count else { break }
            while index < path.count, path[index] != UInt8(ascii: "/") { index += 1 }
            ends.append(index)
        }
        let components = ends.count
        // A cgroup netacct makes does not exist yet: only its ancestors can be the service's.
        let candidates = place.made ? components - 1 : components
        var info = stat()
        guard stat(unified.mountPoint, &info) == 0, info.st_ino == 1 else {
            return NodeCountingRefusal("the cgroup2 mount does not show the hierarchy's root")
        }
        for level in 0...max(candidates, 0) {
            if level > 0 {
                let directory = String(decoding: path[..<ends[level - 1]], as: UTF8.self)
                guard stat(directory, &info) == 0 else { break }
            }
            guard UInt64(info.st_ino) == programs.cgroup_id else { continue }
            if programs.first_level != UInt32(level) {
                return NodeCountingRefusal("the node service's programs count from level \(programs.first_level), their cgroup's is \(level)")
            }
            if components - level >= Int(JB_NETACCT_MAX_LEVELS) {
                return NodeCountingRefusal("the job's cgroup is more than \(JB_NETACCT_MAX_LEVELS - 1) levels below the node service's")
            }
            return nil
        }
        return NodeCountingRefusal("the job's cgroup is not below the node service's (cgroup id \(programs.cgroup_id))")
    }

    /// A networks map's contents as the programs see them, in one comparable form: each key's family and prefix
    /// with the bits past the prefix cleared (the trie matches only the prefix), with its kind, in byte order; a
    /// later entry of the same key wins, as an update does. Byte arrays, not a dictionary: a dictionary's storage is
    /// a generic class the Swift runtime would build, checking its key's conformances, at every job's start.
    static func networks(_ entries: [BPFAccounting.NetworkEntry]) -> [[UInt8]] {
        var contents: [[UInt8]] = []
        for entry in entries {
            let key = Self.key(prefixLength: UInt32(8 + entry.length), family: UInt8(truncatingIfNeeded: entry.family), address: entry.octets)
            Self.add(key, kind: UInt32(entry.kind), to: &contents)
        }
        contents.sort { $0.lexicographicallyPrecedes($1) }
        return contents
    }

    /// The networks map open at `fd`, as `networks` makes it; nil when it holds more than `capacity` entries (not
    /// the expected ones, then) or cannot be read.
    static func readNetworks(_ fd: Int32, capacity: Int) -> [[UInt8]]? {
        var keys = [jb_netacct_key](repeating: jb_netacct_key(), count: capacity)
        var kinds = [UInt32](repeating: 0, count: capacity)
        let count = Int(jb_netacct_node_networks(fd, &keys, &kinds, Int32(capacity)))
        guard count >= 0, count <= capacity else { return nil }
        var contents: [[UInt8]] = []
        for index in 0..<count {
            let bytes = withUnsafeBytes(of: keys[index].data) { Array($0) }
            Self.add(Self.key(prefixLength: keys[index].prefixlen, family: bytes[0], address: Array(bytes.dropFirst())), kind: kinds[index], to: &contents)
        }
        contents.sort { $0.lexicographicallyPrecedes($1) }
        return contents
    }

    /// Adds the entry of `key` and `kind` to `contents` (the key's length, the key, the kind's four bytes), in place
    /// of one of the same key.
    static func add(_ key: [UInt8], kind: UInt32, to contents: inout [[UInt8]]) {
        let entry = [UInt8(truncatingIfNeeded: key.count)] + key + [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: kind >> $0) }
        let keyBytes = key.count + 1
        contents.removeAll { $0.count == entry.count && $0[..<keyBytes] == entry[..<keyBytes] }
        contents.append(entry)
    }

    /// A networks key compared by what the trie matches: its prefix length, family and the prefix's bits.
    static func key(prefixLength: UInt32, family: UInt8, address: [UInt8]) -> [UInt8] {
        var bits = Int(prefixLength) - 8
        var key = [UInt8(truncatingIfNeeded: prefixLength), family]
        for byte in address {
            key.append(bits >= 8 ? byte : bits <= 0 ? 0 : byte & UInt8(truncatingIfNeeded: 0xFF << (8 - bits)))
            bits -= 8
        }
        // Zeros past the address (the IPv4 key's 16 unused bytes) change nothing.
        while key.count > 2, key.last == 0 { key.removeLast() }
        return key
    }

    /// Starts the job's counting in its cgroup, made with id `id`: what the entry holds now is not the job's.
    package func start(cgroupID id: UInt64) throws(JobboxError) {
        cgroupID = id
        base = try map.counters(of: id)
    }

    /// The job's counters: its cgroup's entry less what it held at the start.
    package func counters() throws(JobboxError) -> TrafficCounters {
        try map.counters(of: cgroupID).subtracting(base)
    }

    /// Drops the entry of the cgroup netacct made and removed: the service's sweep would drop it within its period
    /// (10 s), meanwhile holding one of the map's entries, and its counts are in its ancestors' entries already.
    /// Cg-exec's cgroup lives on, and its entry is what the service reports for it (jobstat): kept.
    package func dropEntry() {
        if cgroupID != 0 { map.drop(cgroupID) }
    }

    /// Closes the map (idempotent); the service's programs count on.
    package func close() {
        if !closed { Glibc.close(map.fd) }
        closed = true
    }
}

/// Why a job is not counted by the node service's programs (said with `--verbose`).
package struct NodeCountingRefusal: Error, Sendable, Equatable {
    package let reason: String
    package init(_ reason: String) { self.reason = reason }
}

extension TrafficCounters {
    /// These counters less `base` (each class; never below zero).
    func subtracting(_ base: TrafficCounters) -> TrafficCounters {
        var result = TrafficCounters()
        result.outgoingInternal = outgoingInternal > base.outgoingInternal ? outgoingInternal - base.outgoingInternal : 0
        result.outgoingExternal = outgoingExternal > base.outgoingExternal ? outgoingExternal - base.outgoingExternal : 0
        result.incomingInternal = incomingInternal > base.incomingInternal ? incomingInternal - base.incomingInternal : 0
        result.incomingExternal = incomingExternal > base.incomingExternal ? incomingExternal - base.incomingExternal : 0
        return result
    }
}
