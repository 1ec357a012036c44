import JobboxCgroups
import JobboxCore
import JobboxNetacctClient
import JobboxQuota

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// What jobstat was asked to do.
package struct JobStatRequest: Sendable {
    /// Which cgroups.
    package var selection: JobStatSelection
    /// The output format.
    package var format: JobStatFormat
    /// Whether to add every raw key of the stat files.
    package var raw: Bool
    /// `--watch`: seconds between samples, or nil for one sample.
    package var interval: Double?
    /// `--count`: how many samples at most (with `--watch`), or nil for no limit.
    package var count: Int?
    /// `--chirp`/`--chirp-delayed`: push each sample into the running job's ad, or nil.
    package var chirp: ChirpUpdate?
    /// `--scratch DIR`: add the figures of DIR's quota (`DiskUsage`, ...), or nil.
    package var scratch: String?
    /// Where scratch quotas are recorded (`STATE_DIR`).
    package var scratchSettings = ScratchQuotaSettings(JobboxConfig())
    /// The node service's socket (NETACCT_SOCKET), asked for the `Network*` figures of a single cgroup; nil: not asked.
    package var networkSocket: String?

    /// Creates a request.
    package init(
        selection: JobStatSelection, format: JobStatFormat = .classad, raw: Bool = false, interval: Double? = nil, count: Int? = nil, chirp: ChirpUpdate? = nil
    ) {
        self.selection = selection
        self.chirp = chirp
        self.format = format
        self.raw = raw
        self.interval = interval
        self.count = count
    }
}

/// Samples the selected cgroups and writes them, once or every `interval` seconds.
///
/// One sample: a missing cgroup is an error (status 125). With `--watch` the loop ends, with status 0, when the
/// cgroup disappears after the first sample or when `--count` samples are written. Samples are separated by a
/// blank line in ClassAd and Prometheus output; JSON writes one document per line.
package struct JobStatRunner {
    /// The request.
    package let request: JobStatRequest
    /// Resolves the selection.
    package let planner: JobStatPlanner
    /// Where the text goes (stdout in the tool).
    package let write: (String) -> Void
    /// Pushes one job's ad into the running job's ad (chirp; replaced in tests).
    package let publish: (ClassAd, ChirpUpdate) throws(JobboxError) -> Void
    /// Waits until the next sample is due (monotonic; replaced in tests).
    package let sleepUntil: (Double) -> Void
    /// The monotonic clock, in seconds.
    package let now: () -> Double
    /// The node service's counters of a unified cgroup path, nil when it does not answer (replaced in tests).
    package var network: (String, String) -> NetworkCounts? = JobStatRunner.askNodeService

    private let reader = StatFileReader()

    /// Creates a runner.
    package init(
        request: JobStatRequest, planner: JobStatPlanner, write: @escaping (String) -> Void = printOut,
        publish: @escaping (ClassAd, ChirpUpdate) throws(JobboxError) -> Void = JobStatRunner.chirp,
        sleepUntil: @escaping (Double) -> Void = MonotonicClock.sleep(until:), now: @escaping () -> Double = MonotonicClock.now
    ) {
        self.request = request
        self.publish = publish
        self.planner = planner
        self.write = write
        self.sleepUntil = sleepUntil
        self.now = now
    }

    /// Runs to the end and returns the exit status.
    package func run() throws(JobboxError) -> Int32 {
        var written = 0
        var printedBefore = false
        var due = now()
        while true {
            guard let text = try sampleText(first: written == 0) else { return 0 }
            if !text.isEmpty {
                write(printedBefore && request.format != .json ? "\n" + text : text)
                printedBefore = true
            }
            written += 1
            guard let interval = request.interval, written != request.count else { return 0 }
            due += interval
            // A sample that took longer than the interval moves the schedule rather than bursting to catch up.
            if due < now() { due = now() }
            sleepUntil(due)
        }
    }

    /// One sample's text, or nil when a watched cgroup has gone.
    func sampleText(first: Bool) throws(JobboxError) -> String? {
        let targets: [JobStatTarget]
        switch try planner.targets(request.selection) {
        case .found(let found): targets = found
        case .missing(let error):
            if first { throw error }
            return nil
        }
        var entries: [JobStatEntry] = []
        for target in targets {
            let sampler = CgroupSampler(sources: target.sources, includeRaw: request.raw, reader: reader)
            do {
                var stats = try sampler.sample()
                if let scratch = request.scratch { stats.scratch = try ScratchQuota.usage(of: scratch, settings: request.scratchSettings) }
                entries.append(JobStatEntry(labels: target.labels, identity: target.identity, stats: stats))
            } catch {
                // A cgroup removed while it was read: with --all it is no longer a job; a watched one has ended.
                let gone = !target.sources.directories.contains(where: planner.exists)
                if !gone { throw error }
                if request.selection == .all { continue }
                if first { throw error }
                return nil
            }
        }
        if let socket = request.networkSocket, request.selection != .all, entries.count == 1, let directory = targets.first?.sources.pressure,
            let path = planner.unifiedCgroupPath(of: directory)
        {
            entries[0].stats.network = network(socket, path)
        }
        if let update = request.chirp, let entry = entries.first {
            try publish(JobStatRenderer.classAd(entry), update)
        }
        return try JobStatRenderer.render(entries, format: request.format, asList: request.selection == .all)
    }

    /// Publishes through the starter's chirp proxy named by `$_CONDOR_CHIRP_CONFIG`.
    ///
    /// Trusted inputs: none of the job's. `$_CONDOR_CHIRP_CONFIG` is job-writable; as root jobstat never reads it
    /// or connects where it says: a copy of jobstat does, as the job's user (the owner of the directory holding
    /// the file), in jobstat's own network namespace (there is no job namespace here), within
    /// `ChirpClient.timeout` seconds (`ChirpAsJob`).
    package static func chirp(_ ad: ClassAd, _ update: ChirpUpdate) throws(JobboxError) {
        try ChirpClient.publish(ad, update: update, environment: .current)
    }
}

extension JobStatRunner {
    /// Asks the node service at `socket` for cgroup `path`; nil (and jobstat says nothing about network) when no
    /// service answers or it refuses.
    package static func askNodeService(_ socket: String, _ path: String) -> NetworkCounts? {
        var client = NetacctNodeClient(socketPath: socket)
        client.timeoutMilliseconds = 2000
        guard let ad = try? client.ask(.cgroup(path)).first else { return nil }
        return NetworkCounts(ad)
    }
}

extension JobStatPlanner {
    /// The cgroup path of a directory of the unified hierarchy, nil when it is not one.
    func unifiedCgroupPath(of directory: String) -> String? {
        guard let unified = locator.layout.unified, unified.mountRoot == "/" else { return nil }
        if directory == unified.mountPoint { return "/" }
        guard directory.hasPrefix(unified.mountPoint + "/") else { return nil }
        return String(directory.dropFirst(unified.mountPoint.count))
    }
}
