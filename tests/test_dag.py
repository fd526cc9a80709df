"""One DAG, two runners: dvc.yaml agrees with the Snakefile, and both build, skip and rerun alike."""

import json
import os
import subprocess

import pytest
import yaml

from wsss.workflow import DVC_HEADER, STAGE_PARAMS, dvc_stages, render_dvc_yaml, snakemake_jobs

from conftest import BIN, ROOT, SHARED_DATA, copy_workflow, run

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


def test_an_edited_dvc_yaml_is_caught(tmp_path):
    copy_workflow(tmp_path)
    run(["wsss", "dag", "dvc", "--check"], tmp_path)
    stages = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    stages["stages"]["prepare_voc"]["outs"] = ["data/prepared/voc2"]
    (tmp_path / "dvc.yaml").write_text(DVC_HEADER + yaml.safe_dump(stages, sort_keys=False))
    result = subprocess.run([str(BIN / "wsss"), "dag", "dvc", "--check"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1 and "dvc.yaml is out of date" in result.stderr


def test_the_params_of_a_stage_are_its_sections_and_their_profile_overrides():
    jobs = [{"stage": "prepare_voc", "rule": "prepare_voc", "inputs": ["data/synth/voc"], "outputs": ["data/prepared/voc"]}]
    generated = dvc_stages(jobs, {"profiles": {"smoke": {"voc": {}}}})
    assert generated["stages"]["prepare_voc"]["params"] == ["profile", "voc", "profiles.smoke.voc"]


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
    assert len((project / "data/prepared/sod/test/ECSSD.txt").read_text().splitlines()) == 4
    sod = json.loads((project / "results/sod_metrics.json").read_text())
    assert set(sod) == {"ECSSD"} and sod["ECSSD"]["count"] == 4 and 0.0 <= sod["ECSSD"]["mae"] <= 1.0
    ablation = json.loads((project / "results/synthetic-sod/ldf_ablation.json").read_text())
    assert set(ablation["rows"]) == {"body_detail", "body_edge", "saliency_detail", "saliency_edge"}
    assert planned_rules(project) == set()
    assert planned_rules(project, "results/voc_miou.json", "--config", "pseudo=rw") == {
        "aff_labels", "train_aff", "infer_rw", "eval_pseudo", "train_seg", "infer_seg", "eval_seg", "summarize_voc"}

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["synth_sod"]["seed"] = 7
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert planned_rules(project) == SOD_RULES
    params["crf"]["iterations"] = 5
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert planned_rules(project) == SOD_RULES | {"crf", "eval_pseudo", "train_seg", "infer_seg", "eval_seg",
                                                  "summarize_voc"}


def tree_bytes(root, folders) -> dict:
    """Relative path -> bytes of every file under ``folders`` of ``root``."""
    return {str(path.relative_to(root)): path.read_bytes()
            for folder in folders for path in sorted((root / folder).rglob("*")) if path.is_file()}


@pytest.mark.slow
def test_dvc_repro_builds_then_is_up_to_date_and_dvc_exp_set_reruns_only_that_branch(project, tmp_path):
    """The two pipelines' final stages and all they depend on (the ablations are covered by the Snakemake tests);
    a remote restores them in a fresh clone, where neither runner then has anything to do."""
    stages = ["summarize_voc", "summarize_sod"]
    targets = ["results/voc_miou.json", "results/sod_metrics.json"]
    run(["dvc", "repro", *stages], project)
    assert (project / "data/prepared/voc/cls_labels.npy").is_file()
    assert "up to date" in run(["dvc", "status", *stages], project)
    assert planned_rules(project, *targets) == set()
    run(["dvc", "remote", "add", "-d", "store", str(tmp_path / "remote")], project)
    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "repro"], project)
    run(["dvc", "push", "--with-deps", *stages], project)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    run(["dvc", "pull", "--with-deps", *stages], clone)
    outputs = ("data/synth", "data/prepared", "data/cams", "data/pseudo", "models", "results")
    assert tree_bytes(clone, outputs) == tree_bytes(project, outputs)
    assert "up to date" in run(["dvc", "status", *stages], clone)
    run(["snakemake", "--touch", "--cores", "1", *targets], clone)
    assert planned_rules(clone, *targets) == set()

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
    assert ("wsss --processes 1 train-cls --voc data/prepared/voc --out models/cam/classifier/model.pt --set profile=paper"
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
    assert f"wsss --processes 1 train-cls --voc data/prepared/voc --out models/cam/classifier/model.pt {flags} --set method=cam" in out
    assert "--gt data/synth/voc/SegmentationClass" in out and "results/synthetic-voc/cam/seg_miou.json" in out
    assert planned_rules(project, "results/voc_miou.json", "--config", "profile=lite", "voc={source: synthetic}") == {
        "synth_voc", "prepare_voc", "train_cls", "infer_cam", "eval_equivariance", "eval_cam", "crf", "eval_pseudo",
        "train_seg", "infer_seg", "eval_seg", "summarize_voc"}


def test_the_lite_profile_trains_and_tests_on_the_sod_benchmark(project):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    target = ["results/sod_metrics.json", "--config", "profile=lite"]
    missing = subprocess.run(["snakemake", "-n", "--cores", "1", *target], cwd=project, env=env, capture_output=True,
                             text=True)
    message = missing.stdout + missing.stderr
    assert missing.returncode != 0
    assert all(part in message for part in ("BSDS300-images.tgz", "SOD benchmark", "Put SOD in data/raw/SOD/SOD/"))

    (project / "data/raw/SOD").mkdir(parents=True)
    (project / "data/raw/SOD/SOD").symlink_to(SHARED_DATA / "sod-bsds300")  # what a user does; may dangle here
    out = run(["snakemake", "-n", "--cores", "1", *target, "--printshellcmds"], project)
    assert "wsss data prepare-sod --out data/prepared/sod --workers 1 --set profile=lite" in out
    assert ("wsss infer-ldf --sod data/prepared/sod --model models/ldf/model.pt --split SOD --method ldf"
            " --out data/saliency/ldf/SOD --set profile=lite") in out
    assert "--gt data/raw/SOD/SOD --name SOD" in out and "results/sod/ldf/SOD.json" in out
    assert planned_rules(project, *target) == {"prepare_sod", "decouple", "train_ldf", "infer_ldf", "eval_saliency",
                                               "summarize_sod"}


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
