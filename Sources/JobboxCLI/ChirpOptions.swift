import ArgumentParser
import JobboxCore

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// `--chirp`, `--chirp-delayed` and `--chirp-auto`, shared by the tools that print an ad.
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

    /// `--chirp-auto`.
    @Flag(
        name: .customLong("chirp-auto"),
        help:
            "Push it only when the starter runs a chirp proxy for the job ($_CONDOR_CHIRP_CONFIG names a file): as --chirp when the job ad ($_CONDOR_JOB_AD) says WantIOProxy = true, else as --chirp-delayed."
    )
    package var automatic = false

    /// Creates the defaults.
    package init() {}

    /// The update asked for, nil when no flag is given or `--chirp-auto` finds no proxy; two flags are an error.
    package func update(environment: Environment = .current) throws(JobboxError) -> ChirpUpdate? {
        try Self.update(immediate: immediate, delayed: delayed, automatic: automatic, environment: environment)
    }

    /// The update the three flags ask for, as `update(environment:)` (for a fast path, which has no parsed
    /// `ChirpOptions`).
    package static func update(immediate: Bool, delayed: Bool, automatic: Bool, environment: Environment) throws(JobboxError) -> ChirpUpdate? {
        let given = [("--chirp", immediate), ("--chirp-delayed", delayed), ("--chirp-auto", automatic)].filter(\.1).map(\.0)
        if given.count > 1 { throw JobboxError.invalid("invalid options", given.joined(separator: " "), "give one of them") }
        if automatic { return automaticUpdate(environment: environment) }
        return immediate ? .immediate : delayed ? .delayed : nil
    }

    /// What `--chirp-auto` does under `environment`: nothing without a chirp config file; `set_job_attr` when
    /// the job asked for an I/O proxy (without one the starter refuses it), else `set_job_attr_delayed`, which
    /// the starter always takes.
    ///
    /// Trust: the config file is only checked for existence here (it is read as the job's user, `ChirpAsJob`),
    /// and `WantIOProxy` comes from the job ad wherever it lies (read by `GuardedFile`'s rule): it only chooses
    /// which of two requests goes to the job's own proxy, so a job that lies about it loses only its own update.
    package static func automaticUpdate(environment: Environment) -> ChirpUpdate? {
        guard let config = environment["_CONDOR_CHIRP_CONFIG"], !config.isEmpty, access(config, F_OK) == 0 else { return nil }
        guard let path = environment["_CONDOR_JOB_AD"], !path.isEmpty,
            let ad = try? JobAdFile.read(path, for: "cannot read job ad"), ad.boolean("WantIOProxy") == true
        else { return .delayed }
        return .immediate
    }

    /// Publishes `ad` as asked (nothing without a flag).
    package func publish(_ ad: ClassAd, environment: Environment = .current) throws(JobboxError) {
        guard let update = try update(environment: environment) else { return }
        try ChirpClient.publish(ad, update: update, environment: environment)
    }
}
