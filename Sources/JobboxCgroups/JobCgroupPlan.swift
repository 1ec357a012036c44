import JobboxCore

/// What cg-exec makes for one job in one hierarchy.
package struct JobCgroupTarget: Sendable, Equatable {
    /// The hierarchy.
    package let hierarchy: CgroupHierarchy
    /// The selected controllers that live in this hierarchy (none for v2 used only to track and kill the job).
    package let controllers: [CgroupController]
    /// The parent of the base cgroup (exists already).
    package let parentDirectory: String
    /// `<parent>/<BASE_CGROUP>`.
    package let baseDirectory: String
    /// `<base>/job_<id>`: the limits sit here.
    package let jobDirectory: String
    /// Where the process goes: the job directory on v1, its leaf `<job>/main` on v2 (so that a job may make
    /// siblings of `main` in its own delegated cgroup, as HTCondor's `.slice`/`.scope` split allows).
    package let processDirectory: String
    /// The limits, in writing order.
    package let writes: [CgroupLimitWrite]
    /// The device fence to attach as a BPF program to the job directory (unified hierarchy only; on v1 the fence
    /// is among `writes`).
    package var deviceProgram: DeviceFence? = nil

    /// The hierarchy's version.
    package var version: CgroupHierarchy.Version { hierarchy.version }

    /// v2: the controller names to enable in `cgroup.subtree_control` from the hierarchy's root down to the job.
    package var controllersToEnable: [String] {
        version == .v2 ? controllers.compactMap(\.v2Name) : []
    }

    /// v1 cpuset: a cgroup needs `cpuset.cpus` and `cpuset.mems` before a task may join, and a new one has neither.
    package var needsCpusetCopy: Bool {
        version == .v1 && controllers.contains(.cpuset)
    }
}

/// The cgroups of one job in every hierarchy it needs, with their limits: everything decided and checked before
/// anything is made.
package struct JobCgroupPlan: Sendable, Equatable {
    /// The name of the v2 leaf the job's process runs in.
    package static let leafName = "main"

    /// The job.
    package let job: JobID
    /// One target per hierarchy, v1 hierarchies first.
    package let targets: [JobCgroupTarget]
    /// The controllers the limits need; on v2 one that no limit needs is dropped where it is not delegated.
    package let requiredControllers: [CgroupController]

    /// Plans the job's cgroups.
    ///
    /// - `controllers`: those `--controllers` named, or nil for the defaults: every controller cg-exec knows
    ///   that the node has, except cpuset on v2 unless a limit needs it.
    /// - On a v2 or hybrid node the unified hierarchy is always among the targets: on hybrid nodes it has no
    ///   controllers jobbox uses, but its `cgroup.kill`, `cgroup.freeze` and `cgroup.events` make `--remove`
    ///   atomic where v1 can only signal pid by pid, and no process of the job can leave it unprivileged.
    /// - A device fence goes to the v1 devices controller or, on the unified hierarchy, a BPF program, as
    ///   `deviceBackend` (`DEVICE_BACKEND`) says; auto takes v1 where the devices controller is mounted.
    package static func make(
        locator: JobCgroupLocator, job: JobID, limits: CgroupLimits, controllers explicit: Set<CgroupController>?,
        deviceBackend: DeviceBackendChoice = .auto
    ) throws(JobboxError) -> JobCgroupPlan {
        let layout = locator.layout
        let required = limits.requiredControllers
        let selected = explicit ?? CgroupController.defaults
        for (controller, option) in required.sorted(by: { $0.key < $1.key }) where !selected.contains(controller) {
            throw JobboxError.invalid("cannot apply", option, "it needs the \(controller.rawValue) controller, which --controllers leaves out")
        }

        var groups: [(hierarchy: CgroupHierarchy, controllers: [CgroupController])] = []
        for controller in selected.sorted() {
            guard let hierarchy = resolve(controller, in: layout, deviceBackend: deviceBackend) else {
                if let option = required[controller] {
                    throw JobboxError.invalid(
                        "cannot apply", option, "no mounted cgroup hierarchy has the \(controller.displayName) controller (\(modeDescription(layout)))")
                }
                if explicit != nil {
                    throw JobboxError.invalid(
                        "unavailable controller", "'\(controller.rawValue)' in --controllers", "no mounted cgroup hierarchy has it (\(modeDescription(layout)))"
                    )
                }
                continue
            }
            let onlyByDefault = explicit == nil && required[controller] == nil
            if controller == .cpuset && hierarchy.version == .v2 && onlyByDefault { continue }
            if controller == .devices && onlyByDefault { continue }
            if let index = groups.firstIndex(where: { $0.hierarchy == hierarchy }) {
                groups[index].controllers.append(controller)
            } else {
                groups.append((hierarchy, [controller]))
            }
        }
        if let unified = layout.unified, !groups.contains(where: { $0.hierarchy == unified }) {
            groups.append((unified, []))
        }
        // Mount order with the unified tree last, so that targets come out the same on every run.
        let order = layout.hierarchies.filter { $0.version == .v1 } + (layout.unified.map { [$0] } ?? [])
        groups = order.compactMap { hierarchy in groups.first { $0.hierarchy == hierarchy } }
        if groups.isEmpty {
            throw JobboxError.invalid("no cgroup hierarchy", nil, "none of the selected controllers is mounted (\(modeDescription(layout)))")
        }

        var targets: [JobCgroupTarget] = []
        for group in groups {
            guard let parent = locator.parentDirectory(in: group.hierarchy) else {
                throw JobboxError.invalid(
                    "cannot find the parent cgroup", "'\(locator.parent)' in \(group.hierarchy.mountPoint)",
                    "this process's cgroup there lies outside what the mount shows")
            }
            let base = parent + "/" + locator.base
            let jobDirectory = base + "/" + job.cgroupName
            let version = group.hierarchy.version
            var writes: [CgroupLimitWrite] = []
            for controller in group.controllers {
                writes.append(contentsOf: try limits.writes(for: controller, version: version))
            }
            var target = JobCgroupTarget(
                hierarchy: group.hierarchy, controllers: group.controllers, parentDirectory: parent, baseDirectory: base,
                jobDirectory: jobDirectory, processDirectory: version == .v2 ? jobDirectory + "/" + leafName : jobDirectory,
                writes: writes)
            if version == .v2 && group.controllers.contains(.devices) { target.deviceProgram = limits.devices }
            targets.append(target)
        }
        return JobCgroupPlan(job: job, targets: targets, requiredControllers: required.keys.sorted())
    }

    /// The hierarchy that serves `controller`: a v1 hierarchy it is bound to, else the unified one when it
    /// offers it (cpuacct and the freezer are part of every v2 cgroup).
    static func resolve(_ controller: CgroupController, in layout: CgroupLayout, deviceBackend: DeviceBackendChoice = .auto) -> CgroupHierarchy? {
        if controller == .devices {
            let v1 = layout.hierarchies.first { $0.version == .v1 && $0.has("devices") }
            switch deviceBackend {
            case .v1: return v1
            case .bpf: return layout.unified
            case .auto: return v1 ?? layout.unified
            }
        }
        if let v1 = layout.hierarchies.first(where: { $0.version == .v1 && $0.has(controller.v1Name) }) { return v1 }
        guard let unified = layout.unified else { return nil }
        guard let name = controller.v2Name else { return unified }
        return unified.has(name) ? unified : nil
    }

    static func modeDescription(_ layout: CgroupLayout) -> String {
        switch layout.mode {
        case .v1: return "cgroup v1 node"
        case .v2: return "cgroup v2 node offering \(layout.unified?.controllers.sorted().joined(separator: " ") ?? "nothing")"
        case .hybrid: return "hybrid node"
        }
    }
}
