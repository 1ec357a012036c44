/// Where a path of a mount operation is looked up, when the operation runs inside the new mount namespace.
public enum MountPath: Sendable, Equatable {
    /// An absolute host path; symlinks are followed (the admin's paths, or paths the caller may use anyway).
    case host(String)
    /// A path relative to the scratch directory, where the job's user may have planted anything: no component
    /// may be a symlink.
    case underScratch(String)
    /// A path relative to the new root; symlinks resolve inside it and never lead out of it.
    case inRoot(String)

    /// The path as a person reads it, given the scratch directory and the new root.
    public func display(scratch: String?, root: String?) -> String {
        switch self {
        case .host(let path): return path
        case .underScratch(let relative): return Self.join(scratch ?? "<scratch>", relative)
        case .inRoot(let relative): return Self.join(root ?? "<root>", relative)
        }
    }

    static func join(_ base: String, _ relative: String) -> String {
        relative.isEmpty ? base : (base == "/" ? "/" + relative : base + "/" + relative)
    }
}

/// One step of the job's mount namespace set-up, carried out in order by the C shim.
public enum MountOperation: Sendable, Equatable {
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
}

/// The mount-related part of a plan: what the planner decided before any operation is chosen.
public struct MountLayout: Sendable, Equatable {
    /// Whether /proc gets a fresh proc (a new PID namespace), else the host's /proc is bound into a chroot.
    public var freshProc = false
    /// The scratch directory (absolute, normalised).
    public var scratch: String?
    /// Directories replaced by `<scratch>/<D>`, before the "exists and does not contain the scratch dir" filter.
    public var underScratch: [String] = []
    /// A fresh tmpfs on /dev/shm.
    public var privateDevShm = false
    /// The chroot directory (canonical, checked).
    public var chroot: String?
    /// Extra binds.
    public var binds: [BindRequest] = []

    /// An empty layout.
    public init() {}
}

/// Turns a `MountLayout` into the flat list of operations the C shim runs.
public enum MountPlanner {
    /// The directories of `layout.underScratch` that get a scratch directory: those that exist where the job will
    /// see them (`isDirectory`) and do not contain the scratch directory (binding over them would hide it).
    public static func scratchTargets(_ layout: MountLayout, isDirectory: (MountPath) -> Bool) -> [String] {
        guard let scratch = layout.scratch else { return [] }
        var seen: Set<String> = []
        return layout.underScratch.filter { directory in
            guard seen.insert(directory).inserted, !AbsolutePath.isWithin(scratch, directory) else { return false }
            return isDirectory(target(directory, layout))
        }
    }

    /// The operations for `layout`, in order; `isDirectory` tells which directories exist in the job's view.
    public static func operations(_ layout: MountLayout, isDirectory: (MountPath) -> Bool) -> [MountOperation] {
        var operations: [MountOperation] = [.makeSlave]
        let targets = scratchTargets(layout, isDirectory: isDirectory)
        if let root = layout.chroot {
            // The new root becomes a mount point of its own first, so everything below lands on it.
            operations.append(.bind(source: .host(root), target: .host(root), recursive: true))
            operations.append(.bind(source: .host("/dev"), target: .inRoot("dev"), recursive: true))
            operations.append(layout.freshProc ? .proc(target: .inRoot("proc")) : .bind(source: .host("/proc"), target: .inRoot("proc"), recursive: true))
        } else if layout.freshProc {
            operations.append(.proc(target: .host("/proc")))
        }
        // A chroot gets the host's /dev, so the host's /dev/shm tells whether there is one to cover.
        if layout.privateDevShm, isDirectory(.host("/dev/shm")) {
            operations.append(.tmpfs(target: target("/dev/shm", layout), options: "mode=1777"))
        }
        if let scratch = layout.scratch, layout.chroot != nil {
            // The scratch directory at the same path, so $_CONDOR_SCRATCH_DIR and friends stay true.
            operations.append(.bind(source: .host(scratch), target: .inRoot(AbsolutePath.relative(scratch)), recursive: true))
        }
        for directory in targets {
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
