import ArgumentParser
import JobboxCore

/// Options every tool takes.
package struct GlobalOptions: ParsableArguments {
    /// `--config FILE`.
    @Option(name: .long, help: ArgumentHelp("Read FILE instead of $JOBBOX_CONFIG or /etc/jobbox/jobbox.conf.", valueName: "file"))
    package var config: String?

    /// Creates the defaults.
    package init() {}

    /// `--config FILE` when `config` is not nil (a fast path's options).
    package init(config: String?) {
        self.config = config
    }

    /// Loads the configuration these options name and prints its warnings through `diagnostics`.
    package func loadConfig(_ diagnostics: Diagnostics, environment: Environment = .current) throws(JobboxError) -> JobboxConfig {
        let loaded = try JobboxConfig.load(explicitPath: config, environment: environment)
        for warning in loaded.warnings { diagnostics.warning(warning) }
        return loaded
    }
}
