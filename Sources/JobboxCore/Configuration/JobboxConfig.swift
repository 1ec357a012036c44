import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A chroot a job may ask for by name (`NAMED_CHROOT = SL7=/chroot/sl7`).
package struct NamedChroot: Sendable, Equatable {
    /// The name jobs use.
    package let name: String
    /// The directory (often a symlink chroot-tool switches).
    package let path: String
}

/// The settings of `/etc/jobbox/jobbox.conf`; every knob has a built-in default, so no file is needed.
package struct JobboxConfig: Sendable, Equatable {
    /// The file read when neither `--config` nor `JOBBOX_CONFIG` names one.
    package static let defaultPath = "/etc/jobbox/jobbox.conf"
    /// The knobs jobbox knows; any other is warned about. An array: a set of strings would make every tool's
    /// start look up String's Hashable conformance by a scan of the whole binary (0.24 M instructions).
    package static let knownKnobs: [String] = [
        "BASE_CGROUP", "CGROUP_PARENT", "MOUNT_UNDER_SCRATCH", "MOUNT_PRIVATE_DEV_SHM", "NAMED_CHROOT", "CHROOT_DIR", "STATE_DIR",
        "NETWORK_INTERNAL", "NETWORK_JOB_SUBNET", "NETWORK_BACKEND", "JOB_TMPFS_SIZE", "CHROOT_MOUNT_POINTS",
        "SCRATCH_QUOTA", "SCRATCH_QUOTA_PROJECT_IDS",
        "NETWORK_ACCOUNTING_CGROUP", "NETACCT_SOCKET", "NETACCT_PIN_DIR",
        "DEVICE_POLICY", "DEVICE_ALLOW", "DEVICE_BACKEND", "GPU_DEVICE_DIR", "GPU_HIDE_UNASSIGNED",
    ]

    /// `BASE_CGROUP`: the cgroup (relative to the parent) that holds every job's cgroup.
    package var baseCgroup = "jobbox"
    /// `CGROUP_PARENT`: where the base cgroup lives.
    package var cgroupParent = CgroupParent.root
    /// `MOUNT_UNDER_SCRATCH`: directories replaced per job by a directory in the scratch dir.
    package var mountUnderScratch = ["/tmp", "/var/tmp"]
    /// `MOUNT_PRIVATE_DEV_SHM`: whether jobs get a fresh tmpfs on /dev/shm.
    package var mountPrivateDevShm = true
    /// `NAMED_CHROOT`: chroots jobs may ask for by name.
    package var namedChroots: [NamedChroot] = []
    /// `JOB_TMPFS_SIZE`: the size of each tmpfs ns-exec mounts for a job (its /dev/shm; a chroot's /tmp, /var/tmp,
    /// /run), capped by the job's memory cgroup limit.
    package var jobTmpfsSize = JobTmpfsSize.defaultSize
    /// `CHROOT_MOUNT_POINTS`: directories chroot-tool build makes in every version, so ns-exec finds the mount
    /// points it needs there (the parent of the jobs' scratch dirs, HTCondor's EXECUTE).
    package var chrootMountPoints = ["/var/lib/condor/execute"]
    /// `SCRATCH_QUOTA`: the quota ns-exec, run as root with `--scratch`, puts on the scratch directory when
    /// `--scratch-quota` is not given (nil: none).
    package var scratchQuota: ScratchQuotaLimit?
    /// `SCRATCH_QUOTA_PROJECT_IDS`: the project ids scratch quotas on XFS and ext4 are given from.
    package var scratchQuotaProjectIDs = ProjectIDRange.defaultRange
    /// `CHROOT_DIR`: where chroot-tool keeps versions and the name symlinks.
    package var chrootDir = "/chroot"
    /// `STATE_DIR`: leases, short names and records of running jobs.
    package var stateDir = "/run/jobbox"
    /// `NETWORK_INTERNAL`: remote networks counted as internal; by default RFC 1918's private networks,
    /// 10.0.0.0/8, 172.16.0.0/12 and 192.168.0.0/16, given as numbers: parsing text here would run in every
    /// tool's start, which builds a configuration whether it counts networks or not.
    package var networkInternal = [
        IPv4Network(address: IPv4Address(0x0A00_0000), prefixLength: 8),
        IPv4Network(address: IPv4Address(0xAC10_0000), prefixLength: 12),
        IPv4Network(address: IPv4Address(0xC0A8_0000), prefixLength: 16),
    ]
    /// The IPv6 networks of `NETWORK_INTERNAL` (only the bpf back end counts IPv6; none by default).
    package var networkInternalIPv6: [IPv6Network] = []
    /// `NETWORK_JOB_SUBNET`: the pool of per-job veth address pairs.
    package var networkJobSubnet = IPv4Network(address: IPv4Address(0x0AD5_0000), prefixLength: 16)
    /// `NETWORK_BACKEND`.
    package var networkBackend = NetworkBackendChoice.auto
    /// `NETWORK_ACCOUNTING_CGROUP`: where `netacct --node` attaches its programs, a cgroup of the unified
    /// hierarchy as /proc/PID/cgroup writes it (`/`: the unified root, the whole node).
    package var networkAccountingCgroup = "/"
    /// `NETACCT_SOCKET`: the node service's Unix socket.
    package var netacctSocket = "/run/jobbox/netacct.sock"
    /// `NETACCT_PIN_DIR`: the node service's directory in bpffs (its counters map and links).
    package var netacctPinDir = "/sys/fs/bpf/jobbox/netacct"
    /// `DEVICE_POLICY`: the device policy of jobs that give no `--device-policy`.
    package var devicePolicy = DevicePolicy.auto
    /// `DEVICE_ALLOW`: devices every job may open, on top of its own `--device-allow` entries.
    package var deviceAllow: [DeviceAllowSpec] = []
    /// `DEVICE_BACKEND`: the v1 devices controller or a BPF program on the unified hierarchy.
    package var deviceBackend = DeviceBackendChoice.auto
    /// `GPU_DEVICE_DIR`: where `--gpus` finds the GPUs' device nodes (`nvidiaN`, `dri/renderD*`, `kfd`).
    package var gpuDeviceDir = "/dev"
    /// `GPU_HIDE_UNASSIGNED`: with `--from-job-ad`, a job whose ad has no `AssignedGPUs` is fenced off every GPU.
    package var gpuHideUnassigned = true
    /// The file the settings came from, nil for built-in defaults.
    package var source: String?
    /// Warnings found while reading (unknown knobs), for the tool to print.
    package var warnings: [String] = []

    /// The built-in defaults.
    package init() {}

    /// The chroot path for `name`, if configured (names compare case-insensitively, as HTCondor's do).
    package func namedChroot(_ name: String) -> NamedChroot? {
        namedChroots.first { $0.name.lowercased() == name.lowercased() }
    }

    /// Reads the configuration: `explicitPath` (`--config`), else `$JOBBOX_CONFIG`, else the default path, where a
    /// missing default file means built-in defaults. As root, `$JOBBOX_CONFIG` and the default file are believed only
    /// when root's alone (a root-run job wrapper's environment may come from the job); `--config` is root's own
    /// choice. When the process runs with more privilege than its caller, the environment is ignored and even
    /// `--config` must be root's alone (the tools refuse to run so in `JobboxTool.runMain`; this is a second line).
    ///
    /// Trusted input: the file's text is the administrator's (or, run unprivileged, the user's own), but it is read
    /// through `GuardedFile` as bounded input all the same: a regular file of at most `ConfigFile.maxFileBytes`
    /// (`--config /dev/zero` is an error, not a read until memory runs out), no symlink a job could have made.
    package static func load(explicitPath: String?, environment: Environment, privileged: Bool = Environment.isPrivilegedExecution) throws(JobboxError)
        -> JobboxConfig
    {
        let fromEnvironment = privileged ? nil : environment["JOBBOX_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        let path = explicitPath ?? fromEnvironment ?? defaultPath
        let operation = "cannot read configuration"
        let bytes: [UInt8]
        do throws(JobboxError) {
            // As root, a file root's own command line did not name (it came from the environment, which a batch
            // system may fill from the job, or is the default) must be root's alone, or the job could pick it.
            if privileged || (GuardedPath.isPrivileged && explicitPath == nil) {
                try requireRootOnly(path, operation: operation)
            }
            bytes = try GuardedFile.read(path, limit: ConfigFile.maxFileBytes, for: operation)
        } catch  where error.errno == .noSuchFileOrDirectory && explicitPath == nil && fromEnvironment == nil {
            return JobboxConfig()
        }
        return try parse(String(decoding: bytes, as: UTF8.self), path: path)
    }

    /// Requires `path` to lie in a directory only root can change and to be root's, writable by no one else.
    private static func requireRootOnly(_ path: String, operation: String) throws(JobboxError) {
        let (parent, name) = try GuardedPath.openParent(of: path, for: operation)
        defer { parent.close() }
        var info = stat()
        guard fstatat(parent.fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { throw JobboxError.lastErrno(operation, path) }
        guard parent.isTrusted, GuardedPath.isRootOnly(info) else {
            throw JobboxError.invalid(
                operation, path, "as root, a configuration not given with --config must be root's alone (owned by root, in directories only root can write)")
        }
    }

    /// Parses configuration text; `path` names the file in errors and warnings. Errors name the line and knob, never
    /// the value: the text may come from a file the user running the tool cannot read. Warnings name an unknown
    /// knob, which is never printed where the caller could not read the file: every tool refuses to run setuid.
    package static func parse(_ text: String, path: String) throws(JobboxError) -> JobboxConfig {
        var config = JobboxConfig()
        config.source = path
        for entry in try ConfigFile.parse(text, path: path) {
            guard knownKnobs.contains(entry.name) else {
                config.warnings.append("\(path):\(entry.line): unknown knob \(entry.name) ignored")
                continue
            }
            do throws(KnobError) {
                try config.apply(entry)
            } catch {
                throw JobboxError.invalid("bad configuration", "\(path):\(entry.line)", "\(entry.name): \(error.reason)")
            }
        }
        return config
    }

    /// Why a value was refused; says what was expected, never quoting the value.
    private struct KnobError: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    private mutating func apply(_ entry: ConfigEntry) throws(KnobError) {
        let value = entry.value
        switch entry.name {
        case "BASE_CGROUP":
            let trimmed = value.trimmingTrailingSlashes()
            guard CgroupParent.isSafeRelative(trimmed) else { throw KnobError("not a relative cgroup path without '..'") }
            baseCgroup = trimmed
        case "CGROUP_PARENT":
            guard let parent = CgroupParent(parsing: value) else { throw KnobError("not /, self, or an absolute cgroup path without '..'") }
            cgroupParent = parent
        case "MOUNT_UNDER_SCRATCH":
            let list = value.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
            guard list.allSatisfy(Self.isCleanAbsolutePath) else { throw KnobError("not a comma-separated list of absolute paths") }
            mountUnderScratch = list
        case "MOUNT_PRIVATE_DEV_SHM":
            guard let flag = Self.parseBool(value) else { throw KnobError("not true or false") }
            mountPrivateDevShm = flag
        case "NAMED_CHROOT":
            namedChroots = try Self.parseNamedChroots(value)
        case "JOB_TMPFS_SIZE":
            guard let size = JobTmpfsSize(parsing: value) else {
                throw KnobError("'\(value)' is not a size such as 512M or 2G, or a percentage of RAM such as 25%")
            }
            jobTmpfsSize = size
        case "CHROOT_MOUNT_POINTS":
            let list = value.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
            guard list.allSatisfy({ Self.isCleanAbsolutePath($0) && $0 != "/" }) else {
                throw KnobError("'\(value)' is not a comma-separated list of absolute paths")
            }
            chrootMountPoints = list.map { $0.trimmingTrailingSlashes() }
        case "SCRATCH_QUOTA":
            guard let limit = ScratchQuotaLimit.parse(value) else { throw KnobError("not \(ScratchQuotaLimit.acceptedForms)") }
            scratchQuota = limit
        case "SCRATCH_QUOTA_PROJECT_IDS":
            guard let range = ProjectIDRange(parsing: value) else { throw KnobError("not a range of project ids LOW-HIGH between 1 and 4294967294") }
            scratchQuotaProjectIDs = range
        case "CHROOT_DIR", "STATE_DIR":
            guard Self.isCleanAbsolutePath(value) else { throw KnobError("not an absolute path without '..'") }
            if entry.name == "CHROOT_DIR" { chrootDir = value.trimmingTrailingSlashes() } else { stateDir = value.trimmingTrailingSlashes() }
        case "NETWORK_INTERNAL":
            guard let list = IPNetwork.parseList(value) else { throw KnobError("not a list of networks such as 10.0.0.0/8,192.168.0.0/16,fd00::/8") }
            networkInternal = list.v4
            networkInternalIPv6 = list.v6
        case "NETWORK_JOB_SUBNET":
            guard let network = IPv4Network(parsing: value), network.prefixLength <= 30 else {
                throw KnobError("not an IPv4 network of at least 4 addresses such as 10.213.0.0/16")
            }
            networkJobSubnet = network
        case "NETWORK_ACCOUNTING_CGROUP":
            guard Self.isCleanAbsolutePath(value) else { throw KnobError("not an absolute cgroup path without '..'") }
            networkAccountingCgroup = value == "/" ? "/" : value.trimmingTrailingSlashes()
        case "NETACCT_SOCKET", "NETACCT_PIN_DIR":
            guard Self.isCleanAbsolutePath(value), value != "/" else { throw KnobError("not an absolute path without '..'") }
            if entry.name == "NETACCT_SOCKET" { netacctSocket = value.trimmingTrailingSlashes() } else { netacctPinDir = value.trimmingTrailingSlashes() }
        case "NETWORK_BACKEND":
            guard let choice = NetworkBackendChoice(rawValue: value.lowercased()) else { throw KnobError("not auto, iptables, nftables or bpf") }
            networkBackend = choice
        case "DEVICE_POLICY":
            guard let policy = DevicePolicy(rawValue: value.lowercased()) else { throw KnobError("not \(DevicePolicy.acceptedValues)") }
            devicePolicy = policy
        case "DEVICE_ALLOW":
            guard let list = DeviceAllowSpec.parseList(value) else { throw KnobError("not a list of \(DeviceAllowSpec.acceptedForms)") }
            deviceAllow = list
        case "DEVICE_BACKEND":
            guard let choice = DeviceBackendChoice(rawValue: value.lowercased()) else { throw KnobError("not auto, v1 or bpf") }
            deviceBackend = choice
        case "GPU_DEVICE_DIR":
            guard Self.isCleanAbsolutePath(value) else { throw KnobError("not an absolute path without '..'") }
            gpuDeviceDir = value.trimmingTrailingSlashes()
        case "GPU_HIDE_UNASSIGNED":
            guard let flag = Self.parseBool(value) else { throw KnobError("not true or false") }
            gpuHideUnassigned = flag
        default:
            break
        }
    }

    package static func parseBool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "1", "on": return true
        case "false", "no", "0", "off": return false
        default: return nil
        }
    }

    package static func isCleanAbsolutePath(_ path: String) -> Bool {
        path.hasPrefix("/") && !path.split(separator: "/").contains("..") && !path.contains("\n")
    }

    private static func parseNamedChroots(_ text: String) throws(KnobError) -> [NamedChroot] {
        var result: [NamedChroot] = []
        for (index, item) in text.split(separator: ",").enumerated() {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingASCIISpaces() }
            guard parts.count == 2, !parts[0].isEmpty,
                parts[0].unicodeScalars.allSatisfy({
                    ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0)
                }),
                isCleanAbsolutePath(parts[1])
            else { throw KnobError("item \(index + 1) is not NAME=/absolute/path") }
            result.append(NamedChroot(name: parts[0], path: parts[1]))
        }
        return result
    }
}

extension String {
    /// The string without trailing `/` (but `/` stays `/`).
    package func trimmingTrailingSlashes() -> String {
        var result = self
        while result.count > 1 && result.hasSuffix("/") { result.removeLast() }
        return result
    }
}
