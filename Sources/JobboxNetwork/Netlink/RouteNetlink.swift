import CNetfilter
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The rtnetlink requests netacct sends, built as bytes so tests can compare them with fixtures.
package enum RouteRequest {
    /// `RTM_NEWLINK` for a veth pair: `name` in the sender's namespace and its peer `peerName` created
    /// directly in the network namespace of process `peerNamespacePID`, so the peer never appears on the host.
    package static func createVeth(name: String, peerName: String, peerNamespacePID: Int32, sequence: UInt32) -> NetlinkMessage {
        let message = NetlinkMessage(type: UInt16(RTM_NEWLINK), flags: NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, sequence: sequence)
        message.putExtraHeader(ifinfomsg())
        message.put(Int32(IFLA_IFNAME), string: name)
        message.nest(Int32(IFLA_LINKINFO)) {
            message.put(Int32(IFLA_INFO_KIND), string: "veth")
            message.nest(Int32(IFLA_INFO_DATA)) {
                message.nest(Int32(VETH_INFO_PEER)) {
                    message.putRaw(ifinfomsg())
                    message.put(Int32(IFLA_IFNAME), string: peerName)
                    message.put(Int32(IFLA_NET_NS_PID), u32: UInt32(bitPattern: peerNamespacePID))
                }
            }
        }
        return message
    }

    /// `RTM_NEWLINK` that sets the link named `name` up.
    package static func setLinkUp(name: String, sequence: UInt32) -> NetlinkMessage {
        let message = NetlinkMessage(type: UInt16(RTM_NEWLINK), flags: NLM_F_ACK, sequence: sequence)
        var info = ifinfomsg()
        info.ifi_flags = UInt32(IFF_UP)
        info.ifi_change = UInt32(IFF_UP)
        message.putExtraHeader(info)
        message.put(Int32(IFLA_IFNAME), string: name)
        return message
    }

    /// `RTM_GETLINK` for the link named `name` (answered by one `RTM_NEWLINK` message).
    package static func getLink(name: String, sequence: UInt32) -> NetlinkMessage {
        let message = NetlinkMessage(type: UInt16(RTM_GETLINK), flags: 0, sequence: sequence)
        message.putExtraHeader(ifinfomsg())
        message.put(Int32(IFLA_IFNAME), string: name)
        return message
    }

    /// `RTM_DELLINK` for the link named `name` (a veth takes its peer with it).
    package static func deleteLink(name: String, sequence: UInt32) -> NetlinkMessage {
        let message = NetlinkMessage(type: UInt16(RTM_DELLINK), flags: NLM_F_ACK, sequence: sequence)
        message.putExtraHeader(ifinfomsg())
        message.put(Int32(IFLA_IFNAME), string: name)
        return message
    }

    /// `RTM_NEWADDR` giving link `index` the address `address/prefixLength`; the kernel adds the prefix route.
    package static func addAddress(index: Int32, address: IPv4Address, prefixLength: Int, sequence: UInt32) -> NetlinkMessage {
        let message = NetlinkMessage(type: UInt16(RTM_NEWADDR), flags: NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, sequence: sequence)
        var info = ifaddrmsg()
        info.ifa_family = UInt8(AF_INET)
        info.ifa_prefixlen = UInt8(prefixLength)
        info.ifa_scope = UInt8(RT_SCOPE_UNIVERSE.rawValue)
        info.ifa_index = UInt32(bitPattern: index)
        message.putExtraHeader(info)
        message.put(Int32(IFA_LOCAL), address: address)
        message.put(Int32(IFA_ADDRESS), address: address)
        return message
    }

    /// `RTM_NEWROUTE` for the default route through `gateway` on link `index`, in the main table.
    package static func addDefaultRoute(gateway: IPv4Address, index: Int32, sequence: UInt32) -> NetlinkMessage {
        let message = NetlinkMessage(type: UInt16(RTM_NEWROUTE), flags: NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, sequence: sequence)
        var route = rtmsg()
        route.rtm_family = UInt8(AF_INET)
        route.rtm_table = UInt8(RT_TABLE_MAIN.rawValue)
        route.rtm_protocol = UInt8(RTPROT_BOOT)
        route.rtm_scope = UInt8(RT_SCOPE_UNIVERSE.rawValue)
        route.rtm_type = UInt8(RTN_UNICAST)
        message.putExtraHeader(route)
        message.put(Int32(RTA_GATEWAY.rawValue), address: gateway)
        message.put(Int32(RTA_OIF.rawValue), u32: UInt32(bitPattern: index))
        return message
    }
}

/// rtnetlink operations on the network namespace a socket was opened in.
package struct RouteNetlink {
    private let socket: NetlinkSocket

    /// Opens a `NETLINK_ROUTE` socket in the current network namespace.
    package init() throws(Errno) {
        socket = try NetlinkSocket(bus: NETLINK_ROUTE)
    }

    /// Creates a veth pair whose peer lives in the namespace of process `peerNamespacePID`.
    package func createVeth(name: String, peerName: String, peerNamespacePID: Int32) throws(Errno) {
        try socket.request(RouteRequest.createVeth(name: name, peerName: peerName, peerNamespacePID: peerNamespacePID, sequence: socket.nextSequence()))
    }

    /// Sets link `name` up.
    package func setUp(_ name: String) throws(Errno) {
        try socket.request(RouteRequest.setLinkUp(name: name, sequence: socket.nextSequence()))
    }

    /// The RFC 2863 operational state of link `name` (`IF_OPER_UP` is 6), from its `RTM_GETLINK` answer; nil
    /// when the answer has none.
    ///
    /// For a device whose carrier comes and goes (a veth) this says whether it can send: the kernel's link-watch
    /// work sets the state and, in the same step under the RTNL lock, swaps the device's transmit queue from
    /// `noop` (which drops everything) to its real one. That work runs after the carrier came on, later, and
    /// waits for the RTNL lock, which other namespaces' set-up and teardown hold; only the end of a veth pair
    /// brought up last gets its queue at once.
    package func operationalState(_ name: String) throws(Errno) -> UInt8? {
        var state: UInt8?
        try socket.query(RouteRequest.getLink(name: name, sequence: socket.nextSequence())) { reply in
            state = reply.attributes(after: MemoryLayout<ifinfomsg>.size).u8(Int32(IFLA_OPERSTATE))
        }
        return state
    }

    /// `IF_OPER_UP`: the operational state of a link that can send.
    package static let operationalUp = UInt8(IF_OPER_UP)

    /// Deletes link `name`; false when there was no such link.
    @discardableResult
    package func deleteLink(_ name: String) throws(Errno) -> Bool {
        do {
            try socket.request(RouteRequest.deleteLink(name: name, sequence: socket.nextSequence()))
            return true
        } catch .operationNotSupportedByDevice {
            return false
        }
    }

    /// Gives link `name` the address `address/prefixLength`.
    package func addAddress(_ name: String, _ address: IPv4Address, prefixLength: Int) throws(Errno) {
        let index = try Self.index(of: name)
        try socket.request(RouteRequest.addAddress(index: index, address: address, prefixLength: prefixLength, sequence: socket.nextSequence()))
    }

    /// Adds the default route through `gateway` on link `name`.
    package func addDefaultRoute(via gateway: IPv4Address, on name: String) throws(Errno) {
        let index = try Self.index(of: name)
        try socket.request(RouteRequest.addDefaultRoute(gateway: gateway, index: index, sequence: socket.nextSequence()))
    }

    /// The index of link `name` in the current network namespace.
    package static func index(of name: String) throws(Errno) -> Int32 {
        let index = if_nametoindex(name)
        if index == 0 { throw Errno.last }
        return Int32(bitPattern: index)
    }
}
