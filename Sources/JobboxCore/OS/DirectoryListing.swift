import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// One entry of a directory as readdir(3) gives it.
package struct DirectoryEntry: Sendable, Equatable {
    /// The name (invalid UTF-8 repaired).
    package let name: String
    /// `DT_DIR`, `DT_REG`, ... or `DT_UNKNOWN` when the file system does not say.
    package let type: UInt8
}

/// Listing directories: the one readdir(3) loop.
package enum DirectoryListing {
    /// Every entry of the open directory `stream` except `.` and `..`, in the order the kernel gives them.
    package static func entries(of stream: OpaquePointer) -> [DirectoryEntry] {
        var entries: [DirectoryEntry] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { entries.append(DirectoryEntry(name: name, type: entry.pointee.d_type)) }
        }
        return entries
    }

    /// Every entry of the directory `path` except `.` and `..`.
    package static func entries(atPath path: String) throws(Errno) -> [DirectoryEntry] {
        guard let stream = opendir(path) else { throw Errno.last }
        defer { closedir(stream) }
        return entries(of: stream)
    }

    /// The names of the directories in `path`, sorted; symlinks to directories are not directories here. Where
    /// the file system does not give the type, it is looked up with lstat(2).
    package static func subdirectories(atPath path: String) throws(Errno) -> [String] {
        try entries(atPath: path).filter { entry in
            if entry.type != UInt8(DT_UNKNOWN) { return entry.type == UInt8(DT_DIR) }
            var info = stat()
            return lstat(path + "/" + entry.name, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
        }.map(\.name).sorted()
    }
}
