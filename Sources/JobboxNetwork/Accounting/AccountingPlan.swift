import JobboxCore

/// The four ways a job's packet is counted: its direction across the job's veth and whether the remote address
/// is internal (`NETWORK_INTERNAL`, plus the job subnet) or external.
package enum TrafficClass: String, CaseIterable, Sendable {
    case outgoingInternal = "OutgoingInternal"
    case outgoingExternal = "OutgoingExternal"
    case incomingInternal = "IncomingInternal"
    case incomingExternal = "IncomingExternal"

    /// Whether the packet leaves the job (its remote address is the destination).
    package var isOutgoing: Bool { self == .outgoingInternal || self == .outgoingExternal }
    /// Whether the remote address is in an internal network.
    package var isInternal: Bool { self == .outgoingInternal || self == .incomingInternal }
}

/// One counting rule of a job's chain: packets of one direction whose remote address is in `remote` (nil: any
/// address not matched by an earlier rule) are counted under `counterName` and then returned to the calling
/// chain, or rejected.
package struct AccountingRule: Sendable, Equatable {
    /// The class, also the rule's comment.
    package let trafficClass: TrafficClass
    /// The remote network, nil for the external catch-all.
    package let remote: IPv4Network?
    /// Whether the packet is rejected (ICMP port unreachable) after being counted (`--deny-external`).
    package let reject: Bool
    /// The name of the rule's counter (nftables named counter): `<chain>.<class>.<n>`.
    package let counterName: String
}

/// Everything a firewall back end installs for one job: the accounting chain and its rules, the hooks that send
/// the job's traffic through it, and the NAT rule for the job's address.
///
/// Every packet that enters the chain matches exactly one rule, because every rule returns or rejects, the
/// rules of one direction end in a catch-all, and the hooks send a packet in only in the direction it crosses
/// the job's veth (in from the job: `INPUT`/`FORWARD` with the veth as input; out to the job: `FORWARD`/
/// `OUTPUT` with the veth as output).
package struct AccountingPlan: Sendable, Equatable {
    /// The chain (`JOB_<short id>`).
    package let chain: String
    /// The host end of the job's veth.
    package let interface: String
    /// The job's address, masqueraded on the way out.
    package let jobAddress: IPv4Address
    /// The counting rules in order: outgoing then incoming; per direction the internal networks, then the catch-all.
    package let rules: [AccountingRule]

    /// The plan for a job; `internalNetworks` are the internal networks in the order given, `jobSubnet` is appended when
    /// none of them covers it (the node itself and other jobs are never external).
    package init(chain: String, interface: String, jobAddress: IPv4Address, internalNetworks: [IPv4Network], jobSubnet: IPv4Network, denyExternal: Bool) {
        self.chain = chain
        self.interface = interface
        self.jobAddress = jobAddress
        let networks = Self.internalNetworks(internalNetworks, jobSubnet: jobSubnet)
        var rules: [AccountingRule] = []
        for (internalClass, externalClass) in [(TrafficClass.outgoingInternal, TrafficClass.outgoingExternal), (.incomingInternal, .incomingExternal)] {
            for (index, network) in networks.enumerated() {
                rules.append(
                    AccountingRule(trafficClass: internalClass, remote: network, reject: false, counterName: "\(chain).\(internalClass.rawValue).\(index)"))
            }
            rules.append(AccountingRule(trafficClass: externalClass, remote: nil, reject: denyExternal, counterName: "\(chain).\(externalClass.rawValue).0"))
        }
        self.rules = rules
    }

    /// `networks` with `jobSubnet` appended unless one of them covers it.
    package static func internalNetworks(_ networks: [IPv4Network], jobSubnet: IPv4Network) -> [IPv4Network] {
        networks.contains { $0.contains(jobSubnet) } ? networks : networks + [jobSubnet]
    }

    /// The class a counter name of this chain stands for; nil for a name of another chain or no class.
    package func trafficClass(ofCounter name: String) -> TrafficClass? {
        TrafficCounters.trafficClass(ofCounter: name, chain: chain)
    }
}
