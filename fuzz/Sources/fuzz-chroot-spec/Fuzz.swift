import JobboxChroot
import JobboxCore

/// The fuzz input as text (invalid UTF-8 repaired, as the tools read files).
func text(_ data: UnsafePointer<UInt8>, _ size: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}

/// chroot-tool's spec files.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if let spec = try? ChrootSpec.parse(text(data, size), path: "fuzz") {
        _ = try? spec.validated()
    }
    return 0
}
