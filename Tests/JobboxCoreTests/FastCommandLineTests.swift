import Testing

@testable import JobboxCLI
@testable import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

@Suite("Fast command line")
struct FastCommandLineTests {
    let options = FastCommandLine.Options(flags: ["pid", "mount"], single: ["job", "user"], repeatable: ["bind"])

    @Test("flags, single values and repeated values in order, and the command after --")
    func plainLine() throws {
        let line = try #require(
            FastCommandLine(
                ["--pid", "--job", "j1", "--bind", "/a", "--mount", "--bind", "/b:/c", "--", "/bin/sh", "-c", "--pid"],
                options: options))
        #expect(line.flag("pid") && line.flag("mount"))
        #expect(line.value("job") == "j1")
        #expect(line.value("user") == nil)
        #expect(line.all("bind") == ["/a", "/b:/c"])
        #expect(line.value("bind") == "/b:/c")
        #expect(line.hasTerminator)
        #expect(line.command == ["/bin/sh", "-c", "--pid"])
    }

    @Test("a line without -- has no command")
    func noTerminator() throws {
        let line = try #require(FastCommandLine(["--pid"], options: options))
        #expect(!line.hasTerminator)
        #expect(line.command.isEmpty)
        #expect(!line.flag("mount"))
    }

    @Test(
        "what only ArgumentParser may judge is left to it",
        arguments: [
            ["--pid", "--pid", "--", "/bin/true"],  // a flag twice
            ["--job", "a", "--job", "b", "--", "/bin/true"],  // a single value twice
            ["--net", "--", "/bin/true"],  // a name not given
            ["--job=a", "--", "/bin/true"],  // name=value
            ["-p", "--", "/bin/true"],  // a short option
            ["/bin/true"],  // a word before --
            ["--job"],  // a missing value
            ["--job", "--pid", "--", "/bin/true"],  // a value that looks like an option
            ["--bind", "-x", "--", "/bin/true"],
        ])
    func leftToArgumentParser(arguments: [String]) {
        #expect(FastCommandLine(arguments, options: options) == nil)
    }
}

@Suite("Environment")
struct EnvironmentTests {
    @Test("set, replace and unset a variable")
    func subscripts() {
        var environment = Environment(["HOME": "/root"])
        #expect(environment["HOME"] == "/root")
        #expect(environment["PATH"] == nil)
        environment["PATH"] = "/bin"
        environment["HOME"] = "/home/u"
        #expect(environment["HOME"] == "/home/u")
        #expect(environment.variables == ["HOME": "/home/u", "PATH": "/bin"])
        environment["HOME"] = nil
        #expect(environment["HOME"] == nil)
        #expect(environment.variables == ["PATH": "/bin"])
    }

    @Test("the process's own environment, read from environ, as getenv sees it")
    func current() throws {
        // No setenv here: tests run on several threads, and setenv races every getenv of the process.
        let path = try #require(getenv("PATH"))
        let environment = Environment.current
        #expect(environment["PATH"] == String(cString: path))
        var names = 0
        var pointer = environ
        while let entry = pointer.pointee {
            names += strchr(entry, Int32(UInt8(ascii: "="))) == nil ? 0 : 1
            pointer += 1
        }
        #expect(environment.variables.count <= names && !environment.variables.isEmpty)
    }
}
