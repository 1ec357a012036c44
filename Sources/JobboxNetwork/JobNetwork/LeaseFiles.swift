import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The lease files of one of netacct's state directories, shared by the veth leases (`JobNetworkLeases`) and the
/// bpf ones (`BPFJobLeases`): the directory must be root's alone all the way up, and every file is opened
/// relative to it, never through a symbolic link.
enum LeaseFiles {
    /// Largest lease file read (one is about 300 bytes).
    static let limit = 4096

    /// Every `*.lease` file of `directory` that `parse` accepts (given the file's name and ad; it throws to refuse
    /// one, which is then reported through `diagnostics` and skipped). A missing directory has none; one that is
    /// not root's alone is an error.
    static func all<Lease>(in directory: String, diagnostics: Diagnostics, parse: (String, ClassAd) throws(JobboxError) -> Lease) throws(JobboxError) -> [Lease]
    {
        guard let parent = try openDirectory(directory) else { return [] }
        defer { parent.close() }
        let entries = try Self.entries(of: parent)
        var leases: [Lease] = []
        for entry in entries where entry.name.hasSuffix(".lease") {
            do throws(JobboxError) {
                leases.append(try parse(entry.name, try readAd(entry.name, in: parent, path: directory + "/" + entry.name)))
            } catch {
                diagnostics.warning("ignored lease \(directory)/\(entry.name): \(error.reason)")
            }
        }
        return leases
    }

    /// The state directory `directory`, nil when it does not exist; an error when it is not root's alone.
    static func openDirectory(_ directory: String) throws(JobboxError) -> GuardedDirectory? {
        do {
            return try GuardedPath.openTrustedDirectory(directory, creating: false, for: "cannot use state directory")
        } catch {
            if error.errno == .noSuchFileOrDirectory { return nil }
            throw error
        }
    }

    /// The entries of the open state directory `parent`.
    static func entries(of parent: GuardedDirectory) throws(JobboxError) -> [DirectoryEntry] {
        let listFD = openat(parent.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard listFD >= 0, let stream = fdopendir(listFD) else {
            let error = JobboxError.lastErrno("cannot list state directory", parent.path)
            if listFD >= 0 { close(listFD) }
            throw error
        }
        defer { closedir(stream) }
        return DirectoryListing.entries(of: stream)
    }

    /// Whether the lease file `name` of `directory` still names `owner` (its `OwnerPid` and `OwnerStartTime`).
    ///
    /// Asked after `owner` was seen gone, to tell a lease its netacct left from one it was removing: a netacct that
    /// ends normally removes its lease before it exits, so a lease still on disk once its owner is gone was left
    /// by one that died. Judged on a lease read earlier, a netacct that finished in between would look dead with
    /// its lease, and a clean-up would report removing a network its owner had already taken down.
    static func stillNames(_ owner: ProcessIdentity, file name: String, in directory: String) -> Bool {
        guard let parent = try? openDirectory(directory) else { return false }
        defer { parent.close() }
        guard let ad = try? readAd(name, in: parent, path: directory + "/" + name) else { return false }
        return ad.integer("OwnerPid") == Int64(owner.pid) && ad.integer("OwnerStartTime") == Int64(clamping: owner.startTime)
    }

    /// The ad of the lease file `name` in `parent`: a regular file (no symlink, FIFO or device), small.
    static func readAd(_ name: String, in parent: GuardedDirectory, path: String) throws(JobboxError) -> ClassAd {
        let fd = openat(parent.fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { throw JobboxError.lastErrno("cannot read lease", path) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw JobboxError.lastErrno("cannot read lease", path) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw JobboxError.invalid("cannot read lease", path, "it is not a regular file") }
        guard info.st_size <= limit else { throw JobboxError.invalid("cannot read lease", path, "it is larger than \(limit) bytes") }
        var bytes = [UInt8](repeating: 0, count: limit + 1)
        let count = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard count >= 0 else { throw JobboxError.lastErrno("cannot read lease", path) }
        return ClassAdReader.parse(String(decoding: bytes[..<count], as: UTF8.self))
    }
}
