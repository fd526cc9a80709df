"""The pipeline against a real MLflow tracking server on a PostgreSQL backend store (tests/services/postgres.sh).

One server per test session, on a fresh database and a temporary artifact root; the tests skip when
PostgreSQL does not answer on 127.0.0.1:5432 or its driver (psycopg2) is missing. The unit-level tags and
params are tests/test_tracking.py's; an unreachable server under the in-process CLI is tests/test_reliability.py's.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import BIN, ROOT, closed_port, run

PG = {"host": "127.0.0.1", "port": 5432, "user": "wsss", "password": "wsss", "dbname": "mlflow_test"}
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
STARTUP_S = 180  # the first start runs MLflow's schema migrations on the new database (~20 s on an idle machine)


def _postgres_answers() -> bool:
    try:
        socket.create_connection((PG["host"], PG["port"]), timeout=2).close()
        return True
    except OSError:
        return False


def _skip_reason() -> str | None:
    if not _postgres_answers():
        return (f"no PostgreSQL answers on {PG['host']}:{PG['port']} "
                "(tests/services/postgres.sh starts one; ./run test calls it)")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed (pip install -e '.[test]')"
    return None


def _admin(sql: str) -> None:
    import psycopg2

    connection = psycopg2.connect(**PG)
    connection.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def _wait_healthy(uri: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"mlflow server exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"mlflow server {uri} not healthy after {STARTUP_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` on a fresh PostgreSQL database: (tracking URI, artifact root); stopped at the end."""
    if reason := _skip_reason():
        pytest.skip(reason)
    database = f"mlflow_test_{uuid.uuid4().hex[:8]}"
    _admin(f"CREATE DATABASE {database}")
    root = tmp_path_factory.mktemp("mlflow_server")
    artifacts, log = root / "artifacts", root / "server.log"
    port = closed_port()  # free now; the server binds it a moment later
    uri = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with log.open("w") as out:
        server = subprocess.Popen(
            ["mlflow", "server", "--backend-store-uri",
             f"postgresql://{PG['user']}:{PG['password']}@{PG['host']}:{PG['port']}/{database}",
             "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(uri, server, log)
        yield uri, artifacts
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the CLI and its uvicorn worker
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        _admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


@pytest.fixture
def server_project(project, mlflow_server, monkeypatch):
    """The tiny workflow copy (tests/conftest.py), tracked to the session's server."""
    uri, _ = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return project


def _all_runs(uri: str) -> list:
    import mlflow

    client = mlflow.MlflowClient(uri)
    return [run for experiment in client.search_experiments()
            for run in client.search_runs([experiment.experiment_id], max_results=1000)]


def _pipeline(project: Path, uri: str, *config: str) -> tuple[list, int]:
    """Run ``results/voc_miou.json`` once: the runs it logged and the number of jobs Snakemake ran."""
    before = {run.info.run_id for run in _all_runs(uri)}
    out = run(["snakemake", "--cores", "2", "results/voc_miou.json", *(["--config", *config] if config else [])], project)
    jobs = int(re.findall(r"(\d+) of (\d+) steps \(100%\) done", out)[-1][1])
    return [r for r in _all_runs(uri) if r.info.run_id not in before], jobs


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
