import JobboxCore

/// The fuzz input as text (invalid UTF-8 repaired, as the tools read files).
func text(_ data: UnsafePointer<UInt8>, _ size: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}

/// What `ClassAdWriter` writes, `ClassAdReader` reads back equal (reals to the 16 digits HTCondor writes).
///
/// The input is lines `<type><name>=<value>`: type `i` integer, `r` real, `s` string, `b` boolean.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var ad = ClassAd()
    for line in text(data, size).split(separator: "\n") {
        guard let kind = line.unicodeScalars.first, let equals = line.firstIndex(of: "=") else { continue }
        let name = String(String(line[..<equals]).unicodeScalars.dropFirst())
        let raw = String(line[line.index(after: equals)...])
        let value: ClassAdValue
        switch kind {
        case "i":
            guard let number = Int64(raw) else { continue }
            value = .integer(number)
        case "r":
            guard let number = Double(raw) else { continue }
            value = .real(number)
        case "s": value = .string(raw)
        case "b": value = .boolean(raw.count % 2 == 0)
        default: continue
        }
        guard (try? ClassAdWriter.checkName(name)) != nil else { continue }
        ad.set(name, value)
    }
    guard let written = try? ClassAdWriter.render(ad) else { return 0 }
    let read = ClassAdReader.parse(written)
    precondition(read.attributes.count == ad.attributes.count, "attribute count differs after a round trip:\n\(written)")
    for (original, back) in zip(ad.attributes, read.attributes) {
        precondition(original.name == back.name, "name differs: \(original.name) \(back.name)")
        switch (original.value, back.value) {
        case (.real(let a), .real(let b)):
            precondition(a == b || (a.isNaN && b.isNaN) || abs(a - b) <= abs(a) * 1e-15, "real differs: \(a) \(b)")
        case (.real(let a), .expression) where !a.isFinite:
            break  // real("NaN") and real("INF") are expressions to a reader that does not evaluate them.
        default:
            precondition(original.value == back.value, "value differs: \(original.value) \(back.value)\n\(written)")
        }
    }
    return 0
}
