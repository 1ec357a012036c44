import JobboxCore

/// One row of `chroot-tool list`.
package struct ChrootListing: Sendable {
    /// The version.
    package let version: ChrootVersion
    /// `CHROOT_DIR/NAME` points at it.
    package let isCurrent: Bool
    /// `rollback` would go to it.
    package let isRollbackTarget: Bool
    /// Bytes on disk.
    package let size: UInt64
    /// When it was built (from its manifest; `?` without one).
    package let built: String
    /// What uses it.
    package let users: [DirectoryUser]

    /// The rows of `names`' versions, in name and version order; one /proc scan serves them all.
    package static func collect(_ store: ChrootStore, names: [ChrootName]) throws(JobboxError) -> [ChrootListing] {
        let usage = SystemUsage.scan()
        var rows: [ChrootListing] = []
        for name in names {
            let current = store.current(of: name)
            let rollback = store.rollbackTarget(of: name)
            for version in try store.versions(of: name) {
                let path = store.path(of: version)
                rows.append(
                    ChrootListing(
                        version: version, isCurrent: version == current, isRollbackTarget: version == rollback,
                        size: DirectoryTree.diskUsage(path), built: (try? store.manifest(of: version))?.built ?? "?",
                        users: usage.users(of: path)))
            }
        }
        return rows
    }

    /// The table: a header line, then one aligned line per version.
    package static func render(_ rows: [ChrootListing]) -> String {
        let header = ["NAME", "VERSION", "STATE", "SIZE", "BUILT", "IN USE"]
        let cells = rows.map { row in
            [
                row.version.name.rawValue, row.version.label,
                row.isCurrent ? "current" : (row.isRollbackTarget ? "previous" : "-"),
                humanSize(row.size), row.built, row.users.isEmpty ? "no" : "yes",
            ]
        }
        return renderTable([header] + cells)
    }

    /// Columns separated by two spaces, each as wide as its widest cell; the last one is not padded.
    static func renderTable(_ table: [[String]]) -> String {
        guard let columns = table.first?.count else { return "" }
        let widths = (0..<columns).map { column in table.map { $0[column].count }.max() ?? 0 }
        return table.map { row in
            row.enumerated().map { index, cell in
                index == columns - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
            }.joined(separator: "  ") + "\n"
        }.joined()
    }

    /// `du -h` style: `512`, `4.0K`, `212M`, `1.4G`.
    package static func humanSize(_ bytes: UInt64) -> String {
        if bytes < 1024 { return "\(bytes)" }
        var value = Double(bytes)
        for unit in ["K", "M", "G", "T", "P"] {
            value /= 1024
            if value < 1024 || unit == "P" {
                if value < 10 {
                    let tenths = Int((value * 10).rounded(.up))
                    return tenths >= 100 ? "10\(unit)" : "\(tenths / 10).\(tenths % 10)\(unit)"
                }
                return "\(Int(value.rounded(.up)))\(unit)"
            }
        }
        return "\(bytes)"
    }
}

/// The `NAMED_CHROOT` line for `jobbox.conf` that names every chroot with a current version by its link.
package func namedChrootConfiguration(_ store: ChrootStore) throws(JobboxError) -> String {
    let items = try store.names().filter { store.current(of: $0) != nil }.map { "\($0)=\(store.linkPath(of: $0))" }
    guard !items.isEmpty else { return "" }
    let indent = String(repeating: " ", count: "NAMED_CHROOT = ".count)
    return "NAMED_CHROOT = " + items.joined(separator: ", \\\n" + indent) + "\n"
}

/// The result of `chroot-tool verify`: each check with what it found wrong.
package struct ChrootVerification: Sendable {
    /// One check.
    package struct Check: Sendable {
        /// `manifest`, `packages`, `files`, `shell`, `link`.
        package let name: String
        /// A note for a passed check.
        package let detail: String
        /// What is wrong; empty when it passed.
        package let problems: [String]
    }

    /// The version checked.
    package let version: ChrootVersion
    /// The checks, in order.
    package let checks: [Check]

    /// Whether every check passed.
    package var passed: Bool { checks.allSatisfy { $0.problems.isEmpty } }

    /// Checks `version` of `store`: its manifest, that its packages are the manifest's, that their files are
    /// unchanged (configuration files excepted), and that a shell runs inside; with `link`, that
    /// `CHROOT_DIR/NAME` points at an existing version.
    package static func run(_ store: ChrootStore, version: ChrootVersion, checkLink: Bool) -> ChrootVerification {
        var checks: [Check] = []
        if checkLink {
            let link = store.linkPath(of: version.name)
            checks.append(Check(name: "link", detail: "\(link) -> \(version)", problems: []))
        }
        let path = store.path(of: version)
        var manifest: ChrootManifest?
        do {
            let read = try store.manifest(of: version)
            manifest = read
            let problems = read.version == version ? [] : ["it describes \(read.version), not \(version)"]
            checks.append(Check(name: "manifest", detail: "\(read.backend.rawValue), built \(read.built)", problems: problems))
        } catch {
            checks.append(Check(name: "manifest", detail: "", problems: [error.description]))
        }
        if let manifest {
            let backend: any ChrootBackend
            var spec = ChrootSpec()
            spec.backend = manifest.backend
            spec.release = manifest.release
            backend = manifest.backend == .debootstrap ? DebootstrapBackend(spec: spec, cacheDirectory: nil) : RPMBackend(kind: manifest.backend, spec: spec)
            do {
                let installed = try backend.installedPackages(root: path)
                let diff = PackageDiff(from: manifest.installed, to: installed)
                let problems = diff.render().split(separator: "\n").map { "not as in the manifest: \($0)" }
                checks.append(Check(name: "packages", detail: "\(installed.count) as in the manifest", problems: problems))
            } catch {
                checks.append(Check(name: "packages", detail: "", problems: [error.description]))
            }
            do {
                let changed = try backend.changedFiles(root: path)
                checks.append(Check(name: "files", detail: "unchanged", problems: changed))
            } catch {
                checks.append(Check(name: "files", detail: "", problems: [error.description]))
            }
        }
        do {
            try ChrootBuilder.checkShell(root: path)
            checks.append(Check(name: "shell", detail: "/bin/sh runs inside", problems: []))
        } catch {
            checks.append(Check(name: "shell", detail: "", problems: [error.description]))
        }
        return ChrootVerification(version: version, checks: checks)
    }

    /// `NAME-vN: check: ok (detail)` per passed check; `NAME-vN: check: FAILED` and one indented line per
    /// problem for the others.
    package func render() -> String {
        checks.map { check in
            if check.problems.isEmpty { return "\(version): \(check.name): ok (\(check.detail))\n" }
            return "\(version): \(check.name): FAILED\n" + check.problems.map { "  \($0)\n" }.joined()
        }.joined()
    }
}
