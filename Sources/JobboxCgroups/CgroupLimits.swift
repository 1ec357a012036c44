import JobboxCore

/// A number of CPUs with at most three decimals (`2`, `1.5`, `0.25`), kept in thousandths so that every
/// conversion to shares, weight and quota is exact integer arithmetic.
package struct CPUAmount: Sendable, Equatable, CustomStringConvertible {
    /// Thousandths of a CPU.
    package let milli: UInt64

    /// The accepted forms, for error messages.
    package static let acceptedForms = "a number of CPUs above 0 with at most three decimals, such as 2 or 1.5"

    /// The most CPUs a value may name (far above any node, low enough that no conversion overflows).
    static let maximumMilli: UInt64 = 1_000_000 * 1000

    /// Creates an amount from thousandths of a CPU.
    package init(milli: UInt64) {
        self.milli = milli
    }

    /// Parses `2`, `1.5`, `0.25`; nil when malformed, zero, or absurdly large.
    package init?(parsing text: String) {
        let trimmed = text.trimmingASCIISpaces()
        let parts = trimmed.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.count <= 7, whole.allSatisfy(\.isASCIIDigit) else { return nil }
        var fraction = parts.count == 2 ? parts[1] : ""
        guard parts.count == 1 || !fraction.isEmpty, fraction.count <= 3, fraction.allSatisfy(\.isASCIIDigit) else { return nil }
        while fraction.count < 3 { fraction += "0" }
        guard let wholeValue = UInt64(whole), let fractionValue = UInt64(fraction) else { return nil }
        let milli = wholeValue * 1000 + fractionValue
        guard milli > 0, milli <= CPUAmount.maximumMilli else { return nil }
        self.milli = milli
    }

    /// Parses `text` or throws an error naming `option` and the accepted forms.
    package static func parse(_ text: String, for option: String) throws(JobboxError) -> CPUAmount {
        guard let amount = CPUAmount(parsing: text) else {
            throw JobboxError.invalid("invalid number of CPUs for", option, "'\(text)' is not \(acceptedForms)")
        }
        return amount
    }

    /// `2`, `1.5`, `0.125`.
    package var description: String {
        let whole = milli / 1000
        var fraction = String(milli % 1000)
        if fraction == "0" { return String(whole) }
        while fraction.count < 3 { fraction = "0" + fraction }
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(whole).\(fraction)"
    }
}

/// How much CPU time a job gets relative to others: one of `--cpus`, `--cpu-weight`, `--cpu-shares`.
package enum CPUWeightRequest: Sendable, Equatable {
    /// `--cpus N`: v1 `cpu.shares` = 1024×N, v2 `cpu.weight` = 100×N, as HTCondor writes for a slot's Cpus.
    case cpus(CPUAmount)
    /// `--cpu-weight W` in v2 units (1..10000, default 100).
    case weight(Int)
    /// `--cpu-shares S` in v1 units (2..262144, default 1024).
    case shares(Int)

    /// The v1 `cpu.shares` value.
    package var shares: Int {
        switch self {
        case .cpus(let amount): return CgroupWeights.shares(forCPUs: amount)
        case .weight(let weight): return CgroupWeights.shares(fromWeight: weight)
        case .shares(let shares): return shares
        }
    }

    /// The v2 `cpu.weight` value.
    package var weight: Int {
        switch self {
        case .cpus(let amount): return CgroupWeights.weight(forCPUs: amount)
        case .weight(let weight): return weight
        case .shares(let shares): return CgroupWeights.weight(fromShares: shares)
        }
    }
}

/// A hard cap on CPU time (`--cpu-quota`): so many CPUs' worth per period, or none.
package enum CPUQuota: Sendable, Equatable {
    /// At most this many CPUs' worth of time.
    case cpus(CPUAmount)
    /// No cap (`max`).
    case unlimited
}

/// `--pids-max`: a number of tasks, or none.
package enum PidsLimit: Sendable, Equatable {
    /// At most this many tasks.
    case count(Int)
    /// No limit (`max`).
    case unlimited

    /// The value `pids.max` takes on v1 and v2 alike.
    package var cgroupValue: String {
        switch self {
        case .count(let count): return String(count)
        case .unlimited: return "max"
        }
    }
}

/// The limit options exactly as typed, before they are checked.
package struct CgroupLimitOptions: Sendable, Equatable {
    package var memory: String?
    package var memorySoft: String?
    package var memoryHigh: String?
    package var swap: String?
    package var cpus: String?
    package var cpuWeight: String?
    package var cpuShares: String?
    package var cpuQuota: String?
    package var cpuset: String?
    package var mems: String?
    package var pidsMax: String?
    package var ioWeight: String?
    package var devicePolicy: String?
    package var deviceAllow: [String] = []
    package var gpus: String?

    /// No limits.
    package init() {}

    /// Whether no limit option was given.
    package var isEmpty: Bool { self == CgroupLimitOptions() }
}

/// A job's resource limits, independent of the cgroup version they end up in.
package struct CgroupLimits: Sendable, Equatable {
    /// Hard memory limit (`--memory`).
    package var memory: ByteSize?
    /// Memory reclaimed last under pressure (`--memory-soft`; v1 soft limit, v2 `memory.low`).
    package var memorySoft: ByteSize?
    /// Throttle point (`--memory-high`, v2 only).
    package var memoryHigh: ByteSize?
    /// Swap the job may use on top of its memory (`--swap`).
    package var swap: ByteSize?
    /// Relative CPU weight.
    package var cpuWeight: CPUWeightRequest?
    /// Hard CPU cap.
    package var cpuQuota: CPUQuota?
    /// CPUs the job may run on.
    package var cpuset: CPUList?
    /// Memory nodes the job may allocate from.
    package var mems: CPUList?
    /// Task limit.
    package var pidsMax: PidsLimit?
    /// Block I/O weight in v2 units (1..10000).
    package var ioWeight: Int?
    /// The device options, checked but not resolved (`DeviceFencePlanner` turns them into `devices`).
    package var deviceRequest = DeviceRequest()
    /// The device fence, resolved to device numbers.
    package var devices: DeviceFence?

    /// No limits.
    package init() {}

    /// The highest task limit `pids.max` takes (the kernel's PID_MAX_LIMIT).
    package static let maximumPids = 4_194_304

    /// Checks every option; errors name the option and the accepted forms.
    package init(parsing options: CgroupLimitOptions) throws(JobboxError) {
        memory = try options.memory.map { text throws(JobboxError) in try ByteSize.parse(text, for: "--memory") }
        memorySoft = try options.memorySoft.map { text throws(JobboxError) in try ByteSize.parse(text, for: "--memory-soft") }
        memoryHigh = try options.memoryHigh.map { text throws(JobboxError) in try ByteSize.parse(text, for: "--memory-high") }
        swap = try options.swap.map { text throws(JobboxError) in try ByteSize.parse(text, for: "--swap") }
        let cpuChoices = [options.cpus, options.cpuWeight, options.cpuShares].compactMap { $0 }
        if cpuChoices.count > 1 {
            throw JobboxError.invalid("conflicting options", "--cpus, --cpu-weight and --cpu-shares", "they set the same thing: give one of them")
        }
        if let text = options.cpus {
            cpuWeight = .cpus(try CPUAmount.parse(text, for: "--cpus"))
        } else if let text = options.cpuWeight {
            cpuWeight = .weight(try Self.parseInteger(text, for: "--cpu-weight", range: CgroupWeights.weightRange))
        } else if let text = options.cpuShares {
            cpuWeight = .shares(try Self.parseInteger(text, for: "--cpu-shares", range: CgroupWeights.sharesRange))
        }
        if let text = options.cpuQuota {
            cpuQuota = text.lowercased() == "max" ? .unlimited : .cpus(try CPUAmount.parse(text, for: "--cpu-quota"))
        }
        cpuset = try options.cpuset.map { text throws(JobboxError) in try CPUList.parse(text, for: "--cpuset") }
        mems = try options.mems.map { text throws(JobboxError) in try CPUList.parse(text, for: "--mems") }
        if let text = options.pidsMax {
            pidsMax = text.lowercased() == "max" ? .unlimited : .count(try Self.parseInteger(text, for: "--pids-max", range: 1...Self.maximumPids, orMax: true))
        }
        ioWeight = try options.ioWeight.map { text throws(JobboxError) in try Self.parseInteger(text, for: "--io-weight", range: CgroupWeights.weightRange) }
        deviceRequest = try DeviceRequest(policy: options.devicePolicy, allow: options.deviceAllow, gpus: options.gpus)
    }

    static func parseInteger(_ text: String, for option: String, range: ClosedRange<Int>, orMax: Bool = false) throws(JobboxError) -> Int {
        let trimmed = text.trimmingASCIISpaces()
        guard !trimmed.isEmpty, trimmed.count <= 10, trimmed.allSatisfy(\.isASCIIDigit), let value = Int(trimmed), range.contains(value) else {
            let forms = "a whole number from \(range.lowerBound) to \(range.upperBound)" + (orMax ? ", or max" : "")
            throw JobboxError.invalid("invalid value for", option, "'\(text)' is not \(forms)")
        }
        return value
    }

    /// Takes the limits HTCondor's job ad asks for where no option set them: `RequestMemory` (MiB) as `--memory`
    /// and `RequestCpus` as `--cpus`. Where the job ad lacks one or holds an expression (only HTCondor can evaluate
    /// it), the slot's `Memory` or `Cpus` from `slot` (the machine ad) stands in; without a slot value an absent
    /// attribute sets nothing and an expression is an error.
    package mutating func fill(fromJobAd ad: ClassAd, path: String, slot: (ad: ClassAd, path: String)? = nil) throws(JobboxError) {
        if memory == nil, let (value, source) = Self.request("RequestMemory", in: ad, path: path, slot: slot, slotName: "Memory") {
            guard let mebibytes = Self.wholeNumber(value), mebibytes > 0, mebibytes < (1 << 44) else {
                throw JobboxError.invalid("cannot use \(source.name) from", source.path, "it is not a positive number of MiB (pass --memory instead)")
            }
            memory = .bytes(UInt64(mebibytes) << 20)
        }
        if cpuWeight == nil, let (value, source) = Self.request("RequestCpus", in: ad, path: path, slot: slot, slotName: "Cpus") {
            // Divided, not multiplied: the ad is the job's, and a huge count must be refused, not overflow.
            guard let cpus = Self.wholeNumber(value), cpus > 0, UInt64(cpus) <= CPUAmount.maximumMilli / 1000 else {
                throw JobboxError.invalid("cannot use \(source.name) from", source.path, "it is not a positive number of CPUs (pass --cpus instead)")
            }
            cpuWeight = .cpus(CPUAmount(milli: UInt64(cpus) * 1000))
        }
    }

    /// Whether `fill` would look at the slot: a limit not set by an option whose request the job ad lacks or
    /// leaves to an expression.
    package func needsSlot(fromJobAd ad: ClassAd) -> Bool {
        (memory == nil && !Self.isNumber(ad["RequestMemory"])) || (cpuWeight == nil && !Self.isNumber(ad["RequestCpus"]))
    }

    /// The job ad's `name` when it is a number, else the slot's `slotName` when the slot has it, else the job
    /// ad's value (an expression, to be refused) or nil; with the attribute and file it came from.
    private static func request(
        _ name: String, in ad: ClassAd, path: String, slot: (ad: ClassAd, path: String)?, slotName: String
    ) -> (ClassAdValue, (name: String, path: String))? {
        let own = ad[name]
        if Self.isNumber(own), let own { return (own, (name, path)) }
        if let slot, let value = slot.ad[slotName] { return (value, (slotName, slot.path)) }
        return own.map { ($0, (name, path)) }
    }

    private static func isNumber(_ value: ClassAdValue?) -> Bool {
        switch value {
        case .integer, .real: return true
        default: return false
        }
    }

    /// An integer, or a real truncated as HTCondor's `LookupInteger` does; nil for anything else.
    private static func wholeNumber(_ value: ClassAdValue) -> Int64? {
        switch value {
        case .integer(let number): return number
        case .real(let number) where number.isFinite && number >= 1 && number < 9.0e15: return Int64(number)
        default: return nil
        }
    }

    /// Each controller the limits need, with the first option that needs it (for messages).
    package var requiredControllers: [CgroupController: String] {
        var result: [CgroupController: String] = [:]
        func need(_ controller: CgroupController, _ option: String, _ present: Bool) {
            if present && result[controller] == nil { result[controller] = option }
        }
        need(.memory, "--memory", memory != nil)
        need(.memory, "--memory-soft", memorySoft != nil)
        need(.memory, "--memory-high", memoryHigh != nil)
        need(.memory, "--swap", swap != nil)
        need(.cpu, cpuWeightOption, cpuWeight != nil)
        need(.cpu, "--cpu-quota", cpuQuota != nil)
        need(.cpuset, "--cpuset", cpuset != nil)
        need(.cpuset, "--mems", mems != nil)
        need(.pids, "--pids-max", pidsMax != nil)
        need(.io, "--io-weight", ioWeight != nil)
        need(.devices, DeviceFence.source, devices != nil)
        return result
    }

    /// The option the CPU weight came from.
    var cpuWeightOption: String {
        switch cpuWeight {
        case .weight: return "--cpu-weight"
        case .shares: return "--cpu-shares"
        default: return "--cpus"
        }
    }
}
