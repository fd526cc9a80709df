"""Benchmark: SEAM's training step beside the CAM baseline's — ResNet-38d, 448² crop, batch 2.

    python benchmarks/bench_seam.py [--steps 2] [--size 448] [--batch 2] [--precision auto]

Prints JSON. Each variant runs in its own process (peak RSS is per process): one warm-up step, then
``--steps`` timed steps (forward, loss, backward, SGD step) of ``wsss.losses.seam_loss`` on ``SEAMNet``
(0.3× second branch, OHEM, min pooling) or of the soft-margin loss on ``CAMNet``, on random images, with
the backbone frozen as psa/SEAM train it (conv1a, b2–b2_2 and every BN). The PCM's affinity alone is
N·(hw)² entries (56² positions at 448: 9.8 M per image). The anchor: the official
SEAM step (YudeWang/SEAM@3212261:train_SEAM.py:104-146) takes 9.5 s per image in fp32 on a 2-core Xeon with AMX; the
target is ≤ 5 s per image.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from wsss.config import SEAMConfig
from wsss.losses import seam_loss
from wsss.nets.backbones import build_backbone
from wsss.nets.cam import CAMNet
from wsss.nets.seam import SEAMNet
from wsss.runtime import pick_runtime

OFFICIAL = SEAMConfig(rescale=0.3, flip=False, cls_weight=1.0, er_weight=1.0, er_source="cam", ecr_weight=1.0,
                      ohem_ratio=0.2, official_detach=True, pcm_classes="all", min_pool_loss=True, min_pool_weight=1.0,
                      min_pool_ratio=0.25)


def cam_loss(model, batch):
    images, labels = batch
    return {"loss": F.multilabel_soft_margin_loss(model(images).float(), labels)}


def step_seconds(method: str, size: int, batch: int, steps: int, precision: str) -> dict:
    """Median seconds per training step and the process's peak RSS (this process runs one variant only)."""
    runtime = pick_runtime("cpu", precision)
    torch.manual_seed(0)
    backbone = build_backbone("resnet38d", frozen_stages=2, frozen_bn=True)
    net = runtime.prepare(SEAMNet(backbone) if method == "seam" else CAMNet(backbone)).train()
    loss_fn = (lambda model, b: seam_loss(model, b, OFFICIAL)) if method == "seam" else cam_loss
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    images = runtime.batch(torch.randn(batch, 3, size, size))
    labels = (torch.rand(batch, 20) > 0.85).float()
    labels[:, 0] = 1
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with runtime.autocast():
            loss = loss_fn(net, (images, labels))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    seconds = sorted(times[1:])[len(times[1:]) // 2]
    return {"seconds_per_step": round(seconds, 3), "seconds_per_image": round(seconds / batch, 3),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "precision": runtime.precision, "step_times": [round(t, 3) for t in times]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--precision", default="auto", help="auto | fp32 | bf16")
    parser.add_argument("--only", choices=("cam", "seam"), help=argparse.SUPPRESS)  # one variant, in a child
    args = parser.parse_args()
    if args.only:
        print(json.dumps(step_seconds(args.only, args.size, args.batch, args.steps, args.precision)))
        return
    report = {"backbone": "resnet38d", "size": args.size, "batch": args.batch, "threads": torch.get_num_threads(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "load_average_before": round(os.getloadavg()[0], 2)}
    for method in ("cam", "seam"):
        child = subprocess.run([sys.executable, __file__, "--only", method, "--steps", str(args.steps),
                                "--size", str(args.size), "--batch", str(args.batch), "--precision", args.precision],
                               capture_output=True, text=True, check=True)
        report[method] = json.loads(child.stdout)
    report["seam_over_cam"] = round(report["seam"]["seconds_per_step"] / report["cam"]["seconds_per_step"], 2)
    report["anchor_official_seam_seconds_per_image"] = 9.5
    report["target_seconds_per_image"] = 5.0
    report["load_average_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
