"""MLflow tracking: one run per stage execution (DESIGN.md, "MLflow").

The store is ``sqlite:///mlflow.db`` in the working directory unless ``MLFLOW_TRACKING_URI`` is
set. Every run carries the tags stage, method, dataset, profile, git commit and dirty flag, the
DVC hash of its input data and a pipeline id shared by one invocation (``WSSS_PIPELINE_ID``, set
by the Snakefile), and inside a SLURM job its id. Under DDP only rank 0 logs. ``mlflow`` is imported lazily: it costs a second.

A tracking server that does not answer is an error within seconds, before the stage does any work
(:func:`require_server`), not minutes of silent retries. A run killed with its process (kill -9, a lost
node) is marked KILLED by the next stage run on the same host; a resumed training continues its run.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import yaml

from wsss.errors import TrackingError

if TYPE_CHECKING:
    from wsss.config import Config

PIPELINE_ID_ENV = "WSSS_PIPELINE_ID"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
SERVER_TIMEOUT_S = 5
# MLflow's own HTTP client: a few quick retries instead of its default minutes of backoff
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def is_rank_zero() -> bool:
    """True outside DDP and on rank 0 under ``torchrun``."""
    return int(os.environ.get("RANK", "0")) == 0


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def require_server(uri: str | None = None) -> None:
    """Raise :class:`TrackingError` at once when ``uri`` is an HTTP(S) server that does not answer."""
    uri = uri or tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=SERVER_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # something answers (a proxy, authentication): MLflow's client takes it from here
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingError(f"MLflow tracking server {uri} (MLFLOW_TRACKING_URI) does not answer ({reason}). "
                            "Start it, unset MLFLOW_TRACKING_URI for the local store sqlite:///mlflow.db, or run "
                            "without tracking: --set tracking.enabled=false") from None


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<file>.lock`` beside a local SQLite store while it is opened: the first opening
    creates and migrates its tables, and two stages starting at once (parallel jobs on a fresh clone) would
    both migrate (``duplicate column name``) or both create the same experiment. Other stores: no lock."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    with open(uri.removeprefix("sqlite:///") + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_dead_runs(mlflow_module, experiment_id: str) -> None:
    """Set runs of ``experiment_id`` left RUNNING by a process of this host that no longer exists to KILLED."""
    client = mlflow_module.MlflowClient()
    host = socket.gethostname()
    runs = client.search_runs([experiment_id], f"attributes.status = 'RUNNING' and tags.host = '{host}'")
    for run in runs:
        pid = run.data.tags.get("pid", "")
        if pid.isdigit() and not _process_alive(int(pid)):
            client.set_terminated(run.info.run_id, status="KILLED")


def git_state(cwd: str | Path = ".") -> tuple[str, bool]:
    """The current commit and whether the work tree has uncommitted changes ("unknown" outside git)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, check=True).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def dvc_hash(path: str | Path, lock_file: str | Path = "dvc.lock") -> str:
    """The md5 DVC recorded for ``path`` in ``dvc.lock`` ("untracked" when it has none)."""
    lock_file = Path(lock_file)
    if not lock_file.is_file():
        return "untracked"
    target = Path(path).as_posix().rstrip("/")
    stages = (yaml.safe_load(lock_file.read_text()) or {}).get("stages", {})
    for stage in stages.values():
        for entry in stage.get("outs", []) + stage.get("deps", []):
            if entry.get("path", "").rstrip("/") == target and "md5" in entry:
                return entry["md5"]
    return "untracked"


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` → ``{"a.b": "1"}`` for MLflow params."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


class StageRun:
    """What a stage logs to: a thin wrapper that is a no-op when tracking is off or rank > 0."""

    def __init__(self, mlflow_module=None):
        self._mlflow = mlflow_module

    @property
    def active(self) -> bool:
        return self._mlflow is not None

    @property
    def run_id(self) -> str | None:
        return self._mlflow.active_run().info.run_id if self._mlflow else None

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self._mlflow:
            self._mlflow.log_metrics({key: float(value) for key, value in metrics.items()}, step=step)

    def set_tags(self, tags: dict[str, str]) -> None:
        if self._mlflow:
            self._mlflow.set_tags(tags)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self._mlflow:
            self._mlflow.log_artifact(str(path), artifact_path)

    def log_dict(self, data: dict, artifact_file: str) -> None:
        if self._mlflow:
            self._mlflow.log_dict(data, artifact_file)

    def log_model(self, model, name: str, input_example) -> None:
        """An MLflow model (``mlflow.pytorch``, pickled: ``torch.export`` rejects data-dependent shapes), with
        the signature inferred from ``input_example`` (a NumPy batch); the requirements are given, not inferred
        (inference imports the model in a subprocess)."""
        if self._mlflow:
            import mlflow.pytorch
            import torch

            mlflow.pytorch.log_model(model, name=name, input_example=input_example, serialization_format="pickle",
                                     pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])

    def log_figure(self, figure, artifact_file: str) -> None:
        if self._mlflow:
            self._mlflow.log_figure(figure, artifact_file)


@contextmanager
def stage_run(stage: str, *, pipeline: str, dataset: str, profile: str, params: dict | None = None,
              method: str = "", data_paths: tuple[str, ...] = (), enabled: bool = True,
              system_metrics: bool = False, resume_run_id: str | None = None,
              tags: dict[str, str] | None = None) -> Iterator[StageRun]:
    """Open the MLflow run of one stage execution in experiment ``<pipeline>/<dataset>``.

    ``resume_run_id``: continue that run (a training resumed from its checkpoint) if the store still has it.
    ``tags``: the stage's own tags beside the common ones (SC-CAM's ``round``).
    """
    if not (enabled and is_rank_zero()):
        yield StageRun()
        return
    require_server()
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    with store_lock(uri):
        experiment = mlflow.set_experiment(f"{pipeline}/{dataset}")
        mark_dead_runs(mlflow, experiment.experiment_id)
    if resume_run_id is not None and not _has_run(mlflow, resume_run_id, experiment.experiment_id):
        resume_run_id = None
    commit, dirty = git_state()
    tags = {
        "stage": stage,
        "method": method or "none",
        "dataset": dataset,
        "profile": profile,
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "pipeline_id": os.environ.get(PIPELINE_ID_ENV) or uuid.uuid4().hex,
        "data_hash": ",".join(f"{path}:{dvc_hash(path)}" for path in data_paths) or "none",
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
        **({"slurm_job_id": os.environ["SLURM_JOB_ID"]} if "SLURM_JOB_ID" in os.environ else {}),
        **(tags or {}),
    }
    with mlflow.start_run(run_id=resume_run_id, run_name=None if resume_run_id else f"{stage}{'-' + method if method else ''}",
                          tags=tags, log_system_metrics=system_metrics):
        if params:
            mlflow.log_params(flatten(params))
            mlflow.log_dict(params, "config.yaml")
        yield StageRun(mlflow)


def _has_run(mlflow_module, run_id: str, experiment_id: str) -> bool:
    try:
        return mlflow_module.get_run(run_id).info.experiment_id == experiment_id
    except mlflow_module.exceptions.MlflowException:
        return False


@contextmanager
def config_stage_run(cfg: Config, stage: str, *, pipeline: str, method: str = "",
                     data_paths: tuple[str, ...] = (), system_metrics: bool = False,
                     resume_run_id: str | None = None, tags: dict[str, str] | None = None) -> Iterator[StageRun]:
    """``stage_run`` with tags and params taken from the resolved configuration."""
    dataset = cfg.voc_dataset if pipeline == "wsss" else cfg.sod_dataset
    with stage_run(stage, pipeline=pipeline, dataset=dataset, profile=cfg.profile, params=cfg.to_dict(),
                   method=method, data_paths=data_paths, enabled=cfg.tracking.enabled,
                   system_metrics=system_metrics, resume_run_id=resume_run_id, tags=tags) as run:
        yield run
