"""The trainer side of `nas`: what a vertex-ai-nas trainer imports, for a trainer that `nas search` runs.

Port a seed trainer by changing its imports::

    from nas_helper import cloud_nas_utils
    from nas_helper import metrics_reporter

The core uses only the standard library; `h2` (latency from the coordinator over HTTP/2), `tf2onnx` (TensorFlow
SavedModels to ONNX) and `pyglove` (materialising a PyGlove search space) are used where they are installed.
"""

from nas_helper import cloud_nas_utils, metrics_reporter
from nas_helper.cloud_nas_utils import (
    compute_reward,
    export_only,
    get_job_dir_from_environment_if_exist,
    get_saved_model_dir,
    parse_and_save_nas_params_str,
    wait_and_retrieve_latency,
)
from nas_helper.metrics_reporter import NasMetricsReporter, report_intermediate_result

__all__ = [
    "cloud_nas_utils",
    "metrics_reporter",
    "compute_reward",
    "export_only",
    "report_intermediate_result",
    "get_job_dir_from_environment_if_exist",
    "get_saved_model_dir",
    "parse_and_save_nas_params_str",
    "wait_and_retrieve_latency",
    "NasMetricsReporter",
]
