"""netacct's cgroup BPF back ends in bench/run.py: set-up plus teardown per job against the veth back ends, TCP
throughput between two namespaces, and the node service's memory with many jobs. Everything is made below the
benchmark's own cgroups and in network namespaces it makes, named after its TAG, and removed by its clean-ups."""
import json
import os
import socket
import subprocess
import time

from driver import Variant, compare

PEER = r'''
import socket, sys
role, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if role == "serve":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((address, port)); s.listen(8)
    open(sys.argv[4], "w").close()
    while True:
        c, _ = s.accept()
        while c.recv(1 << 20):
            pass
        c.close()
else:
    total = int(sys.argv[4]); block = b"x" * (1 << 20)
    c = socket.create_connection((address, port))
    while total > 0:
        c.sendall(block[:min(total, len(block))]); total -= len(block)
    c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
'''

# Moves itself into each cgroup in turn and sends one datagram from a socket made there (a socket belongs to the
# cgroup it was made in), so that every cgroup has an entry in the node service's map.
SPRAY = r'''
import socket, sys
address, cgroups = sys.argv[1], sys.argv[2:]
for path in cgroups:
    with open(path + "/cgroup.procs", "w") as f:
        f.write("0\n")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x" * 100, (address, 9)); s.close()
'''


def unified_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            if fields[dash + 1] == "cgroup2":
                return fields[4]
    return None


def own_unified(mount):
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                path = line[3:].strip()
                return mount.rstrip("/") + ("" if path == "/" else path)
    return mount


def tmpfs_state(b, sh, name):
    """A state directory on a tmpfs of its own, as `/run` is on a systemd node (this VM's `/run` is on its ext4 root,
    which flushes a file renamed over another: netacct's leases); unmounted at the end."""
    path = os.path.join(b.tmp, name)
    os.makedirs(path)
    sh("mount -t tmpfs -o mode=0755,size=64m jobbox-bench %s" % path)
    b.cleanups.append(lambda: sh("umount %s" % path, check=False))
    return path


def rollup(pid):
    values = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                values[parts[0].rstrip(":")] = int(parts[1])
    return values


def bpf_setup(b, sh, tag):
    """7. Set-up plus teardown of one job's accounting as the number of jobs already running grows: bpf counted by
    the node service's programs (nothing loaded or attached per job), bpf with programs of its own, nftables-veth
    and iptables-veth, in one table per count (ratios in one run). A node service counts a cgroup made for the
    benchmark, and the benchmark moves itself into a cgroup below it (unified hierarchy only, which has no
    controllers here), so that the jobs' cgroups are below the service's; it moves back at the end. Every run's
    STATE_DIR is a tmpfs, as `/run` is on a node."""
    mount = unified_mount()
    if mount is None:
        print("7. bpf set-up: no cgroup2 mount, skipped", flush=True)
        return
    original = own_unified(mount)
    top = original + "/" + tag + "acct"
    leaf = top + "/bench"
    os.makedirs(leaf)
    def leave():
        with open(original + "/cgroup.procs", "w") as f:
            f.write("%d\n" % os.getpid())
        for inner in (leaf, top):
            try:
                os.rmdir(inner)
            except OSError:
                pass
    b.cleanups.append(leave)
    conf, _, _, stop_service = start_node_service(b, sh, tag, "setup", top[len(mount.rstrip("/")):])
    node = tag + "nbpf"
    sh("ip netns add %s" % node)
    b.cleanups.append(lambda: sh("ip netns del %s" % node, check=False))
    innode = ["/usr/bin/nsenter", "--net=/run/netns/" + node]
    with open(leaf + "/cgroup.procs", "w") as f:
        f.write("%d\n" % os.getpid())
    netacct = innode + [b.tool("netacct"), "--config", conf]
    # Said, not assumed: a plain bpf job is counted by the service's programs, one with --deny-external by its own.
    for extra, expected in (([], "counted by the node service"), (["--deny-external"], "loading the job's own programs")):
        said = sh(" ".join(netacct + ["--verbose", "--job", tag + "check", "--backend", "bpf"] + extra + ["--", "/bin/true"]) + " 2>&1").stdout
        if expected not in said:
            raise RuntimeError("7: expected %r, netacct said: %s" % (expected, said))
    kinds = [("bpf counted by the node service", ["--backend", "bpf"]),
             ("bpf with its own programs (--deny-external)", ["--backend", "bpf", "--deny-external"]),
             ("nftables", ["--backend", "nftables"]),
             ("iptables", ["--backend", "iptables"])]
    counts = [1, 10, 50] if b.quick else [1, 10, 100, 500]
    running = {name: [] for name, _ in kinds}
    def stop():
        for procs in running.values():
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait()
    b.cleanups.append(stop)
    for n in counts:
        # n - 1 jobs of each kind already running, so that each table has n of the probe's kind.
        for k, (name, options) in enumerate(kinds):
            while len(running[name]) < n - 1:
                i = len(running[name])
                running[name].append(subprocess.Popen(
                    netacct + ["--job", "%sbg%d_%d" % (tag, k, i)] + options + ["--", "/bin/sleep", "3600"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5 + n / 50)
        variants = [Variant("netacct set-up + teardown, %s, %d jobs" % (name, n), [netacct + ["--job", "%sprobe%d" % (tag, k)] + options + ["--", "/bin/true"]])
                    for k, (name, options) in enumerate(kinds)]
        variants.append(Variant("/bin/true alone", [innode + ["/bin/true"]]))
        result = compare("7. set-up + teardown per job, bpf against the veth back ends, %d jobs of each running (target: bpf at least 20x faster than nftables-veth, flat in N)" % n,
                         variants, max(40, b.runs // 5), 2)
        b.add(result, notes=[net_of_job(result["rows"])])
    stop()
    stop_service()
    leave()


def net_of_job(rows):
    """The cost of set-up plus teardown alone: each back end's median less that of running the job without netacct
    (the last row); and nftables-veth's against each bpf variant's (the rows whose name starts with bpf) on that
    footing."""
    job = rows[-1]["median_ms"]
    net = [(row["label"].split(", ")[1], row["median_ms"] - job) for row in rows[:-1]]
    costs = ", ".join("%s %.3f ms" % (name, cost) for name, cost in net)
    nftables = dict(net).get("nftables")
    ratios = ["%.1fx (%s)" % (nftables / cost, name) for name, cost in net if name.startswith("bpf") and cost > 0 and nftables is not None]
    return ("Set-up + teardown alone (median less `/bin/true alone`, which is the same job started by `nsenter` without netacct): "
            + costs + ". nftables-veth against bpf on that footing: " + ", ".join(ratios) + ".")


def start_node_service(b, sh, tag, name, cgroup_path):
    """Starts `netacct --node` on CGROUP_PATH (of the unified hierarchy) with a configuration, state, socket and pin
    directory of its own, named after TAG and NAME; registers its stop and clean-up (which a scenario may also call
    when it is done: they can run twice); returns (configuration, socket, process, stop) once the socket is
    there."""
    state = tmpfs_state(b, sh, name)
    conf = os.path.join(b.tmp, name + ".conf")
    pins = "/sys/fs/bpf/" + tag + name
    sock = os.path.join(state, "run", "netacct.sock")
    with open(conf, "w") as f:
        f.write("STATE_DIR = %s\nNETWORK_ACCOUNTING_CGROUP = %s\nNETACCT_PIN_DIR = %s\nNETACCT_SOCKET = %s\nNETWORK_INTERNAL = 10.0.0.0/8\n"
                % (state, cgroup_path, pins, sock))
    service = subprocess.Popen([b.tool("netacct"), "--config", conf, "--node"], stderr=subprocess.DEVNULL)
    def stop():
        service.terminate()
        service.wait()
        sh("%s --config %s --cleanup --stale" % (b.tool("netacct"), conf), check=False)
    b.cleanups.append(stop)
    for _ in range(100):
        if os.path.exists(sock):
            break
        time.sleep(0.1)
    return conf, sock, service, stop


def tcp_throughput(b, sh, tag):
    """8. TCP throughput between two namespaces: no accounting, bpf, nftables-veth (target: bpf within 5% of none)."""
    size = (256 if b.quick else 1024) << 20
    client, server = tag + "tc", tag + "ts"
    for ns in (client, server):
        sh("ip netns add %s" % ns)
        b.cleanups.append(lambda ns=ns: sh("ip netns del %s" % ns, check=False))
        sh("ip -n %s link set lo up" % ns)
    sh("ip -n %s link add %sa type veth peer name %sb netns %s" % (client, tag, tag, server))
    sh("ip -n %s addr add 192.0.2.1/24 dev %sa && ip -n %s link set %sa up" % (client, tag, client, tag))
    sh("ip -n %s addr add 192.0.2.2/24 dev %sb && ip -n %s link set %sb up" % (server, tag, server, tag))
    peer = os.path.join(b.tmp, "peer.py")
    with open(peer, "w") as f:
        f.write(PEER)
    ready = os.path.join(b.tmp, "tcp-ready")
    srv = subprocess.Popen(["ip", "netns", "exec", server, "python3", peer, "serve", "192.0.2.2", "7100", ready])
    b.cleanups.append(lambda: (srv.kill(), srv.wait()))
    for _ in range(100):
        if os.path.exists(ready):
            break
        time.sleep(0.1)
    inclient = ["/usr/bin/nsenter", "--net=/run/netns/" + client]
    send = ["/usr/bin/python3", peer, "send", "192.0.2.2", "7100", str(size)]
    variants = [
        Variant("no accounting", [inclient + send]),
        Variant("netacct --backend bpf", [inclient + [b.tool("netacct"), "--job", tag + "tcpbpf", "--backend", "bpf", "--internal", "192.0.2.0/24", "--"] + send]),
        Variant("netacct --backend nftables (veth)", [inclient + [b.tool("netacct"), "--job", tag + "tcpnft", "--backend", "nftables", "--internal", "192.0.2.0/24", "--"] + send]),
    ]
    r = compare("8. TCP, %d MiB from one namespace to another over a veth: wall clock of the transfer, set-up included (target: bpf within 5%% of none)" % (size >> 20),
                variants, 5 if b.quick else 60, 2)
    for row in r["rows"]:
        row["label"] += " (%.0f MiB/s)" % ((size >> 20) / (row["median_ms"] / 1000))
    b.add(r, ["Each run includes the back end's set-up and teardown (bpf: a few ms; nftables-veth: tens of ms), so the ratio is an upper bound on the per-packet cost."])


def node_memory(b, sh, tag):
    """9. The node service's memory with N job cgroups (each with an entry in its map)."""
    jobs = 100 if b.quick else 500
    mount = unified_mount()
    if mount is None:
        print("9. node service: no cgroup2 mount, skipped", flush=True)
        return
    top = own_unified(mount) + "/" + tag + "node"
    cgroup_path = top[len(mount.rstrip("/")):]
    os.mkdir(top)
    def remove_tree():
        for inner, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            try:
                os.rmdir(inner)
            except OSError:
                pass
    b.cleanups.append(remove_tree)
    ns = tag + "nm"
    sh("ip netns add %s" % ns)
    b.cleanups.append(lambda: sh("ip netns del %s" % ns, check=False))
    sh("ip -n %s link set lo up && ip -n %s addr add 10.99.0.1/32 dev lo" % (ns, ns))
    conf, sock, service, _ = start_node_service(b, sh, tag, "node", cgroup_path)
    pins = "/sys/fs/bpf/" + tag + "node"
    idle = rollup(service.pid)
    dirs = []
    for i in range(jobs):
        job = "%s/job_%d" % (top, i)
        os.makedirs(job + "/main")
        dirs.append(job + "/main")
    spray = os.path.join(b.tmp, "spray.py")
    with open(spray, "w") as f:
        f.write(SPRAY)
    sh("nsenter --net=/run/netns/%s python3 %s 10.99.0.1 %s" % (ns, spray, " ".join(dirs)))
    # Every job's figure through the socket, as a job's wrapper would ask: one connection each.
    started = time.perf_counter()
    for i in range(jobs):
        c = socket.socket(socket.AF_UNIX)
        c.connect(sock)
        c.sendall(("cgroup %s/job_%d\n" % (cgroup_path, i)).encode())
        while c.recv(65536):
            pass
        c.close()
    per_request = (time.perf_counter() - started) / jobs * 1000
    c = socket.socket(socket.AF_UNIX)
    c.connect(sock)
    c.sendall(b"all\n")
    answer = b""
    while True:
        chunk = c.recv(1 << 20)
        if not chunk:
            break
        answer += chunk
    c.close()
    busy = rollup(service.pid)
    try:
        memlock = "%d KiB" % (json.loads(sh("bpftool -j map show pinned %s/counters" % pins).stdout)["bytes_memlock"] // 1024)
    except (ValueError, KeyError, subprocess.CalledProcessError):
        memlock = "?"
    lines = ["| netacct --node | idle | with %d jobs (each cgroup with an entry), after %d requests and one `all` |" % (jobs, jobs), "|---|---|---|"]
    for key in ["Rss", "Pss", "Private_Dirty"]:
        lines.append("| %s KiB | %s | %s |" % (key, idle.get(key), busy.get(key)))
    lines.append("| counters map (kernel, memlock) | %s | %s |" % (memlock, memlock))
    lines.append("")
    lines.append("One request answered in %.2f ms on average (connect, request, answer, close; Python client); `all` is %d bytes for %d cgroups."
                 % (per_request, len(answer), answer.count(b"JobboxNetworkCgroup")))
    b.node_memory_table = "\n".join(lines)
    b.results.append({"title": "9. node service memory", "rows": [], "idle": idle, "busy": busy, "jobs": jobs, "request_ms": per_request, "memlock": memlock})
    print(b.node_memory_table, flush=True)
