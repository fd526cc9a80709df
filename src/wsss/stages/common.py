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
                data_paths: tuple[str, ...], model_input_size: int = 0, *, pipeline: str = "wsss",
                method: str | None = None, collate_fn=None, config: dict | None = None, **settings) -> None:
    """Train a model of ``stage`` in the shared engine and publish its weights at ``out`` (rank 0).

    Seeds before ``build_model()`` so the initial weights are reproducible; the checkpoint sits
    beside ``out`` so that rerunning the same command resumes an interrupted run. With
    ``model_input_size``, the trained network is also logged as an MLflow model (the pipeline's final
    model), with a 1×3×size×size example input. ``settings`` override fields of the engine's
    ``TrainSettings`` (e.g. the schedule); ``config`` (the method's own settings) and ``collate_fn``
    go to ``wsss.engine.train``.
    """
    import os

    import numpy as np

    from wsss.engine import TrainSettings, seed_everything, train
    from wsss.tracking import config_stage_run, is_rank_zero

    with config_stage_run(cfg, stage, pipeline=pipeline, method=cfg.method if method is None else method,
                          data_paths=data_paths, system_metrics=True) as tracked:
        seed_everything(cfg.seed)
        model = build_model()
        model_path = train(model, loss_fn, dataset, TrainSettings.from_config(section, cfg.runtime, cfg.seed, **settings),
                           Path(out).parent, tracked, config=config, collate_fn=collate_fn)
        if is_rank_zero():
            os.replace(model_path, out)
            tracked.log_artifact(out, "model")
            if model_input_size:
                example = np.zeros((1, 3, model_input_size, model_input_size), np.float32)
                tracked.log_model(model.cpu().eval(), stage, example)
