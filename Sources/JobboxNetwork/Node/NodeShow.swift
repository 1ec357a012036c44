import CLinux
import JobboxCgroups
import JobboxCore
import JobboxNetacctClient

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// `netacct --show --self | --cgroup PATH | --all`: the node service's counters. Root reads the pinned map
/// itself (so it works while the service is stopped); anyone else asks the service, which checks who asks.
package struct NetacctNodeShow {
    package let socketPath: String
    package let pinDirectory: String
    package let accountingCgroup: String

    package init(socketPath: String, pinDirectory: String, accountingCgroup: String) {
        self.socketPath = socketPath
        self.pinDirectory = pinDirectory
        self.accountingCgroup = accountingCgroup
    }

    /// The ads answering `request`.
    package func ads(_ request: NetacctNodeRequest) throws(JobboxError) -> [ClassAd] {
        guard Privilege.isRoot else {
            do {
                return try NetacctNodeClient(socketPath: socketPath).ask(request)
            } catch {
                switch error {
                case .unavailable(let reason): throw JobboxError.invalid("cannot reach the node service", socketPath, "\(reason) (is netacct --node running?)")
                case .refused(let reason): throw JobboxError.invalid("the node service refused", request.line.dropLast().description, reason)
                case .broken(let reason): throw JobboxError.invalid("cannot read the node service's answer", socketPath, reason)
                }
            }
        }
        let map = try NodeCountersMap.openPinned(pinDirectory)
        defer { close(map.fd) }
        let own = (try? CgroupMembership.read())?.entries.first { $0.hierarchyID == 0 && $0.controllers.isEmpty }?.path
        let reader = NodeReader(cgroups: try NodeCgroups.current(accounting: accountingCgroup), map: map)
        switch reader.answer(request, peer: PeerCgroup(uid: 0, cgroup: own.flatMap { NetacctNodeRequest.cleanCgroupPath($0) })) {
        case .success(let ads): return ads
        case .failure(let refusal): throw JobboxError.invalid("cannot show", request.line.dropLast().description, refusal.reason)
        }
    }

    /// Whether the node service has left its counters pinned (it runs, or ran and was not cleaned up).
    package var isPinned: Bool { access(pinDirectory + "/counters", F_OK) == 0 }
}

extension NetacctCleanup {
    /// Removes what a node service left when none runs (its lock is free): the pinned links (detached) and map,
    /// the pin directory, and the socket file. Returns how many things it removed; nothing while a service runs.
    package func removeStaleNode(pinDirectory: String, socketPath: String) throws(JobboxError) -> Int {
        var lock = NodeLock(directory: leases.directory)
        guard try lock.take() else {
            if access(pinDirectory, F_OK) == 0 { diagnostics.note("left the node service's pins in \(pinDirectory): netacct --node runs") }
            return 0
        }
        defer { lock.release() }
        var removed = try NodeCountersMap.removePins(pinDirectory)
        if removed > 0 { diagnostics.note("removed the node service's programs and counters pinned in \(pinDirectory)") }
        if NodeSocket.removeStale(socketPath) {
            diagnostics.note("removed the node service's socket \(socketPath)")
            removed += 1
        }
        return removed
    }
}
