/// netacct's BPF object, decoded from the base64 the build embeds (NetacctBPFObjectPlugin).
package enum NetacctBPFObject {
    /// The ELF bytes, or nil when the embedded text is not base64 (a broken build).
    package static func bytes() -> [UInt8]? {
        netacctBPFObjectBase64.withUTF8Buffer { decodeBase64($0) }
    }

    /// Decodes standard base64 (with `=` padding, no line breaks).
    ///
    /// Four characters at a time through a table of the 256 byte values, into a buffer of the final size, the
    /// padding looked at in the last group only: a character at a time with `append` cost every bpf run of netacct
    /// about 1 M instructions (bench/README.md), the padding checked in every group, with overflow checks, 0.5 M.
    static func decodeBase64(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        guard text.count > 0 else { return [] }
        let equals = UInt8(ascii: "=")
        let padding = text[text.count - 1] == equals ? (text[text.count - 2] == equals ? 2 : 1) : 0
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { table -> [UInt8]? in
            // Valid characters map to 0...63; anything else to 0xFF, whose high bits mark the group invalid.
            table.initialize(repeating: 0xFF)
            let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
            alphabet.withUTF8Buffer { letters in
                for index in 0..<letters.count { table[Int(letters[index])] = UInt8(index) }
            }
            var invalid: UInt8 = 0
            let result = [UInt8](unsafeUninitializedCapacity: text.count / 4 * 3 - padding) { output, written in
                // Every group but the last, without a look at padding (wrapping arithmetic: the counts are far
                // from overflowing, and overflow checks doubled the loop).
                let lastGroup = text.count &- 4
                var position = 0
                while position < lastGroup {
                    let a = table[Int(text[position])]
                    let b = table[Int(text[position &+ 1])]
                    let c = table[Int(text[position &+ 2])]
                    let d = table[Int(text[position &+ 3])]
                    invalid |= a | b | c | d
                    let group = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                    output[written] = UInt8(truncatingIfNeeded: group >> 16)
                    output[written &+ 1] = UInt8(truncatingIfNeeded: group >> 8)
                    output[written &+ 2] = UInt8(truncatingIfNeeded: group)
                    written &+= 3
                    position &+= 4
                }
                // The last group: its '=' stand for zero bits (an '=' anywhere else is an invalid character).
                let a = table[Int(text[lastGroup])]
                let b = table[Int(text[lastGroup + 1])]
                let c = padding == 2 ? 0 : table[Int(text[lastGroup + 2])]
                let d = padding >= 1 ? 0 : table[Int(text[lastGroup + 3])]
                invalid |= a | b | c | d
                let group = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                for index in 0..<(3 - padding) { output[written + index] = UInt8(truncatingIfNeeded: group >> (16 - 8 * UInt32(index))) }
                written += 3 - padding
            }
            return invalid & 0xC0 == 0 ? result : nil
        }
    }
}
