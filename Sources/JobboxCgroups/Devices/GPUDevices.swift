import CLinux
import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The GPU device nodes of a node, found by name in `GPU_DEVICE_DIR` (`/dev`).
///
/// - NVIDIA: `nvidiaN` is GPU N (its minor); `nvidiactl`, `nvidia-uvm`, `nvidia-uvm-tools` and `nvidia-modeset`
///   serve every NVIDIA GPU and are needed by any CUDA program.
/// - DRM (AMD and Intel): `dri/renderDN` is a render node, `dri/cardN` a primary (display) node; `kfd` is AMD's
///   compute interface, which works only together with a render node the process may open.
///
/// Trusted inputs: the directory comes from the configuration (root's), and is opened with `GuardedPath`;
/// entries are stat'ed without following symbolic links, so only device nodes count (`/dev/dri/by-path` links
/// are skipped).
package struct GPUDevices: Sendable, Equatable {
    /// Who makes a GPU, which decides its control nodes.
    package enum Vendor: Sendable, Equatable, Hashable {
        case nvidia
        case drm
    }

    /// One GPU node.
    package struct Node: Sendable, Equatable {
        package let name: String
        package let vendor: Vendor
        package let number: DeviceNumber
    }

    /// The GPUs themselves (`nvidiaN`, `dri/renderDN`, `dri/cardN`).
    package var gpus: [Node] = []
    /// The shared control nodes (`nvidiactl`, `nvidia-uvm`, `nvidia-uvm-tools`, `nvidia-modeset`, `kfd`).
    package var controls: [Node] = []

    /// The NVIDIA control nodes.
    package static let nvidiaControls = ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"]

    /// An empty inventory.
    package init() {}

    /// Reads the nodes in `directory` (and its `dri`); a missing directory has none.
    package static func scan(_ directory: String) throws(JobboxError) -> GPUDevices {
        var result = GPUDevices()
        let operation = "cannot read GPU devices in"
        let root: GuardedDirectory
        do {
            root = try GuardedPath.openDirectory(directory, for: operation)
        } catch  where error.errno == .noSuchFileOrDirectory {
            return result
        }
        defer { root.close() }
        for (name, number) in devices(in: root.fd) {
            if name.hasPrefix("nvidia"), isNumbered(name, prefix: "nvidia") {
                result.gpus.append(Node(name: name, vendor: .nvidia, number: number))
            } else if nvidiaControls.contains(name) {
                result.controls.append(Node(name: name, vendor: .nvidia, number: number))
            } else if name == "kfd" {
                result.controls.append(Node(name: name, vendor: .drm, number: number))
            }
        }
        let dri = openat(root.fd, "dri", JB_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if dri >= 0 {
            defer { close(dri) }
            for (name, number) in devices(in: dri) where isNumbered(name, prefix: "renderD") || isNumbered(name, prefix: "card") {
                result.gpus.append(Node(name: "dri/" + name, vendor: .drm, number: number))
            }
        }
        result.gpus.sort { $0.name < $1.name }
        result.controls.sort { $0.name < $1.name }
        return result
    }

    /// The GPU node called `name` (`nvidia0`, `dri/renderD128`).
    package func gpu(named name: String) -> Node? { gpus.first { $0.name == name } }

    static func isNumbered(_ name: String, prefix: String) -> Bool {
        name.hasPrefix(prefix) && name.count > prefix.count && name.dropFirst(prefix.count).allSatisfy(\.isASCIIDigit)
    }

    /// The device nodes directly in the directory `fd` (an O_PATH descriptor), by name.
    private static func devices(in fd: Int32) -> [(String, DeviceNumber)] {
        let readable = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard readable >= 0, let stream = fdopendir(readable) else { return [] }
        defer { closedir(stream) }
        return DirectoryListing.entries(of: stream).compactMap { entry in
            var info = stat()
            guard fstatat(readable, entry.name, &info, AT_SYMLINK_NOFOLLOW) == 0, let number = DeviceNumber(info) else { return nil }
            return (entry.name, number)
        }
    }
}

/// HTCondor's names for GPUs mapped to device nodes.
///
/// What `AssignedGPUs` holds depends on how the startd found its GPUs: `condor_gpu_discovery` names NVIDIA GPUs
/// by short UUID (`GPU-c4a646d7`, the default since HTCondor 9), by full UUID (`-uuid`) or by index (`CUDA0`,
/// `-by-index`); a site that declares GPUs itself (`MACHINE_RESOURCE_GPUs`) lists whatever names it chose.
/// Accepted here:
/// - `GPU-<hex>`: a UUID or a unique prefix of one, matched against `GPU UUID` in the NVIDIA driver's
///   `/proc/driver/nvidia/gpus/*/information`, whose `Device Minor` N is `/dev/nvidiaN`;
/// - `CUDA<N>` or `N`: `/dev/nvidiaN` (NVML's index and the minor agree unless the driver was told otherwise;
///   prefer UUIDs);
/// - `renderD<N>`: `/dev/dri/renderD<N>` (AMD, Intel);
/// - an absolute path to a GPU node in `GPU_DEVICE_DIR`.
package struct GPUNames {
    /// The NVIDIA driver's per-GPU directories.
    package var nvidiaInformation = "/proc/driver/nvidia/gpus"

    /// Creates a mapper.
    package init(nvidiaInformation: String = "/proc/driver/nvidia/gpus") {
        self.nvidiaInformation = nvidiaInformation
    }

    /// The node `name` stands for among `devices` (found in `directory`); `source` phrases errors.
    package func node(_ name: String, in devices: GPUDevices, directory: String, source: String) throws(JobboxError) -> GPUDevices.Node {
        let operation = "cannot fence GPU '\(name)' from"
        let wanted: String
        if name.hasPrefix("GPU-") || name.hasPrefix("gpu-") {
            wanted = "nvidia" + String(try minor(ofUUID: name, operation: operation, source: source))
        } else if name.hasPrefix("MIG-") {
            throw JobboxError.invalid(operation, source, "MIG instances share their GPU's device node and are not fenced one by one (assign whole GPUs)")
        } else if let index = Self.number(name, prefix: "CUDA") ?? Self.number(name, prefix: "") {
            wanted = "nvidia\(index)"
        } else if GPUDevices.isNumbered(name, prefix: "renderD") {
            wanted = "dri/" + name
        } else if name.hasPrefix(directory + "/") {
            wanted = String(name.dropFirst(directory.count + 1))
        } else {
            throw JobboxError.invalid(operation, source, "it is not GPU-<uuid>, CUDA<N>, <N>, renderD<N> or a GPU node in \(directory)")
        }
        guard let node = devices.gpu(named: wanted) else {
            throw JobboxError.invalid(operation, source, "there is no GPU node \(directory)/\(wanted)")
        }
        return node
    }

    static func number(_ name: String, prefix: String) -> Int? {
        guard name.hasPrefix(prefix), name.count > prefix.count, name.count <= prefix.count + 4 else { return nil }
        let digits = name.dropFirst(prefix.count)
        return digits.allSatisfy(\.isASCIIDigit) ? Int(digits) : nil
    }

    /// The device minor of the NVIDIA GPU whose UUID starts with `uuid` (case-insensitive, unique).
    func minor(ofUUID uuid: String, operation: String, source: String) throws(JobboxError) -> Int {
        let wanted = uuid.lowercased()
        var matches: [Int] = []
        let directories = (try? DirectoryListing.subdirectories(atPath: nvidiaInformation)) ?? []
        for directory in directories {
            guard let text = try? SmallFile.read(nvidiaInformation + "/" + directory + "/information") else { continue }
            var found: String?
            var minor: Int?
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingASCIISpaces() }
                guard parts.count == 2 else { continue }
                if parts[0] == "GPU UUID" { found = parts[1].lowercased() }
                if parts[0] == "Device Minor" { minor = Int(parts[1]) }
            }
            if let found, let minor, found.hasPrefix(wanted) { matches.append(minor) }
        }
        guard matches.count == 1, let minor = matches.first else {
            let why = matches.isEmpty ? "no NVIDIA GPU in \(nvidiaInformation) has that UUID" : "it matches \(matches.count) GPUs' UUIDs"
            throw JobboxError.invalid(operation, source, why)
        }
        return minor
    }
}
