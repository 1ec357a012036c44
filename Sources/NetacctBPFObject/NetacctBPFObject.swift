/// netacct's BPF object, decoded from the base64 the build embeds (NetacctBPFObjectPlugin).
package enum NetacctBPFObject {
    /// The ELF bytes, or nil when the embedded text is not base64 (a broken build).
    package static func bytes() -> [UInt8]? {
        netacctBPFObjectBase64.withUTF8Buffer { decodeBase64($0) }
    }

    /// Decodes standard base64 (with `=` padding, no line breaks).
    ///
    /// Four characters at a time through a table of the 256 byte values, into a buffer of the final size: a
    /// character at a time with `append` cost every bpf run of netacct about 1 M instructions (bench/README.md).
    static func decodeBase64(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        let invalid: UInt8 = 0xFF
        var table = [UInt8](repeating: invalid, count: 256)
        let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        alphabet.withUTF8Buffer { letters in
            for index in 0..<letters.count { table[Int(letters[index])] = UInt8(index) }
        }
        var valid = true
        let result = [UInt8](unsafeUninitializedCapacity: text.count / 4 * 3) { output, written in
            var position = 0
            while position < text.count {
                // Padding: one or two '=' at the end of the last group only.
                let last = position + 4 == text.count
                let padding = last ? (text[position + 3] == UInt8(ascii: "=") ? (text[position + 2] == UInt8(ascii: "=") ? 2 : 1) : 0) : 0
                var group: UInt32 = 0
                for offset in 0..<4 {
                    let value = offset >= 4 - padding ? 0 : table[Int(text[position + offset])]
                    if value == invalid {
                        valid = false
                        return
                    }
                    group = group << 6 | UInt32(value)
                }
                output[written] = UInt8(truncatingIfNeeded: group >> 16)
                output[written + 1] = UInt8(truncatingIfNeeded: group >> 8)
                output[written + 2] = UInt8(truncatingIfNeeded: group)
                written += 3 - padding
                position += 4
            }
        }
        guard valid else { return nil }
        return result
    }
}
