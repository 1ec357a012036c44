import JobboxCore

extension ClassAdValue {
    /// NaN is unequal to itself, so such a value cannot be compared.
    var isNaN: Bool {
        if case .real(let number) = self { return number.isNaN }
        return false
    }
}

/// The fuzz input as text (invalid UTF-8 repaired, as the tools read files).
func text(_ data: UnsafePointer<UInt8>, _ size: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}

/// Long-form ClassAds (job, machine and lease ads): any text reads, and reading is consistent.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = text(data, size)
    let ad = ClassAdReader.parse(input)
    for (name, value) in ad.attributes {
        precondition(ad[name] == value || value.isNaN, "lookup disagrees with the attribute list")
        // Names are ASCII in HTCondor, and case-insensitive as ASCII; other scalars need not survive a case change.
        if name.unicodeScalars.allSatisfy(\.isASCII) {
            precondition(ad[name.uppercased()] == value, "lookup is not case-insensitive")
        }
        _ = ad.integer(name)
        _ = ad.real(name)
        _ = ad.boolean(name)
    }
    _ = ClassAdReader.parseAll(input)
    return 0
}
