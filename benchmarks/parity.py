"""Parity with the official networks: the same random weights (through ``wsss.nets.official``'s key maps)
and the same input in the official code and in this project, and the largest difference of the outputs.

    python benchmarks/parity.py --seam-dir CHECKOUT_OF_YudeWang/SEAM --psa-dir CHECKOUT_OF_jiwoon-ahn/psa \
        --ldf-dir CHECKOUT_OF_weijun88/LDF [--size 224]

Each official network is built from its checkout (``network/resnet38_SEAM.py``, ``network/resnet38_cls.py``,
``train-fine/net.py``; LDF's ImageNet ResNet file is not read), seeded, in eval mode, fp32; its state dict is
converted as ``wsss import-weights`` converts a released file. Compared: SEAM's CAM and PCM outputs at the
input size (the official network upsamples both with ``align_corners=True``,
YudeWang/SEAM@3212261:network/resnet38_SEAM.py:48-49), psa's
class scores, and LDF's six maps. Prints JSON: per output the largest absolute difference and that
difference relative to the largest official value. Omit a ``--*-dir`` to skip that network.
"""

import argparse
import importlib
import json
import sys

import torch
import torch.nn.functional as F

from wsss.config import load_config
from wsss.nets.official import FORMATS, convert
from wsss.nets.registry import build_network


def official_module(checkout: str, subdir: str, module: str):
    """Import ``module`` from a checkout (its folder first on the path, the import cache cleared of it)."""
    sys.path.insert(0, f"{checkout}/{subdir}".rstrip("/"))
    for name in [name for name in sys.modules if name == "network" or name.startswith(("network.", "net"))]:
        del sys.modules[name]
    return importlib.import_module(module)


def ours(format_name: str, official_state: dict, overrides: list[str]):
    network = FORMATS[format_name][0]
    model = build_network(network, load_config("params.yaml", overrides), weights="")
    model.load_state_dict(convert(format_name, official_state, model.state_dict(), format_name))
    return model.eval()


def differences(official: dict[str, torch.Tensor], mine: dict[str, torch.Tensor]) -> dict:
    return {name: {"max_abs": (official[name] - mine[name]).abs().max().item(),
                   "relative": ((official[name] - mine[name]).abs().max() / official[name].abs().max()).item()}
            for name in official}


def seam(checkout: str, image: torch.Tensor) -> dict:
    official = official_module(checkout, "", "network.resnet38_SEAM").Net()
    official.eval()  # psa's and SEAM's train() overrides return None
    model = ours("seam", official.state_dict(),
                 ["method=seam", "train_cls.backbone=resnet38d", "train_cls.output_stride=8"])
    with torch.no_grad():
        cam, pcm = official(image)
        my_cam, my_pcm = (F.interpolate(x, image.shape[2:], mode="bilinear", align_corners=True) for x in model(image))
    return differences({"cam": cam, "pcm": pcm}, {"cam": my_cam, "pcm": my_pcm})


def psa_cls(checkout: str, image: torch.Tensor) -> dict:
    official = official_module(checkout, "", "network.resnet38_cls").Net()
    official.eval()
    model = ours("psa_cls", official.state_dict(),
                 ["method=cam", "train_cls.backbone=resnet38d", "train_cls.output_stride=8"])
    with torch.no_grad():
        return differences({"scores": official(image)}, {"scores": model(image)})


def ldf(checkout: str, image: torch.Tensor) -> dict:
    net = official_module(checkout, "train-fine", "net")
    net.ResNet.initialize = lambda self: None  # its ImageNet file: random weights stand in

    class Settings:
        snapshot = None

    official = net.LDF(Settings()).eval()
    model = ours("ldf", official.state_dict(), ["ldf.backbone=resnet50", "ldf.width=64"])
    names = ("body1", "detail1", "saliency1", "body2", "detail2", "saliency2")
    with torch.no_grad():
        return differences(dict(zip(names, official(image))), model.outputs(image)._asdict())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seam-dir")
    parser.add_argument("--psa-dir")
    parser.add_argument("--ldf-dir")
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    report = {}
    for name, checkout, compare in (("seam", args.seam_dir, seam), ("psa_cls", args.psa_dir, psa_cls),
                                    ("ldf", args.ldf_dir, ldf)):
        if checkout:
            torch.manual_seed(0)
            image = torch.randn(1, 3, args.size, args.size)
            report[name] = compare(checkout, image)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
