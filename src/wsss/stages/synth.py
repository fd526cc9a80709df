"""Stages ``synth_voc`` and ``synth_sod``: write the synthetic benchmarks (DESIGN.md, synthetic benchmarks)."""

from __future__ import annotations

import argparse
import importlib
import json

from wsss.stages.common import has_params, section_without_params, stage_config
from wsss.tracking import config_stage_run, stage_run

# section -> (generator module, its config class, pipeline, dataset name)
BENCHMARKS = {
    "synth_voc": ("wsss.data.synth_voc", "SynthVOCConfig", "wsss", "synthetic-voc"),
    "synth_sod": ("wsss.data.synth_sod", "SynthSODConfig", "sod", "synthetic-sod"),
}


def run(args: argparse.Namespace, section: str) -> int:
    """Generate the benchmark of ``section`` into ``args.out``; works without a params file too."""
    module_name, class_name, pipeline, dataset = BENCHMARKS[section]
    module = importlib.import_module(module_name)
    if has_params(args):
        cfg = stage_config(args)
        settings = getattr(cfg, section)
        tracked = config_stage_run(cfg, section, pipeline=pipeline)
    else:
        settings = section_without_params(args, section, getattr(module, class_name))
        tracked = stage_run(section, pipeline=pipeline, dataset=dataset, profile="smoke",
                            params={section: settings.model_dump()})
    with tracked as run:
        summary = module.generate(args.out, settings, workers=args.workers)
        run.log_metrics({key: value for key, value in summary.items() if isinstance(value, (int, float))})
    print(json.dumps(summary, indent=2))
    return 0
