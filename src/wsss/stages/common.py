"""Helpers shared by the stage modules."""

from __future__ import annotations

import argparse
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


def has_params(args: argparse.Namespace) -> bool:
    return Path(args.params).is_file()


def load_trained(model, path: str | Path):
    """Load a state dict written by ``wsss.engine.train`` into ``model`` (errors name the file)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: trained weights missing; run the training stage first")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def train_stage(cfg, stage: str, build_model, loss_fn, dataset, section, out: str | Path,
                data_paths: tuple[str, ...], method_config: dict | None = None) -> None:
    """Train a model of ``stage`` in the shared engine and publish its weights at ``out`` (rank 0).

    Seeds before ``build_model()`` so the initial weights are reproducible; the checkpoint sits
    beside ``out`` so that rerunning the same command resumes an interrupted run (under the same
    settings and ``method_config``, e.g. the loss weights).
    """
    import os

    from wsss.engine import TrainSettings, seed_everything, train
    from wsss.tracking import config_stage_run, is_rank_zero

    with config_stage_run(cfg, stage, pipeline="wsss", method=cfg.method, data_paths=data_paths,
                          system_metrics=True) as tracked:
        seed_everything(cfg.seed)
        model_path = train(build_model(), loss_fn, dataset, TrainSettings.from_config(section, cfg.runtime, cfg.seed),
                           Path(out).parent, tracked, method_config)
        if is_rank_zero():
            os.replace(model_path, out)
            tracked.log_artifact(out, "model")
