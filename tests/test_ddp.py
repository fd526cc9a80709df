"""Every training stage as two DDP processes (``wsss --processes 2``, torchrun with gloo on the CPU), launched by
the workflow's training rules from their ``gpu`` resource: one MLflow run per stage, the weights a single-process
stage writes, and a killed run that resumes to the uninterrupted run's weights bit for bit."""

import os
import re
import shlex
import signal
import subprocess
import time

import psutil
import pytest
import torch
import yaml

from wsss.config import deep_merge, load_config
from wsss.engine import CHECKPOINT
from wsss.nets.registry import build_network

from conftest import BIN, run

TRAINING_RULES = ("train_cls", "train_aff", "train_seg", "train_ldf_coarse", "train_ldf")
TARGETS = ("models/sccam/deeplab/model.pt", "models/seam/classifier/model.pt", "models/ldf/model.pt")
CONFIG = ["method=sccam", "pseudo=rw", "ldf={two_stage: true}"]
# A checkpoint after every step, and a few steps more than conftest's TINY, so that a kill lands mid-run; LDF's
# batch of 2 per process (its pooled head's BatchNorm needs more than one sample).
SMALL = {"runtime": {"checkpoint_every": 1}, "synth_sod": {"train": 8},
         "profiles": {"smoke": {"train_cls": {"epochs": 3}, "train_seg": {"iterations": 6},
                                "affinity": {"epochs": 3},
                                "ldf": {"batch": 4, "epochs": 3, "fine_epochs": 3}}}}
NETWORKS = {"train-cls": None, "train-aff": "aff", "train-seg": "deeplab", "train-ldf": "ldf"}


def training_commands(project) -> dict[str, str]:
    """Output → shell command of every training job of the targets, as the workflow would run it now."""
    printed = run(["snakemake", "-n", "-p", "--forceall", "--cores", "2", "--config", *CONFIG, "--set-resources",
                   *[f"{rule}:gpu=2" for rule in TRAINING_RULES], "--", *TARGETS], project)
    commands = re.findall(r"^Shell command: (wsss --processes 2 train-.*?) > \S+ 2>&1$", printed, re.M)
    return {re.search(r"--out (\S+)", command).group(1): command for command in commands}


def state(path):
    return torch.load(path, weights_only=True)


def launch(command: str, project, out) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen(shlex.split(command.replace(re.search(r"--out \S+", command).group(0), f"--out {out}")),
                            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_after_first_checkpoint(process: subprocess.Popen, checkpoint) -> None:
    """SIGKILL to torchrun and its workers at once (as a preempted cluster job; the workers sit in sessions of
    their own, so killing torchrun's process group alone would leave them running)."""
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    launcher = psutil.Process(process.pid)
    for member in [*launcher.children(recursive=True), launcher]:
        try:
            member.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    output = process.communicate()[0]
    assert checkpoint.exists(), f"no checkpoint to resume from:\n{output[-2000:]}"


@pytest.mark.slow
def test_every_training_stage_runs_as_two_processes_and_resumes_after_a_kill(project, tmp_path, mlflow_uri):
    import mlflow

    params = deep_merge(yaml.safe_load((project / "params.yaml").read_text()), SMALL)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commands = training_commands(project)
    assert len(commands) == 8 and {command.split()[3] for command in commands.values()} == set(NETWORKS)

    run(["snakemake", "--cores", "2", "--config", *CONFIG, "--set-resources",
         *[f"{rule}:gpu=2" for rule in TRAINING_RULES], "--", *TARGETS], project)

    # One MLflow run per training job (rank 0's), finished, logged as two processes.
    client = mlflow.MlflowClient(mlflow_uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])
            if r.data.tags.get("stage", "").startswith("train_")]
    assert len(runs) == len(commands)
    assert {(r.info.status, r.data.tags["processes"]) for r in runs} == {("FINISHED", "2")}

    # The weights are the plain state dict of the network, as one process writes it.
    for out, command in commands.items():
        cfg = load_config(project / "params.yaml", re.findall(r"--set (\S+)", command))
        network = NETWORKS[command.split()[3]] or cfg.network
        weights = state(project / out)
        assert {k: v.shape for k, v in weights.items()} == \
            {k: v.shape for k, v in build_network(network, cfg, weights="").state_dict().items()}, out

    # Killed after its first checkpoint and rerun, each stage ends with the uninterrupted run's weights (one
    # job per network: SC-CAM's first round and LDF's coarse stage train as their next round and stage do).
    resumable = {out: command for out, command in commands.items() if "round1" not in out and "coarse" not in out}
    for n, (out, command) in enumerate(sorted(resumable.items())):
        fresh = tmp_path / f"resumed{n}" / "model.pt"
        kill_after_first_checkpoint(launch(command, project, fresh), fresh.parent / CHECKPOINT)
        assert not fresh.exists()
        resumed = launch(command, project, fresh)
        output = resumed.communicate(timeout=300)[0]
        assert resumed.returncode == 0, output[-3000:]
        assert "resuming" in output and not (fresh.parent / CHECKPOINT).exists()
        expected, got = state(project / out), state(fresh)
        assert all(torch.equal(expected[k], got[k]) for k in expected), f"{command}: resumed weights differ"
    # the killed run and its resumption are one MLflow run
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])
            if r.data.tags.get("stage", "").startswith("train_")]
    assert len(runs) == len(commands) + len(resumable) and {r.info.status for r in runs} == {"FINISHED"}


def test_processes_is_for_training_commands_only(capsys):
    from wsss.cli import main

    assert main(["--processes", "2", "infer-cam", "--voc", "v", "--model", "m.pt", "--split", "train",
                 "--out", "cams"]) == 2
    assert "only the training commands run as several processes" in capsys.readouterr().err
