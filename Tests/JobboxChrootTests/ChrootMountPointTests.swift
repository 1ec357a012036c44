import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxChroot
@testable import JobboxCore

/// chroot-tool build makes the mount points ns-exec needs, since ns-exec makes nothing in a (read-only) version.
@Suite("chroot-tool mount points")
struct ChrootMountPointTests {
    @Test("the built-in mount points, BINDS targets and CHROOT_MOUNT_POINTS are made inside the tree, never through a symlink out of it")
    func makesMountPoints() throws {
        let dir = try TestSupport.TemporaryDirectory("jobbox-mountpoints")
        defer { dir.remove() }
        let root = dir.path + "/root"
        let outside = dir.path + "/outside"
        try FileManager.default.createDirectory(atPath: root + "/var", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        // Absolute symlinks in the tree resolve inside it, as they will for the job: /opt leads to the tree's
        // /elsewhere, /srv to a directory that exists only on the host.
        try FileManager.default.createDirectory(atPath: root + "/elsewhere", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root + "/opt", withDestinationPath: "/elsewhere")
        try FileManager.default.createSymbolicLink(atPath: root + "/srv", withDestinationPath: outside)
        try FileManager.default.createDirectory(atPath: root + "/proc", withIntermediateDirectories: true)
        let made = try ChrootBuilder.makeMountPoints(root: root, extra: ["/cvmfs", "/var/lib/condor/execute", "/opt/data", "/cvmfs/"])
        #expect(made == ["/dev", "/tmp", "/var/tmp", "/run", "/cvmfs", "/var/lib", "/var/lib/condor", "/var/lib/condor/execute", "/opt/data"])
        #expect(FileManager.default.fileExists(atPath: root + "/elsewhere/data"))
        #expect(throws: JobboxError.self) { try ChrootBuilder.makeMountPoints(root: root, extra: ["/srv/data"]) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
        let tmp = try FileManager.default.attributesOfItem(atPath: root + "/tmp")
        #expect(tmp[.posixPermissions] as? Int == 0o1777)
        let execute = try FileManager.default.attributesOfItem(atPath: root + "/var/lib/condor/execute")
        #expect(execute[.posixPermissions] as? Int == 0o755)
        // A second run finds them all.
        #expect(try ChrootBuilder.makeMountPoints(root: root, extra: ["/cvmfs", "/var/lib/condor/execute", "/opt/data"]).isEmpty)
    }
}
