import Foundation
import JobboxTestSupport
import Testing

/// HTCondor's USER_JOB_WRAPPER contract end to end: the starter emulation (`Tests/integration/htcondor-contract.sh`)
/// runs the example wrapper with the real tools and a real job, once as the job's user (what HTCondor does) and
/// once as root (the full chain), and the test checks what the job saw, what it left, and what reached the
/// error file, the scratch dir and the chirp proxy.
@Suite(
    "HTCondor USER_JOB_WRAPPER contract", .enabled(if: TestSupport.isRoot, TestSupport.needsRoot),
    .enabled(if: HTCondorClassAds.available, "the final ads are parsed with HTCondor's library: make deps"))
struct HTCondorContractTests {
    static let unprivilegedTools = ["ns-exec", "jobstat"]
    static let fullChain = ["cg-exec", "ns-exec", "netacct", "jobstat"]

    /// One test's world: a job user, an EXECUTE dir, a jobbox.conf that keeps every cgroup below this test's own
    /// (`CGROUP_PARENT = self`, a unique `BASE_CGROUP`), a state dir and address pool of its own, and the job.
    struct World {
        let execute: ExecuteDirectory
        let user: TestUser
        let base: String
        let config: String
        let marker: String
        let starterCgroup: String
        let jobbox: ReachableJobbox
        /// ClusterId (ProcId is 0): unique, since job ids name veth pairs and chains.
        let cluster = Integration.uniqueJobNumber()
        /// The job's cgroup name.
        var jobCgroup: String { "job_\(cluster)_0" }

        init(configExtra: String = "") throws {
            execute = try ExecuteDirectory()
            user = try TestUser(prefix: "jbi")
            base = TestSupport.uniqueName("jbiit")
            starterCgroup = TestSupport.uniqueName("jbistarter")
            marker = TestSupport.uniqueName("jbi-marker-")
            config = try execute.write(
                "jobbox.conf",
                """
                CGROUP_PARENT = self
                BASE_CGROUP = \(base)
                STATE_DIR = \(execute.path)/state
                NETWORK_JOB_SUBNET = 10.250.\(getpid() % 250).0/24
                \(configExtra)
                """)
            try execute.script("job.sh", HTCondorContractTests.job)
            jobbox = try execute.reachableJobbox()
        }

        func remove() {
            // cg-exec removes a job's cgroup, not the base above it: in the hierarchies where this test's own
            // cgroup is the root, the unique base sits there.
            _ = try? Spawn.sh("find /sys/fs/cgroup -depth -type d -name '\(base)' -exec rmdir {} + 2>/dev/null")
            user.remove()
            execute.remove()
            _ = try? FileManager.default.removeItem(atPath: "/tmp/" + marker)
            _ = try? FileManager.default.removeItem(atPath: "/var/tmp/" + marker)
        }

        /// Runs the wrapper with the real tools under the starter emulation; the job's arguments: the marker name
        /// and what else to do.
        func run(asRoot: Bool, options: [String] = [], env: [String] = [], job: [String]? = nil) throws -> ContractRun {
            var arguments = [
                "--execute", execute.path, "--user", user.name, "--cgroup", starterCgroup, "--cluster", "\(cluster)", "--proc", "0",
                "--env", "JOBBOX_BIN=\(jobbox.bin)", "--env", "JOBBOX_CONFIG=\(config)",
            ]
            arguments += env.flatMap { ["--env", $0] }
            if asRoot { arguments.append("--wrapper-as-root") }
            return try ContractRun.run(arguments + options, job: job ?? [execute.path + "/job.sh", marker], jobbox: jobbox)
        }

        /// What the job reported on stdout, as `key=value` lines.
        func report(_ run: ContractRun) -> [String: String] {
            var values: [String: String] = [:]
            for line in run.stdout.split(separator: "\n") {
                guard let equals = line.firstIndex(of: "=") else { continue }
                values[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
            return values
        }
    }

    /// The job: reports what it sees (identity, PID view, cgroup and its memory limit), leaves a file in /tmp and
    /// /var/tmp, touches 64 MiB, burns some CPU, and with a second argument `send` sends 20 UDP datagrams of 1000
    /// bytes to its default gateway (only under netacct, where that is the host's end of the job's own veth pair).
    static let job = #"""
        #!/bin/sh
        marker=$1
        network=${2:-}
        echo "user=$(id -un)"
        echo "uid=$(id -u)"
        echo "pid=$$"
        echo "pid1=$(cat /proc/1/comm)"
        set -- /proc/[0-9]*
        echo "processes=$#"
        memory=$(sed -n 's/^[0-9]*:\([^:]*,\)\{0,1\}memory\(,[^:]*\)\{0,1\}://p' /proc/self/cgroup)
        echo "memory_cgroup=$memory"
        echo "memory_limit=$(cat /sys/fs/cgroup/memory$memory/memory.limit_in_bytes 2>/dev/null)"
        echo "job $marker" > /tmp/$marker
        echo "job $marker" > /var/tmp/$marker
        export network
        exec python3 - <<'PY'
        import os, socket, struct
        block = b"x" * (64 << 20)
        total = sum(range(2_000_000))
        gateway = None
        with open("/proc/net/route") as routes:
            for line in routes.readlines()[1:]:
                fields = line.split()
                if fields[1] == "00000000" and int(fields[3], 16) & 2:
                    gateway = socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
        print("gateway=%s" % gateway)
        if gateway and os.environ["network"] == "send":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for _ in range(20):
                s.sendto(b"n" * 1000, (gateway, 9))
        print("done=%d" % len(block))
        PY
        """#

    // MARK: - as the job's user

    @Test(
        "as the job's user: private /tmp and /var/tmp in the scratch dir, own PID view, figures of the job's cgroup",
        .enabled(if: Integration.waitingFor(unprivilegedTools) == nil, Integration.waitingFor(unprivilegedTools) ?? ""))
    func unprivileged() throws {
        let world = try World()
        defer { world.remove() }
        let run = try world.run(asRoot: false)
        let seen = world.report(run)

        #expect(run.status == 0, "\(run)")
        #expect(run.errorFile == nil && run.requeue == nil, "\(run)")
        #expect(seen["done"] == "\(64 << 20)", "\(run)")
        #expect(seen["uid"] == "\(world.user.uid)", "\(run)")
        // PID view: the job is one of the first processes of its own PID namespace, with jobbox's init as PID 1.
        #expect((Int(seen["pid"] ?? "") ?? 999) <= 3, "\(run)")
        #expect((Int(seen["processes"] ?? "") ?? 999) <= 2, "only jobbox's init and the job: \(run)")
        #expect(seen["pid1"] != Integration.read("/proc/1/comm")?.trimmingCharacters(in: .newlines), "\(run)")
        try Self.expectPrivateTmp(world, run, owner: world.user.uid)

        // jobstat --self read the cgroup the starter put the job in.
        let ad = try #require(run.finalAd, "\(run)")
        let parsed = try #require(try HTCondorClassAds.parse(ad).first)
        #expect(parsed["RemoteUserCpu"]?.type == "float", "\(ad)")
        #expect((Int(parsed["MemoryPeakKb"]?.value ?? "") ?? 0) >= 64 * 1024, "the starter's cgroup saw the job's 64 MiB: \(ad)")
        if !Integration.isUnifiedCgroupNode {
            // HTCondor's v1 starter makes no blkio or pids cgroup and leaves the job in its own v2 cgroup: jobstat
            // --exclude-shared-with leaves those figures out (they would be the starter's); processes are counted
            // in the job's own memory cgroup instead (the wrapper and jobstat by then).
            #expect(parsed.keys.allSatisfy { !$0.hasPrefix("Block") && !$0.contains("Pressure") }, "\(ad)")
            #expect((1...5).contains(Int(parsed["NumPids"]?.value ?? "") ?? 0), "\(ad)")
        }
        #expect(Integration.cgroups(named: world.starterCgroup).isEmpty)
    }

    /// A job for the chroot (busybox's shell): what it sees, whether it can write the chroot, and what a setuid-root
    /// program gives it.
    static let chrootJob = #"""
        #!/bin/sh
        cat /etc/os-release
        echo "uid=$(id -u)"
        echo "pid=$$"
        set -- /proc/[0-9]*
        echo "processes=$#"
        echo "job" > /tmp/chroot-file && echo "tmp=written"
        if (echo planted > /etc/planted) 2>/dev/null; then echo "etc=writable"; else echo "etc=read-only"; fi
        /bin/suid-euid
        """#

    @Test(
        "as the job's user: RequestedChroot runs the job in the named chroot (read-only, /tmp its own, setuid granting nothing), with its own PID view",
        .enabled(if: Integration.waitingFor(unprivilegedTools) == nil, Integration.waitingFor(unprivilegedTools) ?? ""),
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/gcc"), "gcc is not installed (scripts/deps/integration.txt)"))
    func unprivilegedNamedChroot() throws {
        let starterDir = TestSupport.uniqueName("dir_jbi")
        let chroot = try NamedTestChroot(prefix: "jbiTINY")
        defer { chroot.remove() }
        let (root, release) = (chroot.root, chroot.release)
        let world = try World(configExtra: chroot.configLine)
        defer { world.remove() }
        try chroot.makeMountPoint(world.execute.path + "/" + starterDir)
        // A static setuid-root program: it reports its effective uid. On the host it makes the job's user root.
        try world.execute.write(
            "suid-euid.c", "#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf(\"euid=%d\\n\", (int)geteuid()); return 0; }\n")
        let compiled = try Spawn.run(["/usr/bin/gcc", "-static", "-o", root + "/bin/suid-euid", world.execute.path + "/suid-euid.c"])
        try #require(compiled.status == 0, "\(compiled)")
        chmod(root + "/bin/suid-euid", 0o4755)
        let control = try Spawn.run(["setpriv", "--reuid=\(world.user.uid)", "--regid=\(world.user.gid)", "--clear-groups", root + "/bin/suid-euid"])
        try #require(control.stdout == "euid=0\n", "the control: the setuid bit works on this file system: \(control)")
        try world.execute.script("chroot-job.sh", Self.chrootJob)

        let run = try world.run(
            asRoot: false, options: ["--job-attr", "RequestedChroot = \"\(chroot.name)\"", "--starter-dir", starterDir, "--transfer-executable"],
            job: [world.execute.path + "/chroot-job.sh"])
        #expect(run.status == 0, "\(run)")
        #expect(run.errorFile == nil && run.requeue == nil, "\(run)")
        let seen = world.report(run)
        #expect(run.stdout.hasPrefix(release), "the chroot's own userland: \(run)")
        #expect(seen["uid"] == "\(world.user.uid)", "\(run)")
        #expect(seen["pid"] == "2" && seen["processes"] == "2", "jobbox's init and the job alone: \(run)")
        #expect(seen["tmp"] == "written" && Integration.read(run.scratch + "/tmp/chroot-file") == "job\n", "/tmp is the scratch dir's: \(run)")
        #expect(!FileManager.default.fileExists(atPath: root + "/tmp/chroot-file"))
        #expect(seen["etc"] == "read-only" && !FileManager.default.fileExists(atPath: root + "/etc/planted"), "\(run)")
        #expect(seen["euid"] == "\(world.user.uid)", "a setuid-root program in the chroot grants nothing: \(run)")
        // Nothing was made in the chroot for the job, and none of the job's processes is left.
        let entries = try FileManager.default.contentsOfDirectory(atPath: root + world.execute.path + "/" + starterDir)
        #expect(entries.isEmpty, "\(entries)")
        #expect(try Spawn.run(["pgrep", "-u", "\(world.user.uid)"]).stdout.isEmpty)
        #expect(Integration.cgroups(named: world.starterCgroup).isEmpty)
    }

    @Test(
        "as the job's user: a chroot that NAMED_CHROOT does not define is ns-exec's one line in the error file, and the job does not run",
        .enabled(if: Integration.waitingFor(unprivilegedTools) == nil, Integration.waitingFor(unprivilegedTools) ?? ""))
    func unprivilegedUnknownChroot() throws {
        let world = try World()
        defer { world.remove() }
        let run = try world.run(asRoot: false, options: ["--job-attr", "RequestedChroot = \"NoSuchChroot\""])
        #expect(run.status == 125, "\(run)")
        #expect(run.errorFile == "ns-exec: unknown chroot 'NoSuchChroot': NAMED_CHROOT defines none\n", "\(run)")
        #expect(!run.stdout.contains("user="), "\(run)")
        #expect(run.finalAd == nil, "\(run)")
    }

    /// A node network for one test: namespaces `<tag>n` (the node, where the wrapper runs) and `<tag>c` (a campus
    /// host with a UDP echo server on port 7), joined by a veth pair; and the node service (`netacct --node`)
    /// counting a unified cgroup of the test's own, in which the harness puts the job.
    struct NodeNetwork {
        let tag: String
        let node: String
        let campusAddress: String
        let accountingDirectory: String
        let jobDirectory: String
        let pinDirectory: String
        /// The service's socket, in a directory of root's made here.
        let socket: String
        var accountingPath: String
        var echo: pid_t = -1
        var service: pid_t = -1

        /// The unified hierarchy's mount point and this process's cgroup path there.
        static func unified() -> (mount: String, own: String)? {
            let mount = Integration.isUnifiedCgroupNode ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified"
            guard FileManager.default.fileExists(atPath: mount + "/cgroup.procs"), let text = Integration.read("/proc/self/cgroup"),
                let line = text.split(separator: "\n").first(where: { $0.hasPrefix("0::") })
            else { return nil }
            return (mount, String(line.dropFirst(3)))
        }

        init() throws {
            tag = "jbi\(getpid() % 10_000)\(Int.random(in: 10..<100))"
            node = tag + "n"
            let subnet = "10.252.\(getpid() % 250)"
            campusAddress = subnet + ".2"
            let (mount, own) = try #require(Self.unified(), "no cgroup2 mount")
            let name = TestSupport.uniqueName("jbinet")
            accountingPath = (own == "/" ? "" : own) + "/" + name
            accountingDirectory = mount + accountingPath
            jobDirectory = accountingDirectory + "/job"
            pinDirectory = "/sys/fs/bpf/" + name
            socket = "/run/" + name + "/netacct.sock"
            let setup = """
                set -e
                ip netns add \(node); ip netns add \(tag)c
                ip -n \(node) link set lo up; ip -n \(tag)c link set lo up
                ip link add \(tag)v0 netns \(node) type veth peer name eth0 netns \(tag)c
                ip -n \(node) addr add \(subnet).1/24 dev \(tag)v0; ip -n \(tag)c addr add \(subnet).2/24 dev eth0
                ip -n \(node) link set \(tag)v0 up; ip -n \(tag)c link set eth0 up
                mkdir \(accountingDirectory) \(jobDirectory)
                mkdir -m 0755 /run/\(name)
                """
            let made = try Spawn.sh(setup)
            guard made.status == 0 else {
                remove()
                throw TestFailure("the node network: \(made)")
            }
        }

        /// The configuration lines the node service and jobstat read; the service's lock goes in a STATE_DIR of
        /// its own beside the socket, removed with it.
        var config: String {
            let state = socket.dropLast("/netacct.sock".count) + "/state"
            return "NETWORK_ACCOUNTING_CGROUP = \(accountingPath)\nNETACCT_PIN_DIR = \(pinDirectory)\nNETACCT_SOCKET = \(socket)\nSTATE_DIR = \(state)\n"
        }

        /// Starts the campus host's echo and the node service, and waits until both are ready: the job's first
        /// datagram would be lost to an echo not yet bound (a slow Python start on a busy machine), and its
        /// reply awaited in vain.
        mutating func start(config: String) throws {
            let ready = String(socket.dropLast("/netacct.sock".count)) + "/echo-ready"
            let script =
                "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',7))\nopen('\(ready)','w').close()\nwhile True:\n    d,a=s.recvfrom(65535); s.sendto(d,a)\n"
            echo = try Spawn.start(["ip", "netns", "exec", tag + "c", "python3", "-c", script])
            service = try Spawn.start([TestSupport.tool("netacct"), "--config", config, "--node"])
            for _ in 0..<300 where !FileManager.default.fileExists(atPath: socket) || !FileManager.default.fileExists(atPath: ready) {
                usleep(100_000)
            }
            try #require(FileManager.default.fileExists(atPath: socket), "the node service made no socket")
            try #require(FileManager.default.fileExists(atPath: ready), "the campus host's echo did not start")
        }

        func remove(config: String? = nil) {
            for pid in [service, echo] where pid > 0 {
                kill(pid, SIGTERM)
                Spawn.wait(pid)
            }
            if let config { _ = try? Spawn.run([TestSupport.tool("netacct"), "--config", config, "--cleanup", "--stale"]) }
            _ = try? Spawn.sh(
                "rm -rf \(pinDirectory) \(socket.dropLast("/netacct.sock".count)); rmdir \(jobDirectory) \(accountingDirectory) 2>/dev/null; ip netns del \(node) 2>/dev/null; ip netns del \(tag)c 2>/dev/null; true"
            )
        }
    }

    /// A job that sends 20 UDP datagrams of 1000 bytes to the campus host (its first argument) and reads each echo.
    static let networkJob = #"""
        #!/bin/sh
        exec python3 - "$1" <<'PY'
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        for _ in range(20):
            s.sendto(b"n" * 1000, (sys.argv[1], 7))
            s.recvfrom(2048)
        print("sent=20")
        PY
        """#

    @Test(
        "as the job's user with the node service (netacct --node): exact network bytes in the final ad, from jobstat alone",
        .enabled(if: Integration.waitingFor(unprivilegedTools + ["netacct"]) == nil, Integration.waitingFor(unprivilegedTools) ?? ""),
        .enabled(if: Integration.tool("netacct", hasOption: "--node"), "netacct has no --node on this branch"),
        .enabled(if: NodeNetwork.unified() != nil, "no cgroup2 mount"))
    func unprivilegedNetworkFigures() throws {
        var network = try NodeNetwork()
        let world: World
        do {
            world = try World(configExtra: network.config)
        } catch {
            network.remove()
            throw error
        }
        defer {
            network.remove(config: world.config)
            world.remove()
        }
        try network.start(config: world.config)
        try world.execute.script("network-job.sh", Self.networkJob)
        let run = try world.run(
            asRoot: false, options: ["--netns", network.node, "--join-cgroup", network.jobDirectory],
            job: [world.execute.path + "/network-job.sh", network.campusAddress])
        #expect(run.status == 0 && run.errorFile == nil, "\(run)")
        #expect(run.stdout == "sent=20\n", "\(run)")
        let ad = Integration.attributes(try #require(run.finalAd, "\(run)"))
        // 20 datagrams each way, 1000 bytes of payload + 8 (UDP) + 20 (IPv4) each.
        #expect(ad["NetworkOutgoing"] == "\(20 * 1028)" && ad["NetworkIncoming"] == "\(20 * 1028)", "\(ad)")
        #expect(ad["MemoryPeakKb"] != nil, "\(ad)")
    }

    // MARK: - as root

    @Test(
        "as root: the job's cgroup with its memory limit, removed after; private /tmp as the job's user; network counters; the final ad",
        .enabled(if: Integration.waitingFor(fullChain) == nil, Integration.waitingFor(fullChain) ?? ""))
    func privileged() throws {
        let world = try World()
        defer { world.remove() }
        let run = try world.run(asRoot: true, options: ["--request-memory", "256"], job: [world.execute.path + "/job.sh", world.marker, "send"])
        let seen = world.report(run)

        #expect(run.status == 0, "\(run)")
        #expect(run.errorFile == nil && run.requeue == nil, "\(run)")
        #expect(seen["done"] == "\(64 << 20)", "\(run)")
        // ns-exec --user: the job runs as its Owner.
        #expect(seen["user"] == world.user.name && seen["uid"] == "\(world.user.uid)", "\(run)")
        // cg-exec: <the starter's cgroup>/<BASE_CGROUP>/job_<cluster>_0, below this test's own memory cgroup, with RequestMemory.
        let own = try #require(Integration.ownCgroup("memory"))
        let cgroup = try #require(seen["memory_cgroup"])
        #expect(cgroup.hasPrefix(own == "/" ? "/" : own + "/"), "\(run)")
        #expect(cgroup.contains("/\(world.starterCgroup)/"), "below the cgroup the starter put the wrapper in: \(run)")
        #expect(cgroup.hasSuffix("/\(world.base)/\(world.jobCgroup)"), "\(run)")
        #expect(seen["memory_limit"] == "\(256 << 20)", "\(run)")
        #expect(Integration.cgroups(named: world.jobCgroup).filter { $0.contains(world.base) }.isEmpty, "cg-exec --remove left the job's cgroup")
        // ns-exec --pid --mount --scratch: own PID view, /tmp and /var/tmp from the scratch dir, owned by the job's user.
        #expect((Int(seen["pid"] ?? "") ?? 999) <= 3, "\(run)")
        #expect((Int(seen["processes"] ?? "") ?? 999) <= 2, "only jobbox's init and the job: \(run)")
        try Self.expectPrivateTmp(world, run, owner: world.user.uid)
        // netacct: the job had a default route through its veth pair, and the datagrams were counted.
        let gateway = try #require(seen["gateway"].flatMap { $0 == "None" ? nil : $0 }, "\(run)")
        #expect(gateway.hasPrefix("10.250."), "the gateway comes from NETWORK_JOB_SUBNET: \(run)")

        let ad = try #require(run.finalAd, "\(run)")
        let parsed = try #require(try HTCondorClassAds.parse(ad).first)
        let value = { (name: String) -> Int in Int(parsed[name]?.value ?? "") ?? -1 }
        let sent = 20 * (1000 + 8 + 20)
        #expect(value("NetworkOutgoingInternal") >= sent, "20 datagrams of 1000 bytes to the gateway: \(ad)")
        #expect(value("NetworkOutgoing") == value("NetworkOutgoingInternal") + value("NetworkOutgoingExternal"), "\(ad)")
        #expect(value("NetworkIncoming") == value("NetworkIncomingInternal") + value("NetworkIncomingExternal"), "\(ad)")
        #expect(parsed["RemoteUserCpu"]?.type == "float", "\(ad)")
        if parsed["MemoryPeakKb"] != nil {
            #expect(value("MemoryPeakKb") >= 64 * 1024, "\(ad)")
        }
        var info = stat()
        #expect(stat(run.scratch + "/.jobbox/job.ad", &info) == 0 && info.st_uid == world.user.uid)
        #expect(Integration.cgroups(named: world.starterCgroup).isEmpty)
    }

    // MARK: - chirp

    @Test(
        "with an I/O proxy the final figures reach the job's ad: every attribute of the final ad is chirped with its value",
        .enabled(if: Integration.waitingFor(fullChain) == nil, Integration.waitingFor(fullChain) ?? ""),
        .enabled(if: Integration.tool("jobstat", hasOption: "--chirp-delayed"), "jobstat has no --chirp yet"),
        .enabled(if: HTCondorClassAds.available, "needs the test venv's python (make deps)"),
        arguments: [(false, true), (true, true), (true, false)])
    func chirp(asRoot: Bool, wantIOProxy: Bool) throws {
        let world = try World()
        defer { world.remove() }
        let python = try #require(HTCondorClassAds.python)
        let configFile = world.execute.path + "/chirp.config"
        let record = world.execute.path + "/chirp.received"
        let listener = try Spawn.start([python, TestSupport.fixtures + "/chirp/recording_listener.py", "--append", configFile, record])
        defer {
            kill(listener, SIGTERM)
            Spawn.wait(listener)
        }
        for _ in 0..<600 where !FileManager.default.fileExists(atPath: configFile) { usleep(10_000) }

        let run = try world.run(asRoot: asRoot, options: ["--chirp-config", configFile] + (wantIOProxy ? [] : ["--job-attr", "WantIOProxy = false"]))
        #expect(run.status == 0, "\(run)")
        let ad = Integration.attributes(try #require(run.finalAd, "\(run)"))
        // The connections are recorded when they close; every tool has closed its own by the time the wrapper exits.
        var chirped: [String: String] = [:]
        for _ in 0..<200 {
            chirped = Self.chirpedAttributes(Integration.read(record) ?? "")
            if chirped.count >= ad.count { break }
            usleep(10_000)
        }
        #expect(!ad.isEmpty)
        // With +WantIOProxy: set_job_attr Name; without: set_job_attr_delayed ChirpName.
        for (name, value) in ad {
            let published = wantIOProxy ? name : "Chirp" + name
            #expect(chirped[published] == value, "\(published) = \(value) was not chirped; chirped: \(chirped)")
        }
        let verbs = Set((Integration.read(record) ?? "").split(separator: "\n").dropFirst().compactMap { $0.split(separator: " ").first.map(String.init) })
        #expect(verbs.subtracting(["cookie"]) == [wantIOProxy ? "set_job_attr" : "set_job_attr_delayed"], "\(verbs)")
        #expect((Integration.read(record) ?? "").hasPrefix("cookie jobbox-test-cookie\n"))
    }

    /// The `set_job_attr[_delayed] NAME EXPR` requests in `text`, with chirp's backslash escapes undone.
    static func chirpedAttributes(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in text.split(separator: "\n") {
            var words: [String] = []
            var word = ""
            var escaped = false
            for character in line {
                if escaped {
                    word.append(character)
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == " " {
                    words.append(word)
                    word = ""
                } else {
                    word.append(character)
                }
            }
            words.append(word)
            if words.count == 3, words[0].hasPrefix("set_job_attr") { result[words[1]] = words[2] }
        }
        return result
    }

    // MARK: - broken steps

    @Test(
        "a broken step (bad jobbox.conf) as the job's user: one line from ns-exec in the error file; the job does not run; nothing is left",
        .enabled(if: Integration.waitingFor(["ns-exec"]) == nil, Integration.waitingFor(["ns-exec"]) ?? ""))
    func brokenConfigurationUnprivileged() throws {
        try expectBrokenConfiguration(asRoot: false)
    }

    @Test(
        "a broken step (bad jobbox.conf) as root: one line from cg-exec in the error file; the job does not run; nothing is left",
        .enabled(if: Integration.waitingFor(["cg-exec"]) == nil, Integration.waitingFor(["cg-exec"]) ?? ""))
    func brokenConfigurationPrivileged() throws {
        try expectBrokenConfiguration(asRoot: true)
    }

    func expectBrokenConfiguration(asRoot: Bool) throws {
        let world = try World(configExtra: "MOUNT_PRIVATE_DEV_SHM = sometimes")
        defer { world.remove() }
        let run = try world.run(asRoot: asRoot)
        #expect(run.status == 125, "\(run)")
        let line = try #require(run.errorFile, "\(run)")
        let firstTool = asRoot ? "cg-exec" : (Integration.isUnifiedCgroupNode ? "cg-exec" : "ns-exec")
        #expect(line.hasPrefix("\(firstTool): bad configuration"), "\(run)")
        #expect(line.contains("\(world.config):5") && line.contains("MOUNT_PRIVATE_DEV_SHM"), "names the file, line and knob: \(line)")
        #expect(line.filter { $0 == "\n" }.count == 1 && line.hasSuffix("\n"), "exactly one line: \(line)")
        #expect(run.requeue == "The job wrapper failed to execute the job: " + line.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(!run.stdout.contains("user="), "the job must not run: \(run)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/" + world.marker))
        #expect(run.finalAd == nil)
        #expect(Integration.cgroups(named: world.base).isEmpty)
        #expect(Integration.cgroups(named: world.starterCgroup).isEmpty)
    }

    @Test(
        "a chroot the node does not have is ns-exec's one-line reason in the error file, and cg-exec still removes the job's cgroup",
        .enabled(if: Integration.waitingFor(fullChain) == nil, Integration.waitingFor(fullChain) ?? ""))
    func unknownChroot() throws {
        let world = try World()
        defer { world.remove() }
        let run = try world.run(asRoot: true, options: ["--job-attr", "RequestedChroot = \"NoSuchChroot\""])
        #expect(run.status == 125, "\(run)")
        let line = try #require(run.errorFile, "\(run)")
        #expect(line.hasPrefix("ns-exec: ") && line.contains("NoSuchChroot"), "\(run)")
        #expect(line.filter { $0 == "\n" }.count == 1, "exactly one line: \(line)")
        #expect(!run.stdout.contains("user="), "\(run)")
        #expect(Integration.cgroups(named: world.jobCgroup).filter { $0.contains(world.base) }.isEmpty)
    }

    @Test(
        "the job's own failure is its status, not a wrapper failure (as the job's user)",
        .enabled(if: Integration.waitingFor(unprivilegedTools) == nil, Integration.waitingFor(unprivilegedTools) ?? ""))
    func jobStatusUnprivileged() throws {
        try expectJobStatus(asRoot: false)
    }

    @Test(
        "the job's own failure is its status, not a wrapper failure (as root)",
        .enabled(if: Integration.waitingFor(fullChain) == nil, Integration.waitingFor(fullChain) ?? ""))
    func jobStatusPrivileged() throws {
        try expectJobStatus(asRoot: true)
    }

    func expectJobStatus(asRoot: Bool) throws {
        let world = try World()
        defer { world.remove() }
        let run = try world.run(asRoot: asRoot, job: ["/bin/sh", "-c", "echo failing; exit 7"])
        #expect(run.status == 7, "\(run)")
        #expect(run.stdout == "failing\n", "\(run)")
        #expect(run.errorFile == nil, "\(run)")
    }

    // MARK: -

    static func expectPrivateTmp(_ world: World, _ run: ContractRun, owner: UInt32) throws {
        for directory in ["tmp", "var/tmp"] {
            let inScratch = run.scratch + "/" + directory + "/" + world.marker
            #expect(Integration.read(inScratch) == "job \(world.marker)\n", "the job's /\(directory) is <scratch>/\(directory): \(run)")
            var info = stat()
            #expect(stat(inScratch, &info) == 0 && info.st_uid == owner)
            #expect(!FileManager.default.fileExists(atPath: "/" + directory + "/" + world.marker), "the job wrote to the host's /\(directory)")
        }
    }
}
