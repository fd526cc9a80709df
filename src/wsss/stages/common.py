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
