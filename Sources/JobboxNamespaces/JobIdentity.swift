import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Who the job runs as. Resolved from the user and group databases before any namespace is made: NSS may load
/// modules, open files and talk to daemons, none of which may happen between fork and exec.
package struct JobIdentity: Sendable, Equatable {
    /// The user id.
    package var uid: uid_t
    /// The primary group id.
    package var gid: gid_t
    /// The supplementary groups, as `initgroups` would set them (the primary group included).
    package var groups: [gid_t]
    /// The user's name, when the user database has one.
    package var userName: String?

    /// An identity from its parts.
    package init(uid: uid_t, gid: gid_t, groups: [gid_t], userName: String?) {
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.userName = userName
    }

    /// The calling process's own real ids (its supplementary groups are not needed: they are never set back).
    package static var caller: JobIdentity {
        JobIdentity(uid: getuid(), gid: getgid(), groups: [], userName: nil)
    }

    /// Resolves `--user` and `--group` (names or numbers). A user without `--group` gets its primary group from
    /// the user database; the supplementary groups are the user's groups from the group database (none when the
    /// uid has no name). `--group` alone keeps the caller's uid, with that group as its only group.
    package static func resolve(user: String?, group: String?, caller: JobIdentity) throws(JobboxError) -> JobIdentity {
        let explicitGroup = try group.map { text throws(JobboxError) in try lookUpGroup(text) }
        guard let user else {
            return JobIdentity(uid: caller.uid, gid: explicitGroup ?? caller.gid, groups: explicitGroup.map { [$0] } ?? [], userName: nil)
        }
        let account = try lookUpUser(user)
        guard let gid = explicitGroup ?? account.gid else {
            throw JobboxError.invalid("cannot run as user", "'\(user)'", "uid \(account.uid) has no entry in the user database: give --group")
        }
        let groups = account.name.map { supplementaryGroups(of: $0, primary: gid) } ?? [gid]
        return JobIdentity(uid: account.uid, gid: gid, groups: groups, userName: account.name)
    }

    /// The user `text` names (a name, else a number): its uid, and its name and primary gid when known.
    static func lookUpUser(_ text: String) throws(JobboxError) -> (uid: uid_t, gid: gid_t?, name: String?) {
        if let entry = try passwdEntry(name: text) { return entry }
        if let number = parseID(text) {
            if let entry = try passwdEntry(uid: number) { return entry }
            return (number, nil, nil)
        }
        throw JobboxError.invalid("unknown user", "'\(text)'", "not in the user database")
    }

    /// The group `text` names (a name, else a number).
    static func lookUpGroup(_ text: String) throws(JobboxError) -> gid_t {
        var buffer = [CChar](repeating: 0, count: 4096)
        while true {
            var entry = group()
            var result: UnsafeMutablePointer<group>?
            let status = buffer.withUnsafeMutableBufferPointer { getgrnam_r(text, &entry, $0.baseAddress, $0.count, &result) }
            if status == ERANGE && buffer.count < 1 << 20 {
                buffer = [CChar](repeating: 0, count: buffer.count * 4)
                continue
            }
            if status == 0, result != nil { return entry.gr_gid }
            if let number = parseID(text) { return number }
            if status != 0 && status != ENOENT {
                throw JobboxError.system("cannot look up group", "'\(text)'", Errno(rawValue: status))
            }
            throw JobboxError.invalid("unknown group", "'\(text)'", "not in the group database")
        }
    }

    /// The groups `initgroups(name, primary)` would set: `primary` plus every group listing `name` as a member.
    static func supplementaryGroups(of name: String, primary: gid_t) -> [gid_t] {
        var count: Int32 = 32
        while true {
            var groups = [gid_t](repeating: 0, count: Int(count))
            var found = count
            let status = groups.withUnsafeMutableBufferPointer { getgrouplist(name, primary, $0.baseAddress, &found) }
            if status >= 0 { return Array(groups.prefix(Int(found))) }
            // Too small: `found` now says how many there are.
            count = max(found, count * 2)
        }
    }

    private static func passwdEntry(name: String) throws(JobboxError) -> (uid: uid_t, gid: gid_t?, name: String?)? {
        try withPasswd(describing: name) { entry, buffer, size, result in getpwnam_r(name, entry, buffer, size, result) }
    }

    private static func passwdEntry(uid: uid_t) throws(JobboxError) -> (uid: uid_t, gid: gid_t?, name: String?)? {
        try withPasswd(describing: String(uid)) { entry, buffer, size, result in getpwuid_r(uid, entry, buffer, size, result) }
    }

    private static func withPasswd(
        describing what: String,
        _ lookUp: (UnsafeMutablePointer<passwd>, UnsafeMutablePointer<CChar>, Int, UnsafeMutablePointer<UnsafeMutablePointer<passwd>?>) -> Int32
    ) throws(JobboxError) -> (uid: uid_t, gid: gid_t?, name: String?)? {
        var buffer = [CChar](repeating: 0, count: 4096)
        while true {
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let status = buffer.withUnsafeMutableBufferPointer { bytes -> Int32 in
                guard let base = bytes.baseAddress else { return ERANGE }
                return lookUp(&entry, base, bytes.count, &result)
            }
            if status == ERANGE && buffer.count < 1 << 20 {
                buffer = [CChar](repeating: 0, count: buffer.count * 4)
                continue
            }
            if status == 0, result != nil {
                return (entry.pw_uid, entry.pw_gid, entry.pw_name.map { String(cString: $0) })
            }
            if status == 0 || status == ENOENT || status == ESRCH { return nil }
            throw JobboxError.system("cannot look up user", "'\(what)'", Errno(rawValue: status))
        }
    }

    /// A decimal id below 2^32-1 (which means "unchanged" to the kernel).
    static func parseID(_ text: String) -> UInt32? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = UInt32(text), value != UInt32.max else { return nil }
        return value
    }

    /// The job ad's `Owner` (`$_CONDOR_JOB_AD`), the user HTCondor runs the job as; nil when there is no ad.
    package static func ownerFromJobAd(_ environment: Environment) throws(JobboxError) -> String? {
        try jobAdOwner(environment)?.name
    }

    /// The job ad's `Owner`, with the uid that owns the ad file and its path; nil when there is no ad.
    ///
    /// The ad lies in the job's scratch directory, which the job's user can write, so root trusts it only so far:
    /// it is read by `JobAdFile`'s limits and `GuardedPath`'s rule (no symlink the job could have made, a regular
    /// file with one link), and its owner is taken from the same descriptor the text is read from (no swap in
    /// between). Its `Owner` is believed only when root owns the
    /// file, or when it names the file's own owner (the planner checks that: a user who rewrote the ad can name
    /// only themselves).
    package static func jobAdOwner(_ environment: Environment) throws(JobboxError) -> (name: String, fileOwner: uid_t, path: String)? {
        guard let path = environment["_CONDOR_JOB_AD"], !path.isEmpty else { return nil }
        let (ad, fileOwner) = try JobAdFile.readWithOwner(path, for: "cannot read job ad")
        guard let owner = ad.string("Owner"), !owner.isEmpty else {
            throw JobboxError.invalid("cannot find the job's user in", path, "it has no Owner string: pass --user")
        }
        return (owner, fileOwner, path)
    }
}
