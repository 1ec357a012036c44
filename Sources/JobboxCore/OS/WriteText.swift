import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

extension FileDescriptor {
    /// Writes all of `text`'s UTF-8, retrying short writes and EINTR.
    ///
    /// swift-system's `writeAll` takes any sequence of bytes and reaches this binary unspecialized: its first
    /// call has the runtime build the sequence's type from its mangled name and check its conformances, a scan
    /// of the whole binary's conformance records (0.17 M instructions of a bpf job's netacct, by callgrind).
    package func writeText(_ text: String) throws(Errno) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in
                guard let base = buffer.baseAddress else { return 0 }
                return retryingOnInterrupt { systemWrite(rawValue, base + offset, buffer.count - offset) }
            }
            if written < 0 { throw Errno(rawValue: errno) }
            if written == 0 { throw Errno.ioError }
            offset += written
        }
    }
}

/// write(2) (inside the extension the name means swift-system's method).
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}
