"""Dense CRF on CAMs and CRF pseudo labels.

The CRF is ``crf_inference`` of jiwoon-ahn/psa@9493e59:tool/imutils.py:200-217
(YudeWang/SEAM@3212261:tool/imutils.py:220-237):
pydensecrf with the unary ``-log(clip(p, 1e-5, 1))`` of *un-normalised* scores, one Gaussian and
one bilateral kernel, mean-field for ``iterations`` steps. The scores are the foreground CAMs under a
background score ``(1 - max_k cam_k)^alpha`` (jiwoon-ahn/psa@9493e59:infer_cls.py:90-102,
YudeWang/SEAM@3212261:infer_SEAM.py:92-104).

Which alpha: psa/SEAM run the CRF twice, with a low alpha (4; more background, confident
foreground) and a high one (psa 32, SEAM 24; less background, confident background), and
AffinityNet learns only from the pixels the two agree on. Pseudo labels for DeepLab need one
value per pixel, so one CRF with a single alpha. Without the CRF, a pixel is background exactly
when its top CAM score is below the threshold ``t`` with ``(1 - t)^alpha = t``: alpha 4 gives
t = 0.28 and alpha 24 gives t = 0.09. The constant background thresholds the repositories tuned
for their CAMs lie between (psa 0.2, SEAM 0.26, irn and SC-CAM 0.15). ``pseudo_label_alpha`` takes
the geometric mean of the configured pair: SEAM's 4/24 gives 9.8 (t = 0.18), psa's 4/32 gives
11.3 (t = 0.16). Callers may pass any other alpha.

AffinityNet's training labels (``affinity_label_map``; jiwoon-ahn/psa@9493e59:voc12/data.py:222-229)
take both CRFs: the low-alpha CRF's foreground (confident), the high-alpha CRF's background (confident), and
255 (uncertain) where the low-alpha CRF says background but the high-alpha one does not.

Parallelism: the CRF is single-threaded C++, so ``crf_label_dir`` and ``affinity_label_dir`` run one image per
process.
"""

from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path

import numpy as np
import pydensecrf.densecrf as dcrf

from wsss.config import CRFConfig
from wsss.data.cam_files import cam_path, load_cams
from wsss.data.classes import IGNORE_INDEX
from wsss.data.voc import image_path
from wsss.io import atomic_path, output_dir, read_rgb, save_label_png
from wsss.parallel import parallel_map


def dense_crf(image: np.ndarray, probs: np.ndarray, iterations: int, gaussian_sxy: float, gaussian_compat: float,
              bilateral_sxy: float, bilateral_srgb: float, bilateral_compat: float) -> np.ndarray:
    """Mean-field marginals C×H×W (float32) of a dense CRF on an HxWx3 uint8 image and C×H×W scores.

    The scores need not sum to 1 over C (psa/SEAM ``crf_inference``); they are clipped to [1e-5, 1].
    """
    height, width = image.shape[:2]
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be HxWx3 uint8, got {image.dtype}{image.shape}")
    if probs.ndim != 3 or probs.shape[1:] != (height, width):
        raise ValueError(f"scores of shape {probs.shape} do not match the {height}x{width} image (expected C×H×W)")
    labels = probs.shape[0]
    crf = dcrf.DenseCRF2D(width, height, labels)
    unary = -np.log(np.clip(probs.reshape(labels, -1), 1e-5, 1.0), dtype=np.float32)
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    crf.addPairwiseGaussian(sxy=gaussian_sxy, compat=gaussian_compat)
    crf.addPairwiseBilateral(sxy=bilateral_sxy, srgb=bilateral_srgb, rgbim=np.array(image, order="C"),
                             compat=bilateral_compat)
    return np.asarray(crf.inference(iterations), dtype=np.float32).reshape(labels, height, width)


def pseudo_label_alpha(crf: CRFConfig) -> float:
    """The default background power of CRF pseudo labels: the geometric mean of the low/high pair."""
    return math.sqrt(crf.alpha_low * crf.alpha_high)


def cam_to_pseudo_label(image: np.ndarray, keys, cams: np.ndarray, alpha: float, crf: CRFConfig) -> np.ndarray:
    """HxW uint8 VOC label map: CRF on ``[(1 - max cam)^alpha ; cams]``, argmax, channel i > 0 -> ``keys[i-1]``.

    ``keys`` are the VOC indices (1..20) of the K×H×W ``cams``; with no keys, everything is background.
    """
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    height, width = image.shape[:2]
    if cams.ndim != 3 or cams.shape != (keys.size, height, width):
        raise ValueError(f"CAMs of shape {cams.shape} do not match {keys.size} keys and the {height}x{width} image")
    if not keys.size:
        return np.zeros((height, width), np.uint8)
    background = (1 - np.clip(cams.max(axis=0, keepdims=True), 0, 1)) ** alpha
    scores = np.concatenate([background, cams]).astype(np.float32)
    marginals = dense_crf(image, scores, crf.iterations, **crf.kernels())
    lookup = np.concatenate([[0], keys]).astype(np.uint8)
    return lookup[marginals.argmax(axis=0)]


def affinity_label_map(image: np.ndarray, keys, cams: np.ndarray, crf: CRFConfig) -> np.ndarray:
    """HxW uint8 AffinityNet labels: the CRF label at ``crf.alpha_low`` where it is foreground, 0 where the CRF at
    ``crf.alpha_high`` is background, 255 elsewhere (the two CRFs disagree)."""
    confident_foreground = cam_to_pseudo_label(image, keys, cams, crf.alpha_low, crf)
    confident_background = cam_to_pseudo_label(image, keys, cams, crf.alpha_high, crf) == 0
    labels = np.where(confident_foreground == 0, IGNORE_INDEX, confident_foreground).astype(np.uint8)
    labels[confident_background] = 0
    return labels


def crf_label_dir(voc_root: str | Path, ids: list[str], cam_dir: str | Path, out_dir: str | Path, crf: CRFConfig,
                  alpha: float, workers: int = 1, progress: bool = True, resume_key: str | None = None) -> dict:
    """Write ``<id>.png`` palette pseudo labels of every id into ``out_dir``, atomically, over ``workers`` processes.

    CAMs are read from ``cam_dir`` in any format ``load_cams`` reads. With ``resume_key`` the labels of a
    killed run under the same key are kept (``wsss.io.output_dir``). Returns throughput figures.
    """
    label = partial(cam_to_pseudo_label, alpha=alpha, crf=crf)
    return {**label_dir(voc_root, ids, cam_dir, out_dir, label, "crf", workers, progress, resume_key), "alpha": alpha}


def affinity_label_dir(voc_root: str | Path, ids: list[str], cam_dir: str | Path, out_dir: str | Path,
                       crf: CRFConfig, workers: int = 1, progress: bool = True, resume_key: str | None = None) -> dict:
    """``crf_label_dir`` for AffinityNet's labels (``affinity_label_map``)."""
    label = partial(affinity_label_map, crf=crf)
    return {**label_dir(voc_root, ids, cam_dir, out_dir, label, "affinity labels", workers, progress, resume_key),
            "alpha_low": crf.alpha_low, "alpha_high": crf.alpha_high}


def label_dir(voc_root: str | Path, ids: list[str], cam_dir: str | Path, out_dir: str | Path, label, desc: str,
              workers: int = 1, progress: bool = True, resume_key: str | None = None) -> dict:
    """Write ``label(image, keys, cams)`` of every id as ``<id>.png`` into ``out_dir`` (see ``crf_label_dir``);
    ``label`` must pickle when ``workers > 1``."""
    workers = max(1, min(workers, len(ids)))
    start = time.perf_counter()
    with output_dir(out_dir, resume_key) as tmp:
        tasks = [(str(image_path(voc_root, image_id)), str(cam_path(cam_dir, image_id)), str(tmp / f"{image_id}.png"),
                  label) for image_id in ids if not (tmp / f"{image_id}.png").is_file()]
        parallel_map(_label_one, tasks, workers, desc, progress)
    seconds = time.perf_counter() - start
    return {"images": len(ids), "resumed": len(ids) - len(tasks), "seconds": round(seconds, 3),
            "images_per_s": round(len(tasks) / seconds, 3), "workers": workers}


def read_image_and_cams(image_file: str | Path, cam_file: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The HxWx3 image and its CAMs ``(keys, K×H×W cams)``; CAMs of another size are an error naming both files."""
    image = read_rgb(image_file)
    keys, cams = load_cams(cam_file)
    if cams.shape[1:] != image.shape[:2]:
        raise ValueError(f"{cam_file}: CAMs are {cams.shape[1]}x{cams.shape[2]} but the image {image_file} "
                         f"is {image.shape[0]}x{image.shape[1]} (height x width)")
    return image, keys, cams


def _label_one(task: tuple) -> None:
    image_file, cam_file, out, label = task
    labels = label(*read_image_and_cams(image_file, cam_file))
    with atomic_path(out) as tmp:
        save_label_png(tmp, labels)
