// The generated JobboxBuildVersion.swift (Plugins/JobboxVersionPlugin) defines `jobboxBuildVersion`; this module
// holds nothing else, so a new version recompiles only it and JobboxCore's `JobboxVersion` reads it.
