import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCLI
@testable import JobboxCore

/// `--chirp-auto`: the tool decides from the starter's environment whether and how to chirp, so a wrapper just
/// asks for it.
@Suite("--chirp-auto")
struct ChirpAutoTests {
    @Test("no chirp config file: no chirp; with one: set_job_attr when the job ad has WantIOProxy = true, else set_job_attr_delayed")
    func decides() throws {
        let dir = try TestSupport.TemporaryDirectory("jbi-chirp-auto")
        defer { dir.remove() }
        try dir.write(".chirp.config", "127.0.0.1 9 cookie\n")
        try dir.write("proxy.ad", "ClusterId = 1\nWantIOProxy = true\n")
        try dir.write("plain.ad", "ClusterId = 1\n")
        let config = dir.path + "/.chirp.config"
        #expect(ChirpOptions.automaticUpdate(environment: Environment(["_CONDOR_JOB_AD": dir.path + "/proxy.ad"])) == nil)
        #expect(
            ChirpOptions.automaticUpdate(environment: Environment(["_CONDOR_CHIRP_CONFIG": dir.path + "/missing", "_CONDOR_JOB_AD": dir.path + "/proxy.ad"]))
                == nil)
        #expect(
            ChirpOptions.automaticUpdate(environment: Environment(["_CONDOR_CHIRP_CONFIG": config, "_CONDOR_JOB_AD": dir.path + "/proxy.ad"])) == .immediate)
        #expect(ChirpOptions.automaticUpdate(environment: Environment(["_CONDOR_CHIRP_CONFIG": config, "_CONDOR_JOB_AD": dir.path + "/plain.ad"])) == .delayed)
        // No readable job ad: the request the starter always takes.
        #expect(ChirpOptions.automaticUpdate(environment: Environment(["_CONDOR_CHIRP_CONFIG": config])) == .delayed)
    }

    @Test("two chirp flags at once are one error")
    func conflicting() throws {
        let options = try ChirpOptions.parse(["--chirp", "--chirp-auto"])
        #expect(throws: JobboxError.invalid("invalid options", "--chirp --chirp-auto", "give one of them")) { try options.update(environment: Environment()) }
    }
}
