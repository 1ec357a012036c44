import Foundation

/// A loop disk made for one test with `LOOP_CTL_ADD` at an index no loop device has, so that the kernel sets up a
/// new disk: nothing about it (such as the block throttle policy a rule switches on) is left from earlier tests,
/// as it may be on loop0..7 or on the root disk. Bound to a sparse image; `remove()` unbinds it, removes the
/// device (`LOOP_CTL_REMOVE`) and the image.
package final class FreshLoopDisk {
    /// `/dev/loop<index>`.
    package let path: String
    /// `loop<index>`, its name in /sys/block.
    package let name: String
    /// `major:minor`.
    package let device: String
    private let index: Int32
    private let image: TestSupport.TemporaryDirectory
    private var bound = false
    private var added = false

    // linux/loop.h
    private static let addRequest: UInt = 0x4C80
    private static let removeRequest: UInt = 0x4C81

    /// Adds and binds a disk of `megabytes` MiB (sparse), its image in a directory named from `prefix`.
    package init(megabytes: Int = 64, prefix: String = "jobbox-loop") throws {
        image = try TestSupport.TemporaryDirectory(prefix)
        var chosen: Int32?
        for _ in 0..<20 {
            // High indexes, away from the ones `losetup --find` hands out.
            let candidate = Int32.random(in: 4096..<65536)
            if try Self.control(Self.addRequest, candidate) {
                chosen = candidate
                break
            }
        }
        guard let index = chosen else {
            image.remove()
            throw TestFailure("LOOP_CTL_ADD found no free index in 20 tries")
        }
        self.index = index
        added = true
        path = "/dev/loop\(index)"
        name = "loop\(index)"
        device = (try? String(contentsOfFile: "/sys/block/loop\(index)/dev", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        let file = image.path + "/disk.img"
        let bind = try TestSupport.sh("truncate -s \(megabytes)M \(file) && losetup \(path) \(file)")
        guard bind.status == 0, !device.isEmpty else {
            remove()
            throw TestFailure("cannot bind \(path) (\(device)) to \(file): \(bind)")
        }
        bound = true
    }

    /// LOOP_CTL_ADD / LOOP_CTL_REMOVE; false when the index is taken (EEXIST) or busy (EBUSY).
    private static func control(_ request: UInt, _ index: Int32) throws -> Bool {
        let fd = open("/dev/loop-control", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw TestFailure("cannot open /dev/loop-control: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        if ioctl(fd, request, index) >= 0 { return true }
        let error = errno
        if error == EEXIST || error == EBUSY { return false }
        throw TestFailure("loop-control request \(request) for index \(index): \(String(cString: strerror(error)))")
    }

    /// Unbinds and removes the disk; safe to call twice.
    package func remove() {
        if bound {
            _ = try? TestSupport.sh("losetup -d \(path)")
            bound = false
        }
        if added {
            // Unbinding finishes asynchronously when something still has the device open.
            for _ in 0..<50 {
                if (try? Self.control(Self.removeRequest, index)) ?? true { break }
                usleep(20_000)
            }
            added = false
        }
        image.remove()
    }
}
