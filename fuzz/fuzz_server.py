"""Fuzzes the fleet's HTTP/2 server with a Python `h2` peer: random frames, random headers, paths and bodies
(random bytes and mutated valid messages) on every call, then checks the server still answers a valid call.

Usage: python fuzz/fuzz_server.py URL TOKEN [--iterations N] [--seconds S] [--seed K]
Bounded in count and time; exits 1 (with the seed and iteration) when the server stops answering.
"""
import argparse
import random
import socket
import struct
import sys
import time
from urllib.parse import urlparse

import h2.config
import h2.connection
import h2.events
import h2.exceptions

PATHS = ["/nas.fleet.Coordinator/Register", "/nas.fleet.Coordinator/Heartbeat",
         "/nas.fleet.Coordinator/Deregister", "/nas.fleet.Coordinator/Evaluate",
         "/nas.fleet.Coordinator/ListWorkers", "/nas.fleet.Worker/Run", "/", "/x" * 50, ""]
# Valid encodings to mutate: RegisterRequest, EvaluateRequest (with a field of each wire type).
SEEDS = [bytes.fromhex("0a036370751a01022212687474703a2f2f3132372e302e302e313a31"),
         bytes.fromhex("0a0363707512036162631a2000") + bytes(31) + bytes.fromhex("20e807"),
         b""]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randint(0, 3)
        if op == 0 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 1:
            data.insert(rng.randint(0, len(data)), rng.randrange(256))
        elif op == 2 and data:
            del data[rng.randrange(len(data))]
        else:
            data += bytes(rng.randrange(256) for _ in range(rng.randint(0, 16)))
    return bytes(data)


def random_body(rng):
    choice = rng.randint(0, 3)
    if choice == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    if choice == 1:
        return mutate(rng, rng.choice(SEEDS))
    if choice == 2:
        return rng.choice(SEEDS)
    return b"\xff" * rng.randint(0, 64)


def send_all(sock, data):
    try:
        sock.sendall(data)
    except OSError:
        pass


def drain(sock, seconds=0.02):
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


def h2_iteration(rng, host, port, token):
    """Well-formed HTTP/2 with random calls: tokens, paths, headers, bodies, resets, windows."""
    sock = socket.create_connection((host, port), timeout=2)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, validate_outbound_headers=False))
    conn.initiate_connection()
    try:
        for _ in range(rng.randint(1, 8)):
            sid = conn.get_next_available_stream_id()
            headers = [(":method", rng.choice(["POST", "POST", "GET", "PUT"])), (":path", rng.choice(PATHS)),
                       (":scheme", "http"), (":authority", "fuzz")]
            if rng.random() < 0.8:
                headers.append(("authorization", "Bearer " + (token if rng.random() < 0.8 else "x" * 5)))
            if rng.random() < 0.3:
                headers.append(("content-length", str(rng.choice([0, 1, 10**12, 5]))))
            for _ in range(rng.randint(0, 3)):
                headers.append((f"x-fuzz-{rng.randrange(99)}", "v" * rng.randint(0, 300)))
            body = random_body(rng)
            conn.send_headers(sid, headers, end_stream=not body and rng.random() < 0.5)
            if body:
                conn.send_data(sid, body, end_stream=rng.random() < 0.9)
            if rng.random() < 0.1:
                conn.reset_stream(sid)
        send_all(sock, conn.data_to_send())
        drain(sock)
    except (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
        pass
    finally:
        sock.close()


def raw_iteration(rng, host, port):
    """The preface, then random frames of every type with random flags, stream ids and payloads."""
    sock = socket.create_connection((host, port), timeout=2)
    data = PREFACE if rng.random() < 0.9 else mutate(rng, PREFACE)
    data += frame(4, 0, 0, b"")
    for _ in range(rng.randint(1, 10)):
        kind = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, rng.randrange(256)])
        payload = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 4, 5, 6, 8, 9, rng.randint(0, 300)])))
        data += frame(kind, rng.randrange(256), rng.choice([0, 1, 3, 2, rng.randrange(2**31)]), payload)
    send_all(sock, data)
    drain(sock)
    sock.close()


def healthy(host, port, token):
    sock = socket.create_connection((host, port), timeout=5)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "POST"), (":path", "/nas.fleet.Coordinator/ListWorkers"),
                          (":scheme", "http"), (":authority", "fuzz"), ("authorization", f"Bearer {token}")],
                      end_stream=True)
    sock.sendall(conn.data_to_send())
    deadline = time.time() + 5
    try:
        while time.time() < deadline:
            data = sock.recv(65536)
            if not data:
                return False
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    return dict(event.headers).get(b":status") == b"200"
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()
    return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    target = urlparse(args.url)
    rng = random.Random(args.seed)
    start = time.time()
    done = 0
    for iteration in range(args.iterations):
        if time.time() - start > args.seconds:
            break
        if rng.random() < 0.5:
            h2_iteration(rng, target.hostname, target.port, args.token)
        else:
            raw_iteration(rng, target.hostname, target.port)
        done += 1
        if iteration % 25 == 0 and not healthy(target.hostname, target.port, args.token):
            print(f"server stopped answering after iteration {iteration} (seed {args.seed})", file=sys.stderr)
            sys.exit(1)
    if not healthy(target.hostname, target.port, args.token):
        print(f"server stopped answering at the end (seed {args.seed})", file=sys.stderr)
        sys.exit(1)
    print(f"{done} iterations, server healthy")


if __name__ == "__main__":
    main()
