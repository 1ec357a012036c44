"""A stand-in for the starter's chirp proxy: accepts connections on loopback one after another, answers every
request line with "0", and records the exact bytes each connection sent.

usage: recording_listener.py [--append] [--bind ADDRESS] [--silent] CONFIG_FILE RECORD_FILE
Writes "127.0.0.1 <port> jobbox-test-cookie" (or ADDRESS) to CONFIG_FILE once listening (the
$_CONDOR_CHIRP_CONFIG format). With --silent it never accepts a connection: the kernel completes the handshake
and queues what the client sends, and no answer ever comes (a proxy that hangs).
When a connection closes, its bytes replace RECORD_FILE (htchirp connects once to test the cookie, then again
for the requests, so the file ends up holding the last connection's); with --append they are added to it
instead (several tools may chirp during one job). Runs until killed or idle for 120 s.
"""
import os
import socket
import sys
import time

args = sys.argv[1:]
append = False
silent = False
address = "127.0.0.1"
while args and args[0].startswith("--"):
    option = args.pop(0)
    if option == "--append":
        append = True
    elif option == "--silent":
        silent = True
    elif option == "--bind":
        address = args.pop(0)
config_file, record_file = args
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind((address, 0))
server.listen(4)
server.settimeout(120)
tmp = config_file + ".tmp"
with open(tmp, "w") as f:
    f.write("%s %d jobbox-test-cookie\n" % (address, server.getsockname()[1]))
os.rename(tmp, config_file)
if silent:
    time.sleep(600)
    sys.exit(0)
while True:
    try:
        conn, _ = server.accept()
    except socket.timeout:
        break
    conn.settimeout(60)
    received = b""
    buffered = b""
    try:
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                break
            received += chunk
            buffered += chunk
            while b"\n" in buffered:
                _, buffered = buffered.split(b"\n", 1)
                conn.sendall(b"0\n")
    except OSError:
        pass
    conn.close()
    if append:
        with open(record_file, "ab") as f:
            f.write(received)
    else:
        with open(record_file + ".tmp", "wb") as f:
            f.write(received)
        os.rename(record_file + ".tmp", record_file)
