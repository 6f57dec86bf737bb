"""`NasMetricsReporter`: reports a trial's metrics the way vertex-ai-nas's does, for `nas` to read back.

It writes the hypertune file named by `CLOUD_ML_HP_METRIC_FILE` (one JSON object per report, the last line the
latest, values as strings), without vertex-ai-nas's limits: any number of other metrics, any value, any name.
"""

from __future__ import annotations

import collections
import json
import os
import time
from typing import Mapping, Optional

_DEFAULT_HYPERPARAMETER_METRIC_TAG = "training/hptuning/metric"
_DEFAULT_METRIC_PATH = "/tmp/hypertune/output.metrics"
_MAX_NUM_METRIC_ENTRIES_TO_PRESERVE = 100
_PROTECTED = ("model_flops", "global_step", "timestamp", "trial", "checkpoint_path")


class NasMetricsReporter:
    """Writes metric reports to the hypertune file `nas` reads after the trainer exits."""

    def __init__(self, metric_path: Optional[str] = None) -> None:
        self.metric_path = metric_path or os.environ.get("CLOUD_ML_HP_METRIC_FILE", _DEFAULT_METRIC_PATH)
        folder = os.path.dirname(self.metric_path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self.trial_id = os.environ.get("CLOUD_ML_TRIAL_ID", "0")
        self.metrics_queue: collections.deque = collections.deque(maxlen=_MAX_NUM_METRIC_ENTRIES_TO_PRESERVE)
        # Reports already in the file (another reporter of the same run, e.g. report_intermediate_result's) are
        # kept: the file is rewritten whole on each report.
        if os.path.exists(self.metric_path):
            with open(self.metric_path) as handle:
                for line in handle:
                    try:
                        self.metrics_queue.append(json.loads(line))
                    except ValueError:
                        continue

    def report_metrics(
        self,
        hyperparameter_metric_tag: Optional[str],
        metric_value: float,
        global_step: Optional[int] = None,
        checkpoint_path: str = "",
        model_flops: float = 0.0,
        other_metrics: Optional[Mapping[str, float]] = None,
    ) -> None:
        """Reports `metric_value` under the tag (`CLOUD_ML_HP_METRIC_TAG` when None) and `other_metrics`."""
        tag = hyperparameter_metric_tag or os.environ.get("CLOUD_ML_HP_METRIC_TAG") or _DEFAULT_HYPERPARAMETER_METRIC_TAG
        body = {
            "timestamp": time.time(),
            "trial": str(self.trial_id),
            tag: str(float(metric_value)),
            "global_step": str(int(global_step) if global_step else 0),
            "checkpoint_path": checkpoint_path,
            "model_flops": str(float(model_flops)),
        }
        count = 0
        for key, value in (other_metrics or {}).items():
            if key == tag or key in _PROTECTED:
                raise ValueError(f"other_metrics may not use the reserved name {key!r}")
            body[f"key_{count}"] = str(key)
            body[f"value_{count}"] = str(float(value))
            count += 1
        self.metrics_queue.append(body)
        # Written whole and renamed into place, so that a reader never sees half a file.
        partial = self.metric_path + ".partial"
        with open(partial, "w") as handle:
            for metric in self.metrics_queue:
                handle.write(json.dumps(metric, sort_keys=True) + "\n")
        os.replace(partial, self.metric_path)


_intermediate_reporter: Optional[NasMetricsReporter] = None
_intermediate_step = 0


def report_intermediate_result(metric: float, step: Optional[int] = None) -> None:
    """Reports the accuracy after `step` steps (1, 2, ... when None), as NNI's `report_intermediate_result` does.

    Written as a hypertune line with its `global_step`, under the job's accuracy metric (`NAS_ACCURACY_METRIC`,
    default `top_1_accuracy`). With `nas search --pruner`, the search reads these while the trainer runs and may stop
    it at a rung: the trainer then gets SIGTERM, and SIGKILL after `--pruner-grace-seconds`. Steps are in the unit
    of `--num-epochs` (`--pruner-max-resource`), usually epochs. The final result is still `report_metrics`'s.
    """
    global _intermediate_reporter, _intermediate_step
    if _intermediate_reporter is None:
        _intermediate_reporter = NasMetricsReporter()
    _intermediate_step = int(step) if step is not None else _intermediate_step + 1
    if _intermediate_step <= 0:
        raise ValueError(f"step must be 1 or more, not {_intermediate_step}")
    tag = os.environ.get("NAS_ACCURACY_METRIC") or "top_1_accuracy"
    _intermediate_reporter.report_metrics(tag, float(metric), global_step=_intermediate_step)
