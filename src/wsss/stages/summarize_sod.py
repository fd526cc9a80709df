"""Stage ``summarize_sod``: ``results/sod_metrics.json`` (dataset → metrics), or with ``--ablation`` the
supervision ablation (supervision → dataset → metrics, LDF Table 5), from ``wsss evaluate saliency`` JSONs.

Prints the table beside LDF's published Table 2 (ldf.md §7) and logs every figure to MLflow.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wsss.io import write_json
from wsss.metrics.report import format_saliency_table
from wsss.stages.common import stage_config
from wsss.tracking import config_stage_run

# LDF's Table 2 (MAE, mF = adaptive F, E_ξ), ldf.md §7
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


def ablation_checks(ablation: dict[str, dict]) -> dict:
    """Per dataset: does body+detail beat saliency+edge on MAE (lower) and adaptive F (higher)? (Table 5)"""
    if not {"body_detail", "saliency_edge"} <= set(ablation):
        return {}
    best, worst = ablation["body_detail"], ablation["saliency_edge"]
    return {name: {"mae": best[name]["mae"] < worst[name]["mae"], "adp_f": best[name]["adp_f"] > worst[name]["adp_f"]}
            for name in best if name in worst}


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    grouped = read_results(args.results)
    with config_stage_run(cfg, "summarize_sod_ablation" if args.ablation else "summarize_sod", pipeline="sod",
                          method="ldf") as tracked:
        if args.ablation:
            summary = {"rows": grouped, "body_detail_beats_saliency_edge": ablation_checks(grouped)}
            for label, results in grouped.items():
                print(f"supervision {label}:\n{format_saliency_table(results)}")
                tracked.log_metrics({f"{label}/{name}/{key}": value for name, scores in results.items()
                                     for key, value in scores.items() if isinstance(value, (int, float))})
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
