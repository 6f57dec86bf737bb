"""Request-body memory of `nas coordinator` under unfinished streams (issue 16 item 2).

Starts `NAS coordinator`, opens one HTTP/2 connection (python h2), starts STREAMS Evaluate requests and sends
MB megabytes of body on each without ever ending them, then prints the coordinator's resident memory before and
after, and how many streams the coordinator refused (503) instead of buffering.

Usage: python unfinished_streams.py NAS [STREAMS=16] [MB=60] [extra coordinator flags...]
"""
import os
import socket
import subprocess
import sys
import time

import h2.config
import h2.connection
import h2.events


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main():
    nas = sys.argv[1]
    streams = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    megabytes = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    extra = sys.argv[4:]
    coordinator = subprocess.Popen([nas, "coordinator", "--listen", "127.0.0.1:0"] + extra,
                                   env={**os.environ, "NAS_FLEET_TOKEN": "bench"}, stdout=subprocess.PIPE)
    line = coordinator.stdout.readline().decode()
    port = int(line.rsplit(":", 1)[1])
    time.sleep(0.5)
    before = rss_mb(coordinator.pid)
    sock = socket.create_connection(("127.0.0.1", port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    ids = []
    for _ in range(streams):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":path", "/nas.fleet.Coordinator/Evaluate"),
                                (":scheme", "http"), (":authority", f"127.0.0.1:{port}"),
                                ("authorization", "Bearer bench"), ("content-type", "application/x-protobuf")])
        ids.append(sid)
    sock.sendall(conn.data_to_send())
    left = {sid: megabytes << 20 for sid in ids}
    refused = set()
    chunk = b"\x07" * 16384
    sock.settimeout(0.01)
    deadline = time.time() + 120
    while any(left[s] > 0 for s in ids if s not in refused) and time.time() < deadline:
        for sid in ids:
            if sid in refused or left[sid] <= 0:
                continue
            room = min(conn.local_flow_control_window(sid), left[sid], len(chunk))
            if room > 0:
                conn.send_data(sid, chunk[:room])
                left[sid] -= room
        sock.sendall(conn.data_to_send())
        try:
            data = sock.recv(1 << 20)
        except socket.timeout:
            continue
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived) and dict(event.headers).get(b":status") == b"503":
                refused.add(event.stream_id)
            if isinstance(event, h2.events.StreamReset):
                refused.add(event.stream_id)
        sock.sendall(conn.data_to_send())
    time.sleep(1)
    after = rss_mb(coordinator.pid)
    sent = sum((megabytes << 20) - left[s] for s in ids) / (1 << 20)
    print(f"{streams} unfinished streams x {megabytes} MB on one connection: sent {sent:.0f} MB, "
          f"coordinator RSS {before:.0f} MB -> {after:.0f} MB, {len(refused)} streams refused with 503")
    coordinator.kill()
    coordinator.wait()


if __name__ == "__main__":
    main()
