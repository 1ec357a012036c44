import Foundation
import JobboxCore
import JobboxNamespaces
import JobboxTestSupport
import Testing

@Suite("ns-exec --scratch-quota request-disk: the job's disk request from its ads", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
struct ScratchQuotaRequestTests {
    @Test("RequestDisk (KiB) when it is a number, else the slot's Disk; neither is one line naming the ad")
    func fromAds() throws {
        let execute = try ExecuteDirectory("jbsqr")
        defer { execute.remove() }
        let jobAd = try execute.write("job.ad", "ClusterId = 7\nRequestDisk = 4096\n")
        #expect(try ScratchQuotaRequest.limit(environment: Environment(["_CONDOR_JOB_AD": jobAd])) == "4096K")
        // HTCondor's default RequestDisk is an expression: the slot's Disk is what HTCondor itself gives the job.
        let expression = try execute.write("expr.ad", "RequestDisk = DiskUsage\n")
        let machine = try execute.write("machine.ad", "Disk = 123456\n")
        #expect(try ScratchQuotaRequest.limit(environment: Environment(["_CONDOR_JOB_AD": expression, "_CONDOR_MACHINE_AD": machine])) == "123456K")
        let error = #expect(throws: JobboxError.self) {
            try ScratchQuotaRequest.limit(environment: Environment(["_CONDOR_JOB_AD": expression]))
        }
        #expect(error?.description.contains(expression) == true)
        #expect(throws: JobboxError.self) { try ScratchQuotaRequest.limit(environment: Environment()) }
    }

    @Test("as root, a job ad the job could have rewritten is not believed: it would raise its own limit")
    func jobWritableAdRefused() throws {
        let job = try Hostile.Scratch()
        defer { job.remove() }
        let ad = job.scratch + "/job.ad"
        try "RequestDisk = 999999999\n".write(toFile: ad, atomically: false, encoding: .utf8)
        let error = #expect(throws: JobboxError.self) {
            try ScratchQuotaRequest.limit(environment: Environment(["_CONDOR_JOB_AD": ad]))
        }
        #expect(error?.description.contains("--scratch-quota SIZE") == true, "\(String(describing: error))")
    }
}
