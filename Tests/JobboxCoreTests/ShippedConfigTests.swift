import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCore

/// packaging/jobbox.conf, the conffile the packages and `make install` put in /etc/jobbox: every knob the code
/// knows, commented out at its built-in default, so the file cannot drift from `JobboxConfig`.
@Suite("The shipped jobbox.conf")
struct ShippedConfigTests {
    static let path = TestSupport.repositoryRoot + "/packaging/jobbox.conf"

    /// The `# NAME = value` lines of the file, uncommented.
    static func knobLines() throws -> [String] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("# ") else { return nil }
            let body = line.dropFirst(2)
            guard let name = body.split(separator: " ", maxSplits: 1).first,
                name.allSatisfy({ $0.isUppercase || $0 == "_" }), body.dropFirst(name.count).hasPrefix(" =")
            else { return nil }
            return String(body)
        }
    }

    @Test("as shipped it sets nothing: every knob is commented out")
    func setsNothing() throws {
        let config = try JobboxConfig.parse(try String(contentsOfFile: Self.path, encoding: .utf8), path: Self.path)
        #expect(try ConfigFile.parse(try String(contentsOfFile: Self.path, encoding: .utf8), path: Self.path).isEmpty)
        #expect(config.warnings.isEmpty)
    }

    @Test("every knob the code knows is there once, and no other")
    func everyKnob() throws {
        let names = try Self.knobLines().map { String($0.prefix { $0 != " " }) }
        #expect(names.count == Set(names).count, "a knob listed twice: \(names)")
        #expect(Set(names) == Set(JobboxConfig.knownKnobs))
    }

    @Test("uncommented, every line gives the built-in default")
    func defaults() throws {
        let text = try Self.knobLines().joined(separator: "\n") + "\n"
        var config = try JobboxConfig.parse(text, path: Self.path)
        #expect(config.warnings.isEmpty)
        config.source = nil
        #expect(config == JobboxConfig())
    }
}
