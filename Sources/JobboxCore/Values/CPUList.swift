/// A set of CPU (or memory node) numbers in the kernel's list form: `0-3,8`.
package struct CPUList: Sendable, Equatable, CustomStringConvertible {
    /// The numbers, ascending, without duplicates.
    package let members: [Int]

    /// The accepted forms, for error messages.
    package static let acceptedForms = "a list of numbers and ranges such as 0-3,8"

    /// Creates a list from numbers.
    package init(_ members: some Sequence<Int>) {
        self.members = Array(Set(members)).sorted()
    }

    /// Parses the kernel's list form; nil when malformed. An empty string is an empty list.
    package init?(parsing text: String) {
        let trimmed = text.trimmingASCIISpaces()
        var result: [Int] = []
        if trimmed.isEmpty {
            self.init([])
            return
        }
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 1 || bounds.count == 2,
                bounds.allSatisfy({ !$0.isEmpty && $0.count <= 6 && $0.allSatisfy(\.isASCIIDigit) }),
                let low = Int(bounds[0]), let high = Int(bounds[bounds.count - 1]), low <= high
            else { return nil }
            result.append(contentsOf: low...high)
        }
        self.init(result)
    }

    /// Parses `text` or throws an error naming `what` and the accepted forms.
    package static func parse(_ text: String, for what: String) throws(JobboxError) -> CPUList {
        guard let list = CPUList(parsing: text), !list.members.isEmpty else {
            throw JobboxError.invalid("invalid list for", what, "'\(text)' is not \(acceptedForms)")
        }
        return list
    }

    /// Whether every member of `self` is in `other`.
    package func isSubset(of other: CPUList) -> Bool {
        Set(members).isSubset(of: Set(other.members))
    }

    /// The canonical kernel form, ranges collapsed: `0-3,8`.
    package var description: String {
        var parts: [String] = []
        var index = 0
        while index < members.count {
            var end = index
            while end + 1 < members.count && members[end + 1] == members[end] + 1 { end += 1 }
            parts.append(end == index ? "\(members[index])" : "\(members[index])-\(members[end])")
            index = end + 1
        }
        return parts.joined(separator: ",")
    }
}
