import JobboxCore

/// A program that lays out a chroot and the package database it leaves behind.
package protocol ChrootBackend: Sendable {
    /// Which backend.
    var kind: ChrootBackendKind { get }
    /// What the progress line says it does.
    var phaseDescription: String { get }
    /// Writes what the backend needs into `workDirectory` (outside the chroot) and returns its command line and
    /// the environment variables it needs on top of the caller's.
    func installCommand(root: String, workDirectory: String) throws(JobboxError) -> (arguments: [String], environment: [String: String])
    /// Every installed package, read from the chroot's package database.
    func installedPackages(root: String) throws(JobboxError) -> [InstalledPackage]
    /// Files of installed packages that differ from what the packages hold (configuration files excepted).
    func changedFiles(root: String) throws(JobboxError) -> [String]
}

/// The search path for programs chroot-tool runs inside a chroot.
let chrootSearchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/// Makes the backend for a validated spec.
package func makeChrootBackend(for spec: ChrootSpec, cacheDirectory: String?) throws(JobboxError) -> any ChrootBackend {
    let spec = try spec.validated()
    switch spec.backend {
    case .debootstrap:
        return DebootstrapBackend(spec: spec, cacheDirectory: cacheDirectory)
    case .dnf, .yum, .none:
        return RPMBackend(kind: spec.backend ?? .dnf, spec: spec)
    }
}

/// dnf or yum with `--installroot`: a throwaway configuration file holds the repositories (and nothing from
/// the host's `/etc/yum.repos.d`), and rpm's database goes to `/var/lib/rpm` inside the chroot, where the
/// chroot's own rpm looks, whatever the host's rpm defaults to (Debian's keeps it in `~/.rpmdb`).
struct RPMBackend: ChrootBackend {
    let kind: ChrootBackendKind
    let spec: ChrootSpec
    /// Where the chroot's rpm database goes.
    static let databasePath = "/var/lib/rpm"

    var phaseDescription: String { "installing \(spec.packages.count) package\(spec.packages.count == 1 ? "" : "s") with \(kind.rawValue)" }

    func installCommand(root: String, workDirectory: String) throws(JobboxError) -> (arguments: [String], environment: [String: String]) {
        let home = workDirectory + "/home"
        let reposDirectory = workDirectory + "/repos.d"
        try FileSystem.makeDirectory(home, mode: 0o700)
        try FileSystem.makeDirectory(reposDirectory, mode: 0o700)
        // rpm reads ~/.rpmmacros last, so this wins over the host's own default database path.
        try FileSystem.writeFile(home + "/.rpmmacros", "%_dbpath \(Self.databasePath)\n")
        let configuration = workDirectory + "/\(kind.rawValue).conf"
        try FileSystem.writeFile(configuration, configurationText(reposDirectory: reposDirectory))
        let arguments =
            [
                kind.rawValue, "-y", "--installroot=\(root)", "--releasever=\(spec.release ?? "")", "--config=\(configuration)",
                "--setopt=reposdir=\(reposDirectory)", "install",
            ] + spec.packages
        return (arguments, ["HOME": home])
    }

    /// dnf.conf with one section per repository; yum reads the same file.
    func configurationText(reposDirectory: String) -> String {
        let check = spec.gpgCheck ? "1" : "0"
        var lines = [
            "# written by chroot-tool for one build",
            "[main]",
            "reposdir=\(reposDirectory)",
            "gpgcheck=\(check)",
            "install_weak_deps=False",
            "keepcache=0",
            "assumeyes=True",
        ]
        for (index, url) in spec.repos.enumerated() {
            lines += ["", "[jobbox-\(index + 1)]", "name=chroot-tool repository \(index + 1)", "baseurl=\(url)", "enabled=1", "gpgcheck=\(check)"]
            if !spec.gpgKeys.isEmpty { lines.append("gpgkey=\(spec.gpgKeys.joined(separator: " "))") }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func installedPackages(root: String) throws(JobboxError) -> [InstalledPackage] {
        let result = try ChildProcess.run(
            ["rpm", "--root", root, "--dbpath", Self.databasePath, "-qa", "--qf", "%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE} %{ARCH}\\n"],
            environment: Environment.current.variables.merging(["LC_ALL": "C"]) { $1 }, output: .capture)
        guard result.status == 0 else { throw JobboxError.invalid("cannot list packages of", root, "rpm -qa exited with status \(result.status)") }
        return result.output.split(separator: "\n").compactMap { InstalledPackage(parsing: String($0)) }.sorted()
    }

    func changedFiles(root: String) throws(JobboxError) -> [String] {
        let result = try ChildProcess.run(
            ["rpm", "--root", root, "--dbpath", Self.databasePath, "-Va"],
            environment: Environment.current.variables.merging(["LC_ALL": "C"]) { $1 }, output: .capture)
        // rpm -V prints `S.5....T.  c /etc/x`: the second column marks configuration files, which sites edit.
        let problems = result.output.split(separator: "\n").map(String.init).filter { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            return !(fields.count >= 3 && fields[1] == "c")
        }
        if result.status != 0 && problems.isEmpty { return ["rpm -Va exited with status \(result.status)"] }
        return problems
    }
}

/// debootstrap into an empty directory: `--variant=minbase` unless the spec says otherwise, packages added with
/// `--include`, the spec's one mirror (or debootstrap's default).
struct DebootstrapBackend: ChrootBackend {
    let spec: ChrootSpec
    let cacheDirectory: String?
    var kind: ChrootBackendKind { .debootstrap }

    var phaseDescription: String { "bootstrapping \(spec.release ?? "") with debootstrap" }

    func installCommand(root: String, workDirectory: String) throws(JobboxError) -> (arguments: [String], environment: [String: String]) {
        var arguments = ["debootstrap", "--variant=\(spec.variant ?? "minbase")"]
        if !spec.packages.isEmpty { arguments.append("--include=\(spec.packages.joined(separator: ","))") }
        if !spec.gpgCheck {
            arguments.append("--no-check-gpg")
        } else if let keyring = spec.gpgKeys.first {
            arguments.append("--keyring=\(keyring)")
        }
        if let cacheDirectory {
            try FileSystem.makeDirectories(cacheDirectory)
            arguments.append("--cache-dir=\(cacheDirectory)")
        }
        arguments += [spec.release ?? "", root]
        if let mirror = spec.repos.first { arguments.append(mirror) }
        return (arguments, ["DEBIAN_FRONTEND": "noninteractive"])
    }

    func installedPackages(root: String) throws(JobboxError) -> [InstalledPackage] {
        let path = root + "/var/lib/dpkg/status"
        let text: String
        do {
            text = try SmallFile.read(path)
        } catch {
            throw JobboxError.system("cannot list packages of", root, error)
        }
        return Self.parseStatus(text)
    }

    /// The installed packages of dpkg's status file (stanzas of `Field: value` lines).
    static func parseStatus(_ text: String) -> [InstalledPackage] {
        var result: [InstalledPackage] = []
        for stanza in text.split(separator: "\n\n") {
            var fields: [Substring: Substring] = [:]
            for line in stanza.split(separator: "\n") where !line.hasPrefix(" ") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                fields[line[..<colon]] = line[line.index(after: colon)...].drop(while: { $0 == " " })
            }
            guard let name = fields["Package"], let version = fields["Version"], let status = fields["Status"],
                status.hasSuffix(" installed")
            else { continue }
            result.append(InstalledPackage(name: String(name), version: String(version), architecture: String(fields["Architecture"] ?? "all")))
        }
        return result.sorted()
    }

    func changedFiles(root: String) throws(JobboxError) -> [String] {
        // The chroot's own dpkg checks its md5sums: the host need not have dpkg at all.
        let result = try ChildProcess.run(
            ["chroot", root, "dpkg", "--verify"], environment: ["PATH": chrootSearchPath, "LC_ALL": "C"], output: .capture)
        // dpkg --verify prints `??5?????? c /etc/x`; the `c` marks configuration files.
        let problems = result.output.split(separator: "\n").map(String.init).filter { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            return !(fields.count >= 3 && fields[1] == "c")
        }
        if result.status != 0 && problems.isEmpty { return ["dpkg --verify exited with status \(result.status)"] }
        return problems
    }
}
