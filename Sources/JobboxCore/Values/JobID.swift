/// A job's identity: 1 to 64 characters of `[A-Za-z0-9_.@-]`, not starting with `.` or `-` (it would read as an
/// option to the tools a wrapper passes it to).
///
/// Validated before any side effect, so it can name cgroups, state files and chains without path traversal.
package struct JobID: Sendable, Hashable, CustomStringConvertible {
    /// The id as given (`1234.0`).
    package let rawValue: String

    /// Validates `text`.
    package init(_ text: String) throws(JobboxError) {
        if let problem = JobID.problem(with: text) {
            throw JobboxError.invalid("invalid job id", "'\(text)'", problem)
        }
        rawValue = text
    }

    static func problem(with text: String) -> String? {
        rule.problem(with: text)
    }

    private static let rule = NameRule(punctuation: ["_", ".", "@", "-"], forbiddenFirst: [".", "-"])

    /// The job's cgroup directory name: `job_<id with . replaced by _>`, as in `job_1234_5`.
    package var cgroupName: String {
        "job_" + String(rawValue.map { $0 == "." ? "_" : $0 })
    }

    /// A stable name of at most `maxLength` bytes for kernel objects with short names (interfaces: 15,
    /// iptables chains: 28): `prefix` + the id when it fits (with `.` as `_`), else `prefix` + a hash of the id.
    package func shortName(prefix: String, maxLength: Int) -> String {
        let plain = prefix + String(rawValue.map { $0 == "." || $0 == "@" ? "_" : $0 })
        if plain.utf8.count <= maxLength { return plain }
        let hash = String(JobID.fnv1a(rawValue), radix: 16)
        let width = max(0, maxLength - prefix.utf8.count)
        return prefix + String(hash.prefix(width))
    }

    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// The id as given.
    package var description: String { rawValue }

    /// The job's id from `--job`, else `$_CONDOR_JOB_AD` (`ClusterId.ProcId`), else `$SLURM_JOB_ID` (with
    /// `.$SLURM_STEP_ID` when set); an error when none gives one.
    ///
    /// Trusted inputs: `--job` and, from the batch system, `$SLURM_JOB_ID`. The job ad lies in the job's scratch
    /// directory, which the job can write (it can rewrite `ClusterId` to name another job): as root it is
    /// believed only where only root can write, else the caller must pass `--job` (the HTCondor wrapper
    /// derives the id once, before the job runs, and passes `--job` to every step).
    package static func resolve(option: String?, environment: Environment) throws(JobboxError) -> JobID {
        if let option { return try JobID(option) }
        if let adPath = environment["_CONDOR_JOB_AD"], !adPath.isEmpty {
            let operation = "cannot derive job id from"
            let ad = try JobAdFile.read(adPath, for: operation, trust: .rootOnlyWhenPrivileged(remedy: "pass --job ID"))
            guard let cluster = ad.integer("ClusterId"), let proc = ad.integer("ProcId") else {
                throw JobboxError.invalid(operation, adPath, "it has no integer ClusterId and ProcId")
            }
            return try JobID("\(cluster).\(proc)")
        }
        if let slurm = environment["SLURM_JOB_ID"], !slurm.isEmpty {
            if let step = environment["SLURM_STEP_ID"], !step.isEmpty { return try JobID("\(slurm).\(step)") }
            return try JobID(slurm)
        }
        throw JobboxError.invalid("no job id", nil, "pass --job ID, or run under HTCondor ($_CONDOR_JOB_AD) or Slurm ($SLURM_JOB_ID)")
    }
}
