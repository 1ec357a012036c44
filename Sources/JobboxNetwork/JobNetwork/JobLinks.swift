import JobboxCore
import SystemPackage

/// The job's veth pair and its addressing, made over rtnetlink:
///
/// ```
///  host namespace                              job namespace
///  jb_<id>  10.213.N.1/30  <---- veth ---->  eth0  10.213.N.2/30, default via 10.213.N.1
/// ```
///
/// IPv6 is turned off on both ends before they come up, so no router solicitation or DAD packet crosses the
/// veth: netacct is IPv4 only, and every packet that crosses is one it counts.
package enum JobLinks {
    /// Makes the pair for `lease` with its peer in the namespace of process `jobPID`, configures both ends and
    /// the job's routes. The job's side is configured from inside its namespace (`setns` there and back).
    package static func make(_ lease: JobNetworkLease, jobPID: Int32) throws(JobboxError) {
        let host = lease.names.interface
        let job = JobNetworkNames.jobInterface
        try step("cannot create veth pair", "\(host)/\(job)") { () throws(Errno) in
            try RouteNetlink().createVeth(name: host, peerName: job, peerNamespacePID: jobPID)
        }
        disableIPv6(host)
        try step("cannot configure", host) { () throws(Errno) in
            let route = try RouteNetlink()
            try route.addAddress(host, lease.hostAddress, prefixLength: lease.prefixLength)
            try route.setUp(host)
        }
        try NetworkNamespace.withNamespace(ofProcess: jobPID) { () throws(JobboxError) in
            disableIPv6(job)
            try step("cannot configure the job's", job) { () throws(Errno) in
                let route = try RouteNetlink()
                try route.setUp("lo")
                try route.addAddress(job, lease.jobAddress, prefixLength: lease.prefixLength)
                try route.setUp(job)
                try route.addDefaultRoute(via: lease.hostAddress, on: job)
            }
            try awaitSending(job)
        }
        try awaitSending(host)
    }

    /// How long a link may take to be able to send before set-up fails.
    static let sendingDeadline = Duration.seconds(10)

    /// Waits until link `name` (in the current network namespace) can send: its operational state is up
    /// (`RouteNetlink.operationalState`).
    ///
    /// The host's end is brought up first, so its transmit queue comes from the kernel's link-watch work, later:
    /// until then it drops what it sends, the ARP replies to the job included. Were that work late by more than
    /// ARP's three tries (it waits for the RTNL lock), a job's first datagram would be lost with no error; so a
    /// job starts only on links that can send. Measured here under namespace churn and CPU load, the work ran
    /// 0.06 ms (at most 0.33 ms) after the second end came up, so the first look usually says up.
    static func awaitSending(_ name: String, deadline: Duration = sendingDeadline) throws(JobboxError) {
        let end = MonotonicClock.now() + deadline.seconds
        var pause = 0.000_1
        while true {
            let state: UInt8?
            do {
                state = try RouteNetlink().operationalState(name)
            } catch {
                throw JobboxError.system("cannot read the state of link", name, error)
            }
            if state == RouteNetlink.operationalUp { return }
            let now = MonotonicClock.now()
            guard now < end else {
                throw JobboxError.invalid(
                    "cannot bring up link", name,
                    "the kernel has not made it able to send within \(deadline.seconds) s (operational state \(state.map(String.init) ?? "unknown"), not up)")
            }
            MonotonicClock.sleep(until: min(now + pause, end))
            pause = min(pause * 2, 0.01)
        }
    }

    /// Deletes the host's end (which takes the job's end with it); false when it was already gone, as it is once
    /// the job's namespace has died.
    @discardableResult
    package static func remove(_ names: JobNetworkNames) throws(JobboxError) -> Bool {
        // The last line behind lease validation: never delete a link netacct did not name (eth0, a bridge).
        guard names.interface.hasPrefix("jb_"), names.interface.utf8.count <= 15 else {
            throw JobboxError.invalid("refusing to delete link", names.interface, "it is not a name netacct gives a job's veth (jb_<id>)")
        }
        do {
            return try RouteNetlink().deleteLink(names.interface)
        } catch {
            throw JobboxError.system("cannot delete veth", names.interface, error)
        }
    }

    private static func step(_ operation: String, _ object: String, _ body: () throws(Errno) -> Void) throws(JobboxError) {
        do {
            try body()
        } catch {
            throw JobboxError.system(operation, object, error)
        }
    }

    /// Best effort: a kernel without IPv6 has no such knob, and then there is nothing to turn off.
    private static func disableIPv6(_ interface: String) {
        _ = try? NetworkNamespace.setSysctl("/proc/sys/net/ipv6/conf/\(interface)/disable_ipv6", "1")
    }
}
