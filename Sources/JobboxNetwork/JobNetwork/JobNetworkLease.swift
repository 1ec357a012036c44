import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The kernel names of a job's network objects, derived from its id and recorded in its lease.
package struct JobNetworkNames: Sendable, Equatable {
    /// The name of the job's end of the veth, inside its namespace.
    package static let jobInterface = "eth0"
    /// The host's end of the veth: `jb_<id>` (at most 15 bytes, the kernel's limit).
    package let interface: String
    /// The accounting chain: `JOB_<id>` (at most 28 bytes, iptables' limit).
    package let chain: String

    /// The names for `job` (a hash of the id stands in for an id too long to fit).
    package init(job: JobID) {
        interface = job.shortName(prefix: "jb_", maxLength: 15)
        chain = job.shortName(prefix: "JOB_", maxLength: 28)
    }

    /// Names as recorded.
    package init(interface: String, chain: String) {
        self.interface = interface
        self.chain = chain
    }
}

/// One running job's claim on an address pair and its names: the file `<interface>.lease` in the state directory.
///
/// It is also the record `--show` and `--cleanup --stale` work from, so it is written before anything is made
/// and removed after everything is gone.
package struct JobNetworkLease: Sendable, Equatable {
    /// The job's id.
    package var job: String
    /// The netacct process that owns the lease.
    package var owner: ProcessIdentity
    /// The network namespace netacct made the job's objects in (inode of `/proc/self/ns/net`).
    package var namespace: UInt64
    /// The index of the address pair in `NETWORK_JOB_SUBNET`.
    package var slot: Int
    /// The host's address on the veth (the job's gateway).
    package var hostAddress: IPv4Address
    /// The job's address.
    package var jobAddress: IPv4Address
    /// The prefix length of the veth's little network (30).
    package var prefixLength: Int
    /// The kernel names.
    package var names: JobNetworkNames
    /// The firewall the accounting lives in.
    package var backend: BackendKind
    /// The claim on the slot this process holds while it owns the lease (nil for a lease read from its file).
    package var claim: SlotClaim?

    /// The lease as a ClassAd, the state directory's format.
    package var classAd: ClassAd {
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
    package init?(classAd ad: ClassAd) {
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
    package init(
        job: String, owner: ProcessIdentity, namespace: UInt64, slot: Int, hostAddress: IPv4Address, jobAddress: IPv4Address, prefixLength: Int,
        names: JobNetworkNames, backend: BackendKind
    ) {
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
///
/// Trusted inputs: only what root alone can have written. The directory and every one above it must be root's
/// and writable by no one else (`GuardedPath.openTrustedDirectory`), or nothing is read or made; the lock is
/// opened relative to the directory with `O_NOFOLLOW`. Even then a lease is only believed when it is exactly
/// what netacct itself writes (`validate`): the names derived from its job id, its file named after its
/// interface, the address pair of its slot. Any other file is reported, one line, and neither acted on nor
/// counted as holding a slot.
package struct JobNetworkLeases: Sendable {
    /// `STATE_DIR/netacct`.
    package let directory: String
    /// `NETWORK_JOB_SUBNET`: slot `n` is the /30 at offset `4n`, host `.1`, job `.2`.
    package let subnet: IPv4Network
    /// Where a lease that is not believed is reported.
    package let diagnostics: Diagnostics

    /// The leases under `stateDirectory`; refused leases are reported through `diagnostics`.
    package init(stateDirectory: String, subnet: IPv4Network, diagnostics: Diagnostics = Diagnostics(tool: "netacct")) {
        directory = stateDirectory + "/netacct"
        self.subnet = subnet
        self.diagnostics = diagnostics
    }

    /// The number of address pairs in the subnet.
    package var slotCount: Int { Int(min(subnet.size / 4, UInt64(Int32.max))) }

    /// The host and job addresses of `slot`.
    package func addresses(of slot: Int) -> (host: IPv4Address, job: IPv4Address) {
        (subnet.address(at: UInt64(slot) * 4 + 1), subnet.address(at: UInt64(slot) * 4 + 2))
    }

    func path(of names: JobNetworkNames) -> String { "\(directory)/\(names.interface).lease" }

    /// The state directory, made (0755, root's) when `creating` and missing; an error when the job could write
    /// it or any directory above it.
    package func openDirectory(creating: Bool) throws(JobboxError) -> GuardedDirectory {
        try GuardedPath.openTrustedDirectory(directory, creating: creating, for: "cannot use state directory")
    }

    /// Runs `body` holding the state directory's lock (made with the directory when missing).
    package func withLock<Result>(_ body: () throws(JobboxError) -> Result) throws(JobboxError) -> Result {
        let parent = try openDirectory(creating: true)
        defer { parent.close() }
        return try withLock(in: parent, body)
    }

    /// Runs `body` holding the lock of the state directory `parent`, opened by the caller (`openDirectory`), who
    /// uses it for more than the lock.
    package func withLock<Result>(in parent: GuardedDirectory, _ body: () throws(JobboxError) -> Result) throws(JobboxError) -> Result {
        let lockPath = directory + "/lock"
        // Relative to the checked directory and without following a symlink: root never creates or opens a
        // file some other name points at. O_NONBLOCK: a FIFO planted there cannot hang the open.
        let fd = openat(parent.fd, "lock", O_CREAT | O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0o600)
        if fd < 0 { throw JobboxError.lastErrno("cannot open lock", lockPath) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw JobboxError.lastErrno("cannot open lock", lockPath) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw JobboxError.invalid("cannot open lock", lockPath, "it is not a regular file") }
        do throws(Errno) {
            try FileLock.lockExclusive(fd)
        } catch {
            throw JobboxError.system("cannot lock", lockPath, error)
        }
        return try body()
    }

    /// Every lease netacct itself could have written. Files that are not (see `validate`) are reported and
    /// skipped; a missing directory has none. Throws when the directory is not root's alone.
    package func all() throws(JobboxError) -> [JobNetworkLease] {
        try LeaseFiles.all(in: directory, diagnostics: diagnostics, parse: lease(fileName:ad:)).sorted { $0.slot < $1.slot }
    }

    /// The lease in the file `name` whose ad is `ad`, if netacct could have written it.
    func lease(fileName name: String, ad: ClassAd) throws(JobboxError) -> JobNetworkLease {
        let path = directory + "/" + name
        guard let lease = JobNetworkLease(classAd: ad) else { throw JobboxError.invalid("cannot read lease", path, "an attribute is missing or malformed") }
        if let problem = validate(lease, fileName: name) { throw JobboxError.invalid("cannot read lease", path, problem) }
        return lease
    }

    /// Whether `lease` is stale: its owner is gone, and then its file still names that owner (`LeaseFiles.stillNames`:
    /// the order tells a netacct that died from one that finished after the lease was read).
    package func isStale(_ lease: JobNetworkLease) -> Bool {
        !lease.owner.isAlive && LeaseFiles.stillNames(lease.owner, file: lease.names.interface + ".lease", in: directory)
    }

    /// The lease in the file `name` of `parent`, or nil (reported) when it is not one netacct could have written.
    func read(_ name: String, in parent: GuardedDirectory) -> JobNetworkLease? {
        do throws(JobboxError) {
            return try lease(fileName: name, ad: try LeaseFiles.readAd(name, in: parent, path: directory + "/" + name))
        } catch {
            diagnostics.warning("ignored lease \(directory)/\(name): \(error.reason)")
            return nil
        }
    }

    /// Why `lease`, read from the file `fileName`, is not one netacct wrote for this subnet; nil when it is.
    /// A lease names what a later run deletes (a link, a chain, the rules that jump to it), so every name must be
    /// the one jobbox derives from the job id, never one taken from the file.
    package func validate(_ lease: JobNetworkLease, fileName: String) -> String? {
        guard let job = try? JobID(lease.job) else { return "its JobboxJobId is not a job id" }
        let derived = JobNetworkNames(job: job)
        if lease.names.interface != derived.interface { return "its Interface is not \(derived.interface), the name of job \(lease.job)" }
        if lease.names.chain != derived.chain { return "its Chain is not \(derived.chain), the name of job \(lease.job)" }
        if fileName != derived.interface + ".lease" { return "its file is not named \(derived.interface).lease" }
        guard (0..<slotCount).contains(lease.slot) else { return "its Slot is not one of \(subnet)" }
        let (host, address) = addresses(of: lease.slot)
        if lease.hostAddress != host || lease.jobAddress != address || lease.prefixLength != 30 {
            return "its addresses are not \(host)/30 and \(address)/30 of slot \(lease.slot)"
        }
        if lease.owner.pid <= 0 { return "its OwnerPid is not a process id" }
        return nil
    }

    /// Takes a lease for `job`. Under the lock: stale leases of this namespace are handed to `reclaim` (which
    /// removes their leftovers and returns whether it could) and dropped, a live lease with the same names is an
    /// error, and the lowest free slot is claimed (`SlotClaim`, held for the life of this process when `owner` is
    /// this process) and recorded.
    ///
    /// What it costs does not grow with the number of running jobs: one listing of the directory and one lock
    /// attempt per claim; only leases whose claim nobody holds (stale, or written before claims existed) are read.
    package func acquire(
        job: JobID, names: JobNetworkNames, backend: BackendKind, namespace: UInt64, owner: ProcessIdentity,
        reclaim: (JobNetworkLease) -> Bool
    ) throws(JobboxError) -> JobNetworkLease {
        try withLock { () throws(JobboxError) -> JobNetworkLease in
            let parent = try openDirectory(creating: false)
            defer { parent.close() }
            let entries = try LeaseFiles.entries(of: parent)
            let leaseNames = Set(entries.map(\.name).filter { $0.hasSuffix(".lease") })
            var claimed = Set<String>()
            var taken = Set<Int>()
            var unheld: [String] = []
            for entry in entries {
                guard let (slot, interface) = SlotClaim.parse(fileName: entry.name) else { continue }
                if SlotClaim.isHeld(entry.name, in: parent) {
                    claimed.insert(interface + ".lease")
                    taken.insert(slot)
                    if interface == names.interface, let lease = read(interface + ".lease", in: parent) { throw inUse(job, names, by: lease, namespace) }
                } else if leaseNames.contains(interface + ".lease") {
                    // Its owner is gone, or its lease is being removed: decided from the lease below.
                    unheld.append(interface + ".lease")
                } else {
                    // Its owner died between making the claim and writing the lease, or after removing the lease.
                    _ = unlinkat(parent.fd, entry.name, 0)
                }
            }
            // Leases whose claim nobody holds, and leases written before claims existed, are read whole.
            for name in unheld + leaseNames.filter({ !claimed.contains($0) && !unheld.contains($0) }).sorted() {
                guard let lease = read(name, in: parent) else { continue }
                if lease.namespace == namespace && isStale(lease) && reclaim(lease) {
                    release(lease)
                    continue
                }
                if lease.names.interface == names.interface || lease.names.chain == names.chain { throw inUse(job, names, by: lease, namespace) }
                taken.insert(lease.slot)
            }
            guard let slot = (0..<slotCount).first(where: { !taken.contains($0) }) else {
                throw JobboxError.invalid("no free address pair in", subnet.description, "\(taken.count) jobs hold every pair of NETWORK_JOB_SUBNET")
            }
            let (host, address) = addresses(of: slot)
            var lease = JobNetworkLease(
                job: job.rawValue, owner: owner, namespace: namespace, slot: slot, hostAddress: host, jobAddress: address,
                prefixLength: 30, names: names, backend: backend)
            let claimName = SlotClaim.fileName(slot: slot, interface: names.interface)
            lease.claim = try SlotClaim.make(claimName, in: parent, hold: owner == .current)
            do throws(JobboxError) {
                try write(lease)
            } catch {
                _ = unlinkat(parent.fd, claimName, 0)
                throw error
            }
            return lease
        }
    }

    /// Removes the claims nobody holds whose lease is gone (their owner died between making the claim and writing
    /// the lease, or after removing the lease). Call it holding the lock.
    package func removeOrphanClaims() throws(JobboxError) {
        let parent = try openDirectory(creating: false)
        defer { parent.close() }
        let entries = try LeaseFiles.entries(of: parent)
        let names = Set(entries.map(\.name))
        for entry in entries {
            guard let (_, interface) = SlotClaim.parse(fileName: entry.name), !names.contains(interface + ".lease") else { continue }
            if !SlotClaim.isHeld(entry.name, in: parent) { _ = unlinkat(parent.fd, entry.name, 0) }
        }
    }

    /// The error for a job whose names `lease` already holds.
    private func inUse(_ job: JobID, _ names: JobNetworkNames, by lease: JobNetworkLease, _ namespace: UInt64) -> JobboxError {
        let state =
            lease.owner.isAlive
            ? "running under netacct pid \(lease.owner.pid)"
            : lease.namespace != namespace
                ? "left by netacct pid \(lease.owner.pid) in another network namespace"
                : "left by netacct pid \(lease.owner.pid), whose leftovers could not be removed"
        return JobboxError.invalid(
            "cannot start network accounting for job", job.rawValue, "its names \(names.interface)/\(names.chain) are in use by job \(lease.job), \(state)")
    }

    /// Writes `lease` (atomically: temporary file and rename).
    package func write(_ lease: JobNetworkLease) throws(JobboxError) {
        let text: String
        do {
            text = try ClassAdWriter.render(lease.classAd)
        } catch {
            throw JobboxError.invalid("cannot record lease of job", lease.job, error.description)
        }
        try GuardedFile.replace(path(of: lease.names), with: text, for: "cannot record lease")
    }

    /// Removes `lease`'s file (the one it was read from, since a lease is only believed when its file is named
    /// after its interface, `validate`) and then its claim, so that a claim is never missing while its lease exists.
    package func release(_ lease: JobNetworkLease) {
        guard let parent = try? openDirectory(creating: false) else { return }
        defer { parent.close() }
        _ = unlinkat(parent.fd, lease.names.interface + ".lease", 0)
        _ = unlinkat(parent.fd, SlotClaim.fileName(slot: lease.slot, interface: lease.names.interface), 0)
    }
}
