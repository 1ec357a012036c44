import Foundation
import JobboxTestSupport
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

    @Test("strict: only the allowed node opens, only with the allowed access; every other device is EPERM", arguments: ["v1", "bpf"])
    func strict(backend: String) throws {
        let bed = try DeviceTestBed()
        defer { bed.remove() }
        let sandbox = try Self.sandbox(backend, bed)
        defer { sandbox.cleanUp() }
        let zero = bed.path("jbd-zero")
        let full = bed.path("jbd-full")
        let result = try sandbox.run(
            ["--job", "strict", "--device-policy", "strict", "--device-allow", zero + ":r", "--"]
                + DeviceTestBed.probe([zero, "w:" + zero, full, "/dev/null", bed.path("nvidia0")]))
        #expect(result.status == 0, "\(result)")
        let verdicts = DeviceTestBed.verdicts(result.stdout)
        #expect(verdicts[zero] == "ok", "\(result)")
        #expect(verdicts["w:" + zero] == "EPERM", "writing was not allowed: \(result)")
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

    @Test("closed: the standard pseudo devices and the allowed node open; another device is EPERM", arguments: ["v1", "bpf"])
    func closed(backend: String) throws {
        let bed = try DeviceTestBed()
        defer { bed.remove() }
        let sandbox = try Self.sandbox(backend, bed)
        defer { sandbox.cleanUp() }
        let result = try sandbox.run(
            ["--job", "closed", "--device-policy", "closed", "--device-allow", bed.path("nvidia1"), "--"]
                + DeviceTestBed.probe(["/dev/null", "w:/dev/null", "/dev/urandom", bed.path("jbd-full"), bed.path("nvidia1"), bed.path("jbd-mem")]))
        #expect(result.status == 0, "\(result)")
        let verdicts = DeviceTestBed.verdicts(result.stdout)
        #expect(verdicts["/dev/null"] == "ok" && verdicts["/dev/urandom"] == "ok" && verdicts[bed.path("jbd-full")] == "ok", "\(result)")
        #expect(verdicts["w:/dev/null"] == "ok", "writing /dev/null is allowed: \(result)")
        #expect(verdicts[bed.path("nvidia1")] == "ENXIO", "the allowed node reaches its (missing) driver: \(result)")
        #expect(verdicts[bed.path("jbd-mem")] == "EPERM", "\(result)")
    }

    @Test("--gpus CUDA1 under auto: GPU 1 and the control node open, GPU 0 and the render nodes are EPERM, other devices stay open", arguments: ["v1", "bpf"])
    func gpusAuto(backend: String) throws {
        let bed = try DeviceTestBed()
        defer { bed.remove() }
        let sandbox = try Self.sandbox(backend, bed)
        defer { sandbox.cleanUp() }
        let paths = ["nvidia0", "nvidia1", "nvidiactl", "dri/renderD128", "kfd", "jbd-mem"].map(bed.path)
        let result = try sandbox.run(["--job", "gpu", "--gpus", "CUDA1", "--"] + DeviceTestBed.probe(paths))
        #expect(result.status == 0, "\(result)")
        let verdicts = DeviceTestBed.verdicts(result.stdout)
        #expect(verdicts[bed.path("nvidia1")] == "ENXIO" && verdicts[bed.path("nvidiactl")] == "ENXIO", "\(result)")
        #expect(verdicts[bed.path("nvidia0")] == "EPERM", "\(result)")
        #expect(verdicts[bed.path("dri/renderD128")] == "EPERM" && verdicts[bed.path("kfd")] == "EPERM", "no AMD GPU was assigned: \(result)")
        #expect(DeviceTestBed.passed(verdicts[bed.path("jbd-mem")]), "auto fences only the GPUs: \(result)")
    }

    @Test("--from-job-ad: AssignedGPUs picks the GPUs; without it every GPU is hidden", arguments: ["v1", "bpf"])
    func fromJobAd(backend: String) throws {
        let bed = try DeviceTestBed()
        defer { bed.remove() }
        let sandbox = try Self.sandbox(backend, bed)
        defer { sandbox.cleanUp() }
        // As root, cg-exec believes a job ad only where root alone writes.
        let execute = try ExecuteDirectory("jbd-execute")
        defer { try? FileManager.default.removeItem(atPath: execute.path) }
        let assignedAd = try execute.write("assigned.ad", "ClusterId = 7\nProcId = 0\nAssignedGPUs = \"renderD129\"\n")
        let noneAd = try execute.write("none.ad", "ClusterId = 7\nProcId = 1\n")
        let paths = ["nvidia0", "nvidia1", "dri/renderD128", "dri/renderD129", "kfd"].map(bed.path)
        let assigned = try sandbox.run(["--from-job-ad", "--"] + DeviceTestBed.probe(paths), environment: ["_CONDOR_JOB_AD": assignedAd])
        #expect(assigned.status == 0, "\(assigned)")
        let verdicts = DeviceTestBed.verdicts(assigned.stdout)
        #expect(DeviceTestBed.passed(verdicts[bed.path("dri/renderD129")]) && DeviceTestBed.passed(verdicts[bed.path("kfd")]), "\(assigned)")
        #expect(verdicts[bed.path("dri/renderD128")] == "EPERM" && verdicts[bed.path("nvidia0")] == "EPERM" && verdicts[bed.path("nvidia1")] == "EPERM")
        let none = try sandbox.run(["--from-job-ad", "--"] + DeviceTestBed.probe(paths), environment: ["_CONDOR_JOB_AD": noneAd])
        #expect(none.status == 0, "\(none)")
        #expect(DeviceTestBed.verdicts(none.stdout).values.allSatisfy { $0 == "EPERM" }, "\(none)")
    }

    @Test("bad device options are one line and 125, and leave no cgroup behind")
    func badInput() throws {
        let bed = try DeviceTestBed()
        defer { bed.remove() }
        let sandbox = try Self.sandbox("auto", bed)
        defer { sandbox.cleanUp() }
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
