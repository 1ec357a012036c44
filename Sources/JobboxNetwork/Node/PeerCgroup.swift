import CLinux
import JobboxCgroups
import JobboxCore
import JobboxNetacctClient

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Who asks the node service: the connecting process's uid and its unified cgroup.
///
/// Trusted: only what the kernel says. The uid and pid come from SO_PEERCRED (recorded at connect; a client cannot
/// forge them), the cgroup from `/proc/PID/cgroup`'s `0::` line, read race-safely: the pidfd is taken first
/// (SO_PEERPIDFD names the connecting process itself) and checked alive after the read, so a pid that was
/// reused in between is noticed and the request refused. Nothing the client sends names who it is.
package struct PeerCgroup: Sendable, Equatable {
    /// The peer's uid.
    package let uid: uid_t
    /// Its unified cgroup (a clean cgroup path), nil when it has none (a process of another cgroup namespace
    /// whose path reads "/.." or a gone process).
    package let cgroup: String?

    package init(uid: uid_t, cgroup: String?) {
        self.uid = uid
        self.cgroup = cgroup
    }

    /// The peer of the connected socket `fd`.
    package static func of(socket fd: Int32) -> Result<PeerCgroup, NetacctNodeRefusal> {
        PeerProcess.of(socket: fd).flatMap { peer in
            defer { peer.close() }
            let membership = try? CgroupMembership.read(pid: String(peer.pid))
            // Read after the pidfd was taken: if the process is still alive now, the file was its own.
            guard peer.isAlive else { return .failure(PeerProcess.gone) }
            let line = membership?.entries.first { $0.hierarchyID == 0 && $0.controllers.isEmpty }?.path
            return .success(PeerCgroup(uid: peer.uid, cgroup: line.flatMap { NetacctNodeRequest.cleanCgroupPath($0) }))
        }
    }
}

/// The process connected on a socket: the uid and pid the kernel recorded at connect (SO_PEERCRED), held by a
/// pidfd taken first (SO_PEERPIDFD where the kernel has it), so that a pid reused since is noticed (`isAlive`).
/// `close()` it when done.
struct PeerProcess {
    let uid: uid_t
    let pid: pid_t
    let pidfd: Int32

    /// The refusal when the process went away while it was asked about.
    static let gone = NetacctNodeRefusal("the asking process is gone")

    /// The peer of the connected socket `fd`.
    static func of(socket fd: Int32) -> Result<PeerProcess, NetacctNodeRefusal> {
        var uid: uid_t = 0
        var pid: pid_t = 0
        var pidfd: Int32 = -1
        guard jb_peer_identity(fd, &uid, &pid, &pidfd) == 0 else {
            if pidfd >= 0 { Glibc.close(pidfd) }
            return .failure(NetacctNodeRefusal("cannot tell who is asking (SO_PEERCRED)"))
        }
        guard pid > 0, pidfd >= 0 else {
            if pidfd >= 0 { Glibc.close(pidfd) }
            return .failure(NetacctNodeRefusal("cannot tell which process is asking"))
        }
        // Without SO_PEERPIDFD (kernels before 6.5) the pidfd was taken after the fact, and may hold a process that
        // got the pid since the asker exited: it must at least run as the asking uid, or root would move (join) or
        // report another user's process. Read after the pidfd was taken; the callers' alive checks after their own
        // reads and writes prove the pid still named the pidfd's process.
        guard ProcessStatus.read(pid: pid)?.effectiveUID == uid else {
            Glibc.close(pidfd)
            return .failure(gone)
        }
        return .success(PeerProcess(uid: uid, pid: pid, pidfd: pidfd))
    }

    /// Whether the process still runs, so that its pid still names it.
    var isAlive: Bool { jb_pidfd_alive(pidfd) == 1 }

    func close() { Glibc.close(pidfd) }
}
