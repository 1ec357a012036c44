import Foundation
import Testing

/// Helpers for the hostile-input tests: places the job can write, and files whose change would show an attack
/// worked (places only root can write, where root may believe a file, are `ExecuteDirectory`s).
package enum Hostile {
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

    /// A job's scratch dir, owned by a throwaway user, beside a root-only "canary" directory holding a file whose
    /// content must survive whatever the job plants: the set-up of every attack on root's file handling.
    open class Scratch {
        package let user: TestUser
        /// The job's scratch dir (owned by `user`, mode 0700 as HTCondor makes it).
        package let scratch: String
        /// A root-only directory (0700) standing for /etc.
        package let canaryDirectory: String
        /// A root-only file (0600) in it standing for /etc/shadow.
        package let canary: String
        static let canaryText = "root:secret-hash:19000:0:99999:7:::\n"
        /// The directory holding both (the test's own, removed with them).
        package let base: String

        package init() throws {
            base = "/tmp/" + TestSupport.uniqueName("jbhostile")
            scratch = base + "/scratch"
            canaryDirectory = base + "/etc"
            canary = canaryDirectory + "/shadow"
            user = try TestUser()
            do {
                try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
                try FileManager.default.createDirectory(atPath: canaryDirectory, withIntermediateDirectories: true)
                chmod(canaryDirectory, 0o700)
                try Self.canaryText.write(toFile: canary, atomically: false, encoding: .utf8)
                chmod(canary, 0o600)
                chown(scratch, user.uid, user.gid)
                chmod(scratch, 0o700)
            } catch {
                remove()
                throw error
            }
        }

        /// Runs a shell script as the job's user: how the attacks are planted.
        @discardableResult
        package func asUser(_ script: String) throws -> TestSupport.Result {
            let result = try TestSupport.run(user.command(["/bin/sh", "-c", script]))
            guard result.status == 0 else { throw TestFailure("as \(user.name): \(script): \(result)") }
            return result
        }

        /// The canary directory's names and the canary's text: what no attack may change.
        package func canaryState() -> String {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: canaryDirectory)) ?? []).sorted()
            let text = (try? String(contentsOfFile: canary, encoding: .utf8)) ?? "<unreadable>"
            return names.joined(separator: ",") + "|" + text
        }

        package static let untouched = "shadow|" + canaryText

        open func remove() {
            try? FileManager.default.removeItem(atPath: base)
            user.remove()
        }
    }
}
