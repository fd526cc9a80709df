"""Segmentation metrics: confusion over the whole set, void handling, CAM threshold sweep."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wsss.data.cam_files import save_cams
from wsss.io import read_label_png, save_label_png
from wsss.metrics.report import format_segmentation_table, plot_per_class, plot_threshold_sweep
from wsss.metrics.segmentation import (cam_sweep_counts, evaluate_cam_dir, evaluate_label_dirs, label_confusion,
                                       scores, sweep_mious, sweep_thresholds)

VOC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voc2012"
NAMES = ("a", "b", "c")


def _write(folder: Path, name: str, labels) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_label_png(folder / f"{name}.png", np.asarray(labels, dtype=np.uint8))
    return folder / f"{name}.png"


def test_scores_of_a_hand_made_confusion():
    result = scores([[5, 1, 0], [2, 3, 1], [0, 0, 4]], NAMES)  # rows = ground truth
    # IoU = TP / (row + column - TP)
    assert result["per_class"] == pytest.approx({"a": 5 / 8, "b": 3 / 7, "c": 4 / 5})
    assert result["miou"] == pytest.approx((5 / 8 + 3 / 7 + 4 / 5) / 3)
    assert result["precision"] == pytest.approx({"a": 5 / 7, "b": 3 / 4, "c": 4 / 5})
    assert result["recall"] == pytest.approx({"a": 5 / 6, "b": 3 / 6, "c": 4 / 4})
    assert result["confusion"] == [[5, 1, 0], [2, 3, 1], [0, 0, 4]]


def test_a_class_absent_everywhere_is_left_out_of_the_mean():
    result = scores([[5, 1, 0], [2, 3, 0], [0, 0, 0]], NAMES)
    assert result["per_class"]["c"] is None and result["precision"]["c"] is None
    assert result["miou"] == pytest.approx((5 / 8 + 3 / 6) / 2)
    predicted_only = scores([[5, 1, 1], [2, 3, 0], [0, 0, 0]], NAMES)  # predicted, never in GT: IoU 0
    assert predicted_only["per_class"]["c"] == 0.0
    with pytest.raises(ValueError, match="empty"):
        scores(np.zeros((3, 3), int), NAMES)


def test_void_is_ignored_and_predicted_void_is_background():
    gt = np.zeros((6, 6), np.uint8)
    gt[1:5, 1:5] = 255
    gt[2:4, 2:4] = 3
    pred = np.full((6, 6), 3, np.uint8)
    pred[0] = 255
    confusion = label_confusion(pred, gt)
    assert confusion.sum() == 36 - 12  # the 12 void pixels are not counted
    assert confusion[0, 0] == 6 and confusion[0, 3] == 14 and confusion[3, 3] == 4
    pred[1, 1:5], pred[4, 1:5] = 7, 255  # changing predictions on void pixels changes nothing
    np.testing.assert_array_equal(label_confusion(pred, gt), confusion)


def test_whole_set_accumulation_is_not_a_mean_of_images(tmp_path):
    gt1, pred1 = np.zeros((10, 10)), np.zeros((10, 10))
    gt1[:5], pred1[:5] = 1, 1  # perfect: per-image mIoU 1
    gt2, pred2 = np.ones((2, 2)), np.zeros((2, 2))  # all wrong: per-image mIoU 0
    for name, gt, pred in (("i1", gt1, pred1), ("i2", gt2, pred2)):
        _write(tmp_path / "gt", name, gt)
        _write(tmp_path / "pred", name, pred)
    result = evaluate_label_dirs(tmp_path / "pred", tmp_path / "gt", num_classes=2)
    # background: TP 50, GT 50, predicted 54; foreground: TP 50, GT 54, predicted 50
    assert result["miou"] == pytest.approx(50 / 54)
    assert result["count"] == 2 and result["per_class"] == pytest.approx({"0": 50 / 54, "1": 50 / 54})


def test_ids_from_a_list_and_errors_name_the_files(tmp_path):
    for name in ("x", "y"):
        _write(tmp_path / "gt", name, np.zeros((4, 5)))
    _write(tmp_path / "pred", "x", np.zeros((4, 5)))
    (tmp_path / "list.txt").write_text("x\n\n")
    assert evaluate_label_dirs(tmp_path / "pred", tmp_path / "gt", tmp_path / "list.txt")["count"] == 1
    assert evaluate_label_dirs(tmp_path / "pred", tmp_path / "gt")["count"] == 1  # GT stems with a prediction

    with pytest.raises(FileNotFoundError, match=r"pred/y\.png"):
        evaluate_label_dirs(tmp_path / "pred", tmp_path / "gt", ["x", "y"])
    _write(tmp_path / "pred", "y", np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"size mismatch: .*pred/y\.png.*gt/y\.png"):
        evaluate_label_dirs(tmp_path / "pred", tmp_path / "gt", ["x", "y"])
    _write(tmp_path / "pred", "y", np.full((4, 5), 30))
    for workers in (1, 2):
        with pytest.raises(ValueError, match=r"pred/y\.png: label values \[30\] outside 0\.\.20 and 255"):
            evaluate_label_dirs(tmp_path / "pred", tmp_path / "gt", ["x", "y"] * 40, workers=workers)
    _write(tmp_path / "gt", "x", np.full((4, 5), 21))
    with pytest.raises(ValueError, match=r"gt/x\.png: label values \[21\]"):
        evaluate_label_dirs(tmp_path / "pred", tmp_path / "gt", ["x"])


def test_sweep_thresholds_follow_seam_curve():
    grid = sweep_thresholds(0.0, 0.6, 0.01)
    assert len(grid) == 60 and grid[0] == 0.0 and grid[-1] == 0.59 and grid[26] == 0.26


def _object_scene():
    """Object (class 5) on the left half; exact float16 scores around t = 0.30 only."""
    gt = np.zeros((8, 8), np.uint8)
    gt[:, :4] = 5
    cam = np.full((8, 8), 0.125, np.float32)
    cam[:, :4] = 0.5
    cam[0, :4] = 0.3046875  # weakest object pixels: need t < 0.3047
    cam[0, 4:] = 0.296875  # strongest background pixels: need t ≥ 0.2969
    return gt, cam


def test_sweep_picks_the_constructed_best_threshold(tmp_path):
    gt, cam = _object_scene()
    _write(tmp_path / "gt", "i", gt)
    save_cams(tmp_path / "cam" / "i.npz", [5], cam[None])
    result = evaluate_cam_dir(tmp_path / "cam", tmp_path / "gt", ["i"], bg_threshold=0.26)
    assert result["best_threshold"] == 0.30 and result["best_miou"] == 1.0
    by_t = {point["threshold"]: point["miou"] for point in result["sweep"]}
    assert by_t[0.29] < 1.0 and by_t[0.31] < 1.0
    assert result["bg_threshold"] == 0.26 and result["miou"] == by_t[0.26] < 1.0
    assert result["per_class"]["background"] == pytest.approx(28 / 32)
    off_grid = evaluate_cam_dir(tmp_path / "cam", tmp_path / "gt", ["i"], bg_threshold=0.3, sweep=None)
    assert off_grid["miou"] == 1.0 and "sweep" not in off_grid


def test_background_wins_ties(tmp_path):
    gt = np.zeros((4, 4), np.uint8)
    gt[:2] = 9
    cam = np.where(gt == 9, 0.5, 0.25).astype(np.float32)
    _write(tmp_path / "gt", "i", gt)
    save_cams(tmp_path / "cam" / "i.npz", [9], cam[None])
    assert evaluate_cam_dir(tmp_path / "cam", tmp_path / "gt", ["i"], 0.25, None)["miou"] == 1.0
    assert evaluate_cam_dir(tmp_path / "cam", tmp_path / "gt", ["i"], 0.24, None)["miou"] < 1.0


def test_an_image_without_classes_is_all_background(tmp_path):
    gt = np.zeros((3, 4), np.uint8)
    gt[0] = 7
    _write(tmp_path / "gt", "i", gt)
    save_cams(tmp_path / "cam" / "i.npz", [], np.zeros((0, 3, 4)))
    result = evaluate_cam_dir(tmp_path / "cam", tmp_path / "gt", ["i"], bg_threshold=0.0)
    confusion = np.array(result["confusion"])
    assert confusion[0, 0] == 8 and confusion[7, 0] == 4 and confusion.sum() == 12
    assert all(point["miou"] == result["miou"] for point in result["sweep"])


def _random_cam_scenes(tmp_path, count=4):
    """GT PNGs with void, CAMs quantised to 1/64 (ties with 0.25/0.5 and between classes)."""
    rng = np.random.default_rng(0)
    scenes = []
    for i in range(count):
        h, w = 12 + i, 17
        keys = np.sort(rng.choice(np.arange(1, 21), size=1 + i % 3, replace=False))
        cams = (rng.integers(0, 49, size=(len(keys), h, w)) / 64).astype(np.float32)
        gt = rng.choice(np.concatenate([[0, 255], keys]), size=(h, w)).astype(np.uint8)
        _write(tmp_path / "gt", f"im{i}", gt)
        save_cams(tmp_path / "npz" / f"im{i}.npz", keys, cams)
        (tmp_path / "psa").mkdir(exist_ok=True)
        np.save(tmp_path / "psa" / f"im{i}.npy", {int(k) - 1: c for k, c in zip(keys, cams)})
        (tmp_path / "irn").mkdir(exist_ok=True)
        np.save(tmp_path / "irn" / f"im{i}.npy", {"keys": keys - 1, "high_res": cams})
        scenes.append((gt, keys, cams))
    return scenes


def test_one_pass_sweep_equals_seam_argmax_per_threshold(tmp_path):
    scenes = _random_cam_scenes(tmp_path)
    result = evaluate_cam_dir(tmp_path / "npz", tmp_path / "gt", bg_threshold=0.25)
    for point in result["sweep"]:
        confusion = np.zeros((21, 21), np.int64)
        for gt, keys, cams in scenes:  # YudeWang/SEAM@3212261:evaluation.py:25-33: 21 channels, bg = t, argmax
            tensor = np.zeros((21, *gt.shape), np.float32)
            tensor[keys] = cams
            tensor[0] = point["threshold"]
            pred = tensor.argmax(axis=0)
            valid = gt < 255
            np.add.at(confusion, (gt[valid], pred[valid]), 1)
        assert point["miou"] == pytest.approx(scores(confusion)["miou"], abs=1e-12)
        if point["threshold"] == 0.25:
            assert result["confusion"] == confusion.tolist()


def test_own_psa_and_irn_cam_files_give_the_same_scores(tmp_path):
    _random_cam_scenes(tmp_path)
    results = [evaluate_cam_dir(tmp_path / folder, tmp_path / "gt", workers=workers)
               for folder, workers in (("npz", 1), ("psa", 1), ("irn", 2))]
    assert results[0] == results[1] == results[2]


def test_cam_size_must_match_ground_truth(tmp_path):
    _write(tmp_path / "gt", "i", np.zeros((4, 6)))
    save_cams(tmp_path / "cam" / "i.npz", [1], np.zeros((1, 6, 4)))
    with pytest.raises(ValueError, match=r"size mismatch: CAM .*cam/i\.npz.*gt/i\.png"):
        evaluate_cam_dir(tmp_path / "cam", tmp_path / "gt", ["i"])


@pytest.mark.skipif(not (VOC / "SegmentationClassAug").is_dir(), reason=f"real VOC masks not found at {VOC}")
def test_real_voc_masks_match_a_seam_style_reference(tmp_path):
    ids = (VOC / "ImageSets/Segmentation/train.txt").read_text().split()[:40]
    rng = np.random.default_rng(1)
    tp, p, t = np.zeros(21), np.zeros(21), np.zeros(21)
    for image_id in ids:
        gt = read_label_png(VOC / "SegmentationClassAug" / f"{image_id}.png")
        pred = np.roll(np.where(gt == 255, 0, gt), tuple(rng.integers(-10, 11, size=2)), axis=(0, 1))
        pred[pred == pred.max()] = rng.integers(0, 21)  # sometimes a class swap
        _write(tmp_path / "pred", image_id, pred)
        cal = gt < 255
        for c in range(21):  # YudeWang/SEAM@3212261:evaluation.py:40-49: TP, P and T per class over the whole list
            tp[c] += np.sum((pred == c) & (gt == c) & cal)
            p[c] += np.sum((pred == c) & cal)
            t[c] += np.sum((gt == c) & cal)
    present = t + p > 0
    reference = tp[present] / (t + p - tp)[present]
    for workers in (1, 2):
        result = evaluate_label_dirs(tmp_path / "pred", VOC / "SegmentationClassAug", ids, workers=workers)
        assert result["miou"] == pytest.approx(reference.mean(), abs=1e-12)
        ours = np.array([v for v in result["per_class"].values() if v is not None])
        np.testing.assert_allclose(ours, reference, atol=1e-12)


def test_segmentation_import_stays_light():
    """The evaluation process is PNG-decode bound: no torch, mlflow or matplotlib at import."""
    code = ("import sys, wsss.metrics.segmentation, wsss.metrics.report; "
            "print(sorted({'torch', 'mlflow', 'matplotlib', 'pandas'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_report_table_and_plots(tmp_path):
    gt, cam = _object_scene()
    _write(tmp_path / "gt", "i", gt)
    save_cams(tmp_path / "cam" / "i.npz", [5], cam[None])
    result = evaluate_cam_dir(tmp_path / "cam", tmp_path / "gt", ["i"], bg_threshold=0.26)
    table = format_segmentation_table(result)
    assert "mIoU at bg threshold 0.26: " in table and "best bg threshold 0.30: mIoU 100.00 %" in table
    assert "background       87.50" in table and "cow" in table and "n/a" in table
    plot_per_class(result, tmp_path / "plots" / "per_class.png")
    plot_threshold_sweep(result, tmp_path / "plots" / "sweep.png")
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["per_class.png", "sweep.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in (tmp_path / "plots").iterdir())


def test_in_memory_sweep_counts_give_the_miou_of_each_threshold():
    """GT [bg, bg, 1, 1], CAM of class 1 [0.1, 0.3, 0.5, 0.2]: every pixel is class 1 at t 0 (mIoU (0 + 1/2) / 2),
    [bg, 1, 1, bg] at 0.25 ((1/3 + 1/3) / 2), [bg, bg, 1, bg] at 0.4 ((2/3 + 1/2) / 2)."""
    gt = np.array([[0, 0, 1, 1]], np.uint8)
    cams = np.array([[[0.1, 0.3, 0.5, 0.2]]], np.float32)
    counts = cam_sweep_counts(np.array([1]), cams, gt, np.array([0.0, 0.25, 0.4], np.float32))
    np.testing.assert_allclose(sweep_mious(counts), [0.25, 1 / 3, 7 / 12])
    np.testing.assert_allclose(sweep_mious(counts + counts), sweep_mious(counts))  # summed over images
