import JobboxCore
import JobboxNetwork

/// The fuzz input as text (invalid UTF-8 repaired, as the tools read files).
func text(_ data: UnsafePointer<UInt8>, _ size: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}

/// netacct's lease files (ClassAds in the state directory), of the veth back ends and of bpf.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let ad = ClassAdReader.parse(text(data, size))
    _ = JobNetworkLease(classAd: ad)
    _ = BPFJobLease(classAd: ad)
    return 0
}
