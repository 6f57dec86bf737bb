"""`nas coordinator` out of file descriptors (issue 16 item 2).

Starts NAS coordinator under `ulimit -n 64`, opens 100 connections that never speak, and prints the coordinator's
CPU use over 5 s: a listener that spins on EMFILE shows it. Extra arguments go to the coordinator (pass
`--handshake-timeout-seconds 1000` to a build that has the flag, so the silent connections stay open meanwhile).

Usage: python3 out_of_descriptors.py NAS PORT [coordinator flags...]
"""
import os
import socket
import subprocess
import sys
import time


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    nas, port, extra = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    command = f'ulimit -n 64 && exec "$0" coordinator --listen 127.0.0.1:{port} ' + " ".join(extra)
    coordinator = subprocess.Popen(["/bin/sh", "-c", command, nas], env={**os.environ, "NAS_FLEET_TOKEN": "bench"},
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    coordinator.stdout.readline()
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
    time.sleep(1)
    start_cpu, start = cpu_seconds(coordinator.pid), time.time()
    time.sleep(5)
    used, elapsed = cpu_seconds(coordinator.pid) - start_cpu, time.time() - start
    print(f"coordinator CPU over {elapsed:.1f} s with {len(silent)} silent connections at ulimit -n 64: "
          f"{100 * used / elapsed:.0f}%")
    coordinator.kill()
    coordinator.wait()


if __name__ == "__main__":
    main()
