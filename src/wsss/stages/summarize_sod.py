"""Stage ``summarize_sod``: ``results/sod_metrics.json`` (dataset → metrics), or with ``--ablation`` the
supervision ablation (LDF Table 5), from ``wsss evaluate saliency`` JSONs.

The ablation's items are labelled ``supervision@seed``: each row holds every seed's scores, their mean and
their spread (max − min over the seeds), and a Markdown table of mean ± spread is written beside the JSON.

Prints the table beside LDF's published Table 2 (Wei et al. CVPR'20) and logs every figure to MLflow.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wsss.io import atomic_path, write_json
from wsss.metrics.report import format_saliency_table
from wsss.stages.common import stage_config
from wsss.tracking import config_stage_run

# LDF's Table 2 (MAE, mF = adaptive F, E_ξ), as weijun88/LDF@d49ff02:fig/table.png prints it
LDF_TABLE2 = {
    "ECSSD": (0.034, 0.930, 0.925), "PASCAL-S": (0.060, 0.848, 0.865), "DUTS-TE": (0.034, 0.855, 0.910),
    "HKU-IS": (0.027, 0.914, 0.954), "DUT-OMRON": (0.051, 0.773, 0.873), "THUR15K": (0.064, 0.764, 0.842),
}


def read_results(items: list[str]) -> dict[str, dict]:
    """``[LABEL=]PATH`` items → {label: {dataset: metrics}} (label "" when not given)."""
    grouped: dict[str, dict] = {}
    for item in items:
        label, _, path = item.rpartition("=")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: saliency results missing; run `wsss evaluate saliency` first")
        grouped.setdefault(label, {}).update(json.loads(path.read_text()))
    return grouped


ABLATION_COLUMNS = (("mae", "MAE ↓"), ("adp_f", "adaptive F"), ("max_f", "max F"), ("s_measure", "S-measure"),
                    ("ldf_e", "E_ξ (LDF)"))
ROWS = {"body_detail": "body + detail (LDF)", "body_edge": "body + edge", "saliency_detail": "saliency + detail",
        "saliency_edge": "saliency + edge"}


def ablation_rows(grouped: dict[str, dict], default_seed: int) -> dict[str, dict]:
    """``{supervision@seed: {dataset: metrics}}`` → ``{supervision: {seeds, mean, spread}}``, each of the
    last two ``{dataset: {metric: value}}`` over the scalar metrics every seed has."""
    rows: dict[str, dict] = {}
    for label, results in grouped.items():
        supervision, _, seed = label.partition("@")
        rows.setdefault(supervision, {"seeds": {}})["seeds"][seed or str(default_seed)] = results
    for row in rows.values():
        runs = list(row["seeds"].values())
        row["mean"], row["spread"] = {}, {}
        for dataset in set.intersection(*(set(run) for run in runs)):
            keys = [key for key, value in runs[0][dataset].items() if isinstance(value, (int, float)) and key != "count"]
            values = {key: [run[dataset][key] for run in runs] for key in keys}
            row["mean"][dataset] = {key: sum(v) / len(v) for key, v in values.items()}
            row["spread"][dataset] = {key: max(v) - min(v) for key, v in values.items()}
    return rows


def ablation_checks(rows: dict[str, dict]) -> dict:
    """Per dataset: does body+detail beat saliency+edge on the seeds' mean MAE (lower) and adaptive F (higher)?"""
    if not {"body_detail", "saliency_edge"} <= set(rows):
        return {}
    best, worst = rows["body_detail"]["mean"], rows["saliency_edge"]["mean"]
    return {name: {"mae": best[name]["mae"] < worst[name]["mae"], "adp_f": best[name]["adp_f"] > worst[name]["adp_f"]}
            for name in best if name in worst}


def ablation_markdown(rows: dict[str, dict]) -> str:
    """One table per dataset: each supervision row's mean ± spread over its seeds."""
    lines = []
    for dataset in sorted({name for row in rows.values() for name in row["mean"]}):
        seeds = max(len(row["seeds"]) for row in rows.values())
        lines += [f"{dataset}: mean ± spread (max − min) over {seeds} seed(s)", "",
                  "| supervision | " + " | ".join(title for _, title in ABLATION_COLUMNS) + " |",
                  "|---" * (len(ABLATION_COLUMNS) + 1) + "|"]
        for supervision, row in rows.items():
            if dataset in row["mean"]:
                mean, spread = row["mean"][dataset], row["spread"][dataset]
                lines.append(f"| {ROWS.get(supervision, supervision)} | "
                             + " | ".join(f"{mean[key]:.3f} ± {spread[key]:.3f}" for key, _ in ABLATION_COLUMNS) + " |")
        lines.append("")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    grouped = read_results(args.results)
    with config_stage_run(cfg, "summarize_sod_ablation" if args.ablation else "summarize_sod", pipeline="sod",
                          method="ldf") as tracked:
        if args.ablation:
            rows = ablation_rows(grouped, cfg.seed)
            summary = {"rows": rows, "body_detail_beats_saliency_edge": ablation_checks(rows)}
            for label, results in grouped.items():
                print(f"supervision {label}:\n{format_saliency_table(results)}")
                tracked.log_metrics({f"{label.replace('@', '/seed')}/{name}/{key}": value
                                     for name, scores in results.items()
                                     for key, value in scores.items() if isinstance(value, (int, float))})
            table = ablation_markdown(rows)
            print(table)
            with atomic_path(args.out.with_suffix(".md")) as tmp:
                tmp.write_text(table)
            tracked.log_artifact(args.out.with_suffix(".md"))
        else:
            summary = {name: scores for results in grouped.values() for name, scores in results.items()}
            print(format_saliency_table(summary))
            print("LDF Table 2 (ResNet-50, DUTS-TR; MAE, mF, E_xi): " + ", ".join(
                f"{name} {' / '.join(f'{v:.3f}' for v in LDF_TABLE2[name])}" for name in summary if name in LDF_TABLE2))
            tracked.log_metrics({f"{name}/{key}": value for name, scores in summary.items()
                                 for key, value in scores.items() if isinstance(value, (int, float))})
        write_json(args.out, summary)
        tracked.log_artifact(args.out)
    return 0
