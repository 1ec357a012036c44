import JobboxCore

/// A job's cgroups as made by `JobCgroupCreator`: what was created and joined, so that it can be undone when the
/// command cannot be executed.
package struct JobCgroup: Sendable {
    /// The plan it was made from.
    package let plan: JobCgroupPlan
    /// The directories made, in creation order (pre-existing base cgroups are not among them).
    package let createdDirectories: [String]
    /// The base cgroups among them: shared with jobs that start at the same time, so removing one that is no
    /// longer empty is not a failure.
    package let createdBases: Set<String>
    /// The `cgroup.procs` files of the cgroups the process was in before it joined, per joined hierarchy.
    package let previousCgroups: [String]
    /// What went wrong without stopping the job (block I/O accounting that could not be switched on), one line each.
    package let warnings: [String]
}

/// Makes a job's cgroups from a plan, writes the limits and moves the calling process in; when any step fails,
/// it undoes what it did (moves the process back, removes the directories it made) before reporting the error,
/// so that nothing half-made stays.
package struct JobCgroupCreator {
    let filesystem: any CgroupFilesystem
    let layout: CgroupLayout
    let membership: CgroupMembership
    let pid: Int32
    let blockDisks: BlockDisks

    /// Creates a creator; `membership` is the caller's current cgroups (where it returns on failure), `blockDisks`
    /// the disks to switch v1 block I/O accounting on for.
    package init(
        filesystem: any CgroupFilesystem = KernelCgroupFilesystem(), layout: CgroupLayout, membership: CgroupMembership, pid: Int32 = ProcessID.current,
        blockDisks: BlockDisks = BlockDisks()
    ) {
        self.filesystem = filesystem
        self.layout = layout
        self.membership = membership
        self.pid = pid
        self.blockDisks = blockDisks
    }

    /// Carries out `plan`; on return the process is in the job's cgroup in every target hierarchy (with `moving`
    /// false it stays where it is: the cgroups are made for someone else to join).
    package func create(_ plan: JobCgroupPlan, moving: Bool = true) throws(JobboxError) -> JobCgroup {
        let progress = Progress()
        do {
            for target in plan.targets {
                try prepare(target, required: Set(plan.requiredControllers), progress: progress)
            }
            for target in plan.targets where moving {
                let previous = layout.directory(of: membership, in: target.hierarchy).map { $0 + "/cgroup.procs" }
                try write(String(pid), to: target.processDirectory + "/cgroup.procs")
                progress.previous.append(previous ?? "")
            }
        } catch {
            _ = undo(createdDirectories: progress.created, bases: progress.bases, previousCgroups: progress.previous)
            throw error
        }
        return JobCgroup(
            plan: plan, createdDirectories: progress.created, createdBases: progress.bases, previousCgroups: progress.previous, warnings: progress.warnings)
    }

    /// Moves the process back where it was and removes the directories `job` made. Returns what could not be
    /// undone, one line each (empty when everything was).
    package func undo(_ job: JobCgroup) -> [String] {
        undo(createdDirectories: job.createdDirectories, bases: job.createdBases, previousCgroups: job.previousCgroups)
    }

    private func undo(createdDirectories: [String], bases: Set<String>, previousCgroups: [String]) -> [String] {
        var problems: [String] = []
        for procs in previousCgroups where !procs.isEmpty {
            do {
                try filesystem.write(String(pid), to: procs)
            } catch {
                problems.append("cannot move back to \(procs): \(error)")
            }
        }
        for directory in createdDirectories.reversed() {
            do {
                try filesystem.removeDirectory(directory)
            } catch .noSuchFileOrDirectory {
            } catch .resourceBusy where bases.contains(directory) {
            } catch .directoryNotEmpty where bases.contains(directory) {
            } catch {
                problems.append("cannot remove \(directory): \(error)")
            }
        }
        return problems
    }

    /// What has been done so far, for undoing it.
    private final class Progress {
        var created: [String] = []
        var bases: Set<String> = []
        var previous: [String] = []
        var warnings: [String] = []
    }

    private func prepare(_ target: JobCgroupTarget, required: Set<CgroupController>, progress: Progress) throws(JobboxError) {
        var enabled = target.controllers
        if target.version == .v2 {
            enabled = try enableControllers(target, required: required, downTo: target.parentDirectory)
        }
        try makeBase(target, progress: progress)
        try makeDirectory(target.jobDirectory, isJob: true, progress: progress)
        // The base is set up after the job's mkdir, which may have had to make it again (see makeDirectory).
        if target.needsCpusetCopy {
            try copyCpuset(from: target.parentDirectory, to: target.baseDirectory, onlyIfEmpty: true)
            try copyCpuset(from: target.baseDirectory, to: target.jobDirectory, onlyIfEmpty: false)
        }
        if target.version == .v2 {
            try enable(names(enabled), in: target.baseDirectory)
            // Controllers enabled below the job give `main` (and any sibling the job makes) its own files.
            try enable(names(enabled), in: target.jobDirectory)
            try makeDirectory(target.processDirectory, isJob: false, progress: progress)
        }
        for limit in target.writes where enabled.contains(limit.controller) {
            try apply(limit, in: target)
        }
        // On the job directory, above `main` and any sibling the job makes: the program covers them all.
        if let fence = target.deviceProgram {
            try filesystem.attachDeviceFence(fence, to: target.jobDirectory)
        }
        // v2 counts every bio in io.stat; v1's statistics may first need switching on.
        if target.version == .v1 && enabled.contains(.io) {
            let accounting = BlockIOAccounting(filesystem: filesystem, disks: blockDisks)
            progress.warnings += accounting.switchOn(in: target.jobDirectory, hierarchyRoot: target.hierarchy.mountPoint)
        }
    }

    private func names(_ controllers: [CgroupController]) -> [String] {
        controllers.compactMap(\.v2Name)
    }

    /// Makes the base cgroup unless it exists. Another cg-exec that made the base and then failed removes it
    /// again if it is empty, possibly between this and the job's `mkdir`; `makeDirectory` then makes it anew.
    private func makeBase(_ target: JobCgroupTarget, progress: Progress) throws(JobboxError) {
        do {
            try filesystem.makeDirectory(target.baseDirectory)
            progress.created.append(target.baseDirectory)
            progress.bases.insert(target.baseDirectory)
        } catch .fileExists {
            return
        } catch {
            throw CgroupFailure.create(target.baseDirectory, error, isJob: false)
        }
    }

    private func makeDirectory(_ path: String, isJob: Bool, progress: Progress) throws(JobboxError) {
        var attempts = 0
        while true {
            do {
                try filesystem.makeDirectory(path)
                progress.created.append(path)
                return
            } catch .noSuchFileOrDirectory where isJob && attempts < 5 {
                // The base vanished under us (another job's failed start removed it while empty): make it again.
                attempts += 1
                let base = CgroupFailure.parentOf(path)
                do {
                    try filesystem.makeDirectory(base)
                    progress.created.append(base)
                    progress.bases.insert(base)
                } catch .fileExists {
                } catch {
                    throw CgroupFailure.create(base, error, isJob: false)
                }
            } catch {
                throw CgroupFailure.create(path, error, isJob: isJob)
            }
        }
    }

    /// v2: makes sure each wanted controller is enabled in `cgroup.subtree_control` of every cgroup from the
    /// hierarchy's root down to `directory`, writing only where one is missing (so a delegated subtree needs no
    /// write access above it). A controller that no limit needs is dropped where it cannot be had; one that a
    /// limit needs is an error naming the file. Returns the controllers that are available below `directory`.
    private func enableControllers(_ target: JobCgroupTarget, required: Set<CgroupController>, downTo directory: String) throws(JobboxError)
        -> [CgroupController]
    {
        var wanted = target.controllers
        let root = target.hierarchy.mountPoint
        var chain = [root]
        if directory.count > root.count {
            var current = root
            for component in directory.dropFirst(root.count).split(separator: "/") {
                current += "/" + component
                chain.append(current)
            }
        }
        for cgroup in chain {
            let available = Set(try readWords(cgroup + "/cgroup.controllers"))
            let enabled = Set(try readWords(cgroup + "/cgroup.subtree_control"))
            for controller in wanted {
                guard let name = controller.v2Name, !available.contains(name) else { continue }
                if required.contains(controller) {
                    throw JobboxError(
                        "cannot enable the \(name) controller in", cgroup + "/cgroup.subtree_control",
                        reason: "it is not in \(cgroup)/cgroup.controllers: the kernel or the cgroup above does not offer it")
                }
                wanted.removeAll { $0 == controller }
            }
            let missing = wanted.filter { controller in controller.v2Name.map { !enabled.contains($0) } ?? false }
            guard !missing.isEmpty else { continue }
            do {
                try enable(names(missing), in: cgroup, known: enabled)
            } catch {
                let needed = missing.filter { required.contains($0) }
                if !needed.isEmpty {
                    if needed.count == missing.count { throw error }
                    // Retry with only what a limit needs; the optional ones are dropped.
                    try enable(names(needed), in: cgroup, known: enabled)
                }
                wanted.removeAll { missing.contains($0) && !required.contains($0) }
            }
        }
        return wanted
    }

    private func enable(_ names: [String], in cgroup: String, known: Set<String>? = nil) throws(JobboxError) {
        let enabled: Set<String>
        if let known { enabled = known } else { enabled = Set(try readWords(cgroup + "/cgroup.subtree_control")) }
        let missing = names.filter { !enabled.contains($0) }
        if missing.isEmpty { return }
        try write(missing.map { "+" + $0 }.joined(separator: " "), to: cgroup + "/cgroup.subtree_control")
    }

    /// v1 cpuset: copies `cpuset.mems` and `cpuset.cpus` from `source` (its effective sets when its own are
    /// empty), so that the cgroup can take tasks.
    private func copyCpuset(from source: String, to directory: String, onlyIfEmpty: Bool) throws(JobboxError) {
        for file in ["cpuset.mems", "cpuset.cpus"] {
            if onlyIfEmpty, try !read(directory + "/" + file).trimmingASCIISpaces().isEmpty { continue }
            var value = try read(source + "/" + file).trimmingASCIISpaces()
            if value.isEmpty { value = try read(source + "/" + file.replacingPrefix("cpuset.", with: "cpuset.effective_")).trimmingASCIISpaces() }
            try write(value, to: directory + "/" + file)
        }
    }

    private func apply(_ limit: CgroupLimitWrite, in target: JobCgroupTarget) throws(JobboxError) {
        let directory = target.jobDirectory
        guard let choice = limit.candidates.first(where: { filesystem.exists(directory + "/" + $0.file) }) else {
            let files = limit.candidates.map(\.file).joined(separator: " or ")
            let why =
                limit.candidates.first?.file == "memory.memsw.limit_in_bytes"
                ? "swap accounting is off in this kernel (boot with swapaccount=1)"
                : "the kernel offers no \(files) there (the controller is off, or this kernel lacks the feature)"
            throw JobboxError("cannot apply \(limit.source) in", directory, reason: why)
        }
        let path = directory + "/" + choice.file
        do {
            try filesystem.write(choice.value, to: path)
        } catch {
            var detail: String?
            // The kernel says EINVAL or ERANGE (depending on its version) for a set outside the parent's.
            if error == .invalidArgument || error == .outOfRange, choice.file.hasPrefix("cpuset.") {
                let parent = CgroupFailure.parentOf(directory)
                let own = (try? filesystem.read(parent + "/" + choice.file))?.trimmingASCIISpaces() ?? ""
                let effectiveFile = target.version == .v2 ? choice.file + ".effective" : choice.file.replacingPrefix("cpuset.", with: "cpuset.effective_")
                let effective = (try? filesystem.read(parent + "/" + effectiveFile))?.trimmingASCIISpaces()
                let allowed = own.isEmpty ? (effective ?? "") : own
                detail = "\(limit.source) \(choice.value) is not within the parent's \(allowed.isEmpty ? "set" : allowed) (\(parent))"
            }
            throw CgroupFailure.write(choice.value, path, error, detail: detail)
        }
    }

    private func read(_ path: String) throws(JobboxError) -> String {
        do {
            return try filesystem.read(path)
        } catch {
            throw CgroupFailure.read(path, error)
        }
    }

    private func readWords(_ path: String) throws(JobboxError) -> [String] {
        try read(path).split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
    }

    private func write(_ value: String, to path: String) throws(JobboxError) {
        do {
            try filesystem.write(value, to: path)
        } catch {
            throw CgroupFailure.write(value, path, error)
        }
    }
}

extension String {
    func replacingPrefix(_ prefix: String, with replacement: String) -> String {
        hasPrefix(prefix) ? replacement + dropFirst(prefix.count) : self
    }
}
