"""Turns `nas trials list JOB --json` of a grid search into the reward table SearchBench reads."""
import json
import sys

rows = json.load(sys.stdin)
table = [{"decisions": r["nas_params"]["decisions"], "nas_reward": r["nas_reward"],
          "top_1_accuracy": r["top_1_accuracy"], "latency_ms": r.get("latency_ms"), "value": r["nas_params"]["value"]}
         for r in rows if r["state"] == "succeeded"]
table.sort(key=lambda r: r["decisions"])
json.dump(table, sys.stdout, indent=1)
print()
