import JobboxCore
import JobboxNetacctClient

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Answers requests from the node's counters: the service for every client, and root's `netacct --show` straight
/// from the pinned map when no service runs.
///
/// Who may read what: root (uid 0 as SO_PEERCRED says) any cgroup below NETWORK_ACCOUNTING_CGROUP and `all`;
/// anyone else its own cgroup and the cgroups below it when its own is below the accounting cgroup (a process left
/// in the accounting cgroup itself, or above it, is no job: it would see every job); a cgroup above its own that
/// is delegated to it (its directory is the caller's uid's: HTCondor's `.slice` on a v2 node, whose `.scope`
/// below, root's, holds the job wrapper and its jobstat); and a cgroup root delegated to its user wherever it runs
/// (a Slurm job's); see `NodeCgroups.isDelegatedForReading`. Nothing else (not a sibling's, not a parent that is
/// not its own).
package struct NodeReader {
    package let cgroups: NodeCgroups
    package let map: NodeCountersMap

    package init(cgroups: NodeCgroups, map: NodeCountersMap) {
        self.cgroups = cgroups
        self.map = map
    }

    /// The answer to `request` from `peer`: ClassAd text, or the refusal.
    package func answer(_ request: NetacctNodeRequest, peer: PeerCgroup) -> Result<[ClassAd], NetacctNodeRefusal> {
        let isRoot = peer.uid == 0
        switch request {
        case .all:
            guard isRoot else { return .failure(NetacctNodeRefusal("only root may ask for all cgroups")) }
            do {
                return .success(try allAds())
            } catch {
                return .failure(NetacctNodeRefusal(error.description))
            }
        case .current, .cgroup:
            guard let own = peer.cgroup else { return .failure(NetacctNodeRefusal("the asking process has no cgroup2 cgroup visible to the service")) }
            let ownIsJob = own != cgroups.accounting && cgroups.isCounted(own)
            let path: String
            if case .cgroup(let requested) = request {
                let readable =
                    isRoot || (ownIsJob && NetacctNodeRequest.isWithin(requested, own)) || cgroups.isDelegatedForReading(requested, to: peer.uid, from: own)
                guard readable else {
                    return .failure(
                        NetacctNodeRefusal(
                            "\(requested) is neither the caller's cgroup (\(own)) below \(cgroups.accounting) nor one below it, nor delegated to the caller (uid \(peer.uid))"
                        ))
                }
                path = requested
            } else {
                guard isRoot || ownIsJob else {
                    return .failure(NetacctNodeRefusal("the caller's cgroup \(own) is not below \(cgroups.accounting): it is no job the node counts"))
                }
                path = own
            }
            do {
                return .success([try ad(path)])
            } catch {
                return .failure(NetacctNodeRefusal(error.description))
            }
        case .join:
            return .failure(NetacctNodeRefusal("join is a request to the running service (netacct --node)"))
        }
    }

    /// The ad of cgroup `path`: the counters of its subtree and `JobboxNetworkCgroup`.
    package func ad(_ path: String) throws(JobboxError) -> ClassAd {
        guard cgroups.isCounted(path) else {
            throw JobboxError.invalid("not counted", path, "it is outside NETWORK_ACCOUNTING_CGROUP (\(cgroups.accounting))")
        }
        guard let id = try cgroups.id(of: path) else { throw JobboxError.invalid("no such cgroup", path, "it does not exist") }
        return Self.ad(path, try map.counters(of: id))
    }

    /// Every cgroup below the accounting cgroup, in the order of the walk.
    package func allAds() throws(JobboxError) -> [ClassAd] {
        var ads: [ClassAd] = []
        for (path, id) in try cgroups.walk() { ads.append(Self.ad(path, try map.counters(of: id))) }
        return ads
    }

    static func ad(_ path: String, _ counters: TrafficCounters) -> ClassAd {
        var ad = counters.classAd
        ad.set("JobboxNetworkCgroup", path)
        return ad
    }

    /// Drops the entries of cgroups that are gone (their ancestors' entries hold their counts already); how many.
    /// The keys are listed before the walk, so a cgroup made meanwhile is never taken for a gone one.
    @discardableResult
    package func sweep() throws(JobboxError) -> Int {
        let keys = try map.ids()
        let living = Set(try cgroups.walk().map(\.id))
        var dropped = 0
        for id in keys where id != 0 && !living.contains(id) {
            map.drop(id)
            dropped += 1
        }
        return dropped
    }
}
