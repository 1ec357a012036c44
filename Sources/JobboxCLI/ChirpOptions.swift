import ArgumentParser
import JobboxCore

/// `--chirp` and `--chirp-delayed`, shared by the tools that print an ad.
package struct ChirpOptions: ParsableArguments {
    /// `--chirp`.
    @Flag(
        name: .customLong("chirp"),
        help:
            "Also push the ad into the running job's ad with chirp set_job_attr ($_CONDOR_CHIRP_CONFIG; the job needs +WantIOProxy = true). As root, done as the job's user (the owner of the file's directory); 10 s at most."
    )
    package var immediate = false

    /// `--chirp-delayed`.
    @Flag(name: .customLong("chirp-delayed"), help: "Push it with set_job_attr_delayed instead, as Chirp<Name> attributes, with the starter's next update.")
    package var delayed = false

    /// Creates the defaults.
    package init() {}

    /// The update asked for, nil when neither flag is given; both flags are an error.
    package func update() throws(JobboxError) -> ChirpUpdate? {
        if immediate && delayed { throw JobboxError.invalid("invalid options", "--chirp --chirp-delayed", "give one of them") }
        return immediate ? .immediate : delayed ? .delayed : nil
    }

    /// Publishes `ad` as asked (nothing without a flag).
    package func publish(_ ad: ClassAd, environment: Environment = .current) throws(JobboxError) {
        guard let update = try update() else { return }
        try ChirpClient.publish(ad, update: update, environment: environment)
    }
}
