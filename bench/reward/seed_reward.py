"""The seed's reward formula in CPython: vertex-ai-nas `cloud_nas_utils.compute_reward`'s documented
arithmetic (MnasNet hard/soft exponential reward), re-stated for parity tests and the `nas reward` benchmark.

Usage: python3 seed_reward.py < lines.jsonl > rewards.jsonl
Each input line holds compute_reward's keyword arguments; each output line is {"reward": R} or {"error": E}.
"""
import json
import sys


def compute_reward(accuracy, target_latency_or_flops, measured_latency_or_flops,
                   target_memory=0, measured_memory=0, weight=1, use_hard_limit=True):
    ratio = float(target_latency_or_flops) / float(measured_latency_or_flops)
    if target_memory == 0:
        memory_ratio = 1
    else:
        if not measured_memory:
            raise ValueError("measured_memory should not be 0.")
        memory_ratio = float(target_memory) / float(measured_memory)
    latency_factor = ratio ** weight
    memory_factor = memory_ratio ** weight
    if use_hard_limit:
        latency_factor = min(latency_factor, 1.0)
        memory_factor = min(memory_factor, 1.0)
    return accuracy * latency_factor * memory_factor


def main():
    out = sys.stdout
    for line in sys.stdin:
        try:
            reward = compute_reward(**json.loads(line))
            if isinstance(reward, complex):
                raise TypeError("complex result")
            out.write(json.dumps({"reward": reward}) + "\n")
        except Exception as error:  # the parity test only needs to know that Python refused
            out.write(json.dumps({"error": type(error).__name__}) + "\n")


if __name__ == "__main__":
    main()
