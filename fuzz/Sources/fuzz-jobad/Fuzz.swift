import JobboxCgroups
import JobboxCore

/// The fuzz input as text (invalid UTF-8 repaired, as the tools read files).
func text(_ data: UnsafePointer<UInt8>, _ size: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}

/// The job ad as cg-exec, jobstat and netacct read it: the job id from ClusterId and ProcId, the limits from
/// RequestMemory and RequestCpus. Either a valid id or nothing; never a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let ad = ClassAdReader.parse(text(data, size))
    if let cluster = ad.integer("ClusterId"), let proc = ad.integer("ProcId"), let id = try? JobID("\(cluster).\(proc)") {
        precondition(!id.rawValue.hasPrefix("-") && !id.rawValue.hasPrefix("."), "an id that reads as an option or hides")
        _ = id.cgroupName
        _ = id.shortName(prefix: "jb", maxLength: 15)
    }
    var limits = CgroupLimits()
    _ = try? limits.fill(fromJobAd: ad, path: "fuzz")
    _ = ad.string("Owner")
    return 0
}
