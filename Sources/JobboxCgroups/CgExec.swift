import CLinux
import JobboxCore
import SystemPackage

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// cg-exec's three modes over the cgroup library: run a job in its own cgroups, remove a job's cgroups, list the
/// jobs. The executable parses the command line and calls these.
package enum CgExec {
    /// Where jobs' cgroups live: the configuration, with `--parent` and `--base` taking precedence.
    package static func locator(config: JobboxConfig, parent: String?, base: String?) throws(JobboxError) -> JobCgroupLocator {
        var config = config
        if let base {
            let trimmed = base.trimmingTrailingSlashes()
            guard CgroupParent.isSafeRelative(trimmed) else {
                throw JobboxError.invalid("invalid --base", "'\(base)'", "it is not a relative cgroup path without '..'")
            }
            config.baseCgroup = trimmed
        }
        return try JobCgroupLocator.current(config: config, parentOverride: parent)
    }

    /// The limits from the options, completed from `$_CONDOR_JOB_AD` when `fromJobAd` is set, with the device
    /// fence resolved to device numbers (`config` gives the site's device defaults).
    package static func limits(
        _ options: CgroupLimitOptions, fromJobAd: Bool, environment: Environment, config: JobboxConfig = JobboxConfig()
    ) throws(JobboxError) -> CgroupLimits {
        var limits = try CgroupLimits(parsing: options)
        if fromJobAd {
            guard let path = environment["_CONDOR_JOB_AD"], !path.isEmpty else {
                throw JobboxError.invalid("cannot use --from-job-ad", nil, "$_CONDOR_JOB_AD is not set (run under HTCondor, or pass --memory and --cpus)")
            }
            // The job's own request, read before the job runs: bounded, and as root only from where root alone
            // writes (the HTCondor wrapper passes --memory and --cpus instead).
            let ad = try JobAdFile.read(path, for: "cannot read job ad", trust: .rootOnlyWhenPrivileged(remedy: "pass --memory and --cpus"))
            try limits.fill(fromJobAd: ad, path: path)
            try limits.deviceRequest.fill(fromJobAd: ad, path: path, hideUnassigned: config.gpuHideUnassigned)
        }
        limits.devices = try DeviceFencePlanner(config: config).plan(limits.deviceRequest)
        return limits
    }

    /// Makes the job's cgroups per `plan`, moves this process in and execs `command`. Returns only when the
    /// command could not be executed, after undoing the cgroups, with the error to report (status 126 or 127).
    package static func run(_ plan: JobCgroupPlan, locator: JobCgroupLocator, command: [String], diagnostics: Diagnostics) throws(JobboxError) -> Never {
        let creator = JobCgroupCreator(layout: locator.layout, membership: locator.membership)
        let job = try creator.create(plan)
        for warning in job.warnings { diagnostics.warning(warning) }
        let errno = execute(command)
        for problem in creator.undo(job) { diagnostics.warning(problem) }
        throw JobboxError.exec(command[0], errno)
    }

    /// Replaces this process with `command` (searched in PATH); returns only the errno of a failed exec.
    package static func execute(_ command: [String]) -> Errno {
        guard let arguments = CStringArray(command) else { return .noMemory }
        return Errno(rawValue: jb_exec(arguments.pointers[0], arguments.pointers, nil))
    }

    /// `--remove`: kills what is left of the job and removes its cgroups.
    package static func remove(_ job: JobID, locator: JobCgroupLocator, timeout: Duration) throws(JobboxError) {
        try JobCgroupRegistry(locator: locator).remove(job, timeout: timeout)
    }

    /// `--list`: one line per job under the base, `job_<id> <processes>`.
    package static func list(locator: JobCgroupLocator) -> String {
        JobCgroupRegistry(locator: locator).list().map { "\($0.name) \($0.processCount)\n" }.joined()
    }

    /// Parses `--timeout` seconds (`10`, `2.5`).
    package static func timeout(_ text: String?) throws(JobboxError) -> Duration {
        guard let text else { return defaultTimeout }
        // Seconds take the same form as CPU amounts: above 0, at most three decimals (milliseconds).
        guard let amount = CPUAmount(parsing: text) else {
            throw JobboxError.invalid("invalid --timeout", "'\(text)'", "it is not a number of seconds above 0 with at most three decimals")
        }
        return .milliseconds(Int64(clamping: amount.milli))
    }

    /// How long `--remove` waits for the job's processes to die.
    package static let defaultTimeout = Duration.seconds(10)
}
