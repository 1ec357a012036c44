import JobboxCore

/// Where a path of a mount operation is looked up, when the operation runs inside the new mount namespace.
package enum MountPath: Sendable, Equatable {
    /// An absolute host path; symlinks are followed (the admin's paths, or paths the caller may use anyway).
    case host(String)
    /// A path relative to the scratch directory, where the job's user may have planted anything: no component
    /// may be a symlink.
    case underScratch(String)
    /// A path relative to the new root; symlinks resolve inside it and never lead out of it.
    case inRoot(String)

    /// The path as a person reads it, given the scratch directory and the new root.
    package func display(scratch: String?, root: String?) -> String {
        switch self {
        case .host(let path): return path
        case .underScratch(let relative): return AbsolutePath.join(scratch ?? "<scratch>", relative)
        case .inRoot(let relative): return AbsolutePath.join(root ?? "<root>", relative)
        }
    }
}

/// One step of the job's mount namespace set-up, carried out in order by the C shim.
package enum MountOperation: Sendable, Equatable {
    /// Make every mount a recursive slave of the host's: host mounts still reach the job, none of the job's leak.
    case makeSlave
    /// Bind `source` over `target` (with its submounts when `recursive`).
    case bind(source: MountPath, target: MountPath, recursive: Bool)
    /// A fresh proc for the new PID namespace.
    case proc(target: MountPath)
    /// A fresh tmpfs with mount `options`.
    case tmpfs(target: MountPath, options: String)
    /// Make the host directory the root (pivot_root) and detach the old root.
    case pivotRoot(String)
    /// Remount the bind mount at `target` read-only (keeping its nosuid, nodev, noexec and atime flags).
    case readOnly(target: MountPath)
    /// Make the directory `name` (mode 0755) in `directory`: only ever on a tmpfs mounted for the job just before.
    case makeDirectory(in: MountPath, name: String)

    /// Whether this operation puts a mount at or above `path` (the same kind of path): the job's namespace then
    /// shows that mount's contents there, not the host's.
    func mounts(over path: MountPath) -> Bool {
        let mounted: MountPath
        switch self {
        case .bind(_, let target, _), .proc(let target), .tmpfs(let target, _): mounted = target
        case .makeSlave, .pivotRoot, .readOnly, .makeDirectory: return false
        }
        switch (mounted, path) {
        case (.host(let top), .host(let below)): return Self.isPath(below, atOrBelow: top)
        case (.inRoot(let top), .inRoot(let below)): return top.isEmpty || Self.isPath(below, atOrBelow: top)
        default: return false
        }
    }

    private static func isPath(_ path: String, atOrBelow top: String) -> Bool {
        path == top || path.hasPrefix(top.hasSuffix("/") ? top : top + "/")
    }
}

/// The mount-related part of a plan: what the planner decided before any operation is chosen.
package struct MountLayout: Sendable, Equatable {
    /// Whether /proc gets a fresh proc (a new PID namespace), else the host's /proc is bound into a chroot.
    package var freshProc = false
    /// The scratch directory (absolute, normalised).
    package var scratch: String?
    /// Directories replaced by `<scratch>/<D>`, before the "exists and is not the scratch dir" filter.
    package var underScratch: [String] = []
    /// A fresh tmpfs on /dev/shm.
    package var privateDevShm = false
    /// The chroot directory (canonical, checked).
    package var chroot: String?
    /// Extra binds.
    package var binds: [BindRequest] = []
    /// The `size=` of every tmpfs mounted for the job (`/dev/shm`; in a chroot `/tmp`, `/var/tmp`, `/run`): a
    /// number of bytes or `N%` of the node's RAM; nil for the kernel's default (half the RAM).
    package var tmpfsSize: String?
    /// The job's user, who owns the chroot's per-job `/run`.
    package var jobOwner = UserIDs(uid: 0, gid: 0)

    /// An empty layout.
    package init() {}
}

/// Where the scratch directory shows at its own path in the job's view (so `$_CONDOR_SCRATCH_DIR` stays true).
package enum ScratchPlacement: Sendable, Equatable {
    /// Nothing to do: no scratch directory, or no chroot and no directory mounted under scratch that holds it.
    case inPlace
    /// It lies below `directory`, which gets `<scratch>/<directory>`: the scratch directory is first bound onto
    /// `<scratch>/<its own path>`, which then comes along with the recursive bind over `directory`.
    case insideCovered(directory: String)
    /// Chroot: a directory at its path exists in the chroot, a ready mount point.
    case existing
    /// Chroot: its parent exists in the chroot; the mount point is made on a per-job tmpfs over the parent (or
    /// in a per-job tmpfs already there, `coverParent` false). The chroot itself is never written.
    case onTmpfs(parent: String, coverParent: Bool)
    /// Chroot: neither it nor its parent exists there; the planner refuses.
    case missing(parent: String)
}

/// Turns a `MountLayout` into the flat list of operations the C shim runs.
package enum MountPlanner {
    /// The directories of `layout.underScratch` that get a scratch directory: those that exist where the job will
    /// see them (`isDirectory`) and are not the scratch directory itself.
    package static func scratchTargets(_ layout: MountLayout, isDirectory: (MountPath) -> Bool) -> [String] {
        guard let scratch = layout.scratch else { return [] }
        var seen: Set<String> = []
        return layout.underScratch.filter { directory in
            guard seen.insert(directory).inserted, directory != scratch else { return false }
            return isDirectory(target(directory, layout))
        }
    }

    /// The directories of `targets` that hold the scratch directory (it would be hidden by their cover).
    package static func coveringTargets(_ layout: MountLayout, _ targets: [String]) -> [String] {
        guard let scratch = layout.scratch else { return [] }
        return targets.filter { scratch != $0 && AbsolutePath.isWithin(scratch, $0) }
    }

    /// The per-job tmpfs mounts of a chroot: `/tmp` and `/var/tmp` unless they come from scratch, and `/run`,
    /// each where the chroot has it. The chroot itself is read-only.
    package static func chrootTmpfsDirectories(_ layout: MountLayout, targets: [String], isDirectory: (MountPath) -> Bool) -> [String] {
        guard layout.chroot != nil else { return [] }
        return ["/tmp", "/var/tmp", "/run"].filter { !targets.contains($0) && isDirectory(target($0, layout)) }
    }

    /// How the scratch directory reaches its own path in the job's view.
    package static func scratchPlacement(_ layout: MountLayout, isDirectory: (MountPath) -> Bool) -> ScratchPlacement {
        guard let scratch = layout.scratch else { return .inPlace }
        let targets = scratchTargets(layout, isDirectory: isDirectory)
        if let covering = coveringTargets(layout, targets).first { return .insideCovered(directory: covering) }
        guard layout.chroot != nil else { return .inPlace }
        if isDirectory(target(scratch, layout)) { return .existing }
        let parent = AbsolutePath.parent(scratch)
        guard parent != "/", isDirectory(target(parent, layout)) else { return .missing(parent: parent) }
        let tmpfs = chrootTmpfsDirectories(layout, targets: targets, isDirectory: isDirectory)
        return .onTmpfs(parent: parent, coverParent: !tmpfs.contains(parent))
    }

    /// The operations for `layout`, in order; `isDirectory` tells which directories exist in the job's view.
    package static func operations(_ layout: MountLayout, isDirectory: (MountPath) -> Bool) -> [MountOperation] {
        var operations: [MountOperation] = [.makeSlave]
        let targets = scratchTargets(layout, isDirectory: isDirectory)
        let placement = scratchPlacement(layout, isDirectory: isDirectory)
        let size = layout.tmpfsSize.map { ",size=\($0)" } ?? ""
        if let root = layout.chroot {
            // The new root becomes a mount point of its own first, so everything below lands on it.
            operations.append(.bind(source: .host(root), target: .host(root), recursive: true))
            // Every job and every user shares the chroot: nothing one job writes may stay for the next.
            operations.append(.readOnly(target: .host(root)))
            operations.append(.bind(source: .host("/dev"), target: .inRoot("dev"), recursive: true))
            operations.append(layout.freshProc ? .proc(target: .inRoot("proc")) : .bind(source: .host("/proc"), target: .inRoot("proc"), recursive: true))
        } else if layout.freshProc {
            operations.append(.proc(target: .host("/proc")))
        }
        // A chroot gets the host's /dev, so the host's /dev/shm tells whether there is one to cover.
        if layout.privateDevShm, isDirectory(.host("/dev/shm")) {
            operations.append(.tmpfs(target: target("/dev/shm", layout), options: "mode=1777" + size))
        }
        for directory in chrootTmpfsDirectories(layout, targets: targets, isDirectory: isDirectory) {
            let owner = layout.jobOwner
            let options = directory == "/run" ? "mode=0755,uid=\(owner.uid),gid=\(owner.gid)" : "mode=1777"
            operations.append(.tmpfs(target: target(directory, layout), options: options + size))
        }
        if let scratch = layout.scratch {
            let own = target(scratch, layout)
            switch placement {
            case .existing:
                operations.append(.bind(source: .underScratch(""), target: own, recursive: true))
            case .onTmpfs(let parent, let coverParent):
                // Only mount points live there: a small tmpfs, root's, that the job may pass through.
                if coverParent { operations.append(.tmpfs(target: target(parent, layout), options: "mode=0755,size=1m")) }
                operations.append(.makeDirectory(in: target(parent, layout), name: AbsolutePath.lastComponent(scratch)))
                operations.append(.bind(source: .underScratch(""), target: own, recursive: true))
            case .inPlace, .insideCovered, .missing:
                break
            }
        }
        for directory in targets {
            if case .insideCovered(let covering) = placement, covering == directory, let scratch = layout.scratch {
                // <scratch>/<D>/.../<scratch's name> becomes the scratch dir, and comes along over D.
                operations.append(.bind(source: .underScratch(""), target: .underScratch(AbsolutePath.relative(scratch)), recursive: false))
                operations.append(.bind(source: .underScratch(AbsolutePath.relative(directory)), target: target(directory, layout), recursive: true))
                continue
            }
            // Not recursive, as HTCondor does: the job's directory has no submounts to carry.
            operations.append(.bind(source: .underScratch(AbsolutePath.relative(directory)), target: target(directory, layout), recursive: false))
        }
        for bind in layout.binds {
            operations.append(.bind(source: .host(bind.source), target: target(bind.target, layout), recursive: true))
        }
        if let root = layout.chroot {
            operations.append(.pivotRoot(root))
        }
        return operations
    }

    /// Where the job sees `path`: on the host, or inside the new root.
    static func target(_ path: String, _ layout: MountLayout) -> MountPath {
        layout.chroot == nil ? .host(path) : .inRoot(AbsolutePath.relative(path))
    }
}
