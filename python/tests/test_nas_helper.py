"""The helper's names as a ported vertex-ai-nas trainer calls them, against a real `nas` coordinator, worker and
file exchange where they take part (scripts/test.sh builds `nas` first; NAS_BINARY points elsewhere)."""

import json
import os
import re
import struct
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from nas_helper import cloud_nas_utils, fleet, metrics_reporter  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NAS = os.environ.get("NAS_BINARY", os.path.join(ROOT, ".build", "debug", "nas"))


def tiny_onnx() -> bytes:
    """A real ONNX model the native engine runs: Flatten, Gemm, Relu, Gemm, Softmax on 1x1x28x28."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((784, 8)).astype(np.float32), np.zeros(8, np.float32),
               rng.standard_normal((8, 10)).astype(np.float32), np.zeros(10, np.float32)]
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["a"]),
        helper.make_node("Gemm", ["a", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["output"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(a, n) for a, n in zip(weights, ["w1", "b1", "w2", "b2"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def need_nas():
    if not os.access(NAS, os.X_OK):
        pytest.skip(f"no nas at {NAS}: run swift build (scripts/test.sh does), or set NAS_BINARY")


# MARK: - metrics_reporter


def test_reporter_writes_hypertune_lines_the_last_one_newest(tmp_path, monkeypatch):
    path = tmp_path / "hypertune" / "output.metrics"
    monkeypatch.setenv("CLOUD_ML_HP_METRIC_FILE", str(path))
    monkeypatch.setenv("CLOUD_ML_TRIAL_ID", "7")
    reporter = metrics_reporter.NasMetricsReporter()
    reporter.report_metrics("nas_reward", 0.5, global_step=1, other_metrics={"top_1_accuracy": 0.6})
    others = {f"m{i}": i for i in range(8)}  # more than vertex-ai-nas's five
    reporter.report_metrics("nas_reward", 0.9, global_step=2, model_flops=1200, other_metrics=others)
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    last = json.loads(lines[-1])
    assert last["nas_reward"] == "0.9" and last["trial"] == "7" and last["global_step"] == "2"
    assert last["model_flops"] == "1200.0"
    pairs = {last[f"key_{i}"]: last[f"value_{i}"] for i in range(8)}
    assert pairs == {f"m{i}": str(float(i)) for i in range(8)}
    with pytest.raises(ValueError, match="reserved name 'global_step'"):
        reporter.report_metrics("nas_reward", 1, other_metrics={"global_step": 3})


def test_reporter_takes_the_tag_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUD_ML_HP_METRIC_TAG", "top_1_accuracy")
    path = tmp_path / "m"
    metrics_reporter.NasMetricsReporter(str(path)).report_metrics(None, 0.75)
    assert json.loads(path.read_text())["top_1_accuracy"] == "0.75"


# MARK: - cloud_nas_utils


PARAMS = {"decisions": [1, 0], "value": [{"kernel_size": 5, "filters": 3}, {"kernel_size": 3, "filters": 8}]}


def test_nas_params_str_as_json_or_a_file_with_attribute_access(tmp_path):
    model_dir = tmp_path / "4"
    spec = cloud_nas_utils.parse_and_save_nas_params_str(None, json.dumps(PARAMS), str(model_dir))
    assert spec[0].kernel_size == 5 and spec[1]["filters"] == 8
    saved = model_dir / "nas_params_str.json"
    assert json.loads(saved.read_text()) == PARAMS
    # Stage 2: a path to the search trial's file, as the seed's get_finetune_nas_params_str gives.
    again = cloud_nas_utils.parse_and_save_nas_params_str(None, str(saved))
    assert again == PARAMS["value"]
    with pytest.raises(AttributeError, match="has no 'stride'"):
        _ = spec[0].stride
    for bad, message in [("", "empty"), ("{not json", "not JSON"), ("[1, 2]", "a JSON object")]:
        with pytest.raises(ValueError, match=message):
            cloud_nas_utils.parse_and_save_nas_params_str(None, bad)


def test_a_pyglove_space_is_materialised_from_the_decisions():
    pg = pytest.importorskip("pyglove")
    # The seed tutorial's space as PyGlove writes it, and as nas's JSON space reads; decision order matches.
    space = pg.List([pg.Dict(kernel_size=pg.one_of([3, 5]), filters=pg.one_of([3, 4, 5])),
                     pg.Dict(kernel_size=pg.one_of([3, 5]), filters=pg.one_of([6, 8, 10]))])
    params = {"decisions": [1, 0, 0, 2], "value": "ignored when the space is given"}
    spec = cloud_nas_utils.parse_and_save_nas_params_str(space, json.dumps(params))
    assert [(layer.kernel_size, layer.filters) for layer in spec] == [(5, 3), (3, 10)]


def test_stage2_maps_train_trials_to_search_trials(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUD_ML_TRIAL_ID", "2")
    assert cloud_nas_utils.get_search_trial_id_to_finetune("123, 453,1025") == "453"
    path = cloud_nas_utils.get_finetune_nas_params_str("123, 453", str(tmp_path))
    assert path == os.path.join(str(tmp_path), "453", "nas_params_str.json")
    monkeypatch.setenv("CLOUD_ML_TRIAL_ID", "5")
    with pytest.raises(ValueError, match="train trial 5 has no search trial"):
        cloud_nas_utils.get_search_trial_id_to_finetune("1,2")


def test_job_dir_from_the_environment(monkeypatch):
    monkeypatch.delenv("AIP_MODEL_DIR", raising=False)
    assert cloud_nas_utils.get_job_dir_from_environment_if_exist("/jobs/a/3") == "/jobs/a/3"
    monkeypatch.setenv("AIP_MODEL_DIR", "/jobs/a/3/saved_model")
    assert cloud_nas_utils.get_job_dir_from_environment_if_exist("ignored") == "/jobs/a/3"
    monkeypatch.setenv("AIP_MODEL_DIR", "gs://b/job_123/nas/search/7/model/")
    assert cloud_nas_utils.get_job_dir_from_environment_if_exist("ignored") == "gs://b/job_123/nas/search/7"
    assert cloud_nas_utils.get_saved_model_dir("/jobs/a/3") == "/jobs/a/3/saved_model"


def test_compute_reward_matches_the_seeds_table():
    reward = cloud_nas_utils.compute_reward
    assert reward(0.95, 0.8, 0.4, use_hard_limit=False) == pytest.approx(1.9)
    assert reward(0.95, 0.8, 0.4, use_hard_limit=True) == pytest.approx(0.95)
    assert reward(0.95, 0.8, 1.6) == pytest.approx(0.475)
    assert reward(0.95, 0.8, 0.8, use_hard_limit=False) == pytest.approx(0.95)
    assert reward(0.9, 1, 1, target_memory=100, measured_memory=200) == pytest.approx(0.45)
    with pytest.raises(ValueError):
        reward(0.9, 1, 0)


def test_write_job_status_in_the_seeds_form_and_nas_form(tmp_path):
    cloud_nas_utils.write_job_status(str(tmp_path), cloud_nas_utils.JOB_STATUS_FAILED_WITH_NAN_ERROR)
    status = json.loads((tmp_path / "job_status.json").read_text())
    assert status == {"job_status": "failed_with_nan_error", "status": "failed_with_nan_error"}


def test_save_onnx_and_a_saved_model_without_tf2onnx(tmp_path):
    model = tiny_onnx()
    path = cloud_nas_utils.save_onnx(model, str(tmp_path))
    assert path == str(tmp_path / "saved_model" / "model.onnx")
    assert open(path, "rb").read() == model
    saved_model = tmp_path / "keras"
    saved_model.mkdir()
    (saved_model / "saved_model.pb").write_bytes(b"")
    try:
        import tf2onnx  # noqa: F401
        pytest.skip("tf2onnx is installed here")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="needs tf2onnx: pip install tf2onnx"):
        cloud_nas_utils.wait_and_retrieve_latency(str(saved_model))
    with pytest.raises(FileNotFoundError, match="no model at"):
        cloud_nas_utils.wait_and_retrieve_latency(str(tmp_path / "nothing"))


# MARK: - the wire, by hand


def test_protobuf_messages_round_trip_and_refuse_truncation():
    request = fleet.encode_evaluate_request("cpu-x86", b"\x01\x02", deadline_ms=600000)
    fields = list(fleet._fields(request))
    assert fields[0] == (1, 2, b"cpu-x86") and fields[1] == (2, 2, b"\x01\x02")
    assert len(fields[2][2]) == 32 and fields[3] == (4, 0, 600000)

    def metric(name, value):
        inner = fleet._length_delimited(1, name.encode()) + fleet._field(2, 1) + struct.pack("<d", value)
        return fleet._length_delimited(1, inner)

    response = metric("latency_ms", 1.25) + metric("memory_bytes", 4096) + fleet._length_delimited(2, b"w3")
    response += fleet._field(3, 0) + fleet._varint(2) + fleet._field(9, 0) + fleet._varint(300)  # unknown field
    decoded = fleet.decode_evaluate_response(response)
    assert decoded == {"metrics": {"latency_ms": 1.25, "memory_bytes": 4096.0}, "worker_id": "w3", "attempts": 2}
    for cut in range(1, len(response)):
        try:
            fleet.decode_evaluate_response(response[:cut])
        except fleet.FleetError as error:
            assert "malformed protobuf answer" in str(error)
    error = fleet._field(1, 0) + fleet._varint(10) + fleet._length_delimited(2, b"no worker of type phone")
    assert fleet.decode_error(error) == "NO_WORKER: no worker of type phone"


# MARK: - latency through the fleet


def start(arguments, **kwargs):
    return subprocess.Popen([NAS] + arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def retrieve_once_a_worker_registered(path: str) -> dict:
    """`wait_and_retrieve_latency`, asked again while the job's worker has not registered yet (60 s at most)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return cloud_nas_utils.wait_and_retrieve_latency(path, timeout=10)
        except fleet.FleetError as error:
            if time.monotonic() > deadline:
                raise
            assert "NO_WORKER" in str(error) or "TIMED_OUT" in str(error), error


def test_latency_from_a_registered_worker_over_http2(tmp_path, monkeypatch):
    pytest.importorskip("h2")
    need_nas()
    token = "helper-test-token"
    environment = dict(os.environ, NAS_FLEET_TOKEN=token)
    coordinator = start(["coordinator", "--listen", "127.0.0.1:0"], env=environment)
    worker = None
    try:
        line = coordinator.stdout.readline()
        match = re.search(r"http://[\d.]+:\d+", line)
        assert match, line
        url = match.group(0)
        worker = start(["worker", "--coordinator", url, "--device-type", "cpu-x86", "--runner", "native"],
                       env=environment)
        monkeypatch.setenv("NAS_COORDINATOR_URL", url)
        monkeypatch.setenv("NAS_FLEET_TOKEN", token)
        monkeypatch.setenv("NAS_TARGET_DEVICE_TYPES", "cpu-x86")
        path = cloud_nas_utils.save_onnx(tiny_onnx(), str(tmp_path))
        stats = retrieve_once_a_worker_registered(path)
        assert stats["latency_in_milliseconds"] == stats["latency_ms"] > 0
        assert stats["model_memory"] == stats["memory_bytes"] > 0
        # A wrong token is refused, with the coordinator's reason.
        with pytest.raises(fleet.FleetError, match="answered 401"):
            fleet.evaluate(url, "wrong", tiny_onnx(), "cpu-x86", timeout=10)
    finally:
        for process in (worker, coordinator):
            if process:
                process.terminate()
                process.wait(timeout=10)


def make_certificates(directory) -> dict:
    """A CA, a server certificate it signed for 127.0.0.1, a client certificate it signed (openssl, EC P-256)."""
    def openssl(*arguments):
        subprocess.run(["openssl", *arguments], check=True, capture_output=True)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    path = lambda name: os.path.join(directory, name)  # noqa: E731
    openssl("req", "-x509", *key, "-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "2",
            "-subj", "/CN=helper test ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, alt in (("server", "IP:127.0.0.1"), ("client", "DNS:helper-test-client")):
        openssl("req", *key, "-keyout", path(f"{name}.key"), "-out", path(f"{name}.csr"), "-subj", f"/CN={name}")
        with open(path(f"{name}.ext"), "w") as extensions:
            extensions.write(f"subjectAltName={alt}\nbasicConstraints=CA:FALSE\n")
        openssl("x509", "-req", "-in", path(f"{name}.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
                "-CAcreateserial", "-out", path(f"{name}.pem"), "-days", "2", "-extfile", path(f"{name}.ext"))
    return {name: path(name) for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def test_latency_from_a_coordinator_over_tls_with_the_searchs_tls_files(tmp_path, monkeypatch):
    """An https:// coordinator that requires client certificates, as `nas search --coordinator https://... --tls-*`
    hands it to a user's trainer: NAS_TLS_CA, NAS_TLS_CLIENT_CERT and NAS_TLS_CLIENT_KEY."""
    pytest.importorskip("h2")
    need_nas()
    files = make_certificates(str(tmp_path))
    token = "helper-tls-token"
    environment = dict(os.environ, NAS_FLEET_TOKEN=token)
    coordinator = start(["coordinator", "--listen", "127.0.0.1:0", "--tls-cert", files["server.pem"], "--tls-key",
                         files["server.key"], "--tls-client-ca", files["ca.pem"]], env=environment)
    worker = None
    try:
        line = coordinator.stdout.readline()
        match = re.search(r"https://[\d.]+:\d+", line)
        assert match, line
        url = match.group(0)
        client = ["--tls-ca", files["ca.pem"], "--tls-client-cert", files["client.pem"], "--tls-client-key",
                  files["client.key"]]
        worker = start(["worker", "--coordinator", url, "--device-type", "cpu-x86", "--runner", "native"] + client,
                       env=environment)
        for name, file in (("NAS_TLS_CA", "ca.pem"), ("NAS_TLS_CLIENT_CERT", "client.pem"),
                           ("NAS_TLS_CLIENT_KEY", "client.key")):
            monkeypatch.setenv(name, files[file])
        monkeypatch.setenv("NAS_COORDINATOR_URL", url)
        monkeypatch.setenv("NAS_FLEET_TOKEN", token)
        monkeypatch.setenv("NAS_TARGET_DEVICE_TYPES", "cpu-x86")
        path = cloud_nas_utils.save_onnx(tiny_onnx(), str(tmp_path))
        stats = retrieve_once_a_worker_registered(path)
        assert stats["latency_ms"] > 0 and stats["memory_bytes"] > 0
        # Without the CA the server's certificate is not trusted; without a client certificate it refuses us.
        with pytest.raises(fleet.FleetError, match="does not trust"):
            fleet.evaluate(url, token, tiny_onnx(), "cpu-x86", timeout=10)
        with pytest.raises(fleet.FleetError):
            fleet.evaluate(url, token, tiny_onnx(), "cpu-x86", timeout=10, ca_file=files["ca.pem"])
        with pytest.raises(fleet.FleetError, match="needs its key"):
            fleet.evaluate(url, token, tiny_onnx(), "cpu-x86", timeout=10, client_cert=files["client.pem"])
    finally:
        for process in (worker, coordinator):
            if process:
                process.terminate()
                process.wait(timeout=10)


def test_latency_through_the_file_exchange(tmp_path, monkeypatch):
    need_nas()
    job = tmp_path / "job"
    job.mkdir()
    (job / "job_status.json").write_text('{"state": "RUNNING"}')
    worker = start(["worker", "--job-dir", str(job), "--device-type", "phone", "--poll-interval", "0.1",
                    "--runner-command", "echo '{\"latency_ms\": 1.5, \"memory_bytes\": 2048}' # {model}"])
    try:
        monkeypatch.delenv("NAS_COORDINATOR_URL", raising=False)
        monkeypatch.setenv("NAS_EXCHANGE_DIR", str(job))
        monkeypatch.setenv("NAS_TARGET_DEVICE_TYPES", "phone")
        monkeypatch.setenv("CLOUD_ML_TRIAL_ID", "7")
        model = tmp_path / "model.onnx"
        model.write_bytes(tiny_onnx())
        stats = cloud_nas_utils.wait_and_retrieve_latency(str(model), sleep_time=0.05, timeout=60)
        assert stats["latency_in_milliseconds"] == 1.5 and stats["model_memory"] == 2048
        assert (job / "7" / "saved_model" / "model.onnx").read_bytes() == model.read_bytes()
    finally:
        (job / "job_status.json").write_text('{"state": "SUCCEEDED"}')
        worker.wait(timeout=30)


def test_no_coordinator_and_no_exchange_is_a_clear_error(tmp_path, monkeypatch):
    for name in ("NAS_COORDINATOR_URL", "NAS_FLEET_TOKEN", "NAS_EXCHANGE_DIR", "NAS_TARGET_DEVICE_TYPES"):
        monkeypatch.delenv(name, raising=False)
    path = cloud_nas_utils.save_onnx(tiny_onnx(), str(tmp_path))
    with pytest.raises(RuntimeError, match="no file exchange"):
        cloud_nas_utils.wait_and_retrieve_latency(path)
    # Under a nas job that measures no device, nothing could answer: said at once rather than after a timeout.
    monkeypatch.setenv("NAS_TARGET_DEVICE_TYPES", "")
    monkeypatch.setenv("NAS_EXCHANGE_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="measures no device"):
        cloud_nas_utils.wait_and_retrieve_latency(path)


def test_an_exchange_timeout_says_how_to_start_a_worker(tmp_path, monkeypatch):
    monkeypatch.delenv("NAS_COORDINATOR_URL", raising=False)
    monkeypatch.delenv("NAS_TARGET_DEVICE_TYPES", raising=False)
    monkeypatch.setenv("NAS_EXCHANGE_DIR", str(tmp_path))
    monkeypatch.setenv("CLOUD_ML_TRIAL_ID", "2")
    path = cloud_nas_utils.save_onnx(tiny_onnx(), str(tmp_path / "x"))
    with pytest.raises(fleet.FleetError, match="nas worker --job-dir"):
        cloud_nas_utils.wait_and_retrieve_latency(path, sleep_time=0.01, timeout=0.05)
    # A worker's give-up note ends the wait with its reason.
    os.remove(tmp_path / "2" / "saved_model" / "model.onnx")
    done = threading.Event()

    def give_up():
        target = tmp_path / "2" / "saved_model"
        while not (target / "model.onnx").exists():
            time.sleep(0.01)
        (target / "model_latency_error.json").write_text('{"error": "unsupported op"}')
        done.set()

    threading.Thread(target=give_up, daemon=True).start()
    with pytest.raises(fleet.FleetError, match="gave the model up.*unsupported op"):
        cloud_nas_utils.wait_and_retrieve_latency(path, sleep_time=0.01, timeout=30)
    assert done.is_set()


# MARK: - intermediate results and export only


def test_intermediate_results_are_hypertune_lines_with_their_step_and_the_final_report_keeps_them(tmp_path, monkeypatch):
    path = tmp_path / "hypertune" / "output.metrics"
    monkeypatch.setenv("CLOUD_ML_HP_METRIC_FILE", str(path))
    monkeypatch.setenv("NAS_ACCURACY_METRIC", "val_acc")
    monkeypatch.setattr(metrics_reporter, "_intermediate_reporter", None)
    monkeypatch.setattr(metrics_reporter, "_intermediate_step", 0)
    metrics_reporter.report_intermediate_result(0.5)
    metrics_reporter.report_intermediate_result(0.625)
    metrics_reporter.report_intermediate_result(0.75, step=5)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["global_step"], line["val_acc"]) for line in lines] == [("1", "0.5"), ("2", "0.625"), ("5", "0.75")]
    # A reporter of its own for the final result keeps the curve in the file.
    metrics_reporter.NasMetricsReporter().report_metrics("val_acc", 0.8)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 4 and lines[-1]["val_acc"] == "0.8"
    with pytest.raises(ValueError):
        metrics_reporter.report_intermediate_result(0.1, step=0)


def test_export_only_reads_the_contracts_variable(monkeypatch):
    monkeypatch.delenv("NAS_EXPORT_ONLY", raising=False)
    assert cloud_nas_utils.export_only() is False
    monkeypatch.setenv("NAS_EXPORT_ONLY", "1")
    assert cloud_nas_utils.export_only() is True
