"""One DAG, two runners: dvc.yaml agrees with the Snakefile, and both build, skip and rerun alike."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wsss.config import deep_merge
from wsss.workflow import STAGE_PARAMS, dvc_stages, render_dvc_yaml, snakemake_jobs

from conftest import ROOT

BIN = Path(sys.executable).parent
PROJECT_FILES = ("Snakefile", "params.yaml", "dvc.yaml", "workflow", ".dvc/config", ".dvcignore", ".gitignore")
TINY = {"synth_voc": {"train": 6, "val": 4, "train_aug": 10, "size": 48},
        "synth_sod": {"train": 6, "test": 4, "size": 48},
        "profiles": {"smoke": {"train_cls": {"batch": 4, "epochs": 1, "crop": 32, "resize_long": [32, 48]},
                               "infer_cam": {"scales": [1.0]},
                               "train_seg": {"batch": 4, "iterations": 3, "crop": 32},
                               "ldf": {"batch": 2, "epochs": 1, "fine_epochs": 1, "width": 8, "train_sizes": [32], "test_size": 32}}}}
SOD_RULES = {"synth_sod", "prepare_sod", "decouple", "train_ldf", "train_ldf_ablation", "infer_ldf", "eval_saliency",
             "summarize_sod", "summarize_ldf_ablation"}


def test_dvc_yaml_is_generated_from_the_snakefile(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert (ROOT / "dvc.yaml").read_text() == render_dvc_yaml([]), "dvc.yaml is stale: run `wsss dag dvc`"


def test_every_dvc_stage_is_a_snakemake_job_with_the_same_files(monkeypatch):
    monkeypatch.chdir(ROOT)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    jobs = {job["stage"]: job for job in snakemake_jobs([])}
    assert set(stages) == set(jobs)
    for name, stage in stages.items():
        outs = set(stage.get("outs", [])) | {next(iter(m)) for m in stage.get("metrics", [])}
        assert outs == set(jobs[name]["outputs"]), name
        assert set(stage.get("deps", [])) == set(jobs[name]["inputs"]), name
        assert stage["cmd"] == f"snakemake --cores all {' '.join(jobs[name]['outputs'])}"


def test_a_renamed_output_is_caught():
    jobs = [{"stage": "prepare_voc", "rule": "prepare_voc", "inputs": ["data/synth/voc"], "outputs": ["data/prepared/voc"]}]
    generated = dvc_stages(jobs, {"profiles": {"smoke": {"voc": {}}}})
    edited = yaml.safe_load(yaml.safe_dump(generated))
    edited["stages"]["prepare_voc"]["outs"] = ["data/prepared/voc2"]
    assert edited != generated
    assert generated["stages"]["prepare_voc"]["params"] == ["profile", "voc", "profiles.smoke.voc"]


@pytest.fixture
def project(tmp_path, mlflow_uri):
    """A copy of the workflow in a fresh git repository, with tiny synthetic datasets."""
    root = tmp_path / "project"
    for name in PROJECT_FILES:
        source, target = ROOT / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, target)
    params = deep_merge(yaml.safe_load((root / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        subprocess.run(command, cwd=root, check=True)
    return root


def run(command, cwd):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def planned_rules(cwd, *targets) -> set[str]:
    """The rules `snakemake -n` would run (for `rule all` unless targets are given)."""
    out = run(["snakemake", *targets, "-n", "--cores", "1", "--quiet", "rules"], cwd)
    if "Nothing to be done" in out:
        return set()
    rules = set(STAGE_PARAMS) | {"summarize_voc"}
    return {line.split()[0] for line in out.splitlines() if line.strip() and line.split()[0] in rules}


@pytest.mark.slow
def test_snakemake_builds_then_does_nothing_then_reruns_only_what_a_param_touches(project):
    run(["snakemake", "--cores", "2"], project)
    summary = json.loads((project / "results/voc_miou.json").read_text())
    assert {"dataset", "profile", "method", "miou", "per_class", "cam_miou", "pseudo_miou", "config_hash"} <= set(summary)
    assert (summary["dataset"], summary["profile"], summary["method"]) == ("synthetic-voc", "smoke", "cam")
    assert all(0.0 <= summary[key] <= 1.0 for key in ("miou", "cam_miou", "pseudo_miou"))
    assert len(list((project / "data/pseudo/cam/train_aug").glob("*.png"))) == 10
    assert (project / "data/prepared/voc/train.txt").read_text().split() == (
        project / "data/synth/voc/ImageSets/Segmentation/train.txt").read_text().split()
    assert len((project / "data/prepared/sod/ECSSD.txt").read_text().splitlines()) == 4
    sod = json.loads((project / "results/sod_metrics.json").read_text())
    assert set(sod) == {"ECSSD"} and sod["ECSSD"]["count"] == 4 and 0.0 <= sod["ECSSD"]["mae"] <= 1.0
    ablation = json.loads((project / "results/synthetic-sod/ldf_ablation.json").read_text())
    assert set(ablation["rows"]) == {"body_detail", "body_edge", "saliency_detail", "saliency_edge"}
    assert planned_rules(project) == set()

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["synth_sod"]["seed"] = 7
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert planned_rules(project) == SOD_RULES
    params["crf"]["iterations"] = 5
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert planned_rules(project) == SOD_RULES | {"crf", "eval_pseudo", "train_seg", "infer_seg", "eval_seg",
                                                  "summarize_voc"}


@pytest.mark.slow
def test_dvc_repro_builds_then_is_up_to_date_and_dvc_exp_set_reruns_only_that_branch(project):
    """The two pipelines' final stages and all they depend on (the ablations are covered by the Snakemake tests)."""
    stages = ["summarize_voc", "summarize_sod"]
    run(["dvc", "repro", *stages], project)
    assert (project / "data/prepared/voc/cls_labels.npy").is_file()
    assert "up to date" in run(["dvc", "status", *stages], project)
    assert planned_rules(project, "results/voc_miou.json", "results/sod_metrics.json") == set()
    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "repro"], project)

    out = run(["dvc", "exp", "run", "-S", "synth_sod.seed=7", *stages], project)
    assert "Running stage 'synth_sod'" in out and "Running stage 'prepare_sod'" in out
    assert "Running stage 'synth_voc'" not in out and "Running stage 'prepare_voc'" not in out


@pytest.mark.slow
def test_the_profile_switch_reaches_every_stage(project):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    missing = subprocess.run(["snakemake", "-n", "--cores", "1", "--config", "profile=paper"], cwd=project,
                             env=env, capture_output=True, text=True)
    assert missing.returncode != 0
    message = missing.stdout + missing.stderr
    assert "VOCtrainval_11-May-2012.tar" in message or "DUTS-TR" in message  # where to get the data

    (project / "data/raw/VOCdevkit/VOC2012").mkdir(parents=True)
    (project / "data/raw/SOD").mkdir(parents=True)
    out = run(["snakemake", "-n", "--cores", "1", "--config", "profile=paper", "--printshellcmds"], project)
    assert "wsss data prepare-voc --out data/prepared/voc --workers 1 --set profile=paper" in out
    assert ("wsss train-cls --voc data/prepared/voc --out models/cam/classifier/model.pt --set profile=paper"
            " --set method=cam") in out
    assert "synth_voc" not in out  # no synthetic data in the paper profile


def test_the_lite_profile_plans_the_voc_chain_and_one_key_swaps_in_the_synthetic_voc(project):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    missing = subprocess.run(["snakemake", "-n", "--cores", "1", "results/voc_miou.json", "--config", "profile=lite"],
                             cwd=project, env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "VOCtrainval_11-May-2012.tar" in missing.stdout + missing.stderr

    out = run(["snakemake", "-n", "--cores", "1", "results/voc_miou.json", "--config", "profile=lite",
               "voc={source: synthetic}", "--printshellcmds"], project)
    flags = "--set profile=lite --set voc.source=synthetic"
    assert f"wsss data synth-voc --out data/synth/voc --workers 1 {flags}" in out
    assert f"wsss train-cls --voc data/prepared/voc --out models/cam/classifier/model.pt {flags} --set method=cam" in out
    assert "--gt data/synth/voc/SegmentationClass" in out and "results/synthetic-voc/cam/seg_miou.json" in out
    assert planned_rules(project, "results/voc_miou.json", "--config", "profile=lite", "voc={source: synthetic}") == {
        "synth_voc", "prepare_voc", "train_cls", "infer_cam", "eval_equivariance", "eval_cam", "crf", "eval_pseudo",
        "train_seg", "infer_seg", "eval_seg", "summarize_voc"}


@pytest.mark.slow
def test_the_seam_chain_and_the_ablation_run_side_by_side_with_cam(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["seam_ablation"] = [{"row": "baseline", "method": "cam", "crf": False, "paper": 47.43},
                               {"row": "SEAM", "method": "seam", "crf": False, "paper": 55.41},
                               {"row": "+ CRF", "method": "seam", "crf": True, "paper": 56.83}]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["snakemake", "--cores", "2", "results/voc_miou.json", "seam_ablation", "--config", "method=seam"], project)
    summary = json.loads((project / "results/voc_miou.json").read_text())
    assert summary["method"] == "seam" and summary["cam_equivariance_error"] >= 0
    ablation = json.loads((project / "results/synthetic-voc/seam_ablation.json").read_text())
    assert [(row["method"], row["crf"]) for row in ablation["rows"]] == [("cam", False), ("seam", False), ("seam", True)]
    assert all(0 <= row["miou"] <= 1 and row["equivariance_error"] >= 0 for row in ablation["rows"])
    assert "| SEAM | `seam` |" in (project / "results/synthetic-voc/seam_ablation.md").read_text()
    assert not (project / "models/cam/deeplab").exists()  # the cam chain stops at its CAMs
    assert planned_rules(project, "results/voc_miou.json", "seam_ablation", "--config", "method=seam") == set()
    assert planned_rules(project, "results/voc_miou.json") == {"crf", "eval_pseudo", "train_seg", "infer_seg",
                                                               "eval_seg", "summarize_voc"}  # back to cam
    params["methods"]["seam"]["seam"] = {"er_weight": 2.0}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert planned_rules(project, "seam_ablation") == {"train_cls", "infer_cam", "eval_cam", "eval_equivariance",
                                                       "crf", "eval_pseudo", "seam_ablation"}
