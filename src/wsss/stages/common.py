"""Helpers shared by the stage modules."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

from wsss.config import Config, build, load_config, parse_override, deep_merge


def stage_config(args: argparse.Namespace) -> Config:
    """The resolved configuration of a stage command (``--params`` + ``--set``)."""
    return load_config(args.params, args.overrides)


def section_without_params(args: argparse.Namespace, section: str, cls):
    """A single section built from its defaults and ``--set`` overrides, for use outside a project."""
    merged = {}
    for text in args.overrides:
        merged = deep_merge(merged, parse_override(text))
    return build(cls, merged.get(section, {}), section)


def stage_runtime(cfg: Config):
    """The device and precision of a stage (``runtime.device``, ``runtime.precision``; ``wsss.runtime``)."""
    from wsss.runtime import pick_runtime

    return pick_runtime(cfg.runtime.device, cfg.runtime.precision)


CLASSIFIER_WEIGHTS = "classifier"


def initial_weights(weights: str, classifier: Path | None, section: str) -> str:
    """The backbone weights to start from: ``<section>.weights: classifier`` means the backbone of the trained CAM
    classifier (``--classifier``), the stand-in for ImageNet weights where none exist (smoke profile)."""
    if weights != CLASSIFIER_WEIGHTS:
        return weights
    if classifier is None:
        raise ValueError(f"{section}.weights is 'classifier': give the trained classifier with --classifier")
    return str(classifier)


def has_params(args: argparse.Namespace) -> bool:
    return Path(args.params).is_file()


def resume_key(args: argparse.Namespace, cfg: Config) -> str:
    """What decides a stage's output files: its configuration and its arguments, each input path with its
    size and modification time. A killed run's partial output is resumed only under the same key."""
    described: dict = {"config": cfg.to_dict()}
    for name, value in sorted(vars(args).items()):
        if name not in ("out", "workers", "params", "overrides"):
            described[name] = _path_signature(value) if isinstance(value, Path) else value
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def _path_signature(path: Path) -> list:
    try:
        stat = path.stat()
    except OSError:
        return [os.path.abspath(path)]
    return [os.path.abspath(path), stat.st_size if path.is_file() else None, stat.st_mtime_ns]


def load_trained(model, path: str | Path):
    """Load a state dict written by ``wsss.engine.train`` into ``model``; errors name the file (missing,
    unreadable, or the weights of another network, e.g. a ``cam`` model read with ``method=seam``)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: trained weights missing; run the training stage first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt or foreign file
        raise ValueError(f"{path}: not a readable state dict ({error})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"{path}: these weights are not a {type(model).__name__} of this configuration "
                         f"(another method or backbone?): {error}") from None
    return model.eval()


def trained_network(network_name: str, cfg: Config, path: str | Path):
    """The registry's network ``network_name`` of ``cfg`` with the trained weights at ``path``, in eval mode."""
    from wsss.nets.registry import build_network

    return load_trained(build_network(network_name, cfg, weights=""), path)


def train_stage(cfg, stage: str, network_name: str, dataset, out: str | Path, data_paths: tuple[str, ...], *,
                weights: str | None = None, pipeline: str = "wsss", method: str | None = None,
                collate_fn=None, model_input_size: int = 0, tags: dict[str, str] | None = None,
                **settings) -> None:
    """Train the registry's network ``network_name`` in stage ``stage`` of the shared engine and publish its
    weights at ``out`` (rank 0).

    The network's entry (``wsss.nets.registry``) gives its builder (``weights`` as ``build_network``), its
    loss and its own settings (hashed into the checkpoint), its config section the schedule. Seeds before
    building so the initial weights are reproducible; the checkpoint sits beside ``out`` so that rerunning
    the same command resumes an interrupted run, in the same MLflow run. ``settings`` override fields of the
    engine's ``TrainSettings`` (e.g. the schedule); ``collate_fn`` goes to ``wsss.engine.train``. With
    ``model_input_size``, the trained network is also logged as an MLflow model (the pipeline's final
    model), with a 1×3×size×size example. ``tags``: the stage's own MLflow tags.
    """
    import numpy as np

    from wsss.engine import TrainSettings, checkpoint_run_id, seed_everything, train
    from wsss.io import check_output_file
    from wsss.nets.registry import build_network, network
    from wsss.tracking import config_stage_run, is_rank_zero

    check_output_file(out)
    entry = network(network_name)
    train_settings = TrainSettings.from_config(getattr(cfg, entry.section), cfg.runtime, cfg.seed, **settings)
    config = entry.settings_dict(cfg)
    runtime = stage_runtime(cfg)
    seed_everything(cfg.seed)
    model = build_network(network_name, cfg, weights)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{network_name}: {sum(p.numel() for p in model.parameters())} parameters, {trainable} trained", flush=True)
    resumed_run = checkpoint_run_id(model, dataset, train_settings, runtime, Path(out).parent, config)
    with config_stage_run(cfg, stage, pipeline=pipeline, method=cfg.method if method is None else method,
                          data_paths=data_paths, system_metrics=True, resume_run_id=resumed_run,
                          tags=tags) as tracked:
        model_path = train(model, entry.loss_fn(cfg), dataset, train_settings, runtime, Path(out).parent, tracked,
                           config=config, collate_fn=collate_fn)
        if is_rank_zero():
            os.replace(model_path, out)
            tracked.log_artifact(out, "model")
            if model_input_size:
                example = np.zeros((1, 3, model_input_size, model_input_size), np.float32)
                tracked.log_model(model.cpu().eval(), stage, example)
