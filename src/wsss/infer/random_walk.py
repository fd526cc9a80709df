"""The random walk of AffinityNet (Ahn & Kwak, CVPR'18, Sec. 3.4, Eqs. 6-8): CAMs → pseudo labels.

As jiwoon-ahn/psa@9493e59:infer_aff.py:85-120: the image is padded to a multiple of the feature
stride; the scores ``[(1 - max_k cam_k)^alpha ; cams]`` (present classes only) are zero-padded alike and
average-pooled to the feature grid; the affinity matrix ``A`` holds the network's affinities of every pair closer
than ``radius`` (both directions) and 1 on the diagonal. The transition matrix is ``T = A^β D⁻¹`` with ``D`` the
column sums of ``A^β``: **columns sum to 1**, and a walk step maps the scores ``v`` (C×n, one row per class)
to ``v T``, so each position's new score is an affinity-weighted mean of its neighbours' scores. After
``t = 2^logt`` steps the scores are upsampled bilinearly to the padded image, cropped, and argmax-ed.

Two ways to compute ``v T^t``, equal up to rounding (``tests/test_affinity.py``):

* dense (psa): ``T`` as an n×n matrix squared ``logt`` times, then one product. Memory: n² floats per matrix
  and three alive during a squaring; a 500×375 VOC image has n = 63·47 = 2961 positions at stride 8, so
  35 MB a matrix, at most three alive (fp32); ``benchmarks/bench_random_walk.py`` measured 64 MB of added peak
  RSS and 9.1 s for t = 256 on 2 shared CPU cores. The ``logt`` products cost ``2·logt·n³`` flops: 0.4 TFLOP
  for that image, fast on a GPU, seconds on a CPU.
* sparse: ``T`` kept as a CSR matrix with at most ``2·D + 1`` entries per column (D pairs per position,
  69 for radius 5) and ``t`` sparse products with the scores: ``t·(2D + 1)·n·C`` multiply-adds, memory linear
  in n: 4 MB added and 1.4 s for the same image and machine. It is the only way for large images and the faster
  one on a CPU.

``walk: auto`` takes the dense walk on CUDA while n ≤ ``dense_max_nodes`` and the sparse walk otherwise.
``pseudo: rw_crf`` then runs the dense CRF on the walk's scores (YudeWang/SEAM@3212261:infer_aff.py:136-149;
psa's author also refines the walk's labels with a CRF).
"""

from __future__ import annotations

import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wsss.config import AffinityConfig, CRFConfig
from wsss.data.cam_files import cam_path
from wsss.data.voc import image_path
from wsss.infer.crf import dense_crf, read_image_and_cams
from wsss.io import atomic_path, output_dir, save_label_png
from wsss.nets.affinity import pair_affinities, pair_offsets
from wsss.nets.backbones import model_statistics
from wsss.parallel import parallel_map
from wsss.runtime import Runtime


def transition_matrix(affinity: torch.Tensor, radius: int, beta: float) -> torch.Tensor:
    """The column-stochastic n×n transition matrix (sparse COO, fp32) of D×h×w pair affinities (n = h·w).

    ``affinity[k, y, x]`` is the affinity of ``(y, x)`` and ``(y + dy_k, x + dx_k)`` (``pair_offsets``); it
    enters ``A`` at both ``(p, q)`` and ``(q, p)``, the diagonal is 1, then ``T = A^β / colsum(A^β)``.
    """
    offsets = pair_offsets(radius)
    if affinity.dim() != 3 or affinity.shape[0] != len(offsets):
        raise ValueError(f"affinity of shape {tuple(affinity.shape)}: expected {len(offsets)}×h×w for radius {radius}")
    _, height, width = affinity.shape
    device = affinity.device
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    sources, targets, values = [], [], []
    for k, (dy, dx) in enumerate(offsets):
        inside = (ys + dy < height) & (xs + dx >= 0) & (xs + dx < width)
        sources.append((ys * width + xs)[inside])
        targets.append(((ys + dy) * width + xs + dx)[inside])
        values.append(affinity[k][inside].float())
    nodes = torch.arange(height * width, device=device)
    rows = torch.cat([*sources, *targets, nodes])
    columns = torch.cat([*targets, *sources, nodes])
    weights = torch.cat([*values, *values, torch.ones(height * width, device=device)]).pow(beta)
    column_sums = torch.zeros(height * width, device=device).index_add_(0, columns, weights)
    return torch.sparse_coo_tensor(torch.stack([rows, columns]), weights / column_sums[columns],
                                   (height * width,) * 2, check_invariants=True).coalesce()


def walk_dense(transition: torch.Tensor, scores: torch.Tensor, logt: int) -> torch.Tensor:
    """``scores T^(2^logt)`` (C×n) with ``T`` squared ``logt`` times as a dense matrix
    (jiwoon-ahn/psa@9493e59:infer_aff.py:105-114)."""
    matrix = transition.to_dense()
    for _ in range(logt):
        matrix = matrix @ matrix
    return scores @ matrix


def walk_sparse(transition: torch.Tensor, scores: torch.Tensor, logt: int) -> torch.Tensor:
    """``scores T^(2^logt)`` (C×n) as ``2^logt`` products with the sparse ``T`` (memory linear in n)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta state")
        transposed = transition.t().coalesce().to_sparse_csr()
    columns = scores.t().contiguous()
    for _ in range(2 ** logt):
        columns = transposed @ columns
    return columns.t()


def walk_kind(cfg: AffinityConfig, nodes: int, device: torch.device) -> str:
    """``dense`` or ``sparse`` for ``cfg.walk`` on a grid of ``nodes`` positions on ``device``."""
    if cfg.walk != "auto":
        return cfg.walk
    return "dense" if device.type == "cuda" and nodes <= cfg.dense_max_nodes else "sparse"


def random_walk(scores: torch.Tensor, affinity: torch.Tensor, cfg: AffinityConfig, kind: str | None = None) -> torch.Tensor:
    """C×h×w scores after ``2^cfg.logt`` steps of the walk of D×h×w affinities (``kind``: dense, sparse, or the
    choice of :func:`walk_kind`)."""
    channels, height, width = scores.shape
    transition = transition_matrix(affinity, cfg.radius, cfg.beta)
    kind = kind or walk_kind(cfg, height * width, scores.device)
    walk = {"dense": walk_dense, "sparse": walk_sparse}[kind]
    return walk(transition, scores.reshape(channels, -1).float(), cfg.logt).reshape(channels, height, width)


@torch.no_grad()
def random_walk_scores(model: torch.nn.Module, image: np.ndarray, cams: np.ndarray, cfg: AffinityConfig,
                       runtime: Runtime) -> torch.Tensor:
    """(1+K)×H×W walked scores of an HxWx3 uint8 image and its K×H×W CAMs: background first, then the CAMs'
    classes. ``model`` is an ``AffinityNet`` in eval mode on the runtime's device."""
    height, width = image.shape[:2]
    stride = model.stride
    padded = (-(-height // stride) * stride, -(-width // stride) * stride)
    pad = (0, padded[1] - width, 0, padded[0] - height)
    mean, std = (torch.tensor(values).view(3, 1, 1) for values in model_statistics(model))
    pixels = (torch.from_numpy(image).permute(2, 0, 1).float() / 255 - mean) / std
    with runtime.autocast():
        features = model(runtime.batch(F.pad(pixels, pad)[None]))
    grid = (padded[0] // stride, padded[1] // stride)
    if tuple(features.shape[-2:]) != grid:
        raise ValueError(f"AffinityNet gave a {tuple(features.shape[-2:])} map for a {padded} input; expected {grid}")
    affinity = pair_affinities(features, cfg.radius, cfg.pairs)[0]

    cams = torch.from_numpy(cams).float()
    background = (1 - cams.amax(0, keepdim=True).clamp(0, 1)) ** cfg.alpha
    scores = F.avg_pool2d(F.pad(torch.cat([background, cams]), pad), stride).to(runtime.device)
    walked = random_walk(scores, affinity, cfg)
    upsampled = F.interpolate(walked[None], padded, mode="bilinear", align_corners=False)[0]
    return upsampled[:, :height, :width].cpu()


def random_walk_label(model: torch.nn.Module, image: np.ndarray, keys, cams: np.ndarray, cfg: AffinityConfig,
                      runtime: Runtime, crf: CRFConfig | None = None) -> np.ndarray:
    """HxW uint8 VOC labels: the argmax of the walked scores (channel i > 0 → ``keys[i-1]``), after a dense CRF on
    them for ``crf`` (``cfg.crf_iterations`` mean-field steps with ``crf``'s kernels)."""
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    if not keys.size:
        return np.zeros(image.shape[:2], np.uint8)
    scores = random_walk_scores(model, image, cams, cfg, runtime).numpy()
    if crf is not None:
        scores = dense_crf(image, scores, cfg.crf_iterations, **crf.kernels())
    lookup = np.concatenate([[0], keys]).astype(np.uint8)
    return lookup[scores.argmax(axis=0)]


def random_walk_label_dir(model: torch.nn.Module, voc_root: str | Path, ids: list[str], cam_dir: str | Path,
                          out_dir: str | Path, cfg: AffinityConfig, runtime: Runtime, crf: CRFConfig | None = None,
                          workers: int = 1, progress: bool = True, resume_key: str | None = None) -> dict:
    """Write ``<id>.png`` random-walk labels of every id into ``out_dir``, atomically (``crf``: walk + CRF).

    With ``workers > 1`` on a CPU, that many spawned processes share the threads and each receives the model once
    (as ``wsss.infer.cam.infer_cam_dir``); on CUDA one process. ``resume_key`` as ``wsss.io.output_dir``.
    """
    model = runtime.prepare(model.eval())
    threads = torch.get_num_threads()
    workers = max(1, min(workers, len(ids))) if runtime.device.type == "cpu" else 1
    start = time.perf_counter()
    with output_dir(out_dir, resume_key) as tmp:
        tasks = [(str(image_path(voc_root, image_id)), str(cam_path(cam_dir, image_id)), str(tmp / f"{image_id}.png"))
                 for image_id in ids if not (tmp / f"{image_id}.png").is_file()]
        if workers == 1:
            parallel_map(partial(_label_task, model, cfg, runtime, crf), tasks, desc="random walk", progress=progress)
        else:
            threads = max(1, threads // workers)
            parallel_map(_worker_task, tasks, workers, "random walk", progress, start_method="spawn",
                         initializer=_init_worker, initargs=(model, cfg, runtime, crf, threads))
    seconds = time.perf_counter() - start
    return {"images": len(ids), "resumed": len(ids) - len(tasks), "seconds": round(seconds, 3),
            "seconds_per_image": round(seconds / max(1, len(tasks)), 4), "workers": workers,
            "threads_per_worker": threads, "precision": runtime.precision, "crf": crf is not None}


def _label_task(model, cfg: AffinityConfig, runtime: Runtime, crf: CRFConfig | None, task: tuple[str, str, str]) -> None:
    image_file, cam_file, out = task
    image, keys, cams = read_image_and_cams(image_file, cam_file)
    labels = random_walk_label(model, image, keys, cams, cfg, runtime, crf)
    with atomic_path(out) as tmp:
        save_label_png(tmp, labels)


_WORKER: dict = {}


def _init_worker(model, cfg: AffinityConfig, runtime: Runtime, crf: CRFConfig | None, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER.update(model=model, cfg=cfg, runtime=runtime, crf=crf)


def _worker_task(task) -> None:
    _label_task(_WORKER["model"], _WORKER["cfg"], _WORKER["runtime"], _WORKER["crf"], task)
