/// One `/proc/<pid>/stat` line, split into its fields.
///
/// The command name (field 2) may hold spaces and parentheses, so the fields are counted after its last `)`.
package struct ProcessStat: Sendable, Equatable {
    /// Fields 3 onwards (`fields[0]` is field 3, the state).
    package let fields: [Substring]

    /// The fields of `line`, nil when it has no command name.
    package init?(parsing line: String) {
        // On bytes, not Characters: grapheme breaking of the line cost more than the rest of the read.
        guard let close = line.utf8.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        fields = line[line.utf8.index(after: close)...].splitASCII(" ")
    }

    /// The stat line of `pid`, nil when there is no such process (or it cannot be read).
    package static func read(pid: Int32) -> ProcessStat? {
        (try? SmallFile.read("/proc/\(pid)/stat")).flatMap(ProcessStat.init(parsing:))
    }

    /// Field `number` of proc(5) (counted from 1), nil for fields 1 and 2 or past the end.
    package func field(_ number: Int) -> Substring? {
        let index = number - 3
        return fields.indices.contains(index) ? fields[index] : nil
    }

    /// Field 3: the state letter (`R`, `S`, `D`, `Z`, ...).
    package var state: String? { field(3).map(String.init) }

    /// Field 22: when the process started, in clock ticks after boot.
    package var startTime: UInt64? { field(22).flatMap { UInt64(String($0)) } }
}
