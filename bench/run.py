#!/usr/bin/env python3
"""jobbox's benchmarks: each jobbox figure against the peer tool a sysadmin would otherwise use, in one run.

usage: bench/run.py BIN_DIR OUT_DIR [--quick] [--only NAME,...]
Run as root (bench/run does the set-up). Everything is made below this process's own cgroups and inside network
namespaces this script makes, with unique names, and removed at the end.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from driver import Variant, compare, markdown, save  # noqa: E402
import bpf_scenarios  # noqa: E402

TAG = "jbb%d" % (os.getpid() % 100000)


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, shell=True, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def self_cgroup_paths():
    """This process's cgroup path in each v1 hierarchy, by controller."""
    paths = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(","):
                if c:
                    paths[c] = path
    return paths


class Bench:
    def __init__(self, bin_dir, out_dir, quick):
        self.bin = bin_dir
        self.out = out_dir
        self.runs = 30 if quick else 200
        self.warmup = 5 if quick else 20
        self.quick = quick
        self.results = []
        # Below /run, not /tmp: jobbox refuses state directories under a directory others can write to.
        self.tmp = tempfile.mkdtemp(prefix="jobbox-bench-", dir="/run")
        self.conf = os.path.join(self.tmp, "jobbox.conf")
        self.base = TAG
        with open(self.conf, "w") as f:
            f.write("BASE_CGROUP = %s\nCGROUP_PARENT = self\nSTATE_DIR = %s/state\nCHROOT_DIR = %s/chroot\n" % (self.base, self.tmp, self.tmp))
        os.environ["JOBBOX_CONFIG"] = self.conf
        self.cleanups = []

    def tool(self, name):
        return os.path.join(self.bin, name)

    def add(self, result, notes=()):
        result["notes"] = list(notes)
        self.results.append(result)
        print(markdown([result]), flush=True)

    def close(self):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # keep cleaning
                print("cleanup: %s" % e, file=sys.stderr)
        # cg-exec --remove leaves the base cgroup (an admin may have put limits on it), and cgdelete leaves the
        # parent cgcreate made: both are the benchmark's own (named after TAG).
        for top, dirs, _ in os.walk("/sys/fs/cgroup"):
            for d in [d for d in dirs if d.startswith(TAG)]:
                dirs.remove(d)
                for inner, _, _ in sorted(os.walk(os.path.join(top, d)), key=lambda w: -len(w[0])):
                    try:
                        os.rmdir(inner)
                    except OSError as e:
                        print("cleanup: %s" % e, file=sys.stderr)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # 0. process start: each tool's --version against /bin/true
    def versions(self):
        variants = [Variant("/bin/true", [["/bin/true"]])]
        for t in ["cg-exec", "ns-exec", "netacct", "chroot-tool", "jobstat"]:
            variants.append(Variant("%s --version" % t, [[self.tool(t), "--version"]]))
        self.add(compare("0. process start: each tool's --version against /bin/true (target: at most 1.5x)", variants, self.runs, self.warmup),
                 ["Here the first row is /bin/true: the ratio column is each tool's start-up in units of /bin/true's."])

    # 1. job start
    def job_start(self):
        cg, true = self.tool("cg-exec"), "/bin/true"
        controllers = "memory,cpu,cpuacct,blkio,pids,freezer"
        paths = self_cgroup_paths()
        peer = "%slib" % TAG
        groups = []
        for c in controllers.split(","):
            groups += ["-g", "%s:%s/%s/job" % (c, paths.get(c, "/").rstrip("/"), peer)]
        cgexec_group = ["-g", "%s:%s/%s/job" % ("memory", paths.get("memory", "/").rstrip("/"), peer)]
        for c in controllers.split(",")[1:]:
            cgexec_group += ["-g", "%s:%s/%s/job" % (c, paths.get(c, "/").rstrip("/"), peer)]
        mem_path = "%s/%s/job" % (paths.get("memory", "/").rstrip("/"), peer)
        variants = [
            Variant("cg-exec --memory 1G (6 hierarchies, as cgcreate)",
                    [[cg, "--job", "b1", "--controllers", controllers, "--memory", "1G", "--", true]],
                    cleanup=[[cg, "--remove", "--job", "b1"]]),
            Variant("cgcreate + cgset + cgexec (libcgroup)",
                    [["/usr/bin/cgcreate"] + groups, ["/usr/bin/cgset", "-r", "memory.limit_in_bytes=1G", mem_path],
                     ["/usr/bin/cgexec"] + cgexec_group + [true]],
                    cleanup=[["/usr/bin/cgdelete", "-r"] + groups]),
            Variant("/bin/true", [[true]]),
            Variant("cg-exec, default controllers (7 incl. cpuset + unified)",
                    [[cg, "--job", "b2", "--memory", "1G", "--", true]], cleanup=[[cg, "--remove", "--job", "b2"]]),
        ]
        self.add(compare("1. job start: cg-exec against libcgroup's cgcreate/cgexec and /bin/true", variants, self.runs, self.warmup))

    # 2. isolation
    def isolation(self):
        scratch = os.path.join(self.tmp, "scratch")
        os.makedirs(scratch, exist_ok=True)
        true = "/bin/true"
        variants = [
            Variant("ns-exec --pid --mount --mount-under-scratch /tmp",
                    [[self.tool("ns-exec"), "--pid", "--mount", "--scratch", scratch, "--mount-under-scratch", "/tmp", "--no-private-dev-shm", "--", true]]),
            Variant("unshare --pid --fork --mount-proc --mount", [["/usr/bin/unshare", "--pid", "--fork", "--mount-proc", "--mount", true]]),
            Variant("bwrap --dev-bind / / --unshare-pid --tmpfs /tmp", [["/usr/bin/bwrap", "--dev-bind", "/", "/", "--unshare-pid", "--tmpfs", "/tmp", true]]),
            Variant("/bin/true", [[true]]),
        ]
        self.add(compare("2. isolation: ns-exec against unshare(1) and bwrap(1)", variants, self.runs, self.warmup))
        variants = [
            Variant("ns-exec --pid --mount", [[self.tool("ns-exec"), "--pid", "--mount", "--", true]]),
            Variant("unshare --pid --fork --mount --mount-proc", [["/usr/bin/unshare", "--pid", "--fork", "--mount", "--mount-proc", true]]),
        ]
        self.add(compare("2b. isolation, the target's command lines (target: at most 1.0x unshare)", variants, self.runs, self.warmup))

    # 3. full chain
    def full_chain(self):
        scratch = os.path.join(self.tmp, "scratch")
        os.makedirs(scratch, exist_ok=True)
        cg, ns, na = self.tool("cg-exec"), self.tool("ns-exec"), self.tool("netacct")
        nsargs = [ns, "--pid", "--mount", "--scratch", scratch, "--mount-under-scratch", "/tmp", "--no-private-dev-shm", "--"]
        node = TAG + "node"
        sh("ip netns add %s" % node)
        self.cleanups.append(lambda: sh("ip netns del %s" % node, check=False))
        innode = ["/usr/bin/nsenter", "--net=/run/netns/" + node]
        variants = [
            Variant("cg-exec + ns-exec + /bin/true",
                    [[cg, "--job", "c1", "--memory", "1G", "--"] + nsargs + ["/bin/true"]], cleanup=[[cg, "--remove", "--job", "c1"]]),
            Variant("cg-exec --remove of that job", [[cg, "--remove", "--job", "c3"]],
                    prepare=[[cg, "--job", "c3", "--memory", "1G", "--"] + nsargs + ["/bin/true"]]),
            Variant("cg-exec + ns-exec + netacct (veth, chain, NAT) + /bin/true, in a test netns",
                    [innode + [cg, "--job", "c2", "--memory", "1G", "--"] + nsargs + [na, "--job", "c2", "--backend", "nftables", "--", "/bin/true"]],
                    cleanup=[[cg, "--remove", "--job", "c2"]]),
            Variant("nsenter --net (the test netns alone)", [innode + ["/bin/true"]]),
        ]
        self.add(compare("3. the full chain per job, start to exit (removal timed apart)", variants, max(20, self.runs // 4), self.warmup // 2),
                 ["The netacct variant runs inside a network namespace made for the benchmark (`nsenter --net`), so the host's "
                  "firewall is untouched; the last row is that wrapper's own cost, to subtract."])

    # 3b. the chain without networking against libcgroup's commands and unshare(1)
    def chain_peer(self):
        cg, ns = self.tool("cg-exec"), self.tool("ns-exec")
        controllers = "memory,cpu,cpuacct,blkio,pids,freezer"
        paths = self_cgroup_paths()
        peer = "%schain" % TAG
        groups = []
        for c in controllers.split(","):
            groups += ["-g", "%s:%s/%s/job" % (c, paths.get(c, "/").rstrip("/"), peer)]
        mem_path = "%s/%s/job" % (paths.get("memory", "/").rstrip("/"), peer)
        unshare = ["/usr/bin/unshare", "--pid", "--fork", "--mount", "--mount-proc", "/bin/true"]
        variants = [
            Variant("cg-exec --memory 1G (6 hierarchies) -> ns-exec --pid --mount -> /bin/true",
                    [[cg, "--job", "p1", "--controllers", controllers, "--memory", "1G", "--", ns, "--pid", "--mount", "--", "/bin/true"]],
                    cleanup=[[cg, "--remove", "--job", "p1"]]),
            Variant("cgcreate + cgset + cgexec -> unshare --pid --fork --mount --mount-proc -> /bin/true",
                    [["/usr/bin/cgcreate"] + groups, ["/usr/bin/cgset", "-r", "memory.limit_in_bytes=1G", mem_path],
                     ["/usr/bin/cgexec"] + groups + unshare],
                    cleanup=[["/usr/bin/cgdelete", "-r"] + groups]),
        ]
        self.add(compare("3b. the chain without networking against libcgroup and unshare(1) (target: at most 1.2x)", variants,
                         max(20, self.runs // 2), self.warmup // 2))

    # 4. network set-up and teardown as N grows
    def network_scaling(self):
        counts = [1, 10, 50] if self.quick else [1, 10, 100, 500]
        for backend in ["nftables", "iptables"]:
            node = "%sn%s" % (TAG, backend[:2])
            sh("ip netns add %s" % node)
            self.cleanups.append(lambda node=node: sh("ip netns del %s" % node, check=False))
            innode = ["/usr/bin/nsenter", "--net=/run/netns/" + node]
            state = os.path.join(self.tmp, "state-" + backend)
            running = []
            rows = []
            for n in counts:
                while len(running) < n - 1:
                    i = len(running)
                    p = subprocess.Popen(innode + [self.tool("netacct"), "--job", "bg%d" % i, "--backend", backend, "--", "/bin/sleep", "3600"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    running.append(p)
                time.sleep(0.5)
                v = [
                    Variant("netacct set-up + teardown, %s, %d jobs" % (backend, n),
                            [innode + [self.tool("netacct"), "--job", "probe", "--backend", backend, "--", "/bin/true"]]),
                    Variant("netacct --show --all, %d jobs" % n, [innode + [self.tool("netacct"), "--show", "--all"]]),
                ]
                if backend == "iptables":
                    chain = "JOB_peer"
                    v.append(Variant("iptables-legacy: chain + 4 rules + jump, then delete, %d jobs" % n,
                                     [innode + ["/usr/sbin/iptables-legacy", "-w", "-N", chain]] +
                                     [innode + ["/usr/sbin/iptables-legacy", "-w", "-A", chain, "-d", "10.%d.0.0/16" % k, "-m", "comment", "--comment", "c%d" % k] for k in range(4)] +
                                     [innode + ["/usr/sbin/iptables-legacy", "-w", "-I", "FORWARD", "-j", chain],
                                      innode + ["/usr/sbin/iptables-legacy", "-w", "-D", "FORWARD", "-j", chain],
                                      innode + ["/usr/sbin/iptables-legacy", "-w", "-F", chain],
                                      innode + ["/usr/sbin/iptables-legacy", "-w", "-X", chain]]))
                    v.append(Variant("iptables-legacy -L -v -n -x (counter read), %d jobs" % n,
                                     [innode + ["/usr/sbin/iptables-legacy", "-w", "-L", "-v", "-n", "-x"]]))
                else:
                    v.append(Variant("nft: table + chain + 4 counters, then delete, %d jobs" % n,
                                     [innode + ["/usr/sbin/nft", "add table inet peer; add chain inet peer c; " +
                                                " ".join("add rule inet peer c ip daddr 10.%d.0.0/16 counter;" % k for k in range(4))],
                                      innode + ["/usr/sbin/nft", "delete table inet peer"]]))
                    v.append(Variant("nft list ruleset (counter read), %d jobs" % n, [innode + ["/usr/sbin/nft", "list", "ruleset"]]))
                r = compare("4. network, %s back end, %d jobs running" % (backend, n), v, max(10, self.runs // 10), 2)
                rows.append(r)
                self.add(r)
            for p in running:
                p.terminate()
            for p in running:
                p.wait()

    # 7.-9. the cgroup BPF back ends (bench/lib/bpf_scenarios.py)
    def bpf_setup(self):
        bpf_scenarios.bpf_setup(self, sh, TAG)

    def tcp_throughput(self):
        bpf_scenarios.tcp_throughput(self, sh, TAG)

    def node_memory(self):
        bpf_scenarios.node_memory(self, sh, TAG)

    # 5. jobstat
    def jobstat(self):
        cg, js = self.tool("cg-exec"), self.tool("jobstat")
        sleepers = []
        def start(job):
            p = subprocess.Popen([cg, "--job", job, "--", "/bin/sleep", "3600"])
            sleepers.append((job, p))
        def stop_sleepers():
            for job, p in sleepers:
                subprocess.run([cg, "--remove", "--job", job], check=False)
                p.wait()
            sleepers.clear()
        # Also when a peer is missing or a run fails half-way: a sleeper left in the benchmark's cgroups would
        # keep them from being removed.
        self.cleanups.append(stop_sleepers)
        start("s0")
        time.sleep(0.3)
        paths = self_cgroup_paths()
        mem = "/sys/fs/cgroup/memory%s/%s/job_s0" % (paths["memory"].rstrip("/"), self.base)
        cpu = "/sys/fs/cgroup/cpuacct/%s/job_s0" % self.base
        blk = "/sys/fs/cgroup/blkio/%s/job_s0" % self.base
        pid = "/sys/fs/cgroup/pids/%s/job_s0" % self.base
        files = [mem + "/memory.stat", mem + "/memory.max_usage_in_bytes", mem + "/memory.oom_control", cpu + "/cpuacct.stat",
                 blk + "/blkio.throttle.io_service_bytes_recursive", blk + "/blkio.throttle.io_serviced_recursive", pid + "/pids.current"]
        files = [f for f in files if os.path.exists(f)]
        cgpath = "%s/job_s0" % self.base
        variants = [
            Variant("jobstat --job (one job)", [[js, "--job", "s0"]]),
            Variant("cgget -a (libcgroup, memory,cpuacct,blkio,pids)",
                    [["/usr/bin/cgget", "-g", "memory:%s/%s" % (paths["memory"].rstrip("/"), cgpath), "-g", "cpuacct:/" + cgpath, "-g", "blkio:/" + cgpath, "-g", "pids:/" + cgpath]]),
            Variant("cat of the same files", [["/bin/cat"] + files]),
        ]
        self.add(compare("5a. jobstat for one job", variants, self.runs, self.warmup))
        for i in range(1, 100):
            start("s%d" % i)
        time.sleep(1)
        variants = [
            Variant("jobstat --all (100 jobs)", [[js, "--all"]]),
            Variant("jobstat --all --format prometheus (100 jobs)", [[js, "--all", "--format", "prometheus"]]),
        ]
        self.add(compare("5b. jobstat --all with 100 jobs", variants, max(20, self.runs // 4), self.warmup // 2))
        stop_sleepers()

    # 6. memory of what stays alive
    def memory(self):
        def pss_kb(pid):
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        return int(line.split()[1])
            return None
        rows = []
        scratch = os.path.join(self.tmp, "scratch")
        os.makedirs(scratch, exist_ok=True)
        node = TAG + "mem"
        sh("ip netns add %s" % node)
        self.cleanups.append(lambda: sh("ip netns del %s" % node, check=False))
        for label, argv in [
            ("netacct (parent, stays while the job runs)", ["/usr/bin/nsenter", "--net=/run/netns/" + node, self.tool("netacct"), "--job", "m1", "--backend", "nftables", "--", "/bin/sleep", "30"]),
            ("ns-exec init (PID 1 of the job's namespace)", [self.tool("ns-exec"), "--pid", "--mount", "--scratch", scratch, "--mount-under-scratch", "/tmp", "--", "/bin/sleep", "30"]),
        ]:
            p = subprocess.Popen(argv)
            time.sleep(1.0)
            # The long-lived jobbox process: the Popen'd one (ip netns exec execs netacct), or for ns-exec its init child.
            pid = p.pid
            children = sh("pgrep -P %d" % pid, check=False).stdout.split()
            measured = [(pid, pss_kb(pid))] + [(int(c), pss_kb(int(c))) for c in children]
            comm = {q: open("/proc/%d/comm" % q).read().strip() for q, _ in measured}
            rows.append({"label": label, "processes": [{"pid": q, "comm": comm[q], "pss_kb": k} for q, k in measured]})
            p.terminate()
            p.wait()
        result = {"title": "6. memory (PSS) of the jobbox processes that stay alive for a job's lifetime", "rows": [], "memory": rows}
        lines = ["| process | comm | PSS KiB |", "|---|---|---|"]
        for r in rows:
            for q in r["processes"]:
                lines.append("| %s | %s | %s |" % (r["label"], q["comm"], q["pss_kb"]))
        self.results.append(result)
        self.memory_table = "\n".join(lines)
        print(self.memory_table, flush=True)


    # 6b. private memory of one job's jobbox processes with 10 jobs running the full chain
    def private_memory(self):
        def rollup(pid):
            figures = {}
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    if key in ("Pss", "Private_Dirty", "Private_Clean"):
                        figures[key] = int(rest.split()[0])
            return figures
        def children(pid):
            return [int(c) for c in sh("pgrep -P %d" % pid, check=False).stdout.split()]
        cg, ns, na = self.tool("cg-exec"), self.tool("ns-exec"), self.tool("netacct")
        node = TAG + "pd"
        sh("ip netns add %s" % node)
        self.cleanups.append(lambda: sh("ip netns del %s" % node, check=False))
        jobs = []
        for i in range(10):
            job = "pd%d" % i
            argv = ["/usr/bin/nsenter", "--net=/run/netns/" + node, cg, "--job", job, "--memory", "1G", "--",
                    ns, "--pid", "--mount", "--", na, "--job", job, "--backend", "nftables", "--", "/bin/sleep", "60"]
            jobs.append((job, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))

        def stop_jobs():
            # Also run by close() when the measurement fails or the run is stopped: no job or cgroup stays.
            for _, p in jobs:
                if p.poll() is None:
                    p.terminate()
            for job, p in jobs:
                p.wait()
                subprocess.run([cg, "--remove", "--job", job], check=False)
            jobs.clear()
        self.cleanups.append(stop_jobs)
        time.sleep(3.0)
        per_job = []
        detail = []
        for job, p in jobs:
            # nsenter execs cg-exec, which execs ns-exec: the Popen'd pid is ns-exec's outer process; its child is
            # the init, whose child is netacct's parent, whose child is the job (sleep, not jobbox's).
            procs, queue = [], [p.pid]
            while queue:
                q = queue.pop()
                try:
                    comm = open("/proc/%d/comm" % q).read().strip()
                    if comm == "sleep":
                        continue
                    procs.append((q, comm, rollup(q)))
                except (FileNotFoundError, ProcessLookupError):
                    continue  # a short-lived helper (netacct's set-up), gone before it was read
                queue += children(q)
            per_job.append(sum(r["Private_Dirty"] for _, _, r in procs))
            detail.append(procs)
        lines = ["| job's jobbox process | Private_Dirty KiB | Private_Clean KiB | PSS KiB |", "|---|---|---|---|"]
        for q, comm, r in detail[0]:
            lines.append("| %s (%s) | %d | %d | %d |" % (comm, "outer" if q == jobs[0][1].pid else "pid %d" % q, r["Private_Dirty"], r["Private_Clean"], r["Pss"]))
        lines.append("")
        lines.append("Private_Dirty summed over one job's jobbox processes, 10 jobs running: median %d KiB (min %d, max %d); target at most 512 KiB."
                     % (sorted(per_job)[len(per_job) // 2], min(per_job), max(per_job)))
        stop_jobs()
        self.results.append({"title": "6b. private memory per job, 10 jobs", "rows": [], "private_dirty_kib": per_job})
        self.private_table = "\n".join(lines)
        print(self.private_table, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("out")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    b = Bench(os.path.abspath(args.bin), args.out, args.quick)
    wanted = [w for w in args.only.split(",") if w] or ["versions", "job_start", "isolation", "full_chain", "chain_peer", "network_scaling",
                                                         "jobstat", "memory", "private_memory", "bpf_setup", "tcp_throughput", "node_memory"]
    # A TERM, HUP or INT (a timeout, a closed terminal) ends the run through the finally below, so the
    # benchmark's cgroups, namespaces and jobs are removed: Python's default for TERM and HUP skips it.
    def stop(signum, _frame):
        raise SystemExit(128 + signum)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, stop)
    try:
        for name in wanted:
            getattr(b, name)()
    finally:
        b.close()
    machine = "%s, %d CPUs, kernel %s" % (platform.node(), os.cpu_count(), platform.release())
    save({"machine": machine, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "results": b.results},
         os.path.join(args.out, "latest.json"))
    text = "Machine: %s. Date: %s. Release build, static Swift stdlib.\n\n" % (machine, time.strftime("%Y-%m-%d", time.gmtime()))
    text += markdown([r for r in b.results if r["rows"]])
    if hasattr(b, "memory_table"):
        text += "\n### 6. memory (PSS) of the processes that stay alive\n\n" + b.memory_table + "\n"
    if hasattr(b, "private_table"):
        text += "\n### 6b. private memory of one job's jobbox processes, 10 jobs running\n\n" + b.private_table + "\n"
    if hasattr(b, "node_memory_table"):
        text += "\n### 9. the node service's memory\n\n" + b.node_memory_table + "\n"
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(text)
    print("results: %s" % os.path.join(args.out, "latest.md"))


if __name__ == "__main__":
    main()
