"""vertex-ai-nas's `cloud_nas_utils` names, for a trainer `nas` runs.

`nas` gives each trial `--nas_params_str=<JSON>` and `--job-dir=<the trial's folder>`, and the environment
`CLOUD_ML_TRIAL_ID`, `AIP_MODEL_DIR` (`<trial>/saved_model`), `CLOUD_ML_HP_METRIC_TAG`, `CLOUD_ML_HP_METRIC_FILE`,
plus `NAS_COORDINATOR_URL`, `NAS_FLEET_TOKEN`, `NAS_TARGET_DEVICE_TYPES`, `NAS_EXCHANGE_DIR` and, for an https://
coordinator, `NAS_TLS_CA`, `NAS_TLS_CLIENT_CERT` and `NAS_TLS_CLIENT_KEY` (the search's --tls-* flags, when given) for
a trainer that asks for latency itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Union

from nas_helper import fleet

JOB_STATUS_KEY = "job_status"
JOB_STATUS_SUCCESS = "success"
JOB_STATUS_FAILED = "failed"
JOB_STATUS_FAILED_WITH_NAN_ERROR = "failed_with_nan_error"
ENVIRONMENT_VARIABLE_FOR_MODEL_DIR = "AIP_MODEL_DIR"
ENVIRONMENT_VARIABLE_FOR_TRIAL_ID = "CLOUD_ML_TRIAL_ID"
VERTEX_SEARCH_TRIAL_DIR_REGEX = r".*nas/search/\d+"
VERTEX_TRAIN_TRIAL_DIR_REGEX = r".*nas/train/\d+"
SAVED_MODEL_SUB_DIR = "saved_model"
ONNX_FILE = "model.onnx"
NAS_PARAMS_FILE = "nas_params_str.json"


class Value(dict):
    """A JSON object of an architecture whose members also read as attributes (`layer.kernel_size`), as the
    PyGlove objects of a seed trainer do."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as error:
            raise AttributeError(f"the architecture has no {name!r} (it has {sorted(self)})") from error


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return Value({key: _wrap(item) for key, item in value.items()})
    if isinstance(value, list):
        return [_wrap(item) for item in value]
    return value


def get_trial_id_from_environment() -> str:
    """The trial's id (`CLOUD_ML_TRIAL_ID`), "0" outside a search."""
    return os.environ.get(ENVIRONMENT_VARIABLE_FOR_TRIAL_ID, "0")


def read_nas_params_str(nas_params_str: str) -> Dict[str, Any]:
    """The JSON object of `nas_params_str`, read from the file when it names one (`....json`, as in stage 2)."""
    if not nas_params_str:
        raise ValueError("nas_params_str is empty: nas passes --nas_params_str=<JSON> to each trial")
    text = nas_params_str
    if nas_params_str.strip().endswith(".json") and not nas_params_str.lstrip().startswith(("{", "[")):
        with open(nas_params_str) as handle:
            text = handle.read()
    try:
        params = json.loads(text)
    except ValueError as error:
        raise ValueError(f"nas_params_str is not JSON ({error}): {text[:200]!r}") from error
    if not isinstance(params, dict):
        raise ValueError(f"nas_params_str should be a JSON object, found {type(params).__name__}")
    return params


def parse_and_save_nas_params_str(search_space: Any, nas_params_str: str, model_dir: Optional[str] = None) -> Any:
    """The trial's architecture from `nas_params_str`, saved as `nas_params_str.json` in `model_dir` if given.

    `nas` writes `{"decisions": [...], "value": ...}`: the value is the architecture as plain JSON (objects read
    as attributes too). With PyGlove installed and `search_space` a PyGlove space, the space is materialised from
    the decisions instead (its decision points in the order of the JSON space `nas` searched).
    """
    params = read_nas_params_str(nas_params_str)
    if model_dir:
        save_nas_params_str(params, model_dir)
    if search_space is not None and "decisions" in params:
        try:
            import pyglove as pg  # type: ignore
        except ImportError:
            pg = None
        if pg is not None and isinstance(search_space, pg.Symbolic):
            dna = pg.DNA.from_numbers(list(params["decisions"]), pg.dna_spec(search_space))
            return pg.materialize(search_space, dna)
    if "value" in params:
        return _wrap(params["value"])
    return _wrap(params)


def save_nas_params_str(params: Union[str, Dict[str, Any]], model_dir: str) -> str:
    """Writes `nas_params_str.json` into `model_dir`; returns its path."""
    if isinstance(params, str):
        params = read_nas_params_str(params)
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, NAS_PARAMS_FILE)
    with open(path, "w") as handle:
        json.dump(params, handle)
    return path


def write_job_status(model_dir: str, status: str) -> None:
    """The seed's `job_status.json` marker in the trial folder (`nas` keeps its own status there too)."""
    path = os.path.join(model_dir, "job_status.json")
    with open(path, "w") as handle:
        json.dump({JOB_STATUS_KEY: status, "status": status}, handle)


def get_job_dir_from_environment_if_exist(current_job_dir: str) -> str:
    """The trial's folder: Vertex AI's from `AIP_MODEL_DIR` when it is in Vertex's form, `nas`'s (the parent of
    its `saved_model`) when it is in `nas`'s, else `current_job_dir`."""
    model_dir = os.environ.get(ENVIRONMENT_VARIABLE_FOR_MODEL_DIR)
    if not model_dir:
        return current_job_dir
    for pattern in (VERTEX_SEARCH_TRIAL_DIR_REGEX, VERTEX_TRAIN_TRIAL_DIR_REGEX):
        match = re.match(pattern, model_dir)
        if match:
            return match.group(0)
    stripped = model_dir.rstrip("/")
    if os.path.basename(stripped) == SAVED_MODEL_SUB_DIR:
        return os.path.dirname(stripped)
    return current_job_dir


def get_saved_model_dir(trial_job_dir: str) -> str:
    """`<trial>/saved_model`, where `nas` looks for `model.onnx`."""
    return os.path.join(trial_job_dir, SAVED_MODEL_SUB_DIR)


def get_map_finetune_trial_id_to_search_trial_id(retrain_search_job_trials: str) -> Dict[str, str]:
    """Stage 2: train trial k retrains the k-th search trial of the list ("1" -> "123" for "123,453")."""
    ids = [item.strip() for item in retrain_search_job_trials.split(",") if item.strip()]
    return {str(index + 1): trial for index, trial in enumerate(ids)}


def get_search_trial_id_to_finetune(retrain_search_job_trials: str) -> str:
    """Stage 2: the search trial this train trial retrains."""
    mapping = get_map_finetune_trial_id_to_search_trial_id(retrain_search_job_trials)
    trial = get_trial_id_from_environment()
    if trial not in mapping:
        raise ValueError(f"train trial {trial} has no search trial in {retrain_search_job_trials!r}")
    return mapping[trial]


def get_finetune_nas_params_str(retrain_search_job_trials: str, retrain_search_job_dir: str) -> str:
    """Stage 2: the path of the search trial's `nas_params_str.json` (which `parse_and_save_nas_params_str` reads)."""
    if not retrain_search_job_trials:
        raise ValueError("retrain_search_job_trials is not set")
    if not retrain_search_job_dir:
        raise ValueError("retrain_search_job_dir is not set")
    trial = get_search_trial_id_to_finetune(retrain_search_job_trials)
    return os.path.join(retrain_search_job_dir, trial, NAS_PARAMS_FILE)


def compute_reward(
    accuracy: float,
    target_latency_or_flops: float,
    measured_latency_or_flops: float,
    target_memory: float = 0,
    measured_memory: float = 0,
    weight: float = 1,
    use_hard_limit: bool = True,
) -> float:
    """vertex-ai-nas's reward: accuracy times (target / measured) ** weight per constraint, capped at 1 with a
    hard limit (MnasNet, Tan et al. 2019)."""
    if not measured_latency_or_flops:
        raise ValueError("measured_latency_or_flops should not be 0")
    latency_ratio = float(target_latency_or_flops) / float(measured_latency_or_flops)
    if target_memory == 0:
        memory_ratio = 1.0
    else:
        if not measured_memory:
            raise ValueError("measured_memory should not be 0")
        memory_ratio = float(target_memory) / float(measured_memory)
    latency_weight = latency_ratio ** weight
    memory_weight = memory_ratio ** weight
    if use_hard_limit:
        latency_weight = min(latency_weight, 1.0)
        memory_weight = min(memory_weight, 1.0)
    return accuracy * latency_weight * memory_weight


def _onnx_bytes(saved_model_path: str) -> bytes:
    """The ONNX bytes of a model: an `.onnx` file, a folder holding `model.onnx`, or a TensorFlow SavedModel
    folder converted with tf2onnx."""
    if os.path.isfile(saved_model_path):
        with open(saved_model_path, "rb") as handle:
            return handle.read()
    onnx_file = os.path.join(saved_model_path, ONNX_FILE)
    if os.path.isfile(onnx_file):
        with open(onnx_file, "rb") as handle:
            return handle.read()
    if os.path.isfile(os.path.join(saved_model_path, "saved_model.pb")):
        with tempfile.TemporaryDirectory() as scratch:
            output = os.path.join(scratch, ONNX_FILE)
            convert_saved_model(saved_model_path, output)
            with open(output, "rb") as handle:
                return handle.read()
    raise FileNotFoundError(
        f"no model at {saved_model_path}: give an ONNX file, a folder holding {ONNX_FILE}, or a TensorFlow SavedModel")


def convert_saved_model(saved_model_dir: str, output: str) -> str:
    """Converts a TensorFlow SavedModel to ONNX with tf2onnx; a clear error when tf2onnx is not installed."""
    try:
        import tf2onnx  # type: ignore  # noqa: F401
    except ImportError as error:
        raise RuntimeError(
            f"{saved_model_dir} is a TensorFlow SavedModel; converting it to ONNX needs tf2onnx: pip install tf2onnx"
        ) from error
    command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved_model_dir, "--output", output]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"tf2onnx could not convert {saved_model_dir}: {result.stderr[-800:]}")
    return output


def save_onnx(onnx_model_or_bytes: Any, trial_job_dir: str) -> str:
    """Writes an ONNX model (bytes, an `onnx.ModelProto`, or a SavedModel folder to convert) where `nas` measures
    it, `<trial>/saved_model/model.onnx`; returns the path."""
    folder = get_saved_model_dir(trial_job_dir)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, ONNX_FILE)
    if isinstance(onnx_model_or_bytes, (bytes, bytearray)):
        data = bytes(onnx_model_or_bytes)
    elif isinstance(onnx_model_or_bytes, str):
        data = _onnx_bytes(onnx_model_or_bytes)
    else:
        data = onnx_model_or_bytes.SerializeToString()
    with open(path + ".partial", "wb") as handle:
        handle.write(data)
    os.replace(path + ".partial", path)
    return path


def wait_and_retrieve_latency(
    saved_model_path: str,
    sleep_time: float = 1.0,
    timeout: float = 600.0,
    device_type: Optional[str] = None,
) -> Dict[str, float]:
    """Measures a model on the job's target device and returns its stats, as the seed's function of this name
    does: `latency_in_milliseconds` and `model_memory`, plus every other metric the device reported.

    `saved_model_path` is an ONNX file, a folder holding `model.onnx`, or a TensorFlow SavedModel (converted with
    tf2onnx). With a coordinator (`NAS_COORDINATOR_URL`, `NAS_FLEET_TOKEN`) and `h2` installed, the model is sent
    to a worker of the device type over HTTP/2 (over TLS for an https:// coordinator, with `NAS_TLS_CA`,
    `NAS_TLS_CLIENT_CERT` and `NAS_TLS_CLIENT_KEY` as the search's --tls-* flags set them) and the answer comes
    back as soon as it is measured; otherwise it
    goes through the file exchange (`NAS_EXCHANGE_DIR`), looking every `sleep_time` seconds (the seed: 30).
    """
    model = _onnx_bytes(saved_model_path)
    types: List[str] = [t for t in os.environ.get("NAS_TARGET_DEVICE_TYPES", "").split(",") if t]
    device = device_type or (types[0] if types else None)
    if device is None and "NAS_TARGET_DEVICE_TYPES" in os.environ:
        raise RuntimeError(
            "this nas job measures no device, so nothing can answer: give the search --target-device-type TYPE or "
            "a latency constraint (--target-latency-millisec), or pass device_type=")
    url, token = os.environ.get("NAS_COORDINATOR_URL"), os.environ.get("NAS_FLEET_TOKEN")
    try:
        import h2  # type: ignore  # noqa: F401
        has_h2 = True
    except ImportError:
        has_h2 = False
    if url and token and has_h2:
        if not device:
            raise RuntimeError("no device type to measure on: pass device_type= or give the search --target-device-type")
        start = time.monotonic()
        answer = fleet.evaluate(url, token, model, device, timeout=timeout, ca_file=os.environ.get("NAS_TLS_CA"),
                                client_cert=os.environ.get("NAS_TLS_CLIENT_CERT"),
                                client_key=os.environ.get("NAS_TLS_CLIENT_KEY"))
        metrics = dict(answer["metrics"])  # type: ignore[arg-type]
        logging.info("latency from worker %s in %.3f s", answer["worker_id"], time.monotonic() - start)
        stats = {key: float(value) for key, value in metrics.items()}
        stats["latency_in_milliseconds"] = stats.get("latency_ms", 0.0)
        stats["model_memory"] = stats.get("memory_bytes", 0.0)
        return stats
    if url and token:
        # The job's embedded worker answers pushes only: say why this waits for a file-mode worker instead.
        print("nas_helper: h2 is not installed, so the latency comes through the file exchange (a file-mode worker, "
              "nas worker --job-dir, must serve it); pip install h2 to ask the coordinator directly", file=sys.stderr)
    root = os.environ.get("NAS_EXCHANGE_DIR")
    if not root:
        raise RuntimeError(
            "no coordinator (or no h2 package: pip install h2) and no file exchange (NAS_EXCHANGE_DIR): run the "
            "trainer from nas search with --target-device-type, or measure after training by leaving the model in "
            "saved_model/model.onnx")
    if len(types) > 1:
        root = os.path.join(root, "devices", device or types[0])
    return fleet.exchange(root, get_trial_id_from_environment(), model, poll_interval=sleep_time, timeout=timeout)



def export_only() -> bool:
    """True when `nas` asks for the model only (`NAS_EXPORT_ONLY=1`, `nas search --latency-first`): export the
    untrained model to `saved_model/model.onnx` (`save_onnx`) and exit 0 without training; `nas` measures it first and
    trains the trial only if it meets the job's hard device targets."""
    return os.environ.get("NAS_EXPORT_ONLY") == "1"
