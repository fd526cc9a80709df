"""Dense CRF and CRF pseudo labels: sharpening, the background power, label mapping, the directory writer."""

import numpy as np
import pytest
from conftest import TINY_VOC
from PIL import Image
from scipy.ndimage import gaussian_filter

from wsss.config import CRFConfig
from wsss.data.cam_files import save_cams
from wsss.infer.crf import cam_to_pseudo_label, crf_label_dir, dense_crf, pseudo_label_alpha

CRF = CRFConfig(alpha_low=4, alpha_high=24, iterations=10, gaussian_sxy=3, gaussian_compat=3,
                bilateral_sxy=80, bilateral_srgb=13, bilateral_compat=10)


def kernels(crf: CRFConfig = CRF) -> dict:
    return dict(iterations=crf.iterations, gaussian_sxy=crf.gaussian_sxy, gaussian_compat=crf.gaussian_compat,
                bilateral_sxy=crf.bilateral_sxy, bilateral_srgb=crf.bilateral_srgb,
                bilateral_compat=crf.bilateral_compat)


def disc_scene(size=64, radius=16, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A yellow disc on blue, with mild noise, and its true mask."""
    yy, xx = np.mgrid[0:size, 0:size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius ** 2
    image = np.where(disc[..., None], [220, 200, 40], [30, 60, 200]).astype(np.float64)
    image += np.random.default_rng(seed).normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), disc


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def test_crf_sharpens_a_blurred_shifted_mask():
    image, disc = disc_scene()
    foreground = gaussian_filter(np.roll(disc, (4, 5), axis=(0, 1)).astype(np.float64), sigma=4)
    probs = np.stack([1 - foreground, foreground]).astype(np.float32)
    before = iou(probs.argmax(0) == 1, disc)
    marginals = dense_crf(image, probs, **kernels())
    after = iou(marginals.argmax(0) == 1, disc)
    assert before < 0.75 and after > 0.9 and after > before + 0.15
    assert marginals.dtype == np.float32 and marginals.shape == probs.shape
    np.testing.assert_allclose(marginals.sum(0), 1, atol=1e-4)


def test_dense_crf_rejects_mismatched_scores():
    image, _ = disc_scene()
    with pytest.raises(ValueError, match="do not match the 64x64 image"):
        dense_crf(image, np.ones((2, 64, 60), np.float32), **kernels())


def blob(size=48, centre=(24, 24), sigma=9.0) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * sigma ** 2)).astype(np.float32)


def test_higher_alpha_leaves_less_background():
    """(1 - max)^alpha falls as alpha grows, so the background shrinks (psa's "ha" maps keep only sure background)."""
    image = np.full((48, 48, 3), 128, np.uint8)
    cams = blob()[None]
    background = [(cam_to_pseudo_label(image, [7], cams, alpha, CRF) == 0).sum() for alpha in (2, 6, 10, 16)]
    assert all(more > less for more, less in zip(background, background[1:]))
    assert background[0] > background[-1] + 300 and background[-1] > 0


def test_pseudo_label_maps_channels_to_keys():
    image = np.full((48, 48, 3), 128, np.uint8)
    cams = np.stack([blob(centre=(24, 12), sigma=6), blob(centre=(24, 36), sigma=6)])
    label = cam_to_pseudo_label(image, [3, 15], cams, pseudo_label_alpha(CRF), CRF)
    assert label.dtype == np.uint8 and label.shape == (48, 48)
    assert set(np.unique(label)) == {0, 3, 15}
    assert label[24, 12] == 3 and label[24, 36] == 15 and label[2, 2] == 0
    nothing = cam_to_pseudo_label(image, [], np.zeros((0, 48, 48), np.float32), 4, CRF)
    assert (nothing == 0).all()
    with pytest.raises(ValueError, match="do not match 2 keys"):
        cam_to_pseudo_label(image, [3, 15], cams[:, :40], 4, CRF)


def test_default_alpha_is_the_geometric_mean_of_the_pair():
    assert pseudo_label_alpha(CRF) == pytest.approx(np.sqrt(96))


def write_cams(voc_root, cam_dir, seed=0, bad=None):
    """Random CAMs at each tiny image's size for its classes; ``bad`` gets the wrong size."""
    rng = np.random.default_rng(seed)
    for image_id, (classes, _) in TINY_VOC.items():
        width, height = Image.open(voc_root / "JPEGImages" / f"{image_id}.jpg").size
        if image_id == bad:
            height += 1
        save_cams(cam_dir / f"{image_id}.npz", sorted(classes), rng.random((len(classes), height, width)))


@pytest.mark.parametrize("workers", [1, 2])
def test_crf_label_dir_writes_palette_pngs_of_present_classes(voc_root, tmp_path, workers):
    write_cams(voc_root, tmp_path / "cams")
    out = tmp_path / "labels"
    figures = crf_label_dir(voc_root, list(TINY_VOC), tmp_path / "cams", out, CRF, alpha=4, workers=workers,
                            progress=False)
    assert figures["images"] == len(TINY_VOC) and figures["workers"] == workers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["VOC2012", "cams", "labels"]
    seen = set()
    for image_id, (classes, _) in TINY_VOC.items():
        with Image.open(out / f"{image_id}.png") as png:
            assert png.mode == "P"
            label = np.asarray(png)
        assert label.shape == np.asarray(Image.open(voc_root / "JPEGImages" / f"{image_id}.jpg")).shape[:2]
        assert set(np.unique(label)) <= {0, *classes}
        seen |= set(np.unique(label))
    assert seen - {0}  # the random CAMs win somewhere


@pytest.mark.parametrize("workers", [1, 2])
def test_crf_label_dir_names_the_cam_file_of_the_wrong_size(voc_root, tmp_path, workers):
    write_cams(voc_root, tmp_path / "cams", bad="2007_000003")
    with pytest.raises(ValueError, match=r"2007_000003\.npz: CAMs are 13x16 but the image .*2007_000003\.jpg is 12x16"):
        crf_label_dir(voc_root, list(TINY_VOC), tmp_path / "cams", tmp_path / "labels", CRF, alpha=4,
                      workers=workers, progress=False)
    assert not (tmp_path / "labels").exists()
