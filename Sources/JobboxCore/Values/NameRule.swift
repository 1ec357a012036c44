/// The rule for names that become directory entries and kernel object names (job ids, chroot names): 1 to 64
/// ASCII letters, digits and a few punctuation characters, not starting with one that would hide the name (`.`)
/// or make it read as an option (`-`).
package struct NameRule {
    /// The punctuation allowed besides letters and digits, in the order the error message lists it.
    package let punctuation: [Unicode.Scalar]
    /// Characters a name may not start with. An array, as `punctuation`: a `Set` of characters would make the
    /// runtime look up Character's Hashable conformance by a scan of the whole binary at every tool's start.
    package let forbiddenFirst: [Unicode.Scalar]

    /// A rule allowing `punctuation` besides letters and digits, and no name starting with one of `forbiddenFirst`.
    package init(punctuation: [Unicode.Scalar], forbiddenFirst: [Unicode.Scalar]) {
        self.punctuation = punctuation
        self.forbiddenFirst = forbiddenFirst
    }

    /// Why `text` breaks the rule, or nil when it keeps it.
    package func problem(with text: String) -> String? {
        if text.isEmpty { return "it is empty" }
        if text.utf8.count > 64 { return "it is longer than 64 characters" }
        let allowed = text.unicodeScalars.allSatisfy { scalar in
            ("A"..."Z").contains(scalar) || ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) || punctuation.contains(scalar)
        }
        if !allowed { return "only letters, digits and \(punctuation.map(String.init).joined(separator: " ")) are allowed" }
        if let first = text.unicodeScalars.first, forbiddenFirst.contains(first) { return "it starts with '\(first)'" }
        return nil
    }
}
