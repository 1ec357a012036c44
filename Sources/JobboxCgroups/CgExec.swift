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

    /// The limits from the options, completed from `$_CONDOR_JOB_AD` when `fromJobAd` is set, and where the job
    /// ad's `RequestMemory` or `RequestCpus` is missing or an expression (HTCondor's default `RequestMemory` is
    /// one), from the slot's `Memory` and `Cpus` in `$_CONDOR_MACHINE_AD`: what HTCondor itself enforces; with the
    /// device fence resolved to device numbers (`config` gives the site's device defaults).
    ///
    /// Trusted inputs: as root, either ad only where root alone can write it (`JobAdFile`'s rule); the job can
    /// rewrite both in its scratch dir. As the job's user, both (the user can only limit its own job).
    package static func limits(
        _ options: CgroupLimitOptions, fromJobAd: Bool, environment: Environment, config: JobboxConfig = JobboxConfig()
    ) throws(JobboxError) -> CgroupLimits {
        var limits = try CgroupLimits(parsing: options)
        if fromJobAd {
            guard let path = environment["_CONDOR_JOB_AD"], !path.isEmpty else {
                throw JobboxError.invalid("cannot use --from-job-ad", nil, "$_CONDOR_JOB_AD is not set (run under HTCondor, or pass --memory and --cpus)")
            }
            let remedy = "pass --memory and --cpus"
            let ad = try JobAdFile.read(path, for: "cannot read job ad", trust: .rootOnlyWhenPrivileged(remedy: remedy))
            let slot = try machineAd(environment: environment, remedy: remedy, needed: limits.needsSlot(fromJobAd: ad))
            try limits.fill(fromJobAd: ad, path: path, slot: slot)
            try limits.deviceRequest.fill(fromJobAd: ad, path: path, hideUnassigned: config.gpuHideUnassigned)
        }
        limits.devices = try DeviceFencePlanner(config: config).plan(limits.deviceRequest)
        return limits
    }

    /// `$_CONDOR_MACHINE_AD` and where it lies, read only when `needed` (the job ad leaves a limit open) and set.
    private static func machineAd(environment: Environment, remedy: String, needed: Bool) throws(JobboxError) -> (ad: ClassAd, path: String)? {
        guard needed, let path = environment["_CONDOR_MACHINE_AD"], !path.isEmpty else { return nil }
        return (try JobAdFile.read(path, for: "cannot read machine ad", trust: .rootOnlyWhenPrivileged(remedy: remedy)), path)
    }

    /// Makes the job's cgroups per `plan`, moves this process in and execs `command`. Returns only when the
    /// command could not be executed, after undoing the cgroups, with the error to report (status 126 or 127).
    ///
    /// A forwarded signal (TERM...) that comes while the cgroups are made waits; the command then never runs:
    /// the cgroups are undone and the signal acts (TERM ends cg-exec by it, as it would have ended the job).
    package static func run(_ plan: JobCgroupPlan, locator: JobCgroupLocator, command: [String], diagnostics: Diagnostics) throws(JobboxError) -> Never {
        let creator = JobCgroupCreator(layout: locator.layout, membership: locator.membership)
        SetUpSignals.hold()
        let job = try creator.create(plan)
        if let signal = SetUpSignals.arrived() {
            for problem in creator.undo(job) { diagnostics.warning(problem) }
            SetUpSignals.release()
            // Not reached while the signal's action is the default one (exec resets handlers to it).
            exit(128 + signal)
        }
        for warning in job.warnings { diagnostics.warning(warning) }
        SetUpSignals.release()
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

    /// `--delegate-to`'s user: a name from the user database or a uid; never root (root needs no delegation).
    package static func delegateUser(_ text: String) throws(JobboxError) -> uid_t {
        let uid: uid_t
        if let number = UserDatabase.parseID(text) {
            uid = number
        } else if let account = try UserDatabase.user(text) {
            uid = account.uid
        } else {
            throw JobboxError.invalid("invalid --delegate-to", "'\(text)'", "no such user")
        }
        guard uid != 0 else { throw JobboxError.invalid("invalid --delegate-to", "'\(text)'", "root needs no delegation") }
        return uid
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
