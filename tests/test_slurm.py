"""The WSSS chain through SLURM: every rule a job of a real cluster (tests/services/slurm.sh starts a one-node
one on this machine), run with the project's SLURM profile settings, and the same numbers as a local run; the
jobs log to a shared MLflow server on PostgreSQL (conftest's ``mlflow_server``), one run per job, one pipeline id.

Skips when ``sinfo`` is missing or gets no answer from a controller, or when PostgreSQL does not answer.
"""

import json
import shutil
import subprocess

import pytest
import yaml

from wsss.config import deep_merge

from conftest import ROOT, all_runs, run

# A few seconds per rule: the smoke profile at conftest's TINY sizes, smaller still, MLflow off for the local
# run (the SLURM run switches it on: its jobs log to the server).
SMALL = {"synth_voc": {"train": 4, "val": 2, "train_aug": 6, "size": 32},
         "tracking": {"enabled": False},
         "profiles": {"smoke": {"train_cls": {"batch": 2, "epochs": 1, "crop": 24, "resize_long": [24, 32]},
                                "train_seg": {"batch": 2, "iterations": 2, "crop": 24}}}}
TARGET = "results/voc_miou.json"
METRICS = ("miou", "cam_miou", "pseudo_miou", "per_class")
GPU_RULES = ("train_cls", "infer_cam", "train_aff", "infer_rw", "train_seg", "infer_seg")


def slurm_answers() -> str:
    """Why SLURM cannot run jobs here, or "" when its controller answers."""
    if shutil.which("sinfo") is None:
        return "no SLURM here (sinfo not found; tests/services/slurm.sh installs a one-node cluster when root)"
    try:
        answer = subprocess.run(["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo gets no answer from slurmctld within 20 s"
    if answer.returncode != 0 or not answer.stdout.strip():
        return f"sinfo gets no answer from slurmctld: {answer.stderr.strip()[:200]}"
    return ""


def slurm_profile(project) -> str:
    """The project's SLURM profile, pointed at this cluster: its default partition, no account, no GPUs (the
    training rules ask for ``gpu=1``, which would become ``--gpus=1``), the logs kept, squeue for the status
    (sacct needs slurmdbd, absent here), status checks soon after submission."""
    profile = yaml.safe_load((ROOT / "workflow/profiles/slurm/profile.yaml").read_text())
    partition = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout.split()
    default = next((name.rstrip("*") for name in partition if name.endswith("*")), partition[0])
    profile["default-resources"].update({"slurm_partition": default, "mem_mb": 1000, "runtime": 30})
    profile["default-resources"].pop("slurm_account", None)
    profile["set-resources"] = {rule: {"gpu": 0} for rule in GPU_RULES}
    profile.update({"jobs": 4, "latency-wait": 5, "slurm-no-account": True, "slurm-keep-successful-logs": True,
                    "slurm-status-command": "squeue", "slurm-init-seconds-before-status-checks": 2})
    folder = project / "profiles" / "slurm-test"
    folder.mkdir(parents=True)
    (folder / "profile.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


@pytest.mark.slow
def test_the_voc_chain_runs_as_slurm_jobs_with_the_local_numbers_and_logs_to_a_shared_server(project, tmp_path,
                                                                                              request, monkeypatch):
    reason = slurm_answers()
    if reason:
        pytest.skip(reason)
    uri, _ = request.getfixturevalue("mlflow_server")  # skips, naming PostgreSQL, when it does not answer
    params = deep_merge(yaml.safe_load((project / "params.yaml").read_text()), SMALL)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    remote = tmp_path / "slurm-project"
    shutil.copytree(project, remote, symlinks=True)
    local_log = run(["snakemake", "--cores", "2", TARGET], project)
    profile = slurm_profile(remote)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # sbatch hands the submitting environment to every job
    before = {logged.info.run_id for logged in all_runs(uri)}
    tracked = deep_merge(params, {"tracking": {"enabled": True}})
    (remote / "params.yaml").write_text(yaml.safe_dump(tracked, sort_keys=False))
    run(["snakemake", "--workflow-profile", str(profile), TARGET], remote)

    local, slurm = (json.loads((root / TARGET).read_text()) for root in (project, remote))
    assert {key: slurm[key] for key in METRICS} == {key: local[key] for key in METRICS}

    # Every rule ran as a job of the cluster: one SLURM log per job, under the plugin's folder.
    rules = {line.split()[1].rstrip(":") for line in local_log.splitlines()   # "localrule crf:" when run here
             if line.startswith(("rule ", "localrule "))}
    folder = remote / ".snakemake/slurm_logs"   # rule_<name>/[<wildcards>/]<SLURM job id>.log
    logs = {path.relative_to(folder).parts[0].removeprefix("rule_") for path in folder.rglob("*.log")}
    assert {"train_cls", "infer_cam", "crf", "train_seg", "infer_seg", "summarize_voc"} <= rules
    assert logs == rules

    # One finished run per job, tagged with that job's SLURM id, all of one pipeline.
    runs = [logged for logged in all_runs(uri) if logged.info.run_id not in before]
    job_ids = {path.stem for path in folder.rglob("*.log")}
    assert sorted(logged.data.tags["slurm_job_id"] for logged in runs) == sorted(job_ids)
    assert {logged.info.status for logged in runs} == {"FINISHED"}
    assert len({logged.data.tags["pipeline_id"] for logged in runs}) == 1
