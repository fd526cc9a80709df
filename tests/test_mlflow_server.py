"""The pipeline against a real MLflow tracking server on a PostgreSQL backend store (tests/services/postgres.sh).

One server per test session (conftest's ``mlflow_server``), on a fresh database and a temporary artifact root; the tests skip when
PostgreSQL does not answer on 127.0.0.1:5432 or its driver (psycopg2) is missing. The unit-level tags and
params are tests/test_tracking.py's; an unreachable server under the in-process CLI is tests/test_reliability.py's.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BIN, ROOT, all_runs, closed_port, run

COMPARE_NOTE = """\
From the **synthetic tiny benchmark** (the `project` fixture of tests/conftest.py: 10 train_aug and 4 val images
of 48 px, one epoch, smoke profile), not from VOC: the numbers show the tracking plumbing, not the methods. Each
row is the newest finished `summarize_voc` run of a method, read back with `mlflow.search_runs` from an MLflow
server on a PostgreSQL store (the commit is that of the test's throwaway copy of the workflow). Regenerate
(PostgreSQL from tests/services/postgres.sh):

    WSSS_COMPARE_OUT=docs/mlflow_compare.md python -m pytest tests/test_mlflow_server.py -k compare

or, against any store that holds such runs:
`python docs/experiments/scripts/mlflow_compare.py --tracking-uri http://host:5000 --methods cam seam --out docs/mlflow_compare.md`.
"""


@pytest.fixture
def server_project(project, mlflow_server, monkeypatch):
    """The tiny workflow copy (tests/conftest.py), tracked to the session's server."""
    uri, _ = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return project


def _pipeline(project: Path, uri: str, *config: str) -> tuple[list, int]:
    """Run ``results/voc_miou.json`` once: the runs it logged and the number of jobs Snakemake ran."""
    before = {run.info.run_id for run in all_runs(uri)}
    out = run(["snakemake", "--cores", "2", "results/voc_miou.json", *(["--config", *config] if config else [])], project)
    jobs = int(re.findall(r"(\d+) of (\d+) steps \(100%\) done", out)[-1][1])
    return [r for r in all_runs(uri) if r.info.run_id not in before], jobs


@pytest.mark.slow
def test_a_pipeline_logs_one_finished_run_per_stage_execution_and_two_methods_compare(server_project, mlflow_server,
                                                                                       tmp_path):
    uri, artifacts = mlflow_server
    cam, jobs = _pipeline(server_project, uri)
    assert len(cam) == jobs
    assert {r.info.status for r in cam} == {"FINISHED"}
    [pipeline_id] = {r.data.tags["pipeline_id"] for r in cam}
    assert all(r.data.params for r in cam)
    assert {r.data.tags["stage"] for r in cam} >= {"synth_voc", "prepare_voc", "train_cls", "infer_cam",
                                                   "evaluate_segmentation", "summarize_voc"}
    [eval_cam] = [r for r in cam if r.data.tags["stage"] == "evaluate_segmentation"
                  and r.data.params["pred"].startswith("data/cams/")]
    assert 0.0 <= eval_cam.data.metrics["miou"] <= 1.0 and eval_cam.data.tags["method"] == "cam"
    # artifacts go through the server to its artifact root, none to the project
    assert eval_cam.info.artifact_uri.startswith("mlflow-artifacts:")
    stored = {path.name for path in artifacts.rglob("*") if eval_cam.info.run_id in path.parts}
    assert {"cam_miou.json", "config.yaml"} <= stored
    assert not [p for p in ("mlruns", "mlflow.db", "mlartifacts") if (server_project / p).exists()]

    seam, _ = _pipeline(server_project, uri, "method=seam")
    [seam_pipeline_id] = {r.data.tags["pipeline_id"] for r in seam}
    assert seam_pipeline_id != pipeline_id and {r.info.status for r in seam} == {"FINISHED"}
    page = tmp_path / "mlflow_compare.md"
    script = ROOT / "docs" / "experiments" / "scripts" / "mlflow_compare.py"
    run([sys.executable, str(script), "--tracking-uri", uri, "--methods", "cam", "seam", "--out", str(page),
         "--note", COMPARE_NOTE], server_project)
    rows = [line for line in page.read_text().splitlines() if line.startswith("| `")]
    assert [row.split("|")[1].strip() for row in rows] == ["`cam`", "`seam`"]
    if os.environ.get("WSSS_COMPARE_OUT"):  # how docs/mlflow_compare.md is regenerated
        Path(os.environ["WSSS_COMPARE_OUT"]).write_text(page.read_text())


def test_a_stage_fails_at_once_naming_an_unreachable_server_and_runs_untracked_when_told(project, monkeypatch):
    address = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", address)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    stage = ["wsss", "data", "synth-voc", "--out", "data/synth/voc", "--workers", "1"]
    start = time.perf_counter()
    failed = subprocess.run([*stage, "--set", "tracking.enabled=true"], cwd=project, env=env, capture_output=True,
                            text=True)
    assert time.perf_counter() - start < 15  # the CLI's imports included; the server check itself is one connect
    assert failed.returncode != 0 and address in failed.stderr and "Traceback" not in failed.stderr
    assert not [p for p in ("mlruns", "mlflow.db", "data/synth/voc") if (project / p).exists()]
    run([*stage, "--set", "tracking.enabled=false"], project)
    assert (project / "data/synth/voc/ImageSets/Segmentation/train.txt").is_file()
    assert not [p for p in ("mlruns", "mlflow.db") if (project / p).exists()]
