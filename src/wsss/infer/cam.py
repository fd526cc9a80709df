"""Multi-scale, flipped CAM inference.

The procedure of jiwoon-ahn/psa@9493e59:infer_cls.py:40-88 and YudeWang/SEAM@3212261:infer_SEAM.py:38-77:
resize the image to each scale with PIL bicubic (psa/SEAM ``voc12/data.py``
``VOC12ClsDatasetMSF``), normalise with the backbone's mean/std (ImageNet's for the ResNets), run the image and its
left-right flip, upsample every map bilinearly to the original size, flip back, sum, keep
the classes present and normalise per class. Unlike the official scripts (one forward pass
per view, fp32), the flips of a scale go through the network as one batch, under the
runtime's autocast and in channels-last memory.

Parallelism (``infer_cam_dir``): on the 2-core CPU this was written on, one process with 2
intra-op threads was measured against 2 processes with 1 thread each
(``benchmarks/bench_infer.py``; figures in ``docs/architecture.md``). Processes win for
small images, where one forward pass is too short to keep two threads busy; for VOC-sized
images both are within noise and one process needs half the memory. So ``workers`` processes
share the cores equally, and ``workers=1`` keeps every thread in the calling process.
"""

from __future__ import annotations

import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from wsss.config import InferCamConfig
from wsss.data.cam_files import NUM_FOREGROUND, save_cams
from wsss.data.voc import image_path
from wsss.io import output_dir, read_rgb
from wsss.nets.backbones import model_statistics
from wsss.nets.base import IMAGENET_MEAN, IMAGENET_STD
from wsss.parallel import parallel_map
from wsss.runtime import Runtime


def scaled_views(image: np.ndarray, scales, mean=IMAGENET_MEAN,
                 std=IMAGENET_STD) -> dict[tuple[int, int], list[torch.Tensor]]:
    """3×h×w tensors of the image at each scale, normalised with ``mean``/``std``, grouped by size so equal
    sizes share a batch.

    Sizes are ``round(side * scale)`` and the resampling is PIL bicubic, as psa ``VOC12ClsDatasetMSF``.
    """
    height, width = image.shape[:2]
    pil = Image.fromarray(image)
    mean = torch.tensor(mean).view(3, 1, 1)
    std = torch.tensor(std).view(3, 1, 1)
    groups = defaultdict(list)
    for scale in scales:
        size = (round(width * scale), round(height * scale))
        pixels = np.asarray(pil.resize(size, resample=Image.BICUBIC) if size != (width, height) else pil)
        tensor = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div_(255)
        groups[size].append((tensor - mean) / std)
    return groups


def normalise_cams(total: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-class normalisation of summed CAMs (K×H×W).

    ``max``: ``sum / (max + 1e-5)`` (jiwoon-ahn/psa@9493e59:infer_cls.py:75).
    ``minmax``: negatives to 0, then ``(sum - min - 1e-5) / (max - min + 1e-5)`` with values below
    ``min + 1e-5`` set to 0 (YudeWang/SEAM@3212261:infer_SEAM.py:72-77). SEAM zeroes those pixels *before*
    the division, which leaves them at ``-(min + 1e-5) / range``; here they are 0 after it, so every
    score is ≥ 0 as the CAM files require.
    """
    if norm == "max":
        return total / (total.amax(dim=(1, 2), keepdim=True) + 1e-5)
    if norm == "minmax":
        total = total.clamp(min=0)
        low = total.amin(dim=(1, 2), keepdim=True)
        high = total.amax(dim=(1, 2), keepdim=True)
        return ((total - low - 1e-5) / (high - low + 1e-5)).clamp(min=0)
    raise ValueError(f"unknown CAM normalisation {norm!r}; expected 'max' (psa) or 'minmax' (SEAM)")


@torch.no_grad()  # not inference_mode: autocast caches its weight casts only under no_grad
def multiscale_cam(model: torch.nn.Module, image: np.ndarray, keys, scales, flip: bool, norm: str,
                   runtime: Runtime, upsample: str = "direct") -> np.ndarray:
    """Normalised float32 K×H×W CAMs of one HxWx3 uint8 image for the foreground indices ``keys`` (0..19).

    ``upsample``: ``direct`` resizes each view's maps once, to the image (bilinear, as
    jiwoon-ahn/psa@9493e59:infer_cls.py:63);
    ``view_first`` first to the view's size with ``align_corners=True`` and then to the image, as SEAM, whose
    network returns maps at its input's size (YudeWang/SEAM@3212261:network/resnet38_SEAM.py:48-49,
    infer_SEAM.py:61).

    ``model`` is in eval mode on the runtime's device (``runtime.prepare``) and has ``cam(x, classes) -> N×K×h×w``,
    the maps of the foreground indices ``classes``; the views are normalised as its backbone expects.
    """
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    if keys.size and (keys.min() < 0 or keys.max() >= NUM_FOREGROUND):
        raise ValueError(f"foreground class indices {keys.tolist()} outside 0..{NUM_FOREGROUND - 1}")
    height, width = image.shape[:2]
    total = torch.zeros(keys.size, height, width)
    if not keys.size:
        return total.numpy()
    index = torch.from_numpy(keys).to(runtime.device)
    outputs = []
    with runtime.autocast():  # one region for all scales: autocast casts each weight once per image
        for views in scaled_views(image, scales, *model_statistics(model)).values():
            batch = torch.stack(views)
            if flip:
                batch = torch.cat([batch, batch.flip(-1)])
            outputs.append((len(views), tuple(batch.shape[-2:]), model.cam(runtime.batch(batch), index)))
    for count, view_size, maps in outputs:
        maps = maps.float()
        if upsample == "view_first":
            maps = F.interpolate(maps, view_size, mode="bilinear", align_corners=True)
        maps = F.interpolate(maps, (height, width), mode="bilinear", align_corners=False)
        if flip:
            maps = torch.cat([maps[:count], maps[count:].flip(-1)])
        total += maps.sum(0).cpu()
    return normalise_cams(total, norm).numpy()


def equivariance_error(model: torch.nn.Module, image: np.ndarray, keys, scale: float, norm: str,
                       runtime: Runtime) -> float:
    """``mean |F(A(I)) − A(F(I))|`` over the present classes' pixels of one image (SEAM Fig. 1, Eq. 3 as a metric).

    ``F`` is the single-scale, unflipped ``multiscale_cam`` (so the method's own map and normalisation) and ``A``
    a rescale by ``scale``: of the image with PIL bicubic (as the inference views), of the CAMs bilinearly.
    """
    height, width = image.shape[:2]
    size = (round(width * scale), round(height * scale))
    direct = torch.from_numpy(multiscale_cam(model, image, keys, (1.0,), False, norm, runtime))
    if not direct.numel():
        return 0.0
    resized = np.asarray(Image.fromarray(image).resize(size, resample=Image.BICUBIC))
    of_transformed = torch.from_numpy(multiscale_cam(model, resized, keys, (1.0,), False, norm, runtime))
    transformed = F.interpolate(direct[None], (size[1], size[0]), mode="bilinear", align_corners=False)[0]
    return float((of_transformed - transformed).abs().mean())


def equivariance_dir(model: torch.nn.Module, voc_root: str | Path, ids: list[str], labels: dict[str, np.ndarray],
                     scale: float, norm: str, runtime: Runtime, progress: bool = True) -> dict:
    """The mean equivariance error over ``ids`` (images without a class are skipped) and its spread."""
    model = runtime.prepare(model.eval())

    def error(image_id: str) -> float:
        keys = np.flatnonzero(labels[image_id] > 1e-5)
        return equivariance_error(model, read_rgb(image_path(voc_root, image_id)), keys, scale, norm, runtime)

    errors = parallel_map(error, [image_id for image_id in ids if (labels[image_id] > 1e-5).any()],
                          desc="equivariance", progress=progress)
    if not errors:
        raise ValueError(f"none of the {len(ids)} images has a class: no equivariance error to measure")
    return {"equivariance_error": float(np.mean(errors)), "std": float(np.std(errors)), "images": len(errors),
            "scale": scale, "norm": norm}


def infer_cam_dir(model: torch.nn.Module, voc_root: str | Path, ids: list[str], labels: dict[str, np.ndarray],
                  out_dir: str | Path, cfg: InferCamConfig, runtime: Runtime, workers: int = 1,
                  progress: bool = True, resume_key: str | None = None) -> dict:
    """Write ``<id>.npz`` CAMs (keys = VOC indices 1..20) of every id into ``out_dir``, atomically.

    ``labels`` maps id -> 20-dim multi-hot (``load_cls_labels``). With ``workers > 1``, that many
    spawned processes share the CPU threads and each receives the model (its tensors in shared memory).
    With ``resume_key`` the files of a killed run under the same key are kept (``wsss.io.output_dir``).
    Returns throughput figures.
    """
    missing = [image_id for image_id in ids if image_id not in labels]
    if missing:
        raise ValueError(f"no image-level labels for {len(missing)} ids, e.g. {missing[:5]}")
    model = runtime.prepare(model.eval())
    threads = torch.get_num_threads()
    workers = max(1, min(workers, len(ids))) if runtime.device.type == "cpu" else 1
    start = time.perf_counter()
    with output_dir(out_dir, resume_key) as tmp:
        tasks = [(str(image_path(voc_root, image_id)), np.flatnonzero(labels[image_id] > 1e-5),
                  str(tmp / f"{image_id}.npz")) for image_id in ids if not (tmp / f"{image_id}.npz").is_file()]
        if workers == 1:
            parallel_map(partial(_infer_task, model, cfg, runtime), tasks, desc="infer_cam", progress=progress)
        else:  # spawned: the model's tensors go to each worker once, in shared memory
            threads = max(1, threads // workers)
            parallel_map(_worker_task, tasks, workers, "infer_cam", progress, start_method="spawn",
                         initializer=_init_worker, initargs=(model, cfg, runtime, threads))
    seconds = time.perf_counter() - start
    return {"images": len(ids), "resumed": len(ids) - len(tasks), "seconds": round(seconds, 3),
            "images_per_s": round(len(tasks) / seconds, 4),
            "seconds_per_image": round(seconds / max(1, len(ids)), 4), "workers": workers,
            "threads_per_worker": threads, "precision": runtime.precision}


def _infer_task(model, cfg: InferCamConfig, runtime: Runtime, task: tuple[str, np.ndarray, str]) -> None:
    path, keys, out = task
    cams = multiscale_cam(model, read_rgb(path), keys, cfg.scales, cfg.flip, cfg.norm, runtime, cfg.upsample)
    save_cams(out, keys + 1, cams)


_WORKER: dict = {}


def _init_worker(model, cfg: InferCamConfig, runtime: Runtime, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER.update(model=model, cfg=cfg, runtime=runtime)


def _worker_task(task) -> None:
    _infer_task(_WORKER["model"], _WORKER["cfg"], _WORKER["runtime"], task)
