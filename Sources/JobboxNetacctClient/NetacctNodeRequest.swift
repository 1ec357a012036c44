import JobboxCore

/// One request to the node service (`netacct --node`): a single line, at most `maximumLength` bytes with its
/// newline. The answer is ClassAd lines (ads separated by a blank line), or one `JobboxNetacctError` line.
///
/// - `self`: the caller's own cgroup (its unified, `0::`, line of /proc/PID/cgroup).
/// - `cgroup PATH`: the cgroup at PATH, as /proc/PID/cgroup writes it; the caller's own or one below it (root:
///   any below NETWORK_ACCOUNTING_CGROUP).
/// - `all`: every cgroup below NETWORK_ACCOUNTING_CGROUP (root only).
/// - `join PATH`: move the asking process into PATH, a cgroup root delegated to the caller's user
///   (`cg-exec --delegate-to`), which the kernel does not let the user do itself; the answer is PATH's ad.
///
/// A cgroup delegated to the caller's user may also be read with `cgroup PATH` wherever the caller runs.
package enum NetacctNodeRequest: Sendable, Equatable {
    case current
    case cgroup(String)
    case all
    case join(String)

    /// Requests longer than this (newline included) are refused unread.
    package static let maximumLength = 4096

    /// The attribute of an error answer.
    package static let errorAttribute = "JobboxNetacctError"

    /// The line sent, newline included.
    package var line: String {
        switch self {
        case .current: return "self\n"
        case .cgroup(let path): return "cgroup \(path)\n"
        case .all: return "all\n"
        case .join(let path): return "join \(path)\n"
        }
    }

    /// The request in `line` (without its newline), or a reason it is refused.
    package static func parse(_ line: Substring) -> Result<NetacctNodeRequest, NetacctNodeRefusal> {
        if line == "self" { return .success(.current) }
        if line == "all" { return .success(.all) }
        for (verb, make) in [("cgroup ", NetacctNodeRequest.cgroup), ("join ", NetacctNodeRequest.join)] where line.hasPrefix(verb) {
            guard let clean = cleanCgroupPath(String(line.dropFirst(verb.count))) else {
                return .failure(NetacctNodeRefusal("not a cgroup path: give an absolute path without '.', '..', or empty components"))
            }
            return .success(make(clean))
        }
        return .failure(NetacctNodeRefusal("unknown request: give self, cgroup PATH, join PATH or all"))
    }

    /// `path` when it is an absolute cgroup path with printable components other than `.` and `..`, without a
    /// trailing slash (`/` stays `/`); nil otherwise.
    package static func cleanCgroupPath(_ path: String) -> String? {
        guard path.hasPrefix("/"), path.utf8.count < maximumLength else { return nil }
        if path == "/" { return path }
        let components = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        for component in components {
            guard !component.isEmpty, component != ".", component != "..", component.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { return nil }
        }
        return path
    }

    /// Whether `requested` is `own` or a cgroup below it (both clean paths).
    package static func isWithin(_ requested: String, _ own: String) -> Bool {
        own == "/" || requested == own || requested.hasPrefix(own + "/")
    }
}

/// Why the node service refused a request: the text of its error line.
package struct NetacctNodeRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    package let reason: String
    package init(_ reason: String) { self.reason = reason }
    package var description: String { reason }

    /// The answer line.
    package var line: String {
        var ad = ClassAd()
        ad.set(NetacctNodeRequest.errorAttribute, reason)
        return (try? ClassAdWriter.render(ad)) ?? "\(NetacctNodeRequest.errorAttribute) = \"refused\"\n"
    }
}
