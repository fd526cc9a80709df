"""Multi-scale CAM inference: expected maps, flips, scales, normalisation, class selection, the directory writer."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_VOC
from PIL import Image

from wsss.config import InferCamConfig
from wsss.data.cam_files import load_cams
from wsss.infer.cam import (IMAGENET_MEAN, IMAGENET_STD, infer_cam_dir, multiscale_cam, normalise_cams,
                            scaled_views)
from wsss.runtime import Runtime

FP32 = Runtime(torch.device("cpu"), "fp32")
WEIGHTS = np.linspace(0.5, 2.0, 20, dtype=np.float32)
BIASES = np.linspace(-0.5, 1.4, 20, dtype=np.float32)


class RedCAM(torch.nn.Module):
    """Stand-in CAM network: class c scores ``relu(w_c * red + b_c)`` of the normalised red channel.

    Pointwise, so its maps are known from the image and follow flips; ``stride`` average-pools them
    like a backbone's output stride. Records the shape and memory format of every batch.
    """

    def __init__(self, stride: int = 1):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.from_numpy(WEIGHTS).view(1, 20, 1, 1))
        self.bias = torch.nn.Parameter(torch.from_numpy(BIASES).view(1, 20, 1, 1))
        self.stride = stride
        self.calls = []

    def cam(self, x, classes):
        self.calls.append((tuple(x.shape), x.is_contiguous(memory_format=torch.channels_last)))
        maps = torch.relu(x[:, :1] * self.weight + self.bias)
        return (F.avg_pool2d(maps, self.stride) if self.stride > 1 else maps).index_select(1, classes)


def expected_maps(image: np.ndarray) -> np.ndarray:
    """20×H×W scores of RedCAM on the un-resized image, computed with numpy."""
    red = (image[..., 0].astype(np.float32) / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    return np.maximum(WEIGHTS[:, None, None] * red + BIASES[:, None, None], 0)


def ramp_image(height=12, width=16, seed=0) -> np.ndarray:
    """Red rises left to right (asymmetric), green/blue are noise."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[..., 0] = np.linspace(0, 255, width).astype(np.uint8)[None, :]
    return image


def test_single_scale_gives_the_known_max_normalised_map():
    image = ramp_image()
    cams = multiscale_cam(RedCAM(), image, [2, 5], scales=(1.0,), flip=True, norm="max", runtime=FP32)
    summed = 2 * expected_maps(image)[[2, 5]]  # the image and its flip
    expected = summed / (summed.max(axis=(1, 2), keepdims=True) + 1e-5)
    assert cams.dtype == np.float32 and cams.shape == (2, 12, 16)
    np.testing.assert_allclose(cams, expected, rtol=1e-5, atol=1e-6)


def test_minmax_normalisation_of_the_known_map():
    image = ramp_image()
    image[..., 0] //= 2
    image[..., 0] += 128  # red above the ImageNet mean: every score of class 19 is positive
    cams = multiscale_cam(RedCAM(), image, [19], scales=(1.0,), flip=False, norm="minmax", runtime=FP32)
    summed = expected_maps(image)[19]
    low, high = summed.min(), summed.max()
    assert low > 0  # so min-max differs from max normalisation
    expected = np.maximum((summed - low - 1e-5) / (high - low + 1e-5), 0)
    np.testing.assert_allclose(cams[0], expected, rtol=1e-5, atol=1e-6)
    assert cams[0].min() == 0 and cams[0].max() == pytest.approx(1, abs=1e-4)


def test_normalisation_values():
    total = torch.tensor([[[0.0, 1.0, 2.0, 4.0]], [[1.0, 2.0, 3.0, 5.0]], [[-1.0, 1.0, 3.0, 3.0]]])
    by_max = normalise_cams(total, "max")
    np.testing.assert_allclose(by_max[0, 0], [0, 0.25, 0.5, 1], atol=1e-5)
    np.testing.assert_allclose(by_max[1, 0], [0.2, 0.4, 0.6, 1], atol=1e-5)
    by_minmax = normalise_cams(total, "minmax")
    np.testing.assert_allclose(by_minmax[1, 0], [0, 0.25, 0.5, 1], atol=1e-5)
    np.testing.assert_allclose(by_minmax[2, 0], [0, 1 / 3, 1, 1], atol=1e-5)  # negatives count as 0 (SEAM)
    assert (by_minmax >= 0).all()
    with pytest.raises(ValueError, match="unknown CAM normalisation"):
        normalise_cams(total, "softmax")


def test_flipped_view_comes_back_unflipped():
    image = np.zeros((12, 16, 3), np.uint8)
    image[:, :6, 0] = 255  # a red stripe on the left only
    cams = multiscale_cam(RedCAM(), image, [0], scales=(1.0, 0.5), flip=True, norm="max", runtime=FP32)[0]
    assert cams[:, :4].min() > 0.9 and cams[:, -6:].max() < 0.05
    unflipped = multiscale_cam(RedCAM(), image, [0], scales=(1.0, 0.5), flip=False, norm="max", runtime=FP32)[0]
    np.testing.assert_allclose(cams, unflipped, atol=1e-5)


def test_only_present_classes_are_kept_in_key_order():
    image = ramp_image()
    both = multiscale_cam(RedCAM(), image, [3, 17], scales=(1.0,), flip=False, norm="max", runtime=FP32)
    for i, key in enumerate([3, 17]):
        alone = multiscale_cam(RedCAM(), image, [key], scales=(1.0,), flip=False, norm="max", runtime=FP32)
        np.testing.assert_array_equal(both[i], alone[0])
    assert not np.allclose(both[0], both[1])
    empty = multiscale_cam(RedCAM(), image, [], scales=(1.0,), flip=True, norm="max", runtime=FP32)
    assert empty.shape == (0, 12, 16)
    with pytest.raises(ValueError, match="outside 0..19"):
        multiscale_cam(RedCAM(), image, [20], scales=(1.0,), flip=True, norm="max", runtime=FP32)


def test_flips_and_equal_sized_scales_share_a_batch():
    model = RedCAM()
    multiscale_cam(model, ramp_image(), [1], scales=(0.5, 1.0, 1.02, 2.0), flip=True, norm="max", runtime=FP32)
    assert [shape for shape, _ in model.calls] == [(2, 3, 6, 8), (4, 3, 12, 16), (2, 3, 24, 32)]


def test_scales_agree_on_a_smooth_image_and_strided_maps_reach_full_size():
    yy, xx = np.mgrid[0:40, 0:52]
    image = np.zeros((40, 52, 3), np.uint8)
    image[..., 0] = (127 + 120 * np.sin(xx / 9) * np.cos(yy / 11)).astype(np.uint8)
    single = multiscale_cam(RedCAM(), image, [4], scales=(1.0,), flip=True, norm="max", runtime=FP32)
    multi = multiscale_cam(RedCAM(), image, [4], scales=(0.5, 1.0, 1.5, 2.0), flip=True, norm="max", runtime=FP32)
    assert np.abs(multi - single).mean() < 0.02
    strided = multiscale_cam(RedCAM(stride=4), image[:37, :51], [4], scales=(1.0, 1.5), flip=True, norm="max",
                             runtime=FP32)
    assert strided.shape == (1, 37, 51)
    assert np.abs(strided - single[:, :37, :51]).mean() < 0.05


def test_bf16_runs_channels_last_and_returns_float32():
    image = ramp_image(24, 32)
    bf16 = Runtime(torch.device("cpu"), "bf16")
    model = bf16.prepare(RedCAM().eval())
    cams = multiscale_cam(model, image, [2, 5], scales=(1.0, 0.5), flip=True, norm="max", runtime=bf16)
    assert all(channels_last for _, channels_last in model.calls)
    reference = multiscale_cam(RedCAM(), image, [2, 5], scales=(1.0, 0.5), flip=True, norm="max", runtime=FP32)
    assert cams.dtype == np.float32
    np.testing.assert_allclose(cams, reference, atol=0.02)


def _labels() -> dict[str, np.ndarray]:
    labels = {}
    for image_id, (classes, _) in TINY_VOC.items():
        label = np.zeros(20, np.float32)
        label[[c - 1 for c in classes]] = 1
        labels[image_id] = label
    return labels


def test_infer_cam_dir_writes_one_file_per_image(voc_root, tmp_path):
    ids = list(TINY_VOC)
    cfg = InferCamConfig(scales=(1.0, 0.5), flip=True, norm="max")
    out = tmp_path / "cams"
    figures = infer_cam_dir(RedCAM(), voc_root, ids, _labels(), out, cfg, FP32, progress=False)
    assert figures["images"] == len(ids) and figures["images_per_s"] > 0
    assert sorted(p.name for p in out.iterdir()) == sorted([".wsss-output", *(f"{i}.npz" for i in ids)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["VOC2012", "cams"]  # no temporary left
    for image_id, (classes, _) in TINY_VOC.items():
        keys, cams = load_cams(out / f"{image_id}.npz")
        assert keys.tolist() == sorted(classes)
        image = np.asarray(Image.open(voc_root / "JPEGImages" / f"{image_id}.jpg").convert("RGB"))
        direct = multiscale_cam(RedCAM(), image, keys - 1, cfg.scales, cfg.flip, cfg.norm, FP32)
        np.testing.assert_allclose(cams, direct, atol=1e-3)


def test_infer_cam_dir_in_two_processes_matches_one(voc_root, tmp_path):
    ids = list(TINY_VOC)
    cfg = InferCamConfig(scales=(1.0,), flip=True, norm="minmax")
    infer_cam_dir(RedCAM(), voc_root, ids, _labels(), tmp_path / "one", cfg, FP32, progress=False)
    figures = infer_cam_dir(RedCAM(), voc_root, ids, _labels(), tmp_path / "two", cfg, FP32, workers=2,
                            progress=False)
    assert figures["workers"] == 2 and figures["threads_per_worker"] >= 1
    for image_id in ids:
        keys_one, cams_one = load_cams(tmp_path / "one" / f"{image_id}.npz")
        keys_two, cams_two = load_cams(tmp_path / "two" / f"{image_id}.npz")
        assert keys_one.tolist() == keys_two.tolist()
        np.testing.assert_allclose(cams_one, cams_two, atol=1e-3)


def test_infer_cam_dir_errors_leave_nothing(voc_root, tmp_path):
    cfg = InferCamConfig(scales=(1.0,), flip=False, norm="max")
    with pytest.raises(ValueError, match="no image-level labels"):
        infer_cam_dir(RedCAM(), voc_root, ["2007_000001", "nope"], _labels(), tmp_path / "out", cfg, FP32,
                      progress=False)
    labels = {"2007_000099": np.eye(20, dtype=np.float32)[0]}
    with pytest.raises(ValueError, match="2007_000099.jpg"):
        infer_cam_dir(RedCAM(), voc_root, ["2007_000099"], labels, tmp_path / "out", cfg, FP32, progress=False)
    assert not (tmp_path / "out").exists()


def test_view_first_upsampling_resizes_to_the_view_with_aligned_corners_then_to_the_image():
    """SEAM's network returns its maps at the view's size (align_corners=True); psa resizes once."""
    image = ramp_image()[:37, :51]
    model = RedCAM(stride=4)
    seam = multiscale_cam(model, image, [4], scales=(1.0,), flip=False, norm="max", runtime=FP32,
                          upsample="view_first")
    psa = multiscale_cam(model, image, [4], scales=(1.0,), flip=False, norm="max", runtime=FP32)
    view = torch.stack(list(scaled_views(image, (1.0,)).values())[0])
    with torch.no_grad():
        maps = model.cam(view, torch.tensor([4]))
    by_hand = F.interpolate(F.interpolate(maps, view.shape[-2:], mode="bilinear", align_corners=True),
                            image.shape[:2], mode="bilinear", align_corners=False)[0]
    np.testing.assert_allclose(seam, normalise_cams(by_hand, "max").numpy(), atol=1e-5)
    assert np.abs(seam - psa).max() > 1e-3  # the two procedures differ at a strided network's map
