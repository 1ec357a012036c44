/// Which firewall back end netacct programs.
package enum NetworkBackendChoice: String, Sendable, CaseIterable {
    /// nftables when the host's `iptables` is the nft flavour or legacy tables are absent, else legacy.
    case auto
    /// Legacy iptables, through the kernel's socket options.
    case iptables
    /// nftables through netlink.
    case nftables
    /// cgroup BPF programs on the job's own unified cgroup: no namespace, veth or firewall rule (never chosen by auto).
    case bpf
}
