"""Methods side by side, read back from an MLflow tracking store: the latest ``summarize_voc`` run of each method.

    python docs/experiments/scripts/mlflow_compare.py --tracking-uri http://127.0.0.1:5000 --out docs/mlflow_compare.md

The runs are found with ``mlflow.search_runs`` in experiment ``wsss/<dataset>`` (``tags.stage =
'summarize_voc'``, one per method, newest first). Each row: the method, its pseudo labels, the profile, the
segmentation mIoU, the CAM mIoU, the pseudo-label mIoU, the CAM equivariance error, the commit and the run.
Writes Markdown (the table and the note given with ``--note``) to ``--out`` or prints it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

METRICS = (("mIoU", "miou"), ("CAM mIoU", "cam_miou"), ("pseudo mIoU", "pseudo_miou"),
           ("CAM equivariance error", "cam_equivariance_error"))


def compare(tracking_uri: str, dataset: str = "synthetic-voc", methods: list[str] | None = None) -> list[dict]:
    """One dict per method (the newest ``summarize_voc`` run): method, pseudo, profile, metrics, commit, run id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(experiment_names=[f"wsss/{dataset}"], output_format="list",
                              filter_string="tags.stage = 'summarize_voc' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"])
    rows: dict[str, dict] = {}
    for run in runs:
        method = run.data.tags.get("method", "none")
        if method in rows or (methods and method not in methods):
            continue
        rows[method] = {"method": method, "pseudo": run.data.params.get("pseudo", ""),
                        "profile": run.data.tags.get("profile", ""),
                        **{key: run.data.metrics.get(key) for _, key in METRICS},
                        "commit": run.data.tags.get("git_commit", "")[:7], "run_id": run.info.run_id}
    order = methods or sorted(rows)
    return [rows[method] for method in order if method in rows]


def markdown(rows: list[dict]) -> str:
    header = ["method", "pseudo labels", "profile", *(title for title, _ in METRICS), "commit", "MLflow run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"`{row['method']}`", row["pseudo"], row["profile"],
                 *("–" if row[key] is None else f"{row[key]:.3f}" for _, key in METRICS),
                 f"`{row['commit']}`", f"`{row['run_id'][:8]}`"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", required=True, help="the MLflow store (http://host:port, sqlite:///mlflow.db)")
    parser.add_argument("--dataset", default="synthetic-voc", help="the VOC dataset name (experiment wsss/<dataset>)")
    parser.add_argument("--methods", nargs="+", help="these methods, in this order (default: every method found)")
    parser.add_argument("--title", default="# Methods side by side, from MLflow")
    parser.add_argument("--note", default="", help="Markdown written between the title and the table")
    parser.add_argument("--out", type=Path, help="write the page here (default: print it)")
    args = parser.parse_args(argv)
    rows = compare(args.tracking_uri, args.dataset, args.methods)
    if not rows:
        raise SystemExit(f"no finished summarize_voc run in experiment wsss/{args.dataset} of {args.tracking_uri}")
    page = "\n\n".join(part for part in (args.title, args.note.strip(), markdown(rows).strip()) if part) + "\n"
    if args.out:
        args.out.write_text(page)
    else:
        print(page, end="")


if __name__ == "__main__":
    main()
