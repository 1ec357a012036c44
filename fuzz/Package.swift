// swift-tools-version: 6.2
import PackageDescription

/// libFuzzer targets for jobbox's parsers of untrusted text (`make fuzz`, `make fuzz-run`; see fuzz/README.md).
/// Each is an executable whose only entry point is `LLVMFuzzerTestOneInput`; libFuzzer's own `main` drives it,
/// so the sources are parsed as a library and the build needs `swift build --sanitize=fuzzer`.
let targets = ["config", "classad-read", "classad-roundtrip", "jobad", "chroot-spec", "lease", "mountinfo", "cgroup-stat"]

let package = Package(
    name: "jobbox-fuzz",
    dependencies: [.package(name: "jobbox", path: "..")],
    targets: targets.map { name in
        .executableTarget(
            name: "fuzz-\(name)",
            dependencies: [.product(name: "JobboxCommon", package: "jobbox")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        )
    },
    swiftLanguageModes: [.v6]
)
