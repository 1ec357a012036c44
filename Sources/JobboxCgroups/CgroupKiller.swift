import CLinux
import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A job's cgroup in one hierarchy, as found on the node.
package struct JobCgroupLocation: Sendable, Equatable {
    /// The hierarchy.
    package let hierarchy: CgroupHierarchy
    /// `<base>/job_<id>` in it.
    package let jobDirectory: String

    /// Creates a location.
    package init(hierarchy: CgroupHierarchy, jobDirectory: String) {
        self.hierarchy = hierarchy
        self.jobDirectory = jobDirectory
    }

    /// Whether this is where a v1 freezer can stop the job.
    var isV1Freezer: Bool { hierarchy.version == .v1 && hierarchy.has("freezer") }

    /// The directory of the process whose cgroups `membership` lists, when it is this job cgroup or below it.
    package func directory(holding membership: CgroupMembership) -> String? {
        guard let path = membership.path(in: hierarchy), let directory = hierarchy.directory(forCgroupPath: path) else { return nil }
        return directory == jobDirectory || directory.hasPrefix(jobDirectory + "/") ? directory : nil
    }
}

/// Kills every process in a job's cgroups, as HTCondor's starter does it: freeze, so that nothing forks while
/// the pids are read; `cgroup.kill` where the kernel has it (v2, 5.14+), which takes the whole subtree at once;
/// SIGKILL to each pid listed in every `cgroup.procs` of the subtree in every hierarchy; thaw, so that the
/// signals are acted on (a task frozen by the v1 freezer does not die until thawed); wait until the cgroups are
/// empty; and again, until the timeout, if anything is left.
package struct CgroupKiller {
    let filesystem: any CgroupFilesystem

    /// Creates a killer.
    package init(filesystem: any CgroupFilesystem = KernelCgroupFilesystem()) {
        self.filesystem = filesystem
    }

    /// A process that outlived the timeout.
    package struct Survivor: Sendable, Equatable, CustomStringConvertible {
        /// Its pid.
        package let pid: Int32
        /// Its command name and scheduler state, from /proc (nil when it went away meanwhile).
        package let name: String?
        /// The state letter (`D` for uninterruptible sleep).
        package let state: String?

        package var description: String {
            guard let name else { return String(pid) }
            return "\(pid) (\(name)\(state.map { ", state \($0)" } ?? ""))"
        }
    }

    /// Kills until the job's cgroups are empty; returns the processes still there after `timeout` (empty on
    /// success). The cgroups are always left thawed.
    package func killAll(_ locations: [JobCgroupLocation], timeout: Duration) -> [Survivor] {
        let deadline = MonotonicClock.now() + timeout.seconds
        while true {
            freeze(locations)
            _ = waitUntil(min(deadline, MonotonicClock.now() + 0.5)) { isFrozen(locations) }
            for location in locations where location.hierarchy.version == .v2 {
                // Not every kernel has it (before 5.14); the pid-by-pid kill below covers those.
                try? filesystem.write("1", to: location.jobDirectory + "/cgroup.kill")
            }
            for pid in processIDs(locations) {
                Self.kill(pid, ifIn: locations)
            }
            thaw(locations)
            if waitUntil(min(deadline, MonotonicClock.now() + 1), { processIDs(locations).isEmpty }) { return [] }
            if MonotonicClock.now() >= deadline {
                return processIDs(locations).map(Self.describe)
            }
        }
    }

    /// The distinct pids in the job's subtrees, in every hierarchy (a process may have left the job's cgroup in
    /// one hierarchy but not in another).
    package func processIDs(_ locations: [JobCgroupLocation]) -> [Int32] {
        var seen = Set<Int32>()
        var result: [Int32] = []
        for location in locations {
            for pid in filesystem.processIDs(inSubtree: location.jobDirectory) where seen.insert(pid).inserted {
                result.append(pid)
            }
        }
        return result
    }

    private func freeze(_ locations: [JobCgroupLocation]) {
        for location in locations {
            if location.hierarchy.version == .v2 {
                try? filesystem.write("1", to: location.jobDirectory + "/cgroup.freeze")
            } else if location.isV1Freezer {
                try? filesystem.write("FROZEN", to: location.jobDirectory + "/freezer.state")
            }
        }
    }

    private func isFrozen(_ locations: [JobCgroupLocation]) -> Bool {
        locations.allSatisfy { location in
            if location.hierarchy.version == .v2 {
                guard let events = try? filesystem.read(location.jobDirectory + "/cgroup.events") else { return true }
                return events.split(separator: "\n").contains("frozen 1")
            }
            if location.isV1Freezer {
                return (try? filesystem.read(location.jobDirectory + "/freezer.state"))?.trimmingASCIISpaces() != "FREEZING"
            }
            return true
        }
    }

    /// Thaws every cgroup of each subtree, top down: the job may have frozen its own sub-cgroups, and their
    /// processes could not die either.
    private func thaw(_ locations: [JobCgroupLocation]) {
        for location in locations {
            for directory in filesystem.subtreeDeepestFirst(location.jobDirectory).reversed() {
                if location.hierarchy.version == .v2 {
                    let path = directory + "/cgroup.freeze"
                    if let state = try? filesystem.read(path), state.trimmingASCIISpaces() != "0" { try? filesystem.write("0", to: path) }
                } else if location.isV1Freezer {
                    let path = directory + "/freezer.state"
                    if let state = try? filesystem.read(path), state.trimmingASCIISpaces() != "THAWED" { try? filesystem.write("THAWED", to: path) }
                }
            }
        }
    }

    /// Polls `condition` every 10 ms until it holds (true) or `deadline` passes (false).
    func waitUntil(_ deadline: Double, _ condition: () -> Bool) -> Bool {
        while true {
            if condition() { return true }
            if MonotonicClock.now() >= deadline { return false }
            usleep(10_000)
        }
    }

    /// SIGKILL to `pid`, read from one of the job's `cgroup.procs`, only while it is still the job's: through a
    /// pidfd taken first, after `/proc/PID/cgroup` shows it in one of `locations`. A job that cannot be frozen
    /// (a v1 hierarchy without the freezer, v2 before `cgroup.kill`) can let a listed process exit and its pid go
    /// to another user's process before the signal; that one is never killed. Without pidfds (before 5.3) the
    /// check narrows the window and `kill` is sent by pid.
    static func kill(_ pid: Int32, ifIn locations: [JobCgroupLocation]) {
        let pidfd = jb_pidfd_open(pid)
        defer { if pidfd >= 0 { close(pidfd) } }
        if pidfd < 0 && errno != ENOSYS { return }  // gone already (ESRCH)
        guard let membership = try? CgroupMembership.read(pid: String(pid)), locations.contains(where: { $0.directory(holding: membership) != nil }) else {
            return
        }
        if pidfd >= 0 {
            _ = jb_pidfd_signal(pidfd, SIGKILL)
        } else {
            _ = Glibc.kill(pid, SIGKILL)
        }
    }

    static func describe(_ pid: Int32) -> Survivor {
        let name = (try? SmallFile.read("/proc/\(pid)/comm"))?.trimmingASCIISpaces()
        return Survivor(pid: pid, name: name, state: ProcessStat.read(pid: pid)?.state)
    }
}
