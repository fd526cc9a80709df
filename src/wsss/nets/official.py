"""Released checkpoints of the official code, renamed into this project's networks (``wsss import-weights``).

Each format maps the official state-dict keys onto one network of the registry; the result is checked
strictly (every tensor of the file used, every tensor of the network given, same shapes) before it is
saved as a ``model.pt`` that the stages read like a trained one:

* ``seam``: SEAM's ``resnet38_SEAM.pth`` → the ``seam`` network on ``resnet38d``
  (YudeWang/SEAM@3212261:network/resnet38_SEAM.py:16-20: ``fc8``, ``f8_3``, ``f8_4``, ``f9``); the PCM's
  ``f9`` reads [image, f8_3, f8_4] there (line 44) and [proj_low, proj_mid, image] here, so its input
  channels are reordered.
* ``psa_cls``: psa's ``res38_cls.pth`` → the ``cam`` network on ``resnet38d``
  (jiwoon-ahn/psa@9493e59:network/resnet38_cls.py:14: ``fc8``, 20 classes).
* ``ldf``: LDF's released model → the ``ldf`` network on ``resnet50`` at width 64
  (weijun88/LDF@d49ff02:train-fine/net.py:84-184: ``bkbone``, ``conv{2..5}{b,d}``, ``decoder{b,d}``,
  ``encoder``, ``linear{b,d}``, ``linear``).

Files written by torch < 0.4.1 have no BN ``num_batches_tracked`` counters; those are the only tensors a
file may lack (they do not change the network's output).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from wsss.io import atomic_path
from wsss.nets.base import read_state_dict

SEAM_HEADS = {"fc8": "classifier", "f8_3": "proj_low", "f8_4": "proj_mid", "f9": "proj"}
PSA_CLS_HEADS = {"fc8": "classifier"}
LDF_LEVELS = {"2": 0, "3": 1, "4": 2, "5": 3}   # conv2b (stride 4) … conv5b (stride 32): fine to coarse


def _resnet38_name(heads: dict[str, str], key: str) -> str:
    module, _, rest = key.partition(".")
    return f"{heads[module]}.{rest}" if module in heads else f"backbone.{key}"


def ldf_name(key: str) -> str:
    """One key of LDF's ``net.py`` → the key of :class:`wsss.nets.ldf.LDF`."""
    rules = (
        (r"bkbone\.(.*)", r"backbone.\1"),
        (r"conv([2-5])b\.(.*)", lambda m: f"lateral_body.levels.{LDF_LEVELS[m[1]]}.{m[2]}"),
        (r"conv([2-5])d\.(.*)", lambda m: f"lateral_detail.levels.{LDF_LEVELS[m[1]]}.{m[2]}"),
        (r"decoder([bd])\.(conv|bn)([0-3])\.(.*)",
         lambda m: f"decoder_{'body' if m[1] == 'b' else 'detail'}.levels.{m[3]}.{0 if m[2] == 'conv' else 1}.{m[4]}"),
        (r"encoder\.(conv|bn)([1-4])([bd]?)\.(.*)",
         lambda m: f"encoder.{ {'': 'trunk', 'b': 'body', 'd': 'detail'}[m[3]] }.{int(m[2]) - 1}."
                   f"{0 if m[1] == 'conv' else 1}.{m[4]}"),
        (r"linearb\.(.*)", r"head_body.\1"),
        (r"lineard\.(.*)", r"head_detail.\1"),
        (r"linear\.([01])\.(.*)", r"head_saliency.0.\1.\2"),
        (r"linear\.3\.(.*)", r"head_saliency.1.\1"),
    )
    for pattern, replacement in rules:
        renamed, count = re.subn(f"^{pattern}$", replacement, key)
        if count:
            return renamed
    raise KeyError(key)


def _image_channels_last(weight: torch.Tensor) -> torch.Tensor:
    """SEAM's ``f9`` weight (input channels: 3 image, then 192 features) for this PCM's order."""
    return torch.cat([weight[:, 3:], weight[:, :3]], dim=1)


FORMATS = {  # format → (network of the registry, backbone, key renaming, tensor changes by new key)
    "seam": ("seam", "resnet38d", lambda key: _resnet38_name(SEAM_HEADS, key), {"proj.weight": _image_channels_last}),
    "psa_cls": ("cam", "resnet38d", lambda key: _resnet38_name(PSA_CLS_HEADS, key), {}),
    "ldf": ("ldf", "resnet50", ldf_name, {}),
}


def convert(format_name: str, state: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
            source: str = "the file") -> dict[str, torch.Tensor]:
    """The official ``state`` renamed to the keys of ``target`` (a network's state dict); every tensor
    must find its place with the same shape, and every target tensor but BN counters must be given."""
    _, _, rename, changes = FORMATS[format_name]
    names = {}
    for key in state:
        try:
            names[key] = rename(key)
        except KeyError:
            raise ValueError(f"{source}: tensor {key!r} is not part of a {format_name} checkpoint") from None
    unplaced = [key for key, name in names.items() if name not in target]
    if unplaced:
        raise ValueError(f"{source}: {len(unplaced)} tensors have no place in the {format_name} network, "
                         f"e.g. {unplaced[:3]}: a checkpoint of another network?")
    converted = {}
    for key, tensor in state.items():
        name = names[key]
        tensor = changes[name](tensor) if name in changes else tensor
        if tuple(tensor.shape) != tuple(target[name].shape):
            raise ValueError(f"{source}: tensor {key!r} is {tuple(tensor.shape)}, the network's {name!r} "
                             f"is {tuple(target[name].shape)}")
        converted[name] = tensor
    missing = [name for name in target if name not in converted and not name.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{source}: {len(missing)} tensors of the {format_name} network are missing, "
                         f"e.g. {missing[:3]}: a checkpoint of another network?")
    return {name: converted.get(name, target[name]) for name in target}


def import_weights(format_name: str, source: str | Path, out: str | Path, cfg) -> Path:
    """Convert the official checkpoint ``source`` and save it as this project's ``out`` (a state dict of the
    registry's network, built from ``cfg`` with the format's backbone)."""
    from wsss.nets.registry import build_network

    network, backbone, _, _ = FORMATS[format_name]
    cfg = _with_backbone(cfg, network, backbone)
    model = build_network(network, cfg, weights="")
    state = convert(format_name, read_state_dict(source), model.state_dict(), str(source))
    model.load_state_dict(state)
    with atomic_path(out) as tmp:
        torch.save({name: t.contiguous() for name, t in model.state_dict().items()}, tmp)
    return Path(out)


def _with_backbone(cfg, network: str, backbone: str):
    """``cfg`` with the network's training section on ``backbone`` (ResNet-38d at stride 8, LDF at width 64,
    as released)."""
    if network == "ldf":
        return cfg.model_copy(update={"ldf": cfg.ldf.model_copy(update={"backbone": backbone, "width": 64})})
    return cfg.model_copy(update={"train_cls": cfg.train_cls.model_copy(update={"backbone": backbone,
                                                                                 "output_stride": 8})})
