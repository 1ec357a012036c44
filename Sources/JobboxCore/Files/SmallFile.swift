import SystemPackage

/// Reading and writing the small files of procfs, sysfs and cgroupfs without Foundation.
///
/// Their `st_size` is 0 or a page, whatever they hold, so they are read in chunks until EOF.
package enum SmallFile {
    /// Reads the whole file at `path` as UTF-8 text.
    package static func read(_ path: String) throws(Errno) -> String {
        let bytes = try readBytes(path)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads the whole file at `path`, or nil when it does not exist.
    package static func readIfPresent(_ path: String) throws(Errno) -> String? {
        do {
            return try read(path)
        } catch .noSuchFileOrDirectory {
            return nil
        }
    }

    /// Reads the whole file at `path` as bytes.
    package static func readBytes(_ path: String) throws(Errno) -> [UInt8] {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, .readOnly, options: [.closeOnExec])
        } catch let error as Errno {
            throw error
        } catch {
            throw Errno.ioError
        }
        defer { try? fd.close() }
        return try readAll(fd)
    }

    /// The most `readAll` reads: procfs, sysfs and cgroupfs files are far smaller. A longer file (`/dev/zero`,
    /// a FIFO someone keeps writing) is an error (`EFBIG`), not a read until memory runs out. Files a job can
    /// write go through `GuardedFile.read` with a limit of their own.
    package static let maxBytes = 16 * 1024 * 1024

    /// Reads `fd` to EOF, at most `maxBytes`.
    package static func readAll(_ fd: FileDescriptor) throws(Errno) -> [UInt8] {
        var result: [UInt8] = []
        let chunk = 4096
        while true {
            let count: Int
            do {
                count = try withUnsafeTemporaryAllocation(byteCount: chunk, alignment: 1) { buffer in
                    let n = try fd.read(into: buffer, retryOnInterrupt: true)
                    result.append(contentsOf: buffer[0..<n])
                    return n
                }
            } catch let error as Errno {
                throw error
            } catch {
                throw Errno.ioError
            }
            if count == 0 { return result }
            if result.count > maxBytes { throw Errno.fileTooLarge }
        }
    }

    /// Writes `text` to an existing file in one write(2), as cgroupfs and procfs knobs require.
    package static func write(_ text: String, to path: String) throws(Errno) {
        do {
            let fd = try FileDescriptor.open(path, .writeOnly, options: [.closeOnExec])
            defer { try? fd.close() }
            var bytes = Array(text.utf8)
            let written = try bytes.withUnsafeMutableBytes { try fd.write(UnsafeRawBufferPointer($0), retryOnInterrupt: true) }
            if written != bytes.count { throw Errno.ioError }
            bytes.removeAll()
        } catch let error as Errno {
            throw error
        } catch {
            throw Errno.ioError
        }
    }
}

/// The calling process's id.
package enum ProcessID {
    /// `getpid()`.
    package static var current: Int32 { getpid() }
}

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif
