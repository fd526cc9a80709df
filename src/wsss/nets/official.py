"""Released checkpoints of the official code, renamed into this project's networks (``wsss import-weights``).

Each format maps the official state-dict keys onto one network of the registry; the result is checked
strictly (every tensor of the file used, every tensor of the network given, same shapes) before it is
saved as a ``model.pt`` that the stages read like a trained one:

* ``seam``: SEAM's ``resnet38_SEAM.pth`` → the ``seam`` network on ``resnet38d``
  (YudeWang/SEAM@3212261:network/resnet38_SEAM.py:16-20: ``fc8``, ``f8_3``, ``f8_4``, ``f9``); the PCM's
  ``f9`` reads [image, f8_3, f8_4] there (line 45) and [proj_low, proj_mid, image] here, so its input
  channels are reordered.
* ``psa_cls``: psa's ``res38_cls.pth`` → the ``cam`` network on ``resnet38d``
  (jiwoon-ahn/psa@9493e59:network/resnet38_cls.py:14: ``fc8``, 20 classes).
* ``psa_aff``: psa's ``res38_aff.pth`` → the ``aff`` network on ``resnet38d``
  (jiwoon-ahn/psa@9493e59:network/resnet38_aff.py:13-17: ``f8_3``, ``f8_4``, ``f8_5``, ``f9``).
* ``ldf``: LDF's released model → the ``ldf`` network on ``resnet50`` at width 64
  (weijun88/LDF@d49ff02:train-fine/net.py:84-184: ``bkbone``, ``conv{2..5}{b,d}``, ``decoder{b,d}``,
  ``encoder``, ``linear{b,d}``, ``linear``).

Files written by torch < 0.4.1 have no BN ``num_batches_tracked`` counters; those are the only tensors a
file may lack (they do not change the network's output).

``resnet38_imagenet`` is the ImageNet ResNet-38 of ademxapp (``ilsvrc-cls_rna-a1_cls1000_ep-0001.params``),
an MXNet file that psa and SEAM convert once with MXNet (jiwoon-ahn/psa@9493e59:network/resnet38d.py:215-263);
here it is read without MXNet (:func:`read_mxnet_params`) and renamed as psa renames it, into a ``.pth`` of
the ``resnet38d`` backbone for ``train_cls.weights``.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import torch

from wsss.io import atomic_path
from wsss.nets.base import read_state_dict

SEAM_HEADS = {"fc8": "classifier", "f8_3": "proj_low", "f8_4": "proj_mid", "f9": "proj"}
PSA_CLS_HEADS = {"fc8": "classifier"}
PSA_AFF_HEADS = {"f8_3": "projections.low", "f8_4": "projections.mid", "f8_5": "projections.out", "f9": "head"}
LDF_LEVELS = {"2": 0, "3": 1, "4": 2, "5": 3}   # conv2b (stride 4) … conv5b (stride 32): fine to coarse


def _resnet38_name(heads: dict[str, str], key: str) -> str:
    module, _, rest = key.partition(".")
    return f"{heads[module]}.{rest}" if module in heads else f"backbone.{key}"


def ldf_name(key: str) -> str:
    """One key of weijun88/LDF@d49ff02:train-fine/net.py → the key of :class:`wsss.nets.ldf.LDF`."""
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
    "psa_aff": ("aff", "resnet38d", lambda key: _resnet38_name(PSA_AFF_HEADS, key), {}),
    "ldf": ("ldf", "resnet50", ldf_name, {}),
}


MXNET_LIST_MAGIC = 0x112                                   # an NDArray list file (MXNet c_api.cc)
MXNET_V1, MXNET_V2, MXNET_V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA  # NDArray records (MXNet ndarray.cc)
MXNET_DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32, 5: np.int8, 6: np.int64}
BN_NAMES = {"gamma": "weight", "beta": "bias", "mean": "running_mean", "var": "running_var"}


def read_mxnet_params(path: str | Path) -> dict[str, np.ndarray]:
    """The named dense arrays of an MXNet ``.params`` file (``mx.nd.save``), in any of its record formats:
    legacy (no magic, 32-bit dims), V1 (64-bit dims), V2/V3 (with a storage type; sparse ones refused)."""
    data = Path(path).read_bytes()
    offset = 0

    def take(fmt: str):
        nonlocal offset
        values = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    try:
        if take("Q") != MXNET_LIST_MAGIC:
            raise ValueError(f"{path}: not an MXNet NDArray file (wrong magic number)")
        take("Q")  # reserved
        arrays = []
        for _ in range(take("Q")):
            magic = take("I")
            if magic in (MXNET_V2, MXNET_V3):
                if take("i") != 0:
                    raise ValueError(f"{path}: holds a sparse array; only dense arrays are read")
                ndim = take("i")
                shape = take(f"{ndim}q") if ndim > 0 else ()
            elif magic == MXNET_V1:
                ndim = take("I")
                shape = take(f"{ndim}q")
            else:  # legacy: the magic is the number of dimensions
                ndim = magic
                shape = take(f"{ndim}I")
            shape = (shape,) if isinstance(shape, int) else tuple(shape)
            if ndim <= 0:
                arrays.append(np.zeros(0, np.float32))
                continue
            take("ii")  # the context: device type and id
            dtype = np.dtype(MXNET_DTYPES[take("i")])
            count = int(np.prod(shape))
            arrays.append(np.frombuffer(data, dtype, count, offset).reshape(shape).copy())
            offset += count * dtype.itemsize
        names = []
        for _ in range(take("Q")):
            length = take("Q")
            names.append(data[offset:offset + length].decode())
            offset += length
    except (struct.error, KeyError, ValueError) as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path}: truncated or not an MXNet NDArray file ({error})") from None
    if len(names) != len(arrays):
        raise ValueError(f"{path}: {len(arrays)} arrays but {len(names)} names")
    return dict(zip(names, arrays))


def resnet38_from_mxnet(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """ademxapp's ImageNet ResNet-38 arrays (``arg:res2a_branch2a_weight``, ``aux:bn7_moving_var``, ...) under
    the ``resnet38d`` backbone's keys, its 1000-class ``linear1000`` dropped
    (jiwoon-ahn/psa@9493e59:network/resnet38d.py:224-261)."""
    state = {}
    for key, value in arrays.items():
        name = key.split(":", 1)[-1]
        tokens = name.split("_")
        if tokens[0] == "conv1a":
            state["conv1a.weight"] = torch.from_numpy(value)
        elif tokens[0] == "linear1000":
            continue
        elif len(tokens) > 2 and tokens[1].startswith("branch"):
            unit = tokens[0]                                    # res4b5 / bn4b5 → b4_5; res2a / bn2a → b2
            block = f"b{unit[-2]}" if unit.endswith("a") else f"b{unit[-3]}_{unit[-1]}"
            layer, last = ("conv", "weight") if unit.startswith("res") else ("bn", BN_NAMES[tokens[-1]])
            state[f"{block}.{layer}_{tokens[1]}.{last}"] = torch.from_numpy(value)
        elif tokens[0] == "bn7":
            state[f"bn7.{BN_NAMES[tokens[-1]]}"] = torch.from_numpy(value)
        else:
            raise ValueError(f"array {key!r} is not part of ademxapp's ResNet-38")
    return state


def import_resnet38_imagenet(source: str | Path, out: str | Path) -> Path:
    """ademxapp's ``.params`` → a ``.pth`` state dict of the ``resnet38d`` backbone, every tensor checked."""
    from wsss.nets.resnet38d import ResNet38d

    backbone = ResNet38d()
    try:
        state = resnet38_from_mxnet(read_mxnet_params(source))
    except ValueError as error:
        raise ValueError(str(error) if str(error).startswith(str(source)) else f"{source}: {error}") from None
    target = backbone.state_dict()
    unplaced = [name for name in state if name not in target]
    missing = [name for name in target if name not in state and not name.endswith("num_batches_tracked")]
    wrong = [name for name in state if name in target and tuple(state[name].shape) != tuple(target[name].shape)]
    if unplaced or missing or wrong:
        raise ValueError(f"{source}: not ademxapp's ResNet-38 ({len(unplaced)} arrays without a place, e.g. "
                         f"{unplaced[:2]}; {len(missing)} missing, e.g. {missing[:2]}; {len(wrong)} of another shape, "
                         f"e.g. {wrong[:2]})")
    backbone.load_state_dict(state, strict=False)
    with atomic_path(out) as tmp:
        torch.save(backbone.state_dict(), tmp)
    return Path(out)


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
    if network == "aff":
        return cfg.model_copy(update={"affinity": cfg.affinity.model_copy(update={"backbone": backbone,
                                                                                  "output_stride": 8})})
    return cfg.model_copy(update={"train_cls": cfg.train_cls.model_copy(update={"backbone": backbone,
                                                                                 "output_stride": 8})})
