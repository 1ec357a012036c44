// swift-tools-version: 6.2
import PackageDescription

/// The five per-job tools; each is a thin executable over `Common`.
let tools = ["cg-exec", "ns-exec", "netacct", "chroot-tool", "jobstat"]

let package = Package(
    name: "jobbox",
    // The tools, and Common as a library for the libFuzzer targets under fuzz/ (a package of their own).
    products: tools.map { .executable(name: $0, targets: [$0]) } + [.library(name: "JobboxCommon", targets: ["Common"])],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // Everything Swift cannot reach in glibc, and every line that runs between fork and exec.
        .target(name: "CLinux"),
        // libiptc (legacy iptables), libmnl and libnftnl, found through pkg-config.
        .systemLibrary(
            name: "CNetfilter",
            pkgConfig: "libip4tc libmnl libnftnl",
            providers: [.apt(["libiptc-dev", "libmnl-dev", "libnftnl-dev"])]
        ),
        // netacct's cgroup BPF back end: the libbpf loader (C), the program compiled from source by the plugin
        // (clang -target bpf) and embedded as a Swift source.
        .target(name: "CNetacctBPF", linkerSettings: [.linkedLibrary("bpf")]),
        .plugin(name: "NetacctBPFObjectPlugin", capability: .buildTool()),
        .target(name: "NetacctBPFObject", exclude: ["bpf"], plugins: ["NetacctBPFObjectPlugin"]),
        .target(
            name: "Common",
            dependencies: [
                "CLinux",
                "CNetfilter",
                "CNetacctBPF",
                "NetacctBPFObject",
                .product(name: "SystemPackage", package: "swift-system"),
                // Shared by every tool's command line: exit codes, job ids and sizes as arguments.
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "CommonTests",
            dependencies: ["Common", "CLinux"],
            exclude: ["Fixtures"]
        ),
    ] + tools.map { tool in
        .executableTarget(
            name: tool,
            dependencies: [
                "Common",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        )
    },
    swiftLanguageModes: [.v6]
)
