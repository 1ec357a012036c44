import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxChroot
@testable import JobboxCore

/// chroot-tool with debootstrap against the Debian mirror apt is configured with. Slow (a minbase system is
/// unpacked and configured), so one test; the downloaded packages are kept in .cache/chroot-tool/debootstrap in
/// the repository (debootstrap --cache-dir checks each against the mirror's signed index before using it).
@Suite("chroot-tool with debootstrap", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct ChrootDebootstrapTests {
    /// The first URI and suite of /etc/apt/sources.list.d/debian.sources (deb822), else of /etc/apt/sources.list.
    static func configuredMirror() throws -> (mirror: String, suite: String) {
        if let text = try? String(contentsOfFile: "/etc/apt/sources.list.d/debian.sources", encoding: .utf8) {
            for stanza in text.components(separatedBy: "\n\n") {
                var fields: [String: String] = [:]
                for line in stanza.split(separator: "\n") where !line.hasPrefix("#") {
                    let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                    if parts.count == 2 { fields[parts[0]] = parts[1] }
                }
                if let uri = fields["URIs"]?.split(separator: " ").first, let suite = fields["Suites"]?.split(separator: " ").first,
                    !suite.contains("-")
                {
                    return (String(uri), String(suite))
                }
            }
        }
        let list = try String(contentsOfFile: "/etc/apt/sources.list", encoding: .utf8)
        for line in list.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count >= 3, fields[0] == "deb", !fields[2].contains("-") { return (String(fields[1]), String(fields[2])) }
        }
        throw TestFailure("no Debian mirror configured for apt")
    }

    @Test("a minbase system from the configured mirror: manifest, show, verify, a shell inside", .timeLimit(.minutes(15)))
    func minbase() throws {
        let bed = try ChrootTestBed()
        defer { bed.remove() }
        let (mirror, suite) = try Self.configuredMirror()
        let cache = TestSupport.repositoryRoot + "/.cache/chroot-tool/debootstrap"
        let result = try bed.tool([
            "build", "deb", "--backend", "debootstrap", "--release", suite, "--repo", mirror, "--packages", "ca-certificates",
            "--cache-dir", cache, "--switch", "-q",
        ])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "deb-v1\n")
        #expect(result.stderr.contains("chroot-tool: deb-v1: bootstrapping \(suite) with debootstrap\n"))

        let manifest = try ChrootManifest.read(chrootPath: bed.chrootDir + "/deb")
        #expect(manifest.backend == .debootstrap)
        #expect(manifest.variant == "minbase")
        #expect(manifest.repos == [mirror])
        let names = Set(manifest.installed.map(\.name))
        #expect(names.isSuperset(of: ["base-files", "bash", "dpkg", "libc6", "ca-certificates"]))
        // The manifest's list is dpkg's own view of the chroot.
        let dpkg = try TestSupport.run([
            "dpkg-query", "--admindir=\(bed.chrootDir)/deb-v1/var/lib/dpkg", "-W", "-f", "${db:Status-Abbrev}${Package} ${Version} ${Architecture}\n",
        ])
        let installed = dpkg.stdout.split(separator: "\n").filter { $0.hasPrefix("ii ") }.map { String($0.dropFirst(3)).trimmingCharacters(in: .whitespaces) }
        #expect(manifest.installed.map(\.description) == installed.sorted { InstalledPackage(parsing: $0)! < InstalledPackage(parsing: $1)! })

        let show = try bed.tool(["show", "deb"])
        #expect(
            show.stdout.hasPrefix(
                """
                # chroot-tool manifest of deb-v1: what it was built from and every package it holds
                NAME = deb
                VERSION = 1
                BACKEND = debootstrap
                RELEASE = \(suite)
                REPOS = \(mirror)
                PACKAGES = ca-certificates
                GPGCHECK = true
                VARIANT = minbase
                BUILT = \(ChrootTestBed.epochText)

                """))

        let verify = try bed.tool(["verify", "deb"])
        #expect(verify.status == 0, "\(verify)")
        #expect(verify.stdout.contains("deb-v1: files: ok (unchanged)\n"))
        let inside = try TestSupport.sh("chroot '\(bed.chrootDir)/deb' /bin/bash -c 'cat /etc/debian_version'")
        #expect(inside.status == 0)
        #expect(inside.stdout.first?.isNumber == true, "\(inside.stdout)")
        #expect(try TestSupport.sh("grep -c '\(bed.directory.path)' /proc/self/mountinfo").stdout == "0\n", "debootstrap left no mount behind")
        #expect(FileManager.default.fileExists(atPath: cache), "downloads are kept for the next run")
    }
}
