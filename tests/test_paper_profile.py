"""The paper profile executed end to end at tiny sizes: VOC2012 + SBD and DUTS in their released layouts,
ResNet-38d / ResNet-101 / ResNet-50 from random weights, every stage of both chains.

Only sizes and step counts are overridden (``--config``), plus ``weights: ""`` per network: the explicit
key for random initialisation, without which the profile stops with the error that says where to get the
ImageNet weights.
"""

import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from wsss.config import deep_merge
from wsss.data.classes import VOC_CLASSES
from wsss.io import read_label_png, save_label_png

from conftest import BIN, SHARED_DATA, run, write_sbd, write_xml

REAL_VOC_IDS = ("2011_000003", "2011_000006", "2011_000025")  # the real photos of the shared VOC data (train)
SIZE = (72, 56)
SOD_SETS = {"DUTS-TR": 4, "DUTS-TE": 2, "ECSSD": 2, "PASCAL-S": 2, "HKU-IS": 2, "DUT-OMRON": 2, "THUR15K": 2}

# Sizes and step counts only: a few steps of every training at a 64-pixel crop. MLflow is off: each stage
# run would open the store (5 s) and tracking has its own tests.
TINY = {"train_cls": {"crop": 64, "batch": 2, "epochs": 1, "resize_long": [64, 96]},
        "affinity": {"crop": 64, "batch": 2, "epochs": 1},
        "train_seg": {"crop": 64, "batch": 2, "iterations": 2},
        "sccam": {"rounds": 2, "clusters": 2},
        "ldf": {"batch": 2, "epochs": 1, "fine_epochs": 1, "train_sizes": [64], "test_size": 64},
        "tracking": {"enabled": False}}
RANDOM_INIT = {section: {"weights": ""} for section in ("train_cls", "affinity", "train_seg", "ldf")}


def config(*changes: dict, **keys: str) -> list[str]:
    """``--config`` entries: the paper profile, TINY and ``changes`` merged per section, then ``keys``."""
    sections = deep_merge(TINY, {})
    for change in changes:
        sections = deep_merge(sections, change)
    entries = {"profile": "paper", **{name: json.dumps(value) for name, value in sections.items()}, **keys}
    return ["--config", *(f"{name}={value}" for name, value in entries.items()), "--"]


def scene(rng, classes, size=SIZE):
    """A noisy photo with one rectangle per class, and its mask (class ids, a void border around each)."""
    width, height = size
    image = rng.integers(0, 80, (height, width, 3)).astype(np.uint8)
    mask = np.zeros((height, width), np.uint8)
    for k, cls in enumerate(classes):
        x0, y0 = 4 + 30 * k, int(rng.integers(4, height // 3))
        box = (slice(y0, y0 + height // 2), slice(x0, x0 + 26))
        mask[y0 - 1: y0 + height // 2 + 1, x0 - 1: x0 + 27] = 255
        mask[box] = cls
        image[box] = np.asarray([40 * cls % 256, 255 - 9 * cls, 120], np.uint8)
    return image, mask


def write_voc_and_sbd(raw):
    """VOC2012 (JPEGImages, SegmentationClass, Annotations, ImageSets) and SBD's dataset/ folder: VOC train
    holds the shared real photos (quarter size) when present, SBD adds images to train_aug."""
    voc, rng = raw / "VOCdevkit/VOC2012", np.random.default_rng(0)
    samples = {f"2007_00000{k}": [1 + k, 12] if k % 2 else [1 + k] for k in range(8)}
    images, masks = {}, {}
    for image_id, classes in samples.items():
        images[image_id], masks[image_id] = scene(rng, classes)
    shared = SHARED_DATA / "voc2012"
    real = [i for i in REAL_VOC_IDS if (shared / "JPEGImages" / f"{i}.jpg").is_file()]
    for image_id in real:
        photo = Image.open(shared / "JPEGImages" / f"{image_id}.jpg")
        size = (photo.width // 4, photo.height // 4)
        images[image_id] = np.asarray(photo.resize(size, Image.BILINEAR))
        masks[image_id] = np.asarray(Image.fromarray(read_label_png(shared / "SegmentationClassAug" /
                                                                    f"{image_id}.png")).resize(size, Image.NEAREST))
    voc_train, voc_val, sbd = ["2007_000000", "2007_000001", *real], ["2007_000002", "2007_000003"], list(samples)[4:]
    for image_id in images:
        (voc / "JPEGImages").mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[image_id]).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=95)
        classes = [c for c in np.unique(masks[image_id]) if 0 < c < 255]
        write_xml(voc / "Annotations" / f"{image_id}.xml", [VOC_CLASSES[c] for c in classes])
        if image_id not in sbd:
            (voc / "SegmentationClass").mkdir(exist_ok=True)
            save_label_png(voc / "SegmentationClass" / f"{image_id}.png", masks[image_id])
    (voc / "ImageSets/Segmentation").mkdir(parents=True)
    for split, ids in {"train": voc_train, "val": voc_val, "trainval": voc_train + voc_val}.items():
        (voc / "ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    write_sbd(raw / "benchmark_RELEASE/dataset", {i: masks[i] for i in sbd}, sbd[:3], sbd[3:])
    return len(voc_train) + len(sbd)


def write_sod(root):
    """DUTS-TR/TE as their zips unpack (<set>-Image, <set>-Mask) and the five other test sets (images, masks)."""
    rng = np.random.default_rng(1)
    for name, count in SOD_SETS.items():
        images, masks = (f"{name}-Image", f"{name}-Mask") if name.startswith("DUTS") else ("images", "masks")
        for k in range(count):
            image, mask = scene(rng, [1 + k % 3])
            (root / name / images).mkdir(parents=True, exist_ok=True)
            (root / name / masks).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / name / images / f"{name}_{k}.jpg", quality=95)
            Image.fromarray(np.where(mask == 255, 0, (mask > 0) * 255).astype(np.uint8)).save(
                root / name / masks / f"{name}_{k}.png")


@pytest.mark.slow
def test_the_paper_profile_runs_both_chains_at_tiny_sizes(project):
    train_aug = write_voc_and_sbd(project / "data/raw")
    write_sod(project / "data/raw/SOD")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    missing = subprocess.run(["snakemake", "--cores", "1", *config(), "models/cam/classifier/model.pt"], cwd=project,
                             env=env, capture_output=True, text=True)
    assert missing.returncode != 0
    assert "wsss import-weights resnet38_imagenet" in (project / "logs/cam/train_cls.log").read_text()

    # SC-CAM rounds, AffinityNet + random walk + CRF labels, DeepLab-v2 ResNet-101; LDF two-stage on ResNet-50
    run(["snakemake", "--cores", "2", *config(RANDOM_INIT, method="sccam", pseudo="rw_crf"), "results/voc_miou.json",
         "results/sod_metrics.json"], project)
    assert len((project / "data/prepared/voc/train_aug.txt").read_text().split()) == train_aug
    summary = json.loads((project / "results/voc_miou.json").read_text())
    assert (summary["profile"], summary["method"], summary["pseudo"]) == ("paper", "sccam", "rw_crf")
    assert all(0.0 <= summary[key] <= 1.0 for key in ("miou", "cam_miou", "pseudo_miou"))
    assert (project / "models/sccam_round1/classifier/model.pt").is_file()  # round 2 is sccam itself
    sod = json.loads((project / "results/sod_metrics.json").read_text())
    assert set(sod) == set(SOD_SETS) - {"DUTS-TR"}
    assert all(sod[name]["count"] == 2 and 0.0 <= sod[name]["mae"] <= 1.0 for name in sod)
    assert (project / "models/ldf/coarse/model.pt").is_file()

    # SEAM, and DeepLab-v1 on ResNet-38d as SEAM retrains
    deeplab_v1 = {"train_seg": {"arch": "deeplab_v1", "backbone": "resnet38d"}}
    run(["snakemake", "--cores", "2", *config(RANDOM_INIT, deeplab_v1, method="seam"), "results/voc_miou.json"],
        project)
    summary = json.loads((project / "results/voc_miou.json").read_text())
    assert (summary["method"], summary["pseudo"]) == ("seam", "crf")
