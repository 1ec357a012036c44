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
        if let found = try UserDatabase.userAndGroups(user) {
            let gid = explicitGroup ?? found.account.gid
            return JobIdentity(
                uid: found.account.uid, gid: gid, groups: UserDatabase.initgroups(primary: gid, listed: found.listedGroups), userName: found.account.name)
        }
        guard let uid = UserDatabase.parseID(user) else {
            throw JobboxError.invalid("unknown user", "'\(user)'", "not in the user database")
        }
        guard let gid = explicitGroup else {
            throw JobboxError.invalid("cannot run as user", "'\(user)'", "uid \(uid) has no entry in the user database: give --group")
        }
        return JobIdentity(uid: uid, gid: gid, groups: [gid], userName: nil)
    }

    /// The group `text` names (a name, else a number).
    static func lookUpGroup(_ text: String) throws(JobboxError) -> gid_t {
        if let gid = try UserDatabase.group(text) { return gid }
        if let number = UserDatabase.parseID(text) { return number }
        throw JobboxError.invalid("unknown group", "'\(text)'", "not in the group database")
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
