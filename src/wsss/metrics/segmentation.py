"""Semantic segmentation metrics: one confusion matrix over the whole set, mIoU, CAM sweeps.

Conventions:

* The confusion (rows = ground truth, columns = prediction, int64) is accumulated over the whole image list, not
  averaged per image (YudeWang/SEAM@3212261:evaluation.py:10-82, jiwoon-ahn/irn@a2ece00:step/eval_sem_seg.py:8-31
  via chainercv). SEAM counts in int32, which nearly overflows on train_aug's background.
* Ground-truth 255 (void) pixels are ignored. A predicted 255 counts as background, as
  jiwoon-ahn/irn@a2ece00:step/eval_sem_seg.py:15 does (SEAM's script counts it as no class at all, i.e. only as a
  miss).
* IoU_c = TP / (TP + FP + FN). A class absent from both ground truth and prediction has an
  undefined IoU (``None`` in the results) and is left out of the mean, like chainercv's
  ``nanmean``; SEAM's ``+1e-10`` would count it as 0. When every class occurs in the
  ground truth (VOC train and val), both give the same mIoU.
* CAMs are turned into labels as in SEAM's ``evaluation.py --type npy`` (YudeWang/SEAM@3212261:evaluation.py:25-33):
  argmax over a constant background score ``t`` and the CAMs of the present classes; at equal scores the lower index
  wins, so background wins a tie with a foreground class. The sweep over ``t`` follows ``evaluation.py --curve``
  (t = 0.00 ... 0.59; YudeWang/SEAM@3212261:evaluation.py:123-130).

Images are decoded in worker processes (PNG decoding is the cost); this module imports only
numpy and PIL so that a whole evaluation process starts fast.
"""

import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from wsss.config import DEFAULT_BG_SWEEP, DEFAULT_BG_THRESHOLD, MAX_SWEEP_THRESHOLDS
from wsss.data.cam_files import cam_path, load_cams
from wsss.data.classes import IGNORE_INDEX, NUM_VOC_CLASSES, VOC_CLASSES
from wsss.io import read_id_list, read_label_png
from wsss.parallel import parallel_map

CHUNK = 32  # images per worker task

IdList = Sequence[str] | str | Path | None


def scores(confusion, class_names: Sequence[str] = VOC_CLASSES) -> dict:
    """mIoU (fraction), per-class IoU, precision and recall from a C×C confusion (rows = GT)."""
    confusion = np.asarray(confusion, dtype=np.int64)
    if confusion.sum() == 0:
        raise ValueError("empty confusion matrix: no labelled pixel was evaluated")
    iou, precision, recall = _rates(confusion)
    return {
        "miou": float(np.nanmean(iou)),
        "per_class": _by_name(iou, class_names),
        "precision": _by_name(precision, class_names),
        "recall": _by_name(recall, class_names),
        "confusion": confusion.tolist(),
    }


def evaluate_label_dirs(pred_dir: str | Path, gt_dir: str | Path, ids: IdList = None,
                        num_classes: int = NUM_VOC_CLASSES, workers: int = 2,
                        class_names: Sequence[str] | None = None) -> dict:
    """Score label PNGs ``<pred_dir>/<id>.png`` against ``<gt_dir>/<id>.png``.

    ``ids``: a list of ids, the path of a list file (one id per line), or None for every GT
    stem that has a prediction. ``class_names`` default to VOC's when ``num_classes`` is 21,
    else to "0", "1", ... Returns ``scores(...)`` plus ``count``.
    """
    ids = _resolve_ids(ids, gt_dir, pred_dir)
    pairs = list(zip(_files(pred_dir, ids, "prediction"), _files(gt_dir, ids, "ground truth")))
    work = partial(_label_chunk, num_classes=num_classes)
    confusion = sum(map_chunks(work, pairs, workers))
    return {**scores(confusion, _names(class_names, num_classes)), "count": len(pairs)}


def evaluate_cam_dir(cam_dir: str | Path, gt_dir: str | Path, ids: IdList = None,
                     bg_threshold: float = DEFAULT_BG_THRESHOLD, sweep: tuple[float, float, float] | None = DEFAULT_BG_SWEEP,
                     workers: int = 2) -> dict:
    """Score CAM files (``<id>.npz`` or psa/SEAM/irn ``<id>.npy``) against VOC label PNGs.

    The scores at ``bg_threshold`` (SEAM's ``out_cam_pred_alpha`` 0.26; psa 0.2, irn 0.15)
    come first; ``sweep = (start, stop, step)``, stop excluded, adds ``sweep`` (a list of
    ``{threshold, miou}``), ``best_threshold`` and ``best_miou``. All thresholds are scored in
    one pass over the images.
    """
    grid = sweep_thresholds(*sweep) if sweep is not None else []
    thresholds = sorted({*grid, round(float(bg_threshold), 6)})
    ids = _resolve_ids(ids, gt_dir, cam_dir)
    pairs = list(zip([cam_path(cam_dir, image_id) for image_id in ids], _files(gt_dir, ids, "ground truth")))
    work = partial(_cam_chunk, thresholds=np.array(thresholds, dtype=np.float32))
    confusions = _sweep_confusions(sum(map_chunks(work, pairs, workers)))

    at = thresholds.index(round(float(bg_threshold), 6))
    result = {"bg_threshold": thresholds[at], **scores(confusions[at]), "count": len(pairs)}
    if grid:
        mious = np.nanmean(_rates(confusions)[0], axis=1)
        curve = [{"threshold": t, "miou": float(mious[thresholds.index(t)])} for t in grid]
        best = max(curve, key=lambda point: point["miou"])  # first maximum: the lowest threshold
        result.update(sweep=curve, best_threshold=best["threshold"], best_miou=best["miou"])
    return result


def sweep_thresholds(start: float, stop: float, step: float) -> list[float]:
    """Thresholds start, start + step, ... below stop, rounded to 6 decimals (0.0, 0.6, 0.01 → 60 values)."""
    if not (step > 0 and 0 <= start < stop <= 1):
        raise ValueError(f"bad threshold sweep ({start}, {stop}, {step}): need 0 <= start < stop <= 1 and step > 0")
    count = int(np.ceil(round((stop - start) / step, 6)))
    if count > MAX_SWEEP_THRESHOLDS:
        raise ValueError(f"threshold sweep ({start}, {stop}, {step}) has {count} thresholds; "
                         f"at most {MAX_SWEEP_THRESHOLDS} (a larger step)")
    return [round(start + i * step, 6) for i in range(count)]


# -- confusions -------------------------------------------------------------------------------

def label_confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int = NUM_VOC_CLASSES) -> np.ndarray:
    """C×C int64 confusion of one uint8 label pair (GT 255 ignored, predicted 255 → background)."""
    hist = _joint_histogram(pred, gt, ("prediction", "ground truth"))
    _check_values(hist, num_classes, ("prediction", "ground truth"))
    return _fold(hist, num_classes)


def _joint_histogram(pred: np.ndarray, gt: np.ndarray, names: tuple) -> np.ndarray:
    """256×256 counts of (gt, pred) value pairs: one bincount over ``gt·256 + pred``."""
    if pred.shape != gt.shape:
        raise ValueError(f"size mismatch: {names[0]} is {pred.shape[::-1]} (W×H) but {names[1]} is {gt.shape[::-1]}")
    code = gt.astype(np.uint16)
    code <<= 8
    code |= pred
    return np.bincount(code.reshape(-1), minlength=256 * 256).reshape(256, 256)


def _check_values(hist: np.ndarray, num_classes: int, names: tuple) -> None:
    """Raise if a (gt, pred) histogram holds a label outside 0..C-1 and 255."""
    for present, name in ((hist[num_classes:IGNORE_INDEX].any(axis=1), names[1]),
                          (hist[:, num_classes:IGNORE_INDEX].any(axis=0), names[0])):
        if present.any():
            bad = (np.flatnonzero(present) + num_classes).tolist()
            raise ValueError(f"{name}: label values {bad} outside 0..{num_classes - 1} and {IGNORE_INDEX}")


def _fold(hist: np.ndarray, num_classes: int) -> np.ndarray:
    """Drop GT-void rows, count predicted 255 as background (irn eval_sem_seg.py)."""
    confusion = hist[:num_classes, :num_classes].copy()
    confusion[:, 0] += hist[:num_classes, IGNORE_INDEX]
    return confusion


def _label_chunk(pairs: list[tuple[Path, Path]], num_classes: int) -> np.ndarray:
    """Confusion of a chunk; label values are checked on the chunk's sum, per file only on failure."""
    total = np.zeros((256, 256), dtype=np.int64)
    for pred_path, gt_path in pairs:
        total += _joint_histogram(read_label_png(pred_path), read_label_png(gt_path), (pred_path, gt_path))
    try:
        _check_values(total, num_classes, ("a prediction", "a ground truth"))
    except ValueError:  # rare: find the file to name
        for pred_path, gt_path in pairs:
            hist = _joint_histogram(read_label_png(pred_path), read_label_png(gt_path), (pred_path, gt_path))
            _check_values(hist, num_classes, (pred_path, gt_path))
        raise
    return _fold(total, num_classes)


def _cam_chunk(pairs: list[tuple[Path, Path]], thresholds: np.ndarray) -> np.ndarray:
    """Counts ``[level, gt, best class]`` where ``level`` = how many thresholds lie below the best CAM score.

    At threshold index k a pixel is predicted as its best class if k < level (the class
    score beats t), else as background (t ≥ score: background wins ties). One bincount per
    image covers every threshold; ``_sweep_confusions`` turns the counts into confusions.
    """
    c = NUM_VOC_CLASSES
    total = np.zeros((len(thresholds) + 1, c, c), dtype=np.int64)
    for path, gt_path in pairs:
        keys, cams = load_cams(path)
        gt = read_label_png(gt_path)
        if cams.shape[1:] != gt.shape:
            raise ValueError(f"size mismatch: CAM {path} is {cams.shape[:0:-1]} (W×H) "
                             f"but ground truth {gt_path} is {gt.shape[::-1]}")
        bad = (gt >= c) & (gt != IGNORE_INDEX)
        if bad.any():
            values = np.unique(gt[bad]).tolist()
            raise ValueError(f"{gt_path}: label values {values} outside 0..{c - 1} and {IGNORE_INDEX}")
        total += cam_sweep_counts(keys, cams, gt, thresholds)
    return total


def cam_sweep_counts(keys: np.ndarray, cams: np.ndarray, gt: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The ``[level, gt, best class]`` counts of one image's K×H×W CAMs of classes ``keys`` (1..20) against
    its H×W labels (0..20, 255 void); sum them over images and score with :func:`sweep_mious`."""
    c = NUM_VOC_CLASSES
    rows = c + 1  # ground truth 0..20, then one row collecting the void pixels, dropped at the end
    score, best = _best_class(np.asarray(keys), cams)
    level = np.searchsorted(thresholds, score, side="left")
    code = (level * rows + np.minimum(gt, c)) * c + best
    counts = np.bincount(code.reshape(-1), minlength=(len(thresholds) + 1) * rows * c)
    return counts.reshape(-1, rows, c)[:, :c]


def sweep_mious(counts: np.ndarray) -> np.ndarray:
    """The mIoU at each threshold of summed :func:`cam_sweep_counts`."""
    iou, _, _ = _rates(_sweep_confusions(counts))
    return np.nanmean(iou, axis=1)


def _best_class(keys: np.ndarray, cams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel the highest CAM score and its class; the lower class index wins ties (keys ascend)."""
    if not keys.size:
        return np.full(cams.shape[1:], -np.inf, dtype=np.float32), np.zeros(cams.shape[1:], dtype=np.int64)
    score = cams[0].copy()
    best = np.full(score.shape, keys[0], dtype=np.int64)
    for key, cam in zip(keys[1:], cams[1:]):
        best[cam > score] = key
        np.maximum(score, cam, out=score)
    return score, best


def _sweep_confusions(counts: np.ndarray) -> np.ndarray:
    """T×C×C confusions from the ``[level, gt, class]`` counts of ``_cam_chunk``."""
    at_or_below = np.cumsum(counts, axis=0)[:-1]  # pixels that are background at threshold k
    confusions = counts.sum(axis=0) - at_or_below
    confusions[..., 0] += at_or_below.sum(axis=2)
    return confusions


def _rates(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU, precision and recall per class (NaN where undefined) of (..., C, C) confusions."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1).astype(np.float64)
    gt_total = confusion.sum(axis=-1)
    pred_total = confusion.sum(axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return tp / (gt_total + pred_total - tp), tp / pred_total, tp / gt_total


def _by_name(values: np.ndarray, names: Sequence[str]) -> dict:
    return {name: None if np.isnan(v) else float(v) for name, v in zip(names, values, strict=True)}


def _names(class_names: Sequence[str] | None, num_classes: int) -> Sequence[str]:
    if class_names is not None:
        return class_names
    return VOC_CLASSES if num_classes == NUM_VOC_CLASSES else [str(i) for i in range(num_classes)]


# -- files and workers ------------------------------------------------------------------------

def _resolve_ids(ids: IdList, gt_dir: str | Path, pred_dir: str | Path) -> list[str]:
    if isinstance(ids, (str, Path)):
        return read_id_list(ids)
    if ids is not None:
        if not ids:
            raise ValueError("empty id list")
        return list(ids)
    predicted = {name.rsplit(".", 1)[0] for name in os.listdir(pred_dir)}
    found = sorted(name[:-4] for name in os.listdir(gt_dir) if name.endswith(".png") and name[:-4] in predicted)
    if not found:
        raise ValueError(f"no ground-truth PNG in {gt_dir} has a prediction in {pred_dir}")
    return found


def _files(folder: str | Path, ids: list[str], what: str) -> list[Path]:
    """``<folder>/<id>.png`` for every id; a missing file is an error naming it."""
    paths = [Path(folder) / f"{image_id}.png" for image_id in ids]
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"missing {what} {missing[0]}{more}")
    return paths


def map_chunks(work: Callable, items: list, workers: int, chunk: int = CHUNK) -> list:
    """``work`` applied to chunks of ``items``, in order, over ``workers`` forked processes when > 1 and there
    is more than one chunk (each worker returns one partial sum per chunk, not one result per image)."""
    chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    return parallel_map(work, chunks, workers if len(chunks) > 1 else 1, progress=False, start_method="fork")
