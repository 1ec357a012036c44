import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The chroots of `CHROOT_DIR`: versions `NAME-vN` (directories), the current one `NAME` (a symlink to
/// `NAME-vN`), and chroot-tool's own dot files beside them:
///
/// - `.NAME.history`: builds, switches and rollbacks (`ChrootHistory`);
/// - `.NAME.lock`: held while the link, the history or the set of versions changes;
/// - `.NAME.build.lock`: held for a whole build, so two builds of one chroot never run at once;
/// - `.NAME-vN.tmp/`: a build in progress (its tree is `root/`), renamed into place as `NAME-vN` when done;
/// - `.NAME-vN.removing`: a version gc is removing.
///
/// Anything starting with a dot is never listed, so a half-made or half-removed tree is never seen as a version.
package struct ChrootStore: Sendable {
    /// `CHROOT_DIR`.
    package let directory: String

    /// The store in `directory`.
    package init(directory: String) {
        self.directory = directory.trimmingTrailingSlashes()
    }

    // MARK: Paths

    /// `CHROOT_DIR/NAME-vN`.
    package func path(of version: ChrootVersion) -> String { "\(directory)/\(version.directoryName)" }
    /// `CHROOT_DIR/NAME`, the link jobs use.
    package func linkPath(of name: ChrootName) -> String { "\(directory)/\(name)" }
    func historyPath(of name: ChrootName) -> String { "\(directory)/.\(name).history" }
    func lockPath(of name: ChrootName) -> String { "\(directory)/.\(name).lock" }
    func buildLockPath(of name: ChrootName) -> String { "\(directory)/.\(name).build.lock" }
    func workPath(of version: ChrootVersion) -> String { "\(directory)/.\(version.directoryName).tmp" }
    func trashPath(of version: ChrootVersion) -> String { "\(directory)/.\(version.directoryName).removing" }

    // MARK: Reading

    /// Every version directory of `name`, oldest first.
    package func versions(of name: ChrootName) throws(JobboxError) -> [ChrootVersion] {
        try allVersions().filter { $0.name == name }
    }

    /// Every version directory in the store, by name and number.
    package func allVersions() throws(JobboxError) -> [ChrootVersion] {
        try FileSystem.entries(directory).compactMap { entry in
            guard let version = ChrootVersion.parseDirectoryName(entry), FileSystem.isRealDirectory("\(directory)/\(entry)") else { return nil }
            return version
        }.sorted()
    }

    /// Every chroot name with versions or a link.
    package func names() throws(JobboxError) -> [ChrootName] {
        var names = Set(try allVersions().map(\.name))
        for entry in try FileSystem.entries(directory) {
            if let name = try? ChrootName(entry), current(of: name) != nil { names.insert(name) }
        }
        return names.sorted()
    }

    /// The version `CHROOT_DIR/NAME` points at, nil when there is no such link (or it points elsewhere).
    package func current(of name: ChrootName) -> ChrootVersion? {
        guard let target = FileSystem.readLink(linkPath(of: name)), let version = ChrootVersion.parseDirectoryName(target),
            version.name == name
        else { return nil }
        return version
    }

    /// The history of `name`.
    package func history(of name: ChrootName) -> ChrootHistory {
        ChrootHistory(parsing: (try? SmallFile.readIfPresent(historyPath(of: name))).flatMap { $0 } ?? "")
    }

    /// Where `rollback` would go.
    package func rollbackTarget(of name: ChrootName) -> ChrootVersion? {
        let current = current(of: name)
        return history(of: name).rollbackTarget(current: current?.number) { number in
            FileSystem.isRealDirectory(path(of: ChrootVersion(name: name, number: number)))
        }.map { ChrootVersion(name: name, number: $0) }
    }

    /// The existing version a reference names: `NAME` is the current one.
    package func resolve(_ reference: ChrootReference) throws(JobboxError) -> ChrootVersion {
        let version: ChrootVersion
        switch reference {
        case .version(let given):
            version = given
        case .current(let name):
            guard let current = current(of: name) else {
                throw JobboxError.invalid(
                    "no current version of", name.rawValue, "\(linkPath(of: name)) is not a link to a version; name one, such as \(name)-v1")
            }
            version = current
        }
        try requireExisting(version)
        return version
    }

    /// Throws unless `version`'s directory exists.
    package func requireExisting(_ version: ChrootVersion) throws(JobboxError) {
        guard FileSystem.isRealDirectory(path(of: version)) else {
            throw JobboxError.invalid("no such version", path(of: version), "it does not exist (chroot-tool list \(version.name) shows the versions)")
        }
    }

    /// The manifest of `version`.
    package func manifest(of version: ChrootVersion) throws(JobboxError) -> ChrootManifest {
        try ChrootManifest.read(chrootPath: path(of: version))
    }

    /// The number the next build of `name` gets: one more than any version that exists or was ever built.
    func nextNumber(of name: ChrootName) throws(JobboxError) -> Int {
        max(try versions(of: name).map(\.number).max() ?? 0, history(of: name).highestBuilt) + 1
    }

    // MARK: Changing

    /// Locks `name`'s link, history and versions until the lock is dropped.
    func lock(_ name: ChrootName) throws(JobboxError) -> ChrootLock {
        try ChrootLock(lockPath(of: name), wait: true, busyReason: "")
    }

    /// Points `CHROOT_DIR/NAME` at `version` and records it; returns the version it pointed at before.
    @discardableResult
    package func switchTo(_ version: ChrootVersion) throws(JobboxError) -> ChrootVersion? {
        let lock = try lock(version.name)
        defer { lock.release() }
        return try switchLocked(to: version, event: .switch)
    }

    /// Points `CHROOT_DIR/NAME` back at the version current before; returns (from, to).
    package func rollback(_ name: ChrootName) throws(JobboxError) -> (from: ChrootVersion?, to: ChrootVersion) {
        let lock = try lock(name)
        defer { lock.release() }
        guard let target = rollbackTarget(of: name) else {
            throw JobboxError.invalid(
                "cannot roll back", name.rawValue, "no earlier version to go back to (\(historyPath(of: name)) records none that still exists)")
        }
        let previous = try switchLocked(to: target, event: .rollback)
        return (previous, target)
    }

    /// Replaces the link by one to `version` with a single rename(2) (readers see the old or the new target,
    /// never none), then appends `event` to the history. The caller holds the lock.
    func switchLocked(to version: ChrootVersion, event: ChrootHistory.Event) throws(JobboxError) -> ChrootVersion? {
        try requireExisting(version)
        let link = linkPath(of: version.name)
        if let info = try FileSystem.lstatIfPresent(link), !FileSystem.isSymlink(info) {
            throw JobboxError.invalid("cannot switch", link, "it is not a symlink; chroot-tool keeps \(version.name) as a link to \(version.name)-vN")
        }
        let previous = current(of: version.name)
        // Links a crashed switch left behind; only a switch holding the lock makes them.
        for entry in try FileSystem.entries(directory) where entry.hasPrefix(".\(version.name).link.") {
            try FileSystem.removeFile("\(directory)/\(entry)")
        }
        let temporary = "\(directory)/.\(version.name).link.\(getpid())"
        guard symlink(version.directoryName, temporary) == 0 else { throw JobboxError.lastErrno("cannot create link", temporary) }
        guard rename(temporary, link) == 0 else {
            let error = JobboxError.lastErrno("cannot switch", link)
            _ = unlink(temporary)
            throw error
        }
        FileSystem.syncDirectory(directory)
        try record(event, version)
        return previous
    }

    /// Appends a history line.
    func record(_ event: ChrootHistory.Event, _ version: ChrootVersion) throws(JobboxError) {
        let line = ChrootHistory.Record(time: Timestamp.now(), event: event, number: version.number).line
        try FileSystem.appendLine(historyPath(of: version.name), line)
    }

    // MARK: Garbage collection

    /// What gc did with one version.
    package enum Collected: Sendable, Equatable {
        /// Removed.
        case removed(ChrootVersion)
        /// Left in place because something uses it.
        case inUse(ChrootVersion, [DirectoryUser])
        /// A version moved aside (its `.NAME-vN.removing` path), now or by an earlier gc, that could not be
        /// removed; the next gc tries again.
        case notRemoved(String, JobboxError)
    }

    /// Removes the versions of `name` beyond the `keep` newest, except the current one, the rollback target, and
    /// any that is in use. Each is first renamed to a dot name (so it vanishes from `list` at once and no new
    /// job can find it), then checked for users, then removed, or renamed back when in use.
    ///
    /// A version moved aside that cannot be removed is reported and left for the next gc, and the others are
    /// collected all the same: every user can write in a version's `/tmp`, and what one leaves there must not stop
    /// the collection of the name for good.
    package func collectGarbage(_ name: ChrootName, keep: Int) throws(JobboxError) -> [Collected] {
        let lock = try lock(name)
        defer { lock.release() }
        var result: [Collected] = []
        for path in try leftovers(of: name, suffix: ".removing") {
            do throws(JobboxError) {
                try removeLeftover(path)
            } catch {
                result.append(.notRemoved(path, error))
            }
        }
        let versions = try versions(of: name)
        var protected = Set(versions.sorted { $0.number > $1.number }.prefix(max(keep, 0)))
        if let current = current(of: name) { protected.insert(current) }
        if let target = rollbackTarget(of: name) { protected.insert(target) }
        for version in versions where !protected.contains(version) {
            let trash = trashPath(of: version)
            guard rename(path(of: version), trash) == 0 else { throw JobboxError.lastErrno("cannot move aside", path(of: version)) }
            // Mount points show the name it has now; report them under the version's own name.
            let realTrash = FileSystem.realPath(trash) ?? trash
            let realVersion = (FileSystem.realPath(directory) ?? directory) + "/" + version.directoryName
            let users = SystemUsage.scan().users(of: trash).map { $0.relocated(from: realTrash, to: realVersion) }
            if !users.isEmpty {
                guard rename(trash, path(of: version)) == 0 else { throw JobboxError.lastErrno("cannot move back", trash) }
                result.append(.inUse(version, users))
                continue
            }
            do throws(JobboxError) {
                try DirectoryTree.remove(trash)
                result.append(.removed(version))
            } catch {
                result.append(.notRemoved(trash, error))
            }
        }
        FileSystem.syncDirectory(directory)
        return result
    }

    /// The `.NAME-vN<suffix>` entries of `name`: what a crashed build (`.tmp`) or gc (`.removing`) left.
    func leftovers(of name: ChrootName, suffix: String) throws(JobboxError) -> [String] {
        try FileSystem.entries(directory).filter { entry in
            guard entry.hasPrefix("."), entry.hasSuffix(suffix) else { return false }
            return ChrootVersion.parseDirectoryName(String(entry.dropFirst().dropLast(suffix.count)))?.name == name
        }.map { "\(directory)/\($0)" }
    }

    /// Removes the `.NAME-vN<suffix>` entries of `name`. Processes still running inside (a crashed build's
    /// package scripts) are killed first.
    func removeLeftovers(of name: ChrootName, suffix: String) throws(JobboxError) {
        for path in try leftovers(of: name, suffix: suffix) { try removeLeftover(path) }
    }

    /// Removes one leftover, killing what still runs inside it first.
    func removeLeftover(_ path: String) throws(JobboxError) {
        let stubborn = ProcessReaper.killProcesses(inside: path)
        if let first = stubborn.first {
            throw JobboxError.invalid("cannot remove", path, "\(first) and would not die")
        }
        try DirectoryTree.remove(path)
    }
}
