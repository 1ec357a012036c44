#!/usr/bin/env python3
"""jobbox's chaos and load suite: kill -9 anywhere, load and exhaustion, then prove that nothing is left.

usage: chaos/run.py BIN_DIR [--seed N] [--chains N] [--load N] [--alive N] [--workers N] [--parts kill,load,alive,exhaust]
                             [--kill-ratio R] [--report FILE] [--skip-unless-root]
Run as root on this node's real kernel. Everything is made below this process's own cgroups (CGROUP_PARENT =
self, a base cgroup of its own) and in network namespaces it makes (a node and a peer host), with names that
start with `jbc`, and removed at the end. The seed is printed first: `--seed N` with the same other options
replays the same choices (what is killed, when, with which figures); timing still varies, so a replay hits the
same process at about the same moment. docs/RELIABILITY.md says what each part proves.
"""
import argparse
import collections
import json
import os
import random
import re
import shutil
import signal
import socket as sockets
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "..", "Tests", "Fixtures", "netacct", "peer.py")
JOB = os.path.join(HERE, "job.py")
PYTHON = "/usr/bin/python3"
PORT = 7000
NODE_ADDRESS, PEER_ADDRESS = "172.31.0.1", "172.31.0.2"
BACKENDS = ["iptables", "nftables", "bpf"]
TOOLS = {"cg-exec", "netacct", "ns-exec", "ns-exec-init", "jobstat", "python3"}


def run(argv, check=False, timeout=300, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s: status %d: %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
    return r


def process_table():
    """pid -> (ppid, comm) for every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        table[int(entry)] = (ppid, comm)
    return table


def descendants(root, table):
    """root and every process below it."""
    children = collections.defaultdict(list)
    for pid, (ppid, _) in table.items():
        children[ppid].append(pid)
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        if pid in table:
            found.append(pid)
            queue += children[pid]
    return found


def ad(text):
    """A ClassAd's `Name = integer` lines."""
    figures = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+) = (-?\d+)$", line.strip())
        if m:
            figures[m.group(1)] = int(m.group(2))
    return figures


class Suite:
    def __init__(self, args):
        self.bin = os.path.abspath(args.bin)
        self.args = args
        self.rng = random.Random(args.seed)
        self.backends = args.backends.split(",")
        self.tag = "%03d" % (os.getpid() % 1000)
        self.base = "jbc" + self.tag
        self.node, self.peer = self.base + "n", self.base + "p"
        # Below /run, not /tmp: jobbox refuses state directories under a directory others can write to.
        self.tmp = tempfile.mkdtemp(prefix=self.base + "-", dir="/run")
        self.state = os.path.join(self.tmp, "state")
        # The job sees its scratch dir at /tmp (--mount-under-scratch), so a checkout under /tmp would hide its
        # own script from it: the job runs a copy kept beside the suite's state.
        self.job = os.path.join(self.tmp, "job.py")
        shutil.copyfile(JOB, self.job)
        self.conf = self.config(self.tmp, {})
        os.environ["JOBBOX_CONFIG"] = self.conf
        self.lock = threading.Lock()
        self.failures = []
        self.stats = collections.Counter()
        self.kills = collections.Counter()
        self.server = None
        self.durations = {b: [] for b in BACKENDS}
        self.mounts = []
        self.events = []
        self.dead = set()
        self.epoch = time.monotonic()

    def config(self, directory, extra):
        path = os.path.join(directory, "jobbox.conf")
        knobs = {"BASE_CGROUP": self.base, "CGROUP_PARENT": "self", "STATE_DIR": self.state, "NETWORK_INTERNAL": "172.31.0.0/16"}
        knobs.update(extra)
        with open(path, "w") as f:
            f.write("".join("%s = %s\n" % kv for kv in knobs.items()))
        return path

    def tool(self, name):
        return os.path.join(self.bin, name)

    def fail(self, what):
        with self.lock:
            self.failures.append(what)
        print("FAIL %s" % what, flush=True)

    # The topology: a node (where netacct runs and the job's veth ends) and a peer host with the UDP server.
    def setup(self):
        for ns in (self.node, self.peer):
            run(["ip", "netns", "add", ns], check=True)
            run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        run(["ip", "-n", self.node, "link", "add", self.base + "a", "type", "veth", "peer", "name", self.base + "b", "netns", self.peer], check=True)
        run(["ip", "-n", self.node, "addr", "add", NODE_ADDRESS + "/24", "dev", self.base + "a"], check=True)
        run(["ip", "-n", self.node, "link", "set", self.base + "a", "up"], check=True)
        run(["ip", "-n", self.peer, "addr", "add", PEER_ADDRESS + "/24", "dev", self.base + "b"], check=True)
        run(["ip", "-n", self.peer, "link", "set", self.base + "b", "up"], check=True)
        run(["ip", "-n", self.peer, "route", "add", "default", "via", NODE_ADDRESS], check=True)
        run(["ip", "netns", "exec", self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
        serve = os.path.join(self.tmp, "peer")
        os.makedirs(serve)
        self.server = subprocess.Popen(["ip", "netns", "exec", self.peer, PYTHON, PEER, "serve", serve, str(PORT)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while not os.path.exists(os.path.join(serve, "ready")):
            if time.time() > deadline:
                raise RuntimeError("the peer's server did not start")
            time.sleep(0.05)
        for d in ("ads", "marks", "scratch", "out"):
            os.makedirs(os.path.join(self.tmp, d))

    def close(self):
        for target in reversed(self.mounts):
            run(["umount", "-l", target])
        if self.server:
            self.server.kill()
            self.server.wait()
        for ns in (self.node, self.peer):
            run(["ip", "netns", "del", ns])
        # cg-exec --remove leaves the base cgroup (an admin may have put limits on it): it is the suite's own.
        for top in self.cgroup_roots():
            base = os.path.join(top, self.base)
            for inner, _, _ in sorted(os.walk(base), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(inner)
                except OSError as e:
                    print("cleanup: %s" % e, file=sys.stderr)
        shutil.rmtree(self.tmp, ignore_errors=True)

    @staticmethod
    def cgroup_roots():
        """The directory of this process's cgroup in every hierarchy (v1 and the unified one)."""
        roots = []
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                names = [c for c in controllers.split(",") if c]
                mount = "unified" if not names else ("systemd" if names == ["name=systemd"] else controllers)
                for candidate in (mount, names[0] if names else mount):
                    top = "/sys/fs/cgroup/%s%s" % (candidate, path.rstrip("/"))
                    if os.path.isdir(top):
                        roots.append(top)
                        break
        return sorted(set(roots))

    # One chain, start to end: cg-exec -> netacct -> ns-exec -> job, then jobstat and cg-exec --remove.
    def chain_argv(self, job, backend, figures):
        scratch = os.path.join(self.tmp, "scratch", job)
        os.makedirs(scratch, exist_ok=True)
        marks = os.path.join(self.tmp, "marks", job)
        return (["nsenter", "--net=/run/netns/" + self.node,
                 self.tool("cg-exec"), "--job", job, "--memory", "512M", "--",
                 self.tool("netacct"), "--job", job, "--backend", backend, "--ad-file", os.path.join(self.tmp, "ads", job + ".ad"), "--",
                 self.tool("ns-exec"), "--pid", "--mount", "--scratch", scratch, "--mount-under-scratch", "/tmp", "--no-private-dev-shm", "--",
                 PYTHON, self.job, marks, str(figures["mem"]), str(figures["io"]), PEER_ADDRESS, str(PORT),
                 str(figures["count"]), str(figures["size"]), str(figures["reply"]), str(figures["status"])])

    def figures(self, rng):
        return {"mem": rng.randint(8, 40), "io": rng.randint(16, 512), "count": rng.randint(1, 20), "size": rng.randint(10, 1400),
                "reply": rng.randint(0, 1400), "status": rng.choice([0, 0, 1, 3, 42])}

    def episode(self, job, backend, figures, kill_at, rng):
        """Runs the chain; kills a random process of it at kill_at seconds (None: no kill). Returns what happened."""
        marks = os.path.join(self.tmp, "marks", job)
        out = open(os.path.join(self.tmp, "out", job + ".out"), "w+")
        err = open(os.path.join(self.tmp, "out", job + ".err"), "w+")
        start = time.monotonic()
        chain = subprocess.Popen(self.chain_argv(job, backend, figures), stdout=out, stderr=err)
        killed = None
        current = chain
        stage = "chain"
        post = {}
        while True:
            if killed is None and kill_at is not None and time.monotonic() - start >= kill_at:
                killed = self.kill_one(current, stage, marks, rng)
                if killed is None and current.poll() is not None and stage == "remove":
                    killed = ("none", "after")
            if current.poll() is not None:
                if stage == "chain":
                    post["status"] = current.returncode
                    stage = "jobstat"
                    current = subprocess.Popen([self.tool("jobstat"), "--job", job], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    post["jobstat"] = current
                elif stage == "jobstat":
                    post["jobstat_out"] = current.communicate()
                    post["jobstat_status"] = current.returncode
                    stage = "remove"
                    current = subprocess.Popen([self.tool("cg-exec"), "--remove", "--job", job], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                else:
                    post["remove_out"] = current.communicate()
                    post["remove_status"] = current.returncode
                    break
            time.sleep(0.002)
        post["duration"] = time.monotonic() - start
        post["start"] = round(start - self.epoch, 3)
        out.seek(0)
        err.seek(0)
        post["stdout"], post["stderr"] = out.read(), err.read()
        self.check_reclaims("netacct of %s" % job, post["stderr"])
        out.close()
        err.close()
        if kill_at is not None and killed is None:
            killed = ("none", "after")
        return killed, post

    def kill_one(self, current, stage, marks, rng):
        table = process_table()
        pids = [p for p in descendants(current.pid, table) if table[p][1] in TOOLS]
        if not pids:
            return None
        victim = rng.choice(sorted(pids))
        comm = table[victim][1]
        if stage != "chain":
            phase = stage
        elif os.path.exists(marks + ".done"):
            phase = "teardown"
        elif os.path.exists(marks + ".started"):
            phase = "run"
        else:
            phase = "setup"
        with self.lock:
            self.dead.add(os.path.basename(marks))
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return ("job" if comm == "python3" else comm, phase)

    def check_figures(self, job, backend, figures, post):
        """A chain nobody killed: the job's status, exact network bytes, memory above what the job touched."""
        if post["status"] != figures["status"]:
            self.fail("%s (%s): status %s, wanted %d: %s" % (job, backend, post["status"], figures["status"], post["stderr"].strip()))
            return
        try:
            with open(os.path.join(self.tmp, "ads", job + ".ad")) as f:
                net = ad(f.read())
        except OSError as e:
            self.fail("%s (%s): no network ad: %s" % (job, backend, e))
            return
        want = {"NetworkOutgoing": figures["count"] * (figures["size"] + 28), "NetworkIncoming": figures["count"] * (figures["reply"] + 28),
                "NetworkOutgoingExternal": 0, "NetworkIncomingExternal": 0}
        want["NetworkOutgoingInternal"], want["NetworkIncomingInternal"] = want["NetworkOutgoing"], want["NetworkIncoming"]
        for key, value in want.items():
            if net.get(key) != value:
                self.fail("%s (%s): %s = %s, wanted %d" % (job, backend, key, net.get(key), value))
        stats = ad(post["jobstat_out"][0])
        if post["jobstat_status"] != 0 or stats.get("MemoryPeakKb", 0) < figures["mem"] * 1024:
            self.fail("%s (%s): jobstat status %d, MemoryPeakKb %s below the job's %d MiB" % (job, backend, post["jobstat_status"], stats.get("MemoryPeakKb"), figures["mem"]))
        if post["remove_status"] != 0:
            self.fail("%s: cg-exec --remove status %d: %s" % (job, post["remove_status"], post["remove_out"][1].strip()))
        address = re.search(r"address (\S+)", post["stdout"])
        return address.group(1) if address else None

    def cleanup(self, job):
        """The documented clean-up after a chain was killed (README, man cg-exec, man netacct)."""
        with self.lock:
            self.dead.add(job)
        r = run([self.tool("cg-exec"), "--remove", "--job", job])
        if r.returncode != 0:
            self.fail("%s: cg-exec --remove status %d: %s" % (job, r.returncode, r.stderr.strip()))
        r = run(["nsenter", "--net=/run/netns/" + self.node, self.tool("netacct"), "--cleanup", "--stale"])
        if r.returncode != 0:
            self.fail("%s: netacct --cleanup --stale status %d: %s" % (job, r.returncode, r.stderr.strip()))
        self.check_reclaims("netacct --cleanup --stale after %s" % job, r.stderr)

    def check_reclaims(self, who, stderr):
        """Only a dead run's leftovers may be removed: a clean-up, or a netacct reclaiming a slot, that names a
        job whose chain was not killed took a live job's network."""
        for victim in re.findall(r"removed the (?:network|accounting) of job (\S+) left by", stderr):
            with self.lock:
                dead = victim in self.dead
            if not dead:
                self.fail("%s removed the network of job %s, which nobody killed: %s" % (who, victim, stderr.strip()))

    # What one job may leave: its cgroups, veth, chain, table, lease, claim, processes.
    def snapshot(self):
        """The node's links and firewall, the state files and every process's command line, read once."""
        state = []
        for sub in ("netacct", "netacct/bpf"):
            directory = os.path.join(self.state, sub)
            state += ["%s/%s" % (sub, name) for name in (os.listdir(directory) if os.path.isdir(directory) else [])]
        server = self.server.pid if self.server else -1
        table = process_table()
        skip = set(descendants(server, table)) | {os.getpid()}
        argvs = {}
        for pid in table:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    argvs[pid] = f.read().split(b"\0")
            except OSError:
                continue
        return {"links": run(["ip", "-n", self.node, "-o", "link"]).stdout,
                "iptables": run(["ip", "netns", "exec", self.node, "iptables-legacy-save"]).stdout,
                "nft": run(["ip", "netns", "exec", self.node, "nft", "list", "ruleset"]).stdout,
                "state": state, "argvs": {p: a for p, a in argvs.items() if p not in skip}}

    def leftovers(self, job, snap=None):
        snap = snap or self.snapshot()
        found = []
        cgname = "job_" + job.replace(".", "_")
        for top in self.cgroup_roots():
            for path in (os.path.join(top, self.base, cgname), os.path.join(top, "netacct_" + job)):
                if os.path.exists(path):
                    found.append("cgroup " + path)
        if re.search(r"\bjb_%s[@:]" % re.escape(job), snap["links"]):
            found.append("link jb_" + job)
        named = re.compile(r"JOB_%s\b" % re.escape(job))
        if named.search(snap["iptables"]):
            found.append("iptables chain or rule JOB_" + job)
        if named.search(snap["nft"]):
            found.append("nftables chain or counter JOB_" + job)
        found += ["state file " + f for f in snap["state"] if f.endswith("_" + job + ".lease") or f.endswith(".jb_" + job)]
        found += self.processes_described(job, snap)
        return found

    def processes_described(self, needle, snap):
        """`processes_naming`'s processes as a failure shows them: pid and command line."""
        return ["process %d (%s)" % (p, b" ".join(snap["argvs"][p]).decode(errors="replace")) for p in self.processes_naming(needle, snap)]

    def processes_naming(self, needle, snap):
        """Processes with `needle` as an argument, or as a name in an argument below the suite's directory: not as
        a part of a longer name (job c1k1's marks are not job c1k10's)."""
        word, tmp = needle.encode(), self.tmp.encode()
        named = re.compile(rb"(?<![A-Za-z0-9_])" + re.escape(word) + rb"(?![A-Za-z0-9_])")
        return [pid for pid, argv in snap["argvs"].items() if any(word == a or (a.startswith(tmp) and named.search(a)) for a in argv)]

    # Part 1: kill -9 anywhere.
    def part_kill(self):
        n = self.args.chains
        plan = []
        for i in range(n):
            backend = self.backends[i % len(self.backends)]
            job = "c%sk%d" % (self.tag, i)
            rng = random.Random(self.rng.random())
            figures = self.figures(rng)
            kill = rng.random() < self.args.kill_ratio
            plan.append((job, backend, figures, kill, rng))
        queue = collections.deque(plan)
        # Each back end's first chains are not killed: they give its typical duration (the range of kill moments).
        typical = {}

        def worker():
            while True:
                with self.lock:
                    if not queue:
                        return
                    job, backend, figures, kill, rng = queue.popleft()
                    known = typical.get(backend)
                kill_at = rng.uniform(0, known) if kill and known else None
                killed, post = self.episode(job, backend, figures, kill_at, rng)
                with self.lock:
                    self.stats["chains"] += 1
                    if self.stats["chains"] % 100 == 0:
                        print("chaos: kill: %d of %d chains, %d killed, %d failures" % (self.stats["chains"], n, self.stats["killed"], len(self.failures)),
                              flush=True)
                    if kill_at is None:
                        self.durations[backend].append(post["duration"])
                        d = sorted(self.durations[backend])
                        typical[backend] = d[len(d) // 2]
                with self.lock:
                    self.events.append({"job": job, "backend": backend, "killed": killed, "kill_at": kill_at, "start": post["start"],
                                        "duration": round(post["duration"], 3)})
                if killed and killed[0] != "none":
                    with self.lock:
                        self.stats["killed"] += 1
                        self.kills[(backend, killed[0], killed[1])] += 1
                    self.cleanup(job)
                else:
                    if killed:
                        with self.lock:
                            self.stats["kill came after the end"] += 1
                    self.check_figures(job, backend, figures, post)
                    with self.lock:
                        self.stats["checked"] += 1
                for what in self.leftovers(job):
                    self.fail("%s (%s, killed %s): left %s" % (job, backend, killed, what))
        self.in_parallel(worker, self.args.workers)

    @staticmethod
    def in_parallel(fn, count):
        threads = [threading.Thread(target=fn) for _ in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # Part 2: N chains started at once: unique addresses, figures unmixed, nothing left.
    def part_load(self):
        n = self.args.load
        chains = []
        for i in range(n):
            backend = BACKENDS[i % len(BACKENDS)]
            job = "c%sl%d" % (self.tag, i)
            figures = self.figures(random.Random(self.rng.random()))
            figures["count"] = 1 + i % 17
            chains.append((job, backend, figures))
        results = [None] * n
        barrier = threading.Barrier(n)

        def one(i):
            job, backend, figures = chains[i]
            barrier.wait()
            results[i] = self.episode(job, backend, figures, None, None)[1]
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.stats["load seconds"] = round(time.monotonic() - start, 1)
        # An address may be reused once its job is gone, never while two jobs run: compare the times each job
        # held it (from its started mark to its done mark, both written while its netacct holds the lease).
        held = collections.defaultdict(list)
        snap = self.snapshot()
        for (job, backend, figures), post in zip(chains, results):
            address = self.check_figures(job, backend, figures, post)
            marks = os.path.join(self.tmp, "marks", job)
            if backend != "bpf" and address:
                held[address].append((os.stat(marks + ".started").st_mtime, os.stat(marks + ".done").st_mtime, job))
            for what in self.leftovers(job, snap):
                self.fail("%s (%s, load): left %s" % (job, backend, what))
        for address, spans in held.items():
            spans.sort()
            for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
                if start < end:
                    self.fail("load: address %s held by %s and %s at once" % (address, first, second))
        self.stats["load addresses reused after their job"] = sum(len(v) - 1 for v in held.values())
        self.stats["load chains"] = n

    # Part 3: many jobs alive at once, counters and jobstat read while they run.
    def part_alive(self):
        n = self.args.alive
        procs = []
        marks = os.path.join(self.tmp, "marks")
        for i in range(n):
            job = "c%sa%d" % (self.tag, i)
            # The job marks that it runs, so TERM below goes to running jobs, not to tools still setting up.
            sleeper = ["/bin/sh", "-c", 'touch "$1" && exec /bin/sleep 3600', "sh", os.path.join(marks, job + ".running")]
            if i % 2 == 0:
                argv = ["nsenter", "--net=/run/netns/" + self.node, self.tool("netacct"), "--job", job, "--backend", BACKENDS[(i // 2) % 2], "--"] + sleeper
            else:
                argv = [self.tool("cg-exec"), "--job", job, "--", self.tool("ns-exec"), "--pid", "--"] + sleeper
            procs.append((job, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
        netacct_jobs, cg_jobs = (n + 1) // 2, n // 2
        deadline = time.time() + 120 + n
        shown = listed = 0
        while time.time() < deadline:
            show = run(["nsenter", "--net=/run/netns/" + self.node, self.tool("netacct"), "--show", "--all"])
            stat = run([self.tool("jobstat"), "--all"])
            shown = len(set(re.findall(r'c%sa\d+' % self.tag, show.stdout)))
            listed = len(set(re.findall(r'job_(c%sa\d+)' % self.tag, stat.stdout)))
            if show.returncode != 0 or stat.returncode != 0:
                self.fail("alive: --show --all status %d, jobstat --all status %d: %s %s" % (show.returncode, stat.returncode, show.stderr.strip(), stat.stderr.strip()))
                break
            self.stats["alive reads"] += 1
            if shown == netacct_jobs and listed == cg_jobs:
                break
            time.sleep(0.5)
        if shown != netacct_jobs or listed != cg_jobs:
            self.fail("alive: netacct --show --all saw %d of %d jobs, jobstat --all %d of %d" % (shown, netacct_jobs, listed, cg_jobs))
        # A TERM during set-up is the set-up signal tests' matter (cg-exec then ends by it, having run nothing).
        while time.time() < deadline and not all(os.path.exists(os.path.join(marks, job + ".running")) for job, _ in procs):
            time.sleep(0.1)
        # TERM to each tool (nsenter and cg-exec exec'd it) goes on to the job: each ends with the job's 128+15.
        for _, p in procs:
            p.terminate()
        for job, p in procs:
            _, errors = p.communicate()
            if p.returncode != 128 + signal.SIGTERM:
                self.fail("alive: %s status %d after TERM, wanted 143: %s" % (job, p.returncode, errors.strip()))
            if job.endswith(tuple("13579")):
                run([self.tool("cg-exec"), "--remove", "--job", job])
        snap = self.snapshot()
        for job, _ in procs:
            for what in self.leftovers(job, snap):
                self.fail("%s (alive): left %s" % (job, what))
        self.stats["alive jobs"] = n

    # Part 4: exhaustion: one line, the documented status, nothing half-made.
    def part_exhaust(self):
        node = ["nsenter", "--net=/run/netns/" + self.node]
        chain_tail = ["--", self.tool("ns-exec"), "--pid", "--mount", "--", "/bin/true"]
        cases = []
        # STATE_DIR on a full tmpfs.
        full = os.path.join(self.tmp, "full")
        os.makedirs(full)
        run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", self.base + "full", full], check=True)
        self.mounts.append(full)
        filler = os.path.join(full, "filler")
        run(["dd", "if=/dev/zero", "of=" + filler, "bs=4k", "count=1000"])
        fullconf = os.path.join(self.tmp, "fullconf")
        os.makedirs(fullconf, mode=0o755)
        cases.append(("STATE_DIR on a full filesystem", "c%sx1" % self.tag,
                      node + [self.tool("netacct"), "--config", self.config(fullconf, {"STATE_DIR": full}), "--job", "c%sx1" % self.tag, "--backend", "nftables"] + chain_tail[:1] + ["/bin/true"],
                      {125}, None))
        # No job address left: a subnet with one /30, held by a sleeping job.
        tiny = os.path.join(self.tmp, "tiny")
        os.makedirs(tiny, mode=0o755)
        tinyconf = self.config(tiny, {"NETWORK_JOB_SUBNET": "10.213.7.0/30"})
        holder = subprocess.Popen(node + [self.tool("netacct"), "--config", tinyconf, "--job", "c%sx0" % self.tag, "--backend", "iptables", "--", "/bin/sleep", "60"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while "c%sx0" % self.tag not in run(node + [self.tool("netacct"), "--config", tinyconf, "--show", "--all"]).stdout and time.time() < deadline:
            time.sleep(0.1)
        cases.append(("no job address left", "c%sx2" % self.tag,
                      node + [self.tool("netacct"), "--config", tinyconf, "--job", "c%sx2" % self.tag, "--backend", "iptables", "--", "/bin/true"], {125}, None))
        # pids.max reached while the tools start (each limit stops a different step).
        for k, limit in enumerate([1, 2, 3]):
            job = "c%sp%d" % (self.tag, k)
            cases.append(("pids.max %d during start" % limit, job,
                          node + [self.tool("cg-exec"), "--job", job, "--pids-max", str(limit), "--", self.tool("netacct"), "--job", job, "--backend", "nftables",
                                  "--ad-file", os.path.join(self.tmp, "ads", job + ".ad")] + chain_tail,
                          {125}, "remove"))
        # Few descriptors.
        for k, backend in enumerate(BACKENDS):
            job = "c%sf%d" % (self.tag, k)
            cases.append(("ulimit -n 10, %s" % backend, job,
                          node + [self.tool("cg-exec"), "--job", job, "--", self.tool("netacct"), "--job", job, "--backend", backend,
                                  "--ad-file", os.path.join(self.tmp, "ads", job + ".ad")] + chain_tail,
                          {0, 125}, "remove", 10))
        # memory.max hit during set-up: the kernel's OOM killer sends SIGKILL, so no line can be printed; what
        # must hold is the kill -9 guarantee (the documented clean-up leaves nothing).
        for k, backend in enumerate(BACKENDS):
            job = "c%sm%d" % (self.tag, k)
            cases.append(("memory.max 3M during set-up, %s" % backend, job,
                          node + [self.tool("cg-exec"), "--job", job, "--memory", "3M", "--swap", "0", "--", self.tool("netacct"), "--job", job, "--backend", backend,
                                  "--ad-file", os.path.join(self.tmp, "ads", job + ".ad")] + chain_tail,
                          {125, 137, -9}, "remove"))
        # A cgroup hierarchy made read-only (in a mount namespace of its own).
        job = "c%sr0" % self.tag
        script = "mount -o remount,bind,ro /sys/fs/cgroup/pids && exec \"$@\""
        cases.append(("read-only pids hierarchy", job,
                      ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", self.tool("cg-exec"), "--job", job, "--", "/bin/true"],
                      {125}, "remove"))
        for case in cases:
            self.exhaust_case(*case)
        holder.kill()
        holder.wait()
        run(node + [self.tool("netacct"), "--config", tinyconf, "--cleanup", "--stale"])
        for what in self.leftovers("c%sx0" % self.tag):
            self.fail("no address holder: left %s" % what)

    def exhaust_case(self, what, job, argv, statuses, after, nofile=None):
        def limit():
            if nofile:
                import resource
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        with self.lock:
            self.dead.add(job)
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120, preexec_fn=limit)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        line = lines[0] if lines else ""
        print("  %-36s status %3d  %s" % (what, r.returncode, line), flush=True)
        self.stats["exhaustion cases"] += 1
        if r.returncode not in statuses:
            self.fail("%s: status %d, wanted %s: %s" % (what, r.returncode, sorted(statuses), r.stderr.strip()))
        if r.returncode == 125 and (len(lines) != 1 or not re.match(r"^(cg-exec|netacct|ns-exec): ", line)):
            self.fail("%s: wanted one line naming the tool, got %r" % (what, r.stderr))
        # Nothing half-made: what may remain is the job's cgroup, which cg-exec documents as the caller's to remove.
        # A tool the kernel killed (OOM) cannot clean up: then the documented clean-up must leave nothing.
        for thing in self.leftovers(job) if r.returncode >= 0 and r.returncode != 137 else []:
            if after == "remove" and thing.startswith("cgroup ") and "/job_" in thing:
                continue
            self.fail("%s: left %s" % (what, thing))
        if after == "remove":
            self.cleanup(job)
            for thing in self.leftovers(job):
                self.fail("%s: after cg-exec --remove, left %s" % (what, thing))

    # Part 5: the node service, restarted and killed under traffic, with clients hanging mid-request.
    def part_node(self):
        if "--node" not in run([self.tool("netacct"), "--help"]).stdout:
            print("chaos: node: skipped, this netacct has no --node", flush=True)
            return
        unified = [t for t in self.cgroup_roots() if t.startswith("/sys/fs/cgroup/unified")]
        if not unified:
            print("chaos: node: skipped, no unified cgroup hierarchy", flush=True)
            return
        base = os.path.join(unified[0], self.base)
        os.makedirs(base, exist_ok=True)
        directory = os.path.join(base, "svc")
        os.mkdir(directory)
        cgroup = directory[len("/sys/fs/cgroup/unified"):]
        pins = "/sys/fs/bpf/" + self.base
        home = os.path.join(self.tmp, "svc")
        os.makedirs(home, mode=0o755)
        sock = os.path.join(home, "netacct.sock")
        conf = self.config(home, {"NETWORK_ACCOUNTING_CGROUP": cgroup, "NETACCT_PIN_DIR": pins, "NETACCT_SOCKET": sock})
        netacct = [self.tool("netacct"), "--config", conf]
        service = [None]

        def start():
            # A killed service's socket file stays until the next start replaces it: wait for an answer.
            service[0] = subprocess.Popen(netacct + ["--node"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 30
            while time.time() < deadline:
                if run(netacct + ["--show", "--cgroup", cgroup], timeout=10).returncode == 0:
                    return
                time.sleep(0.05)
            self.fail("node: the service did not answer within 30 s")
        jobs, n = [], self.args.node_jobs
        count = self.args.node_datagrams
        try:
            start()
            for i in range(n):
                name = "j%d" % i
                os.mkdir(os.path.join(directory, name))
                size, reply = self.rng.randint(10, 1400), self.rng.randint(0, 1400)
                argv = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', os.path.join(directory, name, "cgroup.procs"),
                        "nsenter", "--net=/run/netns/" + self.node, PYTHON, PEER, "client", "udp", PEER_ADDRESS, str(PORT), str(count), str(size), str(reply)]
                jobs.append((name, size, reply, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
            # Clients that send half a request and hang, holding their connections, all along.
            hanging = []
            slowest = 0.0
            while any(p.poll() is None for *_, p in jobs):
                for c in hanging:
                    c.close()
                hanging = []
                for _ in range(4):
                    c = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
                    try:
                        c.connect(sock)
                        c.send(b"cgroup /jb")
                        hanging.append(c)
                    except OSError:
                        c.close()
                for _ in range(self.rng.randint(1, 5)):
                    t = time.monotonic()
                    r = run(netacct + ["--show", "--cgroup", os.path.join(cgroup, self.rng.choice(jobs)[0])], timeout=30)
                    slowest = max(slowest, time.monotonic() - t)
                    if r.returncode != 0:
                        self.fail("node: --show --cgroup while hanging clients wait: status %d: %s" % (r.returncode, r.stderr.strip()))
                    # Not blocked: the answer came while the hanging clients still hung (the service drops them
                    # with an error line at their deadline, so a reader served only after that was held up).
                    for c in hanging:
                        try:
                            if c.recv(4096, sockets.MSG_DONTWAIT):
                                self.fail("node: a reader was answered only after a hanging client's deadline")
                                break
                        except BlockingIOError:
                            pass
                    self.stats["node reads"] += 1
                time.sleep(self.rng.uniform(0, 1.0))
                if self.rng.random() < 0.5:
                    service[0].kill()
                    self.stats["node kill -9"] += 1
                else:
                    service[0].terminate()
                    self.stats["node TERM restarts"] += 1
                service[0].wait()
                service[0] = None
                start()
                if any(p.poll() is None for *_, p in jobs):
                    self.stats["node restarts under traffic"] += 1
            for c in hanging:
                c.close()
            self.stats["node slowest read ms"] = round(slowest * 1000)
            if not self.stats["node restarts under traffic"]:
                self.fail("node: the traffic ended before any restart; raise --node-datagrams")
            for name, size, reply, p in jobs:
                out, err = p.communicate()
                if p.returncode != 0:
                    self.fail("node: job %s status %d: %s" % (name, p.returncode, err.strip()))
                    continue
                shown = run(netacct + ["--show", "--cgroup", os.path.join(cgroup, name)])
                got = ad(shown.stdout)
                for key, want in (("NetworkOutgoing", count * (size + 28)), ("NetworkIncoming", count * (reply + 28))):
                    if got.get(key) != want:
                        self.fail("node: %s %s = %s, wanted %d (restarts and kills lost or added counts)" % (name, key, got.get(key), want))
            self.stats["node jobs"] = n
        finally:
            for *_, p in jobs:
                if p.poll() is None:
                    p.kill()
                p.wait()
            if service[0]:
                service[0].terminate()
                service[0].wait()
            r = run(netacct + ["--cleanup", "--stale"])
            if r.returncode != 0:
                self.fail("node: --cleanup --stale status %d: %s" % (r.returncode, r.stderr.strip()))
            tree = json.loads(run(["bpftool", "-j", "cgroup", "tree", directory]).stdout or "[]")
            for entry in tree:
                if entry.get("programs"):
                    self.fail("node: after --cleanup --stale, programs attached to %s" % entry.get("cgroup"))
            for leftover in (pins, sock):
                if os.path.exists(leftover):
                    self.fail("node: after --cleanup --stale, %s is left" % leftover)
            for name in os.listdir(directory):
                if os.path.isdir(os.path.join(directory, name)):
                    os.rmdir(os.path.join(directory, name))
            os.rmdir(directory)

    # After every part: nothing of the suite is left anywhere.
    def final_check(self):
        found = []
        for top in self.cgroup_roots():
            base = os.path.join(top, self.base)
            for inner, dirs, _ in os.walk(base):
                if inner != base:
                    found.append("cgroup " + inner)
            for name in os.listdir(top):
                if name.startswith("netacct_c" + self.tag):
                    found.append("cgroup %s/%s" % (top, name))
        unified = [t for t in self.cgroup_roots() if "/unified" in t]
        for top in unified:
            base = os.path.join(top, self.base)
            if os.path.isdir(base):
                tree = json.loads(run(["bpftool", "-j", "cgroup", "tree", base]).stdout or "[]")
                found += ["BPF programs attached to %s: %s" % (entry.get("cgroup"), entry.get("programs")) for entry in tree if entry.get("programs")]
        links = [line for line in run(["ip", "-n", self.node, "-o", "link"]).stdout.splitlines() if "jb_" in line]
        found += ["link " + line.split(":")[1].strip() for line in links]
        ipt = run(["ip", "netns", "exec", self.node, "iptables-legacy-save"]).stdout
        found += ["iptables " + line for line in ipt.splitlines() if "JOB_" in line or "jb_" in line]
        # The shared table `inet jobbox` goes with the last job (README), so an empty node has none.
        nft = run(["ip", "netns", "exec", self.node, "nft", "list", "ruleset"]).stdout
        found += ["nftables " + line.strip() for line in nft.splitlines() if "jobbox" in line or "JOB_" in line]
        for top, _, files in os.walk(self.state):
            found += ["state file %s/%s" % (top, f) for f in files if f.endswith(".lease") or f.startswith("slot.")]
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if (self.tmp in fields[4] and fields[4] not in self.mounts) or ("/run/netns/jbc" + self.tag in fields[4] and
                                                                                  fields[4] not in ("/run/netns/" + self.node, "/run/netns/" + self.peer)):
                    found.append("mount " + fields[4])
        netns = [n for n in run(["ip", "netns", "list"]).stdout.split() if n.startswith(self.base) and n not in (self.node, self.peer)]
        found += ["netns " + n for n in netns]
        found += self.processes_described(self.tmp, self.snapshot())
        for what in found:
            self.fail("after the run: left %s" % what)
        return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--chains", type=int, default=45)
    ap.add_argument("--kill-ratio", type=float, default=0.75)
    ap.add_argument("--load", type=int, default=24)
    ap.add_argument("--alive", type=int, default=60)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--backends", default=",".join(BACKENDS), help="netacct back ends of the kill part, in turn")
    ap.add_argument("--node-jobs", type=int, default=4)
    ap.add_argument("--node-datagrams", type=int, default=20000)
    ap.add_argument("--parts", default="kill,load,alive,exhaust,node")
    ap.add_argument("--report", default="")
    ap.add_argument("--skip-unless-root", action="store_true", help="exit 0 saying why when not root (make check as a user)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        if args.skip_unless_root:
            print("chaos: skipped, not root (it makes cgroups, namespaces, links and firewall rules)")
            return
        sys.exit("chaos: run as root (it makes cgroups, namespaces, links and firewall rules)")
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "little")
    print("chaos: seed %d (replay: --seed %d --chains %d --kill-ratio %s --load %d --alive %d --workers %d --parts %s)"
          % (args.seed, args.seed, args.chains, args.kill_ratio, args.load, args.alive, args.workers, args.parts), flush=True)
    suite = Suite(args)

    def stop(signum, _frame):
        raise SystemExit(128 + signum)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, stop)
    start = time.monotonic()
    try:
        suite.setup()
        for part in [p for p in args.parts.split(",") if p]:
            t = time.monotonic()
            print("chaos: %s" % part, flush=True)
            getattr(suite, "part_" + part)()
            suite.stats[part + " seconds"] = round(time.monotonic() - t, 1)
        suite.final_check()
    finally:
        suite.close()
    elapsed = time.monotonic() - start
    report = {"seed": args.seed, "seconds": round(elapsed, 1), "stats": dict(suite.stats),
              "kills": {"%s %s %s" % k: v for k, v in sorted(suite.kills.items())}, "failures": suite.failures}
    by_tool, by_phase = collections.Counter(), collections.Counter()
    for (backend, tool, phase), v in suite.kills.items():
        by_tool[tool] += v
        by_phase[phase] += v
    report["kills by tool"], report["kills by phase"] = dict(by_tool), dict(by_phase)
    print(json.dumps(report, indent=1), flush=True)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(dict(report, events=suite.events), f, indent=1)
    print("chaos: %s, seed %d, %.0f s, %d failures" % ("PASS" if not suite.failures else "FAIL", args.seed, elapsed, len(suite.failures)), flush=True)
    sys.exit(1 if suite.failures else 0)


if __name__ == "__main__":
    main()
