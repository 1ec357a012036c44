import Foundation
import JobboxTestSupport
import Testing

@testable import JobboxCgroups
@testable import JobboxCore

/// Device nodes a device test makes in its own directory (`/tmp/jbd...`), standing for a node's GPUs and for
/// ordinary devices: NVIDIA GPUs `nvidia0`, `nvidia1` (195:0, 195:1, no driver here, so an open that the fence
/// lets through fails with ENXIO, one it stops with EPERM), the control node `nvidiactl` (195:255), DRM render
/// nodes `dri/renderD128`, `dri/renderD129` (226:128, 226:129), AMD's `kfd` (a free major), and `jbd-zero`,
/// `jbd-full` (clones of /dev/zero and /dev/full, which open for real).
final class DeviceTestBed {
    let directory: String

    /// The nodes, as (relative path, type, major, minor).
    static let nodes: [(String, String, Int, Int)] = [
        ("nvidia0", "c", 195, 0), ("nvidia1", "c", 195, 1), ("nvidiactl", "c", 195, 255),
        ("dri/renderD128", "c", 226, 128), ("dri/renderD129", "c", 226, 129), ("kfd", "c", 509, 0),
        ("jbd-zero", "c", 1, 5), ("jbd-full", "c", 1, 7), ("jbd-mem", "c", 1, 1),
    ]

    init() throws {
        directory = "/tmp/" + TestSupport.uniqueName("jbdev")
        try FileManager.default.createDirectory(atPath: directory + "/dri", withIntermediateDirectories: true)
        for (name, type, major, minor) in Self.nodes {
            let made = try TestSupport.run(["mknod", directory + "/" + name, type, String(major), String(minor)])
            guard made.status == 0 else {
                remove()
                throw TestFailure("mknod \(name): \(made)")
            }
        }
    }

    /// A node's path.
    func path(_ name: String) -> String { directory + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }

    /// A job that tries to open each path (`w:PATH` for writing) and prints `PATH ok` (`w:PATH ok`), `PATH EPERM` (the fence
    /// refused), `PATH ENXIO` (the fence let it through to a device with no driver) or `PATH other: ...`. Only
    /// dd opens the paths: the shell itself needs no device.
    static func probe(_ paths: [String]) -> [String] {
        let script = #"""
            for arg in "$@"; do
              f=$arg
              case $f in
                w:*) f=${f#w:}; err=$(LC_ALL=C dd of="$f" count=0 conv=notrunc status=none 2>&1) ;;
                *) err=$(LC_ALL=C dd if="$f" count=0 status=none 2>&1) ;;
              esac
              case $err in
                "") echo "$arg ok" ;;
                *"Operation not permitted"*) echo "$arg EPERM" ;;
                *"No such device or address"*) echo "$arg ENXIO" ;;
                *) echo "$arg other: $err" ;;
              esac
            done
            """#
        return ["/bin/sh", "-c", script, "probe"] + paths
    }

    /// The probe's verdicts by path.
    static func verdicts(_ output: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            if parts.count == 2 { result[parts[0]] = parts[1] }
        }
        return result
    }

    /// Whether a verdict says the fence let the open through.
    static func passed(_ verdict: String?) -> Bool { verdict == "ok" || verdict == "ENXIO" }
}
