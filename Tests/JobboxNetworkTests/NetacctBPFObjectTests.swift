import CNetacctBPF
import Foundation
import JobboxTestSupport
import Testing

@testable import NetacctBPFObject

/// netacct's loader reading its BPF object (`jb_bpf_object.c`), without the kernel: the embedded object is read,
/// anything cut, corrupted or beyond what the loader makes is refused with a reason, and never read out of bounds.
@Suite("netacct bpf: the loader's reading of the BPF object")
struct NetacctBPFObjectTests {
    /// nil when the loader would load `bytes` (the first `size` of them), else its reason.
    static func problem(_ bytes: [UInt8], size: Int? = nil) -> String? {
        var problem: UnsafePointer<CChar>? = nil
        let result = bytes.withUnsafeBytes { jb_netacct_bpf_check_object($0.baseAddress, size ?? $0.count, &problem) }
        return result == 0 ? nil : problem.map { String(cString: $0) } ?? "no reason given"
    }

    static func object() throws -> TestELF { TestELF(try #require(NetacctBPFObject.bytes())) }

    @Test("the embedded object is one the loader loads: its programs, its maps, its relocations")
    func embeddedObjectLoads() throws {
        let elf = try Self.object()
        #expect(Self.problem(elf.bytes) == nil)
        // The reader's view is this test's: four programs in the two cgroup_skb sections.
        let programs = elf.symbols.filter { $0.type == 2 }.map(\.name).sorted()
        #expect(programs == ["jb_job_egress", "jb_job_ingress", "jb_netacct_egress", "jb_netacct_ingress"])
    }

    @Test("an object cut short at any length is refused")
    func truncated() throws {
        let elf = try Self.object()
        var accepted: [Int] = []
        for size in 0..<elf.bytes.count where Self.problem(elf.bytes, size: size) == nil { accepted.append(size) }
        #expect(accepted.isEmpty, "accepted when cut to \(accepted.prefix(10))")
    }

    @Test("a section or the section table outside the object is refused")
    func sectionsOutside() throws {
        let elf = try Self.object()
        let size = UInt64(elf.bytes.count)
        for section in elf.sections where section.index > 0 {
            for (field, value) in [(24, size + 1), (24, UInt64.max - 7), (32, size + 1), (32, UInt64.max)] {
                var corrupt = elf
                corrupt.put64(section.headerOffset + field, value)
                let problem = Self.problem(corrupt.bytes)
                #expect(problem?.contains("lies outside") == true, "section \(section.name), field \(field) = \(value): \(problem ?? "accepted")")
            }
        }
        // e_shoff, e_shentsize, e_shnum, e_shstrndx.
        for (offset, width, value) in [(0x28, 8, size), (0x28, 8, UInt64.max - 63), (0x3A, 2, 40), (0x3C, 2, 0xFFFF), (0x3C, 2, 0), (0x3E, 2, 0xFFFF)] {
            var corrupt = elf
            if width == 8 { corrupt.put64(offset, value) } else { corrupt.put16(offset, UInt16(value)) }
            #expect(Self.problem(corrupt.bytes) != nil, "header field at \(offset) = \(value) accepted")
        }
    }

    @Test("an object for another machine, class or byte order is refused")
    func notBPF() throws {
        let elf = try Self.object()
        for (offset, value) in [(0, UInt8(0x7E)), (4, 1), (5, 2), (6, 0), (16, 2), (18, 62)] {
            var corrupt = elf
            corrupt.bytes[offset] = value
            #expect(Self.problem(corrupt.bytes) != nil, "byte \(offset) = \(value) accepted")
        }
    }

    @Test("corrupt string and symbol tables are refused")
    func corruptTables() throws {
        let elf = try Self.object()
        let symbols = try #require(elf.sections.first { $0.type == 2 })
        var corrupt = elf
        corrupt.put32(symbols.headerOffset + 40, 99)  // sh_link: no such string table
        #expect(Self.problem(corrupt.bytes)?.contains("symbol table") == true)
        corrupt = elf
        corrupt.put64(symbols.headerOffset + 56, 16)  // sh_entsize
        #expect(Self.problem(corrupt.bytes)?.contains("symbol table") == true)
        corrupt = elf
        corrupt.put32(try elf.symbol("jb_counters").entryOffset, 0xFFFF_FFF0)  // st_name beyond the strings
        #expect(Self.problem(corrupt.bytes) != nil)
        corrupt = elf
        corrupt.put32(try #require(elf.sections.first { $0.name == "license" }).headerOffset, 0xFFFF_FFF0)  // sh_name
        #expect(Self.problem(corrupt.bytes)?.contains("section name") == true)
    }

    @Test("random corruption is refused or read, never read out of bounds")
    func randomCorruption() throws {
        let elf = try Self.object()
        var state: UInt64 = 0x6A09_E667_F3BC_C908
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: state >> 33)
        }
        var refused = 0
        for _ in 0..<3000 {
            var corrupt = elf.bytes
            for _ in 0..<(1 + next() % 8) {
                // Half the changes in the headers and tables the reader walks, half anywhere.
                let tables =
                    elf.sections.filter { $0.type == 2 || $0.type == 9 }.map { ($0.offset, $0.size) } + [(elf.sectionTableOffset, elf.sections.count * 64)]
                let (start, length) = next() % 2 == 0 ? tables[next() % tables.count] : (0, corrupt.count)
                corrupt[start + next() % max(length, 1)] = UInt8(truncatingIfNeeded: next())
            }
            if Self.problem(corrupt) != nil { refused += 1 }
        }
        #expect(refused > 0)
    }

    @Test("the object's maps must be the loader's table: a map it does not know, one missing, one twice")
    func mapsAreTheTable() throws {
        let elf = try Self.object()
        let settings = try elf.symbol("jb_settings")
        var corrupt = elf
        // Renamed in the symbols' string table: a map the table does not have, and the table's settings missing.
        let nameAt = try elf.stringOffset(of: settings)
        corrupt.bytes[nameAt + "jb_settings".utf8.count - 1] = UInt8(ascii: "z")
        #expect(Self.problem(corrupt.bytes)?.contains("not in the loader's table") == true)
        corrupt = elf
        corrupt.bytes[settings.entryOffset + 4] = settings.info & 0xF0  // STT_NOTYPE: not a map definition any more
        #expect(Self.problem(corrupt.bytes)?.contains("missing or defined twice") == true)
        corrupt = elf
        corrupt.put32(settings.entryOffset, try elf.symbol("jb_counters").nameOffset)  // two jb_counters
        #expect(Self.problem(corrupt.bytes)?.contains("missing or defined twice") == true)
    }

    @Test("relocations other than a map's address, and calls of non-inlined functions, are refused")
    func unsupportedCode() throws {
        let elf = try Self.object()
        let egress = try #require(elf.sections.first { $0.name == "cgroup_skb/egress" })
        let relocations = try #require(elf.sections.first { $0.type == 9 && $0.info == egress.index })
        let info = elf.u64(relocations.offset + 8)
        var corrupt = elf
        corrupt.put64(relocations.offset + 8, info & ~0xFFFF_FFFF | 10)  // R_BPF_64_32
        #expect(Self.problem(corrupt.bytes)?.contains("R_BPF_64_64") == true)
        corrupt = elf
        corrupt.put64(relocations.offset + 8, UInt64(try elf.symbol("LICENSE").index) << 32 | 1)  // global data
        #expect(Self.problem(corrupt.bytes)?.contains("other than a map") == true)
        corrupt = elf
        corrupt.put64(relocations.offset, UInt64(egress.size))  // beyond the section
        #expect(Self.problem(corrupt.bytes)?.contains("outside the instructions") == true)
        corrupt = elf
        corrupt.put64(relocations.offset, elf.u64(relocations.offset) + 8)  // the ld_imm64's second half
        #expect(Self.problem(corrupt.bytes)?.contains("not a plain 64-bit load") == true)
        corrupt = elf
        corrupt.put32(relocations.headerOffset + 4, 4)  // SHT_RELA
        #expect(Self.problem(corrupt.bytes)?.contains("addends") == true)

        // A helper call made a bpf-to-bpf call (src_reg BPF_PSEUDO_CALL).
        let call = try #require(stride(from: egress.offset, to: egress.offset + egress.size, by: 8).first { elf.bytes[$0] == 0x85 })
        corrupt = elf
        corrupt.bytes[call + 1] = corrupt.bytes[call + 1] & 0x0F | 0x10
        #expect(Self.problem(corrupt.bytes)?.contains("non-inlined function") == true)
        // Code in .text: functions the compiler did not inline.
        corrupt = elf
        corrupt.put64(try #require(elf.sections.first { $0.name == ".text" }).headerOffset + 32, 8)
        #expect(Self.problem(corrupt.bytes)?.contains(".text") == true)
        // A program the loader needs, gone.
        corrupt = elf
        corrupt.bytes[try elf.stringOffset(of: try elf.symbol("jb_job_egress"))] = UInt8(ascii: "x")
        #expect(Self.problem(corrupt.bytes) == "find the BPF programs")
    }

    @Test("the loader's map table is what netacct.bpf.c defines (the object's BTF, read by bpftool)")
    func mapTableIsTheBTF() throws {
        let elf = try Self.object()
        let directory = try TestSupport.TemporaryDirectory("jbbtf")
        defer { directory.remove() }
        let path = directory.path + "/netacct.bpf.o"
        try Data(elf.bytes).write(to: URL(fileURLWithPath: path))
        let dump = try TestSupport.run(["bpftool", "-j", "btf", "dump", "file", path])
        try #require(dump.status == 0, "\(dump)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        let list = try #require(json["types"] as? [[String: Any]])
        var types: [Int: [String: Any]] = [:]
        for type in list { if let id = type["id"] as? Int { types[id] = type } }
        func type(_ id: Any?) throws -> [String: Any] {
            let number = try #require(id as? Int)
            return try #require(types[number])
        }
        /// The size of a key or value type, through typedefs and qualifiers.
        func size(_ id: Any?) throws -> Int {
            let t = try type(id)
            if let size = t["size"] as? Int { return size }
            return try size(t["type_id"])
        }
        let section = try #require(list.first { $0["kind"] as? String == "DATASEC" && $0["name"] as? String == ".maps" })
        var defined: [String: [String: Int]] = [:]
        for variable in try #require(section["vars"] as? [[String: Any]]) {
            let map = try type(variable["type_id"])
            let definition = try type(map["type_id"])
            var fields: [String: Int] = [:]
            for member in try #require(definition["members"] as? [[String: Any]]) {
                let name = try #require(member["name"] as? String)
                let pointee = try type(try type(member["type_id"])["type_id"])  // __uint(x, N): a pointer to int[N]
                fields[name] = name == "key" || name == "value" ? try size(pointee["id"]) : try #require(pointee["nr_elems"] as? Int)
            }
            defined[try #require(map["name"] as? String)] = fields
        }
        var table: [String: [String: Int]] = [:]
        var index = 0
        while let spec = jb_netacct_bpf_map_spec(index) {
            let row = spec.pointee
            table[String(cString: row.name)] = [
                "type": Int(row.type), "key": Int(row.key_size), "value": Int(row.value_size), "max_entries": Int(row.max_entries),
                "map_flags": Int(row.flags),
            ]
            index += 1
        }
        // An unset map_flags is 0.
        for (name, fields) in defined where fields["map_flags"] == nil { defined[name]?["map_flags"] = 0 }
        #expect(defined.count == 3)
        #expect(table == defined)
    }
}

/// An ELF object's section headers and symbols as this test reads them, independently of the reader under test,
/// and changed in place (little-endian fields at the offsets of the ELF64 structures).
struct TestELF {
    var bytes: [UInt8]

    struct Section {
        let index: Int
        let name: String
        let type: UInt32
        let offset: Int
        let size: Int
        let info: Int
        let headerOffset: Int
    }

    struct Symbol {
        let index: Int
        let name: String
        let nameOffset: UInt32
        let info: UInt8
        let section: Int
        let value: Int
        let entryOffset: Int
        var type: UInt8 { info & 0xF }
    }

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
    func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) } }
    func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) } }
    mutating func put16(_ at: Int, _ value: UInt16) { for i in 0..<2 { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt16(i))) } }
    mutating func put32(_ at: Int, _ value: UInt32) { for i in 0..<4 { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) } }
    mutating func put64(_ at: Int, _ value: UInt64) { for i in 0..<8 { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) } }

    var sectionTableOffset: Int { Int(u64(0x28)) }

    /// The C string at `at`.
    func string(_ at: Int) -> String { String(decoding: bytes[at...].prefix { $0 != 0 }, as: UTF8.self) }

    var sections: [Section] {
        let names = sectionTableOffset + u16(0x3E) * 64
        return (0..<u16(0x3C)).map { index in
            let header = sectionTableOffset + index * 64
            return Section(
                index: index, name: string(Int(u64(names + 24)) + Int(u32(header))), type: u32(header + 4), offset: Int(u64(header + 24)),
                size: Int(u64(header + 32)), info: Int(u32(header + 44)), headerOffset: header)
        }
    }

    var symbols: [Symbol] {
        guard let table = sections.first(where: { $0.type == 2 }) else { return [] }
        let strings = Int(u64(sectionTableOffset + Int(u32(sectionTableOffset + table.index * 64 + 40)) * 64 + 24))
        return (0..<table.size / 24).map { index in
            let entry = table.offset + index * 24
            return Symbol(
                index: index, name: string(strings + Int(u32(entry))), nameOffset: u32(entry), info: bytes[entry + 4], section: u16(entry + 6),
                value: Int(u64(entry + 8)), entryOffset: entry)
        }
    }

    func symbol(_ name: String) throws -> Symbol { try #require(symbols.first { $0.name == name }) }

    /// Where `symbol`'s name is in the bytes.
    func stringOffset(of symbol: Symbol) throws -> Int {
        let table = try #require(sections.first { $0.type == 2 })
        return Int(u64(sectionTableOffset + Int(u32(table.headerOffset + 40)) * 64 + 24)) + Int(symbol.nameOffset)
    }
}
