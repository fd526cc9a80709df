"""Benchmark: images/s of the data stages — synthetic generation, prepare (validation), label reading.

    python benchmarks/bench_data.py [--voc 2000] [--sod 2000] [--size 128] [--workers 2]

Prints JSON. Generation and prepare are timed as library calls (no MLflow), on a temporary folder.
Label reading decodes the real VOC train masks of ``../shared/data`` when present.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from wsss.data import sod, synth_sod, synth_voc, voc
from wsss.io import read_id_list, read_label_png

ROOT = Path(__file__).resolve().parents[1]

SHARED_VOC = ROOT.parent / "shared" / "data" / "voc2012"


def timed(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def run(voc_images: int, sod_images: int, size: int, workers: int) -> dict:
    figures = {"workers": workers, "size": size}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train = voc_images // 5
        voc_cfg = synth_voc.SynthVOCConfig(train=train, val=voc_images - voc_images * 4 // 5, train_aug=voc_images * 4 // 5, size=size)
        seconds = timed(synth_voc.generate, tmp / "voc", voc_cfg, workers=workers, progress=False)
        total = voc_cfg.train_aug + voc_cfg.val
        figures["synth_voc_images_per_s"] = round(total / seconds, 1)
        seconds = timed(voc.prepare_voc, tmp / "voc", tmp / "prepared_voc", workers=workers, progress=False)
        figures["prepare_voc_images_per_s"] = round(total / seconds, 1)

        sod_cfg = synth_sod.SynthSODConfig(train=sod_images, test=max(1, sod_images // 10), size=size)
        seconds = timed(synth_sod.generate, tmp / "sod", sod_cfg, workers=workers, progress=False)
        total = sod_cfg.train + sod_cfg.test
        figures["synth_sod_images_per_s"] = round(total / seconds, 1)
        seconds = timed(sod.prepare_sod, tmp / "sod", ["DUTS-TR"], ["ECSSD"], tmp / "prepared_sod",
                        workers=workers, progress=False)
        figures["prepare_sod_images_per_s"] = round(total / seconds, 1)

    masks = SHARED_VOC / "SegmentationClassAug"
    if masks.is_dir():
        ids = read_id_list(SHARED_VOC / "ImageSets" / "Segmentation" / "train.txt")
        seconds = timed(lambda: [read_label_png(masks / f"{image_id}.png") for image_id in ids])
        figures["read_voc_train_masks_per_s_1_process"] = round(len(ids) / seconds, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voc", type=int, default=2000, help="synthetic VOC images (train_aug + val)")
    parser.add_argument("--sod", type=int, default=2000, help="synthetic DUTS-TR images (+10 %% test)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(run(args.voc, args.sod, args.size, args.workers), indent=2))


if __name__ == "__main__":
    main()
