"""Fixtures for the dataset reader tests: tiny VOC trees and the shared real reference data."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from wsss.io import save_label_png

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

W, H = 16, 12  # size of every tiny test image

# id -> (classes painted in its mask, object names listed in its XML)
TINY_VOC = {
    "2007_000001": ([1], ["aeroplane"]),
    "2007_000002": ([15, 12], ["person", "dog"]),
    "2007_000003": ([7], ["car", "person"]),  # the person is in the XML only (e.g. difficult, unsegmented)
    "2007_000004": ([5], ["bottle"]),
    "2007_000005": ([20, 9], ["tvmonitor", "chair"]),
    "2007_000006": ([3], ["bird"]),
}
TINY_SPLITS = {
    "train": ["2007_000001", "2007_000002", "2007_000003"],
    "val": ["2007_000004", "2007_000005"],
    "train_aug": ["2007_000001", "2007_000002", "2007_000003", "2007_000006"],
}


def write_image(path: Path, size=(W, H), seed=0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def tiny_mask(classes, size=(W, H)) -> np.ndarray:
    """Vertical bands, one per class, on background, with a void (255) column between them."""
    mask = np.zeros((size[1], size[0]), np.uint8)
    for k, cls in enumerate(classes):
        mask[:, 2 + 6 * k: 6 + 6 * k] = cls
        mask[:, 6 + 6 * k] = 255
    return mask


def write_xml(path: Path, names) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    objects = "".join(
        f"<object><name>{n}</name><difficult>{int(i > 0)}</difficult>"
        f"<part><name>head</name></part></object>" for i, n in enumerate(names))
    path.write_text(f"<annotation><filename>x.jpg</filename><owner><name>someone</name></owner>{objects}</annotation>")


def write_voc_tree(root: Path, samples=TINY_VOC, splits=TINY_SPLITS, mask_dir="SegmentationClass") -> Path:
    """A VOC2012-layout tree: JPEGImages, masks, Annotations and ImageSets/Segmentation lists."""
    for n, (image_id, (classes, names)) in enumerate(samples.items()):
        write_image(root / "JPEGImages" / f"{image_id}.jpg", seed=n)
        (root / mask_dir).mkdir(parents=True, exist_ok=True)
        save_label_png(root / mask_dir / f"{image_id}.png", tiny_mask(classes))
        write_xml(root / "Annotations" / f"{image_id}.xml", names)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def write_sbd(root, masks, train, val):
    """SBD's dataset/ folder: cls/<id>.mat with a GTcls struct, train.txt, val.txt."""
    (root / "cls").mkdir(parents=True)
    for image_id, mask in masks.items():
        gt = {"Segmentation": mask, "CategoriesPresent": np.unique(mask[(mask > 0) & (mask < 255)])}
        scipy.io.savemat(root / "cls" / f"{image_id}.mat", {"GTcls": gt})
    (root / "train.txt").write_text("\n".join(train) + "\n")
    (root / "val.txt").write_text("\n".join(val) + "\n")
    return root


@pytest.fixture
def voc_root(tmp_path) -> Path:
    return write_voc_tree(tmp_path / "VOC2012")


@pytest.fixture
def shared_voc() -> Path:
    root = SHARED_DATA / "voc2012"
    if not root.is_dir():
        pytest.skip(f"real VOC reference data not found at {root} (only present next to the project's shared folder)")
    return root


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def migrated_mlflow_db(tmp_path_factory) -> Path:
    """An MLflow sqlite store created once per session (creating one runs 1.5 s of migrations)."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch, migrated_mlflow_db) -> str:
    """A per-test copy of the migrated store, visible to this process and to subprocesses."""
    import shutil

    import mlflow

    db = tmp_path / "mlflow.db"
    shutil.copyfile(migrated_mlflow_db, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    yield uri
    mlflow.end_run()


@pytest.fixture
def one_thread():
    """Tiny nets gain nothing from threads, and a busy 2-core machine makes OpenMP barriers slow."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
