#!/usr/bin/python3
"""Traffic for netacct's kernel tests: a server on the campus/internet hosts, a client inside the job.

serve DIR PORT: UDP and TCP on PORT. A UDP request's first 6 bytes are b"R" and the reply size in 5 digits;
the reply is that many bytes. A TCP connection sends 16 bytes (upload and download sizes, 8 digits each),
then the upload; the server reads it all and sends the download, then closes. Every datagram and connection
is logged to DIR/log; DIR/ready appears once both sockets listen.

client ACTION...: runs the actions in order and prints one line per action.
  udp HOST PORT COUNT SIZE REPLY   COUNT datagrams of SIZE bytes, each answered by REPLY bytes
  tcp HOST PORT UP DOWN            one connection: UP bytes sent, DOWN bytes received
  refused HOST PORT                a TCP connect that must fail (prints the error)
  address                          prints the job's own address (source address towards 192.0.2.1)
  pidfile FILE                     writes the job's pid and netacct's pid (its parent) to FILE
  wait FILE                        waits until FILE exists
  send HOST PORT COUNT SIZE        COUNT datagrams of SIZE bytes, no reply awaited; prints how many the
                                   kernel refused (EPERM: dropped by netacct's bpf program)
  netns FILE                       writes the job's network namespace (/proc/self/ns/net) to FILE
An address with a colon is IPv6; the server listens on both families.
"""
import os, socket, sys, threading, time


def serve(directory, port):
    log = open(os.path.join(directory, "log"), "a", buffering=1)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", port))
    udp6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    udp6.bind(("::", port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", port))
    tcp.listen(64)

    def udp_loop(udp):
        while True:
            data, peer = udp.recvfrom(65535)
            log.write("udp %s %d\n" % (peer[0], len(data)))
            size = int(data[1:6]) if data[:1] == b"R" else 0
            udp.sendto(b"r" * size, peer)

    def tcp_one(conn, peer):
        with conn:
            header = b""
            while len(header) < 16:
                chunk = conn.recv(16 - len(header))
                if not chunk:
                    return
                header += chunk
            up, down = int(header[:8]), int(header[8:])
            got = 0
            while got < up:
                chunk = conn.recv(min(1 << 16, up - got))
                if not chunk:
                    return
                got += len(chunk)
            log.write("tcp %s %d\n" % (peer[0], got))
            block = b"d" * (1 << 16)
            sent = 0
            while sent < down:
                sent += conn.send(block[: min(len(block), down - sent)])

    threading.Thread(target=udp_loop, args=(udp,), daemon=True).start()
    threading.Thread(target=udp_loop, args=(udp6,), daemon=True).start()
    open(os.path.join(directory, "ready"), "w").close()
    while True:
        conn, peer = tcp.accept()
        threading.Thread(target=tcp_one, args=(conn, peer), daemon=True).start()


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def client(actions):
    i = 0
    while i < len(actions):
        kind = actions[i]
        if kind == "udp":
            host, port, count, size, reply = actions[i + 1], int(actions[i + 2]), int(actions[i + 3]), int(actions[i + 4]), int(actions[i + 5])
            i += 6
            s = socket.socket(family(host), socket.SOCK_DGRAM)
            s.settimeout(10)
            s.connect((host, port))
            payload = (b"R%05d" % reply).ljust(size, b"u")
            for _ in range(count):
                s.send(payload)
                data = s.recv(65535)
                if len(data) != reply:
                    sys.exit("udp %s: reply of %d bytes, wanted %d" % (host, len(data), reply))
            print("udp %s ok %d" % (host, count), flush=True)
        elif kind == "tcp":
            host, port, up, down = actions[i + 1], int(actions[i + 2]), int(actions[i + 3]), int(actions[i + 4])
            i += 5
            s = socket.create_connection((host, port), timeout=60)
            s.sendall(b"%08d%08d" % (up, down))
            block = b"u" * (1 << 16)
            sent = 0
            while sent < up:
                n = min(len(block), up - sent)
                s.sendall(block[:n])
                sent += n
            got = 0
            while got < down:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                got += len(chunk)
            s.close()
            if got != down:
                sys.exit("tcp %s: received %d bytes, wanted %d" % (host, got, down))
            print("tcp %s ok %d %d" % (host, up, down), flush=True)
        elif kind == "refused":
            host, port = actions[i + 1], int(actions[i + 2])
            i += 3
            try:
                socket.create_connection((host, port), timeout=10).close()
                print("refused %s connected" % host, flush=True)
            except OSError as error:
                print("refused %s failed %s" % (host, error.__class__.__name__), flush=True)
        elif kind == "address":
            i += 1
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect(("192.0.2.1", 9))
            print("address %s" % s.getsockname()[0], flush=True)
        elif kind == "pidfile":
            path = actions[i + 1]
            i += 2
            with open(path + ".tmp", "w") as f:
                f.write("%d %d\n" % (os.getpid(), os.getppid()))
            os.rename(path + ".tmp", path)
        elif kind == "wait":
            path = actions[i + 1]
            i += 2
            while not os.path.exists(path):
                time.sleep(0.05)
        elif kind == "send":
            host, port, count, size = actions[i + 1], int(actions[i + 2]), int(actions[i + 3]), int(actions[i + 4])
            i += 5
            s = socket.socket(family(host), socket.SOCK_DGRAM)
            refused = 0
            for _ in range(count):
                try:
                    s.sendto(b"s" * size, (host, port))
                except PermissionError:
                    refused += 1
            print("send %s refused %d" % (host, refused), flush=True)
        elif kind == "spread":
            # One datagram and its reply from each of N new cgroups below this process's own (cgroup v2): a
            # socket counts for the cgroup it was made in. Back in its own cgroup at the end, the N removed.
            n, host, port, size, reply = int(actions[i + 1]), actions[i + 2], int(actions[i + 3]), int(actions[i + 4]), int(actions[i + 5])
            i += 6
            mount = next(line.split()[1] for line in open("/proc/self/mounts") if line.split()[2] == "cgroup2")
            own = mount + next(line.strip()[3:] for line in open("/proc/self/cgroup") if line.startswith("0::"))
            made = []
            try:
                for k in range(n):
                    child = os.path.join(own, "spread%d" % k)
                    os.mkdir(child)
                    made.append(child)
                    with open(os.path.join(child, "cgroup.procs"), "w") as f:
                        f.write(str(os.getpid()))
                    s = socket.socket(family(host), socket.SOCK_DGRAM)
                    s.settimeout(10)
                    s.connect((host, port))
                    s.send((b"R%05d" % reply).ljust(size, b"u"))
                    if len(s.recv(65535)) != reply:
                        sys.exit("spread %s: a reply of the wrong size" % host)
                    s.close()
            finally:
                with open(os.path.join(own, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
                for child in made:
                    os.rmdir(child)
            print("spread %s ok %d" % (host, n), flush=True)
        elif kind == "netns":
            path = actions[i + 1]
            i += 2
            with open(path + ".tmp", "w") as f:
                f.write(os.readlink("/proc/self/ns/net"))
            os.rename(path + ".tmp", path)
        elif kind == "exit":
            sys.exit(int(actions[i + 1]))
        else:
            sys.exit("unknown action %s" % kind)


if __name__ == "__main__":
    # The test runner starts many processes at once, and a child may inherit the write end of another test's
    # output pipe; holding it would keep that test waiting for EOF. Keep only stdin, stdout and stderr.
    os.closerange(3, 65536)
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        client(sys.argv[2:])
