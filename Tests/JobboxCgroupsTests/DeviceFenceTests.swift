import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore

/// The device fence's parsing and planning on fixtures (any user); the kernel side is CgExecDeviceTests.
@Suite("device fence: parsing and plans (fixtures)")
struct DeviceFenceTests {
    @Test("PATH[:rwm], char-NAME and block-NAME parse; anything else is refused")
    func allowSpecs() throws {
        #expect(DeviceAllowSpec(parsing: "/dev/nvidia0") == DeviceAllowSpec(device: "/dev/nvidia0", access: .all))
        #expect(DeviceAllowSpec(parsing: "/dev/fuse:rw") == DeviceAllowSpec(device: "/dev/fuse", access: [.read, .write]))
        #expect(DeviceAllowSpec(parsing: "char-pts:r") == DeviceAllowSpec(device: "char-pts", access: .read))
        #expect(DeviceAllowSpec(parsing: "/dev/disk/by-path/pci-0000:00:1f.2-ata-1") == .init(device: "/dev/disk/by-path/pci-0000:00:1f.2-ata-1", access: .all))
        for bad in ["dev/null", "/dev/../etc/shadow", "char-", "", ":rw"] {
            #expect(DeviceAllowSpec(parsing: bad) == nil, "\(bad)")
        }
        #expect(
            DeviceAllowSpec.parseList("/dev/fuse:rw, char-pts") == [
                .init(device: "/dev/fuse", access: [.read, .write]), .init(device: "char-pts", access: .all),
            ])
    }

    @Test("the knobs: DEVICE_POLICY, DEVICE_ALLOW, DEVICE_BACKEND, GPU_DEVICE_DIR, GPU_HIDE_UNASSIGNED")
    func knobs() throws {
        let config = try JobboxConfig.parse(
            "DEVICE_POLICY = closed\nDEVICE_ALLOW = /dev/fuse:rw /dev/kvm\nDEVICE_BACKEND = bpf\nGPU_DEVICE_DIR = /srv/dev/\nGPU_HIDE_UNASSIGNED = false\n",
            path: "test.conf")
        #expect(config.devicePolicy == .closed && config.deviceBackend == .bpf && config.gpuDeviceDir == "/srv/dev" && !config.gpuHideUnassigned)
        #expect(config.deviceAllow.map(\.device) == ["/dev/fuse", "/dev/kvm"])
        #expect(config.warnings.isEmpty)
        let bad = Result { try JobboxConfig.parse("DEVICE_POLICY = open\n", path: "test.conf") }
        #expect(throws: JobboxError.self) { try bad.get() }
    }

    @Test("v1: an allow list denies a first and then allows each rule; a deny list only denies")
    func v1Writes() {
        let allow = DeviceFence.allowList([DeviceRule(.char, 1, 3), DeviceRule(.char, 136, nil, [.read, .write])])
        #expect(allow.v1Writes.map(\.description) == ["devices.deny = a", "devices.allow = c 1:3 rwm", "devices.allow = c 136:* rw"])
        let deny = DeviceFence.denyList([DeviceRule(.char, 195, 0, .read)])
        #expect(deny.v1Writes.map(\.description) == ["devices.deny = c 195:0 rwm"], "a hidden device is hidden for every access")
    }

    @Test("closed's pseudo devices: null, zero, full, random, urandom, tty, ptmx and every pts major of /proc/devices")
    func pseudoDevices() {
        let procDevices = "Character devices:\n  1 mem\n  5 /dev/tty\n136 pts\n137 pts\n195 nvidia\n\nBlock devices:\n  7 loop\n136 pts\n"
        #expect(DeviceNodes.groupMajors(procDevices, kind: .char, name: "pts") == [136, 137])
        #expect(DeviceNodes.groupMajors(procDevices, kind: .block, name: "loop") == [7])
        #expect(DeviceNodes.groupMajors(procDevices, kind: .char, name: "loop").isEmpty)
        let rules = DeviceNodes.pseudoDevices(procDevices: procDevices).map(\.description)
        #expect(rules == ["c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm", "c 137:* rwm"])
    }

    /// Two NVIDIA GPUs (minors 0 and 1, UUIDs in the fixture's driver files) and two render nodes.
    static let devices: GPUDevices = {
        var devices = GPUDevices()
        devices.gpus = [
            .init(name: "dri/renderD128", vendor: .drm, number: DeviceNumber(.char, 226, 128)),
            .init(name: "nvidia0", vendor: .nvidia, number: DeviceNumber(.char, 195, 0)),
            .init(name: "nvidia1", vendor: .nvidia, number: DeviceNumber(.char, 195, 1)),
        ]
        return devices
    }()

    @Test("HTCondor's GPU names: short and full UUIDs through the driver's Device Minor, CUDA<N>, <N>, renderD<N>, a path")
    func gpuNames() throws {
        let names = GPUNames(nvidiaInformation: TestSupport.fixtures + "/nvidia-gpus")
        func node(_ name: String) throws -> String { try names.node(name, in: Self.devices, directory: "/dev", source: "--gpus").name }
        #expect(try node("GPU-c4a646d7") == "nvidia1", "the short UUID condor_gpu_discovery gives by default")
        #expect(try node("GPU-c4b01e55-7f2a-4e65-9a21-0a6f0e2c4d10") == "nvidia0")
        #expect(try node("CUDA1") == "nvidia1")
        #expect(try node("0") == "nvidia0")
        #expect(try node("renderD128") == "dri/renderD128")
        #expect(try node("/dev/nvidia1") == "nvidia1")
        let failures: [(String, String)] = [
            ("GPU-c4", "it matches 2 GPUs' UUIDs"), ("GPU-ffffffff", "no NVIDIA GPU"), ("MIG-1234", "MIG instances"),
            ("CUDA5", "there is no GPU node /dev/nvidia5"), ("gpu", "it is not GPU-<uuid>"),
        ]
        for (name, reason) in failures {
            #expect(throws: JobboxError.self, "\(name)") { try node(name) }
            do {
                _ = try node(name)
            } catch {
                #expect("\(error)".contains(reason), "\(name): \(error)")
            }
        }
    }

    static func ad(_ attributes: [(String, ClassAdValue)]) -> ClassAd {
        var ad = ClassAd()
        for (name, value) in attributes { ad.set(name, value) }
        return ad
    }

    @Test("AssignedGPUs from the job ad; without it no GPUs (or no fence when GPU_HIDE_UNASSIGNED is false); --gpus wins")
    func jobAd() throws {
        var request = DeviceRequest()
        try request.fill(fromJobAd: Self.ad([("AssignedGPUs", .string("GPU-c4a646d7, GPU-c4b01e55"))]), path: "ad", hideUnassigned: true)
        #expect(request.gpus == ["GPU-c4a646d7", "GPU-c4b01e55"])
        var none = DeviceRequest()
        try none.fill(fromJobAd: Self.ad([]), path: "ad", hideUnassigned: true)
        #expect(none.gpus == [])
        var shown = DeviceRequest()
        try shown.fill(fromJobAd: Self.ad([]), path: "ad", hideUnassigned: false)
        #expect(shown.gpus == nil)
        var given = try DeviceRequest(policy: nil, allow: [], gpus: "CUDA0")
        try given.fill(fromJobAd: Self.ad([("AssignedGPUs", .string("CUDA1"))]), path: "ad", hideUnassigned: true)
        #expect(given.gpus == ["CUDA0"])
        var bad = DeviceRequest()
        #expect(throws: JobboxError.self) { try bad.fill(fromJobAd: Self.ad([("AssignedGPUs", .integer(2))]), path: "ad", hideUnassigned: true) }
    }

    @Test("auto with nothing asked makes no fence and no devices cgroup; a fence puts devices in the plan (v1 files on hybrid, a program on v2)")
    func plans() throws {
        #expect(try DeviceFencePlanner(config: JobboxConfig()).plan(DeviceRequest()) == nil)
        let (plain, _) = try JobCgroupPlanTests.plan("hybrid-debian12-vm")
        #expect(!plain.targets.contains { $0.controllers.contains(.devices) })

        var limits = CgroupLimits()
        limits.devices = .allowList([DeviceRule(.char, 1, 3)])
        let (hybrid, root) = try JobCgroupPlanTests.plan("hybrid-debian12-vm", limits: limits)
        let devices = try #require(hybrid.targets.first { $0.controllers == [.devices] })
        #expect(devices.hierarchy.mountPoint.dropFirst(root.count) == "/sys/fs/cgroup/devices")
        #expect(devices.writes.map(\.description) == ["devices.deny = a", "devices.allow = c 1:3 rwm"])
        #expect(hybrid.targets.allSatisfy { $0.deviceProgram == nil })

        let fixture = try FixtureCgroupV2(controllers: CgroupV2FixtureTests.allControllers)
        defer { fixture.remove() }
        let locator = fixture.locator(parent: .root)
        let plan = try JobCgroupPlan.make(locator: locator, job: try JobID("7.0"), limits: limits, controllers: nil)
        let unified = try #require(plan.targets.first)
        #expect(unified.deviceProgram == limits.devices && unified.writes.allSatisfy { $0.controller != .devices })
        _ = try JobCgroupCreator(filesystem: fixture, layout: locator.layout, membership: locator.membership, pid: CgroupV2FixtureTests.fakePID)
            .create(plan)
        #expect(fixture.deviceFences == ["/jobbox/job_7_0": .allowList([DeviceRule(.char, 1, 3)])], "on the job directory, above main")
        #expect(fixture.log.firstIndex(of: "attach device fence /jobbox/job_7_0")! < fixture.log.firstIndex { $0.contains("main/cgroup.procs") }!)
    }

    @Test("DEVICE_BACKEND bpf on a hybrid node puts the fence on the unified tree; v1 on a v2-only node is an error")
    func backends() throws {
        var limits = CgroupLimits()
        limits.devices = .denyList([DeviceRule(.char, 195, 0)])
        let (layout, membership) = try CgroupLayoutTests.fixture("hybrid-debian12-vm")
        let locator = JobCgroupLocator(layout: layout, parent: .current, base: "jobbox", membership: membership)
        let plan = try JobCgroupPlan.make(locator: locator, job: try JobID("1"), limits: limits, controllers: nil, deviceBackend: .bpf)
        #expect(!plan.targets.contains { $0.hierarchy.mountPoint.hasSuffix("/devices") })
        #expect(plan.targets.first { $0.version == .v2 }?.deviceProgram == limits.devices)

        let fixture = try FixtureCgroupV2(controllers: CgroupV2FixtureTests.allControllers)
        defer { fixture.remove() }
        #expect(throws: JobboxError.self) {
            try JobCgroupPlan.make(locator: fixture.locator(parent: .root), job: try JobID("1"), limits: limits, controllers: nil, deviceBackend: .v1)
        }
    }
}
