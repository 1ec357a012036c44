#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// `/proc/<pid>/status`: the kernel's own `Name: value` lines about a process, which the process cannot change.
package struct ProcessStatus: Sendable, Equatable {
    /// The file's text.
    package let text: String

    /// A status from its text.
    package init(text: String) { self.text = text }

    /// The status of `pid`, nil when there is no such process (or it cannot be read).
    package static func read(pid: Int32) -> ProcessStatus? {
        (try? SmallFile.read("/proc/\(pid)/status")).map(ProcessStatus.init(text:))
    }

    /// The fields of the line `name:` (split at tabs and spaces), nil when the kernel writes no such line.
    package func fields(_ name: String) -> [Substring]? {
        let prefix = name + ":"
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
        return line.dropFirst(prefix.count).split(whereSeparator: { $0 == " " || $0 == "\t" })
    }

    /// The effective uid: the second of the `Uid:` line's real, effective, saved and file-system uids.
    package var effectiveUID: uid_t? {
        guard let ids = fields("Uid"), ids.count >= 2 else { return nil }
        return uid_t(String(ids[1]))
    }
}
