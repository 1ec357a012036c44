import CLinux
import JobboxCore
import JobboxNetacctClient

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// `join PATH`: the node service moves the asking process into PATH, a cgroup root delegated to the asker's user
/// (`NodeCgroups.isDelegated`).
///
/// Why a service does it: a Slurm job script runs as its user in slurmd's unified cgroup, and the kernel lets a
/// process move to another unified cgroup only if it may write `cgroup.procs` of the common ancestor (root's), so
/// `cg-exec --join` cannot put the job in its job's unified cgroup: the one its network is counted by, and on a
/// cgroup v2 node the one with its limits. Root made that cgroup for this user and this job (`cg-exec
/// --delegate-to`), which is the consent; the service checks it and writes the pid, as pam_slurm_adopt moves a
/// user's ssh session into the user's job.
///
/// Trusted: the kernel's answers only. The process is the one that connected (SO_PEERCRED, held by a pidfd
/// taken first and checked alive before and after the write, so a pid reused meanwhile is noticed); the
/// delegation is read from the cgroup tree, whose directories only root makes below the accounting cgroup. Only
/// the asker itself is ever moved, never a pid the request names.
enum NodeJoin {
    /// Moves the process connected on `socket` into `path`; the ad of `path` after the move, or the refusal.
    static func join(_ path: String, socket: Int32, cgroups: NodeCgroups, reader: NodeReader) -> Result<[ClassAd], NetacctNodeRefusal> {
        PeerProcess.of(socket: socket).flatMap { peer in
            defer { peer.close() }
            guard peer.uid != 0 else {
                return .failure(NetacctNodeRefusal("root moves its processes itself (write the pid to \(cgroups.directory(path))/cgroup.procs)"))
            }
            do throws(JobboxError) {
                guard try cgroups.isDelegated(path, to: peer.uid) else {
                    return .failure(NetacctNodeRefusal("\(path) is not a cgroup delegated to uid \(peer.uid) (cg-exec --delegate-to makes one)"))
                }
                guard let (directory, _) = try cgroups.open(path) else { return .failure(NetacctNodeRefusal("no such cgroup: \(path)")) }
                defer { close(directory) }
                let procs = openat(directory, "cgroup.procs", O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
                guard procs >= 0 else { throw JobboxError.lastErrno("cannot open", cgroups.directory(path) + "/cgroup.procs") }
                defer { close(procs) }
                guard peer.isAlive else { return .failure(PeerProcess.gone) }
                let text = Array(String(peer.pid).utf8)
                guard write(procs, text, text.count) == text.count else {
                    throw JobboxError.lastErrno("cannot move pid \(peer.pid) into", cgroups.directory(path))
                }
                // Alive after the write too: the pid that was moved was still the asker's.
                guard peer.isAlive else { return .failure(PeerProcess.gone) }
                return .success([try reader.ad(path)])
            } catch {
                return .failure(NetacctNodeRefusal(error.description))
            }
        }
    }
}
