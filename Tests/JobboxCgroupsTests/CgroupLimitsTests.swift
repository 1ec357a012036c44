import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore

@Suite("cg-exec limits: parsing, conversions and the files each version gets")
struct CgroupLimitsTests {
    static func limits(_ configure: (inout CgroupLimitOptions) -> Void) throws -> CgroupLimits {
        var options = CgroupLimitOptions()
        configure(&options)
        return try CgroupLimits(parsing: options)
    }

    static func files(_ limits: CgroupLimits, _ controller: CgroupController, _ version: CgroupHierarchy.Version) throws -> [String] {
        try limits.writes(for: controller, version: version).map { write in
            write.candidates.map { "\($0.file)=\($0.value)" }.joined(separator: "|")
        }
    }

    @Test("CPU amounts keep three decimals exactly")
    func cpuAmounts() {
        #expect(CPUAmount(parsing: "2")?.milli == 2000)
        #expect(CPUAmount(parsing: "1.5")?.milli == 1500)
        #expect(CPUAmount(parsing: "0.125")?.milli == 125)
        #expect(CPUAmount(parsing: "0.125")?.description == "0.125")
        #expect(CPUAmount(parsing: "2.50")?.description == "2.5")
        for bad in ["0", "0.000", "-1", "1.", ".5", "1.2345", "1e3", "", "two", "99999999"] {
            #expect(CPUAmount(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test("shares and weight convert as systemd does, in proportion to the defaults, clamped")
    func weightConversions() {
        #expect(CgroupWeights.weight(fromShares: 1024) == 100)
        #expect(CgroupWeights.weight(fromShares: 2048) == 200)
        #expect(CgroupWeights.weight(fromShares: 2) == 1)
        #expect(CgroupWeights.weight(fromShares: 262_144) == 10_000)
        #expect(CgroupWeights.shares(fromWeight: 100) == 1024)
        #expect(CgroupWeights.shares(fromWeight: 1) == 10)
        #expect(CgroupWeights.shares(fromWeight: 10_000) == 102_400)
        #expect(CgroupWeights.blkioWeight(fromIOWeight: 100) == 500)
        #expect(CgroupWeights.blkioWeight(fromIOWeight: 1) == 10)
        #expect(CgroupWeights.blkioWeight(fromIOWeight: 10_000) == 1000)
        #expect(CgroupWeights.bfqWeight(fromIOWeight: 5000) == 1000)
    }

    @Test("--cpus N gives shares 1024*N and weight 100*N, as HTCondor sets a slot's Cpus; weight clamps at 10000")
    func cpusAsHTCondor() throws {
        #expect(CPUWeightRequest.cpus(CPUAmount(milli: 1000)).shares == 1024)
        #expect(CPUWeightRequest.cpus(CPUAmount(milli: 1000)).weight == 100)
        #expect(CPUWeightRequest.cpus(CPUAmount(milli: 4000)).weight == 400)
        #expect(CPUWeightRequest.cpus(CPUAmount(milli: 500)).shares == 512)
        #expect(CPUWeightRequest.cpus(CPUAmount(milli: 200_000)).weight == 10_000)
        #expect(CPUWeightRequest.cpus(CPUAmount(milli: 1)).shares == 2)
        #expect(CPUWeightRequest.shares(3000).weight == 292)
        #expect(CPUWeightRequest.weight(50).shares == 512)
    }

    @Test("v1 files: memory, memsw = memory + swap after the memory limit, shares, quota with its period, pids, cpuset")
    func v1Files() throws {
        let limits = try Self.limits {
            $0.memory = "1G"
            $0.memorySoft = "512M"
            $0.swap = "256M"
            $0.cpus = "2"
            $0.cpuQuota = "1.5"
            $0.cpuset = "0-3,8"
            $0.mems = "0"
            $0.pidsMax = "100"
            $0.ioWeight = "200"
        }
        #expect(
            try Self.files(limits, .memory, .v1) == [
                "memory.limit_in_bytes=1073741824", "memory.soft_limit_in_bytes=536870912", "memory.memsw.limit_in_bytes=1342177280",
            ])
        #expect(try Self.files(limits, .cpu, .v1) == ["cpu.shares=2048", "cpu.cfs_period_us=100000", "cpu.cfs_quota_us=150000"])
        #expect(try Self.files(limits, .cpuset, .v1) == ["cpuset.mems=0", "cpuset.cpus=0-3,8"])
        #expect(try Self.files(limits, .pids, .v1) == ["pids.max=100"])
        #expect(try Self.files(limits, .io, .v1) == ["blkio.weight=1000|blkio.bfq.weight=200"])
        #expect(try Self.files(limits, .freezer, .v1).isEmpty)
    }

    @Test("v2 files: memory.max/low/high/swap.max, oom.group always, cpu.weight, cpu.max, io.weight")
    func v2Files() throws {
        let limits = try Self.limits {
            $0.memory = "64M"
            $0.memorySoft = "32M"
            $0.memoryHigh = "48M"
            $0.swap = "0"
            $0.cpuShares = "2048"
            $0.cpuQuota = "0.5"
            $0.pidsMax = "max"
            $0.ioWeight = "300"
        }
        #expect(
            try Self.files(limits, .memory, .v2) == [
                "memory.max=67108864", "memory.low=33554432", "memory.high=50331648", "memory.swap.max=0", "memory.oom.group=1",
            ])
        #expect(try Self.files(limits, .cpu, .v2) == ["cpu.weight=200", "cpu.max=50000 100000"])
        #expect(try Self.files(limits, .pids, .v2) == ["pids.max=max"])
        #expect(try Self.files(limits, .io, .v2) == ["io.weight=default 300|io.bfq.weight=300"])
        #expect(try Self.files(CgroupLimits(), .memory, .v2) == ["memory.oom.group=1"])
        #expect(try Self.files(Self.limits { $0.cpuQuota = "max" }, .cpu, .v2) == ["cpu.max=max 100000"])
        #expect(try Self.files(Self.limits { $0.cpuQuota = "max" }, .cpu, .v1) == ["cpu.cfs_quota_us=-1"])
        #expect(
            try Self.files(
                Self.limits {
                    $0.memory = "max"
                    $0.swap = "1G"
                }, .memory, .v1) == ["memory.limit_in_bytes=-1", "memory.memsw.limit_in_bytes=-1"])
    }

    @Test("what v1 cannot do is an error naming the option")
    func v1Refusals() throws {
        let high = try Self.limits { $0.memoryHigh = "1G" }
        #expect(throws: JobboxError.self) { try high.writes(for: .memory, version: .v1) }
        #expect(try high.writes(for: .memory, version: .v2).count == 2)
        do {
            _ = try high.writes(for: .memory, version: .v1)
        } catch {
            #expect(error.description.hasPrefix("cannot apply --memory-high: cgroup v1 has no memory.high"))
        }
        let swapOnly = try Self.limits { $0.swap = "1G" }
        #expect(throws: JobboxError.self) { try swapOnly.writes(for: .memory, version: .v1) }
        #expect(try swapOnly.writes(for: .memory, version: .v2).map(\.description) == ["memory.swap.max = 1073741824", "memory.oom.group = 1"])
    }

    @Test(
        "malformed limits are refused with the option and the accepted forms",
        arguments: [
            ("memory", "12Q", "invalid size for --memory: '12Q' is not a number of bytes"),
            ("cpus", "-1", "invalid number of CPUs for --cpus: '-1' is not a number of CPUs above 0"),
            ("cpu-weight", "0", "invalid value for --cpu-weight: '0' is not a whole number from 1 to 10000"),
            ("cpu-shares", "1", "invalid value for --cpu-shares: '1' is not a whole number from 2 to 262144"),
            ("cpu-quota", "lots", "invalid number of CPUs for --cpu-quota: 'lots'"),
            ("cpuset", "3-1", "invalid list for --cpuset: '3-1' is not a list of numbers and ranges"),
            ("mems", "", "invalid list for --mems: ''"),
            ("pids-max", "-5", "invalid value for --pids-max: '-5' is not a whole number from 1 to 4194304, or max"),
            ("io-weight", "20000", "invalid value for --io-weight: '20000' is not a whole number from 1 to 10000"),
        ])
    func malformed(option: String, value: String, message: String) {
        var options = CgroupLimitOptions()
        switch option {
        case "memory": options.memory = value
        case "cpus": options.cpus = value
        case "cpu-weight": options.cpuWeight = value
        case "cpu-shares": options.cpuShares = value
        case "cpu-quota": options.cpuQuota = value
        case "cpuset": options.cpuset = value
        case "mems": options.mems = value
        case "pids-max": options.pidsMax = value
        default: options.ioWeight = value
        }
        do {
            _ = try CgroupLimits(parsing: options)
            Issue.record("accepted --\(option) \(value)")
        } catch {
            #expect(error.description.hasPrefix(message), "\(error.description)")
        }
    }

    @Test("--cpus, --cpu-weight and --cpu-shares exclude each other")
    func cpuAlternatives() {
        #expect(throws: JobboxError.self) {
            try Self.limits {
                $0.cpus = "1"
                $0.cpuWeight = "100"
            }
        }
        #expect(throws: JobboxError.self) {
            try Self.limits {
                $0.cpuShares = "1024"
                $0.cpuWeight = "100"
            }
        }
    }

    @Test("the job ad fills what no option set: RequestMemory in MiB, RequestCpus; options win")
    func fromJobAd() throws {
        let ad = ClassAdReader.parse("RequestMemory = 2048\nRequestCpus = 2\n")
        var limits = CgroupLimits()
        try limits.fill(fromJobAd: ad, path: "job.ad")
        #expect(limits.memory == .bytes(2048 << 20))
        #expect(limits.cpuWeight == .cpus(CPUAmount(milli: 2000)))
        var explicit = try Self.limits {
            $0.memory = "1G"
            $0.cpuWeight = "300"
        }
        try explicit.fill(fromJobAd: ad, path: "job.ad")
        #expect(explicit.memory == .bytes(1 << 30))
        #expect(explicit.cpuWeight == .weight(300))
        var none = CgroupLimits()
        try none.fill(fromJobAd: ClassAdReader.parse("Owner = \"alice\"\n"), path: "job.ad")
        #expect(none == CgroupLimits())
        var expression = CgroupLimits()
        #expect(throws: JobboxError.self) {
            try expression.fill(fromJobAd: ClassAdReader.parse("RequestMemory = ifThenElse(MemoryUsage =!= undefined, MemoryUsage, 128)\n"), path: "job.ad")
        }
        // Found by the job-ad fuzzer: a count whose thousandfold overflows 64 bits trapped instead of being refused.
        var huge = CgroupLimits()
        #expect(throws: JobboxError.self) {
            try huge.fill(fromJobAd: ClassAdReader.parse("RequestCpus = 8835354676818546225\n"), path: "job.ad")
        }
    }

    @Test("where the job ad's request is missing or an expression, the slot's Memory and Cpus (the machine ad) stand in; a number in the job ad wins")
    func fromSlot() throws {
        let slot = (ad: ClassAdReader.parse("Memory = 512\nCpus = 4\n"), path: "machine.ad")
        let expression = ClassAdReader.parse("RequestMemory = ifThenElse(MemoryUsage =!= undefined, MemoryUsage * 3 / 2, 128)\n")
        var fromSlot = CgroupLimits()
        #expect(fromSlot.needsSlot(fromJobAd: expression))
        try fromSlot.fill(fromJobAd: expression, path: "job.ad", slot: slot)
        #expect(fromSlot.memory == .bytes(512 << 20))
        #expect(fromSlot.cpuWeight == .cpus(CPUAmount(milli: 4000)))
        var own = CgroupLimits()
        let numbers = ClassAdReader.parse("RequestMemory = 256\nRequestCpus = 1\n")
        #expect(!own.needsSlot(fromJobAd: numbers))
        try own.fill(fromJobAd: numbers, path: "job.ad", slot: slot)
        #expect(own.memory == .bytes(256 << 20) && own.cpuWeight == .cpus(CPUAmount(milli: 1000)))
        // A slot value that is no number is refused naming the machine ad.
        var bad = CgroupLimits()
        do {
            try bad.fill(fromJobAd: expression, path: "job.ad", slot: (ClassAdReader.parse("Memory = \"lots\"\nCpus = 1\n"), "machine.ad"))
            Issue.record("a string Memory was taken")
        } catch {
            #expect(error.description == "cannot use Memory from machine.ad: it is not a positive number of MiB (pass --memory instead)")
        }
    }

    @Test("--controllers takes known names, blkio as io, and refuses others")
    func controllerNames() throws {
        #expect(try CgroupController.parseList("memory,blkio pids", for: "--controllers") == [.memory, .io, .pids])
        do {
            _ = try CgroupController.parseList("memory,bogus", for: "--controllers")
            Issue.record("accepted bogus")
        } catch {
            #expect(
                error.description
                    == "unknown controller 'bogus' in --controllers: known controllers are memory, cpu, cpuacct, cpuset, io (or blkio), pids, freezer, devices")
        }
        #expect(throws: JobboxError.self) { try CgroupController.parseList(",", for: "--controllers") }
    }
}
