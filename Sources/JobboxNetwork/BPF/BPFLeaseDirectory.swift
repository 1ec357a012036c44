import JobboxCore

/// The two state directories of one bpf run, opened once by `GuardedPath`'s rule and kept open for the run:
/// `STATE_DIR/netacct` (its lock, shared by every back end) and `STATE_DIR/netacct/bpf` (the leases).
///
/// Why: a run locks, reads its lease's file, writes it twice and removes it; opened by path each time, the walk
/// from `/` with its checks came again for every step (about 130 opens, as many closes and stats per job). The
/// check is the same, made once: root's alone all the way up, or refused.
package struct BPFLeaseDirectory: Sendable {
    /// `STATE_DIR/netacct`.
    package let state: GuardedDirectory
    /// `STATE_DIR/netacct/bpf`.
    package let leases: GuardedDirectory

    /// Opens both directories of `network`, making them (0755, root's) when missing.
    package static func open(_ network: JobNetworkLeases) throws(JobboxError) -> BPFLeaseDirectory {
        let state = try network.openDirectory(creating: true)
        do {
            let leases = try GuardedPath.openTrustedDirectory(BPFJobLeases.subdirectory, in: state, creating: true, for: "cannot use state directory")
            return BPFLeaseDirectory(state: state, leases: leases)
        } catch {
            state.close()
            throw error
        }
    }

    /// Closes both.
    package func close() {
        leases.close()
        state.close()
    }
}
