"""``wsss evaluate segmentation|saliency``: score any method's outputs, write JSON, print a table, log to MLflow.

Works inside the project (defaults and tracking from ``params.yaml``) and outside it (the metric
functions' defaults; runs tagged ``profile=none``). Plots are drawn only when they are wanted
(``--plot`` or tracking), so a bare scoring process stays light.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from wsss.config import DEFAULT_BG_SWEEP, DEFAULT_BG_THRESHOLD
from wsss.io import write_json
from wsss.stages.common import has_params, stage_config
from wsss.tracking import require_server, stage_run


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args) if has_params(args) else None
    tracking = not args.no_track and (cfg.tracking.enabled if cfg else True)
    workers = args.workers or (cfg.evaluate.workers if cfg else 2)
    if tracking:
        require_server()  # before any work: a result is written only when its run can be logged
    if args.evaluate_command == "segmentation":
        result, draw, metrics = _segmentation(args, cfg, workers)
        pipeline, dataset = "wsss", cfg.voc_dataset if cfg else "external"
    else:
        result, draw, metrics = _saliency(args, workers)
        pipeline, dataset = "sod", cfg.sod_dataset if cfg else "external"
    write_json(args.out, result)
    if not (tracking or args.plot):
        return 0
    plots = draw(args.plot or Path(tempfile.mkdtemp(prefix="wsss-plots-")) / f"{args.evaluate_command}.png")
    params = {"pred": str(args.pred), "gt": str(args.gt), **(cfg.to_dict() if cfg else {})}
    with stage_run(f"evaluate_{args.evaluate_command}", pipeline=pipeline, dataset=dataset,
                   profile=cfg.profile if cfg else "none", method=args.method, enabled=tracking,
                   params=params) as tracked:
        tracked.log_metrics(metrics)
        tracked.log_artifact(args.out)
        for plot in plots:
            tracked.log_artifact(plot, "plots")
    return 0


def _segmentation(args: argparse.Namespace, cfg, workers: int):
    from wsss.metrics import segmentation
    from wsss.metrics.report import format_segmentation_table, plot_per_class, plot_threshold_sweep

    if args.cams:
        threshold = args.bg_threshold if args.bg_threshold is not None else (cfg.evaluate.bg_threshold if cfg else DEFAULT_BG_THRESHOLD)
        sweep = _parse_range(args.bg_thresholds) if args.bg_thresholds else (cfg.evaluate.bg_sweep if cfg else DEFAULT_BG_SWEEP)
        result = segmentation.evaluate_cam_dir(args.pred, args.gt, args.list, bg_threshold=threshold,
                                               sweep=sweep, workers=workers)
    else:
        result = segmentation.evaluate_label_dirs(args.pred, args.gt, args.list, workers=workers)
    print(format_segmentation_table(result))

    def draw(path: Path) -> list[Path]:
        plot_per_class(result, path)
        if "sweep" not in result:
            return [path]
        sweep_plot = path.with_name(f"{path.stem}_sweep{path.suffix}")
        plot_threshold_sweep(result, sweep_plot)
        return [path, sweep_plot]

    metrics = {"miou": result["miou"]}
    for kind, prefix in (("per_class", "iou"), ("precision", "precision"), ("recall", "recall")):
        metrics.update({f"{prefix}/{name}": value for name, value in result[kind].items() if value is not None})
    if "best_threshold" in result:
        metrics.update(best_threshold=result["best_threshold"], best_miou=result["best_miou"])
    return result, draw, metrics


def _saliency(args: argparse.Namespace, workers: int):
    from wsss.metrics.report import format_saliency_table, plot_pr_curves
    from wsss.metrics.saliency import evaluate_saliency_dirs

    gt, names = Path(args.gt), None
    if not any(gt.glob("*.png")):  # a dataset folder: its mask folder (masks/, mask/, GT/, ...) and its test.txt
        from wsss.data.sod import find_sod_dirs, read_list_names

        _, gt, listing = find_sod_dirs(gt.parent, gt.name, "test.txt")
        names = read_list_names(listing) if listing else None
        name = args.name or Path(args.gt).name
    else:
        name = args.name or gt.resolve().parent.name
    scores = evaluate_saliency_dirs(args.pred, gt, workers=workers, names=names)
    curves = scores.pop("curves")
    result = {name: scores}
    print(format_saliency_table(result))

    def draw(path: Path) -> list[Path]:
        plot_pr_curves({name: curves}, path)
        return [path]

    metrics = {f"{name}/{key}": value for key, value in scores.items() if isinstance(value, (int, float))}
    return result, draw, metrics


def _parse_range(text: str) -> tuple[float, float, float]:
    try:
        start, stop, step = (float(part) for part in text.split(":"))
    except ValueError:
        raise ValueError(f"--bg-thresholds must be START:STOP:STEP, e.g. 0:0.6:0.01, got {text!r}") from None
    return start, stop, step
