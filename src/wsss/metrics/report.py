"""Text tables and plots of evaluation results (segmentation.py and saliency.py dicts).

Plots use matplotlib's Agg canvas on a bare ``Figure`` (no pyplot, no global backend state);
matplotlib is imported inside the plotting functions only, so importing this module is cheap.
Plot files are written atomically.
"""

from pathlib import Path

from wsss.io import atomic_path

# (key, header): LDF's Table 2 columns first (Wei et al. CVPR'20, Table 2; weijun88/LDF@d49ff02:eval/main.m:78-107)
SALIENCY_COLUMNS = (
    ("mae", "MAE"), ("adp_f", "adpF(mF)"), ("ldf_e", "E_xi(LDF)"), ("adp_e", "adpE"),
    ("mean_f", "meanF"), ("max_f", "maxF"), ("mean_e", "meanE"), ("max_e", "maxE"),
    ("s_measure", "S"), ("wf", "wF"),
)


def format_segmentation_table(result: dict) -> str:
    """Per-class IoU / precision / recall (%) and the mIoU; for CAMs the threshold sweep's best."""
    rows = [f"{'class':<14}{'IoU':>8}{'prec.':>8}{'recall':>8}"]
    for name, iou in result["per_class"].items():
        rows.append(f"{name:<14}{_percent(iou)}{_percent(result['precision'][name])}{_percent(result['recall'][name])}")
    rows.append("-" * len(rows[0]))
    at = f" at bg threshold {result['bg_threshold']:.2f}" if "bg_threshold" in result else ""
    rows.append(f"mIoU{at}: {100 * result['miou']:.2f} %  ({result['count']} images)")
    if "best_threshold" in result:
        rows.append(f"best bg threshold {result['best_threshold']:.2f}: mIoU {100 * result['best_miou']:.2f} %"
                    " (picked on this set's own ground truth)")
    return "\n".join(rows)


def format_saliency_table(results_by_dataset: dict[str, dict]) -> str:
    """One row per dataset; MAE, adpF (LDF's mF) and E_xi(LDF) are LDF's Table 2 columns."""
    header = f"{'dataset':<12}{'images':>7}" + "".join(f"{title:>11}" for _, title in SALIENCY_COLUMNS)
    rows = [header]
    for name, result in results_by_dataset.items():
        rows.append(f"{name:<12}{result['count']:>7}" + "".join(f"{result[key]:>11.4f}" for key, _ in SALIENCY_COLUMNS))
    return "\n".join(rows)


def plot_per_class(result: dict, path: str | Path) -> None:
    """Bar chart of per-class IoU with the mIoU as a line."""
    figure, axes = new_figure(figsize=(10, 4))
    names = list(result["per_class"])
    values = [100 * (v or 0.0) for v in result["per_class"].values()]
    axes.bar(range(len(names)), values, color="tab:blue")
    axes.axhline(100 * result["miou"], color="tab:red", linestyle="--", label=f"mIoU {100 * result['miou']:.1f} %")
    axes.set_xticks(range(len(names)), names, rotation=60, ha="right")
    axes.set_ylabel("IoU (%)")
    axes.set_ylim(0, 100)
    axes.legend()
    save_figure(figure, path)


def plot_threshold_sweep(result: dict, path: str | Path) -> None:
    """mIoU against the constant background score, with the configured and the best threshold."""
    figure, axes = new_figure(figsize=(6, 4))
    thresholds = [point["threshold"] for point in result["sweep"]]
    axes.plot(thresholds, [100 * point["miou"] for point in result["sweep"]], marker=".")
    axes.axvline(result["bg_threshold"], color="tab:gray", linestyle=":",
                 label=f"configured {result['bg_threshold']:.2f}: {100 * result['miou']:.1f} %")
    axes.axvline(result["best_threshold"], color="tab:red", linestyle="--",
                 label=f"best {result['best_threshold']:.2f}: {100 * result['best_miou']:.1f} %")
    axes.set_xlabel("background score t")
    axes.set_ylabel("mIoU (%)")
    axes.legend()
    save_figure(figure, path)


def plot_pr_curves(curves_by_dataset: dict[str, dict], path: str | Path) -> None:
    """Precision-recall curves and F-measure (β² = 0.3) against the threshold, one line per dataset."""
    figure, (pr, ft) = new_figure(ncols=2, figsize=(10, 4))
    for name, curves in curves_by_dataset.items():
        pr.plot(curves["recall"], curves["precision"], label=name)
        ft.plot(curves["thresholds"], curves["f_measure"], label=name)
    pr.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01), title="PR curve")
    ft.set(xlabel="threshold", ylabel="F-measure", xlim=(0, 255), ylim=(0, 1.01), title="F-measure vs threshold")
    pr.legend()
    save_figure(figure, path)


def _percent(value: float | None) -> str:
    return f"{'n/a':>8}" if value is None else f"{100 * value:>8.2f}"


def new_figure(ncols: int = 1, figsize: tuple[float, float] = (6, 4), nrows: int = 1):
    """A matplotlib figure off any GUI backend and its axes (a 2-D array when ``nrows`` > 1)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(nrows=nrows, ncols=ncols, squeeze=nrows == 1)


def save_figure(figure, path: str | Path) -> None:
    """The figure as a PNG, written atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=120)


def plot_sccam_ablation(rounds: list[dict], clusters: list[dict], path: str | Path) -> None:
    """SC-CAM's CAM mIoU against the round (0: the initial classifier) and against K (each at its last round)."""
    figure, (by_round, by_k) = new_figure(ncols=2, figsize=(10, 4))
    by_round.plot([row["round"] for row in rounds], [100 * row["miou"] for row in rounds], marker="o")
    by_round.set(xlabel="round", ylabel="CAM mIoU (%)", title="rounds",
                 xticks=[row["round"] for row in rounds])
    by_k.plot([row["clusters"] for row in clusters], [100 * row["miou"] for row in clusters], marker="o")
    by_k.set(xlabel="K (sub-categories per class)", ylabel="CAM mIoU (%)", title="K",
             xticks=[row["clusters"] for row in clusters])
    save_figure(figure, path)
