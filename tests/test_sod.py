"""SOD folder readers: every folder naming style, LDF's lists, errors that name files, 1-bit masks."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED_DATA, write_image
from wsss.data import sod
from wsss.io import read_grey_uint8


def write_mask(path, size=(16, 12), one_bit=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[3:9, 4:12] = 255
    image = Image.fromarray(mask)
    (image.convert("1") if one_bit else image).save(path)


def write_sod(root, name, names, image_dir="images", mask_dir="masks", ext=".jpg", one_bit=False):
    for n in names:
        write_image(root / name / image_dir / f"{n}{ext}")
        write_mask(root / name / mask_dir / f"{n}.png", one_bit=one_bit)
    return root


@pytest.mark.parametrize("image_dir,mask_dir,ext", [
    ("images", "masks", ".jpg"), ("image", "mask", ".png"), ("Imgs", "GT", ".jpg"),
    ("ECSSD-Image", "ECSSD-Mask", ".jpg"), ("imgs", "gt", ".png"),
])
def test_folder_styles(tmp_path, image_dir, mask_dir, ext):
    write_sod(tmp_path, "ECSSD", ["0002", "0001"], image_dir, mask_dir, ext)
    pairs = sod.list_sod_pairs(tmp_path, "ECSSD")
    assert [n for n, _, _ in pairs] == ["0001", "0002"]
    assert pairs[0][1] == tmp_path / "ECSSD" / image_dir / f"0001{ext}"
    assert pairs[0][2] == tmp_path / "ECSSD" / mask_dir / "0001.png"


def test_duts_zip_layout(tmp_path):
    write_sod(tmp_path, "DUTS-TR", ["sun_a", "ILSVRC2012_test_00000004"], "DUTS-TR-Image", "DUTS-TR-Mask")
    assert len(sod.list_sod_pairs(tmp_path, "DUTS-TR")) == 2


def test_ldf_shared_duts_folder_with_lists(tmp_path):
    write_sod(tmp_path, "DUTS", ["a", "b", "c"], "image", "mask")
    (tmp_path / "DUTS" / "train.txt").write_text("a\nb\n")
    (tmp_path / "DUTS" / "test.txt").write_text("c\n")
    assert [n for n, _, _ in sod.list_sod_pairs(tmp_path, "DUTS-TR")] == ["a", "b"]
    assert [n for n, _, _ in sod.list_sod_pairs(tmp_path, "DUTS-TE")] == ["c"]


def test_list_file_selects_and_orders(tmp_path):
    write_sod(tmp_path, "HKU-IS", ["1", "2", "3"])
    (tmp_path / "HKU-IS" / "test.txt").write_text("3\n1\n")
    assert [n for n, _, _ in sod.list_sod_pairs(tmp_path, "HKU-IS")] == ["3", "1"]


def test_one_bit_masks_read_as_0_255(tmp_path):
    write_sod(tmp_path, "PASCAL-S", ["1"], one_bit=True)
    (_, _, mask_path), = sod.list_sod_pairs(tmp_path, "PASCAL-S")
    assert Image.open(mask_path).mode == "1"
    mask = read_grey_uint8(mask_path)
    assert mask.dtype == np.uint8 and mask.shape == (12, 16)
    assert set(np.unique(mask).tolist()) == {0, 255} and (mask == 255).sum() == 6 * 8


def test_real_one_bit_masks(tmp_path):
    masks = SHARED_DATA / "sod-eval" / "masks"
    if not masks.is_dir():
        pytest.skip(f"real SOD masks not found at {masks} (only present next to the project's shared folder)")
    values = set()
    for path in sorted(masks.glob("*.png"))[:20]:
        values |= set(np.unique(read_grey_uint8(path)).tolist())
    assert values == {0, 255}


def _missing_folder(root):
    return root, "ECSSD", "ECSSD: SOD dataset folder missing", "cse.cuhk.edu.hk"


def test_help_names_every_source(tmp_path):
    message = sod.sod_help(tmp_path)
    assert all(source in message for source in sod.SOD_SOURCES.values())
    assert "wsss data prepare-sod --download" in message and str(tmp_path / "<NAME>") in message


def _no_mask_folder(root):
    write_sod(root, "ECSSD", ["1"])
    (root / "ECSSD" / "masks" / "1.png").unlink()
    (root / "ECSSD" / "masks").rmdir()
    return root, "ECSSD", "ECSSD: no mask folder", "masks"


def _image_without_mask(root):
    write_sod(root, "ECSSD", ["1", "2"])
    (root / "ECSSD" / "masks" / "2.png").unlink()
    return root, "ECSSD", "images/2.jpg: image without mask", "masks"


def _mask_without_image(root):
    write_sod(root, "ECSSD", ["1", "2"])
    (root / "ECSSD" / "images" / "2.jpg").unlink()
    return root, "ECSSD", "images/2.*: image of 2 missing", "masks/2.png"


def _listed_without_mask(root):
    write_sod(root, "ECSSD", ["1"])
    (root / "ECSSD" / "test.txt").write_text("1\n7\n")
    return root, "ECSSD", "masks/7.png: mask of 7", "test.txt"


def _size_mismatch(root):
    write_sod(root, "ECSSD", ["1"])
    write_mask(root / "ECSSD" / "masks" / "1.png", size=(16, 10))
    return root, "ECSSD", "masks/1.png: mask is 16x10", "images/1.jpg is 16x12"


def _empty_set(root):
    (root / "ECSSD" / "images").mkdir(parents=True)
    (root / "ECSSD" / "masks").mkdir()
    return root, "ECSSD", "masks: empty", "cse.cuhk.edu.hk"


def _empty_list(root):
    write_sod(root, "ECSSD", ["1"])
    (root / "ECSSD" / "test.txt").write_text("\n")
    return root, "ECSSD", "test.txt: list is empty", "test.txt"


def _unreadable_image(root):
    write_sod(root, "ECSSD", ["1"])
    (root / "ECSSD" / "images" / "1.jpg").write_bytes(b"junk")
    return root, "ECSSD", "images/1.jpg: unreadable image", "1.jpg"


@pytest.mark.parametrize("make", [_missing_folder, _no_mask_folder, _image_without_mask, _mask_without_image,
                                  _listed_without_mask, _size_mismatch, _empty_set, _empty_list, _unreadable_image])
def test_errors_name_the_file(tmp_path, make):
    root, name, first, second = make(tmp_path)
    with pytest.raises(ValueError) as info:
        sod.list_sod_pairs(root, name)
    assert first in str(info.value) and second in str(info.value)


def test_prepare_sod(tmp_path):
    root = tmp_path / "SOD"
    write_sod(root, "DUTS-TR", ["a", "b", "c"], "DUTS-TR-Image", "DUTS-TR-Mask")
    write_sod(root, "ECSSD", ["0001", "0002"], ext=".png", one_bit=True)
    out = tmp_path / "prepared"
    summary = sod.prepare_sod(root, ["DUTS-TR"], ["ECSSD"], out, workers=2, progress=False)
    assert json.loads((out / "dataset.json").read_text()) == summary
    assert summary["root"] == str(root)
    assert {n: s["count"] for n, s in summary["sets"].items()} == {"DUTS-TR": 3, "ECSSD": 2}
    assert summary["sets"]["ECSSD"]["role"] == "test"
    assert (out / "ECSSD.txt").read_text().splitlines()[0] == "ECSSD/images/0001.png\tECSSD/masks/0001.png"
    assert sod.read_sod_list(out / "DUTS-TR.txt", root) == sod.list_sod_pairs(root, "DUTS-TR")
    again = sod.prepare_sod(root, ["DUTS-TR"], ["ECSSD"], tmp_path / "again", progress=False)
    assert again["content_hash"] == summary["content_hash"]

    with pytest.raises(ValueError, match="THUR15K: SOD dataset folder missing.*mmcheng.net"):
        sod.prepare_sod(root, ["DUTS-TR"], ["THUR15K"], tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()
