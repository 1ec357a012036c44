import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The kernel names of a job's network objects, derived from its id and recorded in its lease.
public struct JobNetworkNames: Sendable, Equatable {
    /// The name of the job's end of the veth, inside its namespace.
    public static let jobInterface = "eth0"
    /// The host's end of the veth: `jb_<id>` (at most 15 bytes, the kernel's limit).
    public let interface: String
    /// The accounting chain: `JOB_<id>` (at most 28 bytes, iptables' limit).
    public let chain: String

    /// The names for `job` (a hash of the id stands in for an id too long to fit).
    public init(job: JobID) {
        interface = job.shortName(prefix: "jb_", maxLength: 15)
        chain = job.shortName(prefix: "JOB_", maxLength: 28)
    }

    /// Names as recorded.
    public init(interface: String, chain: String) {
        self.interface = interface
        self.chain = chain
    }
}

/// One running job's claim on an address pair and its names: the file `<interface>.lease` in the state directory.
///
/// It is also the record `--show` and `--cleanup --stale` work from, so it is written before anything is made
/// and removed after everything is gone.
public struct JobNetworkLease: Sendable, Equatable {
    /// The job's id.
    public var job: String
    /// The netacct process that owns the lease.
    public var owner: ProcessIdentity
    /// The network namespace netacct made the job's objects in (inode of `/proc/self/ns/net`).
    public var namespace: UInt64
    /// The index of the address pair in `NETWORK_JOB_SUBNET`.
    public var slot: Int
    /// The host's address on the veth (the job's gateway).
    public var hostAddress: IPv4Address
    /// The job's address.
    public var jobAddress: IPv4Address
    /// The prefix length of the veth's little network (30).
    public var prefixLength: Int
    /// The kernel names.
    public var names: JobNetworkNames
    /// The firewall the accounting lives in.
    public var backend: BackendKind

    /// The lease as a ClassAd, the state directory's format.
    public var classAd: ClassAd {
        var ad = ClassAd()
        ad.set("JobboxJobId", job)
        ad.set("OwnerPid", Int64(owner.pid))
        ad.set("OwnerStartTime", Int64(clamping: owner.startTime))
        ad.set("NetworkNamespace", Int64(clamping: namespace))
        ad.set("Slot", slot)
        ad.set("HostAddress", hostAddress.description)
        ad.set("JobAddress", jobAddress.description)
        ad.set("PrefixLength", prefixLength)
        ad.set("Interface", names.interface)
        ad.set("Chain", names.chain)
        ad.set("Backend", backend.rawValue)
        return ad
    }

    /// A lease from its ad; nil when anything is missing or malformed.
    public init?(classAd ad: ClassAd) {
        guard let job = ad.string("JobboxJobId"), let pid = ad.integer("OwnerPid"), let start = ad.integer("OwnerStartTime"),
            let namespace = ad.integer("NetworkNamespace"), let slot = ad.integer("Slot"),
            let host = ad.string("HostAddress").flatMap({ IPv4Address(parsing: $0) }),
            let address = ad.string("JobAddress").flatMap({ IPv4Address(parsing: $0) }),
            let prefix = ad.integer("PrefixLength"), let interface = ad.string("Interface"), let chain = ad.string("Chain"),
            let backend = ad.string("Backend").flatMap({ BackendKind(rawValue: $0) })
        else { return nil }
        self.init(
            job: job, owner: ProcessIdentity(pid: Int32(truncatingIfNeeded: pid), startTime: UInt64(clamping: start)), namespace: UInt64(clamping: namespace),
            slot: Int(slot), hostAddress: host, jobAddress: address, prefixLength: Int(prefix), names: JobNetworkNames(interface: interface, chain: chain),
            backend: backend)
    }

    /// A lease from its parts.
    public init(job: String, owner: ProcessIdentity, namespace: UInt64, slot: Int, hostAddress: IPv4Address, jobAddress: IPv4Address, prefixLength: Int, names: JobNetworkNames, backend: BackendKind) {
        self.job = job
        self.owner = owner
        self.namespace = namespace
        self.slot = slot
        self.hostAddress = hostAddress
        self.jobAddress = jobAddress
        self.prefixLength = prefixLength
        self.names = names
        self.backend = backend
    }
}

/// The leases of a state directory (`STATE_DIR/netacct`): who holds which address pair and names.
///
/// Taking a lease happens under an exclusive `flock` on `STATE_DIR/netacct/lock`, so concurrent netacct runs
/// see each other's leases and never pick the same pair or names. A lease whose owner is gone is stale: the
/// taker has its leftovers removed (by the `reclaim` callback) and then reuses its slot.
public struct JobNetworkLeases: Sendable {
    /// `STATE_DIR/netacct`.
    public let directory: String
    /// `NETWORK_JOB_SUBNET`: slot `n` is the /30 at offset `4n`, host `.1`, job `.2`.
    public let subnet: IPv4Network

    /// The leases under `stateDirectory`.
    public init(stateDirectory: String, subnet: IPv4Network) {
        directory = stateDirectory + "/netacct"
        self.subnet = subnet
    }

    /// The number of address pairs in the subnet.
    public var slotCount: Int { Int(min(subnet.size / 4, UInt64(Int32.max))) }

    /// The host and job addresses of `slot`.
    public func addresses(of slot: Int) -> (host: IPv4Address, job: IPv4Address) {
        (subnet.address(at: UInt64(slot) * 4 + 1), subnet.address(at: UInt64(slot) * 4 + 2))
    }

    func path(of names: JobNetworkNames) -> String { "\(directory)/\(names.interface).lease" }

    /// Runs `body` holding the state directory's lock (made with the directory when missing).
    public func withLock<Result>(_ body: () throws(JobboxError) -> Result) throws(JobboxError) -> Result {
        try makeDirectories()
        let lockPath = directory + "/lock"
        let fd = open(lockPath, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        if fd < 0 { throw JobboxError.lastErrno("cannot open lock", lockPath) }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw JobboxError.lastErrno("cannot lock", lockPath) }
        }
        return try body()
    }

    private func makeDirectories() throws(JobboxError) {
        var path = ""
        for component in directory.split(separator: "/") {
            path += "/" + component
            if mkdir(path, 0o755) != 0 && errno != EEXIST { throw JobboxError.lastErrno("cannot create state directory", path) }
        }
    }

    /// Every lease in the directory (files that do not parse are skipped).
    public func all() -> [JobNetworkLease] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var leases: [JobNetworkLease] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasSuffix(".lease"), let text = try? SmallFile.read(directory + "/" + name),
                let lease = JobNetworkLease(classAd: ClassAdReader.parse(text))
            else { continue }
            leases.append(lease)
        }
        return leases.sorted { $0.slot < $1.slot }
    }

    /// Takes a lease for `job`. Under the lock: stale leases of this namespace are handed to `reclaim` (which
    /// removes their leftovers and returns whether it could) and dropped, a live lease with the same names is an
    /// error, and the lowest free slot is recorded for this process.
    public func acquire(job: JobID, names: JobNetworkNames, backend: BackendKind, namespace: UInt64, owner: ProcessIdentity,
                        reclaim: (JobNetworkLease) -> Bool) throws(JobboxError) -> JobNetworkLease {
        try withLock { () throws(JobboxError) -> JobNetworkLease in
            var taken = Set<Int>()
            for lease in all() {
                if !lease.owner.isAlive && lease.namespace == namespace && reclaim(lease) {
                    release(lease)
                    continue
                }
                if lease.names.interface == names.interface || lease.names.chain == names.chain {
                    let state =
                        lease.owner.isAlive ? "running under netacct pid \(lease.owner.pid)"
                        : lease.namespace != namespace ? "left by netacct pid \(lease.owner.pid) in another network namespace"
                        : "left by netacct pid \(lease.owner.pid), whose leftovers could not be removed"
                    throw JobboxError.invalid("cannot start network accounting for job", job.rawValue, "its names \(names.interface)/\(names.chain) are in use by job \(lease.job), \(state)")
                }
                taken.insert(lease.slot)
            }
            guard let slot = (0..<slotCount).first(where: { !taken.contains($0) }) else {
                throw JobboxError.invalid("no free address pair in", subnet.description, "\(taken.count) jobs hold every pair of NETWORK_JOB_SUBNET")
            }
            let (host, address) = addresses(of: slot)
            let lease = JobNetworkLease(job: job.rawValue, owner: owner, namespace: namespace, slot: slot, hostAddress: host, jobAddress: address,
                                        prefixLength: 30, names: names, backend: backend)
            try write(lease)
            return lease
        }
    }

    /// Writes `lease` (atomically: temporary file and rename).
    public func write(_ lease: JobNetworkLease) throws(JobboxError) {
        let text: String
        do {
            text = try ClassAdWriter.render(lease.classAd)
        } catch {
            throw JobboxError.invalid("cannot record lease of job", lease.job, error.description)
        }
        try GuardedFile.replace(path(of: lease.names), with: text, for: "cannot record lease")
    }

    /// Removes `lease`'s file.
    public func release(_ lease: JobNetworkLease) {
        _ = unlink(path(of: lease.names))
    }
}
