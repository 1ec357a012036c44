/// One line of `/proc/<pid>/mountinfo` (proc(5)).
package struct MountInfoEntry: Sendable, Equatable {
    /// The mount's id.
    package let mountID: Int
    /// The parent mount's id.
    package let parentID: Int
    /// `major:minor` of the filesystem's device.
    package let device: String
    /// The path inside the filesystem that is mounted here (not `/` for bind mounts and cgroup namespaces).
    package let root: String
    /// Where it is mounted, relative to the reading process's root.
    package let mountPoint: String
    /// Per-mount options (`rw,nosuid,...`).
    package let mountOptions: [String]
    /// Optional fields such as `shared:8` or `master:1`.
    package let optionalFields: [String]
    /// The filesystem type (`cgroup`, `cgroup2`, `tmpfs`, ...).
    package let fsType: String
    /// The mount source.
    package let source: String
    /// Per-superblock options (for cgroup v1, the controllers and `name=`).
    package let superOptions: [String]
}

/// Parser for `/proc/<pid>/mountinfo`.
package enum MountInfo {
    /// Parses the whole file; malformed lines are skipped.
    package static func parse(_ text: String) -> [MountInfoEntry] {
        // Split on the bytes: the text is ASCII but for escaped paths, and Character-wise splitting cost jobstat a
        // quarter of its run.
        text.splitASCII("\n").compactMap { parseLine($0) }
    }

    /// Reads and parses `/proc/<pid>/mountinfo` (`self` by default).
    package static func read(pid: String = "self") throws(JobboxError) -> [MountInfoEntry] {
        let path = "/proc/\(pid)/mountinfo"
        do {
            return parse(try SmallFile.read(path))
        } catch {
            throw JobboxError.system("cannot read", path, error)
        }
    }

    static func parseLine(_ line: Substring) -> MountInfoEntry? {
        let fields = line.splitASCII(" ")
        guard let separator = fields.firstIndex(of: "-"), separator >= 6, fields.count >= separator + 4,
            let mountID = Int(fields[0]), let parentID = Int(fields[1])
        else { return nil }
        return MountInfoEntry(
            mountID: mountID, parentID: parentID, device: String(fields[2]),
            root: unescape(fields[3]), mountPoint: unescape(fields[4]),
            mountOptions: fields[5].splitASCII(",").map(String.init),
            optionalFields: fields[6..<separator].map(String.init),
            fsType: String(fields[separator + 1]), source: unescape(fields[separator + 2]),
            superOptions: fields[separator + 3].splitASCII(",").map(String.init))
    }

    /// Undoes the kernel's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
    static func unescape(_ field: Substring) -> String {
        guard field.utf8.contains(UInt8(ascii: "\\")) else { return String(field) }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "\\"), index + 4 <= utf8.count,
                let value = UInt8(String(decoding: utf8[(index + 1)..<(index + 4)], as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
