"""Benchmark: mIoU of label PNGs on VOC train (1,464 masks), whole process, ours vs SEAM.

Writes a degraded copy of the ground truth (shifted masks, swapped classes, dropped blocks;
no 255, so both tools agree on every pixel) to a temporary folder, then times, as whole
processes (median of ``--repeats`` runs after one warm-up):

(a) ``wsss evaluate segmentation --no-track`` (the user's command, reading params.yaml);
(b) with ``--seam-dir``, SEAM's official evaluation.py (YudeWang/SEAM@3212261:evaluation.py), run unmodified.

Both must give the same mIoU to 1e-6. Prints JSON (images/s and the ratio).

    python benchmarks/bench_evaluate.py --seam-dir /path/to/SEAM
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from wsss.io import read_id_list, read_label_png, save_label_png

from timing import row

ROOT = Path(__file__).resolve().parents[1]


def degrade(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible wrong prediction: shifted mask, sometimes a swapped class, a dropped block."""
    pred = np.where(gt == 255, 0, gt).astype(np.uint8)
    dy, dx = rng.integers(-12, 13, size=2)
    pred = np.roll(pred, (dy, dx), axis=(0, 1))
    if rng.random() < 0.25:
        present = np.unique(pred[pred > 0])
        if present.size:
            pred[pred == rng.choice(present)] = rng.integers(1, 21)
    h, w = pred.shape
    y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
    pred[y:y + h // 4, x:x + w // 4] = 0
    return pred


def time_runs(commands: dict[str, list[str]], repeats: int, env: dict) -> tuple[dict, dict]:
    """Wall and CPU (user + system, all processes) seconds of whole processes, interleaved
    so that load from other programs hits every tool alike."""
    for command in commands.values():
        subprocess.run(command, check=True, capture_output=True, env=env)  # warm-up (page cache)
    wall, cpu = {name: [] for name in commands}, {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            cpu_start, start = _children_cpu(), time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env=env)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(_children_cpu() - cpu_start)
    return wall, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def summary(wall: list[float], cpu: list[float], images: int) -> dict:
    median = statistics.median(wall)
    return {"runs_s": [round(t, 3) for t in wall], "median_s": round(median, 3),
            "img_per_s": round(images / median, 1), "cpu_s": round(statistics.median(cpu), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--voc", type=Path, default=ROOT.parent / "shared/data/voc2012",
                        help="VOC folder with SegmentationClassAug/ and ImageSets/Segmentation/")
    parser.add_argument("--split", default="train")
    parser.add_argument("--sod", type=Path, default=ROOT.parent / "shared/data/sod-eval",
                        help="folder with masks/ and pred/DSS/ (saliency scoring speed)")
    parser.add_argument("--seam-dir", type=Path, help="a checkout of YudeWang/SEAM (its evaluation.py is run as is)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    list_file = args.voc / "ImageSets/Segmentation" / f"{args.split}.txt"
    gt_dir = args.voc / "SegmentationClassAug"
    ids = read_id_list(list_file)
    env = dict(os.environ)  # the subprocesses run the installed wsss

    with tempfile.TemporaryDirectory(prefix="bench_evaluate.") as tmp:
        pred_dir = Path(tmp) / "pred"
        pred_dir.mkdir()
        rng = np.random.default_rng(0)
        for image_id in ids:
            save_label_png(pred_dir / f"{image_id}.png", degrade(read_label_png(gt_dir / f"{image_id}.png"), rng))

        ours_json = Path(tmp) / "ours.json"
        commands = {"ours": [sys.executable, "-m", "wsss.cli", "evaluate", "segmentation", "--pred", str(pred_dir),
                             "--gt", str(gt_dir), "--list", str(list_file), "--out", str(ours_json),
                             "--workers", str(args.workers), "--no-track", "--params", str(ROOT / "params.yaml")]}
        log = Path(tmp) / "seam_log.txt"
        if args.seam_dir:
            commands["seam"] = [sys.executable, str(args.seam_dir / "evaluation.py"), "--list", str(list_file),
                                "--predict_dir", str(pred_dir), "--gt_dir", str(gt_dir), "--logfile", str(log),
                                "--comment", "bench", "--type", "png"]
        wall, cpu = time_runs(commands, args.repeats, env)
        ours = json.loads(ours_json.read_text())
        report = {"images": len(ids), "split": args.split, "workers": args.workers, "cpus": os.cpu_count(),
                  "load_average_1min": round(os.getloadavg()[0], 2),
                  "ours": {**summary(wall["ours"], cpu["ours"], len(ids)), "miou": ours["miou"]}}
        if args.seam_dir:
            last = log.read_text().strip().splitlines()[-2]  # writelog: "<key>:<value>  ..." then a rule
            seam_miou = float(dict(item.split(":", 1) for item in last.split())["mIoU"]) / 100
            report["seam"] = {**summary(wall["seam"], cpu["seam"], len(ids)), "miou": seam_miou}
            report["speedup"] = round(report["ours"]["img_per_s"] / report["seam"]["img_per_s"], 2)
            assert abs(seam_miou - ours["miou"]) < 1e-6, f"mIoU differs: ours {ours['miou']}, SEAM {seam_miou}"
            timed = {name: {"median_s": statistics.median(wall[name]), "runs_s": wall[name], "peak_mb": None}
                     for name in ("ours", "seam")}
            report["ratios"] = [row(f"evaluation, {len(ids)} VOC {args.split} masks, whole process", len(ids), "img",
                                    timed["ours"], timed["seam"], 4.0, "integer counts",
                                    f"same mIoU to 1e-6; ours {args.workers} workers, SEAM's 8 processes")]
        report["saliency"] = saliency(args.sod, args.repeats, env, Path(tmp))
    print(json.dumps(report, indent=2))


def saliency(sod: Path, repeats: int, env: dict, tmp: Path) -> dict | None:
    """Whole-process ``wsss evaluate saliency --no-track`` on the SOD benchmark's published maps."""
    masks, maps = sod / "masks", sod / "pred" / "DSS"
    if not masks.is_dir():
        return None
    command = [sys.executable, "-m", "wsss.cli", "evaluate", "saliency", "--pred", str(maps), "--gt", str(masks),
               "--out", str(tmp / "saliency.json"), "--no-track", "--params", str(ROOT / "params.yaml")]
    wall, cpu = time_runs({"saliency": command}, repeats, env)
    return summary(wall["saliency"], cpu["saliency"], len(list(masks.glob("*.png"))))


if __name__ == "__main__":
    main()
