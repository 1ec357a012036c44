import CLinux
import Foundation
import JobboxTestSupport
import SystemPackage
import Testing

@testable import JobboxCgroups
@testable import JobboxCore

/// cg-exec's device fence on this machine's kernel, with device nodes the test makes: once through the v1 devices
/// controller, once through a BPF_PROG_TYPE_CGROUP_DEVICE program on the hybrid node's unified hierarchy (the
/// same program a v2 node gets; scripts/vm/checks/devices.sh runs it on a real v2 node).
@Suite("cg-exec device fence on the real kernel (v1 devices controller and cgroup BPF)", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct CgExecDeviceTests {
    /// A sandbox (base cgroup `jbd...`) whose configuration picks `backend` and finds GPUs in `bed`.
    static func sandbox(_ backend: String, _ bed: DeviceTestBed, extra: String = "") throws -> CgExecSandbox {
        try CgExecSandbox(prefix: "jbd", extraConfig: "DEVICE_BACKEND = \(backend)\nGPU_DEVICE_DIR = \(bed.directory)\n" + extra)
    }

    /// Runs `body` with a fresh test bed and a sandbox for `backend`, both removed after.
    static func withFence(_ backend: String, _ body: (DeviceTestBed, CgExecSandbox) throws -> Void) throws {
        let bed = try DeviceTestBed()
        defer { bed.remove() }
        let sandbox = try Self.sandbox(backend, bed)
        defer { sandbox.cleanUp() }
        try body(bed, sandbox)
    }

    /// Runs the probe of `paths` as job `job` with cg-exec `options` and returns its verdicts by path.
    static func probe(
        _ sandbox: CgExecSandbox, job: String, _ options: [String], _ paths: [String], environment: [String: String]? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> [String: String] {
        let result = try sandbox.run(["--job", job] + options + ["--"] + DeviceTestBed.probe(paths), environment: environment)
        #expect(result.status == 0, "\(result)", sourceLocation: sourceLocation)
        return DeviceTestBed.verdicts(result.stdout)
    }

    @Test("strict: only the allowed node opens, only with the allowed access; every other device is EPERM", arguments: ["v1", "bpf"])
    func strict(backend: String) throws {
        try Self.withFence(backend) { bed, sandbox in
            let zero = bed.path("jbd-zero")
            let full = bed.path("jbd-full")
            let verdicts = try Self.probe(
                sandbox, job: "strict", ["--device-policy", "strict", "--device-allow", zero + ":r"],
                [zero, "w:" + zero, full, "/dev/null", bed.path("nvidia0")])
            #expect(verdicts[zero] == "ok", "\(verdicts)")
            #expect(verdicts["w:" + zero] == "EPERM", "writing was not allowed: \(verdicts)")
            #expect(verdicts[full] == "EPERM")
            #expect(verdicts["/dev/null"] == "EPERM", "strict leaves out even the pseudo devices")
            #expect(verdicts[bed.path("nvidia0")] == "EPERM")
            if backend == "v1" {
                #expect(try sandbox.file("devices", "strict", "devices.list") == "c 1:5 r")
            } else {
                #expect(DeviceProgram.count(at: try sandbox.jobDirectory("unified", "strict")) == 1)
            }
            #expect(try sandbox.run(["--remove", "--job", "strict"]).status == 0)
            #expect(!FileManager.default.fileExists(atPath: try sandbox.jobDirectory("unified", "strict")))
        }
    }

    @Test("closed: the standard pseudo devices and the allowed node open; another device is EPERM", arguments: ["v1", "bpf"])
    func closed(backend: String) throws {
        try Self.withFence(backend) { bed, sandbox in
            let verdicts = try Self.probe(
                sandbox, job: "closed", ["--device-policy", "closed", "--device-allow", bed.path("nvidia1")],
                ["/dev/null", "w:/dev/null", "/dev/urandom", bed.path("jbd-full"), bed.path("nvidia1"), bed.path("jbd-mem")])
            #expect(verdicts["/dev/null"] == "ok" && verdicts["/dev/urandom"] == "ok" && verdicts[bed.path("jbd-full")] == "ok", "\(verdicts)")
            #expect(verdicts["w:/dev/null"] == "ok", "writing /dev/null is allowed: \(verdicts)")
            #expect(verdicts[bed.path("nvidia1")] == "ENXIO", "the allowed node reaches its (missing) driver: \(verdicts)")
            #expect(verdicts[bed.path("jbd-mem")] == "EPERM", "\(verdicts)")
        }
    }

    @Test("--gpus CUDA1 under auto: GPU 1 and the control node open, GPU 0 and the render nodes are EPERM, other devices stay open", arguments: ["v1", "bpf"])
    func gpusAuto(backend: String) throws {
        try Self.withFence(backend) { bed, sandbox in
            let paths = ["nvidia0", "nvidia1", "nvidiactl", "dri/renderD128", "kfd", "jbd-mem"].map(bed.path)
            let verdicts = try Self.probe(sandbox, job: "gpu", ["--gpus", "CUDA1"], paths)
            #expect(verdicts[bed.path("nvidia1")] == "ENXIO" && verdicts[bed.path("nvidiactl")] == "ENXIO", "\(verdicts)")
            #expect(verdicts[bed.path("nvidia0")] == "EPERM", "\(verdicts)")
            #expect(verdicts[bed.path("dri/renderD128")] == "EPERM" && verdicts[bed.path("kfd")] == "EPERM", "no AMD GPU was assigned: \(verdicts)")
            #expect(DeviceTestBed.passed(verdicts[bed.path("jbd-mem")]), "auto fences only the GPUs: \(verdicts)")
        }
    }

    @Test("--from-job-ad: AssignedGPUs picks the GPUs; without it every GPU is hidden", arguments: ["v1", "bpf"])
    func fromJobAd(backend: String) throws {
        try Self.withFence(backend) { bed, sandbox in
            // As root, cg-exec believes a job ad only where root alone writes.
            let execute = try ExecuteDirectory("jbd-execute")
            defer { try? FileManager.default.removeItem(atPath: execute.path) }
            let assignedAd = try execute.write("assigned.ad", "ClusterId = 7\nProcId = 0\nAssignedGPUs = \"renderD129\"\n")
            let noneAd = try execute.write("none.ad", "ClusterId = 7\nProcId = 1\n")
            let paths = ["nvidia0", "nvidia1", "dri/renderD128", "dri/renderD129", "kfd"].map(bed.path)
            let verdicts = try Self.probe(sandbox, job: "7.0", ["--from-job-ad"], paths, environment: ["_CONDOR_JOB_AD": assignedAd])
            #expect(DeviceTestBed.passed(verdicts[bed.path("dri/renderD129")]) && DeviceTestBed.passed(verdicts[bed.path("kfd")]), "\(verdicts)")
            #expect(verdicts[bed.path("dri/renderD128")] == "EPERM" && verdicts[bed.path("nvidia0")] == "EPERM" && verdicts[bed.path("nvidia1")] == "EPERM")
            let none = try Self.probe(sandbox, job: "7.1", ["--from-job-ad"], paths, environment: ["_CONDOR_JOB_AD": noneAd])
            #expect(none.count == paths.count && none.values.allSatisfy { $0 == "EPERM" }, "\(none)")
        }
    }

    @Test("bad device options are one line and 125, and leave no cgroup behind")
    func badInput() throws {
        try Self.withFence("auto") { bed, sandbox in try Self.refuses(bed, sandbox) }
    }

    @Test("a device program the verifier refuses is reported with the verifier's last complaint, which the fence's loader gives")
    func verifierComplaint() throws {
        // r0 = r2; exit: r2 is never written, so the verifier refuses reading it. Written as the bytes of two
        // struct bpf_insn (code, dst_reg | src_reg << 4, off, imm), which Swift does not see.
        let program: [UInt8] = [0xbf, 0x20, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]
        var complaint = [CChar](repeating: 0, count: Int(JB_BPF_COMPLAINT_SIZE))
        let fd = program.withUnsafeBytes { bytes in
            // BPF_PROG_TYPE_CGROUP_DEVICE and BPF_CGROUP_DEVICE, as the fence loads.
            jb_bpf_prog_load(15, 6, "jbd_refused", OpaquePointer(bytes.baseAddress), 2, "GPL", &complaint, complaint.count)
        }
        let error = Errno.last
        if fd >= 0 { close(fd) }
        #expect(fd == -1, "the verifier accepted reading a register never written")
        let verifier = String(decoding: complaint.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        #expect(verifier == "R2 !read_ok")
        // The verifier refuses with EACCES, which without its complaint would read as a lack of privilege.
        #expect(error == .permissionDenied, "\(error)")
        #expect(DeviceProgram.reason(error, verifier: verifier) == "Permission denied (verifier: R2 !read_ok)")
    }

    static func refuses(_ bed: DeviceTestBed, _ sandbox: CgExecSandbox) throws {
        let cases: [([String], String)] = [
            (["--device-policy", "open"], "invalid --device-policy 'open': it is not auto, closed or strict"),
            (["--device-allow", "dev/null"], "invalid --device-allow 'dev/null'"),
            (["--device-allow", bed.path("missing")], "No such file or directory"),
            (["--device-allow", bed.directory], "it is not a character or block device"),
            (["--device-allow", "char-jbdnothing"], "/proc/devices has no char device group 'jbdnothing'"),
            (["--gpus", "CUDA7"], "there is no GPU node \(bed.directory)/nvidia7"),
            (["--gpus", "GPU-0badc0de"], "no NVIDIA GPU"),
        ]
        for (options, message) in cases {
            let result = try sandbox.run(["--job", "bad"] + options + ["--", "true"])
            #expect(result.status == 125, "\(options): \(result)")
            #expect(result.stderr.hasPrefix("cg-exec: ") && result.stderr.contains(message), "\(options): \(result)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(options): \(result)")
        }
        #expect(sandbox.existingBases.isEmpty, "\(sandbox.existingBases)")
    }
}
