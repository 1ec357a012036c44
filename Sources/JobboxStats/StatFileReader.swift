import JobboxCgroups
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// What reading one cgroupfs file gave.
package enum StatFileResult<Value> {
    /// The file's contents, as parsed.
    case value(Value)
    /// The kernel does not offer the file here (no such file, or the figure is switched off, as PSI can be).
    case absent
}

/// Reads cgroupfs files into one buffer that is reused for every file of every sample.
///
/// A sample opens each file once, reads it to EOF into the buffer and parses it in place; nothing is allocated
/// per file once the buffer has grown to the largest file seen (it starts at 16 KiB, more than any cgroup stat
/// file of a job needs unless a node has hundreds of block devices).
package final class StatFileReader {
    private var base: UnsafeMutableRawPointer
    private var size: Int

    /// Creates a reader with a buffer of `capacity` bytes.
    package init(capacity: Int = 16 * 1024) {
        size = max(capacity, 256)
        base = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
    }

    deinit { base.deallocate() }

    /// The buffer's current size (it only grows when a file does not fit).
    package var capacity: Int { size }

    /// Reads `path` and hands its bytes to `parse`; the bytes are valid only during the call.
    ///
    /// A missing file, and a file the kernel refuses with EOPNOTSUPP (PSI switched off), are `.absent`. Other
    /// failures throw, naming the file; ENODEV means the cgroup was removed while it was read.
    package func read<Value>(_ path: String, _ parse: (UnsafeRawBufferPointer) -> Value) throws(JobboxError) -> StatFileResult<Value> {
        let fd = path.withCString { open($0, O_RDONLY | O_CLOEXEC) }
        if fd < 0 {
            let error = Errno.last
            if Self.meansAbsent(error) { return .absent }
            throw JobboxError.system("cannot read", path, error)
        }
        defer { _ = close(fd) }
        var length = 0
        while true {
            if length == size { grow() }
            let count = readFile(fd, base + length, size - length)
            if count < 0 {
                let error = Errno.last
                if error == .interrupted { continue }
                if error == .notSupported { return .absent }
                throw JobboxError.system("cannot read", path, error)
            }
            if count == 0 { break }
            length += count
        }
        return .value(parse(UnsafeRawBufferPointer(start: base, count: length)))
    }

    /// Whether a directory exists at `path`.
    package static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// ENOENT and ENOTDIR: no such file; EOPNOTSUPP (the same number as ENOTSUP on Linux): the figure is off.
    static func meansAbsent(_ error: Errno) -> Bool {
        error == .noSuchFileOrDirectory || error == .notDirectory || error == .notSupported
    }

    private func grow() {
        let larger = UnsafeMutableRawPointer.allocate(byteCount: size * 2, alignment: 8)
        larger.copyMemory(from: base, byteCount: size)
        base.deallocate()
        base = larger
        size *= 2
    }
}

/// read(2), named apart from `StatFileReader.read`.
private func readFile(_ fd: Int32, _ into: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(fd, into, count)
}

/// The sub-cgroups of a cgroup, for the figures the kernel keeps per cgroup rather than per subtree.
package enum CgroupTree {
    /// `directory` and every cgroup below it (directories only; the files of cgroupfs are skipped), parents
    /// first. A sub-cgroup removed while it is listed is left out.
    package static func subtree(of directory: String) -> [String] {
        var result = [directory]
        var index = 0
        while index < result.count {
            result.append(contentsOf: children(of: result[index]))
            index += 1
        }
        return result
    }

    /// The direct sub-cgroups of `directory`, sorted by name.
    package static func children(of directory: String) -> [String] {
        names(in: directory).map { directory + "/" + $0 }
    }

    /// The names of the directories in `directory`, sorted (empty when it cannot be listed).
    package static func names(in directory: String) -> [String] {
        (try? DirectoryListing.subdirectories(atPath: directory)) ?? []
    }
}
