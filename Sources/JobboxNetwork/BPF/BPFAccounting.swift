import CNetacctBPF
import JobboxCore
import NetacctBPFObject
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// One job's instance of netacct's cgroup BPF programs (`netacct.bpf.c`) with its own maps, loaded by netacct's own
/// loader (`jb_netacct_bpf.c`, the bpf() system call). Attached through bpf_links held by this process only: when netacct dies, even by kill -9,
/// the kernel detaches them, so there is nothing pinned and nothing to find in bpffs afterwards.
package final class BPFAccounting {
    private var handle: OpaquePointer?

    /// Loads the programs with `internal` networks and loopback (127.0.0.0/8, ::1: not counted) in their networks
    /// map; `denyExternal` makes them drop external packets after counting them.
    package convenience init(internalIPv4: [IPv4Network], internalIPv6: [IPv6Network], denyExternal: Bool) throws(JobboxError) {
        try self.init(object: Self.embeddedObject(), internalIPv4: internalIPv4, internalIPv6: internalIPv6, denyExternal: denyExternal)
    }

    /// Loads the programs of `object`: the embedded one, or a test's altered copy.
    init(object: [UInt8], internalIPv4: [IPv4Network], internalIPv6: [IPv6Network], denyExternal: Bool) throws(JobboxError) {
        var stage: UnsafePointer<CChar>? = nil
        let loaded = object.withUnsafeBytes { jb_netacct_bpf_load($0.baseAddress, $0.count, denyExternal ? 1 : 0, &stage) }
        guard let loaded else {
            throw JobboxError.lastErrno("cannot \(stage.map { String(cString: $0) } ?? "load the BPF programs")", "netacct.bpf.o")
        }
        handle = loaded
        try Self.addNetworks(to: loaded, internalIPv4: internalIPv4, internalIPv6: internalIPv6)
    }

    /// The BPF object built into netacct (a job's programs and the node service's), decoded.
    static func embeddedObject() throws(JobboxError) -> [UInt8] {
        guard let object = NetacctBPFObject.bytes() else {
            throw JobboxError.invalid("cannot load BPF programs", nil, "the embedded object is not base64 (a broken build)")
        }
        return object
    }

    /// One entry of the networks map: a network's family (`JB_NETACCT_FAMILY_*`), address bytes, prefix length
    /// and kind (`JB_NETACCT_REMOTE_*`); `shown` makes its text, for an error only.
    struct NetworkEntry {
        let family: Int32
        let octets: [UInt8]
        let length: Int
        let kind: Int32
        let shown: () -> String
    }

    /// What the networks map of programs counting with `internal` networks holds, in the order it is written: the
    /// internal networks first, loopback (127.0.0.0/8, ::1: not counted) last, so a loopback entry wins over an
    /// equal internal one. A network's text is made only for an error: its description builds generic collections
    /// whose metadata the runtime makes at first use, about 0.2 M instructions of every bpf run of netacct
    /// (bench/README.md).
    static func networkEntries(internalIPv4: [IPv4Network], internalIPv6: [IPv6Network]) -> [NetworkEntry] {
        var entries: [NetworkEntry] = []
        for network in internalIPv4 where !Self.ipv4Loopback.contains(network) {
            entries.append(
                NetworkEntry(family: JB_NETACCT_FAMILY_IPV4, octets: network.address.octets, length: network.prefixLength, kind: JB_NETACCT_REMOTE_INTERNAL) {
                    network.description
                })
        }
        for network in internalIPv6 {
            entries.append(
                NetworkEntry(family: JB_NETACCT_FAMILY_IPV6, octets: network.address.octets, length: network.prefixLength, kind: JB_NETACCT_REMOTE_INTERNAL) {
                    network.description
                })
        }
        entries.append(
            NetworkEntry(family: JB_NETACCT_FAMILY_IPV4, octets: Self.ipv4Loopback.address.octets, length: 8, kind: JB_NETACCT_REMOTE_LOOPBACK) {
                "127.0.0.0/8"
            })
        entries.append(
            NetworkEntry(family: JB_NETACCT_FAMILY_IPV6, octets: [UInt8](repeating: 0, count: 15) + [1], length: 128, kind: JB_NETACCT_REMOTE_LOOPBACK) {
                "::1/128"
            })
        return entries
    }

    /// Fills the networks map of the programs `loaded` with `networkEntries`.
    static func addNetworks(to loaded: OpaquePointer, internalIPv4: [IPv4Network], internalIPv6: [IPv6Network]) throws(JobboxError) {
        for entry in networkEntries(internalIPv4: internalIPv4, internalIPv6: internalIPv6) {
            let result = entry.octets.withUnsafeBufferPointer {
                jb_netacct_bpf_add_network(loaded, entry.family, $0.baseAddress, Int32(entry.length), entry.kind)
            }
            if result != 0 { throw JobboxError.lastErrno("cannot add network to the BPF map", entry.shown()) }
        }
    }

    deinit { close() }

    static let ipv4Loopback = IPv4Network(address: IPv4Address(0x7F00_0000), prefixLength: 8)

    /// Attaches ingress and egress to the cgroup open at `cgroupFD` (a directory of the unified hierarchy).
    package func attach(cgroupFD: Int32, path: String) throws(JobboxError) {
        var stage: UnsafePointer<CChar>? = nil
        if jb_netacct_bpf_attach(handle, cgroupFD, &stage) != 0 {
            throw JobboxError.lastErrno("cannot \(stage.map { String(cString: $0) } ?? "attach the BPF programs") to", path)
        }
    }

    /// The kernel id of the counters map, recorded in the lease for `--show`.
    package var countersMapID: UInt32 { handle.map { jb_netacct_bpf_counters_id($0) } ?? 0 }

    /// The job's counters: every cgroup of its subtree, summed.
    package func counters() throws(JobboxError) -> TrafficCounters {
        var total = jb_netacct_counters()
        if jb_netacct_bpf_read(handle, &total) != 0 { throw JobboxError.lastErrno("cannot read the BPF counters", nil) }
        return TrafficCounters(total)
    }

    /// The counters of the map with kernel id `id` (another netacct's: `--show`), checked to be netacct's.
    package static func counters(mapID id: UInt32) throws(JobboxError) -> TrafficCounters {
        var total = jb_netacct_counters()
        if jb_netacct_bpf_read_map_id(id, &total) != 0 { throw JobboxError.lastErrno("cannot read the BPF counters map", "\(id)") }
        return TrafficCounters(total)
    }

    /// Detaches the programs and frees the maps (idempotent).
    package func close() {
        if let handle { jb_netacct_bpf_close(handle) }
        handle = nil
    }
}

extension TrafficCounters {
    /// The byte counts of the BPF counters, by class.
    init(_ counters: jb_netacct_counters) {
        self.init()
        outgoingInternal = counters.bytes.0
        outgoingExternal = counters.bytes.1
        incomingInternal = counters.bytes.2
        incomingExternal = counters.bytes.3
    }
}
