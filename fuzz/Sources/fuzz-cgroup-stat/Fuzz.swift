import JobboxCore
import JobboxStats

/// The fuzz input as text (invalid UTF-8 repaired, as the tools read files).
func text(_ data: UnsafePointer<UInt8>, _ size: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}

/// The cgroup stat file formats jobstat reads (flat keyed, nested keyed, blkio, PSI, single numbers).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    _ = CgroupStatFormat.flatKeyed(bytes)
    _ = CgroupStatFormat.nestedKeyed(bytes)
    _ = CgroupStatFormat.blkio(bytes)
    _ = CgroupStatFormat.pressure(bytes)
    _ = CgroupStatFormat.singleNumber(bytes)
    _ = CgroupStatFormat.lineCount(bytes)
    return 0
}
