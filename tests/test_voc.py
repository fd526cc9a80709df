"""VOC2012 (+SBD) readers: lists, masks, labels, validation errors, SBD conversion, prepare_voc."""

import json
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import TINY_SPLITS, TINY_VOC, tiny_mask, write_sbd, write_voc_tree
from wsss.data import voc
from wsss.data.classes import VOC_CLASSES
from wsss.errors import DatasetError
from wsss.io import read_label_png, save_label_png, unfiltered_png


def onehot(*names):
    labels = np.zeros(20, np.float32)
    for name in names:
        labels[VOC_CLASSES.index(name) - 1] = 1
    return labels


def test_prepare_voc_writes_lists_labels_and_summary(voc_root, tmp_path):
    out = tmp_path / "prepared"
    summary = voc.prepare_voc(voc_root, out, progress=False)

    for split, ids in TINY_SPLITS.items():
        assert (out / f"{split}.txt").read_text().split() == ids
    labels = voc.load_cls_labels(out / "cls_labels.npy")
    assert sorted(labels) == sorted(TINY_VOC)
    for image_id, (_, names) in TINY_VOC.items():
        np.testing.assert_array_equal(labels[image_id], onehot(*names))
    assert json.loads((out / "dataset.json").read_text()) == summary
    assert summary["root"] == str(voc_root)
    assert summary["splits"] == {"train": 3, "val": 2, "train_aug": 4}
    assert summary["masks_checked"] == 6 and summary["label_source"] == "xml"
    assert summary["labels_differing_from_masks"] == 1  # 2007_000003: person in the XML, not in the mask
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers

    again = voc.prepare_voc(voc_root, tmp_path / "again", workers=2, progress=False)
    assert again["content_hash"] == summary["content_hash"]


def test_content_hash_follows_labels(voc_root, tmp_path):
    from_xml = voc.prepare_voc(voc_root, tmp_path / "a", progress=False)
    from_mask = voc.prepare_voc(voc_root, tmp_path / "b", label_source="mask", progress=False)
    assert from_mask["labels_differing_from_masks"] == 0
    assert from_mask["content_hash"] != from_xml["content_hash"]
    labels = voc.load_cls_labels(tmp_path / "b" / "cls_labels.npy")
    np.testing.assert_array_equal(labels["2007_000003"], onehot("car"))


def test_xml_labels_include_objects_absent_from_mask(voc_root):
    mask = voc.load_mask(voc_root, "2007_000003")
    np.testing.assert_array_equal(voc.labels_from_mask(mask), onehot("car"))
    xml = voc.labels_from_xml(voc_root / "Annotations" / "2007_000003.xml")
    np.testing.assert_array_equal(xml, onehot("car", "person"))  # part and owner names are not classes
    np.testing.assert_array_equal(voc.image_labels(voc_root, "2007_000003"), xml)


def test_missing_xml_falls_back_to_mask_with_warning(voc_root, tmp_path):
    (voc_root / "Annotations" / "2007_000003.xml").unlink()
    with pytest.warns(UserWarning, match="2007_000003"):
        np.testing.assert_array_equal(voc.image_labels(voc_root, "2007_000003"), onehot("car"))
    with pytest.warns(UserWarning, match="1 ids have no Annotations"):
        summary = voc.prepare_voc(voc_root, tmp_path / "out", progress=False)
    assert summary["labels_differing_from_masks"] == 0
    assert summary["labels_from_masks_for_missing_xml"] == 1


def test_psa_style_list_lines(voc_root):
    path = voc_root / "ImageSets" / "Segmentation" / "psa.txt"
    path.write_text("/JPEGImages/2007_000001.jpg /SegmentationClassAug/2007_000001.png\n\n"
                    "/JPEGImages/2007_000002.jpg /SegmentationClassAug/2007_000002.png\n")
    assert voc.read_split(voc_root, "psa") == ["2007_000001", "2007_000002"]


def test_mask_folder_preference(voc_root):
    aug = tiny_mask([8])
    (voc_root / "SegmentationClassAug").mkdir()
    save_label_png(voc_root / "SegmentationClassAug" / "2007_000001.png", aug)
    np.testing.assert_array_equal(voc.load_mask(voc_root, "2007_000001"), aug)
    official = voc.load_mask(voc_root, "2007_000001", mask_dirs=("SegmentationClass",))
    np.testing.assert_array_equal(official, tiny_mask([1]))
    # an id missing from the preferred folder falls back to the next one
    np.testing.assert_array_equal(voc.load_mask(voc_root, "2007_000002"), tiny_mask([15, 12]))


def _corrupt_image(root):
    (root / "JPEGImages" / "2007_000002.jpg").write_bytes(b"not a jpeg")
    return "2007_000002.jpg", "unreadable image"


def _wrong_mask_size(root):
    save_label_png(root / "SegmentationClass" / "2007_000004.png", np.zeros((12, 15), np.uint8))
    return "2007_000004.png", "15x12 but its image is 16x12"


def _bad_label_value(root):
    mask = tiny_mask([1])
    mask[0, 0] = 30
    save_label_png(root / "SegmentationClass" / "2007_000001.png", mask)
    return "2007_000001.png", "[30] outside 0..20 and 255"


def _rgb_mask(root):
    Image.new("RGB", (16, 12)).save(root / "SegmentationClass" / "2007_000005.png")
    return "2007_000005.png", "mode RGB"


def _image_missing(root):
    (root / "JPEGImages" / "2007_000006.jpg").unlink()
    return "2007_000006.jpg", "image missing"


def _empty_split(root):
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n")
    return "val.txt", "id list is empty"


def _missing_split(root):
    (root / "ImageSets" / "Segmentation" / "train_aug.txt").unlink()
    return "train_aug.txt", "split list not found (build it from SBD"


def _mask_missing_in_checked_split(root):
    (root / "SegmentationClass" / "2007_000002.png").unlink()
    return "no mask for 2007_000002", "SegmentationClass"


def _bad_xml(root):
    (root / "Annotations" / "2007_000001.xml").write_text("<annotation><object>")
    return "2007_000001.xml", "unreadable annotation XML"


@pytest.mark.parametrize("corrupt", [_corrupt_image, _wrong_mask_size, _bad_label_value, _rgb_mask, _image_missing,
                                     _empty_split, _missing_split, _mask_missing_in_checked_split, _bad_xml])
def test_bad_input_errors_name_the_file(voc_root, tmp_path, corrupt):
    filename, problem = corrupt(voc_root)
    with pytest.raises(ValueError) as info:
        voc.prepare_voc(voc_root, tmp_path / "out", progress=False)
    assert filename in str(info.value) and problem in str(info.value)
    assert not (tmp_path / "out").exists()  # nothing written on failure


def test_mask_missing_outside_checked_splits_is_fine(voc_root, tmp_path):
    (voc_root / "SegmentationClass" / "2007_000006.png").unlink()  # train_aug only
    summary = voc.prepare_voc(voc_root, tmp_path / "out", progress=False)
    assert summary["masks_checked"] == 5


@pytest.mark.parametrize("missing", ["", "JPEGImages", "ImageSets/Segmentation", "SegmentationClass"])
def test_missing_dataset_says_what_to_get(tmp_path, missing):
    root = write_voc_tree(tmp_path / "VOC2012") if missing else tmp_path / "nowhere"
    if missing:
        shutil.rmtree(root / missing)
    with pytest.raises(DatasetError) as info:
        voc.prepare_voc(root, tmp_path / "out", progress=False)
    message = str(info.value)
    assert str(root) in message
    assert "VOCtrainval_11-May-2012.tar" in message and "benchmark.tgz" in message
    assert "wsss data prepare-voc --download" in message


def test_label_source_file_must_cover_every_id(voc_root, tmp_path):
    labels = {image_id: onehot(*names) for image_id, (_, names) in TINY_VOC.items()}
    del labels["2007_000006"]
    voc.save_cls_labels(tmp_path / "partial.npy", labels)
    with pytest.raises(DatasetError, match=r"partial.npy: no labels for 1 listed ids.*2007_000006"):
        voc.prepare_voc(voc_root, tmp_path / "out", label_source=tmp_path / "partial.npy", progress=False)
    summary = voc.prepare_voc(voc_root, tmp_path / "out", splits=("train", "val"),
                              label_source=str(tmp_path / "partial.npy"), progress=False)
    assert summary["label_source"] == str(tmp_path / "partial.npy")
    assert summary["labels_differing_from_masks"] == 1


@pytest.mark.parametrize("int_keys", [False, True])
def test_cls_labels_round_trip(tmp_path, int_keys):
    labels = {"2007_000032": onehot("aeroplane", "person"), "2011_003276": onehot("tvmonitor")}
    voc.save_cls_labels(tmp_path / "cls_labels.npy", labels, int_keys=int_keys)
    raw = np.load(tmp_path / "cls_labels.npy", allow_pickle=True).item()
    assert sorted(raw) == ([2007000032, 2011003276] if int_keys else sorted(labels))
    loaded = voc.load_cls_labels(tmp_path / "cls_labels.npy")
    assert sorted(loaded) == sorted(labels)
    for key, value in labels.items():
        assert loaded[key].dtype == np.float32
        np.testing.assert_array_equal(loaded[key], value)


def test_cls_labels_errors(tmp_path):
    np.save(tmp_path / "bad.npy", {"2007_000032": np.ones(21, np.float32)}, allow_pickle=True)
    with pytest.raises(DatasetError, match=r"bad.npy: label of 2007_000032 has shape \(21,\)"):
        voc.load_cls_labels(tmp_path / "bad.npy")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="junk.npy: cannot read"):
        voc.load_cls_labels(tmp_path / "junk.npy")
    with pytest.raises(ValueError, match="not of the VOC form"):
        voc.encode_int_id("frame7")


def test_sbd_conversion_and_train_aug(voc_root, tmp_path):
    sbd_masks = {
        "2007_000001": tiny_mask([2]),  # also a VOC mask: VOC's own wins
        "2007_000004": tiny_mask([6]),  # VOC val: converted, but not in train_aug
        "2008_000010": tiny_mask([4]),
        "2008_000011": tiny_mask([10, 17]),
    }
    sbd = write_sbd(tmp_path / "benchmark_RELEASE" / "dataset", sbd_masks,
                    train=["2007_000001", "2008_000010"], val=["2007_000004", "2008_000011"])
    count = voc.convert_sbd(sbd.parent, voc_root, workers=2, progress=False)  # benchmark_RELEASE/ is accepted too
    aug = voc_root / "SegmentationClassAug"
    assert count == len(list(aug.glob("*.png"))) == 8  # 6 VOC masks + 2 SBD-only
    for image_id in ("2008_000010", "2008_000011"):
        np.testing.assert_array_equal(read_label_png(aug / f"{image_id}.png"), sbd_masks[image_id])
        assert Image.open(aug / f"{image_id}.png").mode == "P"
    assert (aug / "2007_000001.png").read_bytes() == (voc_root / "SegmentationClass" / "2007_000001.png").read_bytes()

    ids = voc.build_train_aug(voc_root, sbd)
    assert ids == ["2007_000001", "2007_000002", "2007_000003", "2008_000010", "2008_000011"]
    assert voc.read_split(voc_root, "train_aug") == ids


def test_sbd_errors(voc_root, tmp_path):
    with pytest.raises(DatasetError, match="SBD folder missing.*benchmark.tgz"):
        voc.convert_sbd(tmp_path / "nothing", voc_root, progress=False)
    sbd = write_sbd(tmp_path / "sbd", {"2008_000010": tiny_mask([4])}, ["2008_000010"], [])
    (sbd / "cls" / "2008_000099.mat").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="2008_000099.mat: not an SBD cls .mat"):
        voc.convert_sbd(sbd, voc_root, progress=False)
    assert not (voc_root / "SegmentationClassAug").exists()
    with pytest.raises(ValueError, match=r"sbd/val.txt: id list is empty"):
        voc.build_train_aug(voc_root, sbd)


# --- the real reference data (../shared/data/voc2012) ---

def test_real_images_match_their_masks(shared_voc, tmp_path):
    seam = shared_voc / "cls_labels" / "cls_labels_seam.npy"
    summary = voc.prepare_voc(shared_voc, tmp_path / "out", splits=("pairs_available",), label_source=seam,
                              check_masks_for=("pairs_available",), progress=False)
    assert summary["splits"] == {"pairs_available": 3} and summary["masks_checked"] == 3
    for image_id in ("2011_000003", "2011_000006", "2011_000025"):
        mask = voc.load_mask(shared_voc, image_id)
        assert Image.open(voc.image_path(shared_voc, image_id)).size == (mask.shape[1], mask.shape[0])


def test_real_cls_labels_seam_equals_irn(shared_voc):
    seam = voc.load_cls_labels(shared_voc / "cls_labels" / "cls_labels_seam.npy")
    irn = voc.load_cls_labels(shared_voc / "cls_labels" / "cls_labels_irn.npy")
    assert len(seam) == 12031 and seam.keys() == irn.keys()
    assert all(np.array_equal(seam[k], irn[k]) for k in seam)


def test_real_lists_follow_the_train_aug_rule(shared_voc):
    train, val, train_aug = (set(voc.read_split(shared_voc, s)) for s in ("train", "val", "train_aug"))
    assert (len(train), len(val), len(train_aug)) == (1464, 1449, 10582)
    assert train <= train_aug and not (val & train_aug)


def test_real_xml_labels_differ_from_mask_labels_818_times(shared_voc):
    seam = voc.load_cls_labels(shared_voc / "cls_labels" / "cls_labels_seam.npy")
    from_masks = {k: voc.labels_from_mask(voc.load_mask(shared_voc, k)) for k in seam}
    differing = [k for k in seam if not np.array_equal(from_masks[k], seam[k])]
    assert len(differing) == 818  # the data README: the XML lists objects the SBD masks do not segment
    # all but one add classes to the mask's; val image 2008_005245 has a segmented person its XML lacks
    assert [k for k in differing if (from_masks[k] > seam[k]).any()] == ["2008_005245"]


def test_label_pngs_read_by_zlib_equal_pil_and_others_fall_back(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 21, (37, 53), dtype=np.uint8)
    labels[:5] = 255
    save_label_png(tmp_path / "palette.png", labels)
    Image.fromarray(labels, mode="L").save(tmp_path / "grey.png")
    assert unfiltered_png((tmp_path / "palette.png").read_bytes()) is not None   # this project's writer: the fast path
    for name in ("palette", "grey"):
        np.testing.assert_array_equal(read_label_png(tmp_path / f"{name}.png"), labels)
    # filtered rows (PIL and cv2 filter grey PNGs), 16-bit and truncated files go through PIL as before
    smooth = np.add.outer(np.arange(37), np.arange(53)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "filtered.png"), smooth)
    assert unfiltered_png((tmp_path / "filtered.png").read_bytes()) is None
    np.testing.assert_array_equal(read_label_png(tmp_path / "filtered.png"), smooth)
    Image.fromarray(labels.astype(np.uint16)).save(tmp_path / "deep.png")
    assert unfiltered_png((tmp_path / "deep.png").read_bytes()) is None
    data = (tmp_path / "palette.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:len(data) // 2])
    assert unfiltered_png((tmp_path / "cut.png").read_bytes()) is None
    with pytest.raises(DatasetError, match="cut.png"):
        read_label_png(tmp_path / "cut.png")
    with pytest.raises(DatasetError, match="gone.png: label PNG missing"):
        read_label_png(tmp_path / "gone.png")


def test_real_label_pngs_read_by_zlib_equal_pil(shared_voc):
    for path in sorted((shared_voc / "SegmentationClassAug").glob("*.png"))[::400]:
        assert unfiltered_png(path.read_bytes()) is not None
        with Image.open(path) as image:
            np.testing.assert_array_equal(read_label_png(path), np.asarray(image))
