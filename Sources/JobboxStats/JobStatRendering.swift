import JobboxCgroups
import JobboxCore

/// jobstat's output formats.
package enum JobStatFormat: String, Sendable, CaseIterable {
    /// Long-form ClassAd lines, ads separated by a blank line.
    case classad
    /// One JSON document per sample: an object, or with `--all` an array of objects.
    case json
    /// Prometheus text exposition format 0.0.4.
    case prometheus
}

/// One cgroup's sample with what names it in the output.
package struct JobStatEntry: Sendable {
    /// Prometheus labels of its series (`job`, or `cgroup` when no job names it).
    package var labels: [(name: String, value: String)]
    /// An attribute that names it in ClassAd and JSON output (`JobCgroup` with `--all`), or nil.
    package var identity: (name: String, value: String)?
    /// The figures.
    package var stats: CgroupStats

    /// Creates an entry.
    package init(labels: [(name: String, value: String)], identity: (name: String, value: String)? = nil, stats: CgroupStats) {
        self.labels = labels
        self.identity = identity
        self.stats = stats
    }
}

/// Turns samples into text: ClassAds through `ClassAdWriter`, JSON and Prometheus with the small writers below.
package enum JobStatRenderer {
    /// The ad of one entry: its identity, every figure the kernel gave, then (with `--raw`) every raw key.
    package static func classAd(_ entry: JobStatEntry) -> ClassAd {
        var ad = ClassAd()
        if let identity = entry.identity { ad.set(identity.name, .string(identity.value)) }
        for attribute in JobStatAttributes.all {
            if let value = attribute.classAdValue(entry.stats) { ad.set(attribute.name, value) }
        }
        for raw in entry.stats.raw where raw.value <= UInt64(Int64.max) {
            ad.set(raw.attribute, .integer(Int64(raw.value)))
        }
        return ad
    }

    /// Renders `entries` in `format`. `asList` (`--all`) makes JSON an array even for one entry.
    package static func render(_ entries: [JobStatEntry], format: JobStatFormat, asList: Bool) throws(JobboxError) -> String {
        switch format {
        case .classad:
            do {
                return try ClassAdWriter.render(entries.map(classAd))
            } catch {
                throw JobboxError.invalid("cannot write ClassAd attribute", error.attribute, error.reason)
            }
        case .json:
            let objects = entries.map { JSONText.object(classAd($0)) }
            if asList { return "[" + objects.joined(separator: ",") + "]\n" }
            return (objects.first ?? "{}") + "\n"
        case .prometheus:
            return PrometheusText.render(entries)
        }
    }
}

/// A JSON writer for flat objects of numbers and strings, without Foundation.
package enum JSONText {
    /// `{"Name":value,...}` in the ad's order; integers stay integers, reals keep a `.` or an exponent.
    package static func object(_ ad: ClassAd) -> String {
        var text = "{"
        for (index, attribute) in ad.attributes.enumerated() {
            if index > 0 { text += "," }
            text += string(attribute.name) + ":" + value(attribute.value)
        }
        return text + "}"
    }

    /// A JSON value; NaN and infinities, which JSON cannot hold, are `null`.
    package static func value(_ value: ClassAdValue) -> String {
        switch value {
        case .integer(let number): return String(number)
        case .real(let number): return number.isFinite ? realText(number) : "null"
        case .boolean(let flag): return flag ? "true" : "false"
        case .string(let text), .expression(let text): return string(text)
        }
    }

    /// Swift's shortest round-trip form (`1.0`, `0.25`, `1e-05`), which is valid JSON.
    static func realText(_ number: Double) -> String {
        let text = number.description
        return text.contains(".") || text.contains("e") ? text : text + ".0"
    }

    /// A JSON string literal.
    package static func string(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}

/// The Prometheus text exposition format: per metric a HELP and a TYPE line, then one series per entry.
package enum PrometheusText {
    /// Every metric that at least one entry has, in `JobStatAttributes.all` order, then the raw figures.
    package static func render(_ entries: [JobStatEntry]) -> String {
        var text = ""
        for attribute in JobStatAttributes.all {
            guard let metric = attribute.metric else { continue }
            let series = entries.compactMap { entry in attribute.metricValue(entry.stats).map { (entry.labels, $0) } }
            guard !series.isEmpty else { continue }
            text += "# HELP \(metric) \(escapeHelp(attribute.help))\n# TYPE \(metric) \(attribute.metricType.rawValue)\n"
            for (labels, value) in series {
                text += metric + labelSet(labels) + " " + number(value) + "\n"
            }
        }
        let raw = entries.flatMap { entry in entry.stats.raw.map { (entry.labels, $0) } }
        if !raw.isEmpty {
            let metric = JobStatAttributes.rawMetric
            text += "# HELP \(metric) Every key of the cgroup's stat files as the kernel counts it (--raw).\n# TYPE \(metric) untyped\n"
            for (labels, figure) in raw {
                text += metric + labelSet(labels + [("file", figure.file), ("key", figure.key)]) + " " + String(figure.value) + "\n"
            }
        }
        return text
    }

    static func labelSet(_ labels: [(name: String, value: String)]) -> String {
        guard !labels.isEmpty else { return "" }
        return "{" + labels.map { "\($0.name)=\"\(escapeLabel($0.value))\"" }.joined(separator: ",") + "}"
    }

    static func number(_ value: ClassAdValue) -> String {
        switch value {
        case .integer(let number): return String(number)
        case .real(let number):
            if number.isNaN { return "NaN" }
            if number.isInfinite { return number > 0 ? "+Inf" : "-Inf" }
            return number.description
        case .boolean(let flag): return flag ? "1" : "0"
        case .string, .expression: return "NaN"
        }
    }

    /// Label values escape backslash, double quote and newline.
    static func escapeLabel(_ text: String) -> String {
        var result = ""
        for character in text {
            switch character {
            case "\\": result += "\\\\"
            case "\"": result += "\\\""
            case "\n": result += "\\n"
            default: result.append(character)
            }
        }
        return result
    }

    /// HELP text escapes backslash and newline.
    static func escapeHelp(_ text: String) -> String {
        var result = ""
        for character in text {
            switch character {
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            default: result.append(character)
            }
        }
        return result
    }
}
