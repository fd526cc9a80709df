"""Torch datasets over a VOC2012-layout tree: classifier training, pseudo-label training, inference.

Images are read with PIL as RGB (as jiwoon-ahn/psa@9493e59:voc12/data.py:69; ``wsss.io.read_rgb``), label PNGs as
class indices (``wsss.io.read_label_png``). Every listed file is checked when the dataset is built, so a
missing file fails at once with its name rather than in a loader worker hours later.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from wsss.data.transforms import eval_transform, to_image
from wsss.data.voc import check_mask, image_path, load_cls_labels
from wsss.errors import DatasetError
from wsss.io import read_id_list, read_label_png, read_rgb

_LISTED = 5  # missing files named in an error message


def _require_files(paths: Sequence[Path], what: str) -> None:
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        more = f" and {len(missing) - _LISTED} more" if len(missing) > _LISTED else ""
        raise DatasetError(f"{len(missing)} {what} missing: {', '.join(missing[:_LISTED])}{more}")


def _require_labels(ids: Sequence[str], labels: Mapping[str, np.ndarray]) -> None:
    missing = [image_id for image_id in ids if image_id not in labels]
    if missing:
        raise DatasetError(f"no image-level label for {len(missing)} ids, e.g. {missing[:_LISTED]}")


class VOCClassification(Dataset):
    """(image, float32[20] multi-hot label) for the CAM classifier (psa/SEAM VOC12ClsDataset)."""

    def __init__(self, voc_root: str | Path, ids: Sequence[str], labels: Mapping[str, np.ndarray],
                 transform: Callable | None = None):
        self.root, self.ids = Path(voc_root), list(ids)
        _require_labels(self.ids, labels)
        _require_files([image_path(self.root, image_id) for image_id in self.ids], "images")
        self.labels = [torch.as_tensor(np.asarray(labels[image_id], np.float32)) for image_id in self.ids]
        self.transform = transform or eval_transform()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = to_image(read_rgb(image_path(self.root, self.ids[index])))
        return self.transform(image), self.labels[index]


class VOCSegmentation(Dataset):
    """(image, int64 HxW mask) with masks read from ``label_dir/<id>.png`` (pseudo labels, 255 = ignore)."""

    def __init__(self, voc_root: str | Path, ids: Sequence[str], label_dir: str | Path,
                 transform: Callable | None = None):
        self.root, self.ids, self.label_dir = Path(voc_root), list(ids), Path(label_dir)
        if not self.label_dir.is_dir():
            raise DatasetError(f"{self.label_dir}: label folder missing")
        _require_files([image_path(self.root, image_id) for image_id in self.ids], "images")
        _require_files([self.label_path(image_id) for image_id in self.ids], "label PNGs")
        self.transform = transform or eval_transform()

    def label_path(self, image_id: str) -> Path:
        return self.label_dir / f"{image_id}.png"

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_id = self.ids[index]
        pixels = read_rgb(image_path(self.root, image_id))
        path = self.label_path(image_id)
        mask = read_label_png(path)
        check_mask(mask, path, size=(pixels.shape[1], pixels.shape[0]))
        return self.transform(to_image(pixels), tv_tensors.Mask(torch.tensor(mask)))


class VOCImages(Dataset):
    """(id, HxWx3 uint8 image, float32[20] label or None) for inference: no transform, no batching."""

    def __init__(self, voc_root: str | Path, ids: Sequence[str], labels: Mapping[str, np.ndarray] | None = None):
        self.root, self.ids, self.labels = Path(voc_root), list(ids), labels
        if labels is not None:
            _require_labels(self.ids, labels)
        _require_files([image_path(self.root, image_id) for image_id in self.ids], "images")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, np.ndarray | None]:
        image_id = self.ids[index]
        label = None if self.labels is None else np.asarray(self.labels[image_id], np.float32)
        return image_id, read_rgb(image_path(self.root, image_id)), label


@dataclass(frozen=True)
class PreparedVOC:
    """A dataset written by ``prepare_voc``: the VOC root, the split lists and the image-level labels."""

    folder: Path
    root: Path
    labels: dict[str, np.ndarray]

    def split(self, name: str) -> list[str]:
        """Ids of ``<folder>/<name>.txt`` (train, val, train_aug)."""
        return read_id_list(self.folder / f"{name}.txt")


def open_prepared_voc(folder: str | Path = "data/prepared/voc") -> PreparedVOC:
    """Read ``dataset.json`` and ``cls_labels.npy`` of a prepared VOC folder.

    ``dataset.json`` keeps the VOC root as given to ``prepare_voc``; a relative root is taken
    relative to the working directory (the project root, where every stage runs).
    """
    folder = Path(folder)
    summary_path = folder / "dataset.json"
    if not summary_path.is_file():
        raise DatasetError(f"{summary_path}: missing; run `wsss data prepare-voc --out {folder}` "
                           "(or `snakemake data/prepared/voc`) first")
    root = Path(os.path.abspath(json.loads(summary_path.read_text())["root"]))
    if not (root / "JPEGImages").is_dir():
        raise DatasetError(f"{summary_path}: its VOC root {root} has no JPEGImages/ folder (moved or deleted?)")
    return PreparedVOC(folder=folder, root=root, labels=load_cls_labels(folder / "cls_labels.npy"))
