import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCLI
@testable import JobboxCore

@Suite("Man pages")
struct ManPageTests {
    static let tools = ["cg-exec", "ns-exec", "netacct", "chroot-tool", "jobstat"]

    /// The long options a tool's `--help` lists (for chroot-tool, also each subcommand's).
    static func longOptions(_ arguments: [String]) throws -> Set<String> {
        let help = try TestSupport.run(arguments + ["--help"]).stdout
        var options = Set<String>()
        for line in help.split(separator: "\n") where line.hasPrefix("  -") || line.hasPrefix("  --") {
            for word in line.split(whereSeparator: { $0 == " " || $0 == "/" }) where word.hasPrefix("--") {
                let name = word.split(separator: "=").first.map(String.init) ?? String(word)
                options.insert(name.trimmingCharacters(in: CharacterSet(charactersIn: ",<>")))
            }
        }
        options.subtract(["--help", "--version"])
        return options
    }

    @Test("every tool has a page that documents every option its --help lists", arguments: tools)
    func everyOptionDocumented(tool: String) throws {
        let page = TestSupport.repositoryRoot + "/man/\(tool).1"
        #expect(FileManager.default.fileExists(atPath: page), "man/\(tool).1 is missing")
        // mandoc marks bold and underline by overstriking (X backspace X): keep only what is printed last.
        let rendered = try TestSupport.run(["mandoc", "-T", "ascii", page]).stdout
            .replacing(/.\u{8}/, with: "")
        var commands = [[tool]]
        if tool == "chroot-tool" {
            commands += ["build", "switch", "rollback", "list", "show", "diff", "gc", "verify"].map { [tool, $0] }
        }
        for command in commands {
            for option in try Self.longOptions(command) {
                #expect(rendered.contains(option), "\(command.joined(separator: " ")) \(option) is not in man/\(tool).1")
            }
        }
    }
}
