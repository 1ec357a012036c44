import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore

/// Attacks on the device fence by a job's user, who can write its scratch dir: as root, a path the job could
/// have planted as a symlink must not widen the fence.
@Suite("device fence: hostile paths", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct DeviceHostileTests {
    @Test("--device-allow through a symlink in a job-writable directory is refused as root (125), not followed")
    func symlinkRefused() throws {
        let user = try TestUser(prefix: "jbd")
        defer { user.remove() }
        let base = try TestSupport.TemporaryDirectory("jbdhostile")
        defer { base.remove() }
        let scratch = try Hostile.jobWritableDirectory(in: base.path, uid: user.uid, gid: user.gid)
        let planted = try TestSupport.run(user.command(["/bin/ln", "-s", "/dev/mem", scratch + "/gpu0"]))
        #expect(planted.status == 0, "\(planted)")
        let sandbox = try CgExecSandbox(prefix: "jbd")
        defer { sandbox.cleanUp() }
        let result = try sandbox.run(["--job", "link", "--device-policy", "strict", "--device-allow", scratch + "/gpu0", "--", "true"])
        #expect(result.status == 125, "\(result)")
        #expect(result.stderr.contains("symbolic link in a directory the job can write"), "\(result)")
        #expect(sandbox.existingBases.isEmpty)
    }

    @Test("a symlink in a job-writable GPU_DEVICE_DIR is no GPU: --gpus naming it is refused, and it is not fenced as one")
    func symlinkInGPUDirectory() throws {
        let bed = try DeviceTestBed()
        defer { bed.remove() }
        let user = try TestUser(prefix: "jbd")
        defer { user.remove() }
        chown(bed.directory, user.uid, user.gid)
        let planted = try TestSupport.run(user.command(["/bin/ln", "-s", "/dev/mem", bed.path("nvidia7")]))
        #expect(planted.status == 0, "\(planted)")
        let sandbox = try CgExecSandbox(prefix: "jbd", extraConfig: "GPU_DEVICE_DIR = \(bed.directory)\n")
        defer { sandbox.cleanUp() }
        let refused = try sandbox.run(["--job", "g7", "--device-policy", "strict", "--gpus", "CUDA7", "--", "true"])
        #expect(refused.status == 125 && refused.stderr.contains("there is no GPU node"), "\(refused)")
        let devices = try GPUDevices.scan(bed.directory)
        #expect(!devices.gpus.contains { $0.name == "nvidia7" })
        #expect(devices.gpus.map(\.name) == ["dri/renderD128", "dri/renderD129", "nvidia0", "nvidia1"])
    }
}
