/// A small set of names (cgroup controllers, mount options), kept as a sorted array without duplicates.
///
/// `Set<String>` would be the obvious type, but the first `Set<String>` a process makes has the Swift runtime look
/// up String's `Hashable` conformance by a scan of every conformance record in the binary: 0.24 M instructions and
/// the pages they sit on, at the start of every tool that reads the cgroup layout, for sets of a handful of names.
package struct NameSet: Sendable, Equatable, Sequence, ExpressibleByArrayLiteral, CustomStringConvertible {
    /// The names, in ascending order.
    package private(set) var names: [String] = []

    /// The empty set.
    package init() {}

    /// The set of `names` (duplicates dropped).
    package init(_ names: [String]) {
        for name in names { insert(name) }
    }

    /// The set of the literal's names.
    package init(arrayLiteral names: String...) {
        self.init(names)
    }

    /// Whether there is no name.
    package var isEmpty: Bool { names.isEmpty }

    /// How many names there are.
    package var count: Int { names.count }

    package var description: String { "[" + names.joined(separator: ", ") + "]" }

    /// Where `name` is, or where it would go.
    private func position(of name: String) -> (index: Int, found: Bool) {
        var low = 0
        var high = names.count
        while low < high {
            let middle = (low + high) / 2
            if names[middle] < name { low = middle + 1 } else { high = middle }
        }
        return (low, low < names.count && names[low] == name)
    }

    /// Whether `name` is in the set.
    package func contains(_ name: String) -> Bool { position(of: name).found }

    /// Adds `name`; returns whether it was new.
    @discardableResult
    package mutating func insert(_ name: String) -> Bool {
        let (index, found) = position(of: name)
        if !found { names.insert(name, at: index) }
        return !found
    }

    /// Whether no name is in both sets.
    package func isDisjoint(with other: NameSet) -> Bool { !names.contains { other.contains($0) } }

    package func makeIterator() -> IndexingIterator<[String]> { names.makeIterator() }
}
