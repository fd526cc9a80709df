"""SOD folder readers: every folder naming style, LDF's lists, errors that name files, 1-bit masks, and the
real SOD benchmark (BSDS300) as a training and a test set at once."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED_DATA, write_image
from wsss.cli import main
from wsss.data import sod
from wsss.errors import DatasetError
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


def _empty_mask(root):
    write_sod(root, "ECSSD", ["1", "2"])
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(root / "ECSSD" / "masks" / "2.png")
    return root, "ECSSD", "masks/2.png: mask is empty", "all 0"


def _unreadable_image(root):
    write_sod(root, "ECSSD", ["1"])
    (root / "ECSSD" / "images" / "1.jpg").write_bytes(b"junk")
    return root, "ECSSD", "images/1.jpg: unreadable image", "1.jpg"


@pytest.mark.parametrize("make", [_missing_folder, _no_mask_folder, _image_without_mask, _mask_without_image,
                                  _listed_without_mask, _size_mismatch, _empty_set, _empty_list, _empty_mask,
                                  _unreadable_image])
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
    assert {role: {n: s["count"] for n, s in sets.items()} for role, sets in summary["sets"].items()} == {
        "train": {"DUTS-TR": 3}, "test": {"ECSSD": 2}}
    assert (out / "test" / "ECSSD.txt").read_text().splitlines()[0] == "ECSSD/images/0001.png\tECSSD/masks/0001.png"
    assert sod.read_sod_list(out / "train" / "DUTS-TR.txt", root) == sod.list_sod_pairs(root, "DUTS-TR")
    assert sod.prepared_pairs(out, "ECSSD", "test") == sod.list_sod_pairs(root, "ECSSD")
    with pytest.raises(ValueError, match=r"train/ECSSD.txt: no such prepared SOD set \(is ECSSD in sod.train_sets"):
        sod.prepared_pairs(out, "ECSSD", "train")
    again = sod.prepare_sod(root, ["DUTS-TR"], ["ECSSD"], tmp_path / "again", progress=False)
    assert again["content_hash"] == summary["content_hash"]

    with pytest.raises(ValueError, match="THUR15K: SOD dataset folder missing.*mmcheng.net"):
        sod.prepare_sod(root, ["DUTS-TR"], ["THUR15K"], tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


# --- SOD (BSDS300 photos, Movahedi & Elder masks): one folder, a training and a test set ---

def write_bsds_sod(root, train=("1", "2", "3"), test=("4", "5")):
    write_sod(root, "SOD", [*train, *test])
    (root / "SOD" / "train.txt").write_text("".join(f"{n}\n" for n in train))
    (root / "SOD" / "test.txt").write_text("".join(f"{n}\n" for n in test))
    return root


def test_sod_is_a_training_and_a_test_set_at_once(tmp_path):
    root = write_bsds_sod(tmp_path / "raw")
    out = tmp_path / "prepared"
    summary = sod.prepare_sod(root, ["SOD"], ["SOD"], out, progress=False)
    assert {role: sets["SOD"]["count"] for role, sets in summary["sets"].items()} == {"train": 3, "test": 2}
    assert [n for n, _, _ in sod.prepared_pairs(out, "SOD", "train")] == ["1", "2", "3"]
    assert [n for n, _, _ in sod.prepared_pairs(out, "SOD", "test")] == ["4", "5"]
    assert (out / "test" / "SOD.txt").read_text() == "SOD/images/4.jpg\tSOD/masks/4.png\nSOD/images/5.jpg\tSOD/masks/5.png\n"
    again = sod.prepare_sod(root, ["SOD"], ["SOD"], tmp_path / "again", progress=False)
    assert again["content_hash"] == summary["content_hash"]
    only_train = sod.prepare_sod(root, ["SOD"], [], tmp_path / "train_only", progress=False)
    assert only_train["content_hash"] != summary["content_hash"] and not (tmp_path / "train_only" / "test").exists()


def test_the_missing_sod_folder_says_what_to_get_and_where_to_put_it(tmp_path):
    with pytest.raises(DatasetError) as info:
        sod.prepare_sod(tmp_path, ["SOD"], ["SOD"], tmp_path / "out", progress=False)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'SOD'}: SOD dataset folder missing")
    for part in ("BSDS300-images.tgz", "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/",
                 "iids_train.txt", "iids_test.txt", "SOD benchmark of Movahedi & Elder",
                 "https://elderlab.yorku.ca/resources/salient-objects-dataset-sod/", f"Put SOD in {tmp_path / 'SOD'}/",
                 "'images'", "'masks'", "train.txt and test.txt", "orientation", "DUTS-TR and DUTS-TE only"):
        assert part in message, part
    assert not (tmp_path / "out").exists()


def _sod_size_mismatch(root):
    write_mask(root / "SOD" / "masks" / "2.png", size=(12, 16))  # a portrait mask of a landscape photo
    return "masks/2.png: mask is 12x16 but its image", "images/2.jpg is 16x12"


def _sod_empty_mask(root):
    Image.fromarray(np.zeros((12, 16), np.uint8)).convert("1").save(root / "SOD" / "masks" / "5.png")
    return "masks/5.png: mask is empty", "SOD dataset SOD"


def _sod_missing_image(root):
    (root / "SOD" / "images" / "4.jpg").unlink()
    return "images/4.*: image of 4 missing", "masks/4.png"


def _sod_unreadable_mask(root):
    (root / "SOD" / "masks" / "1.png").write_bytes(b"\x89PNG not really")
    return "masks/1.png: cannot read image", "SOD dataset SOD"


def _sod_listed_without_mask(root):
    (root / "SOD" / "test.txt").write_text("4\n5\n6\n")
    return "masks/6.png: mask of 6 (listed in", "SOD/test.txt"


def _sod_without_train_list(root):
    (root / "SOD" / "train.txt").unlink()
    return "SOD/train.txt: list missing", "Put SOD in"


@pytest.mark.parametrize("make", [_sod_size_mismatch, _sod_empty_mask, _sod_missing_image, _sod_unreadable_mask,
                                  _sod_listed_without_mask, _sod_without_train_list])
def test_bad_sod_input_names_the_file(tmp_path, make):
    root = write_bsds_sod(tmp_path / "raw")
    first, second = make(root)
    with pytest.raises(DatasetError) as info:
        sod.prepare_sod(root, ["SOD"], ["SOD"], tmp_path / "out", progress=False)
    assert first in str(info.value) and second in str(info.value)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def real_sod(tmp_path_factory):
    """The shared SOD benchmark through a symlink ``<root>/SOD``, prepared as a training and a test set."""
    shared = SHARED_DATA / "sod-bsds300"
    if not shared.is_dir():
        pytest.skip(f"real SOD benchmark not found at {shared} (only present next to the project's shared folder)")
    root = tmp_path_factory.mktemp("raw")
    (root / "SOD").symlink_to(shared)
    out = root.parent / f"{root.name}-prepared"
    summary = sod.prepare_sod(root, ["SOD"], ["SOD"], out, workers=2, progress=False)
    return shared, root, out, summary


def test_the_real_sod_benchmark_trains_on_200_and_tests_on_100(real_sod):
    shared, root, out, summary = real_sod
    train, test = ((shared / f"{role}.txt").read_text().split() for role in ("train", "test"))
    assert (len(train), len(test)) == (200, 100) and not set(train) & set(test)
    assert {role: sets["SOD"]["count"] for role, sets in summary["sets"].items()} == {"train": 200, "test": 100}
    for role, ids in (("train", train), ("test", test)):
        pairs = sod.prepared_pairs(out, "SOD", role)
        assert [n for n, _, _ in pairs] == ids
        assert all(image == root / "SOD" / "images" / f"{n}.jpg" and mask == root / "SOD" / "masks" / f"{n}.png"
                   for n, image, mask in pairs)
    assert (out / "train" / "SOD.txt").read_text().splitlines()[0] == f"SOD/images/{train[0]}.jpg\tSOD/masks/{train[0]}.png"


def test_evaluating_a_sod_folder_scores_the_names_of_its_test_list(tmp_path, capsys):
    root = write_bsds_sod(tmp_path / "raw")
    pred = tmp_path / "pred"
    for n in ("4", "5"):  # maps of the test images only
        write_mask(pred / f"{n}.png")
    scores = tmp_path / "SOD.json"
    assert main(["evaluate", "saliency", "--pred", str(pred), "--gt", str(root / "SOD"), "--out", str(scores),
                 "--no-track"]) == 0
    result = json.loads(scores.read_text())["SOD"]
    assert result["count"] == 2 and result["mae"] == 0.0
    (root / "SOD" / "test.txt").write_text("4\n5\n1\n")
    assert main(["evaluate", "saliency", "--pred", str(pred), "--gt", str(root / "SOD"), "--out", str(scores),
                 "--no-track"]) == 2
    assert f"missing prediction {pred / '1'}.png" in capsys.readouterr().err  # listed, but no map
