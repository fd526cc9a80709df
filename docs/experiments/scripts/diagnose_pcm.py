"""Diagnosis: what limits the pixel correlation module's revision of a trained classifier's CAMs.

    python docs/experiments/scripts/diagnose_pcm.py MODEL.pt [--voc data/prepared/voc] [--split train]
        [--set method=seam ...]

Run from the repository root (relative paths as for ``wsss``); it needs a classifier trained by
``wsss train-cls`` (``--set`` as for that run). For every image of the split it takes the single-scale,
unflipped CAM of the present classes and revises it with SEAM's PCM (paper Eq. 4,
``wsss.nets.seam.pixel_correlation``) under several affinities and inputs, and scores each variant as
``eval_cam`` does (mIoU at the background threshold and at the best of the sweep). Variants:

* ``cam``: the CAM itself (max-normalised), what the PCM starts from;
* ``pcm``: the network's own PCM as inference reads it (SEAM networks), whose input keeps, per pixel, the
  strongest of all 20 classes as the official code (YudeWang/SEAM@3212261:network/resnet38_SEAM.py:34-40);
* ``pcm, present classes``: the same trained projections with the input restricted to the image's classes;
* ``cosine of <level>``: the untrained cosine affinity of a backbone level (or of the image), present classes;
  ``cosine of mid, all classes`` as ``pcm`` builds its input;
* ``oracle affinity``: 1 between pixels of the same ground-truth label, 0 otherwise: what any affinity can
  reach with these CAMs' class decisions;
* ``stride ceiling``: the ground truth pooled to the CAM's stride and upsampled, what any map at that
  stride can reach;
* ``cam at <s>×`` (``--cam-scales``): the CAM of the image rescaled by ``s``, to see whether the CAM of a
  smaller image is more complete (SEAM's premise, paper Fig. 1), which is what ECR's cross targets assume.

Prints JSON (percent).
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from wsss.config import load_config
from wsss.data.datasets import open_prepared_voc
from wsss.data.voc import image_path, load_mask
from wsss.infer.cam import scaled_views
from wsss.io import read_rgb
from wsss.metrics.segmentation import cam_sweep_counts, sweep_mious, sweep_thresholds
from wsss.nets.seam import SEAMNet, pcm_input, pixel_correlation
from wsss.stages.common import trained_network

ROOT = Path(__file__).resolve().parents[3]

NUM_CLASSES = 21


def per_class_max(maps: torch.Tensor) -> torch.Tensor:
    maps = maps.clamp(min=0)
    return maps / (maps.amax(dim=(-2, -1), keepdim=True) + 1e-5)


def pcm_target(cams: torch.Tensor) -> torch.Tensor:
    """SEAM's PCM input (``wsss.nets.seam.pcm_input``) of K foreground maps: (1 + K)×h×w."""
    return pcm_input(torch.cat([torch.zeros_like(cams[:1]), cams])[None])[0]


def revised(target: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """The foreground channels of ``pixel_correlation(target, features)``, max-normalised."""
    return per_class_max(pixel_correlation(target[None], features[None])[0, 1:])


def raw_cams(model, levels: dict[str, torch.Tensor]) -> torch.Tensor:
    """The ReLU'd foreground class maps (20×h×w) of one image's backbone levels, before any PCM."""
    raw = model.classifier(levels["out"])[0]
    return F.relu(raw[1:] if isinstance(model, SEAMNet) else raw)


def variants(model, x: torch.Tensor, keys: torch.Tensor, gt: np.ndarray) -> dict[str, torch.Tensor]:
    """Every variant's K×h×w maps of one normalised 1×3×H×W image with present classes ``keys`` (0..19)."""
    levels = model.backbone(x)
    is_seam = isinstance(model, SEAMNet)
    cams = raw_cams(model, levels)
    size = cams.shape[1:]
    image = F.interpolate(x, size, mode="bilinear", align_corners=True)[0]
    target, target_all = pcm_target(cams[keys]), pcm_target(cams)
    labels = torch.from_numpy(gt.astype(np.int64)).clamp(max=NUM_CLASSES)
    oracle = F.one_hot(F.interpolate(labels[None, None].float(), size, mode="nearest")[0, 0].long(), NUM_CLASSES + 1)
    pooled = F.adaptive_avg_pool2d(F.one_hot(labels, NUM_CLASSES + 1).permute(2, 0, 1).float()[None], size)[0]
    out = {"cam": per_class_max(cams[keys])}
    if is_seam:
        projected = model.pcm_features(levels["low"], levels["mid"], image[None])[0]
        out["pcm"] = revised(target_all, projected)[keys]
        out["pcm, present classes"] = revised(target, projected)
    for name, features in (("low", levels["low"][0]), ("mid", levels["mid"][0]), ("out", levels["out"][0]),
                           ("image", image)):
        out[f"cosine of {name}"] = revised(target, features)
    out["cosine of mid, all classes"] = revised(target_all, levels["mid"][0])[keys]
    out["oracle affinity"] = revised(target, oracle.permute(2, 0, 1).float())
    out["stride ceiling"] = per_class_max(pooled[1:][keys])
    return out


def score(model, cfg, voc, split: str, cam_scales: tuple[float, ...] = ()) -> dict[str, dict]:
    """mIoU % of every variant over ``split``, at ``evaluate.bg_threshold`` and at the best of the sweep."""
    thresholds = sorted({*sweep_thresholds(*cfg.evaluate.bg_sweep), round(cfg.evaluate.bg_threshold, 6)})
    at = thresholds.index(round(cfg.evaluate.bg_threshold, 6))
    grid = np.array(thresholds, dtype=np.float32)
    counts: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for image_id in tqdm(voc.split(split), desc="diagnose PCM"):
            image = read_rgb(image_path(voc.root, image_id))
            gt = load_mask(voc.root, image_id, ("SegmentationClass",))  # eval_cam's ground truth
            keys = np.nonzero(voc.labels[image_id])[0]
            views = [next(iter(scaled_views(image, (scale,)).values()))[0][None] for scale in (1.0, *cam_scales)]
            maps_of = variants(model, views[0], torch.from_numpy(keys), gt)
            for scale, x in zip(cam_scales, views[1:]):
                maps_of[f"cam at {scale}x"] = per_class_max(raw_cams(model, model.backbone(x))[keys])
            for name, maps in maps_of.items():
                full = F.interpolate(maps[None], gt.shape, mode="bilinear", align_corners=False)[0].numpy()
                counts[name] = counts.get(name, 0) + cam_sweep_counts(keys + 1, full, gt, grid)
    report = {}
    for name, total in counts.items():
        mious = sweep_mious(total)
        best = int(np.argmax(mious))
        report[name] = {f"miou_at_{thresholds[at]}": round(100 * float(mious[at]), 2),
                        "best_miou": round(100 * float(mious[best]), 2), "best_threshold": thresholds[best]}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model.pt written by wsss train-cls")
    parser.add_argument("--voc", type=Path, default=Path("data/prepared/voc"), help="a prepared VOC folder")
    parser.add_argument("--split", default="train")
    parser.add_argument("--cam-scales", type=float, nargs="*", default=(), metavar="S",
                        help="also score the CAM of the image rescaled by each S (other than 1)")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="as for the wsss train-cls run of the model (e.g. method=seam)")
    args = parser.parse_args()
    if 1.0 in args.cam_scales:
        parser.error("--cam-scales: scale 1 is the variant 'cam' already")
    cfg = load_config(args.params, args.overrides)
    model = trained_network(cfg.network, cfg, args.model)
    report = score(model, cfg, open_prepared_voc(args.voc), args.split, tuple(args.cam_scales))
    print(json.dumps({"model": str(args.model), "split": args.split, "variants": report}, indent=2))


if __name__ == "__main__":
    main()
