import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxQuota

/// The values scratch quotas take and report, without a kernel.
@Suite("Scratch quota values")
struct ScratchQuotaUnitTests {
    @Test("SIZE[,INODES] and none parse; zero, junk and a third part do not")
    func limits() {
        #expect(ScratchQuotaLimit.parse("8M") == .some(ScratchQuotaLimit(bytes: 8 << 20)))
        #expect(ScratchQuotaLimit.parse(" 10G , 100000 ") == .some(ScratchQuotaLimit(bytes: 10 << 30, inodes: 100_000)))
        #expect(ScratchQuotaLimit.parse("none") == .some(nil))
        for bad in ["", "0", "max", "8M,", "8M,0", "8M,x", "8M,1,2", "-1", "8Q"] {
            #expect(ScratchQuotaLimit.parse(bad) == nil, "\(bad)")
        }
    }

    @Test("SCRATCH_QUOTA and SCRATCH_QUOTA_PROJECT_IDS are knobs; bad values name the line, not the value")
    func knobs() throws {
        let config = try JobboxConfig.parse("SCRATCH_QUOTA = 2G,5000\nSCRATCH_QUOTA_PROJECT_IDS = 100-199\n", path: "/etc/j.conf")
        #expect(config.scratchQuota == ScratchQuotaLimit(bytes: 2 << 30, inodes: 5000))
        #expect(config.scratchQuotaProjectIDs == ProjectIDRange(lower: 100, upper: 199))
        #expect(config.warnings.isEmpty)
        #expect(JobboxConfig().scratchQuota == nil)
        #expect(JobboxConfig().scratchQuotaProjectIDs == ProjectIDRange.defaultRange)
        for bad in [
            "SCRATCH_QUOTA = lots", "SCRATCH_QUOTA_PROJECT_IDS = 0-10", "SCRATCH_QUOTA_PROJECT_IDS = 20-10", "SCRATCH_QUOTA_PROJECT_IDS = 5-4294967295",
        ] {
            #expect(throws: JobboxError.self, "\(bad)") { try JobboxConfig.parse(bad + "\n", path: "/etc/j.conf") }
        }
    }

    @Test("A limit counts as reached within 1/64 of it (at least 256 KiB), or at the inode limit; no limit, no answer")
    func reached() {
        func usage(_ bytes: UInt64, limit: UInt64?, files: UInt64? = nil, fileLimit: UInt64? = nil) -> ScratchUsage {
            ScratchUsage(backend: .projectQuota(project: 7), bytes: bytes, files: files, byteLimit: limit, fileLimit: fileLimit)
        }
        // btrfs stopped an 8 MiB quota at 7.98 MiB.
        #expect(usage(8_171 * 1024, limit: 8 << 20).limitReached == true)
        #expect(usage(7 << 20, limit: 8 << 20).limitReached == false)
        #expect(usage(64 << 20, limit: 1 << 30).limitReached == false)
        #expect(usage(1_010 << 20, limit: 1 << 30).limitReached == true)
        #expect(usage(1_000 << 20, limit: 1 << 30).limitReached == false)
        #expect(usage(0, limit: nil, files: 10, fileLimit: 10).limitReached == true)
        #expect(usage(0, limit: nil, files: 9, fileLimit: 10).limitReached == false)
        #expect(usage(5 << 20, limit: nil).limitReached == nil)
    }
}
