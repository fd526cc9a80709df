"""LDF's training data (weijun88/LDF@d49ff02:train-fine/dataset.py:11-43, 103-137): image, mask and the two branch
targets.

A sample is read at full resolution, normalised (the backbone's mean/std, ImageNet's by default;
targets divided by 255, so they stay soft), randomly cropped (up to 1/8 of each side removed) and flipped. The batch is
resized to one size drawn per batch from ``train_sizes`` by :class:`MultiScaleCollate`
(bilinear, aspect ratio not kept, as the official ``collate``). Randomness comes from torch's
global generator, which the engine seeds per sample; the batch size is drawn from the first
sample's own draw, so it does not depend on loader workers.

Branch targets (``supervision``, Table 5): the body map or the saliency mask for the body
branch, the detail map or the mask's edge for the detail branch. Body/detail maps are read from
``<labels>/<SET>/{body,detail}/<name>.png``: the decoupled maps, or the coarse model's
predictions in the two-stage scheme.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from wsss.data.decouple import edge_map
from wsss.data.sod import prepared_pairs
from wsss.errors import DatasetError
from wsss.io import read_grey_uint8, read_rgb
from wsss.nets.base import IMAGENET_MEAN, IMAGENET_STD



def normalise(image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """HxWx3 uint8 RGB → float32 with ``mean`` and ``std`` (of [0, 1] pixels; the ImageNet ones by default)."""
    return (image.astype(np.float32) - np.float32(mean) * 255) / (np.float32(std) * 255)


def _read_map(path: Path, shape: tuple[int, int]) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"{path}: body/detail map missing; rerun the decouple stage")
    target = read_grey_uint8(path)
    if target.shape != shape:
        raise DatasetError(f"{path}: map is {target.shape[1]}x{target.shape[0]} but its mask is {shape[1]}x{shape[0]}")
    return target


class LDFTrainSet(Dataset):
    """Training samples of the SOD ``sets`` as dicts of float32 arrays: image (HxWx3), mask, body, detail (HxW);
    the image normalised with ``mean``/``std`` (the backbone's)."""

    def __init__(self, prepared: str | Path, sets: Sequence[str], labels: str | Path, supervision: str = "body_detail",
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.labels, self.supervision, self.mean, self.std = Path(labels), supervision, mean, std
        self.samples = [(name, image, mask, set_name) for set_name in sets
                        for name, image, mask in prepared_pairs(prepared, set_name, "train")]
        if not self.samples:
            raise DatasetError(f"no training images in {prepared} for {list(sets)}")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        name, image_path, mask_path, set_name = self.samples[index]
        image = read_rgb(image_path)
        mask = read_grey_uint8(mask_path)
        if mask.shape != image.shape[:2]:
            raise DatasetError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
                               f"{image_path} is {image.shape[1]}x{image.shape[0]}")
        body_branch, detail_branch = self.supervision.split("_")
        body = _read_map(self.labels / set_name / "body" / f"{name}.png", mask.shape) if body_branch == "body" else mask
        detail = (_read_map(self.labels / set_name / "detail" / f"{name}.png", mask.shape) if detail_branch == "detail"
                  else edge_map(mask))
        targets = {"mask": mask, "body": body, "detail": detail}
        sample = {"image": normalise(image, self.mean, self.std),
                  **{key: value.astype(np.float32) / 255 for key, value in targets.items()}}
        sample = random_crop(sample)
        if torch.rand(()) < 0.5:
            sample = {key: value[:, ::-1] for key, value in sample.items()}
        sample["draw"] = float(torch.rand(()))
        return sample


def random_crop(sample: dict) -> dict:
    """Remove a random margin of up to 1/8 of each side (weijun88/LDF@d49ff02:train-fine/dataset.py:22-32)."""
    height, width = sample["mask"].shape
    cut_h, cut_w = int(torch.randint(max(height // 8, 1), ())), int(torch.randint(max(width // 8, 1), ()))
    top, left = int(torch.randint(cut_h + 1, ())), int(torch.randint(cut_w + 1, ()))
    return {key: value[top:top + height - cut_h, left:left + width - cut_w] for key, value in sample.items()}


class MultiScaleCollate:
    """Resize every sample of a batch to one square size from ``sizes`` (chosen by the first sample's
    ``draw``) and stack: image Bx3xSxS, mask/body/detail Bx1xSxS."""

    def __init__(self, sizes: Sequence[int]):
        self.sizes = tuple(sizes)

    def __call__(self, samples: list[dict]) -> dict[str, torch.Tensor]:
        size = self.sizes[min(int(samples[0]["draw"] * len(self.sizes)), len(self.sizes) - 1)]
        batch = {}
        for key in ("image", "mask", "body", "detail"):
            resized = np.stack([cv2.resize(np.ascontiguousarray(s[key]), (size, size), interpolation=cv2.INTER_LINEAR)
                                for s in samples])
            batch[key] = torch.from_numpy(resized.transpose(0, 3, 1, 2) if key == "image" else resized[:, None])
        return batch
