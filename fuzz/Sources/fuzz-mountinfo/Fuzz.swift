import JobboxCgroups
import JobboxCore

/// The fuzz input as text (invalid UTF-8 repaired, as the tools read files).
func text(_ data: UnsafePointer<UInt8>, _ size: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}

/// /proc/self/mountinfo, and the cgroup layout built from it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let mounts = MountInfo.parse(text(data, size))
    _ = CgroupLayout(mounts: mounts, fsRoot: "/nonexistent-fuzz", readFile: { _ in nil })
    return 0
}
