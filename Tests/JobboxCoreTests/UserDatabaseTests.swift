import Foundation
import JobboxCore
import JobboxTestSupport
import Testing

/// The user and group databases through getent, against the node's own entries.
@Suite("user database")
struct UserDatabaseTests {
    @Test("names and ids of the node's users and groups; unknown or option-like keys name nothing")
    func lookUps() throws {
        #expect(try UserDatabase.user("root") == UserAccount(name: "root", uid: 0, gid: 0))
        #expect(try UserDatabase.user(id: 0) == UserAccount(name: "root", uid: 0, gid: 0))
        let nobody = try #require(TestSupport.passwdEntry("nobody"))
        #expect(try UserDatabase.user("nobody") == UserAccount(name: "nobody", uid: nobody.uid, gid: nobody.gid))
        #expect(try UserDatabase.user("jobbox-no-such-user") == nil)
        #expect(try UserDatabase.user(id: 4_294_967_290) == nil)
        // getent would read these as an option, two keys or nothing; no user has such a name.
        for key in ["-root", "--help", "root nobody", "", "root\n"] {
            #expect(try UserDatabase.user(key) == nil, "\(key)")
        }
        #expect(try UserDatabase.group("root") == 0)
        #expect(try UserDatabase.group("daemon") == TestSupport.groupID("daemon"))
        #expect(try UserDatabase.group("jobbox-no-such-group") == nil)
        #expect(try UserDatabase.userAndGroups("jobbox-no-such-user") == nil)
        let root = try #require(try UserDatabase.userAndGroups("root"))
        #expect(root.account == UserAccount(name: "root", uid: 0, gid: 0))
        #expect(UserDatabase.initgroups(primary: root.account.gid, listed: root.listedGroups).first == 0)
        #expect(UserDatabase.initgroups(primary: 5, listed: [7, 5, 9, 7]) == [5, 7, 9])
    }

    @Test(
        "a user's groups: the primary first, then every group listing the user, as id -G has them",
        .enabled(if: TestSupport.isRoot, TestSupport.needsRoot))
    func supplementaryGroups() throws {
        let user = try TestUser(prefix: "jbud")
        defer { user.remove() }
        let groupName = TestSupport.uniqueName("jbudg")
        let added = try TestSupport.run(["/usr/sbin/groupadd", groupName])
        #expect(added.status == 0, "\(added)")
        defer { _ = try? TestSupport.run(["/usr/sbin/groupdel", groupName]) }
        let joined = try TestSupport.run(["/usr/sbin/usermod", "-a", "-G", groupName, user.name])
        #expect(joined.status == 0, "\(joined)")
        let extra = try #require(try UserDatabase.group(groupName))
        #expect(extra != user.gid)
        // By name (both questions at once) and by uid (the name first, then its groups).
        for key in [user.name, String(user.uid)] {
            let found = try #require(try UserDatabase.userAndGroups(key))
            #expect(found.account == UserAccount(name: user.name, uid: user.uid, gid: user.gid))
            #expect(UserDatabase.initgroups(primary: found.account.gid, listed: found.listedGroups) == [user.gid, extra])
        }
        let id = try TestSupport.run(["id", "-G", user.name]).stdout.split(whereSeparator: \.isWhitespace).compactMap { UInt32($0) }
        #expect(id.sorted() == [user.gid, extra].sorted())
    }

    @Test("getent's lines: a passwd line needs seven fields and decimal ids; initgroups must be the user's line")
    func parsing() {
        #expect(UserDatabase.parsePasswd("a:x:1:2:gecos:/home/a:/bin/sh") == UserAccount(name: "a", uid: 1, gid: 2))
        #expect(UserDatabase.parsePasswd("a:x:1:2::/:") == UserAccount(name: "a", uid: 1, gid: 2))
        for line in ["a:x:1:2:g:/h", "a:x:1:2:g:/h:/s:more", ":x:1:2:g:/h:/s", "a:x:-1:2:g:/h:/s", "a:x:1:4294967295:g:/h:/s", "a:x: 1:2:g:/h:/s"] {
            #expect(UserDatabase.parsePasswd(line) == nil, "\(line)")
        }
        #expect(UserDatabase.parseGroup("g:x:7:a,b") == 7)
        #expect(UserDatabase.parseGroup("g:x:7") == nil)
        #expect(UserDatabase.parseInitgroups("alice                5 6", name: "alice") == [5, 6])
        #expect(UserDatabase.parseInitgroups("alice                ", name: "alice") == [])
        #expect(UserDatabase.parseInitgroups("", name: "alice") == [])
        #expect(UserDatabase.parseInitgroups("bob 5", name: "alice") == nil)
        #expect(UserDatabase.parseInitgroups("alice 5 x", name: "alice") == nil)
    }
}
