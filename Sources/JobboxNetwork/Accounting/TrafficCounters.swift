import JobboxCore

/// A job's byte counts by class, as read from the firewall.
package struct TrafficCounters: Sendable, Equatable {
    /// Bytes (IP header included) from the job to internal addresses.
    package var outgoingInternal: UInt64 = 0
    /// Bytes from the job to external addresses.
    package var outgoingExternal: UInt64 = 0
    /// Bytes to the job from internal addresses.
    package var incomingInternal: UInt64 = 0
    /// Bytes to the job from external addresses.
    package var incomingExternal: UInt64 = 0

    /// All zero.
    package init() {}

    /// Adds `bytes` to `trafficClass`.
    package mutating func add(_ bytes: UInt64, to trafficClass: TrafficClass) {
        switch trafficClass {
        case .outgoingInternal: outgoingInternal &+= bytes
        case .outgoingExternal: outgoingExternal &+= bytes
        case .incomingInternal: incomingInternal &+= bytes
        case .incomingExternal: incomingExternal &+= bytes
        }
    }

    /// Bytes sent by the job.
    package var outgoing: UInt64 { outgoingInternal &+ outgoingExternal }
    /// Bytes received by the job.
    package var incoming: UInt64 { incomingInternal &+ incomingExternal }

    /// The counts under HTCondor's names, in bytes: `NetworkOutgoingInternal`, `NetworkOutgoingExternal`,
    /// `NetworkIncomingInternal`, `NetworkIncomingExternal`, and the totals `NetworkOutgoing`, `NetworkIncoming`.
    package var classAd: ClassAd {
        var ad = ClassAd()
        ad.set("NetworkOutgoingInternal", outgoingInternal)
        ad.set("NetworkOutgoingExternal", outgoingExternal)
        ad.set("NetworkIncomingInternal", incomingInternal)
        ad.set("NetworkIncomingExternal", incomingExternal)
        ad.set("NetworkOutgoing", outgoing)
        ad.set("NetworkIncoming", incoming)
        return ad
    }

    /// The class of counter `name` (`<chain>.<class>.<n>`) when it belongs to `chain`.
    package static func trafficClass(ofCounter name: String, chain: String) -> TrafficClass? {
        guard let (owner, trafficClass) = owner(ofCounter: name), owner == chain else { return nil }
        return trafficClass
    }

    /// The chain and class a counter named `<chain>.<class>.<n>` counts for, or nil for any other name.
    package static func owner(ofCounter name: String) -> (chain: String, trafficClass: TrafficClass)? {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[2].isEmpty, parts[2].allSatisfy(\.isASCIIDigit), let trafficClass = TrafficClass(rawValue: String(parts[1])) else {
            return nil
        }
        return (String(parts[0]), trafficClass)
    }
}
