import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// A whole block device as `/sys/block` lists it.
package struct BlockDisk: Sendable, Equatable {
    /// The kernel's name, such as `vda`.
    package let name: String
    /// `major:minor`, as cgroup files name devices.
    package let device: String

    /// Creates a disk.
    package init(name: String, device: String) {
        self.name = name
        self.device = device
    }
}

/// The whole block devices of this machine (partitions are not listed in `/sys/block`).
package struct BlockDisks: Sendable {
    /// The directory listing them, `/sys/block` (a fixture directory in tests).
    package let directory: String

    /// Creates a reader of `directory`.
    package init(directory: String = "/sys/block") {
        self.directory = directory
    }

    /// The disks that hold a medium (a size above 0), sorted by name: an unbound loop device, an unset zram
    /// device or an empty drive can take no I/O until it gets one.
    package func withMedia() throws(Errno) -> [BlockDisk] {
        var disks: [BlockDisk] = []
        for name in try DirectoryListing.entries(atPath: directory).map(\.name) where !name.hasPrefix(".") {
            // A disk that goes away while it is read is no disk to care about.
            guard let device = try? SmallFile.read(directory + "/" + name + "/dev").trimmingASCIISpaces(), !device.isEmpty,
                let size = try? SmallFile.read(directory + "/" + name + "/size").trimmingASCIISpaces(), let sectors = UInt64(size), sectors > 0
            else { continue }
            disks.append(BlockDisk(name: name, device: device))
        }
        return disks.sorted { $0.name < $1.name }
    }
}

/// Switches on the cgroup v1 block I/O statistics that jobstat reads (`blkio.throttle.io_service_bytes` and
/// `io_serviced`) for the disks where the kernel does not count yet.
///
/// Since Linux commit a3166c51702b ("blk-throttle: delay initialization until configuration") the throttle
/// policy is set up on a disk only when some cgroup first writes a throttle rule for it (`tg_set_conf` calls
/// `blk_throtl_init`, which sets the queue's `td`); before that, `blk_should_throtl` returns before it counts,
/// so every v1 cgroup shows no I/O on that disk. Once set up, the disk counts for every cgroup until it goes
/// away. The rule written here is `MAJ:MIN 0` in the job's own `blkio.throttle.read_bps_device`: the kernel
/// stores 0 as "no limit" (the file shows no line for it), so no I/O is ever throttled.
///
/// Failing is not fatal: the job runs the same without statistics, so problems come back as warnings.
package struct BlockIOAccounting {
    /// The file the no-limit rule goes to.
    package static let ruleFile = "blkio.throttle.read_bps_device"
    /// The statistics file; in the hierarchy's root it lists exactly the disks that count.
    package static let statisticsFile = "blkio.throttle.io_service_bytes"

    let filesystem: any CgroupFilesystem
    let disks: BlockDisks

    /// Creates the switch.
    package init(filesystem: any CgroupFilesystem = KernelCgroupFilesystem(), disks: BlockDisks = BlockDisks()) {
        self.filesystem = filesystem
        self.disks = disks
    }

    /// Writes the no-limit rule into `jobDirectory` for each disk with a medium that the root of the hierarchy
    /// (`root`) does not list as counting. Returns the warnings, one line each (empty when all went well or
    /// there was nothing to do).
    package func switchOn(in jobDirectory: String, hierarchyRoot root: String) -> [String] {
        let rulePath = jobDirectory + "/" + Self.ruleFile
        // A kernel without blk-throttle has no such file and no such statistics: nothing to switch on.
        guard filesystem.exists(rulePath) else { return [] }
        let all: [BlockDisk]
        do {
            all = try disks.withMedia()
        } catch {
            return ["block I/O accounting not switched on: cannot list the disks in \(disks.directory): \(error)"]
        }
        let counting = countingDevices(root + "/" + Self.statisticsFile)
        var failures: [String] = []
        for disk in all where !counting.contains(disk.device) {
            do {
                try filesystem.write("\(disk.device) 0", to: rulePath)
            } catch .operationNotSupportedByDevice, .noSuchAddressOrDevice {
                // The disk went away, or takes no cgroup rules (a hidden multipath path): it counts nothing anyway.
            } catch {
                failures.append("\(disk.name) (\(disk.device)): \(error)")
            }
        }
        guard !failures.isEmpty else { return [] }
        return [
            "block I/O accounting stays off for \(failures.joined(separator: ", ")): cannot write the no-limit rule 'MAJ:MIN 0' to \(rulePath), so BlockReadBytes and the other Block figures miss I/O on these disks"
        ]
    }

    /// The devices the kernel counts already, from the root's statistics (none when it cannot be read: then
    /// every disk gets the rule, which does no harm).
    private func countingDevices(_ path: String) -> NameSet {
        guard let text = try? filesystem.read(path) else { return [] }
        var devices = NameSet()
        for line in text.splitASCII("\n") {
            let fields = line.splitASCII(" ")
            if fields.count == 3 { devices.insert(String(fields[0])) }
        }
        return devices
    }
}
