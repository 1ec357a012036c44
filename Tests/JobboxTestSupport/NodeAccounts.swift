import Glibc

extension TestSupport {
    /// The uid and gid of the node's user `name`, through `getpwnam_r`.
    ///
    /// Why not `getpwnam`: tests run in parallel threads of one process, and `getpwnam` hands out one static
    /// record that another test's look-up overwrites between the call and the read (a CI run compared `nobody`
    /// with wrong ids; two threads of a C loop reproduce it).
    package static func passwdEntry(_ name: String) -> (uid: UInt32, gid: UInt32)? {
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getpwnam_r(name, &entry, &buffer, buffer.count, &found) == 0, found != nil else { return nil }
        return (entry.pw_uid, entry.pw_gid)
    }

    /// The gid of the node's group `name`, through `getgrnam_r` (for the reason `passwdEntry` gives).
    package static func groupID(_ name: String) -> UInt32? {
        var entry = group()
        var found: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65_536)
        guard getgrnam_r(name, &entry, &buffer, buffer.count, &found) == 0, found != nil else { return nil }
        return entry.gr_gid
    }
}
