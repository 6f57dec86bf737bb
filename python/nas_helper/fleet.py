"""Asking `nas`'s fleet for a model's latency: the coordinator over HTTP/2 (with `h2`), or the file exchange.

The wire is `docs/fleet.md`: `POST /nas.fleet.Coordinator/Evaluate` over h2c with prior knowledge, a bearer token,
and one protobuf message each way (`Sources/CFleetProto/proto/fleet.proto`). The few messages needed here are
encoded by hand, so that the `protobuf` package is not needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import time
import urllib.parse
from typing import Dict, Optional, Tuple

EVALUATE_PATH = "/nas.fleet.Coordinator/Evaluate"

ERROR_CODES = {
    1: "UNAUTHENTICATED", 2: "BAD_REQUEST", 3: "NOT_FOUND", 4: "TOO_LARGE", 5: "UNKNOWN_WORKER",
    6: "MODEL_NOT_SUPPORTED", 7: "BAD_MODEL", 8: "WORKER_LOST", 9: "TIMED_OUT", 10: "NO_WORKER",
    11: "MODEL_NOT_CACHED", 12: "RUNNER_FAILED", 13: "INTERNAL",
}


class FleetError(RuntimeError):
    """A measurement the fleet could not make: what failed and what to do."""


# MARK: - protobuf, by hand


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _length_delimited(number: int, data: bytes) -> bytes:
    return _field(number, 2) + _varint(len(data)) + data


def encode_evaluate_request(device_type: str, model: bytes, deadline_ms: int = 0) -> bytes:
    """`EvaluateRequest {device_type = 1; model = 2; sha256 = 3; deadline_ms = 4}`."""
    body = _length_delimited(1, device_type.encode()) + _length_delimited(2, model)
    body += _length_delimited(3, hashlib.sha256(model).digest())
    if deadline_ms:
        body += _field(4, 0) + _varint(deadline_ms)
    return body


def _read_varint(data: bytes, index: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        if index >= len(data) or shift > 63:
            raise FleetError("malformed protobuf answer: a varint runs past the end")
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, index


def _fields(data: bytes):
    """Yields (field number, wire type, value) of one message; unknown fields are skipped as protobuf does."""
    index = 0
    while index < len(data):
        key, index = _read_varint(data, index)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, index = _read_varint(data, index)
        elif wire_type == 1:
            if index + 8 > len(data):
                raise FleetError("malformed protobuf answer: a 64-bit field runs past the end")
            value, index = data[index:index + 8], index + 8
        elif wire_type == 2:
            length, index = _read_varint(data, index)
            if index + length > len(data):
                raise FleetError("malformed protobuf answer: a field runs past the end")
            value, index = data[index:index + length], index + length
        elif wire_type == 5:
            value, index = data[index:index + 4], index + 4
        else:
            raise FleetError(f"malformed protobuf answer: wire type {wire_type}")
        yield number, wire_type, value


def decode_evaluate_response(data: bytes) -> Dict[str, object]:
    """`EvaluateResponse {repeated Metric metrics = 1; worker_id = 2; attempts = 3}` as a dict."""
    metrics: Dict[str, float] = {}
    worker, attempts = "", 0
    for number, wire_type, value in _fields(data):
        if number == 1 and wire_type == 2:
            name, metric = "", 0.0
            for inner, inner_type, inner_value in _fields(value):
                if inner == 1 and inner_type == 2:
                    name = inner_value.decode("utf-8", "replace")
                elif inner == 2 and inner_type == 1:
                    metric = struct.unpack("<d", inner_value)[0]
            metrics[name] = metric
        elif number == 2 and wire_type == 2:
            worker = value.decode("utf-8", "replace")
        elif number == 3 and wire_type == 0:
            attempts = value
    return {"metrics": metrics, "worker_id": worker, "attempts": attempts}


def decode_error(data: bytes) -> str:
    """`Error {code = 1; message = 2}` as `CODE: message`."""
    code, message = 0, ""
    try:
        for number, wire_type, value in _fields(data):
            if number == 1 and wire_type == 0:
                code = value
            elif number == 2 and wire_type == 2:
                message = value.decode("utf-8", "replace")
    except FleetError:
        return data[:200].decode("utf-8", "replace")
    return f"{ERROR_CODES.get(code, code)}: {message}"


# MARK: - the coordinator over HTTP/2


def evaluate(url: str, token: str, model: bytes, device_type: str, timeout: float = 600.0, *,
             ca_file: Optional[str] = None, client_cert: Optional[str] = None,
             client_key: Optional[str] = None) -> Dict[str, object]:
    """Measures `model` on a worker of `device_type` through the coordinator at `url`: h2c with prior knowledge for
    http://, HTTP/2 over TLS (ALPN h2, the server's name checked) for https://, trusting `ca_file` (else the
    system's CAs; SSL_CERT_FILE works) and presenting `client_cert`/`client_key` when the coordinator asks."""
    try:
        import h2.config
        import h2.connection
        import h2.events
    except ImportError as error:
        raise FleetError("asking the coordinator needs the h2 package: pip install h2") from error
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or not parsed.port:
        raise FleetError(f"coordinator URL {url!r} is not http://HOST:PORT or https://HOST:PORT")
    if (client_cert is None) != (client_key is None):
        raise FleetError("a client certificate needs its key: give client_cert and client_key, or neither")
    deadline = time.monotonic() + timeout
    body = encode_evaluate_request(device_type, model, deadline_ms=int(timeout * 1000))
    plain = socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
    try:
        plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = _tls(plain, parsed.hostname, url, ca_file, client_cert, client_key) if parsed.scheme == "https" else plain
    except BaseException:
        plain.close()
        raise
    with sock:
        connection = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
        connection.initiate_connection()
        stream = connection.get_next_available_stream_id()
        authority = f"{parsed.hostname}:{parsed.port}"
        connection.send_headers(stream, [
            (":method", "POST"), (":scheme", parsed.scheme), (":authority", authority), (":path", EVALUATE_PATH),
            ("content-type", "application/x-protobuf"), ("authorization", f"Bearer {token}"),
            ("content-length", str(len(body))),
        ])
        sent, status, answer, ended = 0, None, bytearray(), False
        while not ended:
            # Send what the flow-control windows allow, then wait for the peer.
            while sent < len(body):
                room = min(connection.local_flow_control_window(stream), connection.max_outbound_frame_size,
                           len(body) - sent)
                if room <= 0:
                    break
                connection.send_data(stream, body[sent:sent + room], end_stream=sent + room == len(body))
                sent += room
            _send(sock, connection.data_to_send(), url)
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except socket.timeout as error:
                raise FleetError(f"the coordinator at {url} did not answer within {timeout:g} s") from error
            except OSError as error:  # a TLS alert (a client certificate refused, TLS 1.3) lands here too
                raise FleetError(f"the connection to the coordinator at {url} failed: {error}") from error
            if not data:
                raise FleetError(f"the coordinator at {url} closed the connection before answering")
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers).get(b":status", b"0"))
                elif isinstance(event, h2.events.DataReceived):
                    answer += event.data
                    connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                    ended = True
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                    raise FleetError(f"the coordinator at {url} reset the request (error {event.error_code})")
                elif isinstance(event, h2.events.ConnectionTerminated):
                    raise FleetError(f"the coordinator at {url} closed the connection ({event.error_code})")
            _send(sock, connection.data_to_send(), url)
    if status != 200:
        raise FleetError(f"the coordinator answered {status}: {decode_error(bytes(answer))}")
    return decode_evaluate_response(bytes(answer))


def _send(sock: socket.socket, data: bytes, url: str) -> None:
    try:
        sock.sendall(data)
    except OSError as error:  # the peer went away, or a TLS alert closed the connection
        raise FleetError(f"the connection to the coordinator at {url} failed: {error}") from error


def _tls(sock: socket.socket, hostname: str, url: str, ca_file: Optional[str], client_cert: Optional[str],
         client_key: Optional[str]) -> socket.socket:
    """The TLS client side of `sock`: ALPN h2 required, the certificate checked against `hostname`."""
    import ssl

    try:
        context = ssl.create_default_context(cafile=ca_file)
        if client_cert:
            context.load_cert_chain(client_cert, client_key)
    except (OSError, ssl.SSLError) as error:
        raise FleetError(f"cannot read the TLS files (CA {ca_file}, client certificate {client_cert}): {error}") from error
    context.set_alpn_protocols(["h2"])
    try:
        wrapped = context.wrap_socket(sock, server_hostname=hostname)
    except ssl.SSLCertVerificationError as error:
        raise FleetError(f"the coordinator at {url} has a certificate this caller does not trust ({error.verify_message});"
                         " pass the CA that signed it (NAS_TLS_CA, ca_file=)") from error
    except (OSError, ssl.SSLError) as error:
        raise FleetError(f"the TLS handshake with {url} failed: {error}") from error
    if wrapped.selected_alpn_protocol() != "h2":
        wrapped.close()
        raise FleetError(f"the server at {url} does not speak HTTP/2 over TLS (ALPN chose "
                         f"{wrapped.selected_alpn_protocol()!r}, not 'h2')")
    return wrapped


# MARK: - the file exchange


def exchange(root: str, trial: str, model: bytes, poll_interval: float = 1.0, timeout: float = 600.0) -> Dict[str, float]:
    """Writes `model` where file-mode workers (`nas worker --job-dir ROOT`) look, and waits for their metrics:
    `ROOT/TRIAL/saved_model/model_latency.json`, in vertex-ai-nas's layout."""
    if root.startswith("gs://"):
        raise FleetError("the helper's file exchange is local; for a bucket, let nas measure the model after training")
    folder = os.path.join(root, str(trial), "saved_model")
    os.makedirs(folder, exist_ok=True)
    metrics_file = os.path.join(folder, "model_latency.json")
    error_file = os.path.join(folder, "model_latency_error.json")
    # An earlier attempt's numbers or claim must not answer for this model.
    for stale in (metrics_file, error_file, os.path.join(folder, "latency_worker_id.json")):
        if os.path.exists(stale):
            os.remove(stale)
    partial = os.path.join(folder, ".model.onnx.partial")
    with open(partial, "wb") as handle:
        handle.write(model)
    os.replace(partial, os.path.join(folder, "model.onnx"))
    deadline = time.monotonic() + timeout
    while True:
        if os.path.exists(metrics_file):
            with open(metrics_file) as handle:
                try:
                    stats = json.load(handle)
                except ValueError as error:
                    raise FleetError(f"{metrics_file} is not JSON: {error}") from error
            if not isinstance(stats, dict) or "latency_in_milliseconds" not in stats:
                raise FleetError(f"{metrics_file} lacks latency_in_milliseconds")
            return stats
        if os.path.exists(error_file):
            with open(error_file) as handle:
                raise FleetError(f"the file-mode workers gave the model up: {handle.read()[:500]}")
        if time.monotonic() > deadline:
            raise FleetError(
                f"no file-mode worker measured {folder}/model.onnx within {timeout:g} s; "
                f"start one: nas worker --job-dir {root} --device-type TYPE")
        time.sleep(poll_interval)
