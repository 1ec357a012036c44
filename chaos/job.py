#!/usr/bin/python3
"""The job the chaos suite runs at the end of each chain: memory, file I/O and a known UDP exchange.

usage: job.py MARKS MEM_MIB IO_KIB HOST PORT COUNT SIZE REPLY STATUS
Writes MARKS.started when it begins and MARKS.done when it ends (the suite's phase of a kill), touches MEM_MIB MiB,
writes and reads back IO_KIB KiB in /tmp (the scratch dir), sends COUNT datagrams of SIZE bytes to HOST:PORT
(the peer answers each with REPLY bytes: Tests/Fixtures/netacct/peer.py), prints its own address and exits
STATUS. A datagram without a reply exits 1 with the job's links, routes and ARP table on stderr.
"""
import os
import socket
import sys


def mark(path):
    with open(path + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(path + ".tmp", path)


def main(marks, mem_mib, io_kib, host, port, count, size, reply, status):
    mark(marks + ".started")
    block = bytearray(mem_mib << 20)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    data = os.urandom(1024) * io_kib
    path = "/tmp/chaos.%d" % os.getpid()
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    with open(path, "rb") as f:
        if f.read() != data:
            sys.exit("job: /tmp read back differs")
    os.unlink(path)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(20)
    s.connect((host, port))
    payload = (b"R%05d" % reply).ljust(size, b"u")
    for sent in range(count):
        s.send(payload)
        try:
            if len(s.recv(65535)) != reply:
                sys.exit("job: short reply")
        except socket.timeout:
            # What the suite needs to tell a lost datagram from a missing network: the job's links, routes, ARP.
            report = ["job: no reply to datagram %d of %d from %s within 20 s" % (sent + 1, count, s.getsockname()[0])]
            for table in ("/proc/net/dev", "/proc/net/route", "/proc/net/arp"):
                with open(table) as f:
                    report.append(table + ":\n" + f.read())
            sys.exit("\n".join(report))
    print("address %s" % s.getsockname()[0], flush=True)
    del block
    mark(marks + ".done")
    sys.exit(status)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], int(a[1]), int(a[2]), a[3], int(a[4]), int(a[5]), int(a[6]), int(a[7]), int(a[8]))
