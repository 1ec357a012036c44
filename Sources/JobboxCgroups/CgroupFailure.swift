import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Errors of cgroup file operations that say which file and why, in terms a sysadmin or a job's owner can act
/// on: who may not write it, or which cgroup v2 rule refused it.
enum CgroupFailure {
    /// `mkdir` of a cgroup failed.
    static func create(_ path: String, _ errno: Errno, isJob: Bool) -> JobboxError {
        var hint: String?
        switch errno {
        case .permissionDenied, .notPermitted:
            hint = "\(user) may not create cgroups in \(parentOf(path)): it is not delegated to this user (pass --parent with a cgroup you own)"
        case .readOnlyFileSystem:
            hint = readOnlyHint
        case .fileExists where isJob:
            hint = "a job with this id is running or its cgroup was not removed (cg-exec --remove --job ID)"
        case .noSuchFileOrDirectory:
            hint = "the parent cgroup \(parentOf(path)) does not exist"
        default:
            break
        }
        return failure("cannot create cgroup", path, errno, hint)
    }

    /// Writing `value` to `path` failed; `detail` adds what only the caller knows.
    static func write(_ value: String, _ path: String, _ errno: Errno, detail: String? = nil) -> JobboxError {
        let file = path.split(separator: "/").last.map(String.init) ?? path
        var hint = detail
        if hint == nil {
            switch (errno, file) {
            case (.permissionDenied, "cgroup.procs"), (.notPermitted, "cgroup.procs"):
                hint =
                    "\(user) may not move processes here: that needs write access to this file and to cgroup.procs of the common ancestor of the process's current cgroup"
            case (.permissionDenied, _), (.notPermitted, _):
                hint = "\(user) may not write it: the cgroup is not delegated to this user"
            case (.readOnlyFileSystem, _):
                hint = readOnlyHint
            case (.resourceBusy, "cgroup.subtree_control"):
                hint =
                    "the cgroup has processes of its own, and cgroup v2 enables controllers only for cgroups without any: pass --parent with a cgroup that has none"
            case (.noSuchFileOrDirectory, "cgroup.subtree_control"):
                hint = "the controller is not in this cgroup's cgroup.controllers: the cgroup above does not delegate it"
            case (.noSuchFileOrDirectory, _):
                hint = "the kernel has no such file here: the controller is not enabled for this cgroup, or this kernel lacks it"
            case (.invalidArgument, _), (.outOfRange, _):
                hint = "the kernel refused the value"
            case (.noSpace, "cgroup.procs"):
                hint = "the cgroup's cpuset has no cpus or mems"
            default:
                break
            }
        }
        return failure("cannot write '\(value)' to", path, errno, hint)
    }

    /// Reading `path` failed.
    static func read(_ path: String, _ errno: Errno) -> JobboxError {
        failure("cannot read", path, errno, nil)
    }

    private static func failure(_ operation: String, _ path: String, _ errno: Errno, _ hint: String?) -> JobboxError {
        let reason = hint.map { "\(errno.description) (\($0))" } ?? errno.description
        return JobboxError(operation, path, reason: reason, errno: errno)
    }

    /// EROFS is the mount's doing, not delegation's: even root gets it (a container's read-only /sys/fs/cgroup).
    private static let readOnlyHint = "this cgroup hierarchy is mounted read-only here; no user may change it"

    private static var user: String {
        let uid = geteuid()
        return uid == 0 ? "root" : "uid \(uid)"
    }

    static func parentOf(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }
}
