"""Benchmark: forward time of the CAM classifier — ResNet-38d at 448² (batch 1) and the small backbone at 128².

    python benchmarks/bench_nets.py [--repeats 3] [--threads 2]

Prints JSON: median seconds per forward (after one warm-up) in fp32 and in bf16 autocast + channels-last,
and the parameter counts. The anchor: the official SEAM net (YudeWang/SEAM@3212261:network/resnet38_SEAM.py) forward at
448² takes 2.52 s in fp32 on a 2-core Xeon with AMX.
"""

import argparse
import json
import statistics
import time

import torch

from wsss.nets.backbones import build_backbone
from wsss.nets.cam import CAMNet
from wsss.runtime import cpu_has_bf16


def forward_seconds(net: torch.nn.Module, x: torch.Tensor, bf16: bool, repeats: int, batch_size: int = 1) -> float:
    """Median wall time of one inference forward (eval mode, no grad)."""
    if bf16:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for _ in range(repeats + 1):
            start = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - start)
    return round(statistics.median(times[1:]) / batch_size, 4)


def run(repeats: int) -> dict:
    torch.manual_seed(0)
    figures = {"threads": torch.get_num_threads(), "cpu_bf16": cpu_has_bf16()}
    for name, size, batch in (("resnet38d", 448, 1), ("small", 128, 16)):
        net = CAMNet(build_backbone(name)).eval()
        x = torch.randn(batch, 3, size, size)
        figures[f"{name}_params"] = sum(p.numel() for p in net.parameters())
        key = f"{name}_cam_forward_{size}px_batch{batch}_s_per_image"
        figures[f"{key}_fp32"] = forward_seconds(net, x, False, repeats, batch)
        if cpu_has_bf16():
            figures[f"{key}_bf16_channels_last"] = forward_seconds(net, x, True, repeats, batch)
    figures["anchor_seam_net_forward_448_fp32_s"] = 2.52
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(run(args.repeats), indent=2))


if __name__ == "__main__":
    main()
