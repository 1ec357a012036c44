/// A command line of long options and a command after `--`, read without ArgumentParser for a tool's fast path.
///
/// It reads only lines whose meaning to ArgumentParser is plain, and is nil for anything else, which then goes
/// to ArgumentParser (with its errors and help): a name it was not given, `--name=value`, a short option, a
/// word before `--`, a value that is missing or starts with `-`, and any option but a repeatable one given twice.
package struct FastCommandLine: Sendable {
    /// The option names (without `--`) a tool's fast path takes.
    package struct Options: Sendable {
        /// Options without a value.
        package var flags: Set<String> = []
        /// Options with one value.
        package var single: Set<String> = []
        /// Options with a value that may be given more than once.
        package var repeatable: Set<String> = []

        /// Names the options; every name once.
        package init(flags: Set<String> = [], single: Set<String> = [], repeatable: Set<String> = []) {
            self.flags = flags
            self.single = single
            self.repeatable = repeatable
        }
    }

    private var flagsGiven: Set<String> = []
    private var values: [String: [String]] = [:]
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
                guard flagsGiven.insert(name).inserted else { return nil }
                continue
            }
            let repeatable = options.repeatable.contains(name)
            guard repeatable || options.single.contains(name), index < arguments.endIndex else { return nil }
            let value = arguments[index]
            index += 1
            guard !value.hasPrefix("-"), repeatable || values[name] == nil else { return nil }
            values[name, default: []].append(value)
        }
    }

    /// Whether flag `name` was given.
    package func flag(_ name: String) -> Bool { flagsGiven.contains(name) }

    /// The value of option `name`, if given.
    package func value(_ name: String) -> String? { values[name]?.last }

    /// Every value of repeatable option `name`, in order.
    package func all(_ name: String) -> [String] { values[name] ?? [] }
}
