import ArgumentParser
import JobboxCLI
import JobboxChroot
import JobboxCore

extension ChrootTool {
    struct List: JobboxTool {
        /// What `chroot-tool` turns `list --config` into before parsing (see `disambiguateListConfig`).
        static let configFlagSpelling = "--named-chroot-line"

        static let configuration = CommandConfiguration(
            abstract: "List the versions of NAME (or of every chroot).",
            usage: """
                chroot-tool list [<name>]
                chroot-tool list --config
                """,
            discussion: """
                One line per version: name, vN, state (current: CHROOT_DIR/NAME points at it; previous: rollback \
                goes there), size on disk, build time, and whether it is in use.

                --config prints instead the NAMED_CHROOT line for jobbox.conf that names every chroot with a \
                current version by its link (CHROOT_DIR/NAME). The configuration file to read is given before \
                the subcommand: chroot-tool --config FILE list --config.
                """)

        @ParentCommand var tool: ChrootTool

        @Argument(help: ArgumentHelp("The chroot's name (default: every chroot).", valueName: "name"))
        var name: String?

        @Flag(
            name: .customLong(String(configFlagSpelling.dropFirst(2))),
            help: ArgumentHelp("Spelled --config after list: print the NAMED_CHROOT line.", visibility: .hidden))
        var configurationLine = false

        func execute() throws -> Int32 {
            let context = try ToolContext(tool)
            if configurationLine {
                if let name { throw JobboxError.invalid("list --config takes no name", nil, "it names every chroot with a current version; drop '\(name)'") }
                printOut(try namedChrootConfiguration(context.store))
                return 0
            }
            let names = try name.map { [try ChrootName($0)] } ?? context.store.names()
            let rows = try ChrootListing.collect(context.store, names: names)
            if !rows.isEmpty { printOut(ChrootListing.render(rows)) }
            return 0
        }
    }

    struct Show: JobboxTool {
        static let configuration = CommandConfiguration(
            abstract: "Print the manifest of NAME's current version, or of NAME-vN.")

        @ParentCommand var tool: ChrootTool

        @Argument(help: ArgumentHelp("NAME (its current version) or NAME-vN.", valueName: "name[-vN]"))
        var reference: String

        @Flag(name: .customLong("spec"), help: "Print the spec file the version was built from instead.")
        var showSpec = false

        func execute() throws -> Int32 {
            let context = try ToolContext(tool)
            let version = try context.store.resolve(try ChrootReference(parsing: reference))
            let path = context.store.path(of: version) + "/" + (showSpec ? ChrootManifest.specRelativePath : ChrootManifest.relativePath)
            do {
                printOut(try SmallFile.read(path))
            } catch .noSuchFileOrDirectory where showSpec {
                throw JobboxError.invalid("no spec for", version.directoryName, "it was built from command-line options only")
            } catch {
                throw JobboxError.system("cannot read", path, error)
            }
            return 0
        }
    }

    struct Diff: JobboxTool {
        static let configuration = CommandConfiguration(
            abstract: "Show the packages added, removed and changed from version A to version B.",
            discussion:
                "One line per package, by name: '+ NAME VERSION ARCH' (added), '- NAME VERSION ARCH' (removed), '~ NAME OLD -> NEW ARCH' (changed). Nothing when they hold the same packages."
        )

        @ParentCommand var tool: ChrootTool

        @Argument(help: ArgumentHelp("The chroot's name.", valueName: "name"))
        var name: String

        @Argument(help: ArgumentHelp("The older version: vN, N or NAME-vN.", valueName: "a"))
        var first: String

        @Argument(help: ArgumentHelp("The newer version.", valueName: "b"))
        var second: String

        func execute() throws -> Int32 {
            let context = try ToolContext(tool)
            let chrootName = try ChrootName(name)
            let old = try ChrootVersion.parse(first, of: chrootName)
            let new = try ChrootVersion.parse(second, of: chrootName)
            try context.store.requireExisting(old)
            try context.store.requireExisting(new)
            let diff = PackageDiff(from: try context.store.manifest(of: old).installed, to: try context.store.manifest(of: new).installed)
            printOut(diff.render())
            return 0
        }
    }

    struct Verify: JobboxTool {
        static let configuration = CommandConfiguration(
            abstract: "Check a version: manifest, packages, package files, and that a shell runs inside.",
            discussion: """
                NAME checks the current version (and the link); NAME-vN checks that version. Prints one line per \
                check; exits 0 when all pass, 1 when one fails (configuration files that differ from their \
                package's are not failures).
                """)

        @ParentCommand var tool: ChrootTool

        @Argument(help: ArgumentHelp("NAME (its current version) or NAME-vN.", valueName: "name[-vN]"))
        var reference: String

        func execute() throws -> Int32 {
            let context = try ToolContext(tool, needsRoot: "verify")
            let parsed = try ChrootReference(parsing: reference)
            let version = try context.store.resolve(parsed)
            var checkLink = false
            if case .current = parsed { checkLink = true }
            let report = ChrootVerification.run(context.store, version: version, checkLink: checkLink)
            printOut(report.render())
            return report.passed ? 0 : 1
        }
    }
}
