"""Reliability: bad input and faults, as a user meets them through the ``wsss`` command.

Every case asserts the exit code, that the message names the file or key, that an expected error shows no
traceback, that nothing outside the output changed and that nothing half-written is left. The kill cases
stop a stage with SIGKILL part-way, rerun the same command and compare the output byte for byte with an
uninterrupted run.
"""

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from wsss.cli import main
from wsss.config import deep_merge
from wsss.data.cam_files import load_cams, save_cams

from conftest import ROOT, closed_port

pytestmark = pytest.mark.reliability

TINY = {
    "tracking": {"enabled": False},
    "synth_voc": {"train": 8, "val": 24, "train_aug": 48, "size": 80},
    "synth_sod": {"train": 24, "test": 24, "size": 64},
    "profiles": {"smoke": {
        "train_cls": {"batch": 4, "epochs": 1, "crop": 32, "resize_long": [32, 48]},
        "infer_cam": {"scales": [1.0, 1.5]},
        "train_seg": {"batch": 4, "iterations": 3, "crop": 32},
        "ldf": {"batch": 2, "epochs": 1, "fine_epochs": 1, "width": 8, "train_sizes": [32], "test_size": 32}}},
}
VOC, CLS, CAMS, PSEUDO = "data/prepared/voc", "models/cam/classifier/model.pt", "data/cams/cam/train_aug", "data/pseudo/cam"
SOD, DECOUPLED, LDF = "data/prepared/sod", "data/sod/ldf/decoupled", "models/ldf/model.pt"
SEG = "models/cam/deeplab/model.pt"
VOC2012 = ["--set", "voc.source=voc2012", "--set", 'voc.sbd_root=""']  # read the --set voc.root tree


class Result:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def failed_cleanly(self, *named: str) -> None:
        """Exit 2, a ``wsss: error:`` message that names each of ``named``, no traceback."""
        assert self.code == 2, (self.code, self.err[-2000:])
        assert "Traceback" not in self.err, self.err
        assert "wsss: error:" in self.err, self.err
        for name in named:
            assert name in self.err, f"{name!r} not in: {self.err}"


def wsss(*argv) -> Result:
    """``wsss argv`` in this process (tracebacks of unexpected exceptions are captured as the CLI would show)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:  # argparse
            code = exit_.code
        except BaseException:  # noqa: BLE001 - a traceback is what the case must not produce
            import traceback

            traceback.print_exc(file=err)
            code = 1
    return Result(code, out.getvalue(), err.getvalue())


def snapshot(root: Path) -> dict:
    """Every path under ``root`` with its size and modification time."""
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def leftovers(root: Path) -> list[str]:
    """Hidden temporary names (``.x.tmp*``, ``.x.partial``, ``.x.lock``, ``.x.old``) anywhere under ``root``."""
    return [p.relative_to(root).as_posix() for p in root.rglob(".*")
            if any(part in p.name for part in (".tmp", ".partial", ".lock", ".old"))]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A project with the tiny synthetic VOC and SOD sets prepared and every model of the chain trained."""
    root = tmp_path_factory.mktemp("reliability") / "project"
    root.mkdir()
    params = deep_merge(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cwd = os.getcwd()
    os.chdir(root)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for argv in (["data", "synth-voc", "--out", "data/synth/voc", "--workers", 1],
                     ["data", "prepare-voc", "--out", VOC, "--workers", 1],
                     ["train-cls", "--voc", VOC, "--out", CLS],
                     ["infer-cam", "--voc", VOC, "--model", CLS, "--out", CAMS],
                     ["crf", "--voc", VOC, "--cams", CAMS, "--out", PSEUDO],
                     ["train-seg", "--voc", VOC, "--labels", PSEUDO, "--classifier", CLS, "--out", SEG],
                     ["data", "synth-sod", "--out", "data/synth/sod", "--workers", 1],
                     ["data", "prepare-sod", "--out", SOD, "--workers", 1],
                     ["decouple", "--sod", SOD, "--out", DECOUPLED],
                     ["train-ldf", "--sod", SOD, "--labels", DECOUPLED, "--out", LDF]):
            result = wsss(*argv)
            assert result.code == 0, (argv, result.err[-3000:])
    finally:
        torch.set_num_threads(threads)
        os.chdir(cwd)
    return root


@pytest.fixture
def project(base, tmp_path, monkeypatch, one_thread) -> Path:
    """A private copy of ``base``, the working directory of the test."""
    root = tmp_path / "project"
    shutil.copytree(base, root, symlinks=True)
    monkeypatch.chdir(root)
    return root


def fails_touching_nothing(project: Path, argv: list, *named: str) -> Result:
    """Run a command that must fail; nothing under the project may change."""
    before = snapshot(project)
    result = wsss(*argv)
    result.failed_cleanly(*named)
    assert snapshot(project) == before
    return result


# -- output paths ---------------------------------------------------------------------------------

@pytest.mark.parametrize("out", ["", ".", ".."])
def test_an_output_that_names_the_current_folder_is_refused(project, out):
    fails_touching_nothing(project, ["crf", "--voc", VOC, "--cams", CAMS, "--out", out], "current folder")


def test_an_output_file_never_replaces_a_folder(project):
    (project / "notes").mkdir()
    (project / "notes" / "mine.txt").write_text("keep me")
    fails_touching_nothing(project, ["evaluate", "segmentation", "--pred", PSEUDO, "--gt", "data/synth/voc/SegmentationClass",
                                     "--out", "notes", "--no-track"], "notes", "folder")


def test_an_output_folder_never_replaces_a_folder_no_stage_wrote(project):
    (project / "mine").mkdir()
    (project / "mine" / "thesis.tex").write_text("keep me")
    fails_touching_nothing(project, ["crf", "--voc", VOC, "--cams", CAMS, "--out", "mine"], "mine", "no wsss stage wrote")


def test_an_output_folder_replaces_its_previous_version(project):
    previous = {p.name: p.read_bytes() for p in (project / PSEUDO).iterdir()}
    (project / PSEUDO / "stale.png").write_bytes(b"from an older run")
    assert wsss("crf", "--voc", VOC, "--cams", CAMS, "--out", PSEUDO).code == 0
    assert {p.name: p.read_bytes() for p in (project / PSEUDO).iterdir()} == previous
    assert not leftovers(project)


@pytest.mark.parametrize("argv, named", [
    (["crf", "--voc", VOC, "--cams", CAMS, "--out", CAMS], "--cams"),
    (["crf", "--voc", VOC, "--cams", CAMS, "--out", "data"], "--voc"),
    (["infer-cam", "--voc", VOC, "--model", CLS, "--out", "models/cam"], "--model"),
    (["evaluate", "segmentation", "--pred", PSEUDO, "--gt", "data/synth/voc/SegmentationClass", "--out", PSEUDO,
      "--no-track"], "--pred"),
])
def test_an_output_that_is_or_holds_an_input_is_refused(project, argv, named):
    fails_touching_nothing(project, argv, named, "would replace the input")


def test_an_output_below_a_file_is_refused(project):
    fails_touching_nothing(project, ["evaluate", "segmentation", "--pred", PSEUDO, "--gt", "data/synth/voc/SegmentationClass",
                                     "--out", "params.yaml/scores.json", "--no-track"], "params.yaml", "is a file")


def test_an_output_where_nothing_can_be_written_is_one_line(project):
    fails_touching_nothing(project, ["evaluate", "segmentation", "--pred", PSEUDO, "--gt", "data/synth/voc/SegmentationClass",
                                     "--out", "/proc/wsss/scores.json", "--no-track"], "/proc/wsss")


def test_a_training_output_that_is_a_folder_is_refused_before_training(project):
    (project / "models/elsewhere").mkdir(parents=True)
    (project / "models/elsewhere/keep.txt").write_text("x")
    fails_touching_nothing(project, ["train-cls", "--voc", VOC, "--out", "models/elsewhere"], "models/elsewhere", "folder")


# -- VOC and SOD data ------------------------------------------------------------------------------

def _raw_copy(project: Path, dataset: str) -> Path:
    """A user's copy of a synthetic set under ``data/raw/<dataset>`` (no stage's marker), to damage."""
    root = project / "data/raw" / dataset
    shutil.copytree(project / "data/synth" / dataset, root)
    (root / ".wsss-output").unlink()
    return root


def test_a_jpeg_truncated_after_its_header_fails_prepare(project):
    root = _raw_copy(project, "voc")
    image = root / "JPEGImages" / "2026_000003.jpg"
    image.write_bytes(image.read_bytes()[:400])
    fails_touching_nothing(project, ["data", "prepare-voc", "--out", "data/prepared/voc2", "--set", f"voc.root={root}", *VOC2012],
                           "2026_000003.jpg")


def test_a_mask_of_another_size_fails_prepare(project):
    root = _raw_copy(project, "voc")
    mask = root / "SegmentationClass" / "2026_000001.png"
    Image.open(mask).crop((0, 0, 40, 40)).save(mask)
    fails_touching_nothing(project, ["data", "prepare-voc", "--out", "data/prepared/voc2", "--set", f"voc.root={root}", *VOC2012],
                           "2026_000001.png", "40x40")


def test_a_label_outside_the_classes_fails_prepare(project):
    root = _raw_copy(project, "voc")
    mask = root / "SegmentationClass" / "2026_000002.png"
    pixels = np.asarray(Image.open(mask)).copy()
    pixels[0, 0] = 77
    Image.fromarray(pixels).save(mask)
    fails_touching_nothing(project, ["data", "prepare-voc", "--out", "data/prepared/voc2", "--set", f"voc.root={root}", *VOC2012],
                           "2026_000002.png", "77")


def test_an_empty_split_fails_prepare(project):
    root = _raw_copy(project, "voc")
    (root / "ImageSets/Segmentation/val.txt").write_text("\n")
    fails_touching_nothing(project, ["data", "prepare-voc", "--out", "data/prepared/voc2", "--set", f"voc.root={root}", *VOC2012],
                           "val.txt", "empty")


def test_a_missing_voc_says_where_to_get_it(project):
    result = fails_touching_nothing(project, ["data", "prepare-voc", "--out", "data/prepared/voc2",
                                              "--set", "voc.root=data/raw/nowhere", *VOC2012], "data/raw/nowhere")
    assert "VOC" in result.err and "http" in result.err


def test_a_sod_mask_of_another_size_fails_prepare(project):
    root = _raw_copy(project, "sod")
    mask = next((root / "ECSSD" / "masks").glob("*.png"))
    Image.open(mask).crop((0, 0, 20, 20)).save(mask)
    fails_touching_nothing(project, ["data", "prepare-sod", "--out", "data/prepared/sod2", "--set", f"sod.root={root}"],
                           mask.name)


def test_an_empty_sod_mask_fails_prepare(project):
    root = _raw_copy(project, "sod")
    mask = next((root / "ECSSD" / "masks").glob("*.png"))
    Image.new("L", Image.open(mask).size).save(mask)
    fails_touching_nothing(project, ["data", "prepare-sod", "--out", "data/prepared/sod2", "--set", f"sod.root={root}"],
                           mask.name, "empty")


def test_an_unreadable_sod_mask_fails_prepare(project):
    root = _raw_copy(project, "sod")
    mask = next((root / "DUTS-TR" / "masks").glob("*.png"))
    mask.write_bytes(b"\x89PNG not really")
    fails_touching_nothing(project, ["data", "prepare-sod", "--out", "data/prepared/sod2", "--set", f"sod.root={root}"],
                           mask.name)


# -- saliency maps and CAM files --------------------------------------------------------------------

def _saliency_case(project: Path) -> tuple[Path, Path, np.ndarray]:
    """A folder of 16-bit soft maps of the ECSSD masks, and their exact values in [0, 1]."""
    gt = project / "data/synth/sod/ECSSD/masks"
    rng = np.random.default_rng(0)
    pred16, values = project / "pred16", {}
    pred16.mkdir()
    for mask in sorted(gt.glob("*.png")):
        truth = np.asarray(Image.open(mask).convert("L")) > 128
        soft = np.clip(0.6 * truth + rng.uniform(0, 0.4, truth.shape), 0, 1)
        levels = np.round(soft * 65535).astype(np.uint16)
        Image.fromarray(levels).save(pred16 / mask.name)
        values[mask.stem] = (levels / 65535, truth)
    return gt, pred16, values


def test_a_16_bit_saliency_map_scores_its_own_values(project):
    gt, pred16, values = _saliency_case(project)
    assert wsss("evaluate", "saliency", "--pred", pred16, "--gt", gt, "--out", "s.json", "--no-track").code == 0
    import json

    mae = json.loads((project / "s.json").read_text())["ECSSD"]["mae"]
    expected = np.mean([np.abs((p - p.min()) / (p.max() - p.min()) - t).mean() for p, t in values.values()])
    assert mae == pytest.approx(expected, abs=2e-3)


def test_a_16_bit_mask_scores_as_its_8_bit_copy(project):
    gt8 = project / "data/synth/sod/ECSSD/masks"
    gt16 = project / "gt16"
    gt16.mkdir()
    for mask in gt8.glob("*.png"):
        Image.fromarray(np.asarray(Image.open(mask).convert("L")).astype(np.uint16) * 257).save(gt16 / mask.name)
    pred = project / "pred8"
    shutil.copytree(gt8, pred)
    for name, gt in (("8.json", gt8), ("16.json", gt16)):
        assert wsss("evaluate", "saliency", "--pred", pred, "--gt", gt, "--name", "x", "--out", name, "--no-track").code == 0
    assert (project / "8.json").read_text() == (project / "16.json").read_text()


def _poisoned_cams(project: Path) -> tuple[Path, str]:
    cams = project / "cams_nan"
    shutil.copytree(project / CAMS, cams)
    victim = sorted(cams.glob("*.npz"))[2]
    keys, values = load_cams(victim)
    values[:, 0, 0] = np.nan
    with open(victim, "wb") as handle:
        np.savez(handle, keys=keys.astype(np.int16), cams=values.astype(np.float16))
    return cams, victim.name


def test_cams_with_nan_are_refused_by_evaluate(project):
    cams, victim = _poisoned_cams(project)
    fails_touching_nothing(project, ["evaluate", "segmentation", "--cams", "--pred", cams,
                                     "--gt", "data/synth/voc/SegmentationClass", "--out", "c.json", "--no-track"],
                           victim, "NaN")


def test_cams_with_nan_are_refused_by_crf(project):
    cams, victim = _poisoned_cams(project)
    fails_touching_nothing(project, ["crf", "--voc", VOC, "--cams", cams, "--out", "pseudo2"], victim, "NaN")


def test_a_corrupt_cam_file_is_named(project):
    cams = project / "cams_bad"
    shutil.copytree(project / CAMS, cams)
    victim = sorted(cams.glob("*.npz"))[0]
    victim.write_bytes(b"PK\x03\x04 broken")
    fails_touching_nothing(project, ["crf", "--voc", VOC, "--cams", cams, "--out", "pseudo2"], victim.name)


def test_save_cams_refuses_what_load_cams_refuses(tmp_path):
    with pytest.raises(ValueError, match="finite"):
        save_cams(tmp_path / "a.npz", [1], np.full((1, 4, 4), np.nan))
    assert not list(tmp_path.iterdir())


# -- predictions -------------------------------------------------------------------------------------

def test_predictions_that_are_a_file_are_one_line(project):
    fails_touching_nothing(project, ["evaluate", "segmentation", "--pred", "params.yaml",
                                     "--gt", "data/synth/voc/SegmentationClass", "--out", "x.json", "--no-track"],
                           "params.yaml")


def test_a_missing_prediction_is_named(project):
    pred = project / "pred_part"
    shutil.copytree(project / "data/synth/sod/ECSSD/masks", pred)
    missing = sorted(pred.glob("*.png"))[1]
    missing.unlink()
    fails_touching_nothing(project, ["evaluate", "saliency", "--pred", pred, "--gt", "data/synth/sod/ECSSD/masks",
                                     "--out", "s.json", "--no-track"], missing.stem)


# -- checkpoints and trained weights --------------------------------------------------------------------

def test_a_corrupt_model_is_named(project):
    (project / CLS).write_bytes(b"\x00" * 100)
    fails_touching_nothing(project, ["infer-cam", "--voc", VOC, "--model", CLS, "--out", "cams2"], CLS)


def test_a_corrupt_classifier_for_deeplab_is_named(project):
    (project / CLS).write_bytes(b"garbage")
    fails_touching_nothing(project, ["train-seg", "--voc", VOC, "--labels", PSEUDO, "--classifier", CLS,
                                     "--out", "models/cam/deeplab2/model.pt"], CLS)


def test_the_weights_of_another_network_are_named(project):
    fails_touching_nothing(project, ["infer-cam", "--voc", VOC, "--model", SEG, "--out", "cams2"], SEG)


def test_a_corrupt_checkpoint_is_named(project):
    checkpoint = project / "models/cam/classifier/checkpoint.pt"
    checkpoint.write_bytes(b"PK\x03\x04 half a zip")
    result = wsss("train-cls", "--voc", VOC, "--out", CLS)
    result.failed_cleanly("checkpoint.pt", "delete it")


# -- configuration and size limits --------------------------------------------------------------------

@pytest.mark.parametrize("setting, named", [
    ("train_cls.lrr=0.1", "train_cls.lrr"),
    ("train_cls.batch=many", "train_cls.batch"),
    ("synth_voc.size=1000000000", "synth_voc.size"),
    ("evaluate.bg_sweep=[0,1,0.0000001]", "bg_sweep"),
    ("runtime.workers=100000", "workers"),
])
def test_bad_configuration_names_the_key(project, setting, named):
    fails_touching_nothing(project, ["crf", "--voc", VOC, "--cams", CAMS, "--out", "p2", "--set", setting], named)


def test_a_huge_threshold_sweep_is_refused_at_once(project):
    start = time.perf_counter()
    fails_touching_nothing(project, ["evaluate", "segmentation", "--cams", "--pred", CAMS,
                                     "--gt", "data/synth/voc/SegmentationClass", "--out", "c.json", "--no-track",
                                     "--bg-thresholds", "0:1e9:1e-9"], "threshold")
    assert time.perf_counter() - start < 10


def test_too_many_workers_is_refused(project):
    before = snapshot(project)
    result = wsss("crf", "--voc", VOC, "--cams", CAMS, "--out", "p2", "--workers", "100000")
    assert result.code == 2 and "--workers" in result.err and "Traceback" not in result.err
    assert snapshot(project) == before


# -- tracking ---------------------------------------------------------------------------------------------

def test_an_unreachable_tracking_server_fails_in_seconds_before_any_result(project, monkeypatch):
    address = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", address)
    start = time.perf_counter()
    result = fails_touching_nothing(project, ["evaluate", "segmentation", "--pred", PSEUDO,
                                              "--gt", "data/synth/voc/SegmentationClass", "--out", "scores.json",
                                              "--set", "tracking.enabled=true"], address, "tracking.enabled=false")
    assert time.perf_counter() - start < 15
    assert len(result.err.strip().splitlines()) == 1


def test_a_run_left_running_by_a_dead_process_is_marked_killed(mlflow_uri, project):
    import mlflow

    dead = subprocess.Popen(["true"])
    dead.wait()
    mlflow.set_tracking_uri(mlflow_uri)
    experiment = mlflow.set_experiment("wsss/synthetic-voc")
    client = mlflow.MlflowClient()
    orphan = client.create_run(experiment.experiment_id, tags={"host": socket.gethostname(), "pid": str(dead.pid)})
    alive = client.create_run(experiment.experiment_id, tags={"host": socket.gethostname(), "pid": str(os.getpid())})
    assert wsss("crf", "--voc", VOC, "--cams", CAMS, "--out", PSEUDO, "--set", "tracking.enabled=true").code == 0
    assert client.get_run(orphan.info.run_id).info.status == "KILLED"
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"


# -- kill -9, then rerun ---------------------------------------------------------------------------------

def _command(argv) -> list[str]:
    return [sys.executable, "-m", "wsss.cli", *map(str, argv)]


def _kill_when(argv, cwd: Path, ready, timeout: float = 120) -> None:
    """Start ``wsss argv``, SIGKILL it as soon as ``ready()`` is true; fail if it finished first."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(_command(argv), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise AssertionError(f"{argv} ended ({process.returncode}) before it could be killed: "
                                 f"{process.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, f"{argv}: not ready after {timeout} s"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _complete_count(partial: Path, suffix: str) -> int:
    return sum(1 for p in partial.rglob(f"*{suffix}") if not p.name.startswith(".")) if partial.is_dir() else 0


KILLED_STAGES = {
    "infer_cam": (["infer-cam", "--voc", VOC, "--model", CLS, "--out", "{out}"], ".npz", 48),
    "crf": (["crf", "--voc", VOC, "--cams", CAMS, "--out", "{out}"], ".png", 48),
    "infer_seg": (["infer-seg", "--voc", VOC, "--model", SEG, "--split", "val", "--out", "{out}"], ".png", 24),
    "decouple": (["decouple", "--sod", SOD, "--out", "{out}"], ".png", 48),
    "infer_ldf": (["infer-ldf", "--sod", SOD, "--model", LDF, "--split", "ECSSD", "--out", "{out}"], ".png", 24),
}


@pytest.mark.parametrize("stage", sorted(KILLED_STAGES))
def test_a_killed_stage_resumes_to_the_same_bytes(project, stage):
    template, suffix, total = KILLED_STAGES[stage]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def argv(out):
        return [part.format(out=out) for part in template]

    subprocess.run(_command(argv("whole")), cwd=project, env=env, check=True, capture_output=True)
    partial = project / ".killed.partial"
    _kill_when(argv("killed"), project, lambda: _complete_count(partial, suffix) >= 2)
    done = _complete_count(partial, suffix)
    assert 2 <= done < total, f"{done} of {total} files when killed"
    rerun = subprocess.run(_command(argv("killed")), cwd=project, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert _files(project / "killed") == _files(project / "whole")
    assert not leftovers(project)


def test_a_killed_training_resumes_in_the_same_tracking_run(mlflow_uri, project):
    import mlflow

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    longer = ["--set", "train_cls.epochs=3", "--set", "runtime.checkpoint_every=2"]
    subprocess.run(_command(["train-cls", "--voc", VOC, "--out", "models/whole/model.pt", *longer]), cwd=project,
                   env=env, check=True, capture_output=True)
    tracked = [*longer, "--set", "tracking.enabled=true"]
    checkpoint = project / "models/killed/checkpoint.pt"
    _kill_when(["train-cls", "--voc", VOC, "--out", "models/killed/model.pt", *tracked], project, checkpoint.is_file)
    rerun = subprocess.run(_command(["train-cls", "--voc", VOC, "--out", "models/killed/model.pt", *tracked]),
                           cwd=project, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming" in rerun.stdout + rerun.stderr
    whole = torch.load(project / "models/whole/model.pt", weights_only=True)
    resumed = torch.load(project / "models/killed/model.pt", weights_only=True)
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)
    runs = mlflow.MlflowClient(mlflow_uri).search_runs(
        [mlflow.MlflowClient(mlflow_uri).get_experiment_by_name("wsss/synthetic-voc").experiment_id])
    assert [run.info.status for run in runs] == ["FINISHED"]
    steps = [m.step for m in mlflow.MlflowClient(mlflow_uri).get_metric_history(runs[0].info.run_id, "train/loss")]
    assert max(steps) == 36 and min(steps) <= 10
    assert not checkpoint.exists() and not leftovers(project)


def test_a_voc_root_set_beside_the_synthetic_source_is_refused_not_ignored(project):
    fails_touching_nothing(project, ["data", "prepare-voc", "--out", "data/prepared/voc2", "--set", "voc.root=data/raw/x"],
                           "data/raw/x", "voc.source=voc2012")
