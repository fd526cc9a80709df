"""LDF: label decoupling, the network, loss and schedule (weijun88/LDF@d49ff02:utils.py, train-fine/net.py,
train-fine/train.py),
and the stages end to end."""

import json

import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from wsss.cli import main
from wsss.config import load_config
from wsss.data.decouple import decouple, decouple_dir, edge_map
from wsss.data.ldf import LDFTrainSet, MultiScaleCollate
from wsss.engine import TrainSettings, build_optimizer, set_lr
from wsss.errors import ConfigError, DatasetError
from wsss.infer.saliency import predict_dir
from wsss.losses import iou_loss, ldf_loss
from wsss.nets.ldf import build_ldf, parameter_count
from wsss.runtime import Runtime
from wsss.stages.train_ldf import engine_settings

from conftest import ROOT, run


pytestmark = pytest.mark.usefixtures("one_thread")


def disk(radius=20, size=64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= radius ** 2).astype(np.uint8) * 255


def test_body_and_detail_of_a_disk_have_the_reference_profile():
    mask = disk()
    maps = decouple(mask)
    row_body, row_detail = maps.body[32, 8:20], maps.detail[32, 8:20]  # the edge is between columns 11 and 12
    assert maps.body.max() == 255 and maps.body[32, 32] == 255  # peak 255 at the centre
    assert list(row_body[:7]) == [0, 0, 53, 75, 92, 107, 119]  # ld_probe: the code's body leaks 2 px outside
    assert list(row_detail[:4]) == [0, 0, 0, 0]  # negatives clipped outside
    assert maps.detail.max() == row_detail[4] == 163  # largest on the first pixel inside the edge
    assert np.all(np.diff(maps.detail[32, 12:33].astype(int)) <= 0) and maps.detail[32, 32] == 0
    inside = mask > 0
    assert np.array_equal(maps.detail[inside], 255 - maps.body[inside])


def test_paper_variant_is_zero_outside_the_mask():
    mask = disk()
    maps, code = decouple(mask, "paper"), decouple(mask)
    outside = mask == 0
    assert not maps.body[outside].any() and not maps.detail[outside].any()
    assert code.body[outside].any()
    assert np.array_equal(maps.body[~outside], code.body[~outside]) and maps.body[32, 32] == 255


def test_empty_full_and_tiny_masks():
    for variant in ("code", "paper"):
        empty = decouple(np.zeros((20, 30), np.uint8), variant)
        assert not empty.body.any() and not empty.detail.any()
        full = decouple(np.full((20, 30), 255, np.uint8), variant)
        assert (full.body == 255).all() and not full.detail.any()
    tiny = np.zeros((20, 20), np.uint8)
    tiny[9:11, 9:11] = 255
    assert decouple(tiny).body.max() == 255 and not decouple(tiny).detail.any()  # the official code: no detail left


def test_exact_edt_stays_within_three_grey_levels():
    mask = disk(25, 80)
    chamfer, exact = decouple(mask).body.astype(int), decouple(mask, exact_edt=True).body.astype(int)
    assert 0 < np.abs(chamfer - exact).max() <= 3


def test_edge_is_a_band_around_the_contour():
    mask = disk()
    edge = edge_map(mask)
    assert set(np.unique(edge)) == {0, 255}
    assert edge[32, 11] == edge[32, 12] == 255 and edge[32, 32] == 0 and edge[32, 5] == 0


def test_decouple_dir_parallel_equals_serial_and_names_bad_files(tmp_path):
    masks = []
    for k in range(5):
        path = tmp_path / "masks" / f"m{k}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(disk(8 + 3 * k)).save(path)
        masks.append((path.stem, path))
    serial = decouple_dir(masks, tmp_path / "serial", workers=1, progress=False)
    decouple_dir(masks, tmp_path / "parallel", workers=2, progress=False)
    assert serial["images"] == 5
    for kind in ("body", "detail"):
        for name, _ in masks:
            a = cv2.imread(str(tmp_path / "serial" / kind / f"{name}.png"), 0)
            assert np.array_equal(a, cv2.imread(str(tmp_path / "parallel" / kind / f"{name}.png"), 0))
    (tmp_path / "masks" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="bad.png"):
        decouple_dir(masks + [("bad", tmp_path / "masks" / "bad.png")], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # nothing half-written under the final name


def test_network_outputs_and_parameter_count():
    net = build_ldf("small", width=8)
    outputs = net(torch.randn(2, 3, 96, 64))
    assert len(outputs) == 6 and all(o.shape == (2, 1, 96, 64) for o in outputs)
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64), (50, 70)).shape == (1, 1, 50, 70)
        assert net.outputs(torch.randn(1, 3, 64, 64)).body2.shape == (1, 1, 64, 64)
    counts = parameter_count(build_ldf("resnet50"))
    assert counts == {"backbone": 23_508_032, "head": 1_642_115, "total": 25_150_147}  # 25.15 M


def test_optimizer_and_triangular_schedule_follow_train_py():
    net = build_ldf("small", width=8)
    cfg = load_config(ROOT / "params.yaml", ["profile=paper", "ldf.backbone=small", "ldf.weights="])
    settings = TrainSettings(batch=2, lr=cfg.ldf.lr, **engine_settings(cfg.ldf))
    optimizer = build_optimizer(net, settings)
    assert all(g["nesterov"] for g in optimizer.param_groups)
    assert [g["weight_decay"] for g in optimizer.param_groups if g["params"]] == [5e-4, 5e-4]  # every parameter
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(net.parameters()))
    factors = []
    for epoch in range(48):
        set_lr(optimizer, settings, 0, 1, epoch)
        backbone, head = optimizer.param_groups[0]["lr"], optimizer.param_groups[2]["lr"]
        assert backbone == pytest.approx(0.1 * head)
        factors.append(head / 0.05)
    assert (round(factors[0], 3), round(max(factors), 3), round(factors[-1], 3)) == (0.041, 0.98, 0.041)
    assert engine_settings(cfg.ldf, fine=True)["epochs"] == 40


def test_loss_has_six_terms_and_soft_iou():
    target = (torch.rand(2, 1, 32, 32) > 0.5).float()
    assert iou_loss(torch.where(target > 0, 20.0, -20.0), target) < 1e-3
    assert iou_loss(torch.where(target > 0, -20.0, 20.0), target) > 0.99
    net = build_ldf("small", width=8)
    batch = {"image": torch.randn(2, 3, 32, 32), "mask": target, "body": target * 0.5, "detail": target * 0.2}
    losses = ldf_loss(net, batch)
    terms = [losses[f"{kind}{k}"] for k in (1, 2) for kind in ("body", "detail", "saliency")]
    assert losses["loss"].item() == pytest.approx((sum(terms) / 2).item())
    losses["loss"].backward()


def test_config_rejects_sizes_off_the_output_stride():
    with pytest.raises(ConfigError, match="multiples of 32"):
        load_config(ROOT / "params.yaml", ["ldf.train_sizes=[100]"])
    with pytest.raises(ConfigError, match="supervision"):
        load_config(ROOT / "params.yaml", ["ldf.supervision=mask_edge"])


def test_flip_averaged_maps_are_mirror_equivariant(tmp_path):
    torch.manual_seed(0)
    net = build_ldf("small", width=8).eval()
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    for name, pixels in (("image", image), ("mirror", image[:, ::-1])):
        cv2.imwrite(str(tmp_path / f"{name}.png"), pixels[..., ::-1])
    pairs = [(name, tmp_path / f"{name}.png", None) for name in ("image", "mirror")]
    fp32 = Runtime(torch.device("cpu"), "fp32")
    for flip in (False, True):
        predict_dir(net, pairs, tmp_path / str(flip), 64, fp32, progress=False, flip=flip)
    read = {(flip, name): cv2.imread(str(tmp_path / str(flip) / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
            for flip in (False, True) for name in ("image", "mirror")}
    assert np.abs(read[True, "mirror"][:, ::-1].astype(int) - read[True, "image"]).max() <= 1
    assert np.abs(read[False, "mirror"][:, ::-1].astype(int) - read[False, "image"]).max() > 1  # the net alone is not


@pytest.fixture(scope="module")
def sod_project(tmp_path_factory):
    """A tiny synthetic SOD benchmark, prepared and decoupled (no tracking)."""
    root = tmp_path_factory.mktemp("ldf")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["tracking"]["enabled"] = False
    params["runtime"]["workers"] = 0  # loader processes cost seconds per epoch on a busy machine
    params["synth_sod"].update(train=8, test=3, size=64)
    params["profiles"]["smoke"]["ldf"].update(batch=4, epochs=1, fine_epochs=1, width=8, train_sizes=[32, 64], test_size=64)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    args = ["--params", str(root / "params.yaml")]
    assert main(["data", "synth-sod", "--out", str(root / "data/synth/sod"), "--workers", "1", *args]) == 0
    assert main(["data", "prepare-sod", "--out", str(root / "prepared"), "--workers", "1", *args,
                 "--set", f"sod.root={root / 'data/synth/sod'}"]) == 0
    assert main(["decouple", "--sod", str(root / "prepared"), "--out", str(root / "decoupled"), "--workers", "2",
                 *args]) == 0
    return root, args


def test_training_set_targets_and_multiscale_batches(sod_project):
    root, _ = sod_project
    body_detail = LDFTrainSet(root / "prepared", ["DUTS-TR"], root / "decoupled")
    saliency_edge = LDFTrainSet(root / "prepared", ["DUTS-TR"], root / "decoupled", "saliency_edge")
    torch.manual_seed(0)
    a = body_detail[0]
    torch.manual_seed(0)
    b = saliency_edge[0]
    assert np.array_equal(a["mask"], b["mask"]) and np.array_equal(b["body"], b["mask"])
    assert set(np.unique(b["detail"])) <= {0.0, 1.0} and 0 < a["body"].max() <= 1
    collate = MultiScaleCollate([32, 64])
    batch = collate([dict(a, draw=0.9), dict(b, draw=0.1)])
    assert batch["image"].shape == (2, 3, 64, 64) and batch["detail"].shape == (2, 1, 64, 64)
    assert collate([dict(a, draw=0.1)])["mask"].shape == (1, 1, 32, 32)
    wrong = root / "decoupled" / "DUTS-TR" / "body" / f"{body_detail.samples[0][0]}.png"
    original = wrong.read_bytes()
    try:
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(wrong)
        with pytest.raises(DatasetError, match=wrong.name):
            body_detail[0]
    finally:
        wrong.write_bytes(original)


def test_train_infer_evaluate_end_to_end(sod_project, tmp_path):
    root, args = sod_project
    model = tmp_path / "models/ldf/model.pt"
    assert main(["train-ldf", "--sod", str(root / "prepared"), "--labels", str(root / "decoupled"),
                 "--out", str(model), *args]) == 0
    assert model.is_file() and not (model.parent / "checkpoint.pt").exists()
    maps = tmp_path / "saliency/ECSSD"
    assert main(["infer-ldf", "--sod", str(root / "prepared"), "--model", str(model), "--split", "ECSSD",
                 "--out", str(maps), *args]) == 0
    masks = sorted((root / "data/synth/sod/ECSSD/masks").glob("*.png"))
    assert len(list(maps.glob("*.png"))) == len(masks) == 3
    for mask in masks:
        assert Image.open(maps / mask.name).size == Image.open(mask).size and Image.open(maps / mask.name).mode == "L"
    coarse = tmp_path / "coarse_maps"
    assert main(["infer-ldf", "--sod", str(root / "prepared"), "--model", str(model), "--maps", "decoupled",
                 "--out", str(coarse), *args]) == 0
    assert len(list((coarse / "DUTS-TR" / "detail").glob("*.png"))) == 8
    assert main(["train-ldf", "--fine", "--sod", str(root / "prepared"), "--labels", str(coarse),
                 "--out", str(tmp_path / "fine/model.pt"), *args]) == 0
    scores = tmp_path / "ECSSD.json"
    assert main(["evaluate", "saliency", "--pred", str(maps), "--gt", str(root / "data/synth/sod/ECSSD"),
                 "--out", str(scores), "--no-track", *args]) == 0
    summary = tmp_path / "sod_metrics.json"
    assert main(["summarize-sod", "--out", str(summary), str(scores), *args]) == 0
    result = json.loads(summary.read_text())
    assert set(result) == {"ECSSD"} and 0 <= result["ECSSD"]["mae"] <= 1 and result["ECSSD"]["count"] == 3
    ablation = tmp_path / "ablation.json"
    assert main(["summarize-sod", "--ablation", "--out", str(ablation), f"body_detail@0={scores}",
                 f"body_detail@1={scores}", f"saliency_edge={scores}", *args]) == 0
    rows = json.loads(ablation.read_text())
    assert set(rows["rows"]) == {"body_detail", "saliency_edge"}
    assert set(rows["rows"]["body_detail"]["seeds"]) == {"0", "1"} and set(rows["rows"]["saliency_edge"]["seeds"]) == {"0"}
    assert rows["rows"]["body_detail"]["spread"]["ECSSD"]["mae"] == 0
    assert rows["body_detail_beats_saliency_edge"] == {"ECSSD": {"mae": False, "adp_f": False}}
    assert "| body + detail (LDF) |" in ablation.with_suffix(".md").read_text()


@pytest.mark.slow
def test_snakemake_builds_the_sod_chain_and_plans_the_two_stage_scheme(project):  # noqa: F811
    """The SOD chain through Snakemake (the ablation is built with `rule all` in test_dag.py)."""
    run(["snakemake", "--cores", "2", "results/sod_metrics.json"], project)
    assert set(json.loads((project / "results/sod_metrics.json").read_text())) == {"ECSSD"}
    assert (project / "results/synthetic-sod/ldf/ECSSD_pr.png").is_file()
    assert "Nothing to be done" in run(["snakemake", "-n", "--cores", "1", "results/sod_metrics.json"], project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["profiles"]["smoke"]["ldf"]["two_stage"] = True
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    two_stage = run(["snakemake", "-n", "-p", "--cores", "1", "results/sod_metrics.json",
                     "results/synthetic-sod/ldf_ablation.json"], project)
    for rule in ("train_ldf_coarse", "relabel_ldf", "train_ldf", "train_ldf_ablation"):
        assert f"rule {rule}:" in two_stage
    assert "--labels data/sod/ldf/coarse_maps --out models/ldf/model.pt --fine" in two_stage
    assert "data/saliency/ldf_body_detail_seed0/ECSSD" in two_stage  # the ablation's own body+detail row
