/// What the caller of ns-exec asked for, as given on the command line (defaults not yet applied).
public struct NsExecRequest: Sendable, Equatable {
    /// `--pid`: a new PID namespace, with jobbox's init as PID 1 unless `noInit`.
    public var pid = false
    /// `--mount`: a new mount namespace (implied by `--pid`, `--scratch`, `--chroot`, `--bind`, `--private-dev-shm`).
    public var mount = false
    /// `--uts`: a new UTS namespace (implied by `--hostname`).
    public var uts = false
    /// `--ipc`: a new IPC namespace.
    public var ipc = false
    /// `--net`: a new network namespace with only `lo`, up.
    public var net = false
    /// `--userns`: a user namespace mapping the caller's own uid and gid, so the rest works without root.
    public var userns = false
    /// `--hostname NAME`.
    public var hostname: String?
    /// `--scratch DIR`: the job's scratch directory.
    public var scratch: String?
    /// `--mount-under-scratch LIST` (nil: `MOUNT_UNDER_SCRATCH`).
    public var mountUnderScratch: [String]?
    /// `--private-dev-shm` / `--no-private-dev-shm` (nil: `MOUNT_PRIVATE_DEV_SHM`).
    public var privateDevShm: Bool?
    /// `--chroot NAME|PATH`.
    public var chroot: String?
    /// `--bind SRC[:DST]`, in order.
    public var binds: [BindRequest] = []
    /// `--user USER` (nil: the job ad's `Owner` when root, never root itself; else no change).
    public var user: String?
    /// `--group GROUP`.
    public var group: String?
    /// `--workdir DIR`.
    public var workdir: String?
    /// `--no-new-privs` (always on when the caller is not root).
    public var noNewPrivs = false
    /// `--no-init`: with `--pid`, the job itself is PID 1.
    public var noInit = false
    /// `--keep-fd N`, repeatable: descriptors passed on to the job when ns-exec closes the others.
    public var keepFDs: [String] = []
    /// The command and its arguments.
    public var command: [String] = []

    /// An empty request.
    public init() {}
}

/// One `--bind SRC[:DST]`: SRC of the host bound at DST (inside the chroot when there is one).
public struct BindRequest: Sendable, Equatable, CustomStringConvertible {
    /// The host path.
    public var source: String
    /// Where it appears in the job's view.
    public var target: String

    /// A bind of `source` at `target`.
    public init(source: String, target: String) {
        self.source = source
        self.target = target
    }

    /// Parses `SRC` or `SRC:DST`; both must be absolute paths without `.` or `..` components.
    public init(parsing text: String) throws(JobboxError) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let source = AbsolutePath.normalize(parts[0]),
            let target = AbsolutePath.normalize(parts.count == 2 ? parts[1] : parts[0])
        else {
            throw JobboxError.invalid("invalid bind", "'\(text)'", "expected SRC or SRC:DST with absolute paths without . or ..")
        }
        self.init(source: source, target: target)
    }

    public var description: String { source == target ? source : "\(source):\(target)" }
}

/// Absolute paths in the one spelling the planner compares: no `//`, no trailing `/`, no `.` or `..`.
public enum AbsolutePath {
    /// `text` normalised, or nil when it is relative, empty, or has `.`, `..` or a newline in it.
    public static func normalize(_ text: String) -> String? {
        guard text.hasPrefix("/"), !text.contains("\n"), !text.contains("\0") else { return nil }
        let parts = text.split(separator: "/")
        guard !parts.contains(where: { $0 == "." || $0 == ".." }) else { return nil }
        return "/" + parts.joined(separator: "/")
    }

    /// Whether `path` is `ancestor` or lies below it (both normalised).
    public static func isWithin(_ path: String, _ ancestor: String) -> Bool {
        ancestor == "/" || path == ancestor || path.hasPrefix(ancestor + "/")
    }

    /// The parent of a normalised `path` (`/` for `/x` and for `/`).
    public static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// The last component of a normalised `path` (empty for `/`).
    public static func lastComponent(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? ""
    }

    /// `path` without its leading `/` (`/var/tmp` gives `var/tmp`, `/` gives an empty string).
    public static func relative(_ path: String) -> String {
        String(path.drop(while: { $0 == "/" }))
    }
}
