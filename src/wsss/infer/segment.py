"""Segmentation inference: multi-scale + flip logits averaged, softmax, optional dense CRF, argmax.

As SEAM's retraining test (YudeWang/semantic-segmentation-codebase@a40f6c6:experiment/seamv1-pseudovoc/test.py:67-98
and lib/utils/DenseCRF.py:5-39): the mean of the logits over scales and flips, softmax, a 1-iteration CRF with
Gaussian 3/3 and bilateral 32/13/10.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wsss.config import InferSegConfig
from wsss.data.datasets import VOCImages
from wsss.infer.cam import scaled_views
from wsss.infer.crf import dense_crf
from wsss.io import atomic_path, output_dir, save_label_png
from wsss.nets.backbones import model_statistics
from wsss.parallel import parallel_map
from wsss.runtime import Runtime


def multiscale_logits(model: torch.nn.Module, image: np.ndarray, scales, flip: bool, runtime: Runtime) -> torch.Tensor:
    """Mean C×H×W logits over scales (and horizontal flips) at the image's own size, the views normalised as
    the model's backbone expects."""
    height, width = image.shape[:2]
    total, count = None, 0
    for views in scaled_views(image, scales, *model_statistics(model)).values():
        batch = torch.stack(views)
        if flip:
            batch = torch.cat([batch, batch.flip(-1)])
        with runtime.autocast():
            logits = model(runtime.batch(batch))
        logits = F.interpolate(logits.float(), (height, width), mode="bilinear", align_corners=False).cpu()
        if flip:
            logits = torch.cat([logits[:len(views)], logits[len(views):].flip(-1)])
        total = logits.sum(0) if total is None else total + logits.sum(0)
        count += len(logits)
    return total / count


def segment(model: torch.nn.Module, image: np.ndarray, cfg: InferSegConfig, runtime: Runtime) -> np.ndarray:
    """HxW uint8 label map of one HxWx3 uint8 image."""
    probs = torch.softmax(multiscale_logits(model, image, cfg.scales, cfg.flip, runtime), dim=0).numpy()
    if cfg.crf:
        probs = dense_crf(image, probs, cfg.crf_iterations, **cfg.kernels())
    return probs.argmax(axis=0).astype(np.uint8)


@torch.inference_mode()
def segment_dir(model: torch.nn.Module, voc_root: str | Path, ids: list[str], out_dir: str | Path,
                cfg: InferSegConfig, runtime: Runtime, progress: bool = True, resume_key: str | None = None) -> dict:
    """Write ``<id>.png`` palette predictions of every id into ``out_dir``, atomically; return throughput.

    With ``resume_key`` the predictions of a killed run under the same key are kept (``wsss.io.output_dir``).
    """
    model = runtime.prepare(model.eval())
    images = VOCImages(voc_root, ids)  # every image present, before any work
    start = time.perf_counter()
    with output_dir(out_dir, resume_key) as tmp:
        def write(index: int) -> None:
            image_id, image, _ = images[index]
            with atomic_path(tmp / f"{image_id}.png") as png:
                save_label_png(png, segment(model, image, cfg, runtime))

        todo = [index for index, image_id in enumerate(ids) if not (tmp / f"{image_id}.png").is_file()]
        parallel_map(write, todo, desc="infer_seg", progress=progress)
    seconds = time.perf_counter() - start
    return {"images": len(ids), "resumed": len(ids) - len(todo), "seconds": round(seconds, 3),
            "images_per_s": round(len(todo) / seconds, 3), "precision": runtime.precision}
