/// Absolute paths in the one spelling the planner compares: no `//`, no trailing `/`, no `.` or `..`.
package enum AbsolutePath {
    /// `text` normalised, or nil when it is relative, empty, or has `.`, `..` or a newline in it.
    package static func normalize(_ text: String) -> String? {
        guard text.hasPrefix("/"), !text.contains("\n"), !text.contains("\0") else { return nil }
        let parts = text.split(separator: "/")
        guard !parts.contains(where: { $0 == "." || $0 == ".." }) else { return nil }
        return "/" + parts.joined(separator: "/")
    }

    /// Whether `path` is `ancestor` or lies below it (both normalised).
    package static func isWithin(_ path: String, _ ancestor: String) -> Bool {
        ancestor == "/" || path == ancestor || path.hasPrefix(ancestor + "/")
    }

    /// The parent of a normalised `path` (`/` for `/x` and for `/`).
    package static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// The last component of a normalised `path` (empty for `/`).
    package static func lastComponent(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? ""
    }

    /// `path` without its leading `/` (`/var/tmp` gives `var/tmp`, `/` gives an empty string).
    package static func relative(_ path: String) -> String {
        String(path.drop(while: { $0 == "/" }))
    }

    /// `relative` below `base`: `base` itself when `relative` is empty, no doubled `/` when `base` is `/`.
    package static func join(_ base: String, _ relative: String) -> String {
        relative.isEmpty ? base : (base == "/" ? "/" + relative : base + "/" + relative)
    }
}
