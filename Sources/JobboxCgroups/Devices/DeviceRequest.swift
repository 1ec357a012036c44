import JobboxCore

/// What cg-exec was asked to fence, checked for syntax but not yet resolved to device numbers.
package struct DeviceRequest: Sendable, Equatable {
    /// `--device-policy`, nil for the configuration's `DEVICE_POLICY`.
    package var policy: DevicePolicy?
    /// `--device-allow` entries in order.
    package var allow: [DeviceAllowSpec] = []
    /// `--gpus` (or `AssignedGPUs` with `--from-job-ad`): the GPUs the job may use; nil when not given, empty for
    /// none.
    package var gpus: [String]?
    /// Where `gpus` came from, for messages (`--gpus` or the job ad's path).
    package var gpuSource = "--gpus"

    /// Nothing asked.
    package init() {}

    /// Parses the options as typed: a policy name, `PATH[:rwm]` entries, a GPU list.
    package init(policy: String?, allow: [String], gpus: String?) throws(JobboxError) {
        if let policy {
            guard let parsed = DevicePolicy(rawValue: policy.lowercased()) else {
                throw JobboxError.invalid("invalid --device-policy", "'\(policy)'", "it is not \(DevicePolicy.acceptedValues)")
            }
            self.policy = parsed
        }
        for entry in allow {
            guard let spec = DeviceAllowSpec(parsing: entry) else {
                throw JobboxError.invalid("invalid --device-allow", "'\(entry)'", "it is not \(DeviceAllowSpec.acceptedForms)")
            }
            self.allow.append(spec)
        }
        self.gpus = gpus.map(Self.splitGPUList)
    }

    /// Whether no device option was given.
    package var isEmpty: Bool { self == DeviceRequest() }

    /// `CUDA0,CUDA1`, `GPU-c4a646d7, GPU-9f2e1a03` (HTCondor's form, comma and space separated).
    package static func splitGPUList(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }).map(String.init)
    }

    /// Takes the GPUs from the job ad's `AssignedGPUs` when `--gpus` was not given; a job ad without it means
    /// no GPUs when `hideUnassigned` (HTCondor's `STARTER_HIDE_GPU_DEVICES`), else no GPU fence.
    package mutating func fill(fromJobAd ad: ClassAd, path: String, hideUnassigned: Bool) throws(JobboxError) {
        guard gpus == nil else { return }
        switch ad["AssignedGPUs"] {
        case .string(let list)?:
            gpus = Self.splitGPUList(list)
            gpuSource = "AssignedGPUs in \(path)"
        case nil:
            if hideUnassigned {
                gpus = []
                gpuSource = "\(path) (no AssignedGPUs)"
            }
        case .some:
            throw JobboxError.invalid("cannot use AssignedGPUs from", path, "it is not a string such as \"GPU-c4a646d7,GPU-9f2e1a03\" (pass --gpus instead)")
        }
    }
}
