#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The process environment as a value, so tests can hand tools a made-up one.
///
/// The variables are kept as a list of pairs, not a dictionary: a tool looks up a handful of names in a few dozen
/// variables, and the first `Dictionary<String, _>` of a process makes the Swift runtime look up `String`'s
/// `Hashable` conformance by scanning every conformance record of the binary, about a fifth of ns-exec's
/// start-up instructions (bench/README.md).
package struct Environment: Sendable {
    /// The variables in the order the process had them, then in the order they were set. A name execve was given
    /// twice is here twice; its value is the last one, as a dictionary made of the list has it.
    private var pairs: [(name: String, value: String)]

    /// Creates an environment from a dictionary.
    package init(_ variables: [String: String] = [:]) {
        pairs = variables.map { (name: $0.key, value: $0.value) }
    }

    private init(pairs: [(name: String, value: String)]) {
        self.pairs = pairs
    }

    /// The variables as a dictionary (for handing them to a child process).
    package var variables: [String: String] {
        Dictionary(pairs.map { ($0.name, $0.value) }) { _, last in last }
    }

    /// The environment of this process.
    package static var current: Environment {
        var result: [(name: String, value: String)] = []
        var pointer = environ
        // Split at the first '=' on the bytes (every tool reads this at start: Character-wise splitting cost
        // jobstat a fifth of its run).
        while let entry = pointer.pointee {
            if let equals = strchr(entry, Int32(UInt8(ascii: "="))) {
                let name = UnsafeRawBufferPointer(start: entry, count: entry.distance(to: equals))
                result.append((String(decoding: name, as: UTF8.self), String(cString: equals + 1)))
            }
            pointer += 1
        }
        return Environment(pairs: result)
    }

    /// The value of `name`, or nil when unset.
    package subscript(name: String) -> String? {
        get { pairs.last { $0.name == name }?.value }
        set {
            pairs.removeAll { $0.name == name }
            if let newValue { pairs.append((name, newValue)) }
        }
    }

    /// Whether the process runs with more privilege than its caller (setuid or setgid): then the caller's
    /// environment and configuration choices must not be trusted.
    package static var isPrivilegedExecution: Bool {
        getuid() != geteuid() || getgid() != getegid()
    }
}
