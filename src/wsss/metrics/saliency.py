"""Salient object detection metrics, computed by pysodmetrics (``py_sod_metrics``), beside LDF's own
MATLAB evaluation (weijun88/LDF@d49ff02:eval/main.m).

Columns (each the mean over images):

* ``mae``; ``adp_f``: F at the adaptive threshold min(2·mean, 1), β² = 0.3 — LDF's "mF";
  ``mean_f`` / ``max_f``: mean / max over the 256 thresholds of the image-averaged F curve
  (pysodmetrics' max F; LDF's MATLAB maxF is the F of the mean PR curve instead);
* ``adp_e`` / ``mean_e`` / ``max_e``: E-measure at the adaptive threshold / over thresholds;
  ``s_measure`` (α = 0.5); ``wf``: weighted F (β = 1);
* ``ldf_e``: LDF's own E_ξ (weijun88/LDF@d49ff02:eval/Emeasure.m:21-26): threshold 2·mean *uncapped*, strict ``>``,
  computed with pysodmetrics' ``Emeasure.cal_em_with_threshold`` without its cap at 1. Only
  in this column, LDF's skip rule (weijun88/LDF@d49ff02:eval/main.m:75) applies: an image whose prediction or
  ground truth is all zero scores 0 but still counts.

Inputs are read on the 0..255 grey scale (16-bit maps keep every level, ``wsss.io.read_grey``) and
prepared by pysodmetrics (prediction min-max normalised,
ground truth > 128). ``curves`` holds the image-averaged precision, recall and F curves
for binarisation thresholds 0..255 (pixel ≥ threshold), for plots.
"""

from pathlib import Path
from typing import Sequence

import numpy as np
import py_sod_metrics as psm
from py_sod_metrics.utils import prepare_data

from wsss.io import read_grey
from wsss.metrics.segmentation import map_chunks

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
BETA2 = 0.3  # F-measure β² of the SOD literature (Achanta et al. 2009; weijun88/LDF@d49ff02:eval/Fmeasure.m)
CHUNK = 16
SCALARS = ("mae", "adp_f", "adp_e", "s_measure", "wf", "ldf_e")
CURVES = ("precision", "recall", "f_measure", "e_measure")


def evaluate_saliency_dirs(pred_dir: str | Path, gt_dir: str | Path, workers: int = 1,
                           names: Sequence[str] | None = None) -> dict:
    """Score saliency maps ``<pred_dir>/<stem>.*`` against masks ``<gt_dir>/<stem>.*``.

    Every mask (of ``names`` only, when given) needs a prediction of the same size (extra predictions are ignored).
    """
    preds, gts = _images_by_stem(pred_dir), _images_by_stem(gt_dir)
    if names is not None:
        unknown = [name for name in names if name not in gts]
        if unknown:
            raise FileNotFoundError(f"missing mask {Path(gt_dir) / unknown[0]}.png of a listed name"
                                    + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
        gts = {name: gts[name] for name in names}
    if not gts:
        raise ValueError(f"no masks ({', '.join(IMAGE_SUFFIXES)}) in {gt_dir}")
    missing = sorted(set(gts) - set(preds))
    if missing:
        raise FileNotFoundError(f"missing prediction {Path(pred_dir) / missing[0]}.png for {gts[missing[0]]}"
                                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    pairs = [(preds[stem], gts[stem]) for stem in sorted(gts)]
    parts = map_chunks(_score_chunk, pairs, workers, CHUNK)
    count = sum(part["count"] for part in parts)
    mean = {key: sum(part[key] * part["count"] for part in parts) / count for key in SCALARS + CURVES}
    flip = slice(None, None, -1)  # pysodmetrics orders thresholds 255 → 0
    return {
        "count": count,
        **{key: float(mean[key]) for key in ("mae", "adp_f")},
        "mean_f": float(mean["f_measure"].mean()),
        "max_f": float(mean["f_measure"].max()),
        "adp_e": float(mean["adp_e"]),
        "mean_e": float(mean["e_measure"].mean()),
        "max_e": float(mean["e_measure"].max()),
        **{key: float(mean[key]) for key in ("s_measure", "wf", "ldf_e")},
        "curves": {
            "thresholds": list(range(256)),
            **{key: mean[key][flip].tolist() for key in ("precision", "recall", "f_measure")},
        },
    }


def ldf_emeasure(emeasure: "psm.Emeasure", pred: np.ndarray, gt: np.ndarray) -> float:
    """LDF's E_ξ of one prepared pair (pred in [0, 1], gt bool), skip rule included.

    LDF binarises with ``pred > 2·mean`` and no cap at 1; pysodmetrics binarises with ``>=``,
    so the threshold is moved to the next float above 2·mean (weijun88/LDF@d49ff02:eval/Emeasure.m:22-26).
    """
    if not pred.any() or not gt.any():  # weijun88/LDF@d49ff02:eval/main.m:75: max(fg) == 0 || max(gt) == 0 scores 0
        return 0.0
    emeasure.gt_fg_numel = np.count_nonzero(gt)
    emeasure.gt_size = gt.size
    return float(emeasure.cal_em_with_threshold(pred, gt, threshold=np.nextafter(2 * pred.mean(), np.inf)))


def _score_chunk(pairs: list[tuple[Path, Path]]) -> dict:
    """Means over a chunk of pairs, from one set of pysodmetrics accumulators."""
    mae, sm, wfm, em = psm.MAE(), psm.Smeasure(alpha=0.5), psm.WeightedFmeasure(beta=1), psm.Emeasure()
    fm = psm.FmeasureV2(metric_handlers={
        "f": psm.FmeasureHandler(with_dynamic=True, with_adaptive=True, beta=BETA2),
        "p": psm.PrecisionHandler(with_dynamic=True, with_adaptive=False),
        "r": psm.RecallHandler(with_dynamic=True, with_adaptive=False),
    })
    ldf_e = []
    for pred_path, gt_path in pairs:
        pred, gt = read_grey(pred_path), read_grey(gt_path)
        if pred.shape != gt.shape:
            raise ValueError(f"size mismatch: prediction {pred_path} is {pred.shape[::-1]} (W×H) "
                             f"but mask {gt_path} is {gt.shape[::-1]}")
        pred, gt = prepare_data(pred, gt)
        for metric in (mae, sm, wfm, em, fm):
            metric.step(pred, gt, normalize=False)
        ldf_e.append(ldf_emeasure(em, pred, gt))
    f, e = fm.get_results(), em.get_results()["em"]
    return {
        "count": len(pairs),
        "mae": mae.get_results()["mae"],
        "adp_f": f["f"]["adaptive"],
        "adp_e": e["adp"],
        "s_measure": sm.get_results()["sm"],
        "wf": wfm.get_results()["wfm"],
        "ldf_e": float(np.mean(ldf_e)),
        "precision": f["p"]["dynamic"],
        "recall": f["r"]["dynamic"],
        "f_measure": f["f"]["dynamic"],
        "e_measure": e["curve"],
    }


def _images_by_stem(folder: str | Path) -> dict[str, Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {folder} does not exist")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in found:
                raise ValueError(f"two images named {path.stem} in {folder}: {found[path.stem].name} and {path.name}")
            found[path.stem] = path
    return found
