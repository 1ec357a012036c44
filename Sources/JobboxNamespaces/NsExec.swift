import CLinux
import JobboxCore
import JobboxQuota

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// ns-exec from request to exit status: plan, prepare the job's directories, launch, and report.
package enum NsExec {
    /// Runs `request`. Errors found while planning are thrown (nothing has been made yet); a failure of the
    /// launch itself is reported here, because by then this process may already sit in the job's namespaces,
    /// chroot and identity, where the wrapper error file's path may mean nothing.
    ///
    /// With a PID namespace and a job id (`job`, else the one the environment gives), the job is recorded for
    /// `ns-exec --attach` while it runs (`JobRecords`); a job without an id, or a record that cannot be written,
    /// only cannot be attached to (a warning says why).
    package static func run(
        _ request: NsExecRequest, config: JobboxConfig, environment: Environment, diagnostics: Diagnostics, job: String? = nil
    ) throws(JobboxError) -> Int32 {
        // Setuid, setgid and file capabilities are refused before this, for every tool (`PrivilegedExecution`).
        // A TERM from here on waits for the job and goes to it (with --pid; without, it acts once the mask is
        // cleared for the exec), so it never stops the set-up half-way. The C side unblocks what it forwards.
        SetUpSignals.hold()
        let plan = try NsExecPlanner.plan(request, config: config, caller: .current, environment: environment)
        let scratchDirectory = try plan.layout.scratch.map { path throws(JobboxError) in try JobScratch(path) }
        defer { scratchDirectory?.close() }
        let binds = try pinBinds(plan)
        var created = CreatedDirectories()
        var quota: String?
        do throws(JobboxError) {
            // Before the directories under scratch are made, so they carry the quota's project id too.
            if let scratchDirectory, let limit = plan.scratchQuota {
                let pinned = scratchDirectory.pinned
                try ScratchQuota.apply(limit, to: scratchDirectory.path, settings: plan.scratchQuotaSettings, expecting: (pinned.device, pinned.inode))
                quota = scratchDirectory.path
            }
            if let scratchDirectory {
                try JobDirectories.prepareScratch(
                    scratchDirectory, directories: plan.scratchTargets, owner: (plan.owner.uid, plan.owner.gid), created: &created)
            }
        } catch {
            created.removeAll()
            removeQuota(quota, plan)
            throw error
        }
        let reporter = LaunchFailureReporter(diagnostics)
        let recorder = JobRecorder(plan: plan, job: job, config: config, environment: environment, diagnostics: diagnostics)
        switch NamespaceLauncher.run(plan, scratch: scratchDirectory, binds: binds, started: recorder.started, ended: recorder.ended) {
        case .exited(let status):
            return status
        case .failed(let error):
            // A job that could not be exec'd still had its directories; a set-up that failed did not.
            if error.kind == .toolFailure {
                created.removeAll()
                removeQuota(quota, plan)
            }
            reporter.report(error)
            return error.exitStatus
        }
    }
}

extension NsExec {
    /// The host paths the plan binds from and onto (`--bind`, a chroot's BINDS, the scratch dir's), checked by
    /// `GuardedPath`'s rule. As root, a source where the job's user can write (`--bind /scratch/alice:/data`) may
    /// be a symlink the user left to a directory only root can reach, which the bind would show to the job; a
    /// target there (the same path, DST's default) a symlink to `/etc`, which the bind would cover with the user's
    /// files, for the job's setuid programs to read.
    ///
    /// A target at or below an earlier mount of the plan cannot be checked here (the job's namespace shows that
    /// mount there, not what the host has): it is looked up without following any symlink instead, as is a
    /// target in a chroot below an earlier bind (whose contents may be the user's). Any other target in a chroot
    /// resolves its symlinks inside the image, which is root's and read-only.
    static func pinBinds(_ plan: NsExecPlan) throws(JobboxError) -> [Int: PinnedBind] {
        var pinned: [Int: PinnedBind] = [:]
        for (index, operation) in plan.mounts.enumerated() {
            guard case .bind(let source, let target, _) = operation else { continue }
            var bind = PinnedBind()
            if case .host(let path) = source { bind.source = try PinnedPath.open(path, for: "cannot bind") }
            let earlier = plan.mounts.prefix(index)
            switch target {
            case .host(let path):
                if earlier.contains(where: { $0.mounts(over: target) }) {
                    bind.targetWithoutSymlinks = true
                } else {
                    bind.target = try PinnedPath.open(path, for: "cannot bind over")
                }
            case .inRoot:
                bind.targetWithoutSymlinks = earlier.contains { operation in
                    guard case .bind = operation else { return false }
                    return operation.mounts(over: target)
                }
            case .underScratch:
                break
            }
            pinned[index] = bind
        }
        return pinned
    }

    /// Takes back a quota set for a job that never ran (its error is the one to report, so this one's is dropped).
    static func removeQuota(_ scratch: String?, _ plan: NsExecPlan) {
        guard let scratch else { return }
        _ = try? ScratchQuota.remove(from: scratch, settings: plan.scratchQuotaSettings)
    }

    /// `ns-exec --remove-scratch-quota DIR`: removes the limit a run with `--scratch-quota` left on DIR (the
    /// job wrapper calls it after jobstat has read the figures, or after a killed ns-exec); idempotent.
    package static func removeScratchQuota(_ directory: String, config: JobboxConfig) throws(JobboxError) -> Int32 {
        guard GuardedPath.isPrivileged else {
            throw JobboxError.invalid("invalid option", "--remove-scratch-quota", "only root can change a quota")
        }
        guard let path = AbsolutePath.normalize(directory) else {
            throw JobboxError.invalid("invalid scratch directory", "'\(directory)'", "not an absolute path without . or ..")
        }
        try ScratchQuota.remove(from: path, settings: ScratchQuotaSettings(config))
        return 0
    }
}

/// Reports a launch failure on stderr and in `$_CONDOR_WRAPPER_ERROR_FILE`. By then this process may be in a
/// chroot where that path means nothing, so the file's directory is opened before the launch; the file itself is
/// only created on failure (HTCondor takes its mere existence as the wrapper's failure).
struct LaunchFailureReporter {
    private let tool: String
    private let parent: GuardedDirectory?
    private let name: String
    private let path: String

    init(_ diagnostics: Diagnostics) {
        tool = diagnostics.tool
        path = diagnostics.wrapperErrorFile ?? ""
        // The file lies in the job's scratch dir: its directory is reached by GuardedPath's rule.
        if let file = diagnostics.wrapperErrorFile,
            let (directory, name) = try? GuardedPath.openParent(of: file, for: "cannot append to the wrapper error file")
        {
            parent = directory
            self.name = name
        } else {
            parent = nil
            name = ""
        }
    }

    func report(_ error: JobboxError) {
        let line = "\(tool): \(error.description)\n"
        writeAll(.standardError, line)
        guard let parent else { return }
        do throws(JobboxError) {
            try GuardedFile.append(line, in: parent, name: name, path: path, for: "cannot append to the wrapper error file")
        } catch {
            writeAll(.standardError, "\(tool): \(error.description)\n")
        }
    }
}

/// Records a job started with a PID namespace for `ns-exec --attach`, and removes the record when it ends.
struct JobRecorder {
    let records: JobRecords
    let job: JobID?
    let identity: JobIdentity
    let diagnostics: Diagnostics

    init(plan: NsExecPlan, job option: String?, config: JobboxConfig, environment: Environment, diagnostics: Diagnostics) {
        records = JobRecords.forCaller(config: config, environment: environment)
        // No id, no record: the job runs all the same, it only cannot be attached to.
        job = plan.needsChild ? try? JobID.resolve(option: option, environment: environment) : nil
        identity = plan.identity ?? JobIdentity.caller
        self.diagnostics = diagnostics
    }

    func started(_ pid: Int32) {
        guard let job, let start = ProcessStat.read(pid: pid)?.startTime else { return }
        let record = JobRecord(pid: pid, startTime: start, uid: identity.uid, gid: identity.gid, groups: identity.groups)
        do {
            try records.write(record, for: job)
        } catch {
            diagnostics.warning("job \(job) cannot be attached to: \(error)")
        }
    }

    func ended(_ pid: Int32) {
        guard let job else { return }
        records.remove(job, pid: pid)
    }
}
