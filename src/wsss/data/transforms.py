"""Joint image/mask transforms: training augmentation and the eval-time normalisation.

Conventions of the official code:

* classifier training (jiwoon-ahn/psa@9493e59:train_cls.py:62-72, YudeWang/SEAM@3212261:train_SEAM.py:60-70):
  random resize of the long side to [low, high] (bicubic), horizontal flip, colour jitter on the image,
  normalisation (the ImageNet mean/std unless the backbone has its own,
  ``wsss.nets.backbones.input_statistics``), then a random crop that pads with 0 *after* normalisation,
  i.e. with the mean colour (RandomResizeLong and RandomCrop, jiwoon-ahn/psa@9493e59:tool/imutils.py:6-60);
* DeepLab training (kazuto1011/deeplab-pytorch@4219467:libs/datasets/base.py:60-103, SEAM's segmentation codebase):
  a random scale factor in [low, high] (bilinear) instead, padding the label with 255.

Inputs are ``tv_tensors.Image`` (uint8, 3xHxW) and optionally ``tv_tensors.Mask`` (uint8, HxW);
torchvision's v2 kernels dispatch on those types, so geometric steps move both together (masks
with pixel-centre nearest neighbour, as PIL's NEAREST in psa) and photometric steps touch the
image only. Outputs are plain tensors: the image float32 3xHxW normalised, the mask int64 HxW.
Randomness comes from torch's global generator, like every torchvision transform:
``torch.manual_seed(s)`` before a call makes it reproducible (the training engine seeds it per
sample, ``wsss.engine``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from wsss.data.classes import IGNORE_INDEX
from wsss.nets.base import IMAGENET_MEAN, IMAGENET_STD


def _outputs(outputs: list):
    return tuple(outputs) if len(outputs) > 1 else outputs[0]


def _resize(inputs: tuple, interpolation: v2.InterpolationMode, **size):
    """Resize images with ``interpolation`` and masks with pixel-centre nearest neighbour (PIL's NEAREST),
    so that both sample the same positions (torch's plain "nearest" is half a pixel off)."""
    return _outputs([F.resize(x, **size, interpolation=v2.InterpolationMode.NEAREST_EXACT
                              if isinstance(x, tv_tensors.Mask) else interpolation) for x in inputs])


class RandomResizeLong:
    """Resize so that the long side is uniform in [low, high], inclusive (psa RandomResizeLong, bicubic)."""

    def __init__(self, low: int, high: int):
        self.low, self.high = low, high

    def __call__(self, *inputs):
        long_side = int(torch.randint(self.low, self.high + 1, ()))
        return _resize(inputs, v2.InterpolationMode.BICUBIC, size=None, max_size=long_side)


class RandomScale:
    """Scale both sides by a factor uniform in [low, high] (DeepLab training, bilinear)."""

    def __init__(self, low: float, high: float):
        self.low, self.high = low, high

    def __call__(self, *inputs):
        factor = self.low + (self.high - self.low) * float(torch.rand(()))
        height, width = F.get_size(inputs[0])
        size = [max(1, round(height * factor)), max(1, round(width * factor))]
        return _resize(inputs, v2.InterpolationMode.BILINEAR, size=size)


def _normalise_steps(mean: Sequence[float], std: Sequence[float]) -> list:
    return [
        v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64, "others": None}, scale=True),
        v2.Normalize(mean, std),
    ]


def train_transform(crop: int, *, resize_long: Sequence[int] | None = None,
                    scale_range: Sequence[float] | None = None,
                    color_jitter: Sequence[float] | None = None, flip: bool = True,
                    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Callable:
    """The training augmentation: resize (long side or scale factor) → flip → jitter → normalise → crop.

    Give ``resize_long`` (psa/SEAM classifier) or ``scale_range`` (DeepLab), or neither to keep
    the size; ``mean``/``std`` are the backbone's input normalisation. The crop pads the image with 0
    after normalisation (the mean colour) and the mask with 255, and places a smaller image at a random
    position (psa ``RandomCrop``).
    Call it as ``transform(image)`` or ``transform(image, mask)``.
    """
    if resize_long is not None and scale_range is not None:
        raise ValueError("give resize_long or scale_range, not both")
    steps = []
    if resize_long is not None:
        steps.append(RandomResizeLong(*resize_long))
    if scale_range is not None:
        steps.append(RandomScale(*scale_range))
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    if color_jitter is not None:
        brightness, contrast, saturation, hue = color_jitter
        steps.append(v2.ColorJitter(brightness, contrast, saturation, hue))
    steps += _normalise_steps(mean, std)
    steps.append(v2.RandomCrop(crop, pad_if_needed=True,
                               fill={tv_tensors.Image: 0.0, tv_tensors.Mask: IGNORE_INDEX, "others": 0}))
    steps.append(v2.ToPureTensor())
    return v2.Compose(steps)


def eval_transform(mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Callable:
    """Normalisation only (ImageNet mean/std by default) and int64 masks: for evaluation and inference datasets."""
    return v2.Compose([*_normalise_steps(mean, std), v2.ToPureTensor()])


def to_image(image: np.ndarray | torch.Tensor) -> tv_tensors.Image:
    """An HxWx3 uint8 array (or a 3xHxW tensor) as a ``tv_tensors.Image``."""
    return F.to_image(image)


def normalize_image(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """HxWx3 uint8 (or 3xHxW uint8 tensor) → float32 3xHxW with ImageNet mean/std (psa/SEAM Normalize)."""
    return eval_transform()(to_image(image))
