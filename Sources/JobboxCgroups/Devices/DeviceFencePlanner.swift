import JobboxCore

/// Decides a job's device fence from what was asked (`DeviceRequest`), the configuration (`DEVICE_POLICY`,
/// `DEVICE_ALLOW`, `GPU_DEVICE_DIR`) and the device nodes found, with the meaning of systemd's
/// `DevicePolicy=`/`DeviceAllow=`:
///
/// - `strict`: only the allowed devices; `closed`: those and the standard pseudo devices; `auto`: no fence unless
///   something is allowed, then as `closed`.
/// - `--gpus`: the listed GPUs' nodes and their vendors' control nodes join the allowed devices; under `auto`
///   without `--device-allow` the fence is a deny list instead: every device stays open but the GPUs (and control
///   nodes of vendors) the job was not given, which is what HTCondor's `STARTER_HIDE_GPU_DEVICES` does for NVIDIA.
package struct DeviceFencePlanner {
    let config: JobboxConfig
    let names: GPUNames
    let procDevices: String?

    /// Creates a planner; `names` and `procDevices` are replaced by tests.
    package init(config: JobboxConfig, names: GPUNames = GPUNames(), procDevices: String? = nil) {
        self.config = config
        self.names = names
        self.procDevices = procDevices
    }

    /// The fence, or nil when the request needs none.
    package func plan(_ request: DeviceRequest) throws(JobboxError) -> DeviceFence? {
        let policy = request.policy ?? config.devicePolicy
        var allowed: [DeviceRule] = []
        for spec in config.deviceAllow {
            allowed += try DeviceNodes.rules(for: spec, option: "in DEVICE_ALLOW", procDevices: procDevices)
        }
        for spec in request.allow {
            allowed += try DeviceNodes.rules(for: spec, option: "--device-allow", procDevices: procDevices)
        }
        var hidden: [DeviceRule] = []
        if let gpus = request.gpus {
            let split = try gpuRules(gpus, source: request.gpuSource)
            hidden = split.denied
            if policy == .auto && allowed.isEmpty {
                return hidden.isEmpty ? nil : .denyList(hidden)
            }
            allowed += split.allowed
        } else if policy == .auto && allowed.isEmpty {
            return nil
        }
        let base = policy == .strict ? [] : DeviceNodes.pseudoDevices(procDevices: procDevices)
        return .allowList(Self.unique(base + allowed))
    }

    /// The rules for the GPUs named in `gpus`: their nodes and control nodes, and the nodes of every other GPU.
    func gpuRules(_ gpus: [String], source: String) throws(JobboxError) -> (allowed: [DeviceRule], denied: [DeviceRule]) {
        let directory = config.gpuDeviceDir
        let devices = try GPUDevices.scan(directory)
        var assigned: [GPUDevices.Node] = []
        for name in gpus {
            assigned.append(try names.node(name, in: devices, directory: directory, source: source))
        }
        let vendors = Set(assigned.map(\.vendor))
        let controls = devices.controls.filter { vendors.contains($0.vendor) }
        let others = devices.gpus.filter { node in !assigned.contains(node) } + devices.controls.filter { !vendors.contains($0.vendor) }
        return (Self.unique((assigned + controls).map { $0.number.rule() }), Self.unique(others.map { $0.number.rule() }))
    }

    /// `rules` without repeats, in first-seen order.
    static func unique(_ rules: [DeviceRule]) -> [DeviceRule] {
        var result: [DeviceRule] = []
        for rule in rules where !result.contains(rule) { result.append(rule) }
        return result
    }
}
