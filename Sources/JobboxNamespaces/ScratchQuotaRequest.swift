import JobboxCore

/// `--scratch-quota request-disk`: the job's own disk request as its scratch quota, so an HTCondor wrapper needs
/// no ClassAd reading of its own.
package enum ScratchQuotaRequest {
    /// The value that stands for the job's request.
    package static let fromJobAd = "request-disk"

    /// The job ad's `RequestDisk` (KiB), or where it is missing or an expression (HTCondor's default is one), the
    /// slot's `Disk` (KiB) from `$_CONDOR_MACHINE_AD`, as a `--scratch-quota` value (`<n>K`).
    ///
    /// Trusted inputs: as root, either ad only where root alone can write it (`JobAdFile`'s rule): the job can
    /// rewrite both in its scratch dir, and would raise its own limit.
    package static func limit(environment: Environment) throws(JobboxError) -> String {
        let remedy = "pass --scratch-quota SIZE"
        guard let path = environment["_CONDOR_JOB_AD"], !path.isEmpty else {
            throw JobboxError.invalid("cannot use --scratch-quota request-disk", nil, "$_CONDOR_JOB_AD is not set (\(remedy))")
        }
        let ad = try JobAdFile.read(path, for: "cannot read job ad", trust: .rootOnlyWhenPrivileged(remedy: remedy))
        if let kib = ad.integer("RequestDisk"), kib > 0 { return "\(kib)K" }
        if let machine = environment["_CONDOR_MACHINE_AD"], !machine.isEmpty {
            let slot = try JobAdFile.read(machine, for: "cannot read machine ad", trust: .rootOnlyWhenPrivileged(remedy: remedy))
            if let kib = slot.integer("Disk"), kib > 0 { return "\(kib)K" }
        }
        throw JobboxError.invalid(
            "cannot use --scratch-quota request-disk", path, "RequestDisk is not a number of KiB and the slot's Disk is not known (\(remedy))")
    }
}
