"""Joint transforms: image and mask stay aligned, padding is the mean colour / 255, seeded draws repeat."""

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf
from torchvision import tv_tensors

from wsss.data.transforms import (IMAGENET_MEAN, IMAGENET_STD, RandomResizeLong, RandomScale, eval_transform,
                                  normalize_image, train_transform)
from wsss.io import voc_palette

PALETTE = voc_palette()[:21].astype(np.int64)


def scene(height=20, width=28, block=1, seed=0):
    """An image painted with the palette colour of each pixel's class, and that class map as the mask."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 21, (height // block + 1, width // block + 1))
    classes = np.kron(classes, np.ones((block, block), np.int64))[:height, :width]
    image = PALETTE[classes].astype(np.uint8)
    return (tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1)),
            tv_tensors.Mask(torch.from_numpy(classes.astype(np.uint8))))


def classes_of(image: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation and map every pixel to the class of the nearest palette colour."""
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    rgb = (image * std + mean) * 255
    distance = ((rgb[None] - torch.from_numpy(PALETTE).float()[:, :, None, None]) ** 2).sum(1)
    return distance.argmin(0)


@pytest.mark.parametrize("seed", range(6))
def test_flip_and_crop_keep_image_and_mask_aligned_and_pad_with_mean_and_255(seed):
    image, mask = scene()  # 20x28: padded in height, cropped in width
    torch.manual_seed(seed)
    out_image, out_mask = train_transform(24)(image, mask)
    assert out_image.shape == (3, 24, 24) and out_image.dtype == torch.float32
    assert out_mask.shape == (24, 24) and out_mask.dtype == torch.int64
    pad = out_mask == 255
    assert pad.sum() == (24 - 20) * 24
    assert (out_image[:, pad] == 0).all()  # 0 after normalisation = the ImageNet mean colour
    assert torch.equal(classes_of(out_image)[~pad], out_mask[~pad])


def test_flips_happen_both_ways():
    image, mask = scene()
    outputs = set()
    for seed in range(10):
        torch.manual_seed(seed)
        outputs.add(bool(torch.equal(train_transform(28)(image, mask)[1][2:22], mask.long())))
    assert outputs == {True, False}


def interior(mask: torch.Tensor) -> torch.Tensor:
    """Pixels whose 3x3 neighbourhood has one class (away from the blur of resampled edges)."""
    x = mask[None, None].float()
    return (nnf.max_pool2d(x, 3, 1, 1) == -nnf.max_pool2d(-x, 3, 1, 1))[0, 0] & (mask != 255)


@pytest.mark.parametrize("resize", [dict(resize_long=(20, 60)), dict(scale_range=(0.5, 1.5))])
def test_resizing_keeps_image_and_mask_aligned(resize):
    image, mask = scene(40, 48, block=8, seed=1)
    for seed in range(6):
        torch.manual_seed(seed)
        out_image, out_mask = train_transform(32, **resize)(image, mask)
        inside = interior(out_mask)
        assert (classes_of(out_image)[inside] == out_mask[inside]).float().mean() > 0.95
        assert set(out_mask.unique().tolist()) <= set(mask.unique().tolist()) | {255}


@pytest.mark.parametrize("resize", [RandomResizeLong(20, 80), RandomScale(0.5, 1.5)])
def test_masks_are_resampled_at_the_image_pixel_centres(resize):
    """An object's centroid is the same in the resized mask and image (torch's legacy nearest is ~0.4 px off)."""
    offsets = []
    for seed in range(40):
        shift = seed % 5
        image = torch.zeros(3, 40, 40, dtype=torch.uint8)
        image[:, 10 + shift:25 + shift, 7 + shift:30 + shift] = 200
        mask = (image[0] > 0).to(torch.uint8)
        torch.manual_seed(seed)
        out_image, out_mask = resize(tv_tensors.Image(image), tv_tensors.Mask(mask))
        weights, inside = out_image.float().mean(0), out_mask.float()
        for axis in (0, 1):
            position = torch.arange(weights.shape[axis]).float().reshape((-1, 1) if axis == 0 else (1, -1))
            offsets.append(float((weights * position).sum() / weights.sum() - (inside * position).sum() / inside.sum()))
    assert abs(sum(offsets) / len(offsets)) < 0.15


def test_resize_long_and_scale_ranges():
    image, mask = scene(30, 40)
    longs = set()
    for seed in range(60):
        torch.manual_seed(seed)
        resized, resized_mask = RandomResizeLong(20, 24)(image, mask)
        height, width = resized.shape[-2:]
        assert width in range(20, 25) and resized_mask.shape == (height, width)
        assert abs(height / width - 0.75) < 0.05
        longs.add(width)
    assert longs == set(range(20, 25))  # both ends inclusive, as psa's random.randint
    for seed in range(20):
        torch.manual_seed(seed)
        scaled = RandomScale(0.5, 1.5)(image)
        assert 15 <= scaled.shape[-2] <= 45 and 20 <= scaled.shape[-1] <= 60


def test_color_jitter_changes_the_image_only():
    image, mask = scene(28, 28)
    torch.manual_seed(0)
    jittered, out_mask = train_transform(28, color_jitter=(0.3, 0.3, 0.3, 0.1), flip=False)(image, mask)
    plain, _ = eval_transform()(image, mask)
    assert torch.equal(out_mask, mask.long())
    assert not torch.allclose(jittered, plain)


def test_same_seed_same_draws_and_image_only_calls():
    image, mask = scene(40, 48)
    transform = train_transform(24, resize_long=(30, 60), color_jitter=(0.3, 0.3, 0.3, 0.1))
    draws = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        draws.append(transform(image, mask))
    assert torch.equal(draws[0][0], draws[1][0]) and torch.equal(draws[0][1], draws[1][1])
    assert not torch.equal(draws[0][0], draws[2][0])
    alone = transform(image)
    assert isinstance(alone, torch.Tensor) and alone.shape == (3, 24, 24)


def test_normalize_image_uses_imagenet_statistics():
    mean_colour = np.round(np.array(IMAGENET_MEAN) * 255).astype(np.uint8)
    image = np.broadcast_to(mean_colour, (5, 7, 3)).copy()
    out = normalize_image(image)
    assert out.shape == (3, 5, 7) and type(out) is torch.Tensor
    assert out.abs().max() < 0.01
    white = normalize_image(np.full((2, 2, 3), 255, np.uint8))
    assert torch.allclose(white[:, 0, 0], (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD))
