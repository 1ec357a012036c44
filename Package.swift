// swift-tools-version: 6.2
import Foundation
import PackageDescription

/// How every release tool is linked: one static executable, glibc included (bench/README.md: a static Swift
/// program starts in 1.1-1.4 times /bin/true's time, the same program with a dynamic glibc in 2-3 times: the
/// loader's relocations and symbol lookups, and the page faults of both). No tool links a C library that Debian
/// ships as a shared object only: netacct speaks netlink, the x_tables socket options and bpf() itself. What a
/// static glibc cannot do is load NSS modules (sss, ldap, systemd), so no tool calls getpwnam and its kin: users
/// and groups are asked of the node's own glibc through getent (Sources/JobboxCore/OS/UserDatabase.swift), and
/// Sources/CLinux/jb_nss.c keeps any other lookup to the built-in files and DNS services. A static executable
/// needs no symbol version of the node's glibc at all, so it runs on EL9's 2.34 as on anything newer
/// (scripts/check-static-binaries.sh checks every release build).
let staticReleaseLinking: [LinkerSetting] = [
    .unsafeFlags(["-static-executable"], .when(configuration: .release))
]

/// The five per-job tools, each a thin executable over the modules it needs (docs/ARCHITECTURE.md).
let tools: [(name: String, modules: [Target.Dependency])] = [
    ("cg-exec", ["JobboxCgroups", "JobboxNetacctClient"]),
    ("ns-exec", ["JobboxNamespaces"]),
    ("netacct", ["JobboxNetwork", "JobboxNetacctClient"]),
    ("chroot-tool", ["JobboxChroot"]),
    ("jobstat", ["JobboxStats", "JobboxCgroups", "JobboxQuota"]),
]

/// libFuzzer targets for the parsers of untrusted text, built only when `JOBBOX_FUZZ=1` (`make fuzz`): they
/// need `--sanitize=fuzzer`, which an ordinary build must not see. They live in this package so that they reach
/// the `package` API; nothing in jobbox is `public`.
let fuzzTargets: [(name: String, modules: [Target.Dependency])] = [
    ("config", ["JobboxCore"]),
    ("classad-read", ["JobboxCore"]),
    ("classad-roundtrip", ["JobboxCore"]),
    ("jobad", ["JobboxCore", "JobboxCgroups"]),
    ("chroot-spec", ["JobboxChroot"]),
    ("lease", ["JobboxNetwork"]),
    ("mountinfo", ["JobboxCgroups"]),
    ("cgroup-stat", ["JobboxStats"]),
]
let fuzzing = ProcessInfo.processInfo.environment["JOBBOX_FUZZ"] == "1"

let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let systemPackage = Target.Dependency.product(name: "SystemPackage", package: "swift-system")

let package = Package(
    name: "jobbox",
    products: tools.map { .executable(name: $0.name, targets: [$0.name]) }
        + (fuzzing ? fuzzTargets.map { .executable(name: "fuzz-\($0.name)", targets: ["fuzz-\($0.name)"]) } : []),
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // The C every module needs: wrappers Swift cannot reach in glibc, and spawning (fork to exec in C).
        .target(name: "CLinux"),
        // ns-exec's fork/exec side: the flat namespace plan carried out in the child, and the job's init.
        .target(name: "CNsExec", dependencies: ["CLinux"]),
        // The kernel's netlink, rtnetlink, nf_tables and legacy iptables (x_tables) headers: netacct speaks them
        // itself, with no library.
        .systemLibrary(name: "CNetfilter"),
        // jobbox's version as a constant, written at build time by the plugin (scripts/version.sh).
        .plugin(name: "JobboxVersionPlugin", capability: .buildTool()),
        .target(name: "JobboxBuildInfo", plugins: ["JobboxVersionPlugin"]),
        // Configuration, ClassAds and chirp, diagnostics and errors, guarded file access, the OS layer.
        .target(name: "JobboxCore", dependencies: ["CLinux", "JobboxBuildInfo", systemPackage]),
        // The node service's protocol and its client (netacct --show, jobstat): no libbpf, no netfilter.
        .target(name: "JobboxNetacctClient", dependencies: ["JobboxCore"]),
        // The command line every tool shares: JobboxTool's main, --config, --chirp.
        .target(name: "JobboxCLI", dependencies: ["JobboxCore", argumentParser]),
        // cgroup v1 and v2: layout, limits, a job's cgroup and its removal (cg-exec).
        .target(name: "JobboxCgroups", dependencies: ["JobboxCore", systemPackage]),
        // A job's cgroup figures as ClassAd, JSON or Prometheus text (jobstat).
        .target(name: "JobboxStats", dependencies: ["JobboxCgroups", "JobboxCore", "JobboxQuota", "JobboxNetacctClient", systemPackage]),
        // Versioned chroots: build, switch, prune, report (chroot-tool).
        .target(name: "JobboxChroot", dependencies: ["JobboxCore", "CLinux", systemPackage]),
        // A scratch directory's quota: btrfs qgroups, XFS and ext4 project quotas (ns-exec sets it, jobstat reads it).
        .target(name: "JobboxQuota", dependencies: ["JobboxCore", "CLinux", systemPackage]),
        // Namespaces, scratch, chroot and user of a job (ns-exec); reads a chroot's manifest; --attach finds a job's
        // cgroups through the cgroup layout.
        .target(
            name: "JobboxNamespaces", dependencies: ["JobboxChroot", "JobboxCgroups", "JobboxCore", "JobboxQuota", "CNsExec", "CLinux", systemPackage]),
        // netacct's cgroup BPF back end: its own loader (C, the ELF object read with <elf.h>, the bpf() system call of
        // CLinux; no libbpf, libelf or zlib), and the program compiled from source by the plugin (clang -target bpf,
        // scripts/bpf/embed-object.sh) and embedded as a generated Swift source.
        .target(name: "CNetacctBPF", dependencies: ["CLinux"]),
        .plugin(name: "NetacctBPFObjectPlugin", capability: .buildTool()),
        .target(name: "NetacctBPFObject", exclude: ["bpf"], plugins: ["NetacctBPFObjectPlugin"]),
        // Per-job network namespace, veth pair, and accounting chains in iptables or nftables, or cgroup BPF on the
        // job's own unified cgroup (netacct).
        .target(
            name: "JobboxNetwork",
            dependencies: [
                "JobboxCore", "JobboxCgroups", "JobboxNetacctClient", "CLinux", "CNetfilter", "CNetacctBPF", "NetacctBPFObject", systemPackage,
            ]
        ),

        // Helpers the test targets share: sandboxes, fixtures, spawning the built tools.
        .target(
            name: "JobboxTestSupport",
            dependencies: ["JobboxCore", "CLinux", systemPackage],
            path: "Tests/JobboxTestSupport"
        ),
        .testTarget(name: "JobboxCoreTests", dependencies: ["JobboxCore", "JobboxCLI", "JobboxTestSupport", "CLinux"]),
        .testTarget(name: "JobboxCgroupsTests", dependencies: ["JobboxCgroups", "JobboxTestSupport", "CLinux"]),
        .testTarget(name: "JobboxQuotaTests", dependencies: ["JobboxQuota", "JobboxCore", "JobboxTestSupport"]),
        .testTarget(name: "JobboxStatsTests", dependencies: ["JobboxStats", "JobboxCgroups", "JobboxQuota", "JobboxTestSupport"]),
        .testTarget(name: "JobboxChrootTests", dependencies: ["JobboxChroot", "JobboxTestSupport"]),
        .testTarget(
            name: "JobboxNamespacesTests",
            dependencies: ["JobboxNamespaces", "JobboxChroot", "JobboxQuota", "JobboxCgroups", "JobboxTestSupport", "CNsExec", "CLinux"]
        ),
        .testTarget(
            name: "JobboxNetworkTests", dependencies: ["JobboxNetwork", "JobboxNetacctClient", "JobboxCgroups", "NetacctBPFObject", "JobboxTestSupport"]),
        // The built tools end to end, with HTCondor and Slurm.
        .testTarget(name: "IntegrationTests", dependencies: ["JobboxCore", "JobboxTestSupport"]),
    ]
        + tools.map { tool in
            .executableTarget(
                name: tool.name,
                dependencies: ["JobboxCLI", "JobboxCore", argumentParser] + tool.modules,
                linkerSettings: staticReleaseLinking
            )
        }
        + (fuzzing
            ? fuzzTargets.map { target in
                .executableTarget(
                    name: "fuzz-\(target.name)",
                    dependencies: target.modules,
                    path: "fuzz/Sources/fuzz-\(target.name)",
                    swiftSettings: [.unsafeFlags(["-parse-as-library"])]
                )
            } : []),
    swiftLanguageModes: [.v6]
)
