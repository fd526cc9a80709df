"""Stage ``seam_ablation``: SEAM's Table 1 on the configured dataset, beside the paper's numbers.

Each row of ``seam_ablation`` in ``params.yaml`` names a method; its score is the CAM mIoU on ``train``
(``<results>/<method>/cam_miou.json``, at the evaluation's background threshold and at the best one of the
sweep) or, for a CRF row, the CRF pseudo labels' mIoU (``crf_miou.json``), next to the method's
equivariance error (``equivariance.json``). Writes the JSON and a Markdown table for the README.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wsss.io import atomic_path, read_json, write_json
from wsss.stages.common import stage_config
from wsss.tracking import config_stage_run


def ablation_rows(cfg, results: Path) -> list[dict]:
    rows = []
    for row in cfg.seam_ablation:
        score = read_json(results / row.method / ("crf_miou.json" if row.crf else "cam_miou.json"))
        equivariance = read_json(results / row.method / "equivariance.json")
        rows.append({"row": row.row, "method": row.method, "crf": row.crf, "paper_miou": row.paper / 100,
                     "miou": score["miou"], "bg_threshold": score.get("bg_threshold"),
                     "best_miou": score.get("best_miou"), "best_threshold": score.get("best_threshold"),
                     "equivariance_error": equivariance["equivariance_error"]})
    return rows


def markdown_table(rows: list[dict], dataset: str) -> str:
    def pct(value):
        return "—" if value is None else f"{100 * value:.2f}"

    lines = [f"| row | method | mIoU (train, {dataset}) | best mIoU (bg t) | equivariance error | paper (VOC train) |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        best = "—" if row["best_miou"] is None else f"{pct(row['best_miou'])} ({row['best_threshold']:.2f})"
        lines.append(f"| {row['row']} | `{row['method']}`{' + CRF' if row['crf'] else ''} | {pct(row['miou'])} | "
                     f"{best} | {row['equivariance_error']:.4f} | {pct(row['paper_miou'])} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    rows = ablation_rows(cfg, Path(args.results))
    table = markdown_table(rows, cfg.voc_dataset)
    with config_stage_run(cfg, "seam_ablation", pipeline="wsss", method="seam") as tracked:
        write_json(args.out, {"dataset": cfg.voc_dataset, "profile": cfg.profile, "rows": rows})
        with atomic_path(args.table) as tmp:
            tmp.write_text(table)
        for k, row in enumerate(rows):
            tracked.log_metrics({f"row{k}/miou": row["miou"], f"row{k}/equivariance_error": row["equivariance_error"]})
        tracked.log_artifact(args.out)
        tracked.log_artifact(args.table)
    print(table, end="")
    return 0
