/// Where `BASE_CGROUP` lives in each hierarchy.
package enum CgroupParent: Sendable, Equatable, CustomStringConvertible {
    /// The root of each hierarchy (`/`).
    case root
    /// The caller's own cgroup in each hierarchy (`self`): HTCondor's v2 layout, and where tests must work.
    case current
    /// A fixed cgroup path, the same in every hierarchy.
    case path(String)

    /// Parses `/`, `self` or an absolute cgroup path without `..`; nil otherwise.
    package init?(parsing text: String) {
        if text == "/" {
            self = .root
        } else if text == "self" {
            self = .current
        } else if text.hasPrefix("/"), CgroupParent.isSafeRelative(String(text.dropFirst()).trimmingTrailingSlashes()) {
            self = .path(text.trimmingTrailingSlashes())
        } else {
            return nil
        }
    }

    /// Whether `path` is a relative cgroup path of one or more plain components (no `..`, `.`, or empty parts).
    package static func isSafeRelative(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        return !parts.isEmpty && parts.allSatisfy { $0 != "." && $0 != ".." && !$0.isEmpty && !$0.contains("\n") }
    }

    package var description: String {
        switch self {
        case .root: return "/"
        case .current: return "self"
        case .path(let path): return path
        }
    }
}
