"""SC-CAM: sub-category labels by k-means, the two-head network and its loss, the rounds in the DAG."""

import json
import re

import numpy as np
import pytest
import torch
import yaml

from wsss.config import ConfigError, load_config, resolve
from wsss.data.subcategories import (cluster_assignments, load_subcategories, save_subcategories, subcategory_labels,
                                     with_subcategories)
from wsss.losses import classification_loss, sccam_loss
from wsss.nets.backbones import build_backbone
from wsss.nets.cam import CAMNet
from wsss.nets.sccam import SCCAMNet
from wsss.workflow import dvc_stages, rule_params

from conftest import ROOT, run

BLOBS = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])


def hand_made_features(seed=0):
    """12 images: class 0 on images 0-7 (blobs 0 and 1), class 1 on images 6-11 (blobs 1 and 2; 6, 7 have both)."""
    rng = np.random.default_rng(seed)
    blob = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    features = BLOBS[blob] + rng.normal(0, 0.3, (12, 2))
    parents = np.zeros((12, 20), np.float32)
    parents[:8, 0] = 1
    parents[6:, 1] = 1
    return features, parents, blob


def same_partition(a, b) -> bool:
    """``a`` and ``b`` group the items alike, whatever the cluster numbers."""
    return len(set(zip(a, b))) == len(set(a)) == len(set(b))


def test_kmeans_finds_the_known_clusters_of_each_parent_class():
    features, parents, blob = hand_made_features()
    assignments = cluster_assignments(features, parents, clusters=2, n_init=10, seed=0)
    assert sorted(assignments) == [0, 1]
    for c, members in ((0, np.arange(8)), (1, np.arange(6, 12))):
        rows, assigned = assignments[c]
        assert rows.tolist() == members.tolist()
        assert same_partition(assigned.tolist(), blob[rows].tolist())
    again = cluster_assignments(features, parents, clusters=2, n_init=10, seed=0)
    assert all(np.array_equal(again[c][1], assignments[c][1]) for c in assignments)  # seeded
    forked = cluster_assignments(features, parents, clusters=2, n_init=10, seed=0, workers=2)
    assert sorted(forked) == [0, 1]
    assert all(np.array_equal(forked[c][0], assignments[c][0]) and np.array_equal(forked[c][1], assignments[c][1])
               for c in assignments)   # the classes in two processes: the same labels


def test_labels_are_multi_hot_at_parent_times_k_plus_cluster_one_row_per_image():
    features, parents, blob = hand_made_features()
    k = 2
    assignments = cluster_assignments(features, parents, clusters=k)
    labels = subcategory_labels(assignments, len(features), k)
    assert labels.shape == (12, 20 * k)
    assert labels.sum(1).tolist() == parents.sum(1).astype(int).tolist()   # one sub-category per class of the image
    for c, (rows, assigned) in assignments.items():
        assert (labels[rows, c * k + assigned] == 1).all()
    assert labels[:, 2 * k:].sum() == 0                                      # nothing outside the present classes
    assert (labels[6, :k].sum(), labels[6, k:2 * k].sum()) == (1, 1)         # both classes of a two-class image


def test_a_class_with_fewer_images_than_clusters_gives_each_its_own():
    parents = np.zeros((3, 20), np.float32)
    parents[:, 4] = 1
    rows, assigned = cluster_assignments(np.eye(3), parents, clusters=5)[4]
    assert rows.tolist() == [0, 1, 2] and sorted(assigned.tolist()) == [0, 1, 2]


def test_the_labels_file_round_trips_and_follows_the_parent_labels(tmp_path):
    labels = np.zeros((2, 40), np.uint8)
    labels[0, 3], labels[1, 21] = 1, 1
    save_subcategories(tmp_path / "labels.npz", ["a", "b"], labels, 2)
    loaded, clusters = load_subcategories(tmp_path / "labels.npz")
    assert clusters == 2 and np.array_equal(loaded["b"], labels[1])
    parents = {"a": np.eye(20)[1], "b": np.eye(20)[10]}
    merged = with_subcategories(parents, loaded, ["a", "b"])
    assert merged["a"].shape == (60,) and merged["a"][1] == 1 and merged["a"][20 + 3] == 1
    with pytest.raises(ValueError, match="no sub-category label for 1 ids"):
        with_subcategories(parents, loaded, ["a", "c"])


def twin_networks(clusters=3):
    """A CAMNet and an SCCAMNet with the same backbone and parent classifier, in eval mode."""
    torch.manual_seed(0)
    cam = CAMNet(build_backbone("tiny")).eval()
    sccam = SCCAMNet(build_backbone("tiny"), clusters).eval()
    sccam.load_state_dict({**sccam.state_dict(), **cam.state_dict()})
    return cam, sccam


def test_the_joint_loss_at_zero_weight_is_the_cam_loss():
    cam, sccam = twin_networks()
    settings = load_config(ROOT / "params.yaml", ["method=sccam", "sccam.clusters=3"]).sccam
    images = torch.randn(2, 3, 64, 64)
    parents = torch.tensor([[1.0] + [0.0] * 19, [0.0, 1.0] + [0.0] * 18])
    subcategories = torch.zeros(2, 60)
    subcategories[0, 2], subcategories[1, 4] = 1, 1
    labels = torch.cat([parents, subcategories], 1)
    expected = classification_loss(cam, (images, parents))["loss"]
    at_zero = sccam_loss(sccam, (images, labels), settings.model_copy(update={"subcls_weight": 0.0}))
    assert torch.allclose(at_zero["loss"], expected, atol=1e-6)
    official = sccam_loss(sccam, (images, labels), settings)
    assert torch.allclose(official["loss"], at_zero["parent"] + 5.0 * official["subcategory"], atol=1e-6)


def test_the_merged_subcategory_cam_of_copies_of_the_parent_head_is_the_normalised_parent_cam():
    cam, sccam = twin_networks(clusters=3)
    with torch.no_grad():
        sccam.sub_classifier.weight.copy_(cam.classifier.weight.repeat_interleave(3, dim=0))
    images, classes = torch.randn(1, 3, 64, 64), torch.tensor([2, 7])
    with torch.no_grad():
        parent = sccam.cam(images, classes)
        sccam.cam_source = "subcategory"
        merged = sccam.cam(images, classes)
    assert torch.allclose(parent, cam.cam(images, classes))
    assert torch.allclose(merged, parent / (parent.amax((2, 3), keepdim=True) + 1e-5), atol=1e-6)


def test_changing_k_changes_what_clustering_reads_and_not_what_feature_extraction_reads():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    k10, k5 = (resolve(raw, ["method=sccam", f"sccam.clusters={k}"]) for k in (10, 5))
    assert rule_params(k10, "extract_features") == rule_params(k5, "extract_features")
    assert rule_params(k10, "cluster") != rule_params(k5, "cluster")
    jobs = [{"stage": "extract_features_sccam_1", "rule": "extract_features", "inputs": [], "outputs": ["f"],
             "wildcards": {"method": "sccam", "round": "1"}}]
    params = dvc_stages(jobs, raw)["stages"]["extract_features_sccam_1"]["params"]
    assert "train_cls.backbone" in params
    assert not [key for key in params if key.startswith(("sccam", "methods.sccam.sccam"))]


@pytest.mark.parametrize("overrides, message", [
    (["method=sccam", "sccam.round=4"], "sccam.round must be in [0, sccam.rounds (2)], got 4"),
    (["method=sccam", "sccam.initial_method=irn"], "sccam.initial_method: unknown method 'irn'"),
    (["method=cam", "infer_cam.source=subcategory"], "infer_cam.source subcategory needs network sccam"),
    (["method=sccam", "sccam.clusters=0"], "sccam.clusters must be >= 1"),
])
def test_bad_sccam_settings_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides)


def planned_jobs(out: str) -> list[dict]:
    """(rule, input, output) of each job of a ``snakemake -n`` listing."""
    jobs, job = [], None
    for line in out.splitlines():
        header = re.fullmatch(r"rule (\w+):", line.strip())
        if header:
            job = {"rule": header.group(1)}
            jobs.append(job)
        elif job is not None and re.match(r"\s+(input|output): ", line):
            key, value = line.strip().split(": ", 1)
            job[key] = set(value.split(", "))
    return jobs


def test_the_paper_setting_is_script_sh_s():
    cfg = load_config(ROOT / "params.yaml", ["method=sccam", "profile=paper"])
    settings, training = cfg.sccam, cfg.train_cls
    assert (settings.rounds, settings.clusters, settings.subcls_weight, settings.kmeans_n_init) == (3, 10, 5.0, 10)
    assert (training.epochs, training.lr, training.crop, training.batch, training.resize_long) == (
        61, 0.01, 224, 16, (256, 512))
    assert training.weights == load_config(ROOT / "params.yaml", ["method=cam", "profile=paper"]).train_cls.weights


def test_a_dry_run_of_the_chain_plans_the_rounds_each_trained_from_the_configured_weights(project):
    out = run(["snakemake", "-n", "--cores", "1", "results/voc_miou.json", "--config", "method=sccam",
               "sccam={rounds: 3}"], project)
    jobs = planned_jobs(out)
    counts = {rule: sum(job["rule"] == rule for job in jobs) for rule in ("extract_features", "cluster", "train_cls")}
    assert counts == {"extract_features": 3, "cluster": 3, "train_cls": 4}   # cam's classifier + 3 rounds
    trainings = {next(iter(job["output"])): job["input"] for job in jobs if job["rule"] == "train_cls"}
    assert trainings == {
        "models/cam/classifier/model.pt": {"data/prepared/voc"},
        "models/sccam_round1/classifier/model.pt": {"data/prepared/voc", "data/sccam/sccam/round1/labels.npz"},
        "models/sccam_round2/classifier/model.pt": {"data/prepared/voc", "data/sccam/sccam/round2/labels.npz"},
        "models/sccam/classifier/model.pt": {"data/prepared/voc", "data/sccam/sccam/round3/labels.npz"},
    }   # no round reads another round's model: each starts from train_cls.weights
    extractors = {next(iter(job["output"])): job["input"] - {"data/prepared/voc"}
                  for job in jobs if job["rule"] == "extract_features"}
    assert extractors == {"data/sccam/sccam/round1/features.npz": {"models/cam/classifier/model.pt"},
                          "data/sccam/sccam/round2/features.npz": {"models/sccam_round1/classifier/model.pt"},
                          "data/sccam/sccam/round3/features.npz": {"models/sccam_round2/classifier/model.pt"}}
    assert {"crf", "train_seg", "summarize_voc"} <= {job["rule"] for job in jobs}


def test_a_dry_run_of_the_ablation_plans_every_round_and_every_k(project):
    out = run(["snakemake", "-n", "--cores", "1", "sccam_ablation"], project)
    scored = {path for job in planned_jobs(out) if job["rule"] == "eval_cam" for path in job["output"]
              if path.endswith("cam_miou.json")}
    folders = {path.split("/")[2] for path in scored}
    assert folders == {"cam", "sccam_round1", "sccam", "sccam_k1", "sccam_k5", "sccam_k20"}   # smoke: 2 rounds


@pytest.mark.slow
def test_two_rounds_run_end_to_end_on_the_tiny_synthetic_voc(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["sccam"].update(rounds=2, clusters=2)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["snakemake", "--cores", "2", "results/synthetic-voc/sccam/cam_miou.json", "--config", "method=sccam"], project)
    labels, clusters = load_subcategories(project / "data/sccam/sccam/round2/labels.npz")
    assert clusters == 2 and len(labels) == 10
    assert (project / "results/synthetic-voc/sccam/clusters_round1.png").stat().st_size > 0
    assert 0 <= json.loads((project / "results/synthetic-voc/sccam/cam_miou.json").read_text())["miou"] <= 1


def test_the_ablation_reads_every_round_and_every_k(tmp_path, monkeypatch):
    from wsss.cli import main

    monkeypatch.chdir(ROOT)
    results = tmp_path / "results"
    scores = {"cam": 0.30, "sccam_round1": 0.32, "sccam": 0.34, "sccam_k1": 0.31, "sccam_k5": 0.33, "sccam_k20": 0.29}
    for folder, miou in scores.items():
        (results / folder).mkdir(parents=True)
        (results / folder / "cam_miou.json").write_text(json.dumps({"miou": miou, "best_miou": miou + 0.1,
                                                                    "best_threshold": 0.05}))
    out, table, plot = tmp_path / "ablation.json", tmp_path / "ablation.md", tmp_path / "ablation.png"
    assert main(["summarize-sccam", "--results", str(results), "--out", str(out), "--table", str(table),
                 "--plot", str(plot), "--set", "tracking.enabled=false"]) == 0
    ablation = json.loads(out.read_text())
    assert [(row["round"], row["folder"], row["miou"]) for row in ablation["rounds"]] == [
        (0, "cam", 0.30), (1, "sccam_round1", 0.32), (2, "sccam", 0.34)]
    assert [(row["clusters"], row["method"]) for row in ablation["clusters"]] == [
        (1, "sccam_k1"), (5, "sccam_k5"), (10, "sccam"), (20, "sccam_k20")]
    assert "| 2 | `sccam` | 34.00 | 44.00 (0.05) |" in table.read_text() and plot.stat().st_size > 0
