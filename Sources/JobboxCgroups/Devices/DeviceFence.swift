import JobboxCore

/// One device rule with numbers resolved: a type, a major and minor (nil matches every number) and the access.
package struct DeviceRule: Sendable, Equatable, CustomStringConvertible {
    /// Character or block device, or both.
    package enum Kind: Character, Sendable, Equatable {
        case char = "c"
        case block = "b"
        case any = "a"
    }

    package let kind: Kind
    package let major: UInt32?
    package let minor: UInt32?
    package let access: DeviceAccess

    /// Creates a rule.
    package init(_ kind: Kind, _ major: UInt32?, _ minor: UInt32?, _ access: DeviceAccess = .all) {
        self.kind = kind
        self.major = major
        self.minor = minor
        self.access = access
    }

    /// The v1 devices controller's form: `c 195:0 rw`, `c 136:* rwm`.
    package var description: String {
        "\(kind.rawValue) \(major.map(String.init) ?? "*"):\(minor.map(String.init) ?? "*") \(access)"
    }

    /// The same device with every access (a deny rule hides a device whatever is asked of it).
    var withAllAccess: DeviceRule { DeviceRule(kind, major, minor, .all) }
}

/// A job's device fence: the devices it may or may not open, everything decided and numbers resolved.
///
/// - `allowList`: every device is refused but the listed ones (`--device-policy closed|strict`, or `auto` with
///   `--device-allow`).
/// - `denyList`: every device is allowed but the listed ones (`--gpus` under `auto` without `--device-allow`:
///   the GPUs the job was not given, and HTCondor's own behaviour).
package enum DeviceFence: Sendable, Equatable {
    case allowList([DeviceRule])
    case denyList([DeviceRule])

    /// The option that asked for the fence, for messages.
    package static let source = "the device fence"

    /// The rules in order.
    package var rules: [DeviceRule] {
        switch self {
        case .allowList(let rules), .denyList(let rules): return rules
        }
    }

    /// What the v1 devices controller is told, in order: for an allow list `a` goes to `devices.deny` first (the
    /// cgroup starts from nothing), then each rule to `devices.allow`; a deny list adds each rule to
    /// `devices.deny` of the cgroup, which starts as its parent's.
    package var v1Writes: [CgroupLimitWrite] {
        switch self {
        case .allowList(let rules):
            return [CgroupLimitWrite(Self.source, .devices, file: "devices.deny", value: "a")]
                + rules.map { CgroupLimitWrite(Self.source, .devices, file: "devices.allow", value: $0.description) }
        case .denyList(let rules):
            return rules.map { CgroupLimitWrite(Self.source, .devices, file: "devices.deny", value: $0.withAllAccess.description) }
        }
    }
}
