"""Benchmark: pipeline steps beside the official code, timed in turns in this process, as ratio-table rows.

    python benchmarks/bench_official.py --seam-dir CHECKOUT_OF_YudeWang/SEAM --sccam-dir CHECKOUT_OF_Juliachang/SC-CAM \
        [--crf-images 16] [--image 375 500] [--features 10582 4096] [--repeats 3] [--parts crf cluster]

* ``crf``: the dense CRF of ``--crf-images`` synthetic VOC-sized images at 21 labels over 2 worker processes each:
  ``wsss.infer.crf.dense_crf`` with the paper profile's kernels through ``wsss.parallel.parallel_map`` against
  YudeWang/SEAM@3212261:tool/imutils.py:220-237 ``crf_inference`` (the same kernels) in a ``multiprocessing`` pool.
* ``cluster``: SC-CAM's sub-category k-means of one round on synthetic pooled features (``--features`` rows ×
  dims; VOC train_aug and ResNet-38's 4,096 by default): ``wsss.data.subcategories.cluster_assignments`` against
  the loop of Juliachang/SC-CAM@191ec48:create_pseudo_label.py:171-193, run as ``benchmarks/parity.py`` runs it,
  with scikit-learn's ``n_init`` at the 10 of the official code's time (the project pins the same).

Each side: one warm-up, then ``--repeats`` timed calls in turns; peak memory is what a call added to this
process (for the CRF this parent's, not its workers'). Prints JSON with the machine and the ``ratios`` rows.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys

import numpy as np

import torch
import torch.nn.functional as F
from parity import (PRESENT, SEAM_NET, cpu_shims, multi_hot, official_lines, official_module, official_seam_cam, ours,
                    run_official, settings_of, synthetic_features, synthetic_image)
from timing import bf16_target, bound_note, counted_gflop, in_turns, machine, row

from wsss.engine import TrainSettings, build_optimizer
from wsss.infer.crf import dense_crf
from wsss.parallel import parallel_map
from wsss.runtime import pick_runtime

OFFICIAL_CRF: dict = {}


def crf_scores(image: np.ndarray, labels: int = 21, seed: int = 0) -> np.ndarray:
    """Soft C×H×W class scores with blobs at the image's scale (smoothed noise through a softmax)."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.normal(0, 3, (labels, image.shape[0] // 16, image.shape[1] // 16)).astype(np.float32)
    logits = np.stack([cv2.resize(c, image.shape[1::-1], interpolation=cv2.INTER_CUBIC) for c in coarse])
    scores = np.exp(logits - logits.max(0, keepdims=True))
    return (scores / scores.sum(0, keepdims=True)).astype(np.float32)


def _ours_crf(item):
    image, scores, iterations, kernels = item
    return dense_crf(image, scores, iterations, **kernels).argmax(0)


def _official_crf(item):
    image, scores = item
    return OFFICIAL_CRF["imutils"].crf_inference(image, scores, t=10, labels=scores.shape[0]).argmax(0)


def crf(seam_dir: str, images: int, size: tuple[int, int], repeats: int) -> dict:
    settings = settings_of().crf
    if settings.iterations != 10:
        raise SystemExit(f"the paper profile's crf.iterations is {settings.iterations}, SEAM's crf_inference runs 10")
    OFFICIAL_CRF["imutils"] = official_module(seam_dir, "", "tool.imutils")
    data = [(synthetic_image(*size, seed), crf_scores(synthetic_image(*size, seed), seed=seed)) for seed in range(images)]
    work = [(image, scores, 10, settings.kernels()) for image, scores in data]

    def official():   # a pool of 2 per call, as parallel_map makes one: both pay the start of two workers
        with multiprocessing.get_context("fork").Pool(2) as pool:   # forked: the workers have the official module
            return pool.map(_official_crf, data)

    def ours():
        return parallel_map(_ours_crf, work, workers=2, progress=False, start_method="fork")

    timed = in_turns({"ours": ours, "official": official}, repeats)
    same = float(np.mean([(a == b).mean() for a, b in zip(ours(), official())]))
    return {"images": images, "size": list(size), "labels": 21, "workers": 2, "same_labels": same,
            "timed": timed, "row": row(f"dense CRF, {size[1]}×{size[0]}, 21 labels, 10 iterations, 2 workers", images,
                                       "img", timed["ours"], timed["official"], 1.0, "fp32 (pydensecrf)",
                                       "the same pydensecrf kernels; each side starts its pool of 2")}


def cluster(sccam_dir: str, rows: int, dims: int, repeats: int) -> dict:
    from sklearn.cluster import KMeans

    from wsss.data.subcategories import cluster_assignments

    settings = settings_of("method=sccam").sccam
    features, parent = synthetic_features(rows, dims, settings.clusters)
    index = {c: list(np.flatnonzero(parent[:, c])) for c in range(20)}
    script = official_module(sccam_dir, "", "create_pseudo_label")
    source = official_lines(sccam_dir, "create_pseudo_label.py", 171, 193, "all_class_kmeans_label")

    def official():
        namespace = {"np": np, "features": features, "filename_idx_class_dict": index,
                     "KMeans": lambda *args, **kwargs: KMeans(*args, n_init=10, **kwargs),
                     "make_subclass_label": script.make_subclass_label,
                     "args": argparse.Namespace(k_cluster=settings.clusters)}
        stdout, sys.stdout = sys.stdout, open("/dev/null", "w")   # it prints a line per class
        try:
            run_official(source, namespace)
        finally:
            sys.stdout.close()
            sys.stdout = stdout

    timed = in_turns({"ours": lambda: cluster_assignments(features, parent, settings.clusters, settings.kmeans_n_init,
                                                          settings.kmeans_seed, workers=2),
                      "official": official}, repeats)
    return {"features": [rows, dims], "clusters": settings.clusters, "n_init": settings.kmeans_n_init, "timed": timed,
            "row": row(f"SC-CAM k-means, {rows}×{dims} features, K {settings.clusters}", 1, "round",
                       timed["ours"], timed["official"], 1.0, "fp32 features",
                       "scikit-learn in both; ours 2 processes of one thread, as the cluster rule runs it")}


def cam(seam_dir: str, size: tuple[int, int], repeats: int) -> dict:
    """SEAM's multi-scale CAM of one image: YudeWang/SEAM@3212261:infer_SEAM.py:57-77 (its views, 4 scales × flip,
    fp32 as it runs) against ``wsss.infer.cam.multiscale_cam`` at the runtime's precision, on the same weights."""
    from wsss.infer.cam import multiscale_cam

    torch.manual_seed(2)
    official = official_module(seam_dir, "", "network.resnet38_SEAM").Net()
    official.eval()
    runtime = pick_runtime("cpu", "auto")
    model = runtime.prepare(ours("seam", official.state_dict(), SEAM_NET))
    settings = settings_of(*SEAM_NET).infer_cam
    image, labels = synthetic_image(*size), multi_hot()

    def mine():
        with torch.inference_mode():
            return multiscale_cam(model, image, PRESENT, settings.scales, settings.flip, settings.norm, runtime,
                                  settings.upsample)

    timed = in_turns({"ours": mine, "official": lambda: official_seam_cam(seam_dir, official, image, labels)}, repeats)
    precision = runtime.precision + (" + channels-last" if runtime.channels_last else "")
    gflop = counted_gflop(mine)
    return {"image": list(size), "scales": settings.scales, "flip": settings.flip, "gflop": round(gflop, 1),
            "timed": timed,
            "row": row(f"CAM inference, ResNet-38d SEAM, scales {'/'.join(map(str, settings.scales))} + flip, "
                       f"{size[1]}×{size[0]}", 1, "img", timed["ours"], timed["official"], bf16_target(), precision,
                       "the official code in fp32; " + bound_note(gflop, precision))}


def training_steps(seam_dir: str, psa_dir: str | None, size: int, batch: int, repeats: int) -> dict:
    """One SGD step of SEAM (YudeWang/SEAM@3212261:train_SEAM.py:78-84 optimizer, 104-146 step) and of psa's CAM
    classifier (jiwoon-ahn/psa@9493e59:train_cls.py:90-96, 121-131) against ``wsss.losses`` and the engine's
    optimizer on the same weights, ResNet-38d frozen as both freeze it (conv1a, b2-b2_2, every BN)."""
    from wsss.losses import classification_loss, seam_loss

    runtime = pick_runtime("cpu", "auto")
    images = torch.randn(batch, 3, size, size)
    labels = multi_hot()[None].repeat(batch, 1)
    arguments = argparse.Namespace(lr=0.01, wt_dec=5e-4)
    results, rows = {}, []
    variants = [("seam", seam_dir, "network.resnet38_SEAM", "train_SEAM.py", (78, 84), (104, 146), "scale_factor",
                 SEAM_NET, lambda net, batch_: seam_loss(net, batch_, settings_of(*SEAM_NET).seam))]
    if psa_dir:
        variants.append(("psa_cls", psa_dir, "network.resnet38_cls", "train_cls.py", (90, 96), (121, 131), "img",
                         ["method=cam", "train_cls.backbone=resnet38d", "train_cls.output_stride=8"],
                         classification_loss))
    for name, checkout, module, script, optimizer_lines, step_lines, starts, overrides, loss_fn in variants:
        torch.manual_seed(1)
        official = official_module(checkout, "", module).Net()
        official.train()   # resnet38d's train(): BN in eval, conv1a and b2-b2_2 frozen
        with cpu_shims():
            namespace = {"torch": torch, "F": F, "model": official, "args": arguments, "max_step": 10 ** 6,
                         "torchutils": official_module(checkout, "", "tool.torchutils"),
                         "pack": (None, images, labels),
                         "avg_meter": official_module(checkout, "", "tool.pyutils").AverageMeter("loss")}
            if name == "seam":
                train_seam = official_module(checkout, "", "train_SEAM")
                namespace.update(visualization=train_seam.visualization, max_onehot=train_seam.max_onehot,
                                 adaptive_min_pooling_loss=train_seam.adaptive_min_pooling_loss)
            run_official(official_lines(checkout, script, *optimizer_lines, "param_groups"), namespace)
        step_source = official_lines(checkout, script, *step_lines, starts)
        net = ours(name, official.state_dict(), overrides)
        net.backbone.freeze(frozen_stages=2, frozen_bn=True)
        net = runtime.prepare(net.train())   # the frozen modules stay in eval mode
        settings = settings_of(*overrides).train_cls
        optimizer = build_optimizer(net, TrainSettings.from_config(settings, settings_of().runtime, 0))
        batch_ = (runtime.batch(images), labels)

        def official_step(source=step_source, namespace=namespace):
            with cpu_shims():
                run_official(source, namespace)

        def step(net=net, optimizer=optimizer, batch_=batch_, loss_fn=loss_fn):
            with runtime.autocast():
                loss = loss_fn(net, batch_)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        timed = in_turns({"ours": step, "official": official_step}, repeats)
        precision = runtime.precision + (" + channels-last" if runtime.channels_last else "")
        results[name] = {"size": size, "batch": batch, "timed": timed, "gflop": round(counted_gflop(step), 1)}
        label = "SEAM training step (ER, PCM, ECR + OHEM)" if name == "seam" else "CAM training step (psa train_cls)"
        rows.append(row(f"{label}, ResNet-38d, batch {batch}, {size}²", batch, "img", timed["ours"],
                        timed["official"], bf16_target() if name == "seam" else 1.0, precision,
                        "the official code in fp32; per image " + bound_note(results[name]["gflop"] / batch, precision)))
    results["rows"] = rows
    return results


def walk(psa_dir: str, size: tuple[int, int], repeats: int) -> dict:
    """psa's AffinityNet and random walk of one image (jiwoon-ahn/psa@9493e59:infer_aff.py:85-120: the dense
    transition matrix squared ``logt`` times) against ``wsss.infer.random_walk.random_walk_scores``, same weights."""
    import tempfile

    from wsss.infer.random_walk import random_walk_scores

    torch.manual_seed(3)
    official = official_module(psa_dir, "", "network.resnet38_aff").Net()
    official.eval()
    imutils = official_module(psa_dir, "", "tool.imutils")
    runtime = pick_runtime("cpu", "auto")
    model = runtime.prepare(ours("psa_aff", official.state_dict(), []))
    cfg = settings_of().affinity
    image = synthetic_image(*size)
    rng = np.random.default_rng(0)
    cams = rng.random((len(PRESENT), *size), dtype=np.float32)
    img = torch.from_numpy(imutils.HWC_to_CHW(official.normalize(image)))[None]
    source = official_lines(psa_dir, "infer_aff.py", 85, 120, "orig_shape")
    with tempfile.TemporaryDirectory() as folder:
        np.save(f"{folder}/synthetic.npy", {int(k): c for k, c in zip(PRESENT, cams)})

        def official_walk():
            namespace = {"torch": torch, "F": F, "np": np, "os": __import__("os"), "model": official, "img": img,
                         "name": "synthetic", "args": argparse.Namespace(cam_dir=folder, alpha=cfg.alpha, beta=cfg.beta,
                                                                         logt=cfg.logt)}
            with torch.no_grad(), cpu_shims():
                run_official(source, namespace)

        def mine():
            with torch.inference_mode():
                return random_walk_scores(model, image, cams, cfg, runtime)

        timed = in_turns({"ours": mine, "official": official_walk}, repeats)
        gflop = counted_gflop(mine)   # the network's convolutions (the sparse walk is not counted)
    precision = runtime.precision + (" + channels-last" if runtime.channels_last else "")
    return {"image": list(size), "logt": cfg.logt, "walk": cfg.walk, "pairs": cfg.pairs, "timed": timed,
            "gflop": round(gflop, 1),
            "row": row(f"AffinityNet + random walk, ResNet-38d, {size[1]}×{size[0]}, t = 2^{cfg.logt}", 1, "img",
                       timed["ours"], timed["official"], 5.0, f"{precision}, walk {cfg.walk}",
                       "the official code in fp32, its dense T·T squarings; the network alone: "
                       + bound_note(gflop, precision))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seam-dir")
    parser.add_argument("--sccam-dir")
    parser.add_argument("--psa-dir")
    parser.add_argument("--crf-images", type=int, default=16)
    parser.add_argument("--image", type=int, nargs=2, default=(375, 500), metavar=("H", "W"))
    parser.add_argument("--features", type=int, nargs=2, default=(10582, 4096), metavar=("ROWS", "DIMS"))
    parser.add_argument("--step-size", type=int, default=448, help="the training steps' crop (SEAM's 448)")
    parser.add_argument("--step-batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parts = ("crf", "cluster", "cam", "steps", "walk")
    parser.add_argument("--parts", nargs="+", choices=parts, default=list(parts))
    args = parser.parse_args()
    report = {"machine": machine()}
    image = tuple(args.image)
    if "crf" in args.parts and args.seam_dir:
        report["crf"] = crf(args.seam_dir, args.crf_images, image, args.repeats)
    if "cluster" in args.parts and args.sccam_dir:
        report["cluster"] = cluster(args.sccam_dir, *args.features, args.repeats)
    if "cam" in args.parts and args.seam_dir:
        report["cam"] = cam(args.seam_dir, image, args.repeats)
    if "steps" in args.parts and args.seam_dir:
        report["steps"] = training_steps(args.seam_dir, args.psa_dir, args.step_size, args.step_batch, args.repeats)
    if "walk" in args.parts and args.psa_dir:
        report["walk"] = walk(args.psa_dir, image, args.repeats)
    report["ratios"] = ([report[part]["row"] for part in ("crf", "cluster", "cam") if part in report]
                        + report.get("steps", {}).get("rows", []) + ([report["walk"]["row"]] if "walk" in report else []))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
