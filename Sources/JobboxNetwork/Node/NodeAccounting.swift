import CNetacctBPF
import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The node service's programs and maps (`netacct --node`): loaded once, attached to NETWORK_ACCOUNTING_CGROUP
/// through links pinned in bpffs, counting into a pinned counters map keyed by cgroup id, where each entry holds
/// its cgroup's whole subtree (the program adds a packet to every ancestor's entry as well).
///
/// What outlives the process is in the pin directory: a restart (or a kill -9 and a start) finds the map and the
/// links there and takes them over (`jb_netacct_bpf_attach_node`), so no packet goes uncounted in between.
package final class NodeAccounting {
    private var handle: OpaquePointer?
    /// The counters map's descriptor (owned by the loaded instance).
    package let countersFD: Int32

    /// Loads the programs with the `internal` networks (loopback not counted), reusing or making the counters map
    /// pinned in `pinDirectory`; `firstLevel` is the level of the cgroup they will be attached to.
    package init(internalIPv4: [IPv4Network], internalIPv6: [IPv6Network], pinDirectory: String, firstLevel: UInt32) throws(JobboxError) {
        let object = try BPFAccounting.embeddedObject()
        var stage: UnsafePointer<CChar>? = nil
        let loaded = object.withUnsafeBytes { jb_netacct_bpf_load_node($0.baseAddress, $0.count, pinDirectory, firstLevel, &stage) }
        guard let loaded else {
            let reason = stage.map { String(cString: $0) } ?? "load the BPF programs"
            throw JobboxError.lastErrno(
                "cannot \(reason) (a pinned map of another netacct version: stop the service and run netacct --cleanup --stale)", pinDirectory)
        }
        handle = loaded
        countersFD = jb_netacct_bpf_counters_fd(loaded)
        try BPFAccounting.addNetworks(to: loaded, internalIPv4: internalIPv4, internalIPv6: internalIPv6)
    }

    deinit { close() }

    /// Attaches to the cgroup open at `cgroupFD` (id `cgroupID`, shown as `path`), taking over the links pinned in
    /// `pinDirectory`.
    package func attach(cgroupFD: Int32, cgroupID: UInt64, path: String, pinDirectory: String) throws(JobboxError) {
        var stage: UnsafePointer<CChar>? = nil
        if jb_netacct_bpf_attach_node(handle, cgroupFD, cgroupID, pinDirectory, &stage) != 0 {
            throw JobboxError.lastErrno("cannot \(stage.map { String(cString: $0) } ?? "attach the BPF programs") for", path)
        }
    }

    /// Frees this process's hold on the programs and maps; the pinned links keep them attached and counting.
    package func close() {
        if let handle { jb_netacct_bpf_close(handle) }
        handle = nil
    }
}

/// The node's counters map, read (and swept) through a descriptor: the service's own, or one opened from the pin
/// by root (`netacct --show` without the service).
package struct NodeCountersMap {
    package let fd: Int32

    package init(fd: Int32) { self.fd = fd }

    /// Opens the map pinned in `pinDirectory` (checked to be netacct's); the caller closes `fd`.
    package static func openPinned(_ pinDirectory: String) throws(JobboxError) -> NodeCountersMap {
        let fd = jb_netacct_node_open_counters(pinDirectory)
        if fd < 0 { throw JobboxError.lastErrno("cannot open the node's counters map in", pinDirectory) }
        return NodeCountersMap(fd: fd)
    }

    /// The counters of cgroup `id` and its subtree (zero when it has had no traffic).
    package func counters(of id: UInt64) throws(JobboxError) -> TrafficCounters {
        var value = jb_netacct_counters()
        if jb_netacct_node_lookup(fd, id, &value) != 0 {
            if errno == ENOENT { return TrafficCounters() }
            throw JobboxError.lastErrno("cannot read the node's counters of cgroup id", "\(id)")
        }
        return TrafficCounters(value)
    }

    /// The counters of cgroup `id` in the map with kernel id `mapID` (a job's lease names it: `--show`), checked to
    /// be netacct's; zero when it has no entry.
    package static func counters(mapID: UInt32, of id: UInt64) throws(JobboxError) -> TrafficCounters {
        var value = jb_netacct_counters()
        if jb_netacct_node_read_map_id(mapID, id, &value) != 0 { throw JobboxError.lastErrno("cannot read the node's counters map", "\(mapID)") }
        return TrafficCounters(value)
    }

    /// Every cgroup id with an entry (0, the overflow entry, included).
    package func ids() throws(JobboxError) -> [UInt64] {
        var result: [UInt64] = []
        var key: UInt64 = 0
        var next: UInt64 = 0
        var first = true
        while true {
            let status = first ? jb_netacct_node_next_key(fd, nil, &next) : jb_netacct_node_next_key(fd, &key, &next)
            if status != 0 {
                if errno == ENOENT { return result }
                throw JobboxError.lastErrno("cannot list the node's counters", nil)
            }
            result.append(next)
            key = next
            first = false
        }
    }

    /// Drops cgroup `id`'s entry (a cgroup that is gone; its ancestors hold its counts already).
    package func drop(_ id: UInt64) {
        _ = jb_netacct_node_delete(fd, id)
    }

    /// Detaches the links pinned in `pinDirectory` and removes its pins and itself; how many pins went.
    package static func removePins(_ pinDirectory: String) throws(JobboxError) -> Int {
        var removed: Int32 = 0
        var stage: UnsafePointer<CChar>? = nil
        if jb_netacct_node_remove_pins(pinDirectory, &removed, &stage) != 0 {
            throw JobboxError.lastErrno("cannot \(stage.map { String(cString: $0) } ?? "remove the pins") in", pinDirectory)
        }
        return Int(removed)
    }
}
