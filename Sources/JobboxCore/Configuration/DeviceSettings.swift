/// systemd's `DevicePolicy=`: what a job may open besides what is allowed explicitly.
package enum DevicePolicy: String, Sendable, CaseIterable {
    /// No fence unless something is allowed explicitly (then as `closed`); `--gpus` alone hides the other GPUs.
    case auto
    /// The standard pseudo devices (`/dev/null`, `zero`, `full`, `random`, `urandom`, `tty`, `ptmx`, `/dev/pts/*`)
    /// and what is allowed explicitly.
    case closed
    /// Only what is allowed explicitly.
    case strict

    /// The accepted values, for messages.
    package static let acceptedValues = "auto, closed or strict"
}

/// Where a device fence is enforced.
package enum DeviceBackendChoice: String, Sendable, CaseIterable {
    /// The v1 devices controller when it is mounted, else a BPF program on the unified hierarchy.
    case auto
    /// The v1 devices controller (`devices.deny`, `devices.allow`).
    case v1
    /// A `BPF_PROG_TYPE_CGROUP_DEVICE` program on the job's unified cgroup (v2, or hybrid nodes).
    case bpf
}

/// The access a device rule grants: read, write, mknod (`rwm`).
package struct DeviceAccess: OptionSet, Sendable, Hashable, CustomStringConvertible {
    package let rawValue: UInt32
    package init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The kernel's BPF_DEVCG_ACC_* bits.
    package static let mknod = DeviceAccess(rawValue: 1)
    package static let read = DeviceAccess(rawValue: 2)
    package static let write = DeviceAccess(rawValue: 4)
    /// `rwm`.
    package static let all: DeviceAccess = [.read, .write, .mknod]

    /// Parses a non-empty combination of `r`, `w`, `m`; nil for anything else.
    package init?(parsing text: Substring) {
        var access: DeviceAccess = []
        for character in text {
            switch character {
            case "r": access.insert(.read)
            case "w": access.insert(.write)
            case "m": access.insert(.mknod)
            default: return nil
            }
        }
        guard !access.isEmpty else { return nil }
        self = access
    }

    /// `rwm`, `rw`, `r` (always in that order).
    package var description: String {
        (contains(.read) ? "r" : "") + (contains(.write) ? "w" : "") + (contains(.mknod) ? "m" : "")
    }
}

/// One `--device-allow` or `DEVICE_ALLOW` entry as written: an absolute device path (or `char-NAME`,
/// `block-NAME` from `/proc/devices`) and the access, `rwm` when not given.
package struct DeviceAllowSpec: Sendable, Equatable {
    /// The path or group as written.
    package let device: String
    /// The access granted.
    package let access: DeviceAccess

    /// The accepted forms, for messages.
    package static let acceptedForms = "an absolute device path or char-NAME or block-NAME, optionally followed by :r, :w, :m or a mix such as :rw"

    /// Parses `PATH`, `PATH:rw`, `char-pts:rw`; nil when malformed.
    package init?(parsing text: String) {
        var device = Substring(text)
        var access = DeviceAccess.all
        if let colon = text.lastIndex(of: ":"), let parsed = DeviceAccess(parsing: text[text.index(after: colon)...]) {
            device = text[..<colon]
            access = parsed
        }
        let group = device.hasPrefix("char-") ? device.dropFirst(5) : device.hasPrefix("block-") ? device.dropFirst(6) : nil
        if let group {
            guard !group.isEmpty, !group.contains("/"), !group.contains("\n") else { return nil }
        } else {
            guard JobboxConfig.isCleanAbsolutePath(String(device)) else { return nil }
        }
        self.device = String(device)
        self.access = access
    }

    /// Creates an entry.
    package init(device: String, access: DeviceAccess) {
        self.device = device
        self.access = access
    }

    /// Parses a comma- or space-separated list; nil when any entry is malformed.
    package static func parseList(_ text: String) -> [DeviceAllowSpec]? {
        var result: [DeviceAllowSpec] = []
        for item in text.split(whereSeparator: { $0 == "," || $0 == " " }) {
            guard let spec = DeviceAllowSpec(parsing: String(item)) else { return nil }
            result.append(spec)
        }
        return result
    }
}
