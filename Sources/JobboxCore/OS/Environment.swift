#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The process environment as a value, so tests can hand tools a made-up one.
package struct Environment: Sendable {
    /// The variables.
    package var variables: [String: String]

    /// Creates an environment from a dictionary.
    package init(_ variables: [String: String] = [:]) {
        self.variables = variables
    }

    /// The environment of this process.
    package static var current: Environment {
        var result: [String: String] = [:]
        var pointer = environ
        // Split at the first '=' on the bytes (every tool reads this at start: Character-wise splitting cost
        // jobstat a fifth of its run).
        while let entry = pointer.pointee {
            if let equals = strchr(entry, Int32(UInt8(ascii: "="))) {
                let name = UnsafeRawBufferPointer(start: entry, count: entry.distance(to: equals))
                result[String(decoding: name, as: UTF8.self)] = String(cString: equals + 1)
            }
            pointer += 1
        }
        return Environment(result)
    }

    /// The value of `name`, or nil when unset.
    package subscript(name: String) -> String? {
        get { variables[name] }
        set { variables[name] = newValue }
    }

    /// Whether the process runs with more privilege than its caller (setuid or setgid): then the caller's
    /// environment and configuration choices must not be trusted.
    package static var isPrivilegedExecution: Bool {
        getuid() != geteuid() || getgid() != getegid()
    }
}
