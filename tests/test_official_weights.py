"""`wsss import-weights`: the released checkpoints' key names and shapes (fixtures listed from the official
networks' state dicts) land in this project's networks, tensor for tensor."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wsss.cli import main
from wsss.nets.official import FORMATS
from wsss.stages.common import load_trained

FIXTURES = Path(__file__).parent / "fixtures" / "official_keys"
PARAMS = Path(__file__).parents[1] / "params.yaml"
NETWORKS = {"seam": "seam", "psa_cls": "cam", "psa_aff": "aff", "ldf": "ldf"}
SETTINGS = {"seam": ["method=seam", "train_cls.backbone=resnet38d", "train_cls.output_stride=8"],
            "psa_cls": ["method=cam", "train_cls.backbone=resnet38d", "train_cls.output_stride=8"],
            "psa_aff": ["affinity.backbone=resnet38d", "affinity.output_stride=8"],
            "ldf": ["ldf.backbone=resnet50", "ldf.width=64"]}


def official_checkpoint(format_name: str, path: Path, drop_counters: bool = False, prefix: str = "") -> dict:
    """Seeded random tensors under the official names and shapes, saved at ``path``."""
    generator = torch.Generator().manual_seed(0)
    state = {prefix + name: torch.randn(shape, generator=generator) if shape else torch.tensor(7)
             for name, shape in json.loads((FIXTURES / f"{format_name}.json").read_text())
             if not (drop_counters and name.endswith("num_batches_tracked"))}
    torch.save(state, path)
    return state


def imported_network(format_name: str, path: Path, tmp_path: Path):
    from wsss.config import load_config
    from wsss.nets.registry import build_network

    out = tmp_path / "model.pt"
    args = [f"--set={item}" for item in SETTINGS[format_name]]
    assert main(["import-weights", format_name, str(path), "--out", str(out), "--params", str(PARAMS), *args]) == 0
    cfg = load_config(PARAMS, SETTINGS[format_name])
    return load_trained(build_network(NETWORKS[format_name], cfg, weights=""), out)


@pytest.mark.parametrize("format_name", sorted(NETWORKS))
def test_every_official_tensor_lands_in_the_network_unchanged(format_name, tmp_path):
    state = official_checkpoint(format_name, tmp_path / "official.pth", prefix="module.")  # saved from DataParallel
    ours = imported_network(format_name, tmp_path / "official.pth", tmp_path).state_dict()
    _, _, rename, changes = FORMATS[format_name]
    renamed = {rename(name.removeprefix("module.")): tensor for name, tensor in state.items()}
    assert set(renamed) == set(ours)  # a one-to-one mapping: nothing left over, nothing missing
    assert all(torch.equal(ours[name], tensor) for name, tensor in renamed.items() if name not in changes)
    for name, change in changes.items():
        assert torch.equal(ours[name], change(renamed[name])) and not torch.equal(ours[name], renamed[name])


def test_seams_pcm_projection_takes_the_image_channels_last():
    """SEAM concatenates [image (3), f8_3 (64), f8_4 (128)] before f9; this PCM [proj_low, proj_mid, image]."""
    weight = torch.arange(2 * 195, dtype=torch.float32).view(2, 195, 1, 1)
    changed = FORMATS["seam"][3]["proj.weight"](weight)
    assert torch.equal(changed[:, -3:], weight[:, :3]) and torch.equal(changed[:, :192], weight[:, 3:])


def test_the_cli_offers_every_format():
    from wsss.cli import IMPORT_FORMATS

    assert set(IMPORT_FORMATS) == {*FORMATS, "resnet38_imagenet"}


def test_a_file_of_old_torch_without_bn_counters_loads(tmp_path):
    official_checkpoint("psa_cls", tmp_path / "res38_cls.pth", drop_counters=True)
    model = imported_network("psa_cls", tmp_path / "res38_cls.pth", tmp_path)
    assert model.classifier.weight.shape == (20, 4096, 1, 1)


def test_a_checkpoint_of_another_network_is_an_error_naming_the_file(tmp_path, capsys):
    official_checkpoint("seam", tmp_path / "resnet38_SEAM.pth")
    assert main(["import-weights", "psa_cls", str(tmp_path / "resnet38_SEAM.pth"), "--out", str(tmp_path / "m.pt"),
                 "--params", str(PARAMS)]) == 2
    error = capsys.readouterr().err
    assert "resnet38_SEAM.pth" in error and "f8_3.weight" in error
    assert not (tmp_path / "m.pt").exists()


def test_a_tensor_of_the_wrong_shape_is_an_error_naming_it(tmp_path, capsys):
    state = official_checkpoint("psa_cls", tmp_path / "res38_cls.pth")
    state["fc8.weight"] = torch.zeros(21, 4096, 1, 1)  # SEAM's 21-class head in a psa file
    torch.save(state, tmp_path / "res38_cls.pth")
    assert main(["import-weights", "psa_cls", str(tmp_path / "res38_cls.pth"), "--out", str(tmp_path / "m.pt"),
                 "--params", str(PARAMS)]) == 2
    assert "'fc8.weight' is (21, 4096, 1, 1)" in capsys.readouterr().err


def mxnet_name(key: str) -> str:
    """Our ResNet-38d key → ademxapp's array name (the inverse of psa's renaming, written out)."""
    module, _, rest = key.partition(".")
    if module == "conv1a":
        return "arg:conv1a_weight"
    bn = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_var"}
    prefix = "aux" if "running" in rest else "arg"
    if module == "bn7":
        return f"{prefix}:bn7_{bn[rest]}"
    stage, _, index = module[1:].partition("_")
    unit = f"{stage}a" if not index else f"{stage}b{index}"
    layer, last = rest.split(".")
    kind, branch = layer.split("_")
    return f"{prefix}:{'res' if kind == 'conv' else 'bn'}{unit}_{branch}_{'weight' if kind == 'conv' else bn[last]}"


def write_mxnet_params(path: Path, arrays: dict, legacy: bool) -> None:
    """An ``mx.nd.save`` file: the list header, each array record (legacy or V2), then the names."""
    import struct

    out = [struct.pack("<QQQ", 0x112, 0, len(arrays))]
    for array in arrays.values():
        if legacy:
            out.append(struct.pack(f"<I{array.ndim}I", array.ndim, *array.shape))
        else:
            out.append(struct.pack(f"<Iii{array.ndim}q", 0xF993FAC9, 0, array.ndim, *array.shape))
        out.append(struct.pack("<iii", 1, 0, 0) + array.astype("<f4").tobytes())  # cpu(0), float32
    out.append(struct.pack("<Q", len(arrays)))
    out += [struct.pack("<Q", len(name)) + name.encode() for name in arrays]
    path.write_bytes(b"".join(out))


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "v2"])
def test_ademxapps_imagenet_resnet38_is_read_without_mxnet(legacy, tmp_path):
    from wsss.nets.resnet38d import ResNet38d

    generator = torch.Generator().manual_seed(0)
    shapes = {key: tensor.shape for key, tensor in ResNet38d().state_dict().items() if "num_batches" not in key}
    arrays = {mxnet_name(key): torch.randn(shape, generator=generator).numpy() for key, shape in shapes.items()}
    arrays["arg:linear1000_weight"] = torch.randn(1000, 4096).numpy()  # the ImageNet classifier, dropped
    write_mxnet_params(tmp_path / "ilsvrc.params", arrays, legacy)
    assert main(["import-weights", "resnet38_imagenet", str(tmp_path / "ilsvrc.params"),
                 "--out", str(tmp_path / "resnet38d.pth"), "--params", str(PARAMS)]) == 0
    state = torch.load(tmp_path / "resnet38d.pth", weights_only=True)
    assert all(torch.equal(state[key], torch.from_numpy(arrays[mxnet_name(key)])) for key in shapes)
    from wsss.nets.backbones import build_backbone

    backbone = build_backbone("resnet38d", str(tmp_path / "resnet38d.pth"))  # what train_cls.weights reads
    assert not backbone.weights_report.missing and not backbone.weights_report.unexpected


def test_a_truncated_mxnet_file_is_an_error_naming_it(tmp_path, capsys):
    write_mxnet_params(tmp_path / "ilsvrc.params", {"arg:conv1a_weight": np.zeros((64, 3, 3, 3), "f4")}, False)
    (tmp_path / "cut.params").write_bytes((tmp_path / "ilsvrc.params").read_bytes()[:200])
    assert main(["import-weights", "resnet38_imagenet", str(tmp_path / "cut.params"),
                 "--out", str(tmp_path / "r.pth"), "--params", str(PARAMS)]) == 2
    assert "cut.params: truncated or not an MXNet NDArray file" in capsys.readouterr().err
    assert not (tmp_path / "r.pth").exists()
