/// netacct's BPF object, decoded from the base64 the build embeds (NetacctBPFObjectPlugin).
package enum NetacctBPFObject {
    /// The ELF bytes, or nil when the embedded text is not base64 (a broken build).
    package static func bytes() -> [UInt8]? {
        netacctBPFObjectBase64.withUTF8Buffer { decodeBase64($0) }
    }

    /// Decodes standard base64 (with `=` padding, no line breaks).
    static func decodeBase64(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        var result: [UInt8] = []
        result.reserveCapacity(text.count / 4 * 3)
        var accumulator: UInt32 = 0
        var bits = 0
        for (position, character) in text.enumerated() {
            let value: UInt32
            switch character {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(character - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(character - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(character - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            case UInt8(ascii: "="):
                // Padding only in the last two places.
                guard position >= text.count - 2 else { return nil }
                continue
            default: return nil
            }
            accumulator = accumulator << 6 | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                result.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return result
    }
}
