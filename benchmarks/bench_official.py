"""Benchmark: pipeline steps beside the official code, timed in turns in this process, as ratio-table rows.

    python benchmarks/bench_official.py --seam-dir CHECKOUT_OF_YudeWang/SEAM --sccam-dir CHECKOUT_OF_Juliachang/SC-CAM \
        [--crf-images 16] [--image 375 500] [--features 10582 4096] [--repeats 3] [--parts crf cluster]

* ``crf``: the dense CRF of ``--crf-images`` synthetic VOC-sized images at 21 labels over 2 worker processes each:
  ``wsss.infer.crf.dense_crf`` with the paper profile's kernels through ``wsss.parallel.parallel_map`` against
  YudeWang/SEAM@3212261:tool/imutils.py:220-237 ``crf_inference`` (the same kernels) in a ``multiprocessing`` pool.
* ``cluster``: SC-CAM's sub-category k-means of one round on synthetic pooled features (``--features`` rows ×
  dims; VOC train_aug and ResNet-38's 4,096 by default): ``wsss.data.subcategories.cluster_assignments`` against
  the loop of Juliachang/SC-CAM@191ec48:create_pseudo_label.py:171-193, run as ``benchmarks/parity.py`` runs it,
  with scikit-learn's ``n_init`` at the 10 of the official code's time (the project pins the same).

Each side: one warm-up, then ``--repeats`` timed calls in turns; peak memory is what a call added to this
process (for the CRF this parent's, not its workers'). Prints JSON with the machine and the ``ratios`` rows.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys

import numpy as np

from parity import official_lines, official_module, run_official, settings_of, synthetic_features, synthetic_image
from timing import in_turns, machine, row

from wsss.infer.crf import dense_crf
from wsss.parallel import parallel_map

OFFICIAL_CRF: dict = {}


def crf_scores(image: np.ndarray, labels: int = 21, seed: int = 0) -> np.ndarray:
    """Soft C×H×W class scores with blobs at the image's scale (smoothed noise through a softmax)."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.normal(0, 3, (labels, image.shape[0] // 16, image.shape[1] // 16)).astype(np.float32)
    logits = np.stack([cv2.resize(c, image.shape[1::-1], interpolation=cv2.INTER_CUBIC) for c in coarse])
    scores = np.exp(logits - logits.max(0, keepdims=True))
    return (scores / scores.sum(0, keepdims=True)).astype(np.float32)


def _ours_crf(item):
    image, scores, iterations, kernels = item
    return dense_crf(image, scores, iterations, **kernels).argmax(0)


def _official_crf(item):
    image, scores = item
    return OFFICIAL_CRF["imutils"].crf_inference(image, scores, t=10, labels=scores.shape[0]).argmax(0)


def crf(seam_dir: str, images: int, size: tuple[int, int], repeats: int) -> dict:
    settings = settings_of().crf
    if settings.iterations != 10:
        raise SystemExit(f"the paper profile's crf.iterations is {settings.iterations}, SEAM's crf_inference runs 10")
    OFFICIAL_CRF["imutils"] = official_module(seam_dir, "", "tool.imutils")
    data = [(synthetic_image(*size, seed), crf_scores(synthetic_image(*size, seed), seed=seed)) for seed in range(images)]
    work = [(image, scores, 10, settings.kernels()) for image, scores in data]

    def official():   # a pool of 2 per call, as parallel_map makes one: both pay the start of two workers
        with multiprocessing.get_context("fork").Pool(2) as pool:   # forked: the workers have the official module
            return pool.map(_official_crf, data)

    def ours():
        return parallel_map(_ours_crf, work, workers=2, progress=False, start_method="fork")

    timed = in_turns({"ours": ours, "official": official}, repeats)
    same = float(np.mean([(a == b).mean() for a, b in zip(ours(), official())]))
    return {"images": images, "size": list(size), "labels": 21, "workers": 2, "same_labels": same,
            "timed": timed, "row": row(f"dense CRF, {size[1]}×{size[0]}, 21 labels, 10 iterations, 2 workers", images,
                                       "img", timed["ours"], timed["official"], 1.0, "fp32 (pydensecrf)",
                                       "the same pydensecrf kernels; each side starts its pool of 2")}


def cluster(sccam_dir: str, rows: int, dims: int, repeats: int) -> dict:
    from sklearn.cluster import KMeans

    from wsss.data.subcategories import cluster_assignments

    settings = settings_of("method=sccam").sccam
    features, parent = synthetic_features(rows, dims, settings.clusters)
    index = {c: list(np.flatnonzero(parent[:, c])) for c in range(20)}
    script = official_module(sccam_dir, "", "create_pseudo_label")
    source = official_lines(sccam_dir, "create_pseudo_label.py", 171, 193, "all_class_kmeans_label")

    def official():
        namespace = {"np": np, "features": features, "filename_idx_class_dict": index,
                     "KMeans": lambda *args, **kwargs: KMeans(*args, n_init=10, **kwargs),
                     "make_subclass_label": script.make_subclass_label,
                     "args": argparse.Namespace(k_cluster=settings.clusters)}
        stdout, sys.stdout = sys.stdout, open("/dev/null", "w")   # it prints a line per class
        try:
            run_official(source, namespace)
        finally:
            sys.stdout.close()
            sys.stdout = stdout

    timed = in_turns({"ours": lambda: cluster_assignments(features, parent, settings.clusters, settings.kmeans_n_init,
                                                          settings.kmeans_seed),
                      "official": official}, repeats)
    return {"features": [rows, dims], "clusters": settings.clusters, "n_init": settings.kmeans_n_init, "timed": timed,
            "row": row(f"SC-CAM k-means, {rows}×{dims} features, K {settings.clusters}", 1, "round",
                       timed["ours"], timed["official"], 1.0, "fp32 features", "scikit-learn in both")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seam-dir")
    parser.add_argument("--sccam-dir")
    parser.add_argument("--crf-images", type=int, default=16)
    parser.add_argument("--image", type=int, nargs=2, default=(375, 500), metavar=("H", "W"))
    parser.add_argument("--features", type=int, nargs=2, default=(10582, 4096), metavar=("ROWS", "DIMS"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", nargs="+", choices=("crf", "cluster"), default=["crf", "cluster"])
    args = parser.parse_args()
    report = {"machine": machine()}
    if "crf" in args.parts and args.seam_dir:
        report["crf"] = crf(args.seam_dir, args.crf_images, tuple(args.image), args.repeats)
    if "cluster" in args.parts and args.sccam_dir:
        report["cluster"] = cluster(args.sccam_dir, *args.features, args.repeats)
    report["ratios"] = [report[part]["row"] for part in ("crf", "cluster") if part in report]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
