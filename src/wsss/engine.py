"""The one training loop of every method: methods differ by network and loss function only.

A plain loop in the style of torchvision's ``references/segmentation/train.py`` (no framework):
``train`` sets up (runtime, optimiser, checkpoint, DDP) and runs ``train_one_epoch`` until the last step.

* SGD over the four groups of ``model.param_groups()`` (pretrained weights, pretrained biases, new weights, new
  biases) with lr multipliers 1/2/10/20 and no weight decay on biases, and the poly schedule
  ``lr = lr0 · (1 − step/max_steps)^power`` set before every step — ``PolyOptimizer`` and ``get_parameter_groups``
  of jiwoon-ahn/psa@9493e59:tool/torchutils.py:10-32. ``polyoptimizer_bug`` reproduces its ``SGD.__init__(params, lr, weight_decay)``
  call, which puts the weight decay in the momentum slot (jiwoon-ahn/psa@9493e59:tool/torchutils.py:13). LDF's
  per-epoch triangle schedule and Nesterov momentum are options (weijun88/LDF@d49ff02:train-fine/train.py:44-51);
  its weight decay on every parameter comes from a network that returns its biases in the weight groups;
* the caller's ``Runtime`` (``wsss.runtime``: bf16 autocast on CPU, fp16 AMP with a ``GradScaler`` on
  CUDA, or fp32; channels-last), the one place precision is decided;
* DDP under ``torchrun`` (gloo on CPU, nccl on CUDA) with a ``DistributedSampler`` seeded and
  ``set_epoch``-ed; ``batch`` is the global batch, split over the processes; logged losses are
  all-reduced and only rank 0 logs and writes files (torchvision ``utils.save_on_master``). The
  MLflow run belongs to the caller (``wsss.tracking``): pass its ``StageRun`` as ``tracked``;
* ``out_dir/checkpoint.pt`` is written atomically at every epoch end (and every
  ``checkpoint_every`` steps); rerunning the same call resumes from it, and the final weights
  equal those of an uninterrupted run bit for bit on CPU. The file exists only while a run is
  unfinished: it is deleted once ``out_dir/model.pt`` (the state dict) is written, so a later
  run on changed inputs never resumes a finished one. A checkpoint written with other settings,
  model, data size or world size is ignored with a warning and overwritten (Snakemake and DVC
  rerun a stage exactly when its parameters change, so a stale checkpoint is expected then);
* determinism: every sample's augmentation is drawn from torch/NumPy/Python generators seeded
  with (seed, epoch, index) — independent of loader workers, world size and resumption — while
  the training process's own generators (dropout) are seeded per rank and checkpointed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from wsss.io import atomic_path
from wsss.runtime import Runtime
from wsss.tracking import StageRun

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
LossFn = Callable[[nn.Module, Any], Mapping[str, torch.Tensor]]


@dataclass(frozen=True)
class TrainSettings:
    """How to train; give ``epochs`` (psa/SEAM classifiers) or ``max_steps`` (DeepLab iterations).

    ``batch`` is the global batch. ``workers``, ``log_every``, ``checkpoint_every`` and
    ``progress`` do not change the result; every other field is part of the checkpoint fingerprint.
    """

    batch: int
    lr: float
    epochs: int = 0
    max_steps: int = 0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    schedule: str = "poly"       # poly (per step) | triangle (LDF, per epoch; needs epochs)
    nesterov: bool = False       # LDF's SGD
    polyoptimizer_bug: bool = False
    lr_multipliers: tuple[float, float, float, float] = (1.0, 2.0, 10.0, 20.0)
    seed: int = 0
    workers: int = 0
    deterministic: bool = True   # on CUDA: deterministic kernels, no cuDNN autotuning (CPU kernels already are)
    log_every: int = 10          # steps between per-step metrics
    checkpoint_every: int = 0    # steps between extra checkpoints (0: at epoch ends only)
    progress: bool = True        # tqdm bar on rank 0

    def __post_init__(self):
        if (self.epochs > 0) == (self.max_steps > 0):
            raise ValueError(f"give exactly one of epochs and max_steps (> 0), got epochs={self.epochs}, "
                             f"max_steps={self.max_steps}")
        if self.batch < 1 or self.lr <= 0 or self.log_every < 1 or self.checkpoint_every < 0 or self.workers < 0:
            raise ValueError(f"invalid training settings: {self}")
        if self.schedule not in ("poly", "triangle") or (self.schedule == "triangle" and not self.epochs):
            raise ValueError(f"schedule must be poly, or triangle with epochs, got {self.schedule!r}")
        if len(self.lr_multipliers) != 4:
            raise ValueError(f"lr_multipliers needs 4 values (one per param group), got {self.lr_multipliers}")
        object.__setattr__(self, "lr_multipliers", tuple(float(m) for m in self.lr_multipliers))

    @classmethod
    def from_config(cls, section, runtime, seed: int, **overrides) -> TrainSettings:
        """Settings from a config section with the same field names (``iterations`` → ``max_steps``),
        ``runtime`` (a ``RuntimeConfig``: workers, checkpoint_every) and the global seed."""
        values = {field.name: getattr(section, field.name) for field in dataclasses.fields(cls)
                  if hasattr(section, field.name)}
        if hasattr(section, "iterations"):
            values["max_steps"] = section.iterations
        values.update(workers=runtime.workers, checkpoint_every=runtime.checkpoint_every, seed=seed)
        values.update(overrides)
        return cls(**values)


def derive_seed(*numbers: int) -> int:
    """A well-mixed 63-bit seed from non-negative integers (NumPy ``SeedSequence``)."""
    return int(np.random.SeedSequence(numbers).generate_state(1, np.uint64)[0] >> 1)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (call it before building a network)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run a block with the global generators seeded, then give the caller its own streams back."""
    saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
    seed_everything(seed)
    try:
        yield
    finally:
        torch.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])


class _SeededSamples(Dataset):
    """``dataset[index]`` under generators seeded per sample: the key is (index, seed)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        with _seeded(seed):
            return self.dataset[index]


class _EpochSampler(DistributedSampler):
    """``DistributedSampler`` (seed, ``set_epoch``) yielding (index, augmentation seed) from ``start`` on."""

    start = 0

    def __iter__(self):
        for index in list(super().__iter__())[self.start:]:
            yield index, derive_seed(self.seed, self.epoch, index)

    def __len__(self) -> int:
        return super().__len__() - self.start


def _seed_worker(worker_id: int) -> None:
    """Seed NumPy and Python in a loader worker from torch's per-worker seed (PyTorch's reproducibility notes)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def poly_lr(base_lr: float, step: int, max_steps: int, power: float) -> float:
    """``base_lr · (1 − step/max_steps)^power`` (psa ``PolyOptimizer.step``; step counts from 0)."""
    return base_lr * (1 - step / max_steps) ** power


def triangle_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """``base_lr · (1 − |2(epoch+1)/(epochs+1) − 1|)``: weijun88/LDF@d49ff02:train-fine/train.py:50-51."""
    return base_lr * (1 - abs(2 * (epoch + 1) / (epochs + 1) - 1))


def build_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.SGD:
    """SGD over ``model.param_groups()`` with the lr multipliers, weight decay on weights only.

    jiwoon-ahn/psa@9493e59:train_cls.py:90-96: groups (lr, 2·lr, 10·lr, 20·lr), decay (wd, 0, wd, 0). With
    ``polyoptimizer_bug`` the momentum is the weight decay, as in their ``PolyOptimizer``.
    Every trainable parameter must be in a group (freeze others with ``requires_grad_(False)``).
    """
    if not callable(getattr(model, "param_groups", None)):
        raise TypeError(f"{type(model).__name__} has no param_groups() (pretrained weights, pretrained biases, "
                        "new weights, new biases)")
    groups = [list(params) for params in model.param_groups()]
    if len(groups) != 4:
        raise ValueError(f"{type(model).__name__}.param_groups() returned {len(groups)} lists, expected 4")
    grouped = {id(p) for params in groups for p in params}
    left_out = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in grouped]
    if left_out:
        raise ValueError(f"{type(model).__name__}.param_groups() leaves trainable parameters out: {left_out[:5]}")
    momentum = settings.weight_decay if settings.polyoptimizer_bug else settings.momentum
    return torch.optim.SGD(
        [{"params": params, "lr": settings.lr * mult, "lr_mult": mult,
          "weight_decay": settings.weight_decay if k % 2 == 0 else 0.0}
         for k, (params, mult) in enumerate(zip(groups, settings.lr_multipliers))],
        lr=settings.lr, momentum=momentum, nesterov=settings.nesterov)


def set_lr(optimizer: torch.optim.Optimizer, settings: TrainSettings, step: int, max_steps: int, epoch: int) -> float:
    """Set every group's lr for ``step`` of ``epoch``; return the base lr (before group multipliers)."""
    if settings.schedule == "triangle":
        lr = triangle_lr(settings.lr, epoch, settings.epochs)
    else:
        lr = poly_lr(settings.lr, step, max_steps, settings.poly_power)
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_mult"]
    return lr


def fingerprint(settings: TrainSettings, runtime: Runtime, world_size: int, dataset_size: int,
                model: nn.Module, config: Mapping | None = None) -> str:
    """A hash of everything that decides the result: a checkpoint resumes only under the same one."""
    relevant = {key: value for key, value in dataclasses.asdict(settings).items()
                if key not in ("workers", "log_every", "checkpoint_every", "progress")}
    relevant.update(device=runtime.device.type, precision=runtime.precision)
    payload = {"settings": relevant, "world_size": world_size, "dataset_size": dataset_size,
               "model": [[name, list(t.shape)] for name, t in model.state_dict().items()], "config": config}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@contextmanager
def distributed(runtime: Runtime) -> Iterator[tuple[int, int]]:
    """Join ``torchrun``'s process group from its environment (gloo on CPU, nccl on CUDA); yield (rank, world)."""
    created = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if runtime.device.type == "cuda" else "gloo")
    try:
        yield (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    finally:
        if created:
            dist.destroy_process_group()


def _rank_runtime(runtime: Runtime, deterministic: bool) -> Runtime:
    """``runtime`` on this process's GPU under ``torchrun`` (``LOCAL_RANK``), deterministic kernels if asked."""
    if runtime.device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        runtime = dataclasses.replace(runtime, device=torch.device("cuda", local_rank))
        torch.backends.cudnn.benchmark = not deterministic
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
    return runtime


def _rng_state(device: torch.device) -> dict:
    """The process's generators in types ``torch.load(weights_only=True)`` accepts."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": (name, key.tolist(), pos, has_gauss, gauss),
             "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    name, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(key, np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _all_gather(obj, world: int) -> list:
    if world == 1:
        return [obj]
    gathered = [None] * world
    dist.all_gather_object(gathered, obj)
    return gathered


def _to_device(batch, runtime: Runtime):
    if isinstance(batch, torch.Tensor):
        return runtime.batch(batch)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(item, runtime) for item in batch)
    if isinstance(batch, dict):
        return {key: _to_device(value, runtime) for key, value in batch.items()}
    return batch


def _epoch_loader(dataset: Dataset, sampler: _EpochSampler, local_batch: int, settings: TrainSettings,
                  runtime: Runtime, epoch: int, rank: int, collate_fn: Callable | None = None) -> DataLoader:
    """A loader of one epoch (from ``sampler.start``), workers seeded as in PyTorch's reproducibility notes."""
    return DataLoader(_SeededSamples(dataset), batch_size=local_batch, sampler=sampler, drop_last=True,
                      num_workers=settings.workers, worker_init_fn=_seed_worker, collate_fn=collate_fn,
                      generator=torch.Generator().manual_seed(derive_seed(settings.seed, epoch, rank)),
                      pin_memory=runtime.device.type == "cuda")


def load_checkpoint(path: Path, expected_fingerprint: str) -> dict | None:
    """The checkpoint at ``path`` if it was written under ``expected_fingerprint``, else None (with a warning)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types here; the message says which file
        raise ValueError(f"{path}: cannot read the checkpoint ({error}); delete it to start fresh") from None
    if state.get("fingerprint") != expected_fingerprint:
        warnings.warn(f"{path} was written with other settings, model, data size or world size: "
                      "starting fresh (it will be overwritten)", stacklevel=2)
        return None
    return state


def checkpoint_run_id(model: nn.Module, dataset: Dataset, settings: TrainSettings, runtime: Runtime,
                      out_dir: str | Path, config: Mapping | None = None) -> str | None:
    """The tracking run of the unfinished training that ``train`` with these arguments would resume, or None."""
    key = fingerprint(settings, runtime, int(os.environ.get("WORLD_SIZE", "1")), len(dataset), model, config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # train() warns about a stale checkpoint itself
        state = load_checkpoint(Path(out_dir) / CHECKPOINT, key)
    return state.get("tracking_run_id") if state else None


@dataclass
class Progress:
    """Where a training run stands; a checkpoint stores it beside the weights and the optimiser."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    epoch_sums: dict[str, float] = field(default_factory=dict)   # per-loss sums over this epoch's steps


def _mean_over_ranks(losses: Mapping[str, torch.Tensor], world: int) -> dict[str, float]:
    parts = torch.stack([value.detach().float() for value in losses.values()])
    if world > 1:
        dist.all_reduce(parts)  # gloo has no AVG
        parts /= world
    return dict(zip(losses, parts.tolist()))


def train_one_epoch(net: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    loader: DataLoader, settings: TrainSettings, runtime: Runtime, progress: Progress,
                    max_steps: int, world: int, log_step: Callable[[dict, float], None],
                    save_checkpoint: Callable[[], None]) -> int:
    """Run the rest of ``progress.epoch`` from ``loader`` (or until ``max_steps``); return the batches run.

    Each step: the scheduled lr, the loss under autocast, the (scaled) backward and SGD step; the losses,
    averaged over the processes, go to ``log_step(values, lr)`` and into ``progress.epoch_sums``; every
    ``checkpoint_every`` steps ``save_checkpoint()``.
    """
    batches = 0
    for batch in loader:
        lr = set_lr(optimizer, settings, progress.step, max_steps, progress.epoch)
        with runtime.autocast():
            losses = loss_fn(net, _to_device(batch, runtime))
        if "loss" not in losses:
            raise ValueError(f"loss_fn must return a dict with a 'loss' entry, got {sorted(losses)}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
        progress.step, progress.batch_in_epoch, batches = progress.step + 1, progress.batch_in_epoch + 1, batches + 1
        values = _mean_over_ranks(losses, world)
        for name, value in values.items():
            progress.epoch_sums[name] = progress.epoch_sums.get(name, 0.0) + value
        log_step(values, lr)
        if progress.step == max_steps:
            break
        if settings.checkpoint_every and progress.step % settings.checkpoint_every == 0:
            save_checkpoint()
    return batches


def train(model: nn.Module, loss_fn: LossFn, dataset: Dataset, settings: TrainSettings, runtime: Runtime,
          out_dir: str | Path, tracked: StageRun | None = None, config: Mapping | None = None,
          collate_fn: Callable | None = None) -> Path:
    """Train ``model`` in place on ``runtime`` and write its state dict to ``out_dir/model.pt``; return that path.

    ``loss_fn(model, batch)`` runs under autocast and returns a dict of scalar tensors with a
    ``"loss"`` entry (the one back-propagated); every entry is logged. ``model`` there is the
    DDP wrapper under ``torchrun``: call it, and reach attributes through ``.module`` when
    ``isinstance(model, DistributedDataParallel)``. ``config``: the method's own settings
    (e.g. its loss weights), hashed into the checkpoint fingerprint. ``collate_fn`` builds a batch from
    samples (default: stacking), e.g. LDF's one random size per batch; to stay independent of loader
    workers it must draw its randomness from the samples themselves.
    """
    out_dir = Path(out_dir)
    tracked = tracked or StageRun()
    runtime = _rank_runtime(runtime, settings.deterministic)
    with distributed(runtime) as (rank, world):
        if settings.batch % world:
            raise ValueError(f"batch {settings.batch} does not split evenly over {world} processes")
        local_batch = settings.batch // world
        main = rank == 0
        model = runtime.prepare(model)
        model.train()
        optimizer = build_optimizer(model, settings)
        scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.precision == "fp16")
        sampler = _EpochSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=settings.seed)
        steps_per_epoch = len(sampler) // local_batch
        if steps_per_epoch == 0:
            raise ValueError(f"{len(dataset)} training samples make no full batch of {settings.batch}")
        max_steps = settings.max_steps or settings.epochs * steps_per_epoch
        key = fingerprint(settings, runtime, world, len(dataset), model, config)

        checkpoint_path = out_dir / CHECKPOINT
        state = load_checkpoint(checkpoint_path, key)
        if state is None:
            progress = Progress()
            seed_everything(derive_seed(settings.seed, rank))
        else:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            _set_rng_state(state["rng"][rank], runtime.device)
            progress = Progress(state["step"], state["epoch"], state["batch_in_epoch"], state["epoch_sums"])
            if main:
                tqdm.write(f"resuming {checkpoint_path} at step {progress.step}/{max_steps} (epoch {progress.epoch})")
        tracked.set_tags({"processes": str(world)})
        net = model
        if world > 1:
            device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
            net = DistributedDataParallel(model, device_ids=device_ids)

        def save_checkpoint() -> None:
            rng = _all_gather(_rng_state(runtime.device), world)  # every rank's generators, rank order
            if main:
                with atomic_path(checkpoint_path) as tmp:
                    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                "scaler": scaler.state_dict(), **dataclasses.asdict(progress), "rng": rng,
                                "fingerprint": key, "settings": dataclasses.asdict(settings),
                                "tracking_run_id": tracked.run_id}, tmp)

        bar = tqdm(total=max_steps, initial=progress.step, desc=f"train → {out_dir}",
                   disable=not (main and settings.progress))

        def log_step(values: dict, lr: float) -> None:
            bar.update(1)
            if main and (progress.step % settings.log_every == 0 or progress.step == max_steps):
                tracked.log_metrics({**{f"train/{name}": v for name, v in values.items()}, "train/lr": lr},
                                    progress.step)
                bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{lr:.2e}")

        while progress.step < max_steps:
            sampler.set_epoch(progress.epoch)
            sampler.start = progress.batch_in_epoch * local_batch
            loader = _epoch_loader(dataset, sampler, local_batch, settings, runtime, progress.epoch, rank, collate_fn)
            started = time.perf_counter()
            batches = train_one_epoch(net, loss_fn, optimizer, scaler, loader, settings, runtime, progress,
                                      max_steps, world, log_step, save_checkpoint)
            seconds = time.perf_counter() - started
            if main and progress.batch_in_epoch:
                tracked.log_metrics({**{f"epoch/{name}": total / progress.batch_in_epoch
                                        for name, total in progress.epoch_sums.items()},
                                     "epoch/images_per_s": batches * settings.batch / seconds,
                                     "epoch/epoch": progress.epoch + 1}, progress.step)
            progress.epoch, progress.batch_in_epoch, progress.epoch_sums = progress.epoch + 1, 0, {}
            if progress.step < max_steps:
                save_checkpoint()
        bar.close()

        model_path = out_dir / MODEL
        if main:
            with atomic_path(model_path) as tmp:
                torch.save({name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}, tmp)
            checkpoint_path.unlink(missing_ok=True)
        if world > 1:
            dist.barrier()  # every rank returns once model.pt exists
    return model_path
