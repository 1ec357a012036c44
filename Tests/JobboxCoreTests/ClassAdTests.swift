import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCLI
@testable import JobboxCore

@Suite("ClassAd writer and reader")
struct ClassAdTests {
    /// An ad with every kind of value jobbox prints, including the awkward ones.
    static var sample: ClassAd {
        var ad = ClassAd()
        ad.set("MemoryUsage", 129)
        ad.set("ResidentSetSize", 131_072)
        ad.set("RemoteUserCpu", 1.0)
        ad.set("RemoteSysCpu", 0.125)
        ad.set("CpuFraction", 1.0 / 3.0)
        ad.set("Tiny", 1.5e-7)
        ad.set("Huge", 6.02e23)
        ad.set("Negative", -42)
        ad.set("Zero", 0.0)
        ad.set("OOMKilled", false)
        ad.set("HasNetwork", true)
        ad.set("JobboxCgroup", "/sys/fs/cgroup/memory/jobbox/job_12_0")
        ad.set("Quoted", "say \"hi\" to C:\\tmp")
        ad.set("Empty", "")
        return ad
    }

    @Test("renders HTCondor's long form exactly")
    func golden() throws {
        let text = try ClassAdWriter.render(Self.sample)
        #expect(
            text == """
                MemoryUsage = 129
                ResidentSetSize = 131072
                RemoteUserCpu = 1.0
                RemoteSysCpu = 0.125
                CpuFraction = 0.3333333333333333
                Tiny = 1.5E-07
                Huge = 6.02E+23
                Negative = -42
                Zero = 0.0
                OOMKilled = false
                HasNetwork = true
                JobboxCgroup = "/sys/fs/cgroup/memory/jobbox/job_12_0"
                Quoted = "say \\"hi\\" to C:\\tmp"
                Empty = ""

                """)
    }

    @Test("names are one attribute ignoring case, replaced in place, below and above the size where the ad is indexed")
    func caseInsensitiveAcrossTheIndex() {
        var ad = ClassAd()
        let count = ClassAd.indexedFrom * 2
        for n in 0..<count { ad.set("Attr\(n)", n) }
        for n in stride(from: 0, to: count, by: 7) { ad.set("ATTR\(n)", "replaced") }
        #expect(ad.attributes.count == count)
        for n in 0..<count {
            let replaced = n % 7 == 0
            #expect(ad.attributes[n].name == (replaced ? "ATTR\(n)" : "Attr\(n)"))
            #expect(ad["attr\(n)"] == (replaced ? .string("replaced") : .integer(Int64(n))))
        }
        #expect(ad["attr\(count)"] == nil)
    }

    @Test("several ads are separated by one blank line")
    func severalAds() throws {
        var first = ClassAd()
        first.set("JobId", "1.0")
        var second = ClassAd()
        second.set("JobId", "2.0")
        #expect(try ClassAdWriter.render([first, second]) == "JobId = \"1.0\"\n\nJobId = \"2.0\"\n")
    }

    @Test(
        "refuses what HTCondor's parser would not read back",
        arguments: [
            ("Bad Name", ClassAdValue.integer(1)),
            ("1abc", .integer(1)),
            ("true", .integer(1)),
            ("Undefined", .integer(1)),
            ("isnt", .integer(1)),
            ("Note", .string("two\nlines")),
            ("Note", .string("ends in \\")),
            ("Note", .string("bell\u{7}")),
            ("Expr", .expression("a + b")),
        ])
    func refusals(name: String, value: ClassAdValue) {
        var ad = ClassAd()
        ad.set(name, value)
        #expect(throws: ClassAdWriter.Refusal.self) { try ClassAdWriter.render(ad) }
    }

    @Test("reals always carry a . or an exponent; NaN and infinities use real()")
    func reals() {
        #expect(ClassAdWriter.formatReal(12345) == "12345.0")
        #expect(ClassAdWriter.formatReal(-2.5) == "-2.5")
        #expect(ClassAdWriter.formatReal(1e16) == "1E+16")
        #expect(ClassAdWriter.formatReal(.nan) == "real(\"NaN\")")
        #expect(ClassAdWriter.formatReal(-.infinity) == "real(\"-INF\")")
    }

    @Test("reads the job ad HTCondor writes")
    func readsJobAd() throws {
        let ad = ClassAdReader.parse(try String(contentsOfFile: TestSupport.fixtures + "/classad/job.ad", encoding: .utf8))
        #expect(ad.integer("ClusterId") == 1234)
        #expect(ad.integer("procid") == 5)
        #expect(ad.string("Owner") == "alice")
        #expect(ad.integer("RequestMemory") == 2048)
        #expect(ad.integer("RequestCpus") == 2)
        #expect(ad.real("BytesRecvd") == 0)
        #expect(ad.boolean("WantIOProxy") == true)
        #expect(ad.string("Arguments") == "-c 'sleep 60'")
        #expect(ad.string("x509userproxysubject") == "/DC=org/DC=example/CN=Alice \"A\" Smith")
        #expect(ad["RequestDisk"] == .expression("DiskUsage"))
        #expect(ad["Requirements"].map { if case .expression = $0 { true } else { false } } == true)
        #expect(ad["NoSuchThing"] == nil)
    }

    @Test("what the writer prints, the reader reads back")
    func roundTrip() throws {
        let text = try ClassAdWriter.render(Self.sample)
        let back = ClassAdReader.parse(text)
        for (name, value) in Self.sample.attributes {
            #expect(back[name] == value, "\(name)")
        }
        #expect(ClassAdReader.parseAll(text + "\n" + text).count == 2)
    }

    @Test(
        "HTCondor's own ClassAd library reads every attribute back with its value and type",
        .enabled(if: HTCondorClassAds.available, "HTCondor's Python bindings are not installed (make deps)"))
    func htcondorParsesGolden() throws {
        let text = try ClassAdWriter.render([Self.sample, Self.sample])
        let parsed = try HTCondorClassAds.parse(text)
        try #require(parsed.count == 2)
        for (name, value) in Self.sample.attributes {
            let seen = try #require(parsed[0][name], "\(name) missing from HTCondor's parse")
            switch value {
            case .integer(let number): #expect(seen == .init(type: "int", value: String(number)), "\(name)")
            case .real(let number):
                #expect(seen.type == "float", "\(name)")
                #expect(Double(seen.value) == number, "\(name): \(seen.value)")
            case .string(let text): #expect(seen == .init(type: "str", value: text), "\(name)")
            case .boolean(let flag): #expect(seen == .init(type: "bool", value: flag ? "True" : "False"), "\(name)")
            case .expression: Issue.record("no expressions in the sample")
            }
        }
    }
}
