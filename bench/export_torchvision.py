"""Exports torchvision's MobileNet-V2, MobileNet-V3-Small, ResNet-18 and SqueezeNet 1.1 (random weights, eval mode,
batch 1, 3x224x224) to ONNX with torch's TorchScript exporter, for bench/onnx_latency.py.

Usage: /work/bench-venv/bin/python bench/export_torchvision.py CACHE_FOLDER
Needs torch and torchvision (a benchmark-only peer, never in the test .venv); files already in the folder are kept.
"""
import os, sys
import torch
import torchvision

MODELS = {
    "tv_mobilenet_v2": torchvision.models.mobilenet_v2,
    "tv_mobilenet_v3_small": torchvision.models.mobilenet_v3_small,
    "tv_resnet18": torchvision.models.resnet18,
    "tv_squeezenet1_1": torchvision.models.squeezenet1_1,
}


def main():
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(0)
    for name, build in MODELS.items():
        path = os.path.join(folder, name + ".onnx")
        if os.path.exists(path):
            continue
        model = build(weights=None).eval()
        x = torch.rand(1, 3, 224, 224)
        with torch.no_grad():
            torch.onnx.export(model, x, path + ".tmp", input_names=["input"], output_names=["output"],
                              opset_version=17, dynamo=False)
        os.replace(path + ".tmp", path)
        print(path)


if __name__ == "__main__":
    main()
