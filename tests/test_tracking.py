"""One MLflow run per stage execution, with the tags DESIGN.md lists; rank > 0 and disabled runs log nothing."""

import mlflow
import yaml

from wsss.config import read_params, resolve
from wsss.tracking import config_stage_run, dvc_hash, flatten, stage_run

from conftest import ROOT


def runs(uri):
    client = mlflow.MlflowClient(uri)
    experiments = client.search_experiments()
    return [run for exp in experiments for run in client.search_runs([exp.experiment_id])]


def test_stage_run_logs_tags_params_and_metrics(mlflow_uri, monkeypatch):
    monkeypatch.setenv("WSSS_PIPELINE_ID", "pipe-123")
    cfg = resolve(read_params(ROOT / "params.yaml"))
    with config_stage_run(cfg, "prepare_voc", pipeline="wsss", method="cam") as run:
        assert run.active
        run.log_metrics({"images_per_s": 12.5})
    [logged] = runs(mlflow_uri)
    tags = logged.data.tags
    assert tags["stage"] == "prepare_voc" and tags["method"] == "cam"
    assert tags["dataset"] == "synthetic-voc" and tags["profile"] == "smoke"
    assert tags["pipeline_id"] == "pipe-123"
    assert len(tags["git_commit"]) in (40, 7) or tags["git_commit"] == "unknown"
    assert tags["git_dirty"] in ("true", "false")
    assert logged.data.params["train_cls.lr"] == "0.1"
    assert logged.data.metrics["images_per_s"] == 12.5
    experiment = mlflow.MlflowClient(mlflow_uri).get_experiment(logged.info.experiment_id)
    assert experiment.name == "wsss/synthetic-voc"


def test_nothing_is_logged_when_disabled_or_not_rank_zero(mlflow_uri, monkeypatch):
    with stage_run("x", pipeline="wsss", dataset="d", profile="smoke", enabled=False) as run:
        assert not run.active
        run.log_metrics({"a": 1.0})
    monkeypatch.setenv("RANK", "1")
    with stage_run("x", pipeline="wsss", dataset="d", profile="smoke") as run:
        assert not run.active
    assert runs(mlflow_uri) == []


def test_dvc_hash_reads_the_lock_file(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {"synth_voc": {
        "cmd": "x", "outs": [{"path": "data/synth/voc", "md5": "abc.dir"}]}}}))
    assert dvc_hash("data/synth/voc", lock) == "abc.dir"
    assert dvc_hash("data/other", lock) == "untracked"
    assert dvc_hash("data/synth/voc", tmp_path / "absent.lock") == "untracked"


def test_flatten_nested_params():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": "1", "a.c": "[1, 2]", "d": "x"}


def test_a_logged_model_loads_back_and_predicts_the_same(mlflow_uri):
    import numpy as np
    import torch

    from wsss.nets.deeplab import build_segmenter

    torch.manual_seed(0)
    model = build_segmenter("deeplab_v2", "small").eval()
    example = np.random.default_rng(0).normal(size=(1, 3, 32, 32)).astype(np.float32)
    with stage_run("train_seg", pipeline="wsss", dataset="d", profile="smoke") as run:
        run.log_model(model, "train_seg", example)
        run_id = run.run_id
    [logged] = mlflow.search_logged_models(filter_string=f"source_run_id = '{run_id}'", output_format="list")
    loaded = mlflow.pytorch.load_model(logged.model_uri).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(torch.from_numpy(example)), model(torch.from_numpy(example)))


def _open_fresh_store(uri: str, barrier, stage: str) -> None:
    import os

    os.environ["MLFLOW_TRACKING_URI"] = uri
    barrier.wait()
    with stage_run(stage, pipeline="wsss", dataset="synthetic-voc", profile="smoke") as run:
        run.log_metrics({"done": 1.0})


def test_stages_starting_at_once_share_a_fresh_sqlite_store(tmp_path):
    """Parallel jobs of a first run: each creates and migrates the new store and the experiment, one at a time."""
    import multiprocessing

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    processes = [context.Process(target=_open_fresh_store, args=(uri, barrier, f"stage{i}")) for i in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [process.exitcode for process in processes] == [0] * 4
    logged = runs(uri)
    assert sorted(run.data.tags["stage"] for run in logged) == [f"stage{i}" for i in range(4)]
    assert {run.info.experiment_id for run in logged} == {logged[0].info.experiment_id}
