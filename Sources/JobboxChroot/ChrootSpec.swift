import JobboxCore

/// The tool that lays out a chroot's filesystem.
package enum ChrootBackendKind: String, Sendable, CaseIterable {
    /// `dnf --installroot` (Fedora, EL8 and later).
    case dnf
    /// `yum --installroot`: the same options as dnf, run as `yum` (EL7's yum, or EL8+'s yum, which is dnf).
    case yum
    /// `debootstrap` (Debian, Ubuntu).
    case debootstrap

    /// Whether the chroot's package database is rpm's.
    package var isRPM: Bool { self != .debootstrap }
}

/// What a chroot is built from: the knobs of a spec file (the same syntax as `jobbox.conf`), which a site keeps
/// in version control, overridden by the command line.
///
/// ```
/// BACKEND  = dnf
/// RELEASE  = 9
/// REPOS    = https://mirror.example.org/el9/BaseOS/x86_64/os
/// PACKAGES = bash coreutils python3
/// BINDS    = /cvmfs, /etc/grid-security
/// ```
package struct ChrootSpec: Sendable, Equatable {
    /// The knobs a spec file may set; others are warned about.
    package static let knownKnobs: [String] = ["BACKEND", "RELEASE", "REPOS", "PACKAGES", "BINDS", "GPGCHECK", "GPGKEYS", "VARIANT"]

    /// `BACKEND`: dnf, yum or debootstrap.
    package var backend: ChrootBackendKind?
    /// `RELEASE`: dnf's `--releasever`, debootstrap's suite (`bookworm`).
    package var release: String?
    /// `REPOS`: repository base URLs (dnf, yum) or the one mirror (debootstrap).
    package var repos: [String] = []
    /// `PACKAGES`: what to install (debootstrap: installed on top of the variant).
    package var packages: [String] = []
    /// `BINDS`: directories ns-exec binds in for each job.
    package var binds: [BindRequest] = []
    /// `GPGCHECK`: whether package signatures are checked (default true).
    package var gpgCheck = true
    /// `GPGKEYS`: dnf/yum: key URLs for the repositories; debootstrap: the keyring file.
    package var gpgKeys: [String] = []
    /// `VARIANT`: debootstrap's `--variant` (default `minbase`).
    package var variant: String?
    /// The spec file these came from, if any.
    package var sourcePath: String?
    /// The spec file's text, kept in the chroot beside its manifest.
    package var sourceText: String?
    /// Unknown knobs, for the tool to warn about.
    package var warnings: [String] = []

    /// An empty spec: everything comes from the command line.
    package init() {}

    /// Parses a spec file's text; `path` names it in errors, which give `path:line` and the knob.
    package static func parse(_ text: String, path: String) throws(JobboxError) -> ChrootSpec {
        var spec = ChrootSpec()
        spec.sourcePath = path
        spec.sourceText = text
        for entry in try ConfigFile.parse(text, path: path) {
            guard knownKnobs.contains(entry.name) else {
                spec.warnings.append("\(path):\(entry.line): unknown knob \(entry.name) ignored")
                continue
            }
            do throws(SpecError) {
                try spec.apply(entry.name, entry.value)
            } catch {
                throw JobboxError.invalid("bad chroot spec", "\(path):\(entry.line)", "\(entry.name): \(error.reason)")
            }
        }
        return spec
    }

    /// Reads and parses the spec file at `path`.
    package static func load(_ path: String) throws(JobboxError) -> ChrootSpec {
        let text: String
        do {
            text = try SmallFile.read(path)
        } catch {
            throw JobboxError.system("cannot read chroot spec", path, error)
        }
        return try parse(text, path: path)
    }

    struct SpecError: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// Sets one knob from its text (a spec line, or the matching command-line option).
    mutating func apply(_ knob: String, _ value: String) throws(SpecError) {
        switch knob {
        case "BACKEND":
            guard let kind = ChrootBackendKind(rawValue: value.lowercased()) else { throw SpecError("'\(value)' is not dnf, yum or debootstrap") }
            backend = kind
        case "RELEASE":
            guard Self.isPlainWord(value) else { throw SpecError("'\(value)' is not a release such as 9 or bookworm") }
            release = value
        case "REPOS":
            let list = Self.splitList(value)
            guard let bad = list.first(where: { !Self.isRepositoryURL($0) }) else {
                repos = list
                return
            }
            throw SpecError("'\(bad)' is not a repository URL (http://, https://, ftp:// or file:///)")
        case "PACKAGES":
            let list = Self.splitList(value)
            if let bad = list.first(where: { !Self.isPackageName($0) }) { throw SpecError("'\(bad)' is not a package name") }
            packages = list
        case "BINDS":
            var list: [BindRequest] = []
            for item in value.split(separator: ",").map({ $0.trimmingASCIISpaces() }) where !item.isEmpty {
                guard let bind = try? BindRequest(parsing: item) else { throw SpecError("'\(item)' is not SRC[:DST] with absolute paths") }
                list.append(bind)
            }
            binds = list
        case "GPGCHECK":
            guard let flag = JobboxConfig.parseBool(value) else { throw SpecError("'\(value)' is not true or false") }
            gpgCheck = flag
        case "GPGKEYS":
            let list = Self.splitList(value)
            if let bad = list.first(where: { !Self.isRepositoryURL($0) && !JobboxConfig.isCleanAbsolutePath($0) }) {
                throw SpecError("'\(bad)' is not a URL or an absolute path")
            }
            gpgKeys = list
        case "VARIANT":
            guard Self.isPlainWord(value) else { throw SpecError("'\(value)' is not a debootstrap variant such as minbase") }
            variant = value
        default:
            break
        }
    }

    /// Applies a command-line option as if it were the knob's line, naming the option in the error.
    package mutating func override(_ knob: String, with value: String, option: String) throws(JobboxError) {
        do throws(SpecError) {
            try apply(knob, value)
        } catch {
            throw JobboxError.invalid("invalid value for", option, error.reason)
        }
    }

    /// Checks that the spec can be built: a backend, a release, repositories and packages as the backend needs.
    package func validated() throws(JobboxError) -> ChrootSpec {
        guard let backend else { throw JobboxError.invalid("no backend", nil, "pass --backend dnf|yum|debootstrap or set BACKEND in the spec") }
        guard release != nil else { throw JobboxError.invalid("no release", nil, "pass --release or set RELEASE in the spec (dnf: 9; debootstrap: bookworm)") }
        switch backend {
        case .dnf, .yum:
            if repos.isEmpty { throw JobboxError.invalid("no repository", nil, "\(backend) needs --repo URL or REPOS in the spec") }
            if packages.isEmpty { throw JobboxError.invalid("no packages", nil, "\(backend) needs --packages or PACKAGES in the spec") }
        case .debootstrap:
            if repos.count > 1 { throw JobboxError.invalid("too many repositories", nil, "debootstrap takes one mirror, got \(repos.count)") }
            if gpgKeys.count > 1 { throw JobboxError.invalid("too many keys", nil, "debootstrap takes one keyring file in GPGKEYS") }
        }
        return self
    }

    /// Items separated by commas and/or white space.
    static func splitList(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }).map(String.init)
    }

    static func isPlainWord(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 64
            && text.unicodeScalars.allSatisfy {
                ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || "._-+".unicodeScalars.contains($0)
            }
    }

    static func isPackageName(_ text: String) -> Bool {
        // Package names, and dnf's name specs with versions, globs, paths and @groups; never an option.
        !text.isEmpty && !text.hasPrefix("-")
            && text.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f && $0 != "'" && $0 != "\"" && $0 != "\\" && $0 != "," }
    }

    static func isRepositoryURL(_ text: String) -> Bool {
        let schemes = ["http://", "https://", "ftp://", "file:///"]
        return schemes.contains { text.hasPrefix($0) && text.count > $0.count }
            && text.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f && $0 != "\\" && $0 != "," }
    }
}
