import CNetacctBPF
import JobboxCgroups
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxNetwork
@testable import NetacctBPFObject

@Suite("netacct bpf: IPv6 networks, the embedded object, leases")
struct NetacctBPFUnitTests {
    @Test(
        "IPv6 addresses parse in every RFC 4291 form and print in RFC 5952's",
        arguments: [
            ("2001:db8::1", "2001:db8::1"), ("::1", "::1"), ("::", "::"), ("fd00::", "fd00::"),
            ("2001:0DB8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"), ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
            ("::ffff:10.0.0.1", "::ffff:a00:1"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"), ("1::8", "1::8"),
        ])
    func ipv6Parsing(text: String, canonical: String) throws {
        #expect(try #require(IPv6Address(parsing: text)).description == canonical)
    }

    @Test(
        "malformed IPv6 addresses are refused",
        arguments: ["", ":", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "g::", "fe80::1%eth0", "1:2:3:4:5:6:7::8:9", "::1.2.3"])
    func ipv6Malformed(text: String) {
        #expect(IPv6Address(parsing: text) == nil)
    }

    @Test("IPv6 networks: host bits refused, bare addresses are /128")
    func ipv6Networks() throws {
        #expect(IPv6Network(parsing: "fd00::/8")?.description == "fd00::/8")
        #expect(IPv6Network(parsing: "2001:db8::1")?.prefixLength == 128)
        #expect(IPv6Network(parsing: "fd00::1/8") == nil)
        #expect(IPv6Network(parsing: "fd00::/129") == nil)
        #expect(IPv6Network(parsing: "2001:db8:8000::/33")?.prefixLength == 33)
        #expect(IPv6Network(parsing: "2001:db8:4000::/33") == nil)
    }

    @Test("a mixed list splits by family; one bad item refuses the list")
    func mixedList() throws {
        let list = try #require(IPNetwork.parseList("10.0.0.0/8, fd00::/8 192.168.0.0/16,2001:db8::/32"))
        #expect(list.v4.map(\.description) == ["10.0.0.0/8", "192.168.0.0/16"])
        #expect(list.v6.map(\.description) == ["fd00::/8", "2001:db8::/32"])
        #expect(IPNetwork.parseList("10.0.0.0/8,fd00::1/8") == nil)
    }

    @Test("NETWORK_INTERNAL takes IPv6 prefixes and NETWORK_BACKEND takes bpf")
    func config() throws {
        let config = try JobboxConfig.parse("NETWORK_INTERNAL = 10.0.0.0/8,fd00::/8\nNETWORK_BACKEND = bpf\n", path: "test.conf")
        #expect(config.networkInternal.map(\.description) == ["10.0.0.0/8"])
        #expect(config.networkInternalIPv6.map(\.description) == ["fd00::/8"])
        #expect(config.networkBackend == .bpf)
    }

    @Test("the build embedded a BPF ELF object (EM_BPF) compiled from source")
    func embeddedObject() throws {
        let object = try #require(NetacctBPFObject.bytes())
        #expect(object.count > 64)
        #expect(Array(object.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46])
        // e_machine at offset 18, little-endian: 247 is EM_BPF.
        #expect(UInt16(object[18]) | UInt16(object[19]) << 8 == 247)
    }

    /// Base64 of `bytes`, written here independently of the decoder under test.
    static func base64(_ bytes: [UInt8]) -> String {
        let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        var text = ""
        for start in stride(from: 0, to: bytes.count, by: 3) {
            let chunk = Array(bytes[start..<min(start + 3, bytes.count)])
            let value = chunk.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (16 - 8 * UInt32($1.offset)) }
            for index in 0..<4 {
                text.append(index <= chunk.count ? letters[Int(value >> (18 - 6 * UInt32(index)) & 63)] : "=")
            }
        }
        return text
    }

    @Test("base64: padding only at the end, no stray characters")
    func base64() {
        func decode(_ text: String) -> [UInt8]? { Array(text.utf8).withUnsafeBufferPointer { NetacctBPFObject.decodeBase64($0) } }
        #expect(decode("aGk=") == Array("hi".utf8))
        #expect(decode("aGV5") == Array("hey".utf8))
        #expect(decode("aA==") == Array("h".utf8))
        #expect(decode("a=Gk") == nil)
        #expect(decode("aGk") == nil)
        #expect(decode("aG k") == nil)
        #expect(decode("aGk=aGk=") == nil)  // padding before the last group
        #expect(decode("A===") == nil)  // three '='
        #expect(decode("aG?5aGk=") == nil)  // a stray character before the last group
        #expect(decode("aGV5aA==") == Array("heyh".utf8))
        #expect(decode("") == [])
        let all = (0...255).map { UInt8($0) }
        #expect(decode(Self.base64(all)) == all)
    }

    @Test("a bpf lease is believed only when its cgroup is the one netacct names for its job")
    func leaseValidation() throws {
        let leases = try BPFTestSupport.leases(stateDirectory: "/nonexistent")
        guard let mount = try CgroupLayout.current().unified?.mountPoint else { return }
        let owner = ProcessIdentity(pid: 1, startTime: 1)
        func lease(_ path: String, made: Bool = true, job: String = "12.0") -> BPFJobLease {
            BPFJobLease(job: job, owner: owner, cgroup: BPFJobCgroup(path: path, made: made), cgroupID: 5, countersMapID: 9)
        }
        let good = lease(mount + "/a/netacct_12_0")
        #expect(leases.validate(good, fileName: "netacct_12_0.lease") == nil)
        #expect(BPFJobLease(classAd: good.classAd) == good)
        #expect(leases.validate(lease(mount + "/a/job_12_0", made: false), fileName: "job_12_0.lease") == nil)
        #expect(leases.validate(good, fileName: "other.lease") != nil)
        #expect(leases.validate(lease(mount + "/a/netacct_13_0"), fileName: "netacct_13_0.lease") != nil)
        #expect(leases.validate(lease(mount + "/../etc/netacct_12_0"), fileName: "netacct_12_0.lease") != nil)
        #expect(leases.validate(lease("/etc/netacct_12_0"), fileName: "netacct_12_0.lease") != nil)
        #expect(leases.validate(lease(mount + "/netacct_12_0", made: false), fileName: "netacct_12_0.lease") != nil)
        #expect(leases.validate(lease(mount + "/x/netacct_bad", job: "bad job"), fileName: "netacct_bad.lease") != nil)
    }
}

extension NetacctBPFUnitTests {
    static func entry(_ octets: [UInt8], _ length: Int, kind: Int32 = JB_NETACCT_REMOTE_INTERNAL) -> BPFAccounting.NetworkEntry {
        BPFAccounting.NetworkEntry(family: JB_NETACCT_FAMILY_IPV4, octets: octets, length: length, kind: kind) { "test" }
    }

    @Test("the service's networks compare as the trie sees them: order, host bits and overwritten entries do not count; a kind or a prefix does")
    func networksCompareAsTheTrieSeesThem() {
        let campus = Self.entry([10, 0, 0, 0], 8)
        let lab = Self.entry([192, 168, 0, 0], 16)
        #expect(BPFNodeCounting.networks([campus, lab]) == BPFNodeCounting.networks([lab, campus]))
        // Bits past the prefix are not matched by the trie.
        #expect(BPFNodeCounting.networks([Self.entry([10, 1, 2, 3], 8)]) == BPFNodeCounting.networks([campus]))
        // A later entry of the same key replaces the earlier one, as a map update does.
        let loopbackLater = [Self.entry([10, 0, 0, 0], 8, kind: JB_NETACCT_REMOTE_LOOPBACK), campus]
        #expect(BPFNodeCounting.networks(loopbackLater) == BPFNodeCounting.networks([campus]))
        #expect(BPFNodeCounting.networks([campus, Self.entry([10, 0, 0, 0], 8, kind: JB_NETACCT_REMOTE_LOOPBACK)]) != BPFNodeCounting.networks([campus]))
        #expect(BPFNodeCounting.networks([Self.entry([10, 0, 0, 0], 9)]) != BPFNodeCounting.networks([campus]))
        #expect(BPFNodeCounting.networks([campus, lab]) != BPFNodeCounting.networks([campus]))
        #expect(BPFNodeCounting.networks([campus, lab]).count == 2)
    }
}
