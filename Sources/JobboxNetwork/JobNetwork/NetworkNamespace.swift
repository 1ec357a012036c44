import CLinux
import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// Network namespaces by process: which one this process is in, and running code inside another's.
package enum NetworkNamespace {
    /// The inode of this process's network namespace (`net:[INODE]`), recorded with each job so that `--show`
    /// and `--cleanup` only touch jobs of the namespace they run in.
    package static func currentID() throws(JobboxError) -> UInt64 {
        var info = stat()
        if stat("/proc/self/ns/net", &info) != 0 { throw JobboxError.lastErrno("cannot read network namespace", "/proc/self/ns/net") }
        return UInt64(info.st_ino)
    }

    /// Runs `body` inside the network namespace of process `pid`, then returns to this one. Sockets opened in
    /// `body` stay bound to the other namespace, so `body` opens and closes its own. Safe because the process is
    /// single-threaded: setns switches only the calling thread.
    package static func withNamespace<Result>(ofProcess pid: Int32, _ body: () throws(JobboxError) -> Result) throws(JobboxError) -> Result {
        let home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)
        if home < 0 { throw JobboxError.lastErrno("cannot open network namespace", "/proc/self/ns/net") }
        defer { close(home) }
        let path = "/proc/\(pid)/ns/net"
        let target = open(path, O_RDONLY | O_CLOEXEC)
        if target < 0 { throw JobboxError.lastErrno("cannot open the job's network namespace", path) }
        defer { close(target) }
        if jb_setns(target, JB_CLONE_NEWNET) != 0 { throw JobboxError.lastErrno("cannot enter the job's network namespace", path) }
        let result: Result
        do throws(JobboxError) {
            result = try body()
        } catch {
            try returnHome(home)
            throw error
        }
        try returnHome(home)
        return result
    }

    private static func returnHome(_ home: Int32) throws(JobboxError) {
        if jb_setns(home, JB_CLONE_NEWNET) != 0 {
            throw JobboxError.lastErrno("cannot return to netacct's network namespace", "/proc/self/ns/net")
        }
    }

    /// Writes a `/proc/sys/net` knob of the current namespace unless it already has `value`; whether it wrote.
    @discardableResult
    package static func setSysctl(_ path: String, _ value: String) throws(JobboxError) -> Bool {
        if let current = try? SmallFile.read(path), current.trimmingASCIISpaces() == value { return false }
        do {
            try SmallFile.write(value, to: path)
        } catch {
            throw JobboxError.system("cannot set", path, error)
        }
        return true
    }
}
