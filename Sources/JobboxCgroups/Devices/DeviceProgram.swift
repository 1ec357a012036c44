import CLinux
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A device fence on the unified hierarchy: a `BPF_PROG_TYPE_CGROUP_DEVICE` program assembled by the C shim
/// (`jb_devices.c`), loaded through the loader netacct's programs share (`jb_bpf_prog_load`; no libbpf) and
/// attached to the job's cgroup with `BPF_F_ALLOW_MULTI`. The attachment holds the program; it goes when the
/// cgroup is removed.
package enum DeviceProgram {
    /// Attaches `fence` to the cgroup directory `directory`.
    package static func attach(_ fence: DeviceFence, to directory: String) throws(JobboxError) {
        let operation = "cannot attach the device fence to"
        let rules = fence.rules
        guard rules.count <= Int(JB_DEVICE_MAX_RULES) else {
            throw JobboxError.invalid(operation, directory, "\(rules.count) device rules are more than the \(JB_DEVICE_MAX_RULES) one program takes")
        }
        let verdict: UInt32
        switch fence {
        case .allowList: verdict = 0
        case .denyList: verdict = 1
        }
        let flat = rules.map { rule in
            jb_device_rule(
                type: rule.kind == .char ? UInt32(JB_DEVICE_CHAR) : rule.kind == .block ? UInt32(JB_DEVICE_BLOCK) : 0,
                major: rule.major ?? UInt32.max, minor: rule.minor ?? UInt32.max,
                access: verdict == 0 ? rule.access.rawValue : DeviceAccess.all.rawValue, verdict: verdict == 0 ? 1 : 0)
        }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw JobboxError.lastErrno(operation, directory) }
        defer { close(fd) }
        var complaint = [CChar](repeating: 0, count: Int(JB_BPF_COMPLAINT_SIZE))
        let result = flat.withUnsafeBufferPointer { buffer in
            jb_device_fence_attach(fd, buffer.baseAddress, buffer.count, verdict, &complaint, complaint.count)
        }
        guard result == 0 else {
            let error = Errno.last
            let verifier = String(decoding: complaint.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw JobboxError(operation, directory, reason: reason(error, verifier: verifier), errno: error)
        }
    }

    /// Why the kernel took no fence: `error` with the verifier's last complaint when it refused the program
    /// (`verifier`, empty when it said nothing), else with what EPERM and EACCES mean here. The complaint goes first
    /// because the verifier refuses most programs with EACCES too.
    package static func reason(_ error: Errno, verifier: String) -> String {
        if !verifier.isEmpty { return "\(error.description) (verifier: \(verifier))" }
        if error == .permissionDenied || error == .notPermitted {
            return error.description + " (loading a device program needs root, and a program attached above without BPF_F_ALLOW_MULTI forbids one here)"
        }
        return error.description
    }

    /// How many device programs are attached directly to `directory` (nil when it cannot be asked).
    package static func count(at directory: String) -> Int? {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let count = jb_device_fence_count(fd)
        return count < 0 ? nil : Int(count)
    }
}
