import Glibc
import JobboxNetacctClient
import Testing

@testable import JobboxNetwork

/// What a client of the node service may send, and who may read what: the parsing and the rule, without a kernel
/// (the service end to end is in NetacctNodeKernelTests).
@Suite("Hostile: the node service's requests")
struct NetacctNodeHostileTests {
    @Test("Only self, all, and cgroup or join with a clean absolute path are requests")
    func parsing() {
        #expect(NetacctNodeRequest.parse("self") == .success(.current))
        #expect(NetacctNodeRequest.parse("all") == .success(.all))
        #expect(NetacctNodeRequest.parse("cgroup /a/b") == .success(.cgroup("/a/b")))
        #expect(NetacctNodeRequest.parse("cgroup /") == .success(.cgroup("/")))
        #expect(NetacctNodeRequest.parse("join /a/main") == .success(.join("/a/main")))
        #expect(NetacctNodeRequest.join("/a/main").line == "join /a/main\n")
        for bad in [
            "", "SELF", "self ", " self", "cgroup", "cgroup ", "cgroup a/b", "cgroup /a/../b", "cgroup /a/./b", "cgroup //a", "cgroup /a/", "cgroup /a\u{7f}",
            "cgroup /a b", "cgroup /a\tb", "cgroup /a\u{0}b", "join", "join ", "join a", "join /a/../b", "join /a b", "JOIN /a", "join  /a",
        ] {
            guard case .failure = NetacctNodeRequest.parse(Substring(bad)) else {
                Issue.record("accepted \(bad.debugDescription)")
                continue
            }
        }
    }

    @Test("A caller may read its own cgroup and those below it, not a sibling whose name starts with its own, nor its parent")
    func within() {
        #expect(NetacctNodeRequest.isWithin("/u/job", "/u/job"))
        #expect(NetacctNodeRequest.isWithin("/u/job/main", "/u/job"))
        #expect(!NetacctNodeRequest.isWithin("/u/job2", "/u/job"))
        #expect(!NetacctNodeRequest.isWithin("/u", "/u/job"))
        #expect(!NetacctNodeRequest.isWithin("/", "/u/job"))
        #expect(NetacctNodeRequest.isWithin("/anything", "/"))
    }

    @Test("A request is one newline-terminated line within the limit")
    func framing() {
        let service = NodeService(
            NodeServiceOptions(
                accountingCgroup: "/", pinDirectory: "/nonexistent", socketPath: "/nonexistent", stateDirectory: "/nonexistent", internalIPv4: [],
                internalIPv6: []),
            diagnostics: .init(tool: "netacct"))
        #expect(service.request(in: Array("self\n".utf8)) == .success(.current))
        #expect(service.request(in: Array("self".utf8)) == .failure(NetacctNodeRefusal("the request did not end with a newline")))
        #expect(service.request(in: Array("self\nall\n".utf8)) == .failure(NetacctNodeRefusal("one request per connection")))
        #expect(service.request(in: [0xFF, 0xFE, 0x0A]) == .failure(NetacctNodeRefusal("the request is not UTF-8")))
        let long = Array(("cgroup /" + String(repeating: "a", count: NetacctNodeRequest.maximumLength)).utf8)
        #expect(service.request(in: long) == .failure(NetacctNodeRefusal("the request is longer than 4096 bytes")))
        #expect(service.request(in: long + [0x0A]) == .failure(NetacctNodeRefusal("the request is longer than 4096 bytes")))
    }

    @Test("One user holds at most 8 of the 64 client slots, users together leave the last 8 to root")
    func clientSlots() {
        let options = NodeServiceOptions(
            accountingCgroup: "/", pinDirectory: "/nonexistent", socketPath: "/nonexistent", stateDirectory: "/nonexistent", internalIPv4: [],
            internalIPv6: [])
        let refusal = { (uid: uid_t, open: [uid_t]) in NodeService.refusal(uid: uid, open: open, options: options)?.line }
        #expect(refusal(1000, Array(repeating: 1000, count: 7)) == nil)
        #expect(refusal(1000, Array(repeating: 1000, count: 8))?.contains("uid 1000 has 8 requests open") == true)
        // The user that holds its 8 keeps only itself out: another user and root are served.
        #expect(refusal(1001, Array(repeating: 1000, count: 8)) == nil)
        #expect(refusal(0, Array(repeating: 1000, count: 8)) == nil)
        // Seven users with 8 each leave 8 slots: root's alone.
        let crowd = (1000..<1007).flatMap { Array(repeating: uid_t($0), count: 8) }
        #expect(refusal(2000, crowd)?.contains("are root's") == true)
        #expect(refusal(0, crowd) == nil)
        #expect(refusal(0, crowd + Array(repeating: 0, count: 8))?.contains("the service is busy (64 clients)") == true)
    }
}
