import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// An entry of the node's user database.
package struct UserAccount: Sendable, Equatable {
    /// The login name.
    package var name: String
    /// The user id.
    package var uid: uid_t
    /// The primary group id.
    package var gid: gid_t

    /// An entry from its parts.
    package init(name: String, uid: uid_t, gid: gid_t) {
        self.name = name
        self.uid = uid
        self.gid = gid
    }
}

/// The node's user and group databases, asked through `getent`.
///
/// Why a child and not `getpwnam_r`: all five tools are static executables, and a static glibc cannot load the
/// NSS modules batch nodes take their users from (sss, ldap; systemd on Debian): it brings the node's shared libc in beside its own, and a lookup of an unknown user crashed so here. getent runs
/// the node's own glibc with the node's nsswitch.conf, so every module answers as it does for `id`. One exec
/// (about 1 ms) per lookup, and lookups happen only when a tool is given a user or group.
///
/// Trusted: getent at its system path, started with an empty environment, and the node's NSS configuration
/// behind it (root's, as for every tool that looks users up).
package enum UserDatabase {
    /// The user `key` names: a login name, or a decimal uid (getent reads an all-digit key as a uid). Nil when the
    /// database has no such user.
    package static func user(_ key: String) throws(JobboxError) -> UserAccount? {
        try lookUp("passwd", key, what: "user").flatMap { parsePasswd($0) }
    }

    /// The user with uid `uid`; nil when the database has none.
    package static func user(id uid: uid_t) throws(JobboxError) -> UserAccount? {
        try user(String(uid))
    }

    /// The group `key` names (a name, or a decimal gid); nil when the database has no such group.
    package static func group(_ key: String) throws(JobboxError) -> gid_t? {
        try lookUp("group", key, what: "group").flatMap { parseGroup($0) }
    }

    /// The user `key` names (a name or a decimal uid) and the groups the group databases give it (getent's
    /// `initgroups`, which asks each service as `initgroups(3)` does; without the primary group, see
    /// `initgroups(primary:listed:)`); nil when there is no such user. For a name both questions are asked at
    /// once: two getent runs in the time of one, on the path of every job that runs as its user.
    package static func userAndGroups(_ key: String) throws(JobboxError) -> (account: UserAccount, listedGroups: [gid_t])? {
        if parseID(key) != nil {
            guard let account = try user(key) else { return nil }
            return (account, try listedGroups(of: account.name, finish(start("initgroups", account.name, what: "groups of user"))))
        }
        let passwd = try start("passwd", key, what: "user")
        let initgroups = try start("initgroups", key, what: "groups of user")
        guard let account = try finish(passwd).flatMap({ parsePasswd($0) }) else { return nil }
        return (account, try listedGroups(of: key, finish(initgroups)))
    }

    /// The groups `initgroups(name, primary)` sets: `primary` first, then the listed ones not already there.
    package static func initgroups(primary: gid_t, listed: [gid_t]) -> [gid_t] {
        var groups = [primary]
        for gid in listed where !groups.contains(gid) { groups.append(gid) }
        return groups
    }

    private static func listedGroups(of name: String, _ line: String?) throws(JobboxError) -> [gid_t] {
        guard let listed = parseInitgroups(line ?? "", name: name) else {
            throw JobboxError.invalid("cannot look up groups of user", "'\(name)'", "getent printed an unreadable line")
        }
        return listed
    }

    /// getent's one line for `key` in `database`, or nil when the key is not there (getent's status 2).
    private static func lookUp(_ database: String, _ key: String, what: String) throws(JobboxError) -> String? {
        try finish(start(database, key, what: what))
    }

    /// A getent run asking `database` for `key`; nil for a key getent could read as something else (an option,
    /// or several keys), which names nothing in any database.
    private static func start(_ database: String, _ key: String, what: String) throws(JobboxError) -> Lookup? {
        guard !key.isEmpty, !key.hasPrefix("-"), key.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { return nil }
        guard let getent = executablePath else {
            throw JobboxError.invalid("cannot look up \(what)", "'\(key)'", "getent is not installed (\(candidatePaths.joined(separator: ", ")))")
        }
        do {
            return Lookup(child: try ChildProcess.start([getent, "--", database, key], environment: [:], output: .capture), key: key, what: what)
        } catch {
            throw JobboxError.invalid("cannot look up \(what)", "'\(key)'", error.description)
        }
    }

    /// The line a lookup printed, nil when getent said the key is not there (status 2).
    private static func finish(_ lookup: Lookup?) throws(JobboxError) -> String? {
        guard let lookup else { return nil }
        let result = lookup.child.finish()
        switch result.status {
        case 0: return result.output.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? ""
        case 2: return nil
        default: throw JobboxError.invalid("cannot look up \(lookup.what)", "'\(lookup.key)'", "getent ended with status \(result.status)")
        }
    }

    /// A getent run and what it was asked, for its error line.
    private struct Lookup {
        let child: ChildProcess.RunningChild
        let key: String
        let what: String
    }

    /// Where glibc installs getent (libc-bin, glibc-common); never searched in a PATH the caller chose.
    package static let candidatePaths = ["/usr/bin/getent", "/bin/getent"]

    private static var executablePath: String? {
        candidatePaths.first { access($0, X_OK) == 0 }
    }

    /// `name:password:uid:gid:gecos:home:shell`.
    package static func parsePasswd(_ line: String) -> UserAccount? {
        let fields = line.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count == 7, !fields[0].isEmpty, let uid = parseID(fields[2]), let gid = parseID(fields[3]) else { return nil }
        return UserAccount(name: String(fields[0]), uid: uid, gid: gid)
    }

    /// `name:password:gid:members`.
    package static func parseGroup(_ line: String) -> gid_t? {
        let fields = line.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count == 4, !fields[0].isEmpty else { return nil }
        return parseID(fields[2])
    }

    /// `name gid gid ...` (getent pads the name with spaces); nil unless it is `name`'s line of decimal ids.
    package static func parseInitgroups(_ line: String, name: String) -> [gid_t]? {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard words.first.map(String.init) == name else { return line.isEmpty ? [] : nil }
        var gids: [gid_t] = []
        for word in words.dropFirst() {
            guard let gid = parseID(word) else { return nil }
            gids.append(gid)
        }
        return gids
    }

    /// A decimal id below 2^32-1 (which means "unchanged" to the kernel).
    package static func parseID<Text: StringProtocol>(_ text: Text) -> UInt32? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = UInt32(text), value != UInt32.max else { return nil }
        return value
    }
}
