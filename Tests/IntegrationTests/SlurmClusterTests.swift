import Foundation
import JobboxTestSupport
import Testing

/// A running single-node Slurm cluster from Debian's packages (`Tests/integration/slurm-ci.sh`), with its own
/// directory, node name and ports, so several can run side by side; `down()` stops it and removes everything.
struct SlurmCluster {
    static let script = TestSupport.repositoryRoot + "/Tests/integration/slurm-ci.sh"
    static let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    let directory: String
    let node: String
    let port: Int
    /// What every daemon and client runs under: nsenter into the cluster's network namespace, if it has one.
    let inNamespace: [String]
    var conf: String { directory + "/etc/slurm.conf" }

    /// Starts a cluster whose slurm.conf gets `extraConf` (Prolog=, Epilog=...), its daemons (and so its jobs) in
    /// network namespace `netns` when given (nsenter: `ip netns exec` would hide the cgroup mounts).
    init(extraConf: String, netns: String? = nil) throws {
        directory = "/tmp/" + TestSupport.uniqueName("jbi-slurm")
        node = TestSupport.uniqueName("jbinode")
        inNamespace = netns.map { ["/usr/bin/nsenter", "--net=/run/netns/" + $0] } ?? []
        port = try Self.freePortPair()
        let up = try Spawn.run(inNamespace + ["/bin/bash", Self.script, "up"], environment: environment(extraConf: extraConf))
        guard up.status == 0 else {
            down()
            throw TestFailure("slurm-ci.sh up failed: \(up)")
        }
    }

    private func environment(extraConf: String = "") -> [String: String] {
        ["PATH": Self.path, "SLURMCI_DIR": directory, "SLURMCI_NODE": node, "SLURMCI_PORT": "\(port)", "SLURMCI_EXTRA_CONF": extraConf]
    }

    /// Stops the daemons (cancelling jobs) and removes the cluster's directory.
    func down() {
        _ = try? Spawn.run(inNamespace + ["/bin/bash", Self.script, "down"], environment: environment())
    }

    /// Runs a Slurm client command as root.
    func client(_ arguments: [String]) throws -> TestSupport.Result {
        try Spawn.run(inNamespace + arguments, environment: ["PATH": Self.path, "SLURM_CONF": conf])
    }

    /// Submits a batch job as `user` with `environment` exported to it; returns the job id.
    func sbatch(as user: TestUser, _ arguments: [String], environment: [String: String] = [:]) throws -> String {
        let variables = ["SLURM_CONF=\(conf)", "PATH=\(Self.path)"] + environment.map { "\($0.key)=\($0.value)" }
        let result = try Spawn.run(
            inNamespace + ["setpriv", "--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "env", "-i"] + variables
                + ["sbatch", "--parsable"] + arguments)
        let id = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0, Int(id) != nil else { throw TestFailure("sbatch failed: \(result)") }
        return id
    }

    /// Waits (bounded) until `job` has left the queue; returns its record from `scontrol show job`.
    func waitForEnd(_ job: String, seconds: Int = 90) throws -> [String: String] {
        for _ in 0..<(seconds * 10) {
            let queued = try client(["squeue", "-h", "-j", job])
            if queued.status == 0 && queued.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { break }
            usleep(100_000)
        }
        let shown = try client(["scontrol", "show", "job", "-o", job])
        var record: [String: String] = [:]
        for word in shown.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            guard let equals = word.firstIndex(of: "=") else { continue }
            record[String(word[..<equals])] = String(word[word.index(after: equals)...])
        }
        guard let state = record["JobState"], !["PENDING", "RUNNING", "CONFIGURING", "COMPLETING"].contains(state) else {
            throw TestFailure("job \(job) did not end within \(seconds) s: \(shown.stdout)\n\(log("slurmd"))")
        }
        return record
    }

    /// A daemon's log (`slurmd`, `slurmctld`, `munged`).
    func log(_ daemon: String) -> String {
        Integration.read(directory + "/log/\(daemon).log") ?? ""
    }

    /// Two consecutive TCP ports nobody listens on (slurmctld's and slurmd's).
    static func freePortPair() throws -> Int {
        for _ in 0..<50 {
            let port = Int.random(in: 20_000..<60_000)
            if isFree(port) && isFree(port + 1) { return port }
        }
        throw TestFailure("no two free consecutive TCP ports found")
    }

    private static func isFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = INADDR_ANY
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}

/// The Slurm examples with a real single-node cluster: `jobbox-prolog.sh` makes each job's cgroup with its
/// `--mem` and CPUs, `jobbox-job.sh` (the batch script, as the job's user) joins it and runs the job under
/// ns-exec, `jobbox-epilog.sh` records the figures and removes everything; jobs are submitted with sbatch.
@Suite(
    "Slurm: the chain in a real single-node cluster", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot),
    .enabled(if: HTCondorClassAds.available, "the figures are parsed with HTCondor's library: make deps"),
    .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/slurmctld"), "slurmctld is not installed (scripts/deps/integration.txt)"))
struct SlurmClusterTests {
    static let tools = ["cg-exec", "ns-exec", "jobstat"]

    /// One test's cluster and everything around it: a job user, a jobbox.conf with a unique base cgroup below the
    /// daemons' own (`CGROUP_PARENT = self`), the prolog/epilog shims that hand the examples their settings, a
    /// state dir, an output dir the user can write.
    struct World {
        let execute: ExecuteDirectory
        let user: TestUser
        let base: String
        let config: String
        let state: String
        let output: String
        let cluster: SlurmCluster
        let jobbox: ReachableJobbox

        /// With `hooks` false the cluster has no Prolog and Epilog; with `netns` its daemons and jobs run there.
        init(configExtra: String = "", hooks withHooks: Bool = true, netns: String? = nil) throws {
            execute = try ExecuteDirectory("jbi-slurmtest")
            jobbox = try execute.reachableJobbox()
            user = try TestUser(prefix: "jbi")
            base = TestSupport.uniqueName("jbislurm")
            state = execute.path + "/state"
            output = execute.path + "/out"
            config = try execute.write("jobbox.conf", "CGROUP_PARENT = self\nBASE_CGROUP = \(base)\n\(configExtra)\n")
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o1777])
            try FileManager.default.setAttributes([.posixPermissions: 0o1777], ofItemAtPath: output)
            var hooks = ""
            for hook in ["prolog", "epilog"] {
                let shim = try execute.script(
                    "\(hook).sh",
                    """
                    #!/bin/sh
                    export JOBBOX_BIN='\(jobbox.bin)' JOBBOX_CONFIG='\(config)' JOBBOX_SLURM_DIR='\(state)'
                    exec '\(jobbox.root)/examples/slurm/jobbox-\(hook).sh'
                    """)
                hooks += "\(hook.capitalized)=\(shim)\n"
            }
            try execute.script("job.sh", SlurmClusterTests.job)
            do {
                cluster = try SlurmCluster(extraConf: withHooks ? hooks : "", netns: netns)
            } catch {
                user.remove()
                execute.remove()
                throw error
            }
        }

        func remove() {
            cluster.down()
            _ = try? Spawn.sh("find /sys/fs/cgroup -depth -type d -name '\(base)' -exec rmdir {} + 2>/dev/null")
            user.remove()
            execute.remove()
        }

        /// The environment the job's user submits with (sbatch passes it on to the batch script).
        var submitEnvironment: [String: String] {
            ["JOBBOX_BIN": jobbox.bin, "JOBBOX_CONFIG": config, "JOBBOX_SLURM_DIR": state]
        }

        /// Submits the job wrapper around `command` with sbatch options `options`.
        func submit(_ options: [String], _ command: [String], environment: [String: String]? = nil) throws -> String {
            try cluster.sbatch(
                as: user,
                ["-D", output, "-o", output + "/%j.out", "-e", output + "/%j.err"] + options
                    + [jobbox.slurmJobWrapper] + command, environment: environment ?? submitEnvironment)
        }

        /// Waits (bounded) for the epilog of `job`: its figures recorded and its state dir gone.
        func waitForEpilog(_ job: String) throws -> String {
            for _ in 0..<600 {
                if let ad = Integration.read("\(state)/ads/\(job).ad"), !FileManager.default.fileExists(atPath: "\(state)/jobs/\(job)") {
                    return ad
                }
                usleep(100_000)
            }
            throw TestFailure("the epilog of job \(job) did not finish:\n\(cluster.log("slurmd"))")
        }

        /// What the job printed (`key=value` lines), its stderr, and the wrapper's figures file.
        func output(of job: String) -> (report: [String: String], stderr: String, ad: String?) {
            var report: [String: String] = [:]
            for line in (Integration.read("\(output)/\(job).out") ?? "").split(separator: "\n") {
                guard let equals = line.firstIndex(of: "=") else { continue }
                report[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
            return (report, Integration.read("\(output)/\(job).err") ?? "", Integration.read("\(output)/jobbox-\(job).ad"))
        }
    }

    /// The job: reports its identity, PID view, memory cgroup and limit, and which /tmp it sees; writes a marker to
    /// /tmp, then touches MiB megabytes (second argument, default 64).
    static let job = #"""
        #!/bin/sh
        marker=$1
        megabytes=${2:-64}
        echo "uid=$(id -u)"
        echo "pid=$$"
        memory=$(sed -n 's/^[0-9]*:\([^:]*,\)\{0,1\}memory\(,[^:]*\)\{0,1\}://p' /proc/self/cgroup)
        echo "memory_cgroup=$memory"
        echo "memory_limit=$(cat /sys/fs/cgroup/memory$memory/memory.limit_in_bytes 2>/dev/null)"
        echo "owners=$(stat -c %u /sys/fs/cgroup/memory$memory /sys/fs/cgroup/memory$memory/cgroup.procs /sys/fs/cgroup/memory$memory/memory.limit_in_bytes | paste -sd ,)"
        echo "tmp=$(stat -c %d:%i /tmp)"
        echo "job $marker" > /tmp/$marker
        echo "readback=$(cat /tmp/$marker)"
        set -- /proc/[0-9]*
        echo "processes=$#"
        exec python3 -c "b = b'x' * ($megabytes << 20); s = sum(range(2000000)); print('done=%d' % len(b))"
        """#

    @Test(
        "sbatch jobs through the chain: the job's cgroup with --mem, own PID view and /tmp, its exit status, OOM, figures, and nothing left",
        .enabled(if: Integration.waitingFor(tools) == nil, Integration.waitingFor(tools) ?? ""))
    func jobsThroughTheChain() throws {
        let world = try World()
        defer { world.remove() }
        let marker = TestSupport.uniqueName("jbi-slurm-marker-")
        defer { try? FileManager.default.removeItem(atPath: "/tmp/" + marker) }
        let hostTmp = try Spawn.sh("stat -c %d:%i /tmp").stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let good = try world.submit(["--mem=128M", "-c", "1"], [world.execute.path + "/job.sh", marker])
        let failing = try world.submit(["--mem=64M", "-c", "1"], ["/bin/sh", "-c", "echo failing; exit 3"])
        let hungry = try world.submit(["--mem=64M", "-c", "1"], [world.execute.path + "/job.sh", marker + "-oom", "256"])

        // 1. A job within its memory: it ran in its own cgroup with the requested limit, as the submitting user.
        let record = try world.cluster.waitForEnd(good)
        let (seen, stderr, ad) = world.output(of: good)
        #expect(record["JobState"] == "COMPLETED" && record["ExitCode"] == "0:0", "\(record)\n\(stderr)")
        #expect(seen["done"] == "\(64 << 20)", "\(seen)\n\(stderr)")
        #expect(seen["uid"] == "\(world.user.uid)")
        let own = try #require(Integration.ownCgroup("memory"))
        #expect(seen["memory_cgroup"] == (own == "/" ? "" : own) + "/\(world.base)/job_\(good)", "the prolog's cgroup below slurmd's own: \(seen)")
        #expect(seen["memory_limit"] == "\(128 << 20)", "\(seen)")
        // cg-exec --delegate-to handed the job's user the cgroup's process list and nothing else (root shows as the
        // overflow uid in the job's user namespace).
        let root = Integration.read("/proc/sys/kernel/overflowuid")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "65534"
        #expect(seen["owners"] == "\(root),\(world.user.uid),\(root)", "\(seen)")
        // ns-exec --userns --pid --mount --scratch: jobbox's init and the job alone; a /tmp of its own.
        #expect(seen["pid"] == "2" && seen["processes"] == "2", "\(seen)")
        #expect(seen["tmp"] != hostTmp && seen["readback"] == "job \(marker)", "\(seen)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/" + marker))
        // The wrapper's figures (jobstat --self in the job's cgroup) and the epilog's (jobstat --job).
        let wrapperAd = try #require(ad, "\(stderr)")
        let wrapperFigures = try #require(try HTCondorClassAds.parse(wrapperAd).first)
        #expect((Int(wrapperFigures["MemoryPeakKb"]?.value ?? "") ?? 0) >= 64 * 1024, "\(wrapperAd)")
        #expect(wrapperFigures["RemoteUserCpu"]?.type == "float", "\(wrapperAd)")
        let epilogAd = try world.waitForEpilog(good)
        let epilogFigures = try #require(try HTCondorClassAds.parse(epilogAd).first)
        #expect((Int(epilogFigures["MemoryPeakKb"]?.value ?? "") ?? 0) >= 64 * 1024, "\(epilogAd)")
        #expect(epilogFigures["OOMKills"]?.value == "0", "\(epilogAd)")
        #expect(Integration.cgroups(named: "job_\(good)").filter { $0.contains(world.base) }.isEmpty, "the epilog removed the job's cgroup")

        // 2. The job's own exit status is Slurm's.
        let failed = try world.cluster.waitForEnd(failing)
        #expect(failed["JobState"] == "FAILED" && failed["ExitCode"] == "3:0", "\(failed)")
        #expect(world.output(of: failing).stderr.isEmpty, "no wrapper or tool failure: \(world.output(of: failing).stderr)")
        _ = try world.waitForEpilog(failing)

        // 3. A job over its --mem is killed by the kernel in its cgroup, and the epilog's figures say so.
        let oom = try world.cluster.waitForEnd(hungry)
        #expect(oom["JobState"] == "FAILED" && oom["ExitCode"] == "137:0", "killed by SIGKILL, as ns-exec reports it: \(oom)")
        #expect(world.output(of: hungry).report["done"] == nil)
        let oomAd = try world.waitForEpilog(hungry)
        #expect((Int(Integration.attributes(oomAd)["OOMKills"] ?? "") ?? 0) >= 1, "\(oomAd)")

        #expect(
            Integration.cgroups(named: world.base).allSatisfy {
                (try? FileManager.default.contentsOfDirectory(atPath: $0))?.contains { $0.hasPrefix("job_") } == false
            },
            "no job cgroup is left")
    }

    @Test(
        "sbatch as the job's user with JOBBOX_CHROOT: the job runs in the named chroot, read-only, with its own /tmp and PID view, in the prolog's cgroup",
        .enabled(if: Integration.waitingFor(tools) == nil, Integration.waitingFor(tools) ?? ""))
    func jobInANamedChroot() throws {
        let chroot = try NamedTestChroot(prefix: "jbiSLURM")
        defer { chroot.remove() }
        let (root, release) = (chroot.root, chroot.release)
        let world = try World(configExtra: chroot.configLine)
        defer { world.remove() }
        // The prolog's scratch dirs live in <JOBBOX_SLURM_DIR>/jobs: the chroot has that mount point.
        try chroot.makeMountPoint(world.state + "/jobs")
        let script =
            "cat /etc/os-release; echo uid=$(id -u); echo pid=$$; set -- /proc/[0-9]*; echo processes=$#; "
            + "grep memory /proc/self/cgroup | sed 's/^[0-9]*:memory:/memory_cgroup=/'; echo in > /tmp/f && echo tmp=$(cat /tmp/f); "
            + "if (echo x > /etc/planted) 2>/dev/null; then echo etc=writable; else echo etc=read-only; fi"
        var environment = world.submitEnvironment
        environment["JOBBOX_CHROOT"] = chroot.name
        let job = try world.submit(["--mem=64M", "-c", "1"], ["/bin/sh", "-c", script], environment: environment)
        let record = try world.cluster.waitForEnd(job)
        let (seen, stderr, ad) = world.output(of: job)
        #expect(record["ExitCode"] == "0:0", "\(record)\n\(stderr)")
        #expect(Integration.read("\(world.output)/\(job).out")?.hasPrefix(release) == true, "the chroot's userland: \(stderr)")
        #expect(seen["uid"] == "\(world.user.uid)" && seen["pid"] == "2" && seen["processes"] == "2", "\(seen)")
        let own = try #require(Integration.ownCgroup("memory"))
        #expect(seen["memory_cgroup"] == (own == "/" ? "" : own) + "/\(world.base)/job_\(job)", "\(seen)")
        #expect(seen["tmp"] == "in" && seen["etc"] == "read-only", "\(seen)")
        #expect(!FileManager.default.fileExists(atPath: root + "/etc/planted") && !FileManager.default.fileExists(atPath: root + "/tmp/f"))
        #expect(ad.map { Integration.attributes($0)["MemoryPeakKb"] != nil } == true, "figures in jobbox-\(job).ad: \(stderr)")
        _ = try world.waitForEpilog(job)
        #expect((try FileManager.default.contentsOfDirectory(atPath: root + world.state + "/jobs")).isEmpty, "nothing made in the chroot")
        #expect(Integration.cgroups(named: "job_\(job)").filter { $0.contains(world.base) }.isEmpty)
    }

    @Test(
        "sbatch on a hybrid node with the node service: the job script joins the job's unified cgroup through it, and both ads have the job's exact network bytes",
        .enabled(if: Integration.waitingFor(tools + ["netacct"]) == nil, Integration.waitingFor(tools + ["netacct"]) ?? ""),
        .enabled(if: Integration.tool("netacct", hasOption: "--node"), "netacct has no --node on this branch"),
        .enabled(if: !Integration.isUnifiedCgroupNode && HTCondorContractTests.NodeNetwork.unified() != nil, "a hybrid node (cgroup v1 with a cgroup2 mount)"))
    func networkFigures() throws {
        // The cluster runs in the node namespace, whose campus host echoes UDP; the job's cgroups are made below the
        // service's accounting cgroup (BASE_CGROUP is its name, below this process's own cgroup).
        var network = try HTCondorContractTests.NodeNetwork()
        let name = String(network.accountingPath.split(separator: "/").last ?? "")
        let world: World
        do {
            world = try World(configExtra: network.config + "BASE_CGROUP = \(name)\n", netns: network.node)
        } catch {
            network.remove()
            throw error
        }
        defer {
            world.remove()
            network.remove(config: world.config)
            _ = try? Spawn.sh("find /sys/fs/cgroup -depth -type d -name '\(name)' -exec rmdir {} + 2>/dev/null")
        }
        try network.start(config: world.config)
        try world.execute.script("network-job.sh", HTCondorContractTests.networkJob)
        let job = try world.submit(["--mem=64M", "-c", "1"], [world.execute.path + "/network-job.sh", network.campusAddress])
        let record = try world.cluster.waitForEnd(job)
        let (_, stderr, ad) = world.output(of: job)
        #expect(record["ExitCode"] == "0:0" && stderr.isEmpty, "\(record)\n\(stderr)")
        // 20 datagrams each way, 1000 bytes of payload + 8 (UDP) + 20 (IPv4) each.
        let figures = Integration.attributes(try #require(ad, "no jobbox-\(job).ad: \(stderr)"))
        #expect(figures["NetworkOutgoing"] == "\(20 * 1028)" && figures["NetworkIncoming"] == "\(20 * 1028)", "\(figures)")
        #expect(figures["NetworkOutgoingInternal"] == "\(20 * 1028)" && figures["NetworkOutgoingExternal"] == "0", "\(figures)")
        let epilog = Integration.attributes(try world.waitForEpilog(job))
        #expect(epilog["NetworkOutgoing"] == "\(20 * 1028)" && epilog["NetworkIncoming"] == "\(20 * 1028)", "the epilog's ad (root): \(epilog)")
        #expect(Integration.cgroups(named: "job_\(job)").isEmpty, "the epilog removed the job's cgroups, the unified one too")
    }

    @Test(
        "on a cluster without the prolog the job wrapper still runs the job with its own PID view, and says why there is no more",
        .enabled(if: Integration.waitingFor(["ns-exec"]) == nil, Integration.waitingFor(["ns-exec"]) ?? ""))
    func withoutProlog() throws {
        let world = try World(hooks: false)
        defer { world.remove() }
        let job = try world.submit([], ["/bin/sh", "-c", "set -- /proc/[0-9]*; echo processes=$#; exit 4"])
        let record = try world.cluster.waitForEnd(job)
        let (seen, stderr, ad) = world.output(of: job)
        #expect(record["ExitCode"] == "4:0", "\(record)")
        #expect(seen["processes"] == "2", "\(seen)")
        #expect(stderr.hasPrefix("jobbox-job: no jobbox prolog ran for job \(job)"), "\(stderr)")
        #expect(ad == nil)
    }

    @Test("a prolog that cannot make the job's cgroup drains the node, requeues the job, and leaves nothing")
    func prologFailure() throws {
        let world = try World(configExtra: "BASE_CGROUP = ../escape")
        defer { world.remove() }
        let job = try world.submit([], ["/bin/true"])
        // Slurm drains the node on a prolog error and puts the job back in the queue, held.
        var nodeState = ""
        for _ in 0..<300 {
            nodeState = try world.cluster.client(["sinfo", "-h", "-n", world.cluster.node, "-o", "%T %E"]).stdout
            if nodeState.hasPrefix("drain") { break }
            usleep(100_000)
        }
        #expect(nodeState.hasPrefix("drain") && nodeState.contains("Prolog error"), "\(nodeState)\n\(world.cluster.log("slurmd"))")
        #expect(world.cluster.log("slurmd").contains("jobbox-prolog: job \(job): cg-exec could not make the job's cgroup"), "\(world.cluster.log("slurmd"))")
        #expect(!FileManager.default.fileExists(atPath: "\(world.state)/jobs/\(job)"), "the prolog removed what it had made")
        #expect(Integration.cgroups(named: "job_\(job)").filter { $0.contains(world.base) }.isEmpty)
        let output = Integration.read("\(world.output)/\(job).out") ?? ""
        #expect(output.isEmpty, "the job did not run: \(output)")
    }
}
