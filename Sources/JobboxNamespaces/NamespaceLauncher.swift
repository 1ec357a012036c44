import CLinux
import CNsExec
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Hands a plan to the C shim and turns what comes back into a status or an error.
///
/// Without a PID namespace the calling process itself becomes the job (it unshares, mounts, switches identity
/// and execs), so the job keeps ns-exec's pid. With one, a child cloned into the new namespaces does that work
/// (as init, PID 1, or as the job itself with `--no-init`), and this process stays outside: it forwards
/// signals, waits, and exits with the job's status.
package enum NamespaceLauncher {
    /// How a launch ended.
    package enum Outcome: Sendable, Equatable {
        /// The job ran; its status (128+N for signal N).
        case exited(Int32)
        /// A step failed before the job ran (125), or its exec failed (126, 127).
        case failed(JobboxError)
    }

    /// Runs `plan`. Returns only when the job has ended (PID namespace) or when a step failed; on success
    /// without a PID namespace this process is the job and never returns. With a PID namespace, `started` is
    /// called with the init's pid once the job has been exec'd, and `ended` once the init is gone (for the
    /// record `ns-exec --attach` finds the job by). `scratch` is the plan's scratch directory, opened (nil: none);
    /// `binds` the host paths of its binds as checked, by the index of their mount operation.
    package static func run(
        _ plan: NsExecPlan, scratch: JobScratch?, binds: [Int: PinnedBind] = [:], started: (Int32) -> Void = { _ in },
        ended: (Int32) -> Void = { _ in }
    ) -> Outcome {
        let storage = CPlanStorage()
        guard let cPlan = storage.build(plan, scratch: scratch, binds: binds) else {
            return .failed(JobboxError.system("cannot prepare the job's plan", nil, .noMemory))
        }
        var failure = jb_nsexec_failure()
        return withUnsafePointer(to: cPlan) { pointer in
            if !plan.needsChild {
                _ = jb_nsexec_exec(pointer, &failure)
                return .failed(describe(failure, plan))
            }
            var reportFD: Int32 = -1
            let child = jb_nsexec_spawn(pointer, &reportFD, &failure)
            guard child > 0 else { return .failed(describe(failure, plan)) }
            // The report pipe reaches its end when the job has been exec'd (or says why it was not).
            let reported = jb_nsexec_read_report(reportFD, &failure) == 1
            if !reported { started(child) }
            var status: Int32 = 0
            let waited = jb_wait_pid(child, &status, 0)
            let waitErrno = Errno.last
            if !reported { ended(child) }
            if reported { return .failed(describe(failure, plan)) }
            guard waited == child else { return .failed(JobboxError.system("cannot wait for the job's init", String(child), waitErrno)) }
            return .exited(ExitStatus.fromWaitStatus(status))
        }
    }

    /// The error for a failed step, in the words of the plan.
    static func describe(_ failure: jb_nsexec_failure, _ plan: NsExecPlan) -> JobboxError {
        let errno = Errno(rawValue: failure.error)
        let index = Int(failure.index)
        switch Int(failure.stage) {
        case Int(JB_NSEXEC_USER_NAMESPACE.rawValue):
            return .system("cannot create a user namespace", nil, errno)
        case Int(JB_NSEXEC_ID_MAP.rawValue):
            let file = ["/proc/self/setgroups", "/proc/self/uid_map", "/proc/self/gid_map"][min(max(index, 0), 2)]
            return .system("cannot write", file, errno)
        case Int(JB_NSEXEC_UNSHARE.rawValue), Int(JB_NSEXEC_CLONE.rawValue):
            var error = JobboxError.system("cannot create namespaces", plan.namespaces.names.joined(separator: ","), errno)
            if errno == .notPermitted && !plan.callerIsRoot && plan.userNamespace == nil {
                error.reason += " (not root: add --userns)"
            }
            return error
        case Int(JB_NSEXEC_SIGNALS.rawValue):
            return .system("cannot forward signals to the job", nil, errno)
        case Int(JB_NSEXEC_PARENT_GONE.rawValue):
            return .invalid("job not started", nil, "ns-exec ended first")
        case Int(JB_NSEXEC_MOUNT_SOURCE.rawValue), Int(JB_NSEXEC_MOUNT_TARGET.rawValue), Int(JB_NSEXEC_MOUNT.rawValue):
            return describeMount(stage: failure.stage, index: index, errno: errno, plan)
        case Int(JB_NSEXEC_LOOPBACK.rawValue):
            return .system("cannot bring up", "lo", errno)
        case Int(JB_NSEXEC_HOSTNAME.rawValue):
            return .system("cannot set hostname", plan.hostname, errno)
        case Int(JB_NSEXEC_SETGROUPS.rawValue):
            return .system("cannot set supplementary groups", plan.identity.map { $0.groups.map(String.init).joined(separator: ",") }, errno)
        case Int(JB_NSEXEC_SETGID.rawValue):
            return .system("cannot switch to gid", plan.identity.map { String($0.gid) }, errno)
        case Int(JB_NSEXEC_SETUID.rawValue):
            return .system("cannot switch to uid", plan.identity.map { String($0.uid) }, errno)
        case Int(JB_NSEXEC_IRREVERSIBLE.rawValue):
            return .invalid(
                "refusing to run the job as uid", plan.identity.map { String($0.uid) }, "the switch could be undone (root or the old ids came back)")
        case Int(JB_NSEXEC_NO_NEW_PRIVS.rawValue):
            return .system("cannot set no_new_privs", nil, errno)
        case Int(JB_NSEXEC_DEATH_SIGNAL.rawValue):
            return .system("cannot set the parent-death signal", nil, errno)
        case Int(JB_NSEXEC_WORKDIR.rawValue):
            return .system("cannot change directory to", plan.workdir, errno)
        case Int(JB_NSEXEC_INIT_FORK.rawValue):
            return .system("the job's init cannot fork the job", nil, errno)
        case Int(JB_NSEXEC_EXEC.rawValue):
            return .exec(plan.command.first ?? "", errno)
        case Int(JB_NSEXEC_DESCRIPTORS.rawValue):
            return .system("cannot close the descriptors the job must not inherit", nil, errno)
        case Int(JB_NSEXEC_FENCE.rawValue):
            return .system("cannot fence the scratch quota (a seccomp filter)", plan.layout.scratch, errno)
        default:
            return .invalid("the job's set-up failed", nil, "unknown step \(failure.stage) (errno \(failure.error))")
        }
    }

    private static func describeMount(stage: Int32, index: Int, errno: Errno, _ plan: NsExecPlan) -> JobboxError {
        if index == -1, let scratch = plan.layout.scratch {
            if errno == .staleNFSFileHandle { return .invalid("cannot open scratch directory", scratch, "another directory took its place") }
            return .system("cannot open scratch directory", scratch, errno)
        }
        guard plan.mounts.indices.contains(index) else { return .system("cannot set up mounts", nil, errno) }
        let scratch = plan.layout.scratch
        let root = plan.layout.chroot
        func show(_ path: MountPath) -> String { path.display(scratch: scratch, root: root) }
        switch plan.mounts[index] {
        case .makeSlave:
            return .system("cannot make the job's mounts slaves of the host's", "/", errno)
        case .pivotRoot(let newRoot):
            return .system(stage == JB_NSEXEC_MOUNT_TARGET.rawValue ? "cannot open chroot" : "cannot pivot into chroot", newRoot, errno)
        case .proc(let target):
            if stage == JB_NSEXEC_MOUNT_TARGET.rawValue { return .system("cannot open mount point", show(target), errno) }
            return .system("cannot mount proc on", show(target), errno)
        case .tmpfs(let target, _):
            if stage == JB_NSEXEC_MOUNT_TARGET.rawValue { return .system("cannot open mount point", show(target), errno) }
            return .system("cannot mount tmpfs on", show(target), errno)
        case .readOnly(let target):
            if stage == JB_NSEXEC_MOUNT_TARGET.rawValue { return .system("cannot open", show(target), errno) }
            return .system("cannot make read-only", show(target), errno)
        case .makeDirectory(let directory, let name):
            if stage == JB_NSEXEC_MOUNT_TARGET.rawValue { return .system("cannot open", show(directory), errno) }
            return .system("cannot create mount point", AbsolutePath.join(show(directory), name), errno)
        case .bind(let source, let target, _):
            if stage == JB_NSEXEC_MOUNT_SOURCE.rawValue {
                if case .underScratch = source, errno == .notDirectory || errno == .tooManySymbolicLinkLevels {
                    return JobDirectories.refusal(show(source))
                }
                if case .host = source, errno == .staleNFSFileHandle {
                    return .invalid("cannot bind", show(source), "another file took its place")
                }
                return .system("cannot open", show(source), errno)
            }
            if stage == JB_NSEXEC_MOUNT_TARGET.rawValue {
                if case .host = target, errno == .staleNFSFileHandle {
                    return .invalid("cannot bind over", show(target), "another file took its place")
                }
                if errno == .tooManySymbolicLinkLevels || errno == .notDirectory {
                    return .invalid(
                        "cannot bind over", show(target),
                        "it is reached through a symbolic link or a non-directory below an earlier mount of the job (name its real path)")
                }
                return .system("cannot open mount point", show(target), errno)
            }
            return .system("cannot bind \(show(source)) over", show(target), errno)
        }
    }
}

/// C copies of a plan's strings and arrays, alive as long as the storage (the C shim allocates nothing).
final class CPlanStorage {
    private var strings: [UnsafeMutablePointer<CChar>] = []
    private var buffers: [UnsafeMutableRawPointer] = []
    private var commands: [CStringArray] = []

    deinit {
        for string in strings { free(string) }
        for buffer in buffers { buffer.deallocate() }
    }

    private func copy(_ text: String?) -> UnsafePointer<CChar>?? {
        guard let text else { return .some(nil) }
        guard let pointer = strdup(text) else { return nil }
        strings.append(pointer)
        return .some(UnsafePointer(pointer))
    }

    /// `path` as C sees it (path NULL: none), or nil when memory ran out.
    private func pinned(_ path: PinnedPath?) -> jb_pinned_path? {
        guard let text = copy(path?.resolved) else { return nil }
        return jb_pinned_path(path: text, device: path?.device ?? 0, inode: path?.inode ?? 0)
    }

    /// A C array holding `elements` (plain C values: nothing to deinitialise), owned by the storage.
    private func array<Element>(_ elements: [Element]) -> UnsafePointer<Element> {
        let pointer = UnsafeMutablePointer<Element>.allocate(capacity: max(elements.count, 1))
        for (index, element) in elements.enumerated() { (pointer + index).initialize(to: element) }
        buffers.append(UnsafeMutableRawPointer(pointer))
        return UnsafePointer(pointer)
    }

    /// The C plan, or nil when memory ran out. Pointers in it stay valid while this storage lives.
    func build(_ plan: NsExecPlan, scratch: JobScratch?, binds: [Int: PinnedBind] = [:]) -> jb_nsexec_plan? {
        var result = jb_nsexec_plan()
        if let ids = plan.userNamespace {
            result.user_namespace = 1
            result.map_uid = ids.uid
            result.map_gid = ids.gid
        }
        result.namespaces = plan.namespaces.rawValue
        result.run_init = plan.runInit ? 1 : 0
        guard let scratchPath = pinned(scratch?.pinned), let root = copy(plan.layout.chroot) else { return nil }
        result.scratch = scratchPath
        result.new_root = root
        var mounts: [jb_mount_op] = []
        for (index, operation) in plan.mounts.enumerated() {
            guard var op = cOperation(operation), let source = pinned(binds[index]?.source), let target = pinned(binds[index]?.target) else {
                return nil
            }
            op.pinned_source = source
            op.pinned_target = target
            op.target_no_symlinks = binds[index]?.targetWithoutSymlinks == true ? 1 : 0
            mounts.append(op)
        }
        result.mounts = array(mounts)
        result.mount_count = Int32(mounts.count)
        result.loopback_up = plan.loopbackUp ? 1 : 0
        guard let hostname = copy(plan.hostname) else { return nil }
        result.hostname = hostname
        if let identity = plan.identity {
            result.switch_identity = 1
            result.uid = identity.uid
            result.gid = identity.gid
            result.groups = array(identity.groups)
            result.group_count = Int32(identity.groups.count)
        }
        result.close_fds = plan.closeFDs ? 1 : 0
        result.keep_fds = array(plan.keepFDs)
        result.keep_fd_count = Int32(plan.keepFDs.count)
        result.no_new_privs = plan.noNewPrivs ? 1 : 0
        result.quota_fence = plan.quotaFence ? 1 : 0
        guard let workdir = copy(plan.workdir) else { return nil }
        result.workdir = workdir
        result.workdir_optional = plan.workdirOptional ? 1 : 0
        guard let argv = CStringArray(plan.command), let file = argv.pointers.first ?? nil else { return nil }
        commands.append(argv)
        result.file = UnsafePointer(file)
        result.argv = array(argv.pointers)
        result.envp = nil
        return result
    }

    private func cOperation(_ operation: MountOperation) -> jb_mount_op? {
        var op = jb_mount_op()
        func set(_ path: MountPath, base: inout Int32, text: inout UnsafePointer<CChar>?) -> Bool {
            let (kind, value): (jb_path_base, String)
            switch path {
            case .host(let host): (kind, value) = (JB_PATH_HOST, host)
            case .underScratch(let relative): (kind, value) = (JB_PATH_SCRATCH, relative)
            case .inRoot(let relative): (kind, value) = (JB_PATH_IN_ROOT, relative.isEmpty ? "." : relative)
            }
            guard let pointer = copy(value) else { return false }
            base = Int32(kind.rawValue)
            text = pointer
            return true
        }
        switch operation {
        case .makeSlave:
            op.kind = Int32(JB_MOUNT_SLAVE.rawValue)
        case .bind(let source, let target, let recursive):
            op.kind = Int32(JB_MOUNT_BIND.rawValue)
            op.recursive = recursive ? 1 : 0
            guard set(source, base: &op.source_base, text: &op.source), set(target, base: &op.target_base, text: &op.target) else { return nil }
        case .proc(let target):
            op.kind = Int32(JB_MOUNT_PROC.rawValue)
            guard set(target, base: &op.target_base, text: &op.target) else { return nil }
        case .tmpfs(let target, let options):
            op.kind = Int32(JB_MOUNT_TMPFS.rawValue)
            guard set(target, base: &op.target_base, text: &op.target), let data = copy(options) else { return nil }
            op.data = data
        case .pivotRoot(let root):
            op.kind = Int32(JB_MOUNT_PIVOT.rawValue)
            guard set(.host(root), base: &op.target_base, text: &op.target) else { return nil }
        case .readOnly(let target):
            op.kind = Int32(JB_MOUNT_READ_ONLY.rawValue)
            guard set(target, base: &op.target_base, text: &op.target) else { return nil }
        case .makeDirectory(let directory, let name):
            op.kind = Int32(JB_MOUNT_MKDIR.rawValue)
            guard set(directory, base: &op.target_base, text: &op.target), let data = copy(name) else { return nil }
            op.data = data
        }
        return op
    }
}
