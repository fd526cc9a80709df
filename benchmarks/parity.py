"""Parity with the official code: the same random weights (through ``wsss.nets.official``'s key maps) and the
same synthetic inputs through the official code and through this project, and how far the results lie apart.

    python benchmarks/parity.py --seam-dir CHECKOUT_OF_YudeWang/SEAM --psa-dir CHECKOUT_OF_jiwoon-ahn/psa \
        --ldf-dir CHECKOUT_OF_weijun88/LDF --sccam-dir CHECKOUT_OF_Juliachang/SC-CAM \
        [--size 224] [--image 92 124] [--ldf-size 128] \
        [--parts seam psa_cls ldf seam_loss cam crf affinity ldf_loss sccam]

Measured figures and the reasons for every gap: docs/experiments/parity.md.

Networks (one forward pass each, eval mode, fp32; each official network built from its checkout, seeded, its
state dict converted as ``wsss import-weights`` converts a released file): SEAM's CAM and PCM outputs at the input
size (the official network upsamples both with ``align_corners=True``,
YudeWang/SEAM@3212261:network/resnet38_SEAM.py:48-49), psa's class scores, LDF's six maps.

Procedures. Where the official step lives inside a script's ``__main__`` block, those lines are read from the
checkout at run time, dedented and executed with the inputs bound to the script's own names; nothing of the
official code is edited. Run-time shims, not edits: ``Tensor.cuda`` returns the tensor and ``torch.cuda.device`` is
a no-op (the scripts assume a GPU), ``np.load`` allows pickles (psa reads CAM dicts that numpy ≥ 1.16.3 refuses),
an empty ``tensorboardX`` module (imported by train_SEAM.py, never used here), ``PIL.Image.CUBIC`` (gone in
Pillow 10) as the ``BICUBIC`` it was.

* ``seam_loss``: the loss lines of YudeWang/SEAM@3212261:train_SEAM.py:104-142 on the official SEAM network
  against ``wsss.losses.seam_loss`` on the converted one (both in eval mode, so no dropout draw to share; the
  project's backbone frozen as a pretrained build freezes it, the official ``eval()`` freezes the same tensors):
  each loss term and the gradient of every parameter after one backward pass.
* ``cam``: the multi-scale, flipped inference of YudeWang/SEAM@3212261:infer_SEAM.py:57-77 (the views of
  ``voc12/data.py`` ``VOC12ClsDatasetMSF``, its image source replaced by the synthetic image) against
  ``wsss.infer.cam.multiscale_cam`` with the ``seam`` method's settings (PCM output, ``minmax``, ``view_first``),
  and with psa's single resize (``direct``) for contrast.
* ``crf``: jiwoon-ahn/psa@9493e59:tool/imutils.py:200-217 ``crf_inference`` (SEAM's copy too) on the same scores as
  ``wsss.infer.crf.dense_crf``; SEAM's ``_crf_with_alpha`` (YudeWang/SEAM@3212261:infer_SEAM.py:92-104) against
  ``cam_to_pseudo_label`` at alpha 4 and 24, on the official CAM of ``cam``.
* ``affinity``: psa's AffinityNet (jiwoon-ahn/psa@9493e59:network/resnet38_aff.py) against ``wsss.nets.affinity``
  (affinities of the pairs both have), and the random walk of jiwoon-ahn/psa@9493e59:infer_aff.py:85-120 against
  ``wsss.infer.random_walk.random_walk_scores`` (dense and sparse) under both ``affinity.pairs`` rules: ``psa``
  (the paper profile's) and ``inside`` (every pair in the map).
* ``ldf_loss``: the loss lines of weijun88/LDF@d49ff02:train-fine/train.py:18-23, 55-64 against
  ``wsss.losses.ldf_loss``, both networks in training mode on one batch: the terms and every parameter's gradient.
* ``sccam``: the k-means loop of Juliachang/SC-CAM@191ec48:create_pseudo_label.py:171-193 and the label assembly
  around it (its functions, lines 31-131) against ``wsss.data.subcategories`` on one synthetic feature array:
  identical labels, adjusted Rand index per class, centroid distance; under the installed scikit-learn's
  ``n_init`` default and under the old default of 10 that the project pins.

Prints JSON. ``max_abs`` is the largest absolute difference, ``relative`` that over the largest official
magnitude. A part whose ``--*-dir`` is missing is skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
import tempfile
import textwrap
import types
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from wsss.config import load_config
from wsss.nets.official import FORMATS, convert
from wsss.nets.registry import build_network
from wsss.runtime import Runtime

CPU_FP32 = Runtime(torch.device("cpu"), "fp32")
SEAM_NET = ["method=seam", "train_cls.backbone=resnet38d", "train_cls.output_stride=8"]


# ---------------------------------------------------------------------------------------------- official code

def official_module(checkout: str, subdir: str, module: str):
    """Import ``module`` from a checkout (its folder first on the path, the import cache cleared of the checkouts'
    shared package names: psa and SEAM both have ``network``, ``tool`` and ``voc12``)."""
    folder = f"{checkout}/{subdir}".rstrip("/")
    sys.path[:] = [folder] + [path for path in sys.path if path != folder]
    shared = ("network", "tool", "voc12", "net", "train_SEAM", "create_pseudo_label")
    for name in [name for name in sys.modules if name.split(".")[0] in shared]:
        del sys.modules[name]
    return importlib.import_module(module)


def official_lines(checkout: str, path: str, first: int, last: int, starts: str) -> str:
    """Lines ``first..last`` (1-based, inclusive) of a checkout's file, dedented, without comment lines; the first must start with
    ``starts`` (a guard against another commit, whose line numbers differ)."""
    lines = (Path(checkout) / path).read_text().splitlines()[first - 1:last]
    if not lines or not lines[0].strip().startswith(starts):
        raise SystemExit(f"{path}:{first} does not start with {starts!r}: not the commit this script reads")
    code = [line for line in lines if not line.lstrip().startswith("#")]   # comments at column 0 stop dedent
    return textwrap.dedent("\n".join(code))


def run_official(source: str, namespace: dict) -> dict:
    """Execute official lines with ``namespace`` as their globals; returns it, with what they assigned."""
    exec(compile(source, "<official>", "exec"), namespace)
    return namespace


@contextlib.contextmanager
def cpu_shims():
    """The official scripts on a CPU and today's libraries: ``.cuda()`` is a no-op, ``torch.cuda.device`` an empty
    context, ``np.load`` reads pickled dicts, ``tensorboardX`` an empty module, ``PIL.Image.CUBIC`` (gone in
    Pillow 10) the ``BICUBIC`` it named."""
    saved = torch.Tensor.cuda, torch.cuda.device, np.load, sys.modules.get("tensorboardX")
    cubic = hasattr(Image, "CUBIC")
    Image.CUBIC = Image.BICUBIC
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.cuda.device = lambda *args, **kwargs: contextlib.nullcontext()
    np.load = partial(saved[2], allow_pickle=True)
    sys.modules["tensorboardX"] = types.SimpleNamespace(SummaryWriter=None)
    try:
        yield
    finally:
        torch.Tensor.cuda, torch.cuda.device, np.load = saved[:3]
        if saved[3] is None:
            sys.modules.pop("tensorboardX", None)
        if not cubic:
            del Image.CUBIC


# ---------------------------------------------------------------------------------------------- comparison tools

def settings_of(*overrides: str):
    """``params.yaml`` under the ``paper`` profile (the published settings, no smoke-test shrinking)."""
    return load_config("params.yaml", ["profile=paper", *overrides])


def ours(format_name: str, official_state: dict, overrides: list[str]):
    network = FORMATS[format_name][0]
    model = build_network(network, settings_of(*overrides), weights="")
    model.load_state_dict(convert(format_name, official_state, model.state_dict(), format_name))
    return model.eval()


def difference(official, mine) -> dict:
    official, mine = (torch.as_tensor(np.asarray(x, dtype=np.float64) if not torch.is_tensor(x) else x).double()
                      for x in (official, mine))
    gap = (official - mine).abs().max().item()
    return {"max_abs": gap, "relative": gap / max(official.abs().max().item(), 1e-30)}


def differences(official: dict, mine: dict) -> dict:
    return {name: difference(official[name], mine[name]) for name in official}


def gradient_differences(format_name: str, official: torch.nn.Module, model: torch.nn.Module) -> dict:
    """Every parameter's gradient, the official ones renamed as the weights are: the worst parameter by absolute
    and by relative difference, and how many parameters were compared."""
    grads = {name: (p.grad if p.grad is not None else torch.zeros_like(p)) for name, p in official.named_parameters()}
    target = {name: p.detach() for name, p in model.named_parameters()}
    official_grads = convert(format_name, grads, target, format_name)
    rows = {name: difference(official_grads[name], p.grad if p.grad is not None else torch.zeros_like(p))
            for name, p in model.named_parameters()}
    worst_abs = max(rows, key=lambda name: rows[name]["max_abs"])
    worst_rel = max(rows, key=lambda name: rows[name]["relative"])
    return {"parameters": len(rows), "worst_abs": {"parameter": worst_abs, **rows[worst_abs]},
            "worst_relative": {"parameter": worst_rel, **rows[worst_rel]},
            "largest_official_grad": max(g.abs().max().item() for g in official_grads.values())}


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An HxWx3 uint8 image of a few flat-coloured ellipses on a gradient, with noise: edges for the CRF."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[:height, :width]
    image = np.stack([xs / width * 120 + 40, ys / height * 120 + 40, np.full((height, width), 90.0)], -1)
    for _ in range(3):
        cy, cx, ry, rx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width, height / 5, width / 5
        image[((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 < 1] = rng.uniform(0, 255, 3)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)


PRESENT = np.array([4, 14])   # the foreground classes (0..19) of the synthetic image: bottle, person


def multi_hot(classes=PRESENT) -> torch.Tensor:
    labels = torch.zeros(20)
    labels[torch.as_tensor(classes)] = 1
    return labels


# ---------------------------------------------------------------------------------------------- networks

def seam(checkout: str, image: torch.Tensor) -> dict:
    official = official_module(checkout, "", "network.resnet38_SEAM").Net()
    official.eval()  # psa's and SEAM's train() overrides return None
    model = ours("seam", official.state_dict(), SEAM_NET)
    with torch.no_grad():
        cam, pcm = official(image)
        my_cam, my_pcm = (F.interpolate(x, image.shape[2:], mode="bilinear", align_corners=True) for x in model(image))
    return differences({"cam": cam, "pcm": pcm}, {"cam": my_cam, "pcm": my_pcm})


def psa_cls(checkout: str, image: torch.Tensor) -> dict:
    official = official_module(checkout, "", "network.resnet38_cls").Net()
    official.eval()
    model = ours("psa_cls", official.state_dict(),
                 ["method=cam", "train_cls.backbone=resnet38d", "train_cls.output_stride=8"])
    with torch.no_grad():
        return differences({"scores": official(image)}, {"scores": model(image)})


def official_ldf(checkout: str):
    net = official_module(checkout, "train-fine", "net")
    net.ResNet.initialize = lambda self: None  # its ImageNet file: random weights stand in

    class Settings:
        snapshot = None

    return net.LDF(Settings())


def ldf(checkout: str, image: torch.Tensor) -> dict:
    official = official_ldf(checkout).eval()
    model = ours("ldf", official.state_dict(), ["ldf.backbone=resnet50", "ldf.width=64"])
    names = ("body1", "detail1", "saliency1", "body2", "detail2", "saliency2")
    with torch.no_grad():
        return differences(dict(zip(names, official(image))), model.outputs(image)._asdict())


# ---------------------------------------------------------------------------------------------- procedures

def seam_loss(checkout: str, image: torch.Tensor) -> dict:
    """SEAM's losses and gradients: YudeWang/SEAM@3212261:train_SEAM.py:104-142 against ``wsss.losses.seam_loss``."""
    from wsss.losses import seam_loss as project_loss

    torch.manual_seed(1)
    official = official_module(checkout, "", "network.resnet38_SEAM").Net()
    official.eval()   # resnet38d's train(False): BN and conv1a, b2-b2_2 get requires_grad=False (train() the same)
    model = ours("seam", official.state_dict(), SEAM_NET)
    model.backbone.freeze(frozen_stages=2, frozen_bn=True)   # as build_backbone freezes a pretrained ResNet-38
    rename = FORMATS["seam"][2]
    frozen = ({rename(name) for name, p in official.named_parameters() if not p.requires_grad},
              {name for name, p in model.named_parameters() if not p.requires_grad})
    labels = multi_hot()[None].repeat(len(image), 1)
    with cpu_shims():
        script = official_module(checkout, "", "train_SEAM")
        namespace = {"torch": torch, "F": F, "model": official, "pack": (None, image, labels),
                     "visualization": script.visualization, "max_onehot": script.max_onehot,
                     "adaptive_min_pooling_loss": script.adaptive_min_pooling_loss}
        found = run_official(official_lines(checkout, "train_SEAM.py", 104, 142, "scale_factor"), namespace)
        found["loss"].backward()
    mine = project_loss(model, (image, labels), settings_of(*SEAM_NET).seam)
    mine["loss"].backward()
    terms = differences(
        {"cls (classification + min pooling)": found["loss_cls"], "cls (classification)":
         (found["loss_cls1"] + found["loss_cls2"]) / 2, "min_pool": (found["loss_rvmin1"] + found["loss_rvmin2"]) / 2,
         "er": found["loss_er"], "ecr": found["loss_ecr"], "total": found["loss"]},
        {"cls (classification + min pooling)": mine["cls"] + mine["min_pool"], "cls (classification)": mine["cls"],
         "min_pool": mine["min_pool"], "er": mine["er"], "ecr": mine["ecr"], "total": mine["loss"]})
    return {"image": list(image.shape), "official_total": found["loss"].item(), "terms": terms,
            "frozen_parameters": {"official": len(frozen[0]), "project": len(frozen[1]), "same": frozen[0] == frozen[1]},
            "gradients": gradient_differences("seam", official, model)}


def official_seam_cam(checkout: str, official, image: np.ndarray, labels: torch.Tensor) -> np.ndarray:
    """20×H×W: SEAM's views (``VOC12ClsDatasetMSF``) and YudeWang/SEAM@3212261:infer_SEAM.py:57-77 on them."""
    data = official_module(checkout, "", "voc12.data")
    pyutils = importlib.import_module("tool.pyutils")
    imutils = importlib.import_module("tool.imutils")
    source = data.VOC12ClsDataset.__getitem__
    data.VOC12ClsDataset.__getitem__ = lambda self, idx: ("synthetic", Image.fromarray(image), labels)
    try:
        views = data.VOC12ClsDatasetMSF.__new__(data.VOC12ClsDatasetMSF)
        views.scales, views.unit = [0.5, 1.0, 1.5, 2.0], 1
        views.inter_transform = lambda img: imutils.HWC_to_CHW(official.normalize(np.asarray(img)))
        with cpu_shims():
            _, img_list, label = views[0]
    finally:
        data.VOC12ClsDataset.__getitem__ = source
    namespace = {"torch": torch, "F": F, "np": np, "pyutils": pyutils, "model_replicas": [official], "n_gpus": 1,
                 "orig_img_size": image.shape[:2], "label": label, "args": argparse.Namespace(num_workers=1),
                 "img_list": [torch.from_numpy(view)[None] for view in img_list]}
    with cpu_shims():
        return run_official(official_lines(checkout, "infer_SEAM.py", 57, 77, "def _work"), namespace)["norm_cam"]


def cam(checkout: str, image: np.ndarray) -> tuple[dict, np.ndarray]:
    """SEAM's multi-scale CAM against ``wsss.infer.cam.multiscale_cam``; also returns the official CAM (20×H×W)."""
    from wsss.infer.cam import multiscale_cam

    torch.manual_seed(2)
    official = official_module(checkout, "", "network.resnet38_SEAM").Net()
    official.eval()
    model = ours("seam", official.state_dict(), SEAM_NET)
    norm_cam = official_seam_cam(checkout, official, image, multi_hot())
    settings = settings_of(*SEAM_NET).infer_cam
    present = norm_cam[PRESENT]
    report = {"image": list(image.shape),
              "settings": {name: getattr(settings, name) for name in ("scales", "flip", "norm", "upsample", "source")},
              "official_negative_pixels": {int(k) + 1: int((norm_cam[k] < 0).sum()) for k in PRESENT},
              "pixels_per_class": int(image.shape[0] * image.shape[1]),
              "official_negative_values": sorted({float(f"{v:.3g}") for v in present[present < 0]}),
              "official_max_per_class": {int(k) + 1: float(norm_cam[k].max()) for k in PRESENT},
              "official_absent_class_values": sorted({round(float(v), 6) for v in np.delete(norm_cam, PRESENT, 0).flat})}
    for upsample in dict.fromkeys((settings.upsample, "view_first", "direct")):   # direct: psa's one resize
        mine = multiscale_cam(model, image, PRESENT, settings.scales, settings.flip, settings.norm, CPU_FP32, upsample)
        report[f"cam, upsample {upsample}"] = difference(present, mine)
        report[f"cam, upsample {upsample}, official's negatives at 0"] = difference(np.maximum(present, 0), mine)
    return report, norm_cam


def crf(seam_checkout: str, psa_checkout: str | None, image: np.ndarray, norm_cam: np.ndarray) -> dict:
    """psa/SEAM ``crf_inference`` against ``wsss.infer.crf``, on the official CAM of :func:`cam`."""
    from wsss.infer.crf import cam_to_pseudo_label, dense_crf

    settings = settings_of(*SEAM_NET).crf
    cam_dict = {int(k): np.maximum(norm_cam[k], 0) for k in PRESENT}
    cams = np.stack(list(cam_dict.values())).astype(np.float32)
    report = {}
    for name, checkout in (("psa", psa_checkout), ("seam", seam_checkout)):
        if checkout:
            imutils = official_module(checkout, "", "tool.imutils")
            for alpha in (settings.alpha_low, settings.alpha_high):
                scores = np.concatenate([(1 - cams.max(0, keepdims=True)) ** alpha, cams]).astype(np.float32)
                probs = imutils.crf_inference(image, scores, labels=scores.shape[0])
                mine = dense_crf(image, scores, settings.iterations, **settings.kernels())
                report[f"{name} crf_inference, alpha {alpha}"] = {
                    "max_prob_diff": float(np.abs(probs - mine).max()),
                    "same_argmax": float((probs.argmax(0) == mine.argmax(0)).mean())}
    imutils = official_module(seam_checkout, "", "tool.imutils")
    source = official_lines(seam_checkout, "infer_SEAM.py", 92, 104, "def _crf_with_alpha")
    crf_with_alpha = run_official(source, {"np": np, "imutils": imutils, "orig_img": image})["_crf_with_alpha"]
    for alpha in (settings.alpha_low, settings.alpha_high):
        scores = crf_with_alpha(cam_dict, alpha)
        keys = np.array(list(scores))
        official_label = keys[np.stack([scores[k] for k in keys]).argmax(0)]
        mine = cam_to_pseudo_label(image, PRESENT + 1, cams, alpha, settings)
        report[f"seam _crf_with_alpha labels, alpha {alpha}"] = {
            "identical_labels": float((official_label == mine).mean()),
            "label_shares_official": {int(k): float((official_label == k).mean()) for k in keys}}
    return report


def affinity(checkout: str, image: np.ndarray, norm_cam: np.ndarray) -> dict:
    """psa's AffinityNet and random walk against ``wsss.nets.affinity`` / ``wsss.infer.random_walk``."""
    import wsss.infer.random_walk as walk
    from wsss.nets.affinity import pair_affinities, related_pairs

    torch.manual_seed(3)
    official = official_module(checkout, "", "network.resnet38_aff").Net()
    official.eval()
    model = ours("psa_aff", official.state_dict(), [])
    cfg = settings_of().affinity
    imutils = importlib.import_module("tool.imutils")
    img = torch.from_numpy(imutils.HWC_to_CHW(official.normalize(image)))[None]   # VOC12ImageDataset's transform
    padded = F.pad(img, (0, -image.shape[1] % 8, 0, -image.shape[0] % 8))
    with torch.no_grad(), cpu_shims():
        official_aff = official(padded)          # N×D×P, P the positions psa relates
        features = model(padded)
    mine = pair_affinities(features, cfg.radius, "inside")[0]
    kept = related_pairs(*mine.shape[1:], cfg.radius, "psa")
    report = {"image": list(image.shape), "grid": list(mine.shape[1:]), "psa_pairs": int(kept.sum()),
              "inside_pairs": int(related_pairs(*mine.shape[1:], cfg.radius, "inside").sum()),
              "affinity (psa's pairs)": difference(official_aff[0].reshape(-1), mine[kept]),
              "affinity_range": [float(mine[kept].min()), float(mine[kept].max())],
              "settings": {"alpha": cfg.alpha, "beta": cfg.beta, "logt": cfg.logt, "radius": cfg.radius}}

    cam_dict = {int(k): np.maximum(norm_cam[k], 0) for k in PRESENT}
    with tempfile.TemporaryDirectory() as folder, torch.no_grad(), cpu_shims():
        np.save(f"{folder}/synthetic.npy", cam_dict)
        namespace = {"torch": torch, "F": F, "np": np, "os": importlib.import_module("os"), "model": official,
                     "img": img, "name": "synthetic",
                     "args": argparse.Namespace(cam_dir=folder, alpha=cfg.alpha, beta=cfg.beta, logt=cfg.logt)}
        found = run_official(official_lines(checkout, "infer_aff.py", 85, 120, "orig_shape"), namespace)
    official_scores = found["cam_rw"][0, [0, *(PRESENT + 1)], :image.shape[0], :image.shape[1]]
    cams = np.stack(list(cam_dict.values())).astype(np.float32)
    lookup = np.array([0, *(PRESENT + 1)])
    for kind in ("dense", "sparse"):
        for pairs in ("inside", "psa"):   # affinity.pairs: every pair in the map, or psa's rule
            settings = cfg.model_copy(update={"walk": kind, "pairs": pairs})
            scores = walk.random_walk_scores(model, image, cams, settings, CPU_FP32)
            report[f"walk {kind}, pairs: {pairs}"] = {
                **difference(official_scores, scores),
                "same_label": float((found["res"] == lookup[scores.numpy().argmax(0)]).mean())}
    return report


def ldf_loss(checkout: str, size: int) -> dict:
    """LDF's loss and gradients: weijun88/LDF@d49ff02:train-fine/train.py:18-23, 55-64 against ``wsss.losses.ldf_loss``."""
    from wsss.losses import ldf_loss as project_loss

    torch.manual_seed(4)
    official = official_ldf(checkout).train()
    model = ours("ldf", official.state_dict(), ["ldf.backbone=resnet50", "ldf.width=64"]).train()
    image = torch.randn(2, 3, size, size)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    mask = torch.stack([(ys ** 2 + xs ** 2 < 0.4).float(), ((ys - 0.2).abs() + xs.abs() < 0.7).float()])[:, None]
    body = (mask * torch.rand_like(mask)).clamp(0, 1)      # soft targets in [0, 1], as the decoupled maps
    detail = (mask - body).clamp(0, 1)
    namespace = {"torch": torch, "F": F, "net": official, "image": image, "mask": mask, "body": body, "detail": detail}
    run_official(official_lines(checkout, "train-fine/train.py", 18, 23, "def iou_loss"), namespace)
    found = run_official(official_lines(checkout, "train-fine/train.py", 55, 64, "outb1"), namespace)
    found["loss"].backward()
    mine = project_loss(model, {"image": image, "mask": mask, "body": body, "detail": detail})
    mine["loss"].backward()
    names = {"lossb1": "body1", "lossd1": "detail1", "loss1": "saliency1", "lossb2": "body2", "lossd2": "detail2",
             "loss2": "saliency2", "loss": "loss"}
    return {"batch": list(image.shape), "official_loss": found["loss"].item(),
            "terms": differences({ours_name: found[name] for name, ours_name in names.items()}, mine),
            "gradients": gradient_differences("ldf", official, model)}


def synthetic_features(images: int = 240, dim: int = 32, clusters: int = 10, seed: int = 5):
    """Float32 features (a few Gaussian blobs per class, as pooled CNN features: non-negative) and multi-hot parent
    labels with 1-3 classes per image; every class has more than ``clusters`` images."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((images, 20), np.float32)
    for row in range(images):
        labels[row, rng.choice(20, rng.integers(1, 4), replace=False)] = 1
    centres = rng.gamma(2.0, 1.0, (20, 4, dim))
    features = np.zeros((images, dim))
    for row in range(images):
        for c in np.flatnonzero(labels[row]):
            features[row] += centres[c, rng.integers(4)] + rng.normal(0, 0.6, dim)
    assert labels.sum(0).min() > clusters, "a class with fewer images than clusters"
    return np.maximum(features, 0).astype(np.float32), labels


def sccam(checkout: str) -> dict:
    """SC-CAM's k-means sub-categories against ``wsss.data.subcategories`` on one synthetic feature array."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from wsss.data.subcategories import cluster_assignments, subcategory_labels

    settings = settings_of("method=sccam").sccam
    k = settings.clusters
    features, parent = synthetic_features(clusters=k)
    ids = [f"{row:011d}" for row in range(len(features))]
    script = official_module(checkout, "", "create_pseudo_label")
    index, by_class = script.make_filename_class_dict(ids, parent)
    merged = script.merge_filename_class_dict(by_class)
    repeats = script.generate_repeat_list(merged)
    keep, _ = script.remove_duplicate_label(repeats)
    source = official_lines(checkout, "create_pseudo_label.py", 171, 193, "all_class_kmeans_label")
    mine = cluster_assignments(features, parent, k, settings.kmeans_n_init, settings.kmeans_seed)
    my_labels = subcategory_labels(mine, len(ids), k)
    report = {"images": len(ids), "dim": features.shape[1], "clusters": k, "project_n_init": settings.kmeans_n_init}
    for variant, n_init in (("official, installed scikit-learn default n_init", None),
                            ("official, n_init=10 (scikit-learn < 1.4 default)", 10)):
        fitted = []

        def recorded(*args, n_init=n_init, **kwargs):   # the official call, n_init as the variant says; kept
            fitted.append(KMeans(*args, **({"n_init": n_init} if n_init else {}), **kwargs))
            return fitted[-1]

        namespace = {"np": np, "KMeans": recorded, "features": features, "filename_idx_class_dict": index,
                     "make_subclass_label": script.make_subclass_label, "args": argparse.Namespace(k_cluster=k)}
        run_official(source, namespace)
        merged_labels = script.generate_merged_label(repeats, namespace["all_class_kmeans_label"])
        with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
            Path("voc12").mkdir()
            np.save("voc12/20_class_labels.npy", np.zeros((len(merged), 20)))   # read, not used for the 200 labels
            names, labels_200, _ = script.create_train_data(merged, merged_labels, keep)
        official_labels = np.zeros_like(my_labels)
        official_labels[[ids.index(name) for name in names]] = np.asarray(labels_200)
        per_class, centroid_gaps = [], []
        for c, (rows, assigned) in mine.items():
            theirs = fitted[c].labels_
            per_class.append(adjusted_rand_score(theirs, assigned))
            for cluster in range(k):   # our cluster's mean against the official centre it overlaps most
                members = rows[assigned == cluster]
                partner = np.bincount(theirs[assigned == cluster], minlength=k).argmax()
                centroid_gaps.append(np.abs(features[members].astype(np.float64).mean(0)
                                            - fitted[c].cluster_centers_[partner]).max())
        report[variant] = {"n_init": fitted[0].n_init, "official_images": len(names),
                           "official_centre_dtype": str(fitted[0].cluster_centers_.dtype),
                           "identical_label_rows": float((official_labels == my_labels).all(1).mean()),
                           "adjusted_rand_min": float(min(per_class)), "adjusted_rand_mean": float(np.mean(per_class)),
                           "classes_identical": int(sum(score == 1.0 for score in per_class)),
                           "centroid_max_abs": float(max(centroid_gaps)),
                           "feature_scale": float(np.abs(features).max())}
    return report


# ---------------------------------------------------------------------------------------------- main

PARTS = ("seam", "psa_cls", "ldf", "seam_loss", "cam", "crf", "affinity", "ldf_loss", "sccam")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seam-dir")
    parser.add_argument("--psa-dir")
    parser.add_argument("--ldf-dir")
    parser.add_argument("--sccam-dir")
    parser.add_argument("--size", type=int, default=224, help="side of the random network input and SEAM loss input")
    parser.add_argument("--image", type=int, nargs=2, default=(92, 124), metavar=("H", "W"),
                        help="the synthetic image of cam, crf and affinity")
    parser.add_argument("--ldf-size", type=int, default=128, help="side of the LDF loss batch (a multiple of 32)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    args = parser.parse_args()
    report = {}
    sys.stdout = sys.stderr   # the official code prints progress; only the JSON goes to stdout

    def random_image(seed: int = 0, batch: int = 1) -> torch.Tensor:
        torch.manual_seed(seed)
        return torch.randn(batch, 3, args.size, args.size)

    def wanted(part: str, *checkouts) -> bool:
        return part in args.parts and all(checkouts)

    for name, checkout, compare in (("seam", args.seam_dir, seam), ("psa_cls", args.psa_dir, psa_cls),
                                    ("ldf", args.ldf_dir, ldf)):
        if wanted(name, checkout):
            report[name] = compare(checkout, random_image())
    if wanted("seam_loss", args.seam_dir):
        report["seam_loss"] = seam_loss(args.seam_dir, random_image(1, 2))
    image = synthetic_image(*args.image)
    norm_cam = None
    if wanted("cam", args.seam_dir) or wanted("crf", args.seam_dir) or wanted("affinity", args.psa_dir, args.seam_dir):
        report["cam"], norm_cam = cam(args.seam_dir, image)
    if wanted("crf", args.seam_dir):
        report["crf"] = crf(args.seam_dir, args.psa_dir, image, norm_cam)
    if wanted("affinity", args.psa_dir, args.seam_dir):
        report["affinity"] = affinity(args.psa_dir, image, norm_cam)
    if wanted("ldf_loss", args.ldf_dir):
        report["ldf_loss"] = ldf_loss(args.ldf_dir, args.ldf_size)
    if wanted("sccam", args.sccam_dir):
        report["sccam"] = sccam(args.sccam_dir)
    sys.stdout = sys.__stdout__
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
