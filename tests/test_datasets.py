"""Training and inference datasets over a VOC tree, and the prepared-dataset helper."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from wsss.data.datasets import VOCClassification, VOCImages, VOCSegmentation, open_prepared_voc
from wsss.data.transforms import train_transform
from wsss.data.voc import labels_from_mask, prepare_voc
from wsss.errors import DatasetError
from wsss.io import save_label_png

from conftest import H, TINY_SPLITS, TINY_VOC, W, tiny_mask

IDS = TINY_SPLITS["train_aug"]
LABELS = {image_id: labels_from_mask(tiny_mask(classes)) for image_id, (classes, _) in TINY_VOC.items()}


def test_classification_items_and_batches(voc_root):
    dataset = VOCClassification(voc_root, IDS, LABELS, train_transform(16, resize_long=(12, 20)))
    image, label = dataset[1]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32
    assert torch.equal(label, torch.from_numpy(LABELS[IDS[1]]))
    images, labels = next(iter(DataLoader(dataset, batch_size=4)))
    assert images.shape == (4, 3, 16, 16) and labels.shape == (4, 20)
    plain, _ = VOCClassification(voc_root, IDS, LABELS)[0]  # default: normalisation only
    assert plain.shape == (3, H, W)


def test_segmentation_reads_label_pngs_with_void(voc_root):
    dataset = VOCSegmentation(voc_root, IDS, voc_root / "SegmentationClass")
    image, mask = dataset[1]
    assert image.shape == (3, H, W) and mask.dtype == torch.int64
    assert torch.equal(mask, torch.from_numpy(tiny_mask(TINY_VOC[IDS[1]][0])).long())
    augmented = VOCSegmentation(voc_root, IDS, voc_root / "SegmentationClass",
                                train_transform(20, scale_range=(0.5, 1.5)))
    images, masks = next(iter(DataLoader(augmented, batch_size=2)))
    assert images.shape == (2, 3, 20, 20) and masks.shape == (2, 20, 20)
    assert (masks == 255).any()  # padding (and the void columns)


def test_images_for_inference(voc_root):
    image_id, image, label = VOCImages(voc_root, IDS, LABELS)[0]
    assert image_id == IDS[0] and image.shape == (H, W, 3) and image.dtype == np.uint8
    assert np.array_equal(label, LABELS[IDS[0]])
    assert VOCImages(voc_root, IDS)[0][2] is None


def test_a_missing_image_is_named(voc_root):
    missing = voc_root / "JPEGImages" / f"{IDS[2]}.jpg"
    missing.unlink()
    for make in (lambda: VOCClassification(voc_root, IDS, LABELS),
                 lambda: VOCSegmentation(voc_root, IDS, voc_root / "SegmentationClass"),
                 lambda: VOCImages(voc_root, IDS)):
        with pytest.raises(DatasetError, match=str(missing)):
            make()


def test_label_problems_are_named(voc_root, tmp_path):
    with pytest.raises(DatasetError, match="label folder missing"):
        VOCSegmentation(voc_root, IDS, tmp_path / "nowhere")
    labels = voc_root / "SegmentationClass"
    (labels / f"{IDS[0]}.png").unlink()
    with pytest.raises(DatasetError, match=f"{IDS[0]}.png"):
        VOCSegmentation(voc_root, IDS, labels)
    save_label_png(labels / f"{IDS[0]}.png", np.zeros((H + 1, W), np.uint8))
    with pytest.raises(DatasetError, match=f"{IDS[0]}.png: mask is {W}x{H + 1} but its image is {W}x{H}"):
        VOCSegmentation(voc_root, IDS, labels)[0]
    with pytest.raises(DatasetError, match="no image-level label"):
        VOCClassification(voc_root, IDS, {})


def test_an_unreadable_image_is_named(voc_root):
    broken = voc_root / "JPEGImages" / f"{IDS[0]}.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=f"{broken}: unreadable image"):
        VOCClassification(voc_root, IDS, LABELS)[0]


def test_open_prepared_voc(voc_root, tmp_path, monkeypatch):
    monkeypatch.chdir(voc_root.parent)
    prepare_voc("VOC2012", tmp_path / "prepared", progress=False)  # a relative root, as in params.yaml
    prepared = open_prepared_voc(tmp_path / "prepared")
    assert prepared.root == voc_root
    assert prepared.split("train") == TINY_SPLITS["train"]
    assert set(prepared.labels) == set(TINY_VOC)
    assert VOCClassification(prepared.root, prepared.split("train"), prepared.labels)[0][1].shape == (20,)
    with pytest.raises(DatasetError, match="prepare-voc"):
        open_prepared_voc(tmp_path / "absent")
