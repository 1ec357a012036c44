import Foundation
import Synchronization
import Testing

/// Helpers for ns-exec's kernel tests: the host's mount table, directories outside /tmp, background runs,
/// process searches, a minimal chroot and throwaway users.
package enum NsExecTestSupport {
    // MARK: the host's mount table

    /// One mount of /proc/self/mountinfo, without its (reusable) ids: where, what, from where, propagation.
    package struct Mount: Hashable, CustomStringConvertible {
        package let mountPoint: String
        package let root: String
        package let fsType: String
        package let source: String
        package let propagation: String
        package var description: String { "\(mountPoint) (\(fsType) \(source) \(root) \(propagation))" }

        /// Memberwise, for the test targets (a memberwise init is internal).
        package init(mountPoint: String, root: String, fsType: String, source: String, propagation: String) {
            self.mountPoint = mountPoint
            self.root = root
            self.fsType = fsType
            self.source = source
            self.propagation = propagation
        }
    }

    /// The mounts of the test process (the host's mount namespace).
    package static func hostMounts() throws -> [Mount] {
        try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ").map(String.init)
            guard let dash = fields.firstIndex(of: "-"), dash >= 6, fields.count >= dash + 3 else { return nil }
            return Mount(
                mountPoint: fields[4], root: fields[3], fsType: fields[dash + 1], source: fields[dash + 2], propagation: fields[6..<dash].joined(separator: " ")
            )
        }
    }

    /// Mount points a job of these tests could disturb (beside the tests' own directories).
    package static let watchedMountPoints: Set<String> = ["/", "/tmp", "/var/tmp", "/dev", "/dev/shm", "/proc", "/etc", "/sys", "/var", "/var/lib"]

    /// The mounts that appeared, vanished or changed propagation on a watched mount point or below one of
    /// `paths` since `before`. (Mounts elsewhere belong to other programs on this machine.)
    package static func mountChanges(since before: [Mount], paths: [String] = []) throws -> [String] {
        func watched(_ mount: Mount) -> Bool {
            watchedMountPoints.contains(mount.mountPoint) || paths.contains { mount.mountPoint == $0 || mount.mountPoint.hasPrefix($0 + "/") }
        }
        let after = try hostMounts()
        let old = Dictionary(grouping: before.filter(watched), by: { $0 }).mapValues(\.count)
        let new = Dictionary(grouping: after.filter(watched), by: { $0 }).mapValues(\.count)
        let appeared = new.filter { old[$0.key] != $0.value }.map { "appeared: \($0.key)" }
        let vanished = old.filter { new[$0.key] != $0.value }.map { "vanished: \($0.key)" }
        return (appeared + vanished).sorted()
    }

    /// Fails the test when `mountChanges` finds any.
    package static func expectMountsUnchanged(since before: [Mount], paths: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let changes = try mountChanges(since: before, paths: paths)
        #expect(changes.isEmpty, "host mount table changed: \(changes)", sourceLocation: sourceLocation)
    }

    /// Builds a minimal chroot at `root`: busybox-static as /bin/sh, cat, ls, ps, id; /etc/os-release with
    /// `release`; the mount points /proc, /dev, /tmp, /var/tmp. Root-owned, nothing writable by others but /tmp.
    package static func buildChroot(at root: String, release: String) throws {
        let manager = FileManager.default
        for directory in ["bin", "etc", "proc", "dev", "tmp", "var/tmp"] {
            try manager.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
            chmod(root + "/" + directory, 0o755)
        }
        chmod(root, 0o755)
        chmod(root + "/var", 0o755)
        chmod(root + "/tmp", 0o1777)
        chmod(root + "/var/tmp", 0o1777)
        try Spawn.copyExecutable(busybox, to: root + "/bin/busybox")
        for applet in ["sh", "cat", "ls", "ps", "id", "echo", "sleep"] {
            try manager.createSymbolicLink(atPath: root + "/bin/" + applet, withDestinationPath: "busybox")
        }
        try release.write(toFile: root + "/etc/os-release", atomically: false, encoding: .utf8)
    }

    /// busybox-static's binary (scripts/deps/ns-exec.txt).
    package static let busybox = ["/bin/busybox", "/usr/bin/busybox"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/bin/busybox"

    // MARK: processes

    /// The pids of host processes whose command line is exactly `arguments`.
    package static func processes(withArguments arguments: [String]) -> [Int32] {
        let wanted = Data((arguments.joined(separator: "\0") + "\0").utf8)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry in
            guard let pid = Int32(entry), let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
            return cmdline == wanted ? pid : nil
        }
    }

    /// Waits (bounded, 20 s) until `condition` holds; returns whether it did. For things the kernel finishes
    /// asynchronously (a namespace torn down after its init got SIGKILL), not for timing.
    package static func eventually(_ condition: () -> Bool) -> Bool {
        for _ in 0..<400 {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }

    /// A unique number of seconds for `sleep`, so a test can find its own sleeper among every process.
    package static func uniqueSleep() -> String {
        let digits = TestSupport.uniqueName("").filter(\.isNumber)
        return "9" + digits.prefix(12)
    }

    /// A program running in the background, its output going to files.
    package final class Background {
        package let process = Process()
        package let output: URL
        package let errors: URL

        package init(_ arguments: [String], directory: String) throws {
            var program = arguments[0]
            if program == "ns-exec" { program = TestSupport.tool("ns-exec") }
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(arguments.dropFirst())
            output = URL(fileURLWithPath: directory + "/bg.out")
            errors = URL(fileURLWithPath: directory + "/bg.err")
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: output)
            process.standardError = try FileHandle(forWritingTo: errors)
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        package var pid: Int32 { process.processIdentifier }

        /// Waits for the end; the status as a shell reports it (128+N for signal N).
        package func wait() -> Int32 {
            process.waitUntilExit()
            return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        }

        package var stdout: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }
        package var stderr: String { (try? String(contentsOf: errors, encoding: .utf8)) ?? "" }
    }
}
