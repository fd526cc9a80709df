"""Stage ``cluster``: SC-CAM's sub-category labels of one round from the extracted features
(Juliachang/SC-CAM@191ec48:create_pseudo_label.py:171-193): k-means per parent class (``wsss.data.subcategories``).

Writes ``labels.npz`` for the round's ``train_cls`` and a figure of a few parent classes' clusters (a row of
images from each of three clusters), also an MLflow artifact with the cluster sizes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from wsss.data.datasets import open_prepared_voc
from wsss.data.subcategories import (cluster_assignments, normalised, plot_cluster_examples, save_subcategories,
                                     subcategory_labels)
from wsss.errors import DatasetError
from wsss.stages.common import stage_config
from wsss.tracking import config_stage_run


def read_features(path: Path) -> tuple[list[str], np.ndarray]:
    if not path.is_file():
        raise DatasetError(f"{path}: features missing; run the extract_features stage first")
    with np.load(path) as data:
        if {"ids", "features"} - set(data.files):
            raise DatasetError(f"{path}: expected arrays ids and features, got {sorted(data.files)}")
        return data["ids"].tolist(), data["features"]


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    settings = cfg.sccam
    voc = open_prepared_voc(args.voc)
    ids, features = read_features(args.features)
    missing = [image_id for image_id in ids if image_id not in voc.labels]
    if missing:
        raise DatasetError(f"{args.features}: {len(missing)} ids without an image-level label, e.g. {missing[:5]}")
    parent_labels = np.stack([voc.labels[image_id] for image_id in ids])
    round_tag = {"round": str(settings.training_round)}
    with config_stage_run(cfg, "cluster", pipeline="wsss", method=cfg.method, data_paths=(str(args.voc),),
                          tags=round_tag) as tracked:
        assignments = cluster_assignments(normalised(features, settings.feature_norm), parent_labels,
                                          settings.clusters, settings.kmeans_n_init, settings.kmeans_seed,
                                          workers=args.workers)
        labels = subcategory_labels(assignments, len(ids), settings.clusters)
        save_subcategories(args.out, ids, labels, settings.clusters)
        plot_cluster_examples(assignments, ids, voc.root, args.plot, seed=settings.kmeans_seed)
        sizes = {f"class{c + 1}": np.bincount(assigned, minlength=settings.clusters).tolist()
                 for c, (_, assigned) in assignments.items()}
        tracked.log_dict({"clusters": settings.clusters, "sizes": sizes}, "cluster_sizes.json")
        tracked.log_artifact(args.plot)
        tracked.log_metrics({"images": len(ids), "subcategories_used": int(labels.any(axis=0).sum())})
    print(f"{args.out}: {len(ids)} images, {int(labels.any(axis=0).sum())} of {labels.shape[1]} sub-categories used")
    return 0
