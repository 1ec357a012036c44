import CLinux
import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A device node's type and numbers, as stat(2) gives them.
package struct DeviceNumber: Sendable, Equatable, Hashable {
    package let kind: DeviceRule.Kind
    package let major: UInt32
    package let minor: UInt32

    /// Creates a device number.
    package init(_ kind: DeviceRule.Kind, _ major: UInt32, _ minor: UInt32) {
        self.kind = kind
        self.major = major
        self.minor = minor
    }

    /// The rule for this device with `access`.
    package func rule(_ access: DeviceAccess = .all) -> DeviceRule { DeviceRule(kind, major, minor, access) }

    /// The number of a character or block device `info` describes; nil for anything else.
    init?(_ info: stat) {
        switch info.st_mode & S_IFMT {
        case S_IFCHR: kind = .char
        case S_IFBLK: kind = .block
        default: return nil
        }
        major = jb_dev_major(UInt64(info.st_rdev))
        minor = jb_dev_minor(UInt64(info.st_rdev))
    }
}

/// Resolving device paths and groups to numbers.
///
/// Trusted inputs: as root, a path is walked by `GuardedPath`: a symbolic link is followed only where it lies in a
/// directory only root can write (`/dev`'s own links), so a link a job or its user made (`--device-allow
/// /scratch/job/gpu` pointing at `/dev/sda`) is refused, never followed. `/proc/devices` is the kernel's.
package enum DeviceNodes {
    /// The number of the device node at `path`; `option` phrases errors.
    package static func number(at path: String, for option: String) throws(JobboxError) -> DeviceNumber {
        let operation = "cannot use device \(option)"
        let fd = try GuardedPath.openNode(path, for: operation)
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw JobboxError.lastErrno(operation, path) }
        guard let number = DeviceNumber(info) else {
            throw JobboxError.invalid(operation, path, "it is not a character or block device")
        }
        return number
    }

    /// The rules for `spec`: its path's device, or every device of a `char-NAME`/`block-NAME` group in
    /// `/proc/devices` (text given for tests).
    package static func rules(for spec: DeviceAllowSpec, option: String, procDevices: String? = nil) throws(JobboxError) -> [DeviceRule] {
        for (prefix, kind) in [("char-", DeviceRule.Kind.char), ("block-", .block)] where spec.device.hasPrefix(prefix) {
            let name = String(spec.device.dropFirst(prefix.count))
            let text: String
            if let procDevices {
                text = procDevices
            } else {
                do {
                    text = try SmallFile.read("/proc/devices")
                } catch {
                    throw JobboxError.system("cannot read", "/proc/devices", error)
                }
            }
            let majors = groupMajors(text, kind: kind, name: name)
            guard !majors.isEmpty else {
                throw JobboxError.invalid("cannot use device \(option)", spec.device, "/proc/devices has no \(prefix.dropLast()) device group '\(name)'")
            }
            return majors.map { DeviceRule(kind, $0, nil, spec.access) }
        }
        return [try number(at: spec.device, for: option).rule(spec.access)]
    }

    /// The majors of group `name` in `/proc/devices` text (`Character devices:` then `136 pts` lines).
    package static func groupMajors(_ text: String, kind: DeviceRule.Kind, name: String) -> [UInt32] {
        var section: DeviceRule.Kind?
        var majors: [UInt32] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("Character devices") {
                section = .char
                continue
            }
            if line.hasPrefix("Block devices") {
                section = .block
                continue
            }
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard section == kind, fields.count == 2, fields[1] == name, let major = UInt32(fields[0]) else { continue }
            majors.append(major)
        }
        return majors
    }

    /// The standard pseudo devices `closed` allows, as systemd's `DevicePolicy=closed` does: `/dev/null`, `zero`,
    /// `full`, `random`, `urandom`, `tty`, `ptmx` and every pseudo terminal. Their numbers are fixed by the kernel
    /// (Documentation/admin-guide/devices.txt), so the job's view of `/dev` plays no part; the pseudo terminals'
    /// majors come from `/proc/devices` (`pts`, 136 and up).
    package static func pseudoDevices(procDevices: String? = nil) -> [DeviceRule] {
        var rules = [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)].map { DeviceRule(.char, UInt32($0.0), UInt32($0.1)) }
        let text = procDevices ?? ((try? SmallFile.read("/proc/devices")) ?? "")
        var pts = groupMajors(text, kind: .char, name: "pts")
        if pts.isEmpty { pts = [136] }
        rules += pts.map { DeviceRule(.char, $0, nil, [.read, .write, .mknod]) }
        return rules
    }
}
