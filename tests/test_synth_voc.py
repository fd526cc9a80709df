"""The synthetic VOC benchmark: determinism, VOC layout, and the WSSS difficulties it promises."""

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from wsss.data import synth_voc
from wsss.data.classes import IGNORE_INDEX, VOC_CLASSES
from wsss.data.synth_voc import MARKS, SynthVOCConfig, generate, preview_grid, render
from wsss.io import read_label_png

TINY = SynthVOCConfig(train=4, val=3, train_aug=9, size=64)
SCENES = SynthVOCConfig(size=96, context=1.0, noise=0.0)
CLASS_IDS = set(range(1, len(VOC_CLASSES)))


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def water_fraction(sample: synth_voc.Sample) -> float:
    """Share of background pixels that are water-blue."""
    r, g, b = (sample.image[..., i].astype(int) for i in range(3))
    water = (b - r > 60) & (b - g > 25)
    background = sample.labels == 0
    return float(water[background].mean())


@pytest.fixture(scope="module")
def scenes() -> list[synth_voc.Sample]:
    return [render(SCENES, i) for i in range(300)]


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"synth_voc\.train must be in \[1, 1000000\], got 0"):
        SynthVOCConfig(train=0)
    with pytest.raises(ValueError, match=r"synth_voc\.train_aug must be in \[synth_voc\.train"):
        SynthVOCConfig(train=10, train_aug=5)
    with pytest.raises(ValueError, match=r"synth_voc\.context must be in \[0, 1\]"):
        SynthVOCConfig(context=1.5)
    with pytest.raises(ValueError, match=r"synth_voc\.size must be of type int"):
        SynthVOCConfig(size=128.0)


def test_same_seed_same_bytes_for_any_worker_count(tmp_path):
    generate(tmp_path / "a", TINY, workers=1, progress=False)
    generate(tmp_path / "b", TINY, workers=2, progress=False)
    generate(tmp_path / "c", TINY.model_copy(update=dict(seed=1)), workers=1, progress=False)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    assert tree_digest(tmp_path / "a") != tree_digest(tmp_path / "c")


def test_voc_layout_splits_masks_and_annotations(tmp_path):
    root = tmp_path / "VOC2012"
    summary = generate(root, TINY, progress=False)
    assert summary["images"] == 12 and summary["images_per_second"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["VOC2012"]  # no temporary left behind

    splits = {s: (root / "ImageSets/Segmentation" / f"{s}.txt").read_text().split() for s in ("train", "val", "train_aug")}
    assert [len(splits[s]) for s in ("train", "val", "train_aug")] == [4, 3, 9]
    assert set(splits["train"]) <= set(splits["train_aug"])
    assert not set(splits["val"]) & set(splits["train_aug"])
    for name in splits["train_aug"] + splits["val"]:
        assert len(name) == 11 and name[4] == "_"
        labels = read_label_png(root / "SegmentationClass" / f"{name}.png")
        with Image.open(root / "JPEGImages" / f"{name}.jpg") as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert image.size == labels.shape[::-1] and max(image.size) == 64
        assert set(np.unique(labels)) <= CLASS_IDS | {0, IGNORE_INDEX}

        xml = ET.parse(root / "Annotations" / f"{name}.xml").getroot()
        assert xml.findtext("filename") == f"{name}.jpg"
        width, height = int(xml.findtext("size/width")), int(xml.findtext("size/height"))
        assert (height, width) == labels.shape and xml.findtext("size/depth") == "3"
        objects = xml.findall("object")
        assert objects
        for obj in objects:
            assert VOC_CLASSES.index(obj.findtext("name")) in labels
            assert obj.findtext("pose") == "Unspecified" and obj.findtext("difficult") == "0"
            assert obj.findtext("truncated") in ("0", "1")
            xmin, ymin, xmax, ymax = (int(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
            assert 1 <= xmin <= xmax <= width and 1 <= ymin <= ymax <= height

    preview_grid(root, tmp_path / "grid.png", n=4)
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.width > grid.height > 0


def test_a_crash_leaves_nothing_under_out_dir(tmp_path, monkeypatch):
    def broken_render(cfg, index):
        if index == 5:
            raise RuntimeError("boom")
        return render(cfg, index)

    monkeypatch.setattr(synth_voc, "render", broken_render)
    with pytest.raises(RuntimeError, match="boom"):
        generate(tmp_path / "VOC2012", TINY, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_every_annotated_class_is_in_the_mask_and_all_classes_occur(scenes):
    seen = set()
    for sample in scenes:
        annotated = {obj.label for obj in sample.objects}
        assert annotated, "every image has an object"
        assert annotated == set(np.unique(sample.labels)) - {0, IGNORE_INDEX}
        seen |= annotated
    assert seen == CLASS_IDS
    assert np.mean([len(s.objects) for s in scenes]) > 1.5  # multi-object scenes
    assert any(obj.truncated for s in scenes for obj in s.objects)


def test_each_object_shows_its_class_mark_inside_its_mask(scenes):
    for sample in scenes:
        for label in {obj.label for obj in sample.objects}:
            mark = sample.marks == label
            assert mark.sum() >= 8
            assert np.isin(sample.labels[mark], (label, IGNORE_INDEX)).all()
            assert (sample.image[mark] == MARKS[label][1]).all()  # noise = 0: the exact mark colour
            assert (sample.labels[mark] == label).mean() > 0.5


def test_void_band_runs_along_object_boundaries(scenes):
    for index, banded in enumerate(scenes[:50]):
        plain = render(SCENES.model_copy(update=dict(void_width=0)), index)
        assert (plain.image == banded.image).all() and IGNORE_INDEX not in plain.labels
        void = banded.labels == IGNORE_INDEX
        assert void.any() and void.mean() < 0.25
        assert (banded.labels[~void] == plain.labels[~void]).all()
        for axis in (0, 1):  # every label change has a void pixel on one side
            first = np.take(plain.labels, range(plain.labels.shape[axis] - 1), axis=axis)
            second = np.take(plain.labels, range(1, plain.labels.shape[axis]), axis=axis)
            void_first = np.take(void, range(void.shape[axis] - 1), axis=axis)
            void_second = np.take(void, range(1, void.shape[axis]), axis=axis)
            assert (void_first | void_second)[first != second].all()
        assert not (void & ~ndimage.binary_dilation(plain.labels > 0, np.ones((3, 3)))).any()  # only at objects


def test_context_comes_with_its_class_and_is_background(scenes):
    boat = VOC_CLASSES.index("boat")
    with_context = [s for s in scenes if any(synth_voc.CLASS_CONTEXT.get(o.label) for o in s.objects)]
    assert with_context and all(s.context is not None for s in with_context)
    boats_only = [s for s in scenes if {synth_voc.CLASS_CONTEXT.get(o.label) for o in s.objects} == {"water", None}]
    assert len(boats_only) >= 5 and all(boat in s.labels for s in boats_only)
    assert all(water_fraction(s) > 0.1 for s in boats_only)
    no_context = [render(SCENES.model_copy(update=dict(context=0.0)), i) for i in range(100)]
    assert all(s.context is None and water_fraction(s) < 0.02 for s in no_context)


def test_discriminative_part_knob_shares_body_colours_within_a_family():
    family = [c for c, name in enumerate(VOC_CLASSES) if synth_voc.CLASS_FAMILY.get(name) == "quadruped"]

    def body_colours(discriminative_part: float) -> np.ndarray:
        cfg = SCENES.model_copy(update=dict(size=64, discriminative_part=discriminative_part, clutter=0))
        pixels = {c: [] for c in family}
        for i in range(200):
            sample = render(cfg, i)
            for c in family:
                pixels[c].append(sample.image[(sample.labels == c) & (sample.marks == 0)])
        return np.array([np.concatenate(pixels[c]).mean(axis=0) for c in family])

    def spread(means: np.ndarray) -> float:
        return float(np.linalg.norm(means[:, None] - means[None], axis=-1).max())

    shared, distinct = body_colours(1.0), body_colours(0.0)
    assert spread(shared) < 25 < 50 < spread(distinct)
