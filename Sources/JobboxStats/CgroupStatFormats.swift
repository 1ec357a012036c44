import JobboxCgroups
import JobboxCore

/// The figures of a flat-keyed cgroup file: `key value` lines (`memory.stat`, `cpu.stat`, `cpuacct.stat`,
/// `memory.events`, `memory.oom_control`), in the file's order.
package struct FlatKeyedStat: Sendable, Equatable {
    /// The keys and their values; a line whose value is not a non-negative integer is left out.
    package var entries: [(key: String, value: UInt64)]

    /// The value of `key`, or nil when the file does not have it.
    package func value(_ key: String) -> UInt64? {
        entries.first { $0.key == key }?.value
    }

    package static func == (lhs: FlatKeyedStat, rhs: FlatKeyedStat) -> Bool {
        lhs.entries.count == rhs.entries.count && zip(lhs.entries, rhs.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

/// One device's line of v2 `io.stat`: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`.
package struct DeviceStat: Sendable, Equatable {
    /// `major:minor`.
    package var device: String
    /// The `key=value` fields in the line's order (integers only; anything else is left out).
    package var fields: [(key: String, value: UInt64)]

    /// The value of `key` on this device.
    package func value(_ key: String) -> UInt64? {
        fields.first { $0.key == key }?.value
    }

    package static func == (lhs: DeviceStat, rhs: DeviceStat) -> Bool {
        lhs.device == rhs.device && lhs.fields.count == rhs.fields.count
            && zip(lhs.fields, rhs.fields).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

/// A v1 blkio statistic (`blkio.throttle.io_service_bytes`, `blkio.throttle.io_serviced` and their
/// `_recursive` forms, and CFQ's `blkio.io_serviced`): `8:0 Read 4096` lines per device and operation, then
/// `Total N` over every device.
package struct BlkioStat: Sendable, Equatable {
    /// One `device operation value` line.
    package struct Line: Sendable, Equatable {
        /// `major:minor`.
        package var device: String
        /// `Read`, `Write`, `Sync`, `Async`, `Discard` or `Total`.
        package var operation: String
        /// The count (bytes or requests).
        package var value: UInt64
    }

    /// The per-device lines in the file's order.
    package var lines: [Line]
    /// The last line's grand total, when present.
    package var total: UInt64?

    /// The sum of `operation` over every device.
    package func sum(_ operation: String) -> UInt64 {
        lines.reduce(0) { $1.operation == operation ? $0 &+ $1.value : $0 }
    }

    /// The devices that have lines.
    package var devices: [String] {
        var seen: [String] = []
        for line in lines where !seen.contains(line.device) { seen.append(line.device) }
        return seen
    }

    /// Adds `other`'s figures, device by device and operation by operation (for v1 files that count one cgroup
    /// only, summed over a subtree).
    package mutating func add(_ other: BlkioStat) {
        for line in other.lines {
            if let index = lines.firstIndex(where: { $0.device == line.device && $0.operation == line.operation }) {
                lines[index].value &+= line.value
            } else {
                lines.append(line)
            }
        }
        if let more = other.total { total = (total ?? 0) &+ more }
    }
}

/// Pressure stall information of one resource (`cpu.pressure`, `memory.pressure`, `io.pressure` on v2).
package struct PressureStat: Sendable, Equatable {
    /// One line: the share of wall time in which some (or all) tasks stalled.
    package struct Line: Sendable, Equatable {
        /// Percent of the last 10 seconds.
        package var avg10: Double
        /// Percent of the last 60 seconds.
        package var avg60: Double
        /// Percent of the last 300 seconds.
        package var avg300: Double
        /// The total stall time in microseconds.
        package var totalMicroseconds: UInt64
    }

    /// `some`: at least one task stalled.
    package var some: Line?
    /// `full`: every non-idle task stalled at once (absent from `cpu.pressure` before Linux 5.13).
    package var full: Line?
}

/// Parsers for the text of cgroupfs stat files, working on the bytes in place (no Foundation, no copies of
/// the file).
package enum CgroupStatFormat {
    /// `key value` lines.
    package static func flatKeyed(_ bytes: UnsafeRawBufferPointer) -> FlatKeyedStat {
        var entries: [(key: String, value: UInt64)] = []
        forEachLine(bytes) { line in
            let fields = splitFields(line)
            guard fields.count == 2, let value = number(fields[1]) else { return }
            entries.append((text(fields[0]), value))
        }
        return FlatKeyedStat(entries: entries)
    }

    /// `device key=value ...` lines (v2 `io.stat`).
    package static func nestedKeyed(_ bytes: UnsafeRawBufferPointer) -> [DeviceStat] {
        var devices: [DeviceStat] = []
        forEachLine(bytes) { line in
            let fields = splitFields(line)
            guard let first = fields.first else { return }
            var stat = DeviceStat(device: text(first), fields: [])
            for index in 1..<fields.count {
                let field = fields[index]
                guard let equals = field.firstIndex(of: UInt8(ascii: "=")), let value = number(field[(equals + 1)...]) else { continue }
                stat.fields.append((text(field[..<equals]), value))
            }
            devices.append(stat)
        }
        return devices
    }

    /// v1 blkio lines.
    package static func blkio(_ bytes: UnsafeRawBufferPointer) -> BlkioStat {
        var stat = BlkioStat(lines: [], total: nil)
        forEachLine(bytes) { line in
            let fields = splitFields(line)
            if fields.count == 3, let value = number(fields[2]) {
                stat.lines.append(BlkioStat.Line(device: text(fields[0]), operation: text(fields[1]), value: value))
            } else if fields.count == 2, text(fields[0]) == "Total", let value = number(fields[1]) {
                stat.total = value
            }
        }
        return stat
    }

    /// PSI lines: `some avg10=0.12 avg60=0.05 avg300=0.01 total=123456`.
    package static func pressure(_ bytes: UnsafeRawBufferPointer) -> PressureStat {
        var stat = PressureStat()
        forEachLine(bytes) { line in
            let fields = splitFields(line)
            guard let kind = fields.first else { return }
            // Named variables rather than a dictionary: the first [String: _] of a process costs a conformance scan.
            var avg10: Double?
            var avg60: Double?
            var avg300: Double?
            var total: UInt64?
            for index in 1..<fields.count {
                let field = fields[index]
                guard let equals = field.firstIndex(of: UInt8(ascii: "=")) else { continue }
                let value = field[(equals + 1)...]
                switch text(field[..<equals]) {
                case "total": total = number(value)
                case "avg10": avg10 = Double(text(value))
                case "avg60": avg60 = Double(text(value))
                case "avg300": avg300 = Double(text(value))
                default: break
                }
            }
            guard let avg10, let avg60, let avg300, let total else { return }
            let parsed = PressureStat.Line(avg10: avg10, avg60: avg60, avg300: avg300, totalMicroseconds: total)
            switch text(kind) {
            case "some": stat.some = parsed
            case "full": stat.full = parsed
            default: break
            }
        }
        return stat
    }

    /// A file holding one number (`memory.peak`, `memory.max_usage_in_bytes`, `memory.swap.current`); nil for
    /// `max` or anything that is not a non-negative integer.
    package static func singleNumber(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        var result: UInt64?
        var seen = false
        forEachLine(bytes) { line in
            guard !seen else { return }
            seen = true
            let fields = splitFields(line)
            if fields.count == 1 { result = number(fields[0]) }
        }
        return result
    }

    /// The number of non-empty lines (`cgroup.procs`: one pid per line).
    package static func lineCount(_ bytes: UnsafeRawBufferPointer) -> Int {
        var count = 0
        forEachLine(bytes) { line in
            if !splitFields(line).isEmpty { count += 1 }
        }
        return count
    }

    // MARK: bytes

    static func forEachLine(_ bytes: UnsafeRawBufferPointer, _ body: (Slice<UnsafeRawBufferPointer>) -> Void) {
        var start = bytes.startIndex
        while start < bytes.endIndex {
            let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
            body(bytes[start..<end])
            start = end + 1
        }
    }

    static func splitFields(_ line: Slice<UnsafeRawBufferPointer>) -> Fields {
        var fields = Fields(line: line)
        var start: Int?
        // An index loop, not `line.indices`: the runtime would build that generic type at its first use.
        var index = line.startIndex
        while index < line.endIndex {
            defer { index += 1 }
            let byte = line[index]
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") {
                if let begun = start {
                    fields.bounds += [begun, index]
                    start = nil
                }
            } else if start == nil {
                start = index
            }
        }
        if let begun = start { fields.bounds += [begun, line.endIndex] }
        return fields
    }

    /// The fields of one line, as bounds into it: an array of slices would have the runtime build
    /// `Slice<UnsafeRawBufferPointer>`'s metadata and check its conformances (a scan of the binary) at first use.
    struct Fields {
        let line: Slice<UnsafeRawBufferPointer>
        /// Start and end of each field, in turn.
        var bounds: [Int] = []

        init(line: Slice<UnsafeRawBufferPointer>) { self.line = line }

        var count: Int { bounds.count / 2 }
        var isEmpty: Bool { bounds.isEmpty }
        var first: Slice<UnsafeRawBufferPointer>? { isEmpty ? nil : self[0] }
        subscript(index: Int) -> Slice<UnsafeRawBufferPointer> { line[bounds[2 * index]..<bounds[2 * index + 1]] }
    }

    /// A non-negative decimal that fits in 64 bits, or nil.
    static func number(_ digits: Slice<UnsafeRawBufferPointer>) -> UInt64? {
        ASCIIDecimal.value(UnsafeRawBufferPointer(rebasing: digits))
    }

    static func text(_ bytes: Slice<UnsafeRawBufferPointer>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
