import Foundation
import JobboxTestSupport
import Testing

/// Finding 2 of issue #12: a setuid-root (or setgid, or file-capability) copy of a tool must not run the caller's
/// command with its privileges, append to a file the caller names, or echo a file the caller cannot read.
/// Each tool is copied, made privileged, and run by a throwaway user; it must refuse with one line and status 125
/// before doing anything, and nothing outside must change.
@Suite("Hostile: privileged execution", .serialized, .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct PrivilegeHostileTests {
    static let tools = ["cg-exec", "ns-exec", "netacct", "chroot-tool", "jobstat"]
    static let refusal =
        "refusing to run setuid, setgid or with file capabilities: jobbox tools are not made for a privileged install; run them as root or as the job's user"

    /// What makes the copy privileged: a mode for chmod, or file capabilities for setcap.
    enum Privilege: String, CaseIterable, CustomTestStringConvertible {
        case setuid = "u+s"
        case setgid = "g+s"
        case capability = "cap_sys_admin,cap_dac_override+ep"
        var testDescription: String { rawValue }
    }

    static let setcap = ["/usr/sbin/setcap", "/sbin/setcap"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The place the attack would reach: root-only files that the tool would touch if it acted on the caller's
    /// word with root's rights.
    struct Scene {
        let user: TestUser
        let copies: ExecuteDirectory
        let victims: ExecuteDirectory
        let secret: String
        let canary: String
        let errorFile: String

        init() throws {
            user = try TestUser()
            // /var/tmp and /run lie on filesystems without nosuid here; /run/<unique> is root-only, 0755.
            copies = try ExecuteDirectory("jbsuid")
            victims = try ExecuteDirectory("jbvictim")
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: victims.path)
            secret = try victims.write("secret.conf", "TOP SECRET first line of a root-only file\n", mode: 0o600)
            errorFile = try victims.write("error-file", "before\n", mode: 0o600)
            canary = victims.path + "/made-by-the-command"
        }

        func remove() {
            user.remove()
            copies.remove()
            victims.remove()
        }

        /// A copy of `tool` made privileged as `privilege` says.
        func privilegedCopy(of tool: String, _ privilege: Privilege) throws -> String {
            let copy = copies.path + "/" + tool
            if !FileManager.default.fileExists(atPath: copy) { try Spawn.copyExecutable(TestSupport.tool(tool), to: copy) }
            _ = try TestSupport.run(["chmod", "0755", copy])
            _ = try TestSupport.run(["/usr/sbin/setcap", "-r", copy])
            let made: TestSupport.Result
            switch privilege {
            case .setuid, .setgid: made = try TestSupport.run(["chmod", privilege.rawValue, copy])
            case .capability: made = try TestSupport.run([PrivilegeHostileTests.setcap ?? "setcap", privilege.rawValue, copy])
            }
            guard made.status == 0 else { throw TestFailure("cannot make \(copy) \(privilege.rawValue): \(made)") }
            return copy
        }
    }

    @Test(
        "a privileged copy refuses before it reads its arguments, config or the error file, and runs nothing",
        arguments: PrivilegeHostileTests.tools, Privilege.allCases)
    func refuses(tool: String, privilege: Privilege) throws {
        if privilege == .capability && PrivilegeHostileTests.setcap == nil { return }
        let scene = try Scene()
        defer { scene.remove() }
        let copy = try scene.privilegedCopy(of: tool, privilege)
        let errorBefore = Hostile.contents(scene.errorFile)
        let command = ["/bin/sh", "-c", "echo pwned > \(scene.canary)"]
        let arguments: [String]
        switch tool {
        case "jobstat": arguments = ["--config", scene.secret, "--job", "1.0"]
        case "chroot-tool": arguments = ["--config", scene.secret, "list"]
        default: arguments = ["--config", scene.secret, "--job", "1.0", "--"] + command
        }
        let result = try TestSupport.run(
            ["/usr/bin/setpriv", "--reuid", String(scene.user.uid), "--regid", String(scene.user.gid), "--clear-groups", "--", copy] + arguments,
            environment: ["PATH": "/usr/bin:/bin", "_CONDOR_WRAPPER_ERROR_FILE": scene.errorFile])
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr == "\(tool): \(PrivilegeHostileTests.refusal)\n", "\(result)")
        #expect(!result.stderr.contains("SECRET") && !result.stdout.contains("SECRET"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: scene.canary), "the command ran")
        #expect(Hostile.contents(scene.errorFile) == errorBefore, "the error file the caller named changed")
    }

    @Test("the same binary without the privilege runs as its caller (the refusal is about the privilege, not the copy)")
    func plainCopyRuns() throws {
        let scene = try Scene()
        defer { scene.remove() }
        let copy = try scene.privilegedCopy(of: "jobstat", .setuid)
        _ = try TestSupport.run(["chmod", "u-s", copy])
        let result = try TestSupport.run(
            [
                "/usr/bin/setpriv", "--reuid", String(scene.user.uid), "--regid", String(scene.user.gid), "--clear-groups", "--", copy, "--config",
                scene.secret, "--job", "1.0",
            ])
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr == "jobstat: cannot read configuration \(scene.secret): Permission denied\n", "\(result)")
    }
}
