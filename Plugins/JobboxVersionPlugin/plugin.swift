import Foundation
import PackagePlugin

/// Writes jobbox's version (scripts/version.sh: a VERSION file, else `git describe`) into the target as a Swift
/// constant before every build, so `--version` prints a compile-time string and nothing generated is committed.
/// A prebuild command, not a build command: the version changes with every commit, which no input file tracks;
/// the script rewrites the source only when the version changed, so an unchanged version recompiles nothing.
@main
struct JobboxVersionPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let script = context.package.directoryURL.appending(path: "scripts/version.sh")
        let output = context.pluginWorkDirectoryURL.appending(path: "generated")
        return [
            .prebuildCommand(
                displayName: "Writing jobbox's version",
                executable: URL(filePath: "/bin/sh"),
                arguments: ["-c", "mkdir -p \"$1\" && exec /bin/sh \"$0\" --swift \"$1/JobboxBuildVersion.swift\"", script.path(), output.path()],
                outputFilesDirectory: output
            )
        ]
    }
}
