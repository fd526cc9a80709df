"""SOD metrics: pysodmetrics equality on real maps and LDF's E_ξ (weijun88/LDF@d49ff02:eval/Emeasure.m)."""

import warnings
from pathlib import Path

import cv2
import numpy as np
import py_sod_metrics as psm
import pytest
from PIL import Image

from wsss.metrics.report import format_saliency_table, plot_pr_curves
from wsss.metrics.saliency import evaluate_saliency_dirs

SOD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sod-eval"
METHODS = ("Amulet", "DSS", "PiCANet")


def _save(folder: Path, name: str, array) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(folder / f"{name}.png")


def _disk(radius: int, size: int = 128) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    return ((y - size / 2) ** 2 + (x - size / 2) ** 2 <= radius ** 2).astype(np.uint8) * 255


def _ldf_emeasure_paraphrase(pred_u8: np.ndarray, gt_u8: np.ndarray) -> float:
    """LDF eval/main.m skip rule + Emeasure.m (uncapped 2·mean, strict >): weijun88/LDF@d49ff02:eval/main.m:75,
    eval/Emeasure.m:21-26."""
    gt = gt_u8 > 128
    if pred_u8.max() == 0 or not gt.any():
        return 0.0
    fm = pred_u8.astype(np.float64)
    fm = (fm - fm.min()) / (fm.max() - fm.min())  # mat2gray
    fm = (fm > 2 * fm.mean()).astype(np.float64)
    if gt.all():
        enhanced = fm
    else:
        dfm, dgt = fm - fm.mean(), gt - gt.mean()
        align = 2 * dgt * dfm / (dgt ** 2 + dfm ** 2 + np.spacing(1))
        enhanced = (align + 1) ** 2 / 4
    return enhanced.sum() / (gt.size - 1 + np.spacing(1))


@pytest.fixture(scope="module")
def sod_subset(tmp_path_factory):
    if not (SOD / "masks").is_dir():
        pytest.skip(f"real SOD maps not found at {SOD}")
    gt_dir = tmp_path_factory.mktemp("masks")
    for mask in sorted((SOD / "masks").glob("*.png"))[:15]:
        (gt_dir / mask.name).symlink_to(mask)
    return gt_dir


@pytest.mark.parametrize("method", METHODS)
def test_equals_direct_pysodmetrics_calls_on_real_maps(sod_subset, method):
    result = evaluate_saliency_dirs(SOD / "pred" / method, sod_subset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Fmeasure's deprecation notice
        fm, em, mae, sm, wfm = psm.Fmeasure(), psm.Emeasure(), psm.MAE(), psm.Smeasure(), psm.WeightedFmeasure()
    ldf = []
    for mask in sorted(sod_subset.iterdir()):
        pred = cv2.imread(str(SOD / "pred" / method / mask.name), cv2.IMREAD_GRAYSCALE)
        gt = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
        for metric in (fm, em, mae, sm, wfm):
            metric.step(pred=pred, gt=gt)
        ldf.append(_ldf_emeasure_paraphrase(pred, gt))
    f, pr, e = fm.get_results()["fm"], fm.get_results()["pr"], em.get_results()["em"]
    expected = {
        "mae": mae.get_results()["mae"], "adp_f": f["adp"], "mean_f": f["curve"].mean(), "max_f": f["curve"].max(),
        "adp_e": e["adp"], "mean_e": e["curve"].mean(), "max_e": e["curve"].max(),
        "s_measure": sm.get_results()["sm"], "wf": wfm.get_results()["wfm"], "ldf_e": np.mean(ldf),
    }
    assert result["count"] == 15
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-6), key
    curves = result["curves"]  # ascending thresholds; pysodmetrics lists 255 → 0
    np.testing.assert_allclose(curves["precision"], pr["p"][::-1], atol=1e-6)
    np.testing.assert_allclose(curves["recall"], pr["r"][::-1], atol=1e-6)
    np.testing.assert_allclose(curves["f_measure"], f["curve"][::-1], atol=1e-6)


def test_ldf_e_of_a_large_salient_object_is_a_quarter(tmp_path):
    """When 2·mean(pred) > 1, LDF's binary map is empty and E_ξ ≈ 0.25."""
    disk = _disk(52)
    assert 2 * disk.mean() / 255 > 1
    _save(tmp_path / "gt", "d", disk)
    _save(tmp_path / "pred", "d", disk)  # a perfect map
    result = evaluate_saliency_dirs(tmp_path / "pred", tmp_path / "gt")
    assert result["ldf_e"] == pytest.approx(0.25, abs=1e-4)
    assert result["adp_e"] == pytest.approx(1.0, abs=1e-4)  # pysodmetrics caps the threshold at 1


def test_ldf_e_is_strict_at_a_threshold_of_exactly_one(tmp_path):
    half = np.zeros((64, 64), np.uint8)
    half[:, :32] = 255  # 2·mean = 1 exactly: pysodmetrics keeps pred ≥ 1, LDF pred > 1 is empty
    _save(tmp_path / "gt", "h", half)
    _save(tmp_path / "pred", "h", half)
    result = evaluate_saliency_dirs(tmp_path / "pred", tmp_path / "gt")
    n = half.size  # E sums the enhanced matrix over the pixels and divides by n - 1
    assert result["adp_e"] == pytest.approx(n / (n - 1), abs=1e-12)
    assert result["ldf_e"] == pytest.approx(0.25 * n / (n - 1), abs=1e-12)


def test_ldf_e_equals_adaptive_e_below_the_cap(tmp_path):
    rng = np.random.default_rng(0)
    for radius in (8, 20, 35):
        gt = _disk(radius)
        pred = np.clip(gt * 0.7 + rng.normal(0, 25, gt.shape) + 40, 0, 255).astype(np.uint8)
        norm = (pred - pred.min()) / (pred.max() - pred.min())
        assert 2 * norm.mean() <= 1 and not (norm == 2 * norm.mean()).any()  # > and ≥ agree
        _save(tmp_path / "gt", f"r{radius}", gt)
        _save(tmp_path / "pred", f"r{radius}", pred)
    result = evaluate_saliency_dirs(tmp_path / "pred", tmp_path / "gt")
    assert result["ldf_e"] == pytest.approx(result["adp_e"], abs=1e-12)


def test_ldf_skip_rule_only_in_the_ldf_column(tmp_path):
    gt = _disk(20)
    pred = np.clip(gt * 0.8 + 20, 0, 255).astype(np.uint8)
    _save(tmp_path / "gt", "a", gt)
    _save(tmp_path / "pred", "a", pred)
    single = evaluate_saliency_dirs(tmp_path / "pred", tmp_path / "gt")
    _save(tmp_path / "gt", "b", gt)
    _save(tmp_path / "pred", "b", np.zeros_like(gt))  # blank map: LDF scores it 0 but counts it
    both = evaluate_saliency_dirs(tmp_path / "pred", tmp_path / "gt")
    assert both["count"] == 2
    assert both["ldf_e"] == pytest.approx(single["ldf_e"] / 2, abs=1e-12)
    assert both["adp_e"] > single["adp_e"] / 2  # pysodmetrics scores the blank map normally


def test_workers_give_the_same_result(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(20):  # more than one chunk of 16
        gt = _disk(int(rng.integers(5, 40)), size=48)
        _save(tmp_path / "gt", f"i{i:02d}", gt)
        _save(tmp_path / "pred", f"i{i:02d}", np.clip(gt * 0.6 + rng.normal(0, 30, gt.shape) + 50, 0, 255))
    one = evaluate_saliency_dirs(tmp_path / "pred", tmp_path / "gt", workers=1)
    two = evaluate_saliency_dirs(tmp_path / "pred", tmp_path / "gt", workers=2)
    for key in one:
        if key != "curves":
            assert two[key] == pytest.approx(one[key], abs=1e-12), key
    np.testing.assert_allclose(two["curves"]["f_measure"], one["curves"]["f_measure"], atol=1e-12)


def test_errors_name_the_files(tmp_path):
    _save(tmp_path / "gt", "a", _disk(10, 32))
    with pytest.raises(FileNotFoundError, match=r"folder .*pred does not exist"):
        evaluate_saliency_dirs(tmp_path / "pred", tmp_path / "gt")
    (tmp_path / "pred").mkdir()
    with pytest.raises(FileNotFoundError, match=r"missing prediction .*pred/a\.png"):
        evaluate_saliency_dirs(tmp_path / "pred", tmp_path / "gt")
    _save(tmp_path / "pred", "a", np.zeros((32, 40)))
    with pytest.raises(ValueError, match=r"size mismatch: prediction .*pred/a\.png.*mask .*gt/a\.png"):
        evaluate_saliency_dirs(tmp_path / "pred", tmp_path / "gt")
    (tmp_path / "pred" / "a.png").write_bytes(b"broken")
    with pytest.raises(ValueError, match=r"pred/a\.png: cannot read"):
        evaluate_saliency_dirs(tmp_path / "pred", tmp_path / "gt")


def test_report_table_and_pr_plot(tmp_path):
    _save(tmp_path / "gt", "a", _disk(20))
    _save(tmp_path / "pred", "a", np.clip(_disk(22) * 0.9 + 10, 0, 255))
    result = evaluate_saliency_dirs(tmp_path / "pred", tmp_path / "gt")
    table = format_saliency_table({"ECSSD": result})
    header, row = table.splitlines()
    assert header.split()[:5] == ["dataset", "images", "MAE", "adpF(mF)", "E_xi(LDF)"]
    assert row.split()[:3] == ["ECSSD", "1", f"{result['mae']:.4f}"]
    plot_pr_curves({"ECSSD": result["curves"]}, tmp_path / "pr.png")
    assert (tmp_path / "pr.png").read_bytes()[:4] == b"\x89PNG"
