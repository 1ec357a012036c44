import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxQuota

/// A btrfs file system for one test: a sparse image on a fresh loop disk (`FreshLoopDisk`, image in
/// `/tmp/jbq-loop*`), mounted at `<base>/mnt` in a root-only `/var/lib/jbq*`, with quotas on unless asked
/// otherwise, and a configuration whose `STATE_DIR` is `/run/jbq*`. `remove()` unmounts, detaches and deletes
/// everything, and says what it could not.
final class BtrfsImage {
    let disk: FreshLoopDisk
    let base: ExecuteDirectory
    let mount: String
    let stateDirectory: String
    let config: String
    private var mounted = false

    /// Whether this machine can make one (root, mkfs.btrfs, the btrfs module).
    static var available: Bool {
        TestSupport.isRoot
            && ["/usr/bin/mkfs.btrfs", "/usr/sbin/mkfs.btrfs", "/sbin/mkfs.btrfs"].contains { FileManager.default.isExecutableFile(atPath: $0) }
    }

    init(quotas: Bool = true) throws {
        disk = try FreshLoopDisk(megabytes: 512, prefix: "jbq-loop")
        do {
            base = try ExecuteDirectory("jbq")
        } catch {
            disk.remove()
            throw error
        }
        mount = base.path + "/mnt"
        stateDirectory = "/run/" + TestSupport.uniqueName("jbq-state")
        config = base.path + "/jobbox.conf"
        do {
            try base.write("jobbox.conf", "STATE_DIR = \(stateDirectory)\n")
            try run("mkfs.btrfs -q -f \(disk.path) && mkdir -m 0755 \(mount) && mount -t btrfs \(disk.path) \(mount)")
            mounted = true
            if quotas { try run("btrfs quota enable \(mount)") }
        } catch {
            remove()
            throw error
        }
    }

    /// Runs `body` with a throwaway job user (`jbq...`) and a new image, both removed afterwards even when `body`
    /// fails; checks that nothing of the image is left.
    static func withUserAndImage(_ body: (TestUser, BtrfsImage) throws -> Void) throws {
        let user = try TestUser(prefix: "jbq")
        defer { user.remove() }
        let image = try BtrfsImage()
        defer {
            image.remove()
            #expect(image.leftovers().isEmpty, "left behind: \(image.leftovers())")
        }
        try body(user, image)
    }

    /// The settings the tools read from `config`.
    var settings: ScratchQuotaSettings { ScratchQuotaSettings(stateDirectory: stateDirectory, projectIDs: .defaultRange) }

    /// A new subvolume `name` owned by `owner` (0700, as HTCondor makes a scratch dir).
    @discardableResult
    func subvolume(_ name: String, owner: (uid: UInt32, gid: UInt32) = (0, 0)) throws -> String {
        let path = mount + "/" + name
        try run("btrfs -q subvolume create \(path) && chown \(owner.uid):\(owner.gid) \(path) && chmod 0700 \(path)")
        return path
    }

    /// Commits the file system's transaction, so the qgroups' figures are current.
    func sync() throws { try run("sync -f \(mount)") }

    /// `du -sk` of `path`.
    func du(_ path: String) throws -> Int {
        let result = try TestSupport.sh("du -sk \(path)")
        guard result.status == 0, let kib = Int(result.stdout.split(separator: "\t").first ?? "") else { throw TestFailure("du \(path): \(result)") }
        return kib
    }

    private func run(_ script: String) throws {
        let result = try TestSupport.sh(script)
        guard result.status == 0 else { throw TestFailure("\(script): \(result)") }
    }

    /// What is left of this image on the machine (nothing, after `remove()`).
    func leftovers() -> [String] {
        var left: [String] = []
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        if mounts.contains(" \(mount) ") { left.append("mount \(mount)") }
        if FileManager.default.fileExists(atPath: "/sys/block/\(disk.name)/loop") { left.append("loop device \(disk.path) still bound") }
        if FileManager.default.fileExists(atPath: base.path) { left.append(base.path) }
        if FileManager.default.fileExists(atPath: stateDirectory) { left.append(stateDirectory) }
        return left
    }

    func remove() {
        if mounted {
            _ = try? TestSupport.sh("umount \(mount) || umount -l \(mount)")
            mounted = false
        }
        disk.remove()
        base.remove()
        try? FileManager.default.removeItem(atPath: stateDirectory)
    }
}
