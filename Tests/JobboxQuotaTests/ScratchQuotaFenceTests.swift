import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCore
@testable import JobboxQuota

/// The ways a job could move what it writes out of its scratch quota, tried by the job itself on this machine's
/// btrfs: a subvolume or snapshot inside the scratch dir (its data goes to a new qgroup with no limit), and the
/// calls that change a file's project id or project-inherit flag on XFS and ext4 (`FS_IOC_FSSETXATTR`,
/// `FS_IOC_SETFLAGS`, `file_setattr`). Under a quota ns-exec's fence refuses each with EPERM; without one they
/// reach the file system, which is how the escape was found.
@Suite("Hostile: a job escaping its scratch quota", .serialized, .enabled(if: BtrfsImage.available, "needs root and mkfs.btrfs (btrfs-progs)"))
struct ScratchQuotaFenceTests {
    /// Each attempt, made in the job's `/tmp` (inside the scratch dir), printed as `name=ok` or `name=ERRNO`.
    /// The ioctl requests are the kernel's numbers; `fssetxattr-high` sets the upper half of the request, which
    /// the kernel ignores, so the fence must too.
    static let attempts = """
        import ctypes, errno, fcntl, os, struct
        def attempt(name, call):
            try:
                call()
                print(name + "=ok")
            except OSError as error:
                print(name + "=" + errno.errorcode.get(error.errno, str(error.errno)))
        os.chdir("/tmp")
        here = os.open(".", os.O_RDONLY)
        open("file", "w").close()
        file = os.open("file", os.O_RDONLY)
        xattr = bytearray(28)
        attempt("fsgetxattr", lambda: fcntl.ioctl(file, 0x801C581F, xattr))
        attempt("fssetxattr", lambda: fcntl.ioctl(file, 0x401C5820, bytearray(xattr)))
        attempt("fssetxattr-high", lambda: fcntl.ioctl(file, 0xFFFFFFFF401C5820, bytearray(xattr)))
        flags = bytearray(8)
        attempt("getflags", lambda: fcntl.ioctl(file, 0x80086601, flags))
        attempt("setflags", lambda: fcntl.ioctl(file, 0x40086602, bytearray(flags)))
        attempt("subvolume", lambda: fcntl.ioctl(here, 0x5000940E, bytearray(struct.pack("q4088s", 0, b"nested"))))
        attempt("snapshot", lambda: fcntl.ioctl(here, 0x50009401, bytearray(struct.pack("q4088s", here, b"copy"))))
        libc = ctypes.CDLL(None, use_errno=True)
        def file_setattr():
            if libc.syscall(469, -1, None, None, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "file_setattr")
        attempt("file_setattr", file_setattr)
        """

    /// The `name=result` lines of `output`.
    static func results(_ output: String) -> [String: String] {
        var results: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { results[parts[0]] = parts[1] }
        }
        return results
    }

    static let fenced = ["fssetxattr", "fssetxattr-high", "setflags", "subvolume", "snapshot", "file_setattr"]

    @Test("Under a quota every escape is EPERM and the job's writes stop at the limit; without one they reach btrfs")
    func jobCannotEscape() throws {
        try BtrfsImage.withUserAndImage { user, image in
            let owner = (user.uid, user.gid)

            let open = try image.subvolume("open", owner: owner)
            let unfenced = try TestSupport.run([
                "ns-exec", "--config", image.config, "--pid", "--scratch", open, "--user", user.name, "--", "python3", "-c", Self.attempts,
            ])
            #expect(unfenced.status == 0, "\(unfenced)")
            let before = Self.results(unfenced.stdout)
            #expect(before["subvolume"] == "ok", "the escape this test guards against: \(unfenced)")
            #expect(before["setflags"] == "ok", "\(unfenced)")
            #expect(before["getflags"] == "ok" && before["fsgetxattr"] == "ok", "\(unfenced)")
            for name in Self.fenced { #expect(before[name] != nil && before[name] != "EPERM", "\(name) without a quota: \(unfenced)") }

            let limited = try image.subvolume("limited", owner: owner)
            let job =
                "python3 -c '\(Self.attempts.replacingOccurrences(of: "'", with: "'\\''"))'; mkdir -p /tmp/nested; dd if=/dev/zero of=/tmp/nested/big bs=1M count=20; echo dd=$?"
            let fenced = try TestSupport.run([
                "ns-exec", "--config", image.config, "--pid", "--scratch", limited, "--scratch-quota", "8M", "--user", user.name, "--", "/bin/sh", "-c", job,
            ])
            #expect(fenced.status == 0, "\(fenced)")
            let after = Self.results(fenced.stdout)
            for name in Self.fenced { #expect(after[name] == "EPERM", "\(name) under a quota: \(fenced)") }
            #expect(after["getflags"] == "ok" && after["fsgetxattr"] == "ok", "reading is not fenced: \(fenced)")
            #expect(after["dd"] == "1", "no nested subvolume: the write fails: \(fenced)")
            try image.sync()
            let usage = try ScratchQuota.usage(of: limited, settings: image.settings)
            #expect(usage.bytes <= 8 << 20, "\(usage)")
            #expect(try image.du(limited) <= 8 * 1024 + 256, "nothing written outside the quota's count")
        }
    }

    @Test("A command attached to a fenced job is fenced too; one attached to an unfenced job is not")
    func attachedCommandIsFenced() throws {
        try BtrfsImage.withUserAndImage { user, image in
            for quota in [["--scratch-quota", "8M"], []] {
                let scratch = try image.subvolume(quota.isEmpty ? "open" : "limited", owner: (user.uid, user.gid))
                let job = TestSupport.uniqueName("jbqf")
                let sleep = NsExecTestSupport.uniqueSleep()
                let background = try NsExecTestSupport.Background(
                    ["ns-exec", "--config", image.config, "--job", job, "--pid", "--scratch", scratch] + quota + [
                        "--user", user.name, "--", "/bin/sleep", sleep,
                    ],
                    directory: image.base.path)
                defer {
                    for pid in NsExecTestSupport.processes(withArguments: ["/bin/sleep", sleep]) { kill(pid, SIGKILL) }
                    _ = background.wait()
                }
                #expect(NsExecTestSupport.eventually { !NsExecTestSupport.processes(withArguments: ["/bin/sleep", sleep]).isEmpty }, "\(background.stderr)")
                let attached = try TestSupport.run(["ns-exec", "--config", image.config, "--attach", job, "--", "python3", "-c", Self.attempts])
                #expect(attached.status == 0, "\(attached)")
                let results = Self.results(attached.stdout)
                for name in Self.fenced {
                    if quota.isEmpty {
                        #expect(results[name] != nil && results[name] != "EPERM", "\(name), attached to a job without a quota: \(attached)")
                    } else {
                        #expect(results[name] == "EPERM", "\(name), attached to a job under a quota: \(attached)")
                    }
                }
            }
        }
    }
}
