import CLinux
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A job's cgroups made by root for the job's user to join later (a Slurm prolog makes them, the job script joins):
/// `cg-exec --delegate-to USER` and `cg-exec --join`.
///
/// What the user gets is the right to move its own processes in, nothing else: in each cgroup v1 hierarchy the
/// job's `cgroup.procs` and `tasks` become the user's; the directory and every other file stay root's, so the user
/// cannot make child cgroups, change a limit or write anything a root tool later reads (`--remove` reads the
/// kernel's process list, jobstat the kernel's figures). The kernel lets a process write a pid there only for a
/// process of its own user.
///
/// The unified (v2) hierarchy is different: there the kernel lets a process move only if it may write
/// `cgroup.procs` of the common ancestor of both cgroups (root's), so the user cannot join by itself. The job's
/// unified cgroup and its `main` leaf get their `cgroup.procs` handed to the user as the mark of the delegation,
/// and `--join` asks netacct's node service to move the process there (`NodeCgroups.isDelegated`, `join`), as
/// pam_slurm_adopt moves a user's ssh session into the user's job. On a hybrid node that cgroup has no
/// controllers (it is what the service counts the job's network by); on a cgroup v2 node it holds the limits.
package enum JobCgroupDelegation {
    /// The files of a v1 cgroup that move processes in: the only ones handed to the user.
    static let joinFiles = ["cgroup.procs", "tasks"]

    /// Makes the cgroups of `plan` without moving in, and hands their join files to `uid`; on any failure removes
    /// what it made.
    package static func create(_ plan: JobCgroupPlan, locator: JobCgroupLocator, for uid: uid_t) throws(JobboxError) -> [String] {
        let creator = JobCgroupCreator(layout: locator.layout, membership: locator.membership)
        // A TERM to the prolog while this runs waits, so it never leaves a cgroup half handed over.
        SetUpSignals.hold()
        defer { SetUpSignals.release() }
        let job = try creator.create(plan, moving: false)
        do throws(JobboxError) {
            for target in plan.targets {
                // v1: the job's process lists; unified: the marks of the delegation, on the job and its leaf.
                let files =
                    target.version == .v1
                    ? joinFiles.map { target.processDirectory + "/" + $0 }
                    : [target.jobDirectory + "/cgroup.procs", target.processDirectory + "/cgroup.procs"]
                for file in files {
                    // cgroupfs has no symlinks; the flag keeps a chown from ever following one.
                    if fchownat(AT_FDCWD, file, uid, gid_t.max, AT_SYMLINK_NOFOLLOW) != 0 && !(file.hasSuffix("/tasks") && errno == ENOENT) {
                        throw JobboxError.lastErrno("cannot hand to uid \(uid)", file)
                    }
                }
            }
        } catch {
            _ = creator.undo(job)
            throw error
        }
        return job.warnings
    }

    /// The directories `cg-exec --join` moves a process into: the job's process directory in every v1 hierarchy
    /// where it exists, and in the unified one (its path there too, for the node service); an error when it
    /// exists in none.
    package static func joinDirectories(_ job: JobID, locator: JobCgroupLocator) throws(JobboxError) -> (
        v1: [String], unified: (directory: String, cgroup: String)?
    ) {
        var directories: [String] = []
        for hierarchy in locator.layout.hierarchies where hierarchy.version == .v1 {
            guard let directory = locator.jobDirectory(job, in: hierarchy) else { continue }
            if access(directory + "/cgroup.procs", F_OK) == 0 { directories.append(directory) }
        }
        var unified: (directory: String, cgroup: String)?
        if let hierarchy = locator.layout.unified, let job = locator.jobDirectory(job, in: hierarchy) {
            let directory = job + "/" + JobCgroupPlan.leafName
            if access(directory + "/cgroup.procs", F_OK) == 0, hierarchy.mountRoot == "/", directory.hasPrefix(hierarchy.mountPoint + "/") {
                unified = (directory, String(directory.dropFirst(hierarchy.mountPoint.count)))
            }
        }
        guard !directories.isEmpty || unified != nil else {
            let hierarchies = locator.layout.hierarchies
            let place = hierarchies.first.flatMap { locator.baseDirectory(in: $0) } ?? locator.base
            throw JobboxError.invalid("no cgroup to join for job", job.rawValue, "\(place)/\(job.cgroupName) does not exist (did the prolog run?)")
        }
        return (directories, unified)
    }

    /// Moves this process into `directories` (from `joinDirectories`).
    package static func join(_ directories: [String]) throws(JobboxError) {
        for directory in directories {
            do {
                try SmallFile.write(String(ProcessID.current), to: directory + "/cgroup.procs")
            } catch {
                throw JobboxError.system("cannot join", directory, error)
            }
        }
    }
}
