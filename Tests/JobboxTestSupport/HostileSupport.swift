import Foundation
import Testing

/// Helpers for the hostile-input tests: places only root can write (where root may believe a file), files whose
/// change would show an attack worked.
package enum Hostile {
    /// A directory below /run that, like every directory above it, only root can write: a job ad there is one root
    /// may believe (`GuardedDirectory.isTrusted`). Removed by `remove()`.
    package struct RootOnlyDirectory {
        package let path: String

        package init(_ prefix: String = "jbhostile") throws {
            path = "/run/" + TestSupport.uniqueName(prefix)
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        }

        @discardableResult
        package func write(_ name: String, _ text: String, mode: Int = 0o644) throws -> String {
            let file = path + "/" + name
            try text.write(toFile: file, atomically: false, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file)
            return file
        }

        package func remove() { try? FileManager.default.removeItem(atPath: path) }
    }

    /// A directory owned by `uid` (0700), like a job's scratch dir: the job can write anything in it.
    package static func jobWritableDirectory(in parent: String, uid: UInt32, gid: UInt32) throws -> String {
        let path = parent + "/" + TestSupport.uniqueName("scratch")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        guard chown(path, uid, gid) == 0 else { throw TestFailure("chown \(path) failed") }
        return path
    }

    /// The file's bytes, or nil when it cannot be read: compared before and after an attack.
    package static func contents(_ path: String) -> Data? {
        FileManager.default.contents(atPath: path)
    }
}
