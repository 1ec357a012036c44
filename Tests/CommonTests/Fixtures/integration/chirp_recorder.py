"""A stand-in for the starter's chirp proxy that keeps everything: accepts connections on loopback one after
another, answers every request line with "0", and appends each connection's bytes to RECORD_FILE when it closes
(several tools may chirp during one job; the fixture in ../chirp keeps only the last connection).

usage: chirp_recorder.py CONFIG_FILE RECORD_FILE
Writes "127.0.0.1 <port> <cookie>" to CONFIG_FILE once listening (the $_CONDOR_CHIRP_CONFIG format). Runs until
killed or idle for 120 s.
"""
import os
import socket
import sys

config_file, record_file = sys.argv[1], sys.argv[2]
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind(("127.0.0.1", 0))
server.listen(4)
server.settimeout(120)
tmp = config_file + ".tmp"
with open(tmp, "w") as f:
    f.write("127.0.0.1 %d jobbox-integration-cookie\n" % server.getsockname()[1])
os.rename(tmp, config_file)
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
    with open(record_file, "ab") as f:
        f.write(received)
