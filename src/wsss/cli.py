"""The ``wsss`` command: one subcommand per pipeline stage, plus the evaluation and DAG tools.

Every stage reads ``params.yaml`` (``--params``) and accepts ``--set key.path=value`` overrides.
Stage modules are imported only when their command runs, so light commands start fast.
``wsss --processes N train-…`` runs a training command as N DDP processes (``torchrun --standalone``: one per
GPU, or gloo processes on a CPU); the workflow's training rules pass their ``gpu`` resource.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path


def _workers(text: str) -> int:
    """A ``--workers`` value: a process count in 1..MAX_WORKERS."""
    from wsss.config import MAX_WORKERS

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of processes, got {text!r}") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be in 1..{MAX_WORKERS}, got {value}")
    return value


def _processes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of processes, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="the configuration file (default: params.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a configuration key, e.g. --set train_cls.lr=0.05 (repeatable)")


# Released official checkpoints `wsss import-weights` converts: the networks of wsss.nets.official.FORMATS
# and ademxapp's ImageNet ResNet-38 (an MXNet .params file, into a resnet38d backbone .pth).
IMPORT_FORMATS = ("seam", "psa_cls", "psa_aff", "ldf", "resnet38_imagenet")

# Pipeline stages of the WSSS chain: command -> (module in wsss.stages, help, path arguments).
STAGES = {
    "train-cls": ("train_cls", "train the CAM classifier on train_aug", ("voc", "out")),
    "infer-cam": ("infer_cam", "multi-scale CAMs of a split", ("voc", "model", "out")),
    "eval-equivariance": ("eval_equivariance", "equivariance error of a CAM model on a split", ("voc", "model", "out")),
    "extract-features": ("extract_features", "SC-CAM: pooled train_aug features of a round's classifier",
                         ("voc", "model", "out")),
    "cluster": ("cluster", "SC-CAM: sub-category labels of a round by k-means", ("voc", "features", "out", "plot")),
    "crf": ("crf", "dense-CRF pseudo labels from CAMs", ("voc", "cams", "out")),
    "aff-labels": ("aff_labels", "AffinityNet labels from the low/high-alpha CRFs of CAMs", ("voc", "cams", "out")),
    "train-aff": ("train_aff", "train AffinityNet on its CRF labels", ("voc", "labels", "out")),
    "infer-rw": ("infer_rw", "random-walk pseudo labels from CAMs and AffinityNet", ("voc", "model", "cams", "out")),
    "train-seg": ("train_seg", "train DeepLab on pseudo labels", ("voc", "labels", "out")),
    "infer-seg": ("infer_seg", "DeepLab predictions of a split", ("voc", "model", "out")),
    "summarize-voc": ("summarize_voc", "write results/voc_miou.json", ("seg", "cam", "pseudo", "equivariance", "out")),
    "summarize-ablation": ("summarize_ablation", "write the SEAM ablation table (seam_ablation)", ("results", "out", "table")),
    "summarize-sccam": ("summarize_sccam", "write the SC-CAM ablation (sccam_ablation): rounds and K",
                        ("results", "out", "table", "plot")),
    "decouple": ("decouple", "LDF body/detail maps of the SOD training masks", ("sod", "out")),
    "train-ldf": ("train_ldf", "train LDF on body/detail maps", ("sod", "labels", "out")),
    "infer-ldf": ("infer_ldf", "LDF saliency maps of a SOD set", ("sod", "model", "out")),
}
TRAINING_COMMANDS = tuple(command for command in STAGES if command.startswith("train-"))


def _flag_overrides(args: argparse.Namespace, section: str, names: tuple[str, ...]) -> list[str]:
    """Explicit flags (``--seed 3``) as ``--set`` overrides of their config section."""
    return [f"{section}.{name}={getattr(args, name)}" for name in names if getattr(args, name) is not None]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsss", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--processes", type=_processes, default=1, metavar="N",
                        help="run a training command as N DDP processes through torchrun (N <= 1: this process)")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="datasets: synthetic benchmarks, prepare, download").add_subparsers(
        dest="data_command", required=True)
    synth_voc = data.add_parser("synth-voc", help="write the synthetic VOC2012-layout benchmark")
    synth_voc.add_argument("--out", required=True, type=Path)
    for name in ("seed", "train", "val", "train_aug", "size"):
        synth_voc.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int)
    synth_voc.add_argument("--workers", type=_workers, default=2)
    _config_args(synth_voc)

    synth_sod = data.add_parser("synth-sod", help="write the synthetic DUTS-TR / ECSSD-style benchmark")
    synth_sod.add_argument("--out", required=True, type=Path)
    for name in ("seed", "train", "test", "size"):
        synth_sod.add_argument(f"--{name}", dest=name, type=int)
    synth_sod.add_argument("--workers", type=_workers, default=2)
    _config_args(synth_sod)

    for name, what in (("prepare-voc", "VOC2012 (+ SBD train_aug)"), ("prepare-sod", "the SOD sets")):
        prepare = data.add_parser(name, help=f"validate {what} and write split lists and labels")
        prepare.add_argument("--out", required=True, type=Path)
        prepare.add_argument("--workers", type=_workers, default=2)
        prepare.add_argument("--download", action="store_true", help="fetch missing data from the official addresses")
        _config_args(prepare)

    download = data.add_parser("download", help="download and verify a dataset archive")
    download.add_argument("resource", help="voc2012 | sbd | duts-tr | duts-te")
    download.add_argument("--dest", type=Path, default=Path("data/raw"))

    evaluate = commands.add_parser("evaluate", help="score any method's outputs").add_subparsers(
        dest="evaluate_command", required=True)
    seg = evaluate.add_parser("segmentation", help="mIoU of PNG label maps or of CAMs (with a threshold sweep)")
    seg.add_argument("--pred", required=True, type=Path, help="folder of PNG predictions (or CAM files with --cams)")
    seg.add_argument("--gt", required=True, type=Path, help="folder of ground-truth label PNGs")
    seg.add_argument("--list", type=Path, help="ids to score, one per line (default: every prediction)")
    seg.add_argument("--out", required=True, type=Path, help="JSON file for the scores")
    seg.add_argument("--cams", action="store_true", help="--pred holds CAMs (.npz, or psa/SEAM/irn .npy dicts)")
    seg.add_argument("--bg-threshold", type=float, help="background score of CAMs (default: evaluate.bg_threshold)")
    seg.add_argument("--bg-thresholds", help="sweep START:STOP:STEP (default: evaluate.bg_sweep)")
    seg.add_argument("--plot", type=Path, help="also save the per-class IoU plot here")
    _eval_args(seg)

    sal = evaluate.add_parser("saliency", help="MAE, F, E, S measures of saliency maps (pysodmetrics)")
    sal.add_argument("--pred", required=True, type=Path)
    sal.add_argument("--gt", required=True, type=Path,
                     help="folder of masks, or a SOD dataset folder (its masks; those its test.txt names, if it has one)")
    sal.add_argument("--out", required=True, type=Path)
    sal.add_argument("--name", help="dataset name for the table and MLflow (default: the --gt folder's parent)")
    sal.add_argument("--plot", type=Path, help="also save the PR and F-threshold curves here")
    _eval_args(sal)

    for command, (_, description, paths) in STAGES.items():
        stage = commands.add_parser(command, help=description)
        for name in paths:
            stage.add_argument(f"--{name}", required=True, type=Path)
        if "model" in paths or "cams" in paths:
            stage.add_argument("--split", default="train_aug", help="the prepared split to process")
        if command in ("train-seg", "train-aff"):
            section = {"train-seg": "train_seg", "train-aff": "affinity"}[command]
            stage.add_argument("--classifier", type=Path,
                               help=f"the trained classifier whose backbone starts the network ({section}.weights: classifier)")
        stage.add_argument("--workers", type=_workers, default=1, help="processes (inference, CRF, decoupling, k-means)")
        _config_args(stage)
    commands.choices["train-cls"].add_argument("--labels", type=Path,
                                               help="SC-CAM: the round's sub-category labels (the cluster stage's)")
    commands.choices["extract-features"].add_argument("--network", required=True,
                                                      help="the network of --model (wsss.nets.registry)")
    commands.choices["train-ldf"].add_argument("--fine", action="store_true",
                                               help="the fine stage: --labels holds the coarse model's maps")
    commands.choices["infer-rw"].add_argument("--crf", action="store_true",
                                              help="a dense CRF on the walk's scores (pseudo: rw_crf)")
    infer_ldf = commands.choices["infer-ldf"]
    infer_ldf.add_argument("--maps", choices=("saliency", "decoupled"), default="saliency",
                           help="decoupled: body/detail maps of the training sets (the fine stage's targets)")
    infer_ldf.add_argument("--method", default="ldf", help="method name for the MLflow tags")

    summarize_sod = commands.add_parser("summarize-sod", help="write results/sod_metrics.json or the LDF ablation")
    summarize_sod.add_argument("results", nargs="+", help="[LABEL=]PATH of `wsss evaluate saliency` JSONs")
    summarize_sod.add_argument("--out", required=True, type=Path)
    summarize_sod.add_argument("--ablation", action="store_true", help="rows by LABEL (the supervision)")
    _config_args(summarize_sod)

    imported = commands.add_parser("import-weights", help="convert a released official checkpoint into a model.pt")
    imported.add_argument("format", choices=IMPORT_FORMATS,
                          help="seam: SEAM's resnet38_SEAM.pth; psa_cls: psa's res38_cls.pth; psa_aff: psa's res38_aff.pth; "
                               "ldf: LDF's released model; "
                               "resnet38_imagenet: ademxapp's ilsvrc-cls_rna-a1_cls1000_ep-0001.params")
    imported.add_argument("source", type=Path)
    imported.add_argument("--out", required=True, type=Path)
    _config_args(imported)

    config = commands.add_parser("config", help="print the resolved configuration")
    _config_args(config)
    config.add_argument("--schema", action="store_true",
                        help="print the JSON Schema of params.yaml instead (workflow/schemas/config.schema.json)")

    dag = commands.add_parser("dag", help="the DAG's DVC view").add_subparsers(dest="dag_command", required=True)
    dvc = dag.add_parser("dvc", help="write dvc.yaml from the Snakefile")
    dvc.add_argument("--check", action="store_true", help="fail if dvc.yaml differs instead of writing it")
    dvc.add_argument("targets", nargs="*", help="Snakemake targets (default: rule all and seam_ablation)")
    return parser


def _eval_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=_workers, help="processes (default: evaluate.workers)")
    parser.add_argument("--method", default="", help="method name for the MLflow tags")
    parser.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    _config_args(parser)


# Path arguments that name what a command writes; every other path argument is an input.
OUTPUT_ARGS = ("out", "table", "plot")


def check_paths(args: argparse.Namespace) -> None:
    """Refuse, before any work, an output path that cannot be written safely or that would replace an input."""
    from wsss.io import check_not_an_input, check_output_path

    paths = {name: value for name, value in vars(args).items() if isinstance(value, Path)}
    outputs = {name: value for name, value in paths.items() if name in OUTPUT_ARGS}
    for value in outputs.values():
        check_output_path(value)
    check_not_an_input(outputs, {name: value for name, value in paths.items() if name not in OUTPUT_ARGS})


def main(argv: list[str] | None = None) -> int:
    """Run a command; an expected failure (bad input, a file that cannot be read or written) is one line naming
    the file or key, exit code 2. Anything else is a bug and keeps its traceback."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    from wsss.errors import DownloadError

    try:
        if args.processes > 1 and "LOCAL_RANK" not in os.environ:
            _launch_processes(args, argv)
        check_paths(args)
        return _dispatch(args) or 0
    except (ValueError, FileNotFoundError, DownloadError) as error:  # ConfigError, DatasetError, OutputError
        print(f"wsss: error: {error}", file=sys.stderr)
    except OSError as error:  # permissions, a file where a folder must be, a full disk
        where = " -> ".join(str(name) for name in (error.filename, error.filename2) if name)
        print(f"wsss: error: {where or 'input/output'}: {error.strerror or error}", file=sys.stderr)
    except KeyboardInterrupt:
        print("wsss: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 2


def _launch_processes(args: argparse.Namespace, argv: list[str]) -> None:
    """Replace this process by ``torchrun`` running the same command in ``args.processes`` processes, which share
    this one's threads (``OMP_NUM_THREADS``, a Snakemake rule's ``threads``; else every CPU)."""
    if args.command not in TRAINING_COMMANDS:
        raise ValueError(f"--processes {args.processes}: only the training commands run as several processes "
                         f"({', '.join(TRAINING_COMMANDS)}), not {args.command}")
    command = argv[:]
    at = next(i for i, item in enumerate(command) if item.startswith("--processes"))
    del command[at: at + (1 if "=" in command[at] else 2)]
    threads = int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # torch's intra-op pool and MKL's own
        os.environ[variable] = str(max(1, threads // args.processes))
    os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                              "--nproc_per_node", str(args.processes), "-m", "wsss.cli", *command])


def _dispatch(args: argparse.Namespace) -> int | None:
    if args.command == "data":
        if args.data_command in ("synth-voc", "synth-sod"):
            from wsss.stages import synth

            section = args.data_command.replace("-", "_")
            names = ("seed", "train", "val", "train_aug", "size") if section == "synth_voc" else ("seed", "train", "test", "size")
            args.overrides += _flag_overrides(args, section, names)
            return synth.run(args, section)
        if args.data_command == "prepare-voc":
            from wsss.stages import prepare_voc

            return prepare_voc.run(args)
        if args.data_command == "prepare-sod":
            from wsss.stages import prepare_sod

            return prepare_sod.run(args)
        if args.data_command == "download":
            from wsss.data.download import download

            download(args.resource, args.dest)
            return 0
    if args.command in STAGES:
        module = importlib.import_module(f"wsss.stages.{STAGES[args.command][0]}")
        return module.run(args)
    if args.command == "import-weights":
        from wsss.nets.official import import_resnet38_imagenet, import_weights
        from wsss.stages.common import stage_config

        if args.format == "resnet38_imagenet":
            print(import_resnet38_imagenet(args.source, args.out))
        else:
            print(import_weights(args.format, args.source, args.out, stage_config(args)))
        return 0
    if args.command == "summarize-sod":
        from wsss.stages import summarize_sod

        return summarize_sod.run(args)
    if args.command == "evaluate":
        from wsss.stages import evaluate

        return evaluate.run(args)
    if args.command == "config":
        import json

        import yaml

        from wsss.config import load_config, params_schema

        if args.schema:
            print(json.dumps(params_schema(), indent=2))
            return 0
        print(yaml.safe_dump(load_config(args.params, args.overrides).to_dict(), sort_keys=False), end="")
        return 0
    if args.command == "dag":
        from wsss.workflow import render_dvc_yaml

        text = render_dvc_yaml(args.targets)
        if args.check:
            if Path("dvc.yaml").read_text() != text:
                print("dvc.yaml is out of date with the Snakefile: run `wsss dag dvc`", file=sys.stderr)
                return 1
            return 0
        Path("dvc.yaml").write_text(text)
        return 0
    raise AssertionError(args)


if __name__ == "__main__":
    sys.exit(main())
