// swift-tools-version: 6.2
import PackageDescription

/// The five per-job tools; each is a thin executable over `Common`.
let tools = ["cg-exec", "ns-exec", "netacct", "chroot-tool", "jobstat"]

/// How a release tool is linked (bench/README.md has the measurements behind each flag). glibc stays dynamic, so
/// user and group lookups go through the node's NSS (LDAP, SSSD), which a static glibc cannot load reliably;
/// everything else that costs at start-up goes:
/// - `-no-pie`: the Swift runtime's metadata holds about 40,000 absolute pointers, which the loader of a
///   position-independent executable relocates at every start, dirtying half a megabyte of pages per process;
///   linked at a fixed address they are resolved once, by the linker;
/// - `--no-export-dynamic`: `--static-swift-stdlib` exports every symbol of the executable, which only makes
///   the dynamic symbol table (and every lookup the loader does in it) larger;
/// - libstdc++ linked in: resolving its symbols was four fifths of the loader's work. The toolchain names it as
///   `-lstdc++`, so scripts/release-build.sh puts the archive where the linker looks first.
/// - `--wrap`: what the Swift runtime and libstdc++ reference from glibc 2.35 and 2.36 is answered by
///   Sources/CLinux/jb_glibc_compat.c, so the binaries load on EL9's glibc 2.34
///   (scripts/check-glibc-symbols.sh checks every release build).
let releaseLinking: [LinkerSetting] = [
    .unsafeFlags([
        "-Xclang-linker", "-no-pie",
        "-Xlinker", "--no-export-dynamic",
        "-Xlinker", "--wrap=hypotf",
        "-Xlinker", "--wrap=arc4random",
    ], .when(configuration: .release)),
]

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
            ],
            linkerSettings: releaseLinking
        )
    },
    swiftLanguageModes: [.v6]
)
