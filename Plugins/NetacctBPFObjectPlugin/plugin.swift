import Foundation
import PackagePlugin

/// Compiles netacct's BPF program (`bpf/netacct.bpf.c` of the target) with clang for the bpf target and embeds
/// the object in the target as a Swift source (scripts/bpf/embed-object.sh): a plain `swift build` builds it from
/// source, and the tools need no file beside them at run time.
@main
struct NetacctBPFObjectPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let package = context.package.directoryURL
        let source = target.directoryURL.appending(path: "bpf/netacct.bpf.c")
        let header = package.appending(path: "Sources/CNetacctBPF/include")
        let script = package.appending(path: "scripts/bpf/embed-object.sh")
        let output = context.pluginWorkDirectoryURL.appending(path: "NetacctBPFObjectData.swift")
        let object = context.pluginWorkDirectoryURL.appending(path: "netacct.bpf.o")
        return [
            .buildCommand(
                displayName: "Compiling netacct's BPF program",
                executable: URL(filePath: "/bin/sh"),
                arguments: [script.path(), source.path(), header.path(), output.path(), object.path()],
                inputFiles: [source, header.appending(path: "jb_netacct_bpf.h"), script],
                outputFiles: [output]
            )
        ]
    }
}
