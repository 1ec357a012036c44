import JobboxCore

/// The fuzz input as text (invalid UTF-8 repaired, as the tools read files).
func text(_ data: UnsafePointer<UInt8>, _ size: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}

/// jobbox.conf: any text parses or is one error; expansion stays within its limits.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = text(data, size)
    if let entries = try? ConfigFile.parse(input, path: "fuzz") {
        var total = 0
        for entry in entries {
            precondition(entry.value.utf8.count <= ConfigFile.maxValueBytes, "a value beyond the limit")
            total += entry.value.utf8.count
        }
        precondition(total <= ConfigFile.maxExpandedBytes, "values beyond the total limit")
    }
    _ = try? JobboxConfig.parse(input, path: "fuzz")
    return 0
}
