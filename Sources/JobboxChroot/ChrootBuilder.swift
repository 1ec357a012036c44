import CLinux
import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A build stopped by a signal (HUP, INT, QUIT, TERM) after removing what it had made.
package struct BuildInterrupted: Error, Sendable, CustomStringConvertible {
    /// The signal.
    package let signal: Int32
    /// The version that was being built.
    package let version: ChrootVersion

    /// The shell's status for death by that signal.
    package var exitStatus: Int32 { 128 + signal }

    package var description: String { "build of \(version) interrupted by signal \(signal): removed what it had made" }
}

/// Builds a new version of a chroot: `CHROOT_DIR/NAME-vN`, N one more than any before.
///
/// The tree is made in `.NAME-vN.tmp/root` beside the versions, checked (a shell must run inside), given its
/// manifest, flushed to disk, and only then renamed to `NAME-vN` with renameat2(RENAME_NOREPLACE): a version
/// directory exists complete or not at all. A failed or interrupted build removes its temporary directory; one
/// left by a crash (chroot-tool killed) is removed by the next build of the same chroot.
package struct ChrootBuilder {
    /// Where to build.
    package let store: ChrootStore
    /// What to build.
    package let name: ChrootName
    /// How (validated).
    package let spec: ChrootSpec
    /// The backend.
    package let backend: any ChrootBackend
    /// Whether to point `CHROOT_DIR/NAME` at the new version.
    package let switchWhenDone: Bool
    /// Only phase lines, no backend output.
    package let quiet: Bool
    /// For progress lines and warnings.
    package let diagnostics: Diagnostics
    /// `CHROOT_MOUNT_POINTS`: directories every version gets beside the built-in mount points.
    package let mountPoints: [String]

    /// A builder; `cacheDirectory` is for backends that keep downloads between builds (debootstrap).
    package init(
        store: ChrootStore, name: ChrootName, spec: ChrootSpec, cacheDirectory: String?, switchWhenDone: Bool, quiet: Bool, diagnostics: Diagnostics,
        mountPoints: [String] = JobboxConfig().chrootMountPoints
    ) throws(JobboxError) {
        self.store = store
        self.name = name
        self.spec = try spec.validated()
        self.backend = try makeChrootBackend(for: self.spec, cacheDirectory: cacheDirectory)
        self.switchWhenDone = switchWhenDone
        self.quiet = quiet
        self.diagnostics = diagnostics
        self.mountPoints = mountPoints
    }

    /// Builds the version and returns it. Throws `JobboxError` when a phase fails, `BuildInterrupted` when a
    /// signal stopped it; either way nothing of it is left.
    package func build() throws -> ChrootVersion {
        try FileSystem.makeDirectories(store.directory)
        let buildLock = try ChrootLock(store.buildLockPath(of: name), wait: false, busyReason: "another build of \(name) is running")
        defer { buildLock.release() }
        guard jb_interrupt_install() == 0 else { throw JobboxError.lastErrno("cannot catch signals for", "build of \(name)") }
        defer { _ = jb_interrupt_uninstall() }

        if try !store.leftovers(of: name, suffix: ".tmp").isEmpty {
            progress(name.rawValue, "removing what an earlier, crashed build left")
            try store.removeLeftovers(of: name, suffix: ".tmp")
        }
        let version = ChrootVersion(name: name, number: try store.nextNumber(of: name))
        let work = store.workPath(of: version)
        let root = work + "/root"
        try FileSystem.makeDirectory(work, mode: 0o700)
        do {
            try FileSystem.makeDirectory(root, mode: 0o755)
            try runBackend(version: version, root: root, work: work)
            try checkInterrupted(version)
            let made = try Self.makeMountPoints(root: root, extra: spec.binds.map(\.target) + mountPoints)
            if !made.isEmpty { progress(version.directoryName, "made mount points \(made.joined(separator: " "))") }
            progress(version.directoryName, "checking that a shell runs inside")
            try Self.checkShell(root: root)
            try checkInterrupted(version)
            let manifest = try writeManifest(version: version, root: root)
            progress(version.directoryName, "wrote the manifest (\(manifest.installed.count) packages)")
            FileSystem.syncFileSystem(root)
            try checkInterrupted(version)
            try install(version: version, root: root)
        } catch {
            discard(work)
            throw error
        }
        discard(work)
        return version
    }

    private func runBackend(version: ChrootVersion, root: String, work: String) throws {
        progress(version.directoryName, backend.phaseDescription)
        let (arguments, extra) = try backend.installCommand(root: root, workDirectory: work)
        var environment = Environment.current.variables
        environment["LC_ALL"] = "C"
        if environment["PATH"]?.isEmpty ?? true { environment["PATH"] = chrootSearchPath }
        environment.merge(extra) { $1 }
        let label = backend.kind.rawValue
        let result = try ChildProcess.run(arguments, environment: environment, output: quiet ? .tail(lines: 30) : .stream(prefix: "[\(label)] "))
        // After the backend, nothing of its process group may keep running in the tree.
        ProcessReaper.killProcesses(inside: root)
        try checkInterrupted(version)
        guard result.status == 0 else {
            for line in result.output.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
                writeAll(.standardError, "[\(label)] \(line)\n")
            }
            throw JobboxError.invalid("\(label) failed", "building \(version)", describe(status: result.status))
        }
    }

    /// The directories ns-exec mounts on in every job: it makes none itself, because a version is shared by all
    /// jobs and read-only to them.
    package static let builtInMountPoints = ["/proc", "/dev", "/tmp", "/var/tmp", "/run"]

    /// Makes the mount points ns-exec needs in the tree at `root` (the built-in ones and `extra`, such as the
    /// spec's BINDS targets and CHROOT_MOUNT_POINTS), with parents, mode 0755 (/tmp and /var/tmp 1777), root's.
    /// Paths resolve inside the tree (a symlink such as /var/run -> /run stays inside it); existing ones, of any
    /// type, are left alone. Returns the paths made.
    package static func makeMountPoints(root: String, extra: [String]) throws(JobboxError) -> [String] {
        let rootFD = open(root, JB_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw JobboxError.lastErrno("cannot open", root) }
        defer { close(rootFD) }
        var made: [String] = []
        var seen: Set<String> = []
        for path in builtInMountPoints + extra {
            guard let normalized = AbsolutePath.normalize(path), normalized != "/", seen.insert(normalized).inserted else { continue }
            var prefix = ""
            for component in AbsolutePath.relative(normalized).split(separator: "/").map(String.init) {
                let candidate = prefix.isEmpty ? component : prefix + "/" + component
                let existing = jb_open_in_root(rootFD, candidate, JB_O_PATH)
                if existing >= 0 {
                    close(existing)
                    prefix = candidate
                    continue
                }
                guard errno == ENOENT else { throw JobboxError.lastErrno("cannot open", AbsolutePath.join(root, candidate)) }
                let parent = jb_open_in_root(rootFD, prefix.isEmpty ? "." : prefix, JB_O_PATH | O_DIRECTORY)
                guard parent >= 0 else { throw JobboxError.lastErrno("cannot open", AbsolutePath.join(root, prefix)) }
                defer { close(parent) }
                let mode: mode_t = ["tmp", "var/tmp"].contains(candidate) ? 0o1777 : 0o755
                guard mkdirat(parent, component, mode) == 0 else {
                    throw JobboxError.lastErrno("cannot create mount point", AbsolutePath.join(root, candidate))
                }
                // Whatever the umask.
                guard fchmodat(parent, component, mode, 0) == 0 else {
                    throw JobboxError.lastErrno("cannot set the mode of", AbsolutePath.join(root, candidate))
                }
                made.append("/" + candidate)
                prefix = candidate
            }
        }
        return made
    }

    /// Runs `/bin/sh` inside the tree at `root` with chroot(8) and expects it to answer; throws when it does not.
    static func checkShell(root: String) throws(JobboxError) {
        let marker = "jobbox-chroot-ok"
        let result = try ChildProcess.run(
            ["chroot", root, "/bin/sh", "-c", "echo \(marker)"], environment: ["PATH": chrootSearchPath, "LC_ALL": "C", "HOME": "/"], output: .capture)
        guard result.status == 0, result.output == marker + "\n" else {
            let status = result.status == 0 ? "it printed '\(result.output.trimmingASCIISpaces())'" : "chroot /bin/sh exited with status \(result.status)"
            throw JobboxError.invalid("no working shell in", root, status)
        }
    }

    private func writeManifest(version: ChrootVersion, root: String) throws(JobboxError) -> ChrootManifest {
        let manifest = ChrootManifest(
            version: version, backend: backend.kind, release: spec.release ?? "", repos: spec.repos, requestedPackages: spec.packages,
            binds: spec.binds, gpgCheck: spec.gpgCheck, variant: backend.kind == .debootstrap ? (spec.variant ?? "minbase") : nil,
            specPath: spec.sourcePath, built: Timestamp.now(), builtBy: "chroot-tool \(JobboxVersion.string)",
            installed: try backend.installedPackages(root: root))
        guard !manifest.installed.isEmpty else {
            throw JobboxError.invalid("no packages in", root, "the package database lists none after the \(backend.kind.rawValue) run")
        }
        let directory = root + "/.jobbox"
        try FileSystem.makeDirectory(directory, mode: 0o755, existingIsFine: true)
        try FileSystem.writeFile(root + "/" + ChrootManifest.relativePath, manifest.render())
        if let text = spec.sourceText { try FileSystem.writeFile(root + "/" + ChrootManifest.specRelativePath, text) }
        return manifest
    }

    /// Renames the tree into place (never over an existing directory), records the build, switches if asked.
    private func install(version: ChrootVersion, root: String) throws(JobboxError) {
        let lock = try store.lock(name)
        defer { lock.release() }
        let destination = store.path(of: version)
        guard jb_rename_noreplace(AT_FDCWD, root, AT_FDCWD, destination) == 0 else {
            throw JobboxError.lastErrno("cannot rename into place", destination)
        }
        FileSystem.syncDirectory(store.directory)
        try store.record(.build, version)
        progress(version.directoryName, "renamed into place: \(destination)")
        if switchWhenDone {
            let previous = try store.switchLocked(to: version, event: .switch)
            progress(version.directoryName, "switched \(store.linkPath(of: name)) to it" + (previous.map { " (was \($0))" } ?? ""))
        }
    }

    /// Removes the temporary directory, with anything still running or mounted in it.
    private func discard(_ work: String) {
        ProcessReaper.killProcesses(inside: work)
        do {
            try DirectoryTree.remove(work)
        } catch {
            diagnostics.warning("\(error.description) (the next build of \(name) removes it)")
        }
    }

    private func checkInterrupted(_ version: ChrootVersion) throws(BuildInterrupted) {
        let signal = jb_interrupt_signal()
        if signal != 0 { throw BuildInterrupted(signal: signal, version: version) }
    }

    private func progress(_ subject: String, _ message: String) {
        diagnostics.note("\(subject): \(message)")
    }

    private func describe(status: Int32) -> String {
        status > 128 ? "killed by signal \(status - 128)" : "exit status \(status)"
    }
}
