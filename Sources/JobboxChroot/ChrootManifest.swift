import JobboxCore

/// One installed package, as the chroot's package database lists it.
package struct InstalledPackage: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// `bash`.
    package let name: String
    /// `5.1.8-6.el9` (rpm: `[epoch:]version-release`; dpkg: the Debian version).
    package let version: String
    /// `x86_64`, `noarch`, `amd64`, `all`.
    package let architecture: String

    /// Creates a package record.
    package init(name: String, version: String, architecture: String) {
        self.name = name
        self.version = version
        self.architecture = architecture
    }

    /// Parses `name version arch`.
    package init?(parsing line: String) {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 3 else { return nil }
        self.init(name: String(fields[0]), version: String(fields[1]), architecture: String(fields[2]))
    }

    /// What identifies a package across versions: one name may be installed for two architectures.
    package var key: String { "\(name) \(architecture)" }

    /// `name version arch`.
    package var description: String { "\(name) \(version) \(architecture)" }

    package static func < (lhs: InstalledPackage, rhs: InstalledPackage) -> Bool {
        (lhs.name, lhs.architecture, lhs.version) < (rhs.name, rhs.architecture, rhs.version)
    }
}

/// What a version was built from and what it holds, kept inside it at `/.jobbox/manifest` (with the spec file's
/// text at `/.jobbox/spec`), so it moves with the directory's rename and goes with its removal.
///
/// The file uses `jobbox.conf` syntax: one `KNOB = value` a line, `INSTALLED` once per package.
package struct ChrootManifest: Sendable, Equatable {
    /// Where the manifest lives inside a chroot.
    package static let relativePath = ".jobbox/manifest"
    /// Where the spec file's text lives inside a chroot.
    package static let specRelativePath = ".jobbox/spec"

    /// The version.
    package var version: ChrootVersion
    /// The backend that built it.
    package var backend: ChrootBackendKind
    /// The release.
    package var release: String
    /// The repositories.
    package var repos: [String]
    /// The packages asked for.
    package var requestedPackages: [String]
    /// The binds ns-exec adds.
    package var binds: [BindRequest]
    /// Whether signatures were checked.
    package var gpgCheck: Bool
    /// debootstrap's variant, if the backend has one.
    package var variant: String?
    /// The spec file's path, if one was used.
    package var specPath: String?
    /// When it was built: `2026-11-25T13:40:00Z`.
    package var built: String
    /// `chroot-tool 0.1.0`.
    package var builtBy: String
    /// Every installed package, sorted.
    package var installed: [InstalledPackage]

    /// Creates a manifest from its parts.
    package init(
        version: ChrootVersion, backend: ChrootBackendKind, release: String, repos: [String], requestedPackages: [String],
        binds: [BindRequest], gpgCheck: Bool, variant: String?, specPath: String?, built: String, builtBy: String, installed: [InstalledPackage]
    ) {
        self.version = version
        self.backend = backend
        self.release = release
        self.repos = repos
        self.requestedPackages = requestedPackages
        self.binds = binds
        self.gpgCheck = gpgCheck
        self.variant = variant
        self.specPath = specPath
        self.built = built
        self.builtBy = builtBy
        self.installed = installed.sorted()
    }

    /// The file's text.
    package func render() -> String {
        var lines = [
            "# chroot-tool manifest of \(version): what it was built from and every package it holds",
            "NAME = \(version.name)",
            "VERSION = \(version.number)",
            "BACKEND = \(backend.rawValue)",
            "RELEASE = \(release)",
            "REPOS = \(repos.joined(separator: ", "))",
            "PACKAGES = \(requestedPackages.joined(separator: " "))",
        ]
        if !binds.isEmpty { lines.append("BINDS = \(binds.map(\.description).joined(separator: ", "))") }
        lines.append("GPGCHECK = \(gpgCheck)")
        if let variant { lines.append("VARIANT = \(variant)") }
        if let specPath { lines.append("SPEC = \(specPath)") }
        lines += [
            "BUILT = \(built)",
            "BUILT_BY = \(builtBy)",
        ]
        lines += installed.map { "INSTALLED = \($0)" }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Parses a manifest's text; `path` names the file in errors.
    package static func parse(_ text: String, path: String) throws(JobboxError) -> ChrootManifest {
        var values: [String: String] = [:]
        var installed: [InstalledPackage] = []
        for entry in try ConfigFile.parse(text, path: path) {
            if entry.name == "INSTALLED" {
                guard let package = InstalledPackage(parsing: entry.value) else {
                    throw JobboxError.invalid("bad manifest", "\(path):\(entry.line)", "INSTALLED: '\(entry.value)' is not NAME VERSION ARCH")
                }
                installed.append(package)
            } else {
                values[entry.name] = entry.value
            }
        }
        func required(_ knob: String) throws(JobboxError) -> String {
            guard let value = values[knob] else { throw JobboxError.invalid("bad manifest", path, "no \(knob)") }
            return value
        }
        let name = try ChrootName(try required("NAME"))
        guard let number = ChrootVersion.parseNumber(Substring(try required("VERSION"))) else {
            throw JobboxError.invalid("bad manifest", path, "VERSION is not a positive number")
        }
        guard let backend = ChrootBackendKind(rawValue: try required("BACKEND")) else {
            throw JobboxError.invalid("bad manifest", path, "BACKEND is not dnf, yum or debootstrap")
        }
        let binds = (values["BINDS"] ?? "").split(separator: ",").map { $0.trimmingASCIISpaces() }.filter { !$0.isEmpty }.compactMap({
            try? BindRequest(parsing: $0)
        })
        let spec = values["SPEC"] ?? ""
        return ChrootManifest(
            version: ChrootVersion(name: name, number: number), backend: backend, release: try required("RELEASE"),
            repos: ChrootSpec.splitList(values["REPOS"] ?? ""), requestedPackages: ChrootSpec.splitList(values["PACKAGES"] ?? ""),
            binds: binds, gpgCheck: JobboxConfig.parseBool(values["GPGCHECK"] ?? "true") ?? true, variant: values["VARIANT"],
            specPath: spec.isEmpty ? nil : spec, built: try required("BUILT"), builtBy: values["BUILT_BY"] ?? "", installed: installed)
    }

    /// Reads the manifest of the chroot at `chrootPath` (a version directory, or the `CHROOT_DIR/NAME` link).
    package static func read(chrootPath: String) throws(JobboxError) -> ChrootManifest {
        let path = chrootPath + "/" + relativePath
        let text: String
        do {
            text = try SmallFile.read(path)
        } catch {
            throw JobboxError.system("cannot read manifest", path, error)
        }
        return try parse(text, path: path)
    }
}

extension ChrootManifest {
    /// The binds the chroot at `root` asks for in its manifest (`BINDS` of its spec), or none when it was not built
    /// by chroot-tool. ns-exec applies them per job, inside the job's mount namespace, never on the host.
    package static func binds(ofChrootAt root: String) throws(JobboxError) -> [BindRequest] {
        do {
            guard try SmallFile.readIfPresent(root + "/" + relativePath) != nil else { return [] }
        } catch {
            throw JobboxError.system("cannot read manifest", root + "/" + relativePath, error)
        }
        return try read(chrootPath: root).binds
    }
}

/// How two versions' package lists differ.
package struct PackageDiff: Sendable, Equatable {
    /// In the second only.
    package var added: [InstalledPackage] = []
    /// In the first only.
    package var removed: [InstalledPackage] = []
    /// In both with different versions: (first, second).
    package var changed: [(old: InstalledPackage, new: InstalledPackage)] = []

    /// Compares `old` with `new` by name and architecture.
    package init(from old: [InstalledPackage], to new: [InstalledPackage]) {
        let before = Dictionary(old.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        let after = Dictionary(new.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        for package in new.sorted() {
            if let previous = before[package.key] {
                if previous.version != package.version { changed.append((previous, package)) }
            } else {
                added.append(package)
            }
        }
        removed = old.sorted().filter { after[$0.key] == nil }
    }

    /// Whether the lists are the same.
    package var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }

    /// One line per package, ordered by name: `+ name version arch`, `- name version arch`,
    /// `~ name old -> new arch`.
    package func render() -> String {
        var rows: [(InstalledPackage, String)] = []
        rows += added.map { ($0, "+ \($0)") }
        rows += removed.map { ($0, "- \($0)") }
        rows += changed.map { ($0.new, "~ \($0.new.name) \($0.old.version) -> \($0.new.version) \($0.new.architecture)") }
        return rows.sorted { $0.0 < $1.0 }.map { $0.1 + "\n" }.joined()
    }

    package static func == (lhs: PackageDiff, rhs: PackageDiff) -> Bool {
        lhs.added == rhs.added && lhs.removed == rhs.removed
            && lhs.changed.map(\.old) == rhs.changed.map(\.old) && lhs.changed.map(\.new) == rhs.changed.map(\.new)
    }
}
