"""Glue between the Snakefile, DVC and the typed configuration.

Snakemake is the single source of truth of the DAG: ``dvc.yaml`` is generated from it
(``wsss dag dvc``), one DVC stage per Snakemake job, whose command asks Snakemake for that job's
outputs. ``STAGE_PARAMS`` names the ``params.yaml`` sections each rule reads; the Snakefile passes
them through ``params:`` (so editing one key reruns only the rules that read it) and DVC lists the
same keys, so both runners invalidate the same stages.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from wsss.config import Config, deep_merge, method_names, read_params, resolve, round_method
from wsss.nets.registry import NETWORKS

STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "synth_voc": ("synth_voc",),
    "synth_sod": ("synth_sod",),
    "prepare_voc": ("voc",),
    "prepare_sod": ("sod",),
    "train_cls": ("seed", "runtime.precision", "network", "train_cls"),
    "infer_cam": ("runtime.precision", "network", "infer_cam"),
    "eval_equivariance": ("runtime.precision", "network", "infer_cam", "evaluate.equivariance_scale"),
    "extract_features": ("runtime.precision", "train_cls.backbone", "train_cls.output_stride"),
    "cluster": ("sccam.clusters", "sccam.feature_norm", "sccam.kmeans_n_init", "sccam.kmeans_seed"),
    "crf": ("crf",),
    "aff_labels": ("crf",),
    "train_aff": ("seed", "runtime.precision", *(f"affinity.{key}" for key in (
        "backbone", "weights", "output_stride", "crop", "batch", "epochs", "lr", "weight_decay", "momentum",
        "poly_power", "polyoptimizer_bug", "frozen_bn", "frozen_stages", "color_jitter", "radius", "pairs"))),
    "infer_rw": ("runtime.precision", "affinity", "crf"),
    "eval_cam": ("evaluate",),
    "eval_pseudo": ("evaluate",),
    "train_seg": ("seed", "runtime.precision", "train_seg"),
    "infer_seg": ("runtime.precision", "infer_seg"),
    "eval_seg": ("evaluate",),
    "decouple": ("sod.train_sets", "decouple"),
    "train_ldf_coarse": ("seed", "runtime.precision", "sod.train_sets", "ldf"),
    "relabel_ldf": ("runtime.precision", "sod.train_sets", "ldf"),
    "train_ldf": ("seed", "runtime.precision", "sod.train_sets", "ldf"),
    "train_ldf_ablation": ("seed", "runtime.precision", "sod.train_sets", "ldf"),
    "infer_ldf": ("runtime.precision", "ldf"),
    "eval_saliency": (),
    "summarize_sod": (),
    "summarize_ldf_ablation": ("ldf_ablation",),
    "summarize_voc": ("method", "pseudo"),
    "seam_ablation": ("seam_ablation",),
    "sccam_ablation": ("sccam_ablation",),
}
# Keys that choose what the DAG builds (the method of results/voc_miou.json, DeepLab's pseudo labels), not how a
# stage computes: left out of the stages' --set flags, so that changing one reruns only what depends on it.
SELECTORS = ("method", "pseudo")
# What `wsss dag dvc` declares by default: the pipeline (`rule all`) and the SEAM and SC-CAM ablations.
DVC_TARGETS = ("all", "seam_ablation", "sccam_ablation")

DVC_HEADER = "# Generated from the Snakefile by `wsss dag dvc`; do not edit (tests/test_dag.py checks it).\n"


def workflow_config(snakemake_config: dict, params_file: str | Path = "params.yaml",
                    command_line: dict | None = None) -> tuple[Config, list[str]]:
    """The resolved configuration of a Snakemake run and the ``--set`` overrides that reproduce it.

    Snakemake's ``config`` is ``params.yaml`` merged with ``--config`` (``command_line``, Snakemake's
    ``workflow.config_settings.overwrite_config``); the difference from the file, and every key that
    ``--config`` names (also one equal to the file's value, which must still win over the profile), is
    handed to every ``wsss`` command, so ``snakemake --config profile=paper`` reaches the stages.
    """
    on_disk = read_params(params_file)
    overrides = dict(_differences(on_disk, deep_merge(on_disk, snakemake_config)))
    overrides.update(_differences(on_disk, command_line or {}, keep_equal=True))
    items = [f"{key}={value}" for key, value in overrides.items()]
    return resolve(on_disk, items), items


def typed_config(snakemake_config: dict, params_file: str | Path = "params.yaml") -> dict:
    """Snakemake's ``config`` with each ``--config`` value typed like ``params.yaml``'s (see :func:`_typed_like`):
    what the Snakefile validates against the JSON Schema of the configuration."""
    return _typed_like(snakemake_config, read_params(params_file))


def _differences(base: dict, changed: dict, prefix: str = "", keep_equal: bool = False):
    """(dotted key, YAML value) of each leaf of ``changed`` that differs from ``base`` (every leaf with
    ``keep_equal``), each value typed like ``base``'s."""
    for key, value in changed.items():
        name, like = f"{prefix}{key}", base.get(key)
        if isinstance(value, dict) and (like is None or isinstance(like, dict)):
            yield from _differences(like or {}, value, f"{name}.", keep_equal)
            continue
        value = _typed_like(value, like)
        if keep_equal or key not in base or like != value:
            yield name, _yaml_value(value)


def _yaml_value(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...")


def _typed_like(value, like):
    """``value`` from ``--config`` read as YAML wherever ``params.yaml`` has no string: Snakemake parses a
    nested or list value (``ldf={epochs: 6}``, ``x=[1, 2]``) with YAML's BaseLoader, which keeps every
    scalar a string. A string that is no YAML stays as it is, for validation to name its key."""
    if isinstance(value, str):
        if isinstance(like, str):
            return value
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    if isinstance(value, list):
        items = like if isinstance(like, list) else []
        return [_typed_like(item, items[k] if k < len(items) else None) for k, item in enumerate(value)]
    if isinstance(value, dict):
        fields = like if isinstance(like, dict) else {}
        return {key: _typed_like(item, fields.get(key)) for key, item in value.items()}
    return value


def shell_overrides(overrides: list[str]) -> str:
    """``--set`` flags for a shell command line, each quoted for the shell."""
    import shlex

    return " ".join(f"--set {shlex.quote(item)}" for item in overrides)


def method_workflow_configs(snakemake_config: dict, params_file: str | Path = "params.yaml",
                            command_line: dict | None = None) -> dict[str, tuple[Config, str]]:
    """Per method folder name: its resolved configuration and the ``--set`` flags that select it.

    Every method's flags are the run's overrides without the selectors ``method=`` and ``pseudo=`` plus
    ``method=<name>``: choosing another method for ``results/voc_miou.json`` (``--config method=seam``) or other
    pseudo labels for DeepLab (``--config pseudo=rw``) leaves the jobs that do not depend on the choice alone
    (Snakemake reruns a job whose flags changed); the configuration still holds ``pseudo``.
    A method trained in rounds (SC-CAM) also has one folder per earlier round ``r``, ``<name>_round<r>``
    (``wsss.config.round_method``), with ``sccam.round=r`` added: the chain's rules then train, infer and
    score every round as a method of its own.
    """
    on_disk = read_params(params_file)
    _, overrides = workflow_config(snakemake_config, params_file, command_line)
    shared = [item for item in overrides if item.split("=", 1)[0] not in SELECTORS]
    selected = [item for item in overrides if item.split("=", 1)[0] == "pseudo"]
    merged = deep_merge(on_disk, snakemake_config)
    configs = {}
    for name in method_names(merged):
        items = [*shared, f"method={name}"]
        cfg = resolve(on_disk, [*selected, *items])
        configs[name] = cfg, shell_overrides(items)
        if NETWORKS[cfg.network].rounds:
            for r in range(1, cfg.sccam.rounds):
                round_items = [*items, f"sccam.round={r}"]
                configs[round_method(name, r, cfg.sccam.rounds)] = (resolve(on_disk, [*selected, *round_items]),
                                                                    shell_overrides(round_items))
    return configs


def base_method(name: str, raw_params: dict) -> str:
    """The ``methods`` entry of a method folder name: itself, or the method of an earlier round's folder."""
    methods = raw_params.get("methods") or {}
    match = re.fullmatch(r"(.+)_round\d+", name)
    return match.group(1) if name not in methods and match and match.group(1) in methods else name


def network_params(network: str | None, rule: str) -> tuple[str, ...]:
    """The network's own section (``wsss.nets.registry``: SEAM's losses), read by the rule that trains it."""
    entry = NETWORKS.get(network)
    return (entry.settings,) if entry and entry.settings and rule == entry.section else ()


def rule_params(cfg: Config, rule: str) -> dict:
    """The resolved config keys a rule reads (Snakemake's params trigger reruns it when they change)."""
    resolved = cfg.to_dict()
    keys = STAGE_PARAMS.get(rule, ()) + network_params(cfg.network, rule)
    return {key: _lookup(resolved, key) for key in keys}


def _lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def snakemake_jobs(targets: list[str], snakefile: str | Path = "Snakefile", cwd: str | Path = ".") -> list[dict]:
    """Every job Snakemake would run to build ``targets`` (default ``DVC_TARGETS``) from scratch: stage name,
    rule, inputs, outputs.

    Read from a forced dry run, which lists every job whether or not its files exist. A rule that
    runs for several wildcard values gives one stage per job, named ``<rule>_<values>``.
    """
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--dry-run", "--forceall",
               "--cores", "1", *(targets or DVC_TARGETS)]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"snakemake --dry-run failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    jobs, job = [], None
    for line in result.stdout.splitlines():
        header = re.fullmatch(r"(?:local)?rule (\w+):", line.strip()) if not line.startswith(" ") else None
        if header:
            job = {"rule": header.group(1), "inputs": [], "outputs": [], "wildcards": {}}
            jobs.append(job)
        elif job is not None and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            if key in ("input", "output"):
                job[f"{key}s"] = sorted(value.split(", "))
            elif key == "wildcards":
                job["wildcards"] = dict(item.split("=", 1) for item in value.split(", "))
        elif not line.strip():
            job = None
    for job in jobs:
        job["stage"] = "_".join([job["rule"], *job["wildcards"].values()])
    return [job for job in jobs if job["rule"] != "all"]


def dvc_stages(jobs: list[dict], raw_params: dict) -> dict:
    """One DVC stage per Snakemake job: ``snakemake`` builds its outputs; deps, params and outs match.

    Code is not a dependency in either runner (Snakemake's code trigger covers only a rule's own
    shell command): after changing library code, rerun with ``snakemake -R <rule>`` or
    ``dvc repro -f <stage>``.
    """
    stages = {}
    for job in sorted(jobs, key=lambda job: job["stage"]):
        rule = job["rule"]
        metrics = [path for path in job["outputs"] if path.startswith("results/") and path.endswith(".json")]
        outs = [path for path in job["outputs"] if path not in metrics]
        stage = {
            "cmd": f"snakemake --cores all {' '.join(job['outputs'])}",
            "params": _param_keys(rule, raw_params, job.get("wildcards", {}).get("method")),
        }
        if job["inputs"]:
            stage["deps"] = job["inputs"]
        if outs:
            stage["outs"] = outs
        if metrics:
            stage["metrics"] = [{path: {"cache": False}} for path in metrics]
        stages[job["stage"]] = stage
    return {"stages": stages}


def _param_keys(rule: str, raw_params: dict, method: str | None = None) -> list[str]:
    """The rule's sections, their profile overrides, and ``profile`` when some profile overrides them;
    for a job of one method (``{method}`` wildcard) also the keys of that method's entry ``methods.<name>``
    that override them (and its ``network`` where the rule reads it).

    These are exactly the keys whose change alters the resolved sections that Snakemake's params
    trigger compares, so both runners rerun the same stages.
    """
    entry = f"methods.{base_method(method, raw_params)}" if method else None
    network = _lookup(raw_params, f"{entry}.network") if entry else None
    read = STAGE_PARAMS.get(rule, ()) + network_params(network, rule)
    keys = [key for key in read if key != "network"]
    overridden = [f"profiles.{profile}.{key}" for key in keys
                  for profile, overrides in (raw_params.get("profiles") or {}).items()
                  if _lookup(overrides or {}, key) is not None]
    own = [f"{entry}.{key}" for key in read if _lookup(raw_params, f"{entry}.{key}") is not None] if entry else []
    return (["profile"] if overridden else []) + keys + own + overridden


def render_dvc_yaml(targets: list[str], params_file: str | Path = "params.yaml") -> str:
    """The text of ``dvc.yaml`` for ``targets`` (default: ``DVC_TARGETS``)."""
    stages = dvc_stages(snakemake_jobs(targets), read_params(params_file))
    return DVC_HEADER + yaml.safe_dump(stages, sort_keys=False, width=200)
