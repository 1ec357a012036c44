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


def rollup(pid):
    values = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                values[parts[0].rstrip(":")] = int(parts[1])
    return values


def bpf_setup(b, sh, tag):
    """7. Set-up plus teardown of one job's accounting: bpf against nftables-veth and iptables-veth, as the number
    of jobs already running grows; all three back ends in one table per count (ratios in one run)."""
    counts = [1, 10, 50] if b.quick else [1, 10, 100, 500]
    node = tag + "nbpf"
    sh("ip netns add %s" % node)
    b.cleanups.append(lambda: sh("ip netns del %s" % node, check=False))
    innode = ["/usr/bin/nsenter", "--net=/run/netns/" + node]
    backends = ["bpf", "nftables", "iptables"]
    running = {k: [] for k in backends}
    def stop():
        for procs in running.values():
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait()
    b.cleanups.append(stop)
    for n in counts:
        for backend in backends:
            while len(running[backend]) < n - 1:
                i = len(running[backend])
                running[backend].append(subprocess.Popen(
                    innode + [b.tool("netacct"), "--job", "%sbg%s%d" % (tag, backend[:2], i), "--backend", backend, "--", "/bin/sleep", "3600"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5 + n / 100)
        variants = [Variant("netacct set-up + teardown, %s, %d jobs" % (backend, n),
                            [innode + [b.tool("netacct"), "--job", "%sprobe%s" % (tag, backend[:2]), "--backend", backend, "--", "/bin/true"]])
                    for backend in backends]
        variants.append(Variant("/bin/true alone", [innode + ["/bin/true"]]))
        result = compare("7. set-up + teardown per job, bpf against the veth back ends, %d jobs running (target: bpf at least 20x faster than nftables-veth, flat in N)" % n,
                         variants, max(10, b.runs // 10), 2)
        b.add(result, notes=[net_of_job(result["rows"])])


def net_of_job(rows):
    """The cost of set-up plus teardown alone: each back end's median less that of running the job without netacct
    (the last row), and the veth back ends' against bpf's on that footing."""
    job = rows[-1]["median_ms"]
    net = [(row["label"].split(", ")[1], row["median_ms"] - job) for row in rows[:-1]]
    bpf = net[0][1]
    parts = ["%s %.3f ms%s" % (name, cost, "" if i == 0 or bpf <= 0 else " (%.1fx bpf's)" % (cost / bpf)) for i, (name, cost) in enumerate(net)]
    return "Set-up + teardown alone (median less `/bin/true alone`, which is the same job started by `nsenter` without netacct): " + ", ".join(parts) + "."


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
                variants, 5 if b.quick else 20, 1)
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
    state = os.path.join(b.tmp, "node")
    os.makedirs(state)
    conf = os.path.join(b.tmp, "node.conf")
    pins = "/sys/fs/bpf/" + tag + "node"
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
