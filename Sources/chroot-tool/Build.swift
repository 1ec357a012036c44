import ArgumentParser
import JobboxCLI
import JobboxChroot
import JobboxCore

extension ChrootTool {
    struct Build: JobboxTool {
        static let configuration = CommandConfiguration(
            abstract: "Build CHROOT_DIR/NAME-vN, N one more than any version before.",
            discussion: """
                The tree is made in a temporary directory beside the versions, checked (a shell must run inside), \
                given the mount points ns-exec needs (/proc, /dev, /tmp, /var/tmp, /run, the spec's BINDS targets and \
                CHROOT_MOUNT_POINTS: jobs see the version read-only, and ns-exec makes nothing in it) and its manifest (/.jobbox/manifest: every package with its version, the backend, repositories, \
                release, time and spec), then renamed into place. A failed or interrupted build leaves nothing; a \
                temporary directory a crash left is removed by the next build. The backend's output goes to stderr \
                with a [backend] prefix; the new version's name goes to stdout. Options override the spec file's knobs.
                """)

        @ParentCommand var tool: ChrootTool

        @Argument(help: ArgumentHelp("The chroot's name (letters, digits, _ . -).", valueName: "name"))
        var name: String

        @Option(name: .long, help: ArgumentHelp("dnf, yum or debootstrap (spec: BACKEND).", valueName: "backend"))
        var backend: String?

        @Option(name: .long, help: ArgumentHelp("dnf/yum --releasever, or debootstrap's suite such as bookworm (spec: RELEASE).", valueName: "release"))
        var release: String?

        @Option(
            name: .customLong("repo"),
            help: ArgumentHelp("A repository base URL (dnf/yum, repeatable) or the mirror (debootstrap) (spec: REPOS).", valueName: "url"))
        var repos: [String] = []

        @Option(name: .long, help: ArgumentHelp("Packages to install, separated by commas or spaces (spec: PACKAGES).", valueName: "list"))
        var packages: String?

        @Option(
            name: .long,
            help: ArgumentHelp(
                "Read BACKEND, RELEASE, REPOS, PACKAGES, BINDS, GPGCHECK, GPGKEYS and VARIANT from FILE (jobbox.conf syntax).", valueName: "file"))
        var spec: String?

        @Flag(name: .customLong("no-gpg-check"), help: "Do not check package signatures (spec: GPGCHECK = false).")
        var noGPGCheck = false

        @Option(name: .customLong("cache-dir"), help: ArgumentHelp("debootstrap: keep downloaded packages in DIR between builds.", valueName: "dir"))
        var cacheDirectory: String?

        @Flag(name: .customLong("switch"), help: "Point CHROOT_DIR/NAME at the new version when it is built.")
        var switchWhenDone = false

        @Flag(name: .shortAndLong, help: "Show one progress line per phase instead of the backend's output.")
        var quiet = false

        func execute() throws -> Int32 {
            let context = try ToolContext(tool, needsRoot: "build")
            let chrootName = try ChrootName(name)
            var chrootSpec = ChrootSpec()
            if let spec {
                chrootSpec = try ChrootSpec.load(spec)
                for warning in chrootSpec.warnings { context.diagnostics.warning(warning) }
            }
            if let backend { try chrootSpec.override("BACKEND", with: backend, option: "--backend") }
            if let release { try chrootSpec.override("RELEASE", with: release, option: "--release") }
            if !repos.isEmpty { try chrootSpec.override("REPOS", with: repos.joined(separator: " "), option: "--repo") }
            if let packages { try chrootSpec.override("PACKAGES", with: packages, option: "--packages") }
            if noGPGCheck { chrootSpec.gpgCheck = false }
            if let cacheDirectory, !cacheDirectory.hasPrefix("/") {
                throw JobboxError.invalid("invalid value for", "--cache-dir", "'\(cacheDirectory)' is not an absolute path")
            }
            let builder = try ChrootBuilder(
                store: context.store, name: chrootName, spec: chrootSpec, cacheDirectory: cacheDirectory, switchWhenDone: switchWhenDone,
                quiet: quiet, diagnostics: context.diagnostics, mountPoints: context.config.chrootMountPoints)
            do {
                let version = try builder.build()
                printOut("\(version)\n")
                return 0
            } catch let interrupted as BuildInterrupted {
                context.diagnostics.error(interrupted.description)
                return interrupted.exitStatus
            }
        }
    }
}
