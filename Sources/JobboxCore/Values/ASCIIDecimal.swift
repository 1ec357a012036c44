/// Decimal numbers written in ASCII digits, read on bytes: the kernel's counters and the tools' sizes, on paths
/// where Character-wise parsing would have the Swift runtime build generic types at every start.
package enum ASCIIDecimal {
    /// The non-negative decimal `digits` spell (nothing but ASCII digits, at least one) if it fits in 64 bits.
    package static func value(_ digits: UnsafeRawBufferPointer) -> UInt64? {
        guard !digits.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times10, overflowed) = value.multipliedReportingOverflow(by: 10)
            let (sum, carried) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            if overflowed || carried { return nil }
            value = sum
        }
        return value
    }
}
