"""Several methods' saliency maps on one SOD test set, scored by the project's evaluator, and a figure.

    python docs/experiments/scripts/sod_comparison.py --gt data/raw/SOD/SOD \
        LDF=data/saliency/ldf/SOD Amulet=../shared/data/sod-eval/pred/Amulet \
        DSS=../shared/data/sod-eval/pred/DSS PiCANet=../shared/data/sod-eval/pred/PiCANet \
        --figure docs/sod_comparison.png

``--gt`` is a dataset folder (``images/``, ``masks/``, ``test.txt``): every method is scored on the names of
its ``test.txt`` with ``wsss.metrics.saliency.evaluate_saliency_dirs``. Prints a Markdown table; the
figure shows ``--rows`` test images (evenly spaced in the sorted list), their masks and each method's map.
"""

import argparse
from pathlib import Path

import numpy as np

from wsss.data.sod import find_sod_dirs, read_list_names
from wsss.io import read_grey, read_rgb
from wsss.metrics.report import new_figure, save_figure
from wsss.metrics.saliency import evaluate_saliency_dirs

COLUMNS = (("MAE ↓", "mae"), ("adaptive F", "adp_f"), ("max F", "max_f"), ("S-measure", "s_measure"),
           ("E_ξ (LDF)", "ldf_e"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("methods", nargs="+", metavar="NAME=DIR", help="a method's maps, <DIR>/<id>.png")
    parser.add_argument("--gt", required=True, help="the dataset folder (images/, masks/, test.txt)")
    parser.add_argument("--figure", help="PNG: test images, masks and every method's map side by side")
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    gt = Path(args.gt)
    images, masks, listing = find_sod_dirs(gt.parent, gt.name, "test.txt")
    names = read_list_names(listing)
    methods = dict(item.split("=", 1) for item in args.methods)
    print(f"| method ({len(names)} test images of {gt.name}) | " + " | ".join(title for title, _ in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for method, folder in methods.items():
        scores = evaluate_saliency_dirs(folder, masks, workers=args.workers, names=names)
        print(f"| {method} | " + " | ".join(f"{scores[key]:.3f}" for _, key in COLUMNS) + " |")
    if args.figure:
        shown = [names[i] for i in np.linspace(0, len(names) - 1, args.rows).round().astype(int)]
        draw(shown, images, masks, methods, args.figure)


def draw(names: list[str], images: Path, masks: Path, methods: dict[str, str], path: str) -> None:
    """One row per image: the photo, its mask, then each method's map."""
    titles = ["image", "mask", *methods]
    figure, axes = new_figure(len(titles), (1.6 * len(titles), 1.2 * len(names)), nrows=len(names))
    for row, name in zip(axes, names):
        panels = [read_rgb(next(images.glob(f"{name}.*"))), read_grey(masks / f"{name}.png")]
        panels += [read_grey(Path(folder) / f"{name}.png") for folder in methods.values()]
        for axis, panel in zip(row, panels):
            axis.imshow(panel, cmap=None if panel.ndim == 3 else "gray", vmin=0, vmax=255)
            axis.set_xticks([])
            axis.set_yticks([])
    for axis, title in zip(axes[0], titles):
        axis.set_title(title, fontsize=9)
    save_figure(figure, path)


if __name__ == "__main__":
    main()
