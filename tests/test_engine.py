"""The shared training engine: optimiser groups, poly schedule, determinism, resume, DDP under torchrun."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as nnf
from torch import nn
from torch.utils.data import Dataset

from wsss.config import read_params, resolve
from wsss.engine import CHECKPOINT, MODEL, TrainSettings, build_optimizer, poly_lr, train, triangle_lr
from wsss.runtime import pick_runtime
from wsss.tracking import StageRun

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


pytestmark = pytest.mark.usefixtures("one_thread")


class TinyNet(nn.Module):
    """A "pretrained" 3x3 conv and a "new" 1x1 classifier, with psa-style ``param_groups``."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.features = nn.Conv2d(3, 8, 3, padding=1)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(8, 20, 1)

    def forward(self, images):
        return self.classifier(self.dropout(torch.relu(self.features(images)))).mean((2, 3))

    def param_groups(self):
        return [self.features.weight], [self.features.bias], [self.classifier.weight], [self.classifier.bias]


class NoisyImages(Dataset):
    """16 images of 16x16 whose "augmentation" (noise, flip) draws from torch's global generator."""

    def __init__(self, size: int = 16):
        generator = torch.Generator().manual_seed(123)
        self.images = torch.rand(size, 3, 16, 16, generator=generator)
        self.labels = (torch.rand(size, 20, generator=generator) > 0.7).float()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = self.images[index] + 0.1 * torch.randn(3, 16, 16)
        if torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image, self.labels[index]


def multilabel_loss(model, batch):
    images, labels = batch
    logits = model(images)
    loss = nnf.multilabel_soft_margin_loss(logits, labels)
    return {"loss": loss, "mean_logit": logits.detach().mean()}


class Recorder(StageRun):
    """A ``tracking.StageRun`` without MLflow that keeps what would be logged."""

    def __init__(self):
        super().__init__()
        self.rows = []

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, dict(metrics)))

    def series(self, name):
        return {step: metrics[name] for step, metrics in self.rows if name in metrics}


def settings(**changes):
    values = dict(batch=4, lr=0.1, epochs=3, seed=0, progress=False, log_every=1)
    values.update(changes)
    return TrainSettings(**values)


def run(out_dir, dropout=0.5, loss_fn=multilabel_loss, tracked=None, precision="fp32", **changes):
    torch.manual_seed(7)
    model = TinyNet(dropout)
    path = train(model, loss_fn, NoisyImages(), settings(**changes), pick_runtime("cpu", precision), out_dir, tracked)
    return torch.load(path, weights_only=True)


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


class FailOnce:
    """A loss that raises on its ``fail_at``-th call, once: an interrupted run."""

    def __init__(self, fail_at):
        self.fail_at, self.calls = fail_at, 0

    def __call__(self, model, batch):
        self.calls += 1
        if self.calls == self.fail_at:
            self.fail_at = None
            raise KeyboardInterrupt("interrupted")
        return multilabel_loss(model, batch)


def test_poly_lr_values():
    assert poly_lr(0.1, 0, 100, 0.9) == 0.1
    assert poly_lr(0.1, 50, 100, 0.9) == pytest.approx(0.1 * 0.5 ** 0.9)
    assert poly_lr(0.1, 99, 100, 0.9) == pytest.approx(0.1 * 0.01 ** 0.9)


def test_logged_lr_follows_the_poly_schedule_step_by_step(tmp_path):
    recorder = Recorder()
    run(tmp_path, tracked=recorder, epochs=2, poly_power=0.9)
    lrs = recorder.series("train/lr")
    assert sorted(lrs) == list(range(1, 9))  # 16 images / batch 4 = 4 steps per epoch
    for step, lr in lrs.items():
        assert lr == pytest.approx(0.1 * (1 - (step - 1) / 8) ** 0.9)
    epochs = recorder.series("epoch/loss")
    assert sorted(epochs) == [4, 8] and all(loss > 0 for loss in epochs.values())
    assert all(speed > 0 for speed in recorder.series("epoch/images_per_s").values())
    assert set(recorder.series("train/mean_logit")) == set(lrs)


def test_triangle_schedule_matches_ldf_per_epoch(tmp_path):
    # weijun88/LDF@d49ff02:train-fine/train.py:50-51 at 48 epochs: 0.041, 0.980, 0.041
    factors = [triangle_lr(1.0, epoch, 48) for epoch in range(48)]
    assert (round(factors[0], 3), round(max(factors), 3), round(factors[-1], 3)) == (0.041, 0.98, 0.041)
    recorder = Recorder()
    run(tmp_path, tracked=recorder, epochs=3, schedule="triangle", nesterov=True)
    lrs = recorder.series("train/lr")
    assert [lrs[step] for step in (1, 4, 5, 8, 9, 12)] == pytest.approx([0.05, 0.05, 0.1, 0.1, 0.05, 0.05])
    with pytest.raises(ValueError, match="triangle with epochs"):
        settings(epochs=0, max_steps=10, schedule="triangle")


def test_param_groups_get_lr_multipliers_and_no_decay_on_biases():
    optimizer = build_optimizer(TinyNet(), settings(lr=0.01, weight_decay=5e-4))
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01, 0.02, 0.1, 0.2])
    assert [g["weight_decay"] for g in optimizer.param_groups] == [5e-4, 0.0, 5e-4, 0.0]
    optimizer = build_optimizer(TinyNet(), settings(lr_multipliers=(1, 1, 5, 5)))
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.1, 0.1, 0.5, 0.5])


def test_polyoptimizer_bug_makes_momentum_the_weight_decay():
    real = build_optimizer(TinyNet(), settings(weight_decay=5e-4))
    assert {g["momentum"] for g in real.param_groups} == {0.9}
    assert {g["nesterov"] for g in real.param_groups} == {False}
    buggy = build_optimizer(TinyNet(), settings(weight_decay=5e-4, polyoptimizer_bug=True))
    assert {g["momentum"] for g in buggy.param_groups} == {5e-4}
    assert [g["weight_decay"] for g in buggy.param_groups] == [5e-4, 0.0, 5e-4, 0.0]


def test_parameters_left_out_of_param_groups_are_an_error():
    class Forgetful(TinyNet):
        def param_groups(self):
            return [self.features.weight], [], [self.classifier.weight], [self.classifier.bias]

    with pytest.raises(ValueError, match="features.bias"):
        build_optimizer(Forgetful(), settings())


def test_same_seed_same_weights_whatever_the_workers(tmp_path):
    first = run(tmp_path / "a")
    assert_same_weights(first, run(tmp_path / "b"))
    assert_same_weights(first, run(tmp_path / "c", workers=2))
    other = run(tmp_path / "d", seed=1)
    assert not torch.equal(first["classifier.weight"], other["classifier.weight"])


@pytest.mark.parametrize("checkpoint_every", [0, 3])
def test_interrupted_run_resumes_to_the_same_weights(tmp_path, checkpoint_every):
    reference = run(tmp_path / "reference", checkpoint_every=checkpoint_every)
    out = tmp_path / "interrupted"
    loss = FailOnce(fail_at=7)  # step 7 is mid-epoch 2: the last checkpoint is at step 6 or 4
    with pytest.raises(KeyboardInterrupt):
        run(out, loss_fn=loss, checkpoint_every=checkpoint_every)
    saved = torch.load(out / CHECKPOINT, weights_only=True)
    assert saved["step"] == (6 if checkpoint_every else 4)
    assert saved["batch_in_epoch"] == (2 if checkpoint_every else 0)
    assert not (out / MODEL).exists()
    resumed = run(out, loss_fn=loss, checkpoint_every=checkpoint_every)
    assert_same_weights(reference, resumed)
    assert loss.calls == 7 + 12 - saved["step"]  # 7 calls up to the failure, then only the missing steps
    assert not (out / CHECKPOINT).exists()  # a finished run leaves no checkpoint to resume


CHECKPOINT_KEYS = {"model", "optimizer", "scaler", "step", "epoch", "batch_in_epoch", "epoch_sums", "rng",
                   "fingerprint", "settings", "tracking_run_id"}


def test_checkpoint_holds_the_whole_training_state(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, loss_fn=FailOnce(fail_at=4), checkpoint_every=3)
    saved = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert set(saved) == CHECKPOINT_KEYS
    assert (saved["step"], saved["epoch"], saved["batch_in_epoch"]) == (3, 0, 3)
    assert set(saved["epoch_sums"]) == {"loss", "mean_logit"} and len(saved["rng"]) == 1
    assert saved["settings"]["lr"] == 0.1 and len(saved["fingerprint"]) == 64


def test_changed_settings_start_fresh_with_a_warning(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "out", loss_fn=FailOnce(fail_at=6), lr=0.1)
    with pytest.warns(UserWarning, match="starting fresh"):
        changed = run(tmp_path / "out", lr=0.05)
    assert_same_weights(changed, run(tmp_path / "fresh", lr=0.05))


def test_max_steps_runs_across_epochs_and_logs_the_partial_one(tmp_path):
    recorder, loss = Recorder(), FailOnce(fail_at=0)
    run(tmp_path, loss_fn=loss, tracked=recorder, epochs=0, max_steps=10)
    assert loss.calls == 10
    assert sorted(recorder.series("epoch/epoch").items()) == [(4, 1), (8, 2), (10, 3)]


def test_bf16_autocast_channels_last_trains(tmp_path):
    weights = run(tmp_path / "a", precision="bf16", epochs=1)
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert_same_weights(weights, run(tmp_path / "b", precision="bf16", epochs=1))


def test_loss_without_loss_entry_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="'loss' entry"):
        run(tmp_path, loss_fn=lambda model, batch: {"total": model(batch[0]).mean()})


def test_settings_validation_and_from_config():
    with pytest.raises(ValueError, match="exactly one of epochs and max_steps"):
        TrainSettings(batch=4, lr=0.1, epochs=2, max_steps=10)
    cfg = resolve(read_params(ROOT / "params.yaml"), ["train_cls.polyoptimizer_bug=true", "runtime.device=cpu"])
    made = TrainSettings.from_config(cfg.train_cls, cfg.runtime, seed=3)
    section = cfg.train_cls
    assert (made.batch, made.epochs, made.max_steps, made.lr) == (section.batch, section.epochs, 0, section.lr)
    assert made.polyoptimizer_bug and (made.seed, made.workers) == (3, cfg.runtime.workers)
    made = TrainSettings.from_config(cfg.train_seg, cfg.runtime, seed=0, log_every=50)
    assert (made.max_steps, made.epochs, made.lr, made.log_every) == (cfg.train_seg.iterations, 0, cfg.train_seg.lr, 50)


DDP_SCRIPT = """
import sys
import torch
sys.path.insert(0, {tests!r})
from test_engine import NoisyImages, TinyNet, FailOnce, settings
from wsss.engine import train
from wsss.runtime import pick_runtime
from wsss.tracking import stage_run

fail_at = int(sys.argv[2])
torch.manual_seed(7)
with stage_run("train_test", pipeline="wsss", dataset="tiny", profile="smoke") as run:
    train(TinyNet(0.0), FailOnce(fail_at), NoisyImages(), settings(checkpoint_every=3), pick_runtime("cpu", "fp32"),
          sys.argv[1], run)
"""


def torchrun(script, out, fail_at, env):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(out), str(fail_at)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_torchrun_two_processes_log_one_run_and_match_single_process(tmp_path, mlflow_uri):
    import mlflow

    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT.format(tests=str(HERE))))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"

    failed = torchrun(script, out, fail_at=7, env=env)
    assert failed.returncode != 0
    saved = torch.load(out / CHECKPOINT, weights_only=True)
    assert set(saved) == CHECKPOINT_KEYS
    assert saved["step"] == 6 and len(saved["rng"]) == 2

    done = torchrun(script, out, fail_at=0, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (out / CHECKPOINT).exists()
    client = mlflow.MlflowClient(mlflow_uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]  # one run per launch, not per rank
    [finished] = [r for r in runs if r.info.status == "FINISHED"]
    assert finished.data.metrics["epoch/epoch"] == 3
    assert len(client.get_metric_history(finished.info.run_id, "train/loss")) == 12 - 6

    # the global batch is split over the ranks and gradients averaged: the same training as one process
    single = run(tmp_path / "single", dropout=0.0)
    ddp = torch.load(out / MODEL, weights_only=True)
    assert ddp.keys() == single.keys()
    for name in ddp:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-5, atol=1e-6)
