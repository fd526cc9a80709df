"""The synthetic SOD benchmark: determinism, layout, and the properties that make it LDF-like."""

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from wsss.data.synth_sod import SynthSODConfig, generate, preview_grid, render

SMALL = SynthSODConfig(train=12, test=6, size=96)


def _files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "sod"
    summary = generate(root, SMALL, workers=1, progress=False)
    return root, summary


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("test", 0, "synth_sod.test must be in [1, 1000000], got 0"),
        ("thin_prob", 1.5, "synth_sod.thin_prob must be in [0, 1], got 1.5"),
        ("thin_width_max", 1.0, "synth_sod.thin_width_max must be >= thin_width_min (1.5), got 1.0"),
        ("size", 16, "synth_sod.size must be in [32, 4096], got 16"),
        ("train", 10.0, "synth_sod.train must be of type int, got 10.0"),
        ("antialias", 1, "synth_sod.antialias must be of type bool, got 1"),
    ],
)
def test_config_is_validated(field, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SynthSODConfig(**{field: value})


def test_same_seed_same_bytes_whatever_the_workers(dataset, tmp_path):
    root, _ = dataset
    generate(tmp_path / "again", SMALL, workers=2, progress=False)
    assert _files(tmp_path / "again") == _files(root)
    generate(tmp_path / "other", SMALL.model_copy(update=dict(seed=1)), workers=1, progress=False)
    other = _files(tmp_path / "other")
    assert other.keys() == _files(root).keys()
    assert all(other[name] != data for name, data in _files(root).items() if name.endswith(".jpg"))


def test_layout_lists_and_masks(dataset):
    root, summary = dataset
    assert (summary["train"], summary["test"]) == (12, 6)
    names = {}
    for folder, listing, count in (("DUTS-TR", "train.txt", 12), ("ECSSD", "test.txt", 6)):
        names[folder] = (root / folder / listing).read_text().split()
        assert len(names[folder]) == count
        assert sorted(p.stem for p in (root / folder / "images").iterdir()) == names[folder]
        assert sorted(p.stem for p in (root / folder / "masks").iterdir()) == names[folder]
        for name in names[folder]:
            image, mask = Image.open(root / folder / "images" / f"{name}.jpg"), Image.open(root / folder / "masks" / f"{name}.png")
            with image, mask:
                assert (image.format, image.mode, mask.mode) == ("JPEG", "RGB", "L")
                assert image.size == mask.size and max(image.size) == 96
                assert set(np.unique(np.asarray(mask))) <= {0, 255}
    assert not set(names["DUTS-TR"]) & set(names["ECSSD"])


def test_antialias_only_softens_the_mask_edges():
    hard = render(SynthSODConfig(), 0, 3).mask
    soft = render(SynthSODConfig(antialias=True), 0, 3).mask
    assert ((soft > 0) & (soft < 255)).any()
    np.testing.assert_array_equal(soft >= 128, hard == 255)


def _opened_away(cfg, n=60):
    """Per image: the fraction of foreground that a 5x5 opening removes (thin parts)."""
    fractions = []
    for index in range(n):
        mask = (render(cfg, 0, index).mask > 0).astype(np.uint8)
        opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
        fractions.append(1 - opened.sum() / mask.sum())
    return np.array(fractions)


def test_objects_have_thin_structures():
    thin = _opened_away(SynthSODConfig())
    plain = _opened_away(SynthSODConfig(thin_prob=0))
    assert (thin > 0.05).mean() > 0.5
    assert np.median(thin) > 10 * np.median(plain)


def _contrasts(scene, ids):
    """Per labelled region: RGB distance between its mean colour and that of the free pixels around it."""
    image = scene.image.astype(np.float64)
    free = (scene.objects == 0) & (scene.clutter == 0)
    out = []
    for k in range(1, int(ids.max()) + 1):
        region = ids == k
        ring = (cv2.dilate(region.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0) & free
        if region.sum() >= 4 and ring.sum() >= 4:
            out.append(np.linalg.norm(image[region].mean(0) - image[ring].mean(0)))
    return out


def test_salient_objects_contrast_more_than_distractors():
    objects, clutter = [], []
    for index in range(60):
        scene = render(SynthSODConfig(), 1, index)
        objects += _contrasts(scene, scene.objects)
        clutter += _contrasts(scene, scene.clutter)
    assert len(clutter) > 100
    assert np.median(objects) > 2 * np.median(clutter)


def test_scale_variety_and_object_count():
    scenes = [render(SynthSODConfig(), 0, index) for index in range(150)]
    foreground = np.array([(scene.mask > 0).mean() for scene in scenes])
    assert 0.05 < (foreground > 0.5).mean() < 0.3
    assert (foreground < 0.05).mean() > 0.05
    assert any(scene.objects.max() == 2 for scene in scenes)
    assert all(scene.objects.max() >= 1 for scene in scenes)


def test_preview_grid(dataset, tmp_path):
    root, _ = dataset
    preview_grid(root, tmp_path / "grid.png", n=8)
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size == (4 * (2 * 96 + 12), 2 * (96 + 4) + 4)
