import ArgumentParser
import JobboxCLI
import JobboxChroot
import JobboxCore

extension ChrootTool {
    struct Switch: JobboxTool {
        static let configuration = CommandConfiguration(
            abstract: "Point CHROOT_DIR/NAME at version N.",
            discussion: "A new symlink is renamed over the old one: a job resolving CHROOT_DIR/NAME sees the old or the new version, never none.")

        @ParentCommand var tool: ChrootTool

        @Argument(help: ArgumentHelp("The chroot's name.", valueName: "name"))
        var name: String

        @Argument(help: ArgumentHelp("The version: vN, N or NAME-vN.", valueName: "version"))
        var version: String

        func execute() throws -> Int32 {
            let context = try ToolContext(tool, needsRoot: "switch")
            let chrootName = try ChrootName(name)
            let target = try ChrootVersion.parse(version, of: chrootName)
            let previous = try context.store.switchTo(target)
            printOut("switched \(chrootName) " + (previous.map { "from \($0) " } ?? "") + "to \(target)\n")
            return 0
        }
    }

    struct Rollback: JobboxTool {
        static let configuration = CommandConfiguration(
            abstract: "Point CHROOT_DIR/NAME back at the version that was current before.",
            discussion: "The history beside the chroots (CHROOT_DIR/.NAME.history) says which; rolling back again goes further back.")

        @ParentCommand var tool: ChrootTool

        @Argument(help: ArgumentHelp("The chroot's name.", valueName: "name"))
        var name: String

        func execute() throws -> Int32 {
            let context = try ToolContext(tool, needsRoot: "rollback")
            let chrootName = try ChrootName(name)
            let (from, to) = try context.store.rollback(chrootName)
            printOut("rolled back \(chrootName) " + (from.map { "from \($0) " } ?? "") + "to \(to)\n")
            return 0
        }
    }

    struct GC: JobboxTool {
        static let configuration = CommandConfiguration(
            commandName: "gc",
            abstract: "Remove old versions of NAME, keeping the K newest.",
            discussion: """
                Never removes the current version, the rollback target, or a version in use: a process whose root \
                or working directory is inside it, or a mount below it (or a bind mount of it) in any mount namespace. \
                Prints one line per version removed or kept because it is in use.
                """)

        @ParentCommand var tool: ChrootTool

        @Argument(help: ArgumentHelp("The chroot's name.", valueName: "name"))
        var name: String

        @Option(name: .long, help: ArgumentHelp("How many of the newest versions to keep (0 or more).", valueName: "k"))
        var keep: Int

        func execute() throws -> Int32 {
            let context = try ToolContext(tool, needsRoot: "gc")
            let chrootName = try ChrootName(name)
            guard keep >= 0 else { throw JobboxError.invalid("invalid value for", "--keep", "'\(keep)' is negative") }
            var status: Int32 = 0
            for outcome in try context.store.collectGarbage(chrootName, keep: keep) {
                switch outcome {
                case .removed(let version):
                    printOut("removed \(version)\n")
                case .inUse(let version, let users):
                    printOut("kept \(version): in use: " + users.map(\.description).joined(separator: "; ") + "\n")
                case .notRemoved(_, let error):
                    context.diagnostics.error(error.description + " (the next gc tries again)")
                    status = 125
                }
            }
            return status
        }
    }
}
