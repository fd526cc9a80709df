"""Benchmark: dense CRF pseudo labels and multi-scale CAM inference at VOC size (500×375).

    python benchmarks/bench_infer.py [--crf-images 24] [--cam-images 2] [--parallel-images 4] [--parts crf cam parallel]

Prints JSON with three parts (anchors: the official code of YudeWang/SEAM@3212261 measured on
a 2-core Xeon with AMX):

* ``crf``: ``crf_label_dir`` on 20-class CAM files (21 CRF labels, 10 iterations) with 1 and 2
  workers, plus ``dense_crf`` alone; SEAM's ``crf_inference`` (YudeWang/SEAM@3212261:tool/imutils.py:220-237) runs at
  1.6 / 3.2 img/s here, the target
  is ≥ 3.1 img/s with 2 workers.
* ``cam``: seconds per image of ``multiscale_cam`` with scales (0.5, 1, 1.5, 2) + flip, fp32 and bf16
  (channels-last), on ``CAMNet(build_backbone("resnet38d"))`` with random weights (the FLOPs do not
  depend on them); YudeWang/SEAM@3212261:infer_SEAM.py takes 44.9 s, the target is ≤ 15 s.
* ``parallel``: ``infer_cam_dir`` with 1 process × 2 threads against 2 processes × 1 thread, for
  smoke-sized images (128×96, ``small`` backbone) and VOC-sized ones (``resnet38d``).

Images are the real VOC JPEGs of ``../shared/data/voc2012`` resized to 500×375 when present, else
random pixels. The machine may be shared: the load average before and after, and the cores each
timing kept busy (CPU seconds / wall seconds; 2.0 = both cores of this machine), are reported.
"""

import argparse
import copy
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from wsss.config import CRFConfig, InferCamConfig
from wsss.data.cam_files import save_cams
from wsss.infer.cam import infer_cam_dir, multiscale_cam
from wsss.infer.crf import crf_label_dir, dense_crf
from wsss.runtime import Runtime, cpu_has_bf16

ROOT = Path(__file__).resolve().parents[1]

SHARED_JPEGS = ROOT.parent / "shared" / "data" / "voc2012" / "JPEGImages"
CRF = CRFConfig(alpha_low=4, alpha_high=24, iterations=10, gaussian_sxy=3, gaussian_compat=3,
                bilateral_sxy=80, bilateral_srgb=13, bilateral_compat=10)
SCALES = (0.5, 1.0, 1.5, 2.0)
CPU = torch.device("cpu")


def cpu_seconds() -> float:
    """CPU time of this process and its finished children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(function, *args, **kwargs) -> tuple[float, float]:
    """Wall seconds of a call and the cores it kept busy on average (CPU seconds / wall seconds).

    On a shared machine, busy cores well below the thread count mean the figure is contended.
    """
    wall, cpu = time.perf_counter(), cpu_seconds()
    function(*args, **kwargs)
    wall = time.perf_counter() - wall
    return wall, (cpu_seconds() - cpu) / wall


def voc_tree(root: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[str]:
    """``count`` JPEGs of ``size`` (w, h) under ``root/JPEGImages``: the shared VOC images in turn, or noise."""
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    sources = sorted(SHARED_JPEGS.glob("*.jpg")) if SHARED_JPEGS.is_dir() else []
    rng = np.random.default_rng(seed)
    ids = [f"bench_{i:04d}" for i in range(count)]
    for i, image_id in enumerate(ids):
        if sources:
            with Image.open(sources[i % len(sources)]) as image:
                image = image.convert("RGB").resize(size, Image.BILINEAR)
        else:
            image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        image.save(root / "JPEGImages" / f"{image_id}.jpg", quality=90)
    return ids


def smooth_cams(classes: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Blob-like CAMs in [0, 1]: coarse noise upsampled bilinearly, max-normalised per class."""
    coarse = torch.from_numpy(rng.random((1, classes, 6, 8), dtype=np.float32)) ** 4
    cams = F.interpolate(coarse, (height, width), mode="bilinear", align_corners=False)[0].numpy()
    return cams / cams.max(axis=(1, 2), keepdims=True)


def bench_crf(images: int) -> dict:
    figures = {"labels": 21, "iterations": CRF.iterations, "size": "500x375",
               "anchor_seam_img_per_s": {"1": 1.6, "2": 3.2}, "target_img_per_s_2_workers": 3.1}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ids = voc_tree(tmp / "voc", images, (500, 375))
        rng = np.random.default_rng(0)
        for image_id in ids:
            save_cams(tmp / "cams" / f"{image_id}.npz", np.arange(1, 21), smooth_cams(20, 375, 500, rng))
        image = np.asarray(Image.open(tmp / "voc" / "JPEGImages" / f"{ids[0]}.jpg"))
        scores = np.concatenate([np.full((1, 375, 500), 0.2, np.float32), smooth_cams(20, 375, 500, rng)])
        dense_crf(image, scores, 10, 3, 3, 80, 13, 10)
        seconds = [timed(dense_crf, image, scores, 10, 3, 3, 80, 13, 10)[0] for _ in range(5)]
        figures["dense_crf_s_per_img_1_process"] = round(statistics.median(seconds), 3)
        for workers in (1, 2):
            seconds, cores = timed(crf_label_dir, tmp / "voc", ids, tmp / "cams", tmp / f"labels{workers}", CRF,
                                   alpha=4, workers=workers, progress=False)
            figures[f"crf_label_dir_img_per_s_{workers}_workers"] = round(images / seconds, 2)
            figures[f"crf_label_dir_busy_cores_{workers}_workers"] = round(cores, 2)
    return figures


class DilatedResNet50(torch.nn.Module):
    """Stand-in CAM network when ``wsss.nets`` is missing: torchvision ResNet-50 at output stride 8."""

    def __init__(self):
        super().__init__()
        import torchvision

        net = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
        self.features = torch.nn.Sequential(*list(net.children())[:-2])
        self.classifier = torch.nn.Conv2d(2048, 20, 1, bias=False)

    def cam(self, x, classes=None):
        maps = torch.relu(self.classifier(self.features(x)))
        return maps if classes is None else maps.index_select(1, classes)


def cam_network(name: str) -> tuple[torch.nn.Module, str]:
    """``CAMNet(build_backbone(name))`` with random weights, or ``DilatedResNet50`` if wsss.nets is absent."""
    torch.manual_seed(0)
    try:
        from wsss.nets.backbones import build_backbone
        from wsss.nets.cam import CAMNet
    except ImportError:
        return DilatedResNet50().eval(), "stand-in: torchvision ResNet-50, output stride 8 (wsss.nets missing)"
    return CAMNet(build_backbone(name)).eval(), f"wsss.nets.cam.CAMNet(build_backbone({name!r})), random weights"


def forward_gflop(model: torch.nn.Module, height: int, width: int) -> float:
    """GFLOP of the CAM forward passes of one image (every scale, image + flip), counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(model).to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        for scale in SCALES:
            meta.cam(torch.empty(2, 3, round(height * scale), round(width * scale), device="meta"))
    return counter.get_total_flops() / 1e9


def bench_cam(images: int, backbone: str) -> dict:
    model, description = cam_network(backbone)
    figures = {"network": description, "scales": list(SCALES), "flip": True, "size": "500x375",
               "anchor_seam_s_per_img": 44.9, "fp32_flop_bound_s": 33.9, "target_s_per_img": 15}
    with tempfile.TemporaryDirectory() as tmp:
        voc_tree(Path(tmp), 1, (500, 375))
        image = np.asarray(Image.open(next((Path(tmp) / "JPEGImages").iterdir())).convert("RGB"))
    precisions = ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]
    for precision in precisions:
        runtime = Runtime(CPU, precision)
        net = runtime.prepare(model)
        multiscale_cam(net, image, [2, 14], SCALES, True, "max", runtime)  # warm-up
        runs = [timed(multiscale_cam, net, image, [2, 14], SCALES, True, "max", runtime) for _ in range(images)]
        figures[f"{precision}_s_per_img"] = round(statistics.median(seconds for seconds, _ in runs), 2)
        figures[f"{precision}_busy_cores"] = round(statistics.median(cores for _, cores in runs), 2)
    gflop = forward_gflop(model, 375, 500)
    figures["gflop_per_img"] = round(gflop)
    for precision in precisions:
        figures[f"{precision}_gflop_per_s"] = round(gflop / figures[f"{precision}_s_per_img"])
    if "bf16_s_per_img" in figures:
        figures["bf16_speed_up"] = round(figures["fp32_s_per_img"] / figures["bf16_s_per_img"], 2)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return figures


def bench_parallel(images: int) -> dict:
    """img/s of infer_cam_dir: 1 process × all threads vs 2 processes × 1 thread, small and VOC-sized images."""
    runtime = Runtime(CPU, "bf16" if cpu_has_bf16() else "fp32")
    cfg = InferCamConfig(scales=SCALES, flip=True, norm="max")
    figures = {"precision": runtime.precision, "threads": torch.get_num_threads()}
    cases = {"small_128x96": ("small", (128, 96), images * 25), "voc_500x375": ("resnet38d", (500, 375), images)}
    for case, (backbone, size, count) in cases.items():
        model, description = cam_network(backbone)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            ids = voc_tree(tmp / "voc", count, size)
            labels = {image_id: np.eye(20, dtype=np.float32)[[2, 14]].sum(0) for image_id in ids}
            infer_cam_dir(model, tmp / "voc", ids[:1], labels, tmp / "warm", cfg, runtime, progress=False)
            result = {"network": description, "images": count}
            for workers in (1, 2, 1, 2):  # interleaved, best of two: the machine may be shared
                seconds, cores = timed(infer_cam_dir, model, tmp / "voc", ids, labels, tmp / f"out{workers}", cfg,
                                       runtime, workers=workers, progress=False)
                key = f"{workers}_proc_x_{figures['threads'] // workers}_threads"
                if count / seconds > result.get(f"img_per_s_{key}", 0):
                    result[f"img_per_s_{key}"] = round(count / seconds, 4)
                    result[f"busy_cores_{key}"] = round(cores, 2)
            result["children_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        figures[case] = result
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crf-images", type=int, default=24)
    parser.add_argument("--cam-images", type=int, default=2, help="timed images per precision (after a warm-up)")
    parser.add_argument("--parallel-images", type=int, default=4, help="VOC-sized images (×25 small ones)")
    parser.add_argument("--backbone", default="resnet38d")
    parser.add_argument("--parts", nargs="+", choices=("crf", "cam", "parallel"), default=("crf", "cam", "parallel"))
    args = parser.parse_args()
    report = {"cpu_threads": torch.get_num_threads(), "load_average_before": os.getloadavg()[0]}
    if "crf" in args.parts:
        report["crf"] = bench_crf(args.crf_images)
    if "cam" in args.parts:
        report["cam"] = bench_cam(args.cam_images, args.backbone)
    if "parallel" in args.parts:
        report["parallel"] = bench_parallel(args.parallel_images)
    report["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
