"""Benchmark: LDF label decoupling, forward at 352² and the training step at batch 4, against the official code.

    python benchmarks/bench_ldf.py [--ldf-dir CHECKOUT_OF_weijun88/LDF] [--masks DIR] [--repeats 3] [--threads 2]

Prints JSON. Decoupling: ``wsss.data.decouple.decouple_dir`` with 2 workers on the masks of
``--masks`` (default: the 300 real SOD masks of ``../shared/data/sod-eval/masks`` when present, else
synthetic ones), PNGs written; beside it the official ``utils.split_map`` run unmodified from
``--ldf-dir`` (arguments only), in one process and in a pool of 2 over two halves of the masks.
Network: this project's LDF (ResNet-50, random weights) forward at 352², batch 1, in fp32,
fp32 channels-last and — where the CPU has native bf16 — bf16 autocast + channels-last; one SGD
step of the six-term loss at batch 4 (352²) in fp32 and, where the CPU has native bf16, as the engine runs it
(bf16 autocast + channels-last). With ``--ldf-dir`` the official ``train-fine/net.py``
(weijun88/LDF@d49ff02) is
timed the same way (its ResNet file ``res/resnet50-19c8e357.pth`` is stood in by random torchvision
weights in a temporary copy). Anchors: the official code (weijun88/LDF@d49ff02) measured on another machine
(2-core Xeon with AMX): split_map 4.9 ms/img (2.4 with 2 processes), forward 0.188 s fp32, train step 0.55 s/img.
Medians after one warm-up (the training steps of both networks timed in turns); ``load_average`` shows
whether other work shared the machine.
"""

import argparse
import copy
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from multiprocessing import Pool
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from wsss.data.decouple import decouple_dir
from wsss.losses import ldf_loss
from wsss.nets.ldf import build_ldf, parameter_count
from wsss.runtime import Runtime, cpu_has_bf16, pick_runtime

from timing import bf16_target, bound_note, counted_gflop, in_turns, row

ROOT = Path(__file__).resolve().parents[1]

SHARED_MASKS = ROOT.parent / "shared" / "data" / "sod-eval" / "masks"
ANCHORS = {"split_map_ms_per_image_1proc": 4.9, "split_map_ms_per_image_2procs": 2.4,
           "ldf_forward_352_fp32_s": 0.188, "ldf_train_step_batch4_s_per_image": 0.55}


def median_seconds(work, repeats: int) -> float:
    return in_turns({"work": work}, repeats)["work"]["median_s"]


def synthetic_masks(folder: Path, count: int = 300) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[:300, :400]
    for k in range(count):
        cy, cx, r = rng.integers(80, 220), rng.integers(100, 300), rng.integers(20, 90)
        Image.fromarray((((yy - cy) ** 2 + (xx - cx) ** 2) <= r ** 2).astype(np.uint8) * 255).save(folder / f"{k:04d}.png")
    return folder


def _load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _split_map(args: tuple[str, str]) -> None:
    utils_path, datapath = args
    _load_module(Path(utils_path), "ldf_utils").split_map(datapath)


def decoupling(masks: Path, ldf_dir: Path | None, repeats: int, work: Path) -> dict:
    paths = sorted(masks.glob("*.png"))
    figures = {"masks": len(paths), "mask_source": str(masks)}
    items = [(p.stem, p) for p in paths]
    ours = in_turns({"ours": lambda: decouple_dir(items, work / "ours", workers=2, progress=False)}, repeats)["ours"]
    seconds = ours["median_s"]
    figures["ours_2workers_ms_per_image"] = round(1000 * seconds / len(paths), 3)
    figures["ours_2workers_images_per_s"] = round(len(paths) / seconds, 1)
    if ldf_dir is None:
        return figures
    halves = []
    for k in range(2):
        datapath = work / f"official{k}"
        (datapath / "mask").mkdir(parents=True)
        for path in paths[k::2]:
            shutil.copy(path, datapath / "mask" / path.name)
        halves.append(datapath)
    whole = work / "official"
    shutil.copytree(masks, whole / "mask")
    utils = str(ldf_dir / "utils.py")
    with open(os.devnull, "w") as quiet, _redirect_stdout(quiet):
        official = in_turns({"official": lambda: _split_map((utils, str(whole)))}, repeats)["official"]
        one = official["median_s"]
        with Pool(2) as pool:
            two = median_seconds(lambda: pool.map(_split_map, [(utils, str(h)) for h in halves]), repeats)
    figures["official_split_map_1proc_ms_per_image"] = round(1000 * one / len(paths), 3)
    figures["official_split_map_2procs_ms_per_image"] = round(1000 * two / len(paths), 3)
    figures["speedup_vs_official_1proc"] = round(one / seconds, 2)
    figures["speedup_vs_official_2procs"] = round(two / seconds, 2)
    figures["row"] = row(f"LDF decoupling, {len(paths)} masks, ours 2 workers vs utils.py", len(paths), "img",
                         ours, official, 2.0, "—",
                         f"official in a pool of 2: {figures['speedup_vs_official_2procs']}×")
    return figures


@contextmanager
def _redirect_stdout(stream):
    saved, sys.stdout = sys.stdout, stream
    try:
        yield
    finally:
        sys.stdout = saved


def official_network(ldf_dir: Path, work: Path) -> torch.nn.Module:
    """The official ``train-fine/net.py`` LDF, built in a temporary tree whose ``res/`` holds random weights."""
    import torchvision

    (work / "res").mkdir(parents=True)
    (work / "run").mkdir()
    torch.save(torchvision.models.resnet50().state_dict(), work / "res" / "resnet50-19c8e357.pth")
    cwd = os.getcwd()
    os.chdir(work / "run")
    try:
        with open(os.devnull, "w") as quiet, _redirect_stdout(quiet):
            net = _load_module(ldf_dir / "train-fine" / "net.py", "ldf_net").LDF(SimpleNamespace(snapshot=None))
    finally:
        os.chdir(cwd)
    return net


def forward_call(net, precision: str, channels_last: bool, size: int = 352):
    """One eval-mode forward pass at ``size``² (batch 1) in ``precision``, as a closure."""
    x = torch.randn(1, 3, size, size)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net, x = net.eval().to(memory_format=layout), x.contiguous(memory_format=layout)

    def forward():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            net(x)

    return forward


def forward_seconds(net, precision: str, channels_last: bool, repeats: int, size: int = 352) -> float:
    return round(median_seconds(forward_call(net, precision, channels_last, size), repeats), 4)


def train_step(net, runtime: Runtime, batch: int = 4, size: int = 352):
    """One SGD step of the six-term loss at ``batch`` in ``runtime``'s precision and layout (as the engine runs
    it: the loss under autocast, the inputs in the network's memory format), as a closure."""
    net = runtime.prepare(net.to(memory_format=torch.contiguous_format)).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    target = (torch.rand(batch, 1, size, size) > 0.5).float()
    data = {key: runtime.batch(value) for key, value in
            {"image": torch.randn(batch, 3, size, size), "mask": target, "body": target * 0.7, "detail": target * 0.2}.items()}

    def step():
        with runtime.autocast():
            loss = ldf_loss(net, data)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def network(ldf_dir: Path | None, repeats: int, work: Path) -> dict:
    torch.manual_seed(0)
    ours = build_ldf("resnet50")
    figures = {"params": parameter_count(ours)}
    nets = {"ours": ours}
    if ldf_dir is not None:
        nets["official"] = official_network(ldf_dir, work / "official_net")
        figures["official_params"] = sum(p.numel() for p in nets["official"].parameters())
    for name, net in nets.items():
        figures[f"{name}_forward_352_fp32_s"] = forward_seconds(net, "fp32", False, repeats)
        figures[f"{name}_forward_352_fp32_channels_last_s"] = forward_seconds(net, "fp32", True, repeats)
        if cpu_has_bf16():
            figures[f"{name}_forward_352_bf16_channels_last_s"] = forward_seconds(net, "bf16", True, repeats)
    batch, auto, fp32 = 4, pick_runtime("cpu", "auto"), pick_runtime("cpu", "fp32")
    official_step = train_step(nets["official"], fp32, batch) if "official" in nets else None
    pairs = {"fp32": (ours, fp32)}
    if auto.precision != "fp32":   # the step the engine runs on this CPU, on a copy of the same weights
        pairs[auto.precision] = (copy.deepcopy(ours), auto)
    steps = {}
    for precision, (net, runtime) in pairs.items():   # each of ours timed in turns with the official step
        contenders = {"ours": train_step(net, runtime, batch)}
        if official_step is not None:
            contenders["official"] = official_step
        steps[precision] = in_turns(contenders, max(repeats - 1, 1))
        figures[f"ours_train_step_batch4_352_{precision}_s_per_image"] = round(steps[precision]["ours"]["median_s"] / batch, 4)
        if official_step is not None:
            figures[f"official_train_step_batch4_352_fp32_s_per_image_beside_{precision}"] = round(
                steps[precision]["official"]["median_s"] / batch, 4)
    if "official" in nets:   # the rows of the ratio table: ours at the runtime's pick, the official code in fp32
        auto = auto.precision
        step_auto, in_fp32 = steps[auto], steps["fp32"]
        ours_forward = forward_call(pick_runtime("cpu", auto).prepare_inference(copy.deepcopy(ours)), auto, auto == "bf16")
        forward = in_turns({"ours": ours_forward, "official": forward_call(nets["official"], "fp32", False)}, repeats)
        figures["forward_352_gflop"] = round(counted_gflop(ours_forward), 1)
        figures["rows"] = [
            row("LDF forward 352², batch 1 (ResNet-50)", 1, "img", forward["ours"], forward["official"], bf16_target(),
                auto + (" + channels-last, BN folded, bf16 weights" if auto == "bf16" else ", BN folded"),
                "the official code in fp32, as it runs; " + bound_note(figures["forward_352_gflop"], auto)),
            row("LDF training step, batch 4, 352²", batch, "img", step_auto["ours"], step_auto["official"], 1.0,
                auto + (" + channels-last" if auto == "bf16" else ""),
                "the official code in fp32, as it runs; ours in fp32, timed in turns with it: "
                f"{in_fp32['official']['median_s'] / in_fp32['ours']['median_s']:.2f}×")]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ldf-dir", type=Path, help="a checkout of weijun88/LDF (utils.py, train-fine/net.py)")
    parser.add_argument("--masks", type=Path, help="a folder of mask PNGs for the decoupling benchmark")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {"threads": args.threads, "cpu_bf16": cpu_has_bf16(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "load_average_before": round(os.getloadavg()[0], 2), "anchors_performance_md": ANCHORS}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        masks = args.masks or (SHARED_MASKS if SHARED_MASKS.is_dir() else synthetic_masks(work / "masks"))
        report["decoupling"] = decoupling(masks, args.ldf_dir, args.repeats, work)
        report["network"] = network(args.ldf_dir, args.repeats, work)
    report["load_average_after"] = round(os.getloadavg()[0], 2)
    report["ratios"] = ([report["decoupling"]["row"]] if "row" in report["decoupling"] else []) + report["network"].get(
        "rows", [])
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
