"""Issue 12's engine speed benchmark: batch-1 p50 of the native engine (`nas measure`) against onnxruntime (one
intra-op thread) on the same ONNX files, in one run.

Usage: python bench/engine_vs_ort.py --nas .build/release/nas --space-dir DIR --torchvision-dir DIR
           [--rounds 5] [--space-repeats 300] [--large-repeats 30]

--space-dir holds the architectures sampled from `mobilenet_v2_mini` (one `<trial>/saved_model/model.onnx` each, as
`nas search` leaves them); --torchvision-dir the four models of bench/export_torchvision.py. Every round measures
every model once with each runtime, the two runtimes alternating which goes first, so that machine noise hits
both alike; a model's figure is the median over rounds of each runtime's p50. Both runtimes' runs follow `nas
measure`'s preemption rule (a run during which the thread was descheduled counts its thread CPU time; onnxruntime
with one intra-op thread computes on the calling thread), so that a busy machine's waits land on neither. Prints per model the two p50s and
their ratio (engine / onnxruntime: below 1 means the engine is faster), then the median ratio over the space's
models. Targets (issue 12): median over the space <= 0.8x, each torchvision model <= 1.0x.
"""
import argparse, glob, os, statistics

import onnxruntime as ort

from onnx_latency import native, ort_p50

TORCHVISION = ["tv_mobilenet_v2", "tv_mobilenet_v3_small", "tv_resnet18", "tv_squeezenet1_1"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nas", required=True)
    parser.add_argument("--space-dir", required=True)
    parser.add_argument("--torchvision-dir", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--space-repeats", type=int, default=300)
    parser.add_argument("--large-repeats", type=int, default=30)
    args = parser.parse_args()
    space = sorted(glob.glob(os.path.join(args.space_dir, "*", "saved_model", "model.onnx")),
                   key=lambda p: int(p.split(os.sep)[-3]) if p.split(os.sep)[-3].isdigit() else 0)
    if not space:
        raise SystemExit(f"engine_vs_ort: no <trial>/saved_model/model.onnx under {args.space_dir}")
    models = [(f"space/{p.split(os.sep)[-3]}", p, args.space_repeats) for p in space]
    for name in TORCHVISION:
        path = os.path.join(args.torchvision_dir, name + ".onnx")
        if not os.path.exists(path):
            raise SystemExit(f"engine_vs_ort: {path} is missing; run bench/export_torchvision.py first")
        models.append((name, path, args.large_repeats))
    results = {name: {"native": [], "ort": []} for name, _, _ in models}
    for round in range(args.rounds):
        for index, (name, path, repeats) in enumerate(models):
            warmup = max(repeats // 5, 3)
            runs = [("native", lambda: native(args.nas, path, warmup, repeats)["latency_ms"]),
                    ("ort", lambda: ort_p50(path, warmup, repeats))]
            if (round + index) % 2:
                runs.reverse()
            for runtime, measure in runs:
                results[name][runtime].append(measure())
    print(f"batch-1 p50 latency, median of {args.rounds} rounds (onnxruntime {ort.__version__}, 1 intra-op thread; "
          f"{args.space_repeats} runs per round for the space's models, {args.large_repeats} for torchvision's)")
    print(f"{'model':<24} {'engine ms':>10} {'ort ms':>10} {'engine/ort':>11}")
    ratios = {}
    for name, _, _ in models:
        n, o = statistics.median(results[name]["native"]), statistics.median(results[name]["ort"])
        ratios[name] = n / o
        print(f"{name:<24} {n:>10.4f} {o:>10.4f} {n / o:>11.3f}")
    space_ratios = [ratios[name] for name, _, _ in models if name.startswith("space/")]
    median = statistics.median(space_ratios)
    print(f"median ratio over {len(space_ratios)} mobilenet_v2_mini architectures: {median:.3f} "
          f"(range {min(space_ratios):.3f}-{max(space_ratios):.3f}; target <= 0.8: {'met' if median <= 0.8 else 'not met'})")
    for name in TORCHVISION:
        print(f"{name}: {ratios[name]:.3f} (target <= 1.0: {'met' if ratios[name] <= 1.0 else 'not met'})")


if __name__ == "__main__":
    main()
