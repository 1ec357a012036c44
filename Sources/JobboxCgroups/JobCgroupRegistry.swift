import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Finds, lists and removes jobs' cgroups under the base cgroup, in every hierarchy of the node.
package struct JobCgroupRegistry {
    let locator: JobCgroupLocator
    let filesystem: any CgroupFilesystem

    /// Creates a registry over the hierarchies `locator` knows.
    package init(locator: JobCgroupLocator, filesystem: any CgroupFilesystem = KernelCgroupFilesystem()) {
        self.locator = locator
        self.filesystem = filesystem
    }

    /// The job's cgroup in each hierarchy where it exists.
    package func locations(of job: JobID) -> [JobCgroupLocation] {
        locator.layout.hierarchies.compactMap { hierarchy in
            guard let directory = locator.jobDirectory(job, in: hierarchy), filesystem.exists(directory) else { return nil }
            return JobCgroupLocation(hierarchy: hierarchy, jobDirectory: directory)
        }
    }

    /// One job under the base.
    package struct Entry: Sendable, Equatable {
        /// Its cgroup name (`job_1234_5`).
        package let name: String
        /// The processes in its subtree, counted once across hierarchies.
        package let processCount: Int
    }

    /// The jobs under the base in any hierarchy, by name.
    package func list() -> [Entry] {
        var byName: [String: Set<Int32>] = [:]
        for hierarchy in locator.layout.hierarchies {
            guard let base = locator.baseDirectory(in: hierarchy), let children = try? filesystem.subdirectories(of: base) else { continue }
            for name in children where name.hasPrefix("job_") {
                byName[name, default: []].formUnion(filesystem.processIDs(inSubtree: base + "/" + name))
            }
        }
        return byName.keys.sorted().map { Entry(name: $0, processCount: byName[$0]?.count ?? 0) }
    }

    /// Kills everything in the job's cgroups and removes them bottom-up in every hierarchy. A job that is gone
    /// already is not an error. The base cgroup stays: an admin may have made it, with limits for all jobs.
    package func remove(_ job: JobID, timeout: Duration) throws(JobboxError) {
        let locations = locations(of: job)
        if locations.isEmpty { return }
        for location in locations {
            guard let own = location.directory(holding: locator.membership) else { continue }
            throw JobboxError.invalid("cannot remove job", "'\(job)'", "this process runs inside it (\(own))")
        }
        let survivors = CgroupKiller(filesystem: filesystem).killAll(locations, timeout: timeout)
        if !survivors.isEmpty {
            let list = survivors.prefix(20).map(\.description).joined(separator: ", ") + (survivors.count > 20 ? ", ..." : "")
            throw JobboxError.invalid(
                "cannot remove job", "'\(job)'", "\(survivors.count) process\(survivors.count == 1 ? "" : "es") survived \(timeout.secondsText): \(list)")
        }
        // The last tasks may still be leaving their cgroups when the procs files read empty.
        let deadline = MonotonicClock.now() + 2
        for location in locations {
            for directory in filesystem.subtreeDeepestFirst(location.jobDirectory) {
                try removeDirectory(directory, until: deadline)
            }
        }
    }

    /// `rmdir`, retried while the kernel still reports the cgroup busy (its last tasks are being torn down).
    private func removeDirectory(_ directory: String, until deadline: Double) throws(JobboxError) {
        while true {
            do {
                try filesystem.removeDirectory(directory)
                return
            } catch .noSuchFileOrDirectory {
                return
            } catch .resourceBusy where MonotonicClock.now() < deadline {
                usleep(10_000)
            } catch {
                throw JobboxError.system("cannot remove cgroup", directory, error)
            }
        }
    }
}

extension Duration {
    /// `10 s`, `1.5 s`.
    var secondsText: String {
        let (seconds, attoseconds) = components
        let milli = attoseconds / 1_000_000_000_000_000
        return milli == 0 ? "\(seconds) s" : "\(CPUAmount(milli: UInt64(seconds) * 1000 + UInt64(milli))) s"
    }
}
