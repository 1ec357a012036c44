import JobboxCore

/// What the caller of ns-exec asked for, as given on the command line (defaults not yet applied).
package struct NsExecRequest: Sendable, Equatable {
    /// `--pid`: a new PID namespace, with jobbox's init as PID 1 unless `noInit`.
    package var pid = false
    /// `--mount`: a new mount namespace (implied by `--pid`, `--scratch`, `--chroot`, `--bind`, `--private-dev-shm`).
    package var mount = false
    /// `--uts`: a new UTS namespace (implied by `--hostname`).
    package var uts = false
    /// `--ipc`: a new IPC namespace.
    package var ipc = false
    /// `--net`: a new network namespace with only `lo`, up.
    package var net = false
    /// `--userns`: a user namespace mapping the caller's own uid and gid, so the rest works without root.
    package var userns = false
    /// `--hostname NAME`.
    package var hostname: String?
    /// `--scratch DIR`: the job's scratch directory.
    package var scratch: String?
    /// `--scratch-quota SIZE[,INODES]|none` (nil: `SCRATCH_QUOTA` when root).
    package var scratchQuota: String?
    /// `--mount-under-scratch LIST` (nil: `MOUNT_UNDER_SCRATCH`).
    package var mountUnderScratch: [String]?
    /// `--private-dev-shm` / `--no-private-dev-shm` (nil: `MOUNT_PRIVATE_DEV_SHM`).
    package var privateDevShm: Bool?
    /// `--chroot NAME|PATH`.
    package var chroot: String?
    /// `--bind SRC[:DST]`, in order.
    package var binds: [BindRequest] = []
    /// `--user USER` (nil: the job ad's `Owner` when root, never root itself; else no change).
    package var user: String?
    /// `--group GROUP`.
    package var group: String?
    /// `--workdir DIR`.
    package var workdir: String?
    /// `--no-new-privs` (always on when the caller is not root).
    package var noNewPrivs = false
    /// `--no-init`: with `--pid`, the job itself is PID 1.
    package var noInit = false
    /// `--keep-fd N`, repeatable: descriptors passed on to the job when ns-exec closes the others.
    package var keepFDs: [String] = []
    /// The command and its arguments.
    package var command: [String] = []

    /// An empty request.
    package init() {}
}
