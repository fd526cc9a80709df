"""SC-CAM's sub-category labels (Chang et al., CVPR'20, §3;
Juliachang/SC-CAM@191ec48:create_pseudo_label.py:171-193).

For each parent class ``c``, the pooled features of every image labelled ``c`` are clustered by k-means into
``K`` clusters (an image with several classes is clustered once per class); the image's sub-category label is
multi-hot over the 20·K sub-categories, with a 1 at ``c·K + cluster`` for each of its classes. As the
official code: scikit-learn's ``KMeans`` with a fixed ``random_state`` and ``max_iter=300``, with ``n_init``
given (its default became ``"auto"``, one run, in scikit-learn 1.4; the official code ran the old 10).
Unlike it, the rows keep the order of the feature file (train_aug's) rather than a class-merged order, and
a class with fewer than ``K`` images gives each its own cluster.

The labels file (``<round>/labels.npz``) holds ``ids``, ``labels`` (N×20K, uint8) and ``clusters`` (K).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsss.data.classes import VOC_CLASSES
from wsss.data.voc import image_path
from wsss.errors import DatasetError
from wsss.io import atomic_path, read_rgb
from wsss.parallel import parallel_map

NUM_CLASSES = 20


def normalised(features: np.ndarray, norm: str) -> np.ndarray:
    """The features k-means clusters: as extracted (``none``, the official) or each scaled to unit length (``l2``)."""
    if norm == "none":
        return features
    if norm == "l2":
        return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    raise ValueError(f"unknown feature normalisation {norm!r}; expected 'none' or 'l2'")


def cluster_assignments(features: np.ndarray, parent_labels: np.ndarray, clusters: int, n_init: int = 10,
                        seed: int = 0, workers: int = 1) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per parent class ``c`` with images: (row indices of its images, their cluster 0..K−1), by k-means.

    With ``workers > 1`` the classes are clustered in that many forked processes, largest first, each on one
    BLAS/OpenMP thread: the same labels, 1.7× faster than one process on 2 threads for 10,582 × 4,096 features
    on 2 cores (``benchmarks/bench_official.py --parts cluster``).
    """
    if len(features) != len(parent_labels):
        raise ValueError(f"{len(features)} features for {len(parent_labels)} label rows")
    members = {c: np.flatnonzero(parent_labels[:, c] > 0.5) for c in range(NUM_CLASSES)}
    assignments = {c: (rows, np.arange(rows.size)) for c, rows in members.items() if 0 < rows.size <= clusters}
    fitted = sorted((c for c, rows in members.items() if rows.size > clusters), key=lambda c: -members[c].size)
    shared = (features, members, clusters, n_init, seed)
    if workers > 1 and len(fitted) > 1:
        labels = parallel_map(_kmeans_labels, fitted, workers, progress=False, start_method="fork",
                              initializer=_share_kmeans_inputs, initargs=(shared, True))
    else:
        _share_kmeans_inputs(shared, False)
        try:
            labels = [_kmeans_labels(c) for c in fitted]
        finally:
            _KMEANS.clear()
    assignments.update({c: (members[c], assigned) for c, assigned in zip(fitted, labels)})
    return dict(sorted(assignments.items()))


_KMEANS: dict = {}


def _share_kmeans_inputs(shared: tuple, one_thread: bool) -> None:
    """The inputs of :func:`_kmeans_labels` in this process (a forked worker: on one thread)."""
    if one_thread:
        from threadpoolctl import threadpool_limits   # scikit-learn's own dependency

        threadpool_limits(1)
    _KMEANS.update(zip(("features", "members", "clusters", "n_init", "seed"), shared))


def _kmeans_labels(c: int) -> np.ndarray:
    """The clusters of class ``c``'s images: scikit-learn's ``KMeans`` on their features in float64 (what the
    official code's list of rows becomes)."""
    from sklearn.cluster import KMeans

    kmeans = KMeans(n_clusters=_KMEANS["clusters"], n_init=_KMEANS["n_init"], max_iter=300, random_state=_KMEANS["seed"])
    return kmeans.fit_predict(_KMEANS["features"][_KMEANS["members"][c]].astype(np.float64))


def subcategory_labels(assignments: dict[int, tuple[np.ndarray, np.ndarray]], images: int,
                       clusters: int) -> np.ndarray:
    """The N×20K multi-hot labels: a 1 at ``c·K + cluster`` for each class ``c`` of each image."""
    labels = np.zeros((images, NUM_CLASSES * clusters), np.uint8)
    for c, (rows, assigned) in assignments.items():
        labels[rows, c * clusters + assigned] = 1
    return labels


def save_subcategories(path: str | Path, ids: list[str], labels: np.ndarray, clusters: int) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, ids=np.asarray(ids), labels=labels, clusters=np.int64(clusters))


def load_subcategories(path: str | Path) -> tuple[dict[str, np.ndarray], int]:
    """``{id: 20K multi-hot}`` and K of a labels file; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: sub-category labels missing; run the cluster stage first")
    with np.load(path) as data:
        if set(data.files) != {"ids", "labels", "clusters"}:
            raise DatasetError(f"{path}: expected arrays ids, labels, clusters, got {sorted(data.files)}")
        ids, labels, clusters = data["ids"].tolist(), data["labels"], int(data["clusters"])
    if labels.shape != (len(ids), NUM_CLASSES * clusters):
        raise DatasetError(f"{path}: labels of shape {labels.shape}, expected ({len(ids)}, {NUM_CLASSES * clusters})")
    return dict(zip(ids, labels.astype(np.float32))), clusters


def with_subcategories(parent_labels: dict[str, np.ndarray], subcategories: dict[str, np.ndarray],
                       ids: list[str]) -> dict[str, np.ndarray]:
    """Per id the 20 parent labels followed by its 20K sub-category labels (the batch ``sccam_loss`` reads)."""
    missing = [image_id for image_id in ids if image_id not in subcategories]
    if missing:
        raise DatasetError(f"no sub-category label for {len(missing)} ids, e.g. {missing[:5]}")
    return {image_id: np.concatenate([np.asarray(parent_labels[image_id], np.float32), subcategories[image_id]])
            for image_id in ids}


def plot_cluster_examples(assignments: dict[int, tuple[np.ndarray, np.ndarray]], ids: list[str],
                          voc_root: str | Path, path: str | Path, classes: int = 3, clusters: int = 3,
                          per_row: int = 6, seed: int = 0) -> None:
    """A grid of training images: for the ``classes`` parent classes with the most images, one row per each of
    their ``clusters`` largest clusters, ``per_row`` images drawn from it."""
    from matplotlib.figure import Figure

    rng = np.random.default_rng(seed)
    chosen = sorted(assignments, key=lambda c: -assignments[c][0].size)[:classes]
    rows = []
    for c in chosen:
        members, assigned = assignments[c]
        for cluster in np.argsort(-np.bincount(assigned))[:clusters]:
            in_cluster = members[assigned == cluster]
            picked = rng.choice(in_cluster, min(per_row, in_cluster.size), replace=False)
            rows.append((f"{VOC_CLASSES[c + 1]} #{cluster}\n({in_cluster.size} images)", picked))
    figure = Figure(figsize=(1.6 * per_row + 1.4, 1.6 * max(1, len(rows))))
    axes = figure.subplots(max(1, len(rows)), per_row, squeeze=False)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    for k, (title, picked) in enumerate(rows):
        axes[k, 0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=8)
        for j, row in enumerate(picked):
            axes[k, j].imshow(read_rgb(image_path(voc_root, ids[row])))
        for axis in axes[k, max(1, len(picked)):]:
            axis.set_axis_off()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=80)
