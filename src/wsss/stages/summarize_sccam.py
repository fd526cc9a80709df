"""Stage ``sccam_ablation``: SC-CAM's CAM mIoU on ``train`` over the rounds and over K (Chang et al., CVPR'20,
§4 ablations), from the ``eval_cam`` results of each round and each K variant.

Rounds: round 0 is ``sccam.initial_method``'s classifier, round ``r`` the folder ``<method>_round<r>`` and
the last round the method's own (``wsss.config.round_method``). K: the last round of each method of
``sccam_ablation.clusters``, with its ``sccam.clusters``. Writes the JSON, a Markdown table and a plot.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wsss.config import load_config, round_method
from wsss.io import atomic_path, read_json, write_json
from wsss.metrics.report import plot_sccam_ablation
from wsss.stages.common import stage_config
from wsss.tracking import config_stage_run


def _scores(results: Path, folder: str) -> dict:
    score = read_json(results / folder / "cam_miou.json")
    return {"folder": folder, "miou": score["miou"], "best_miou": score.get("best_miou"),
            "best_threshold": score.get("best_threshold")}


def ablation(cfg, args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """(rows of the rounds 0..R, rows of the K variants), each with its CAM mIoU."""
    results = Path(args.results)

    def method_config(name: str):
        return load_config(args.params, [*args.overrides, f"method={name}"])

    method = cfg.sccam_ablation.method
    settings = method_config(method).sccam
    rounds = [{"round": 0, **_scores(results, settings.initial_method)}]
    rounds += [{"round": r, **_scores(results, round_method(method, r, settings.rounds))}
               for r in range(1, settings.rounds + 1)]
    clusters = []
    for name in cfg.sccam_ablation.clusters:
        variant = method_config(name).sccam
        clusters.append({"clusters": variant.clusters, "method": name, "rounds": variant.rounds,
                         **_scores(results, name)})
    return rounds, sorted(clusters, key=lambda row: row["clusters"])


def markdown_table(rounds: list[dict], clusters: list[dict], dataset: str) -> str:
    def pct(value):
        return "—" if value is None else f"{100 * value:.2f}"

    def best(row):
        return "—" if row["best_miou"] is None else f"{pct(row['best_miou'])} ({row['best_threshold']:.2f})"

    lines = [f"| round | CAMs of | mIoU (train, {dataset}) | best mIoU (bg t) |", "|---|---|---|---|"]
    lines += [f"| {row['round']} | `{row['folder']}` | {pct(row['miou'])} | {best(row)} |" for row in rounds]
    lines += ["", f"| K | method (rounds) | mIoU (train, {dataset}) | best mIoU (bg t) |", "|---|---|---|---|"]
    lines += [f"| {row['clusters']} | `{row['method']}` ({row['rounds']}) | {pct(row['miou'])} | {best(row)} |"
              for row in clusters]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    rounds, clusters = ablation(cfg, args)
    table = markdown_table(rounds, clusters, cfg.voc_dataset)
    with config_stage_run(cfg, "sccam_ablation", pipeline="wsss", method=cfg.sccam_ablation.method) as tracked:
        write_json(args.out, {"dataset": cfg.voc_dataset, "profile": cfg.profile, "rounds": rounds,
                              "clusters": clusters})
        with atomic_path(args.table) as tmp:
            tmp.write_text(table)
        plot_sccam_ablation(rounds, clusters, args.plot)
        for row in rounds:
            tracked.log_metrics({"round_miou": row["miou"]}, step=row["round"])
        for row in clusters:
            tracked.log_metrics({"k_miou": row["miou"]}, step=row["clusters"])
        for path in (args.out, args.table, args.plot):
            tracked.log_artifact(path)
    print(table, end="")
    return 0
