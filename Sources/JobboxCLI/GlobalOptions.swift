import ArgumentParser
import JobboxCore

/// Options every tool takes.
package struct GlobalOptions: ParsableArguments {
    /// `--config FILE`.
    @Option(name: .long, help: ArgumentHelp("Read FILE instead of $JOBBOX_CONFIG or /etc/jobbox/jobbox.conf.", valueName: "file"))
    package var config: String?

    /// Creates the defaults.
    package init() {}

    /// Loads the configuration these options name and prints its warnings through `diagnostics`.
    package func loadConfig(_ diagnostics: Diagnostics, environment: Environment = .current) throws(JobboxError) -> JobboxConfig {
        try Self.loadConfig(explicitPath: config, diagnostics, environment: environment)
    }

    /// What a tool's work starts from: the process environment (read once), diagnostics under the tool's name,
    /// and the configuration `--config` names (`configPath`), its warnings printed.
    package static func start(tool: String, configPath: String?) throws(JobboxError) -> (
        environment: Environment, diagnostics: Diagnostics, config: JobboxConfig
    ) {
        let environment = Environment.current
        let diagnostics = Diagnostics(tool: tool, environment: environment)
        return (environment, diagnostics, try loadConfig(explicitPath: configPath, diagnostics, environment: environment))
    }

    /// Loads the configuration `--config` names (`explicitPath`, nil when not given) and prints its warnings: the
    /// fast command lines' way, which builds no ArgumentParser value (its option table costs a start-up a
    /// protocol-conformance scan of the whole binary).
    package static func loadConfig(explicitPath: String?, _ diagnostics: Diagnostics, environment: Environment) throws(JobboxError) -> JobboxConfig {
        let loaded = try JobboxConfig.load(explicitPath: explicitPath, environment: environment)
        for warning in loaded.warnings { diagnostics.warning(warning) }
        return loaded
    }
}
