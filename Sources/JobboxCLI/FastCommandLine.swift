/// A command line of long options and a command after `--`, read without ArgumentParser for a tool's fast path.
///
/// It reads only lines whose meaning to ArgumentParser is plain, and is nil for anything else, which then goes
/// to ArgumentParser (with its errors and help): a name it was not given, `--name=value`, a short option, a
/// word before `--`, a value that is missing or starts with `-`, and any option but a repeatable one given twice.
///
/// Names are kept in arrays, not sets or dictionaries: a handful of names is searched as fast either way, and the
/// first `Set<String>` or `Dictionary<String, _>` of a process makes the Swift runtime look up `String`'s
/// `Hashable` conformance by scanning every conformance record of the binary (about a fifth of ns-exec's
/// start-up instructions, bench/README.md).
package struct FastCommandLine: Sendable {
    /// The option names (without `--`) a tool's fast path takes.
    package struct Options: Sendable {
        /// Options without a value.
        package var flags: [String] = []
        /// Options with one value.
        package var single: [String] = []
        /// Options with a value that may be given more than once.
        package var repeatable: [String] = []

        /// Names the options; every name once.
        package init(flags: [String] = [], single: [String] = [], repeatable: [String] = []) {
            self.flags = flags
            self.single = single
            self.repeatable = repeatable
        }
    }

    private var flagsGiven: [String] = []
    /// The options given with values, in the order of their first appearance, each with its values in order.
    private var values: [(name: String, values: [String])] = []
    /// Whether the line had `--`.
    package private(set) var hasTerminator = false
    /// The words after `--`.
    package private(set) var command: [String] = []

    /// Reads `arguments`, or is nil when they hold anything but `options` as described above.
    package init?(_ arguments: [String], options: Options) {
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let word = arguments[index]
            index += 1
            if word == "--" {
                hasTerminator = true
                command = Array(arguments[index...])
                return
            }
            guard word.hasPrefix("--") else { return nil }
            let name = String(word.dropFirst(2))
            if options.flags.contains(name) {
                guard !flagsGiven.contains(name) else { return nil }
                flagsGiven.append(name)
                continue
            }
            let repeatable = options.repeatable.contains(name)
            guard repeatable || options.single.contains(name), index < arguments.endIndex else { return nil }
            let value = arguments[index]
            index += 1
            guard !value.hasPrefix("-") else { return nil }
            if let given = values.firstIndex(where: { $0.name == name }) {
                guard repeatable else { return nil }
                values[given].values.append(value)
            } else {
                values.append((name, [value]))
            }
        }
    }

    /// Whether flag `name` was given.
    package func flag(_ name: String) -> Bool { flagsGiven.contains(name) }

    /// The value of option `name`, if given.
    package func value(_ name: String) -> String? { all(name).last }

    /// Every value of repeatable option `name`, in order.
    package func all(_ name: String) -> [String] { values.first { $0.name == name }?.values ?? [] }
}
