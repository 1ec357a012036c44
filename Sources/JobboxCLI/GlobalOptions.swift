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

    /// Loads the configuration `--config` names (`explicitPath`, nil when not given) and prints its warnings: the
    /// fast command lines' way, which builds no ArgumentParser value (its option table costs a start-up a
    /// protocol-conformance scan of the whole binary).
    package static func loadConfig(explicitPath: String?, _ diagnostics: Diagnostics, environment: Environment) throws(JobboxError) -> JobboxConfig {
        let loaded = try JobboxConfig.load(explicitPath: explicitPath, environment: environment)
        for warning in loaded.warnings { diagnostics.warning(warning) }
        return loaded
    }
}
