"""Backbones, the CAM classifier and DeepLab: shapes, freezing, parameter groups, weights, precision."""

import pytest
import torch
import torch.nn.functional as F

from wsss.nets.backbones import build_backbone, param_groups
from wsss.nets.base import load_weights
from wsss.nets.cam import CAMNet
from wsss.nets.deeplab import build_segmenter
from wsss.nets.resnet38d import ResNet38d


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def image(size=64, batch=1):
    return torch.randn(batch, 3, size, size)


def randomized(module):
    """Every parameter and BN statistic random, so that no weight is invisible in the output (the small
    backbone starts its residual branches at zero)."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(std=0.2)
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(std=0.1)
                m.running_var.uniform_(0.5, 2)
    return module


def trainable(module):
    return [p for p in module.parameters() if p.requires_grad]


@pytest.mark.parametrize("name, output_stride, channels", [
    ("small", 8, (128, 256, 256)), ("small", 16, (128, 256, 256)),
    ("resnet50", 8, (512, 1024, 2048)), ("resnet50", 16, (512, 1024, 2048)),
    ("resnet38d", 8, (512, 1024, 4096)),
])
def test_levels_have_the_announced_strides_and_channels(name, output_stride, channels):
    backbone = build_backbone(name, output_stride=output_stride).eval()
    with torch.no_grad():
        features = backbone(image(64))
    assert tuple(backbone.channels[k] for k in ("low", "mid", "out")) == channels
    assert backbone.strides["low"] == 8 and backbone.strides["out"] == output_stride
    for level, x in features.items():
        assert x.shape == (1, backbone.channels[level], 64 // backbone.strides[level], 64 // backbone.strides[level])


def test_resnet38d_matches_psa_layout_and_parameter_count():
    """psa/SEAM resnet38d.Net: 228 state-dict tensors, 105,070,912 parameters (SEAM adds fc8, f8_3, f8_4, f9:
    +287,296 = 105.4 M, YudeWang/SEAM@3212261:network/resnet38_SEAM.py:16-20)."""
    net = ResNet38d()
    state = net.state_dict()
    assert sum(p.numel() for p in net.parameters()) == 105_070_912
    assert len(state) == 228  # with the 37 BNs' num_batches_tracked, which psa's converted files lack
    assert state["conv1a.weight"].shape == (64, 3, 3, 3)
    assert state["b2.conv_branch1.weight"].shape == (128, 64, 1, 1)
    assert "b2_1.conv_branch1.weight" not in state
    assert state["b5.conv_branch2a.weight"].shape == (512, 512, 3, 3)
    assert state["b6.conv_branch2b1.weight"].shape == (1024, 512, 3, 3)
    assert state["b7.conv_branch2b2.weight"].shape == (4096, 2048, 1, 1)
    assert state["bn7.running_var"].shape == (4096,)
    assert net.b6.conv_branch2b1.dilation == (4, 4) and net.b5.conv_branch2a.dilation == (1, 1)
    assert net.b5_1.conv_branch2a.dilation == (2, 2)


def test_cam_logits_are_the_spatial_mean_of_the_map_before_relu():
    net = CAMNet(build_backbone("small"), num_classes=20).eval()
    x = image(64, batch=2)
    with torch.no_grad():
        logits, features = net(x, return_features=True)
        cams = net.cam(x)
        raw = net.classifier(features["out"])
    assert logits.shape == (2, 20) and cams.shape == (2, 20, 8, 8)
    torch.testing.assert_close(logits, raw.mean((2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cams, F.relu(raw))
    assert features["gap"].shape == (2, 256)
    torch.testing.assert_close(features["gap"], features["out"].mean((2, 3)))
    assert {"low", "mid", "out"} <= set(features)


@pytest.mark.parametrize("build", [
    lambda: CAMNet(build_backbone("small")),
    lambda: CAMNet(build_backbone("small", frozen_bn=True, frozen_stages=2)),
    lambda: build_segmenter("deeplab_v2", "small"),
    lambda: build_segmenter("deeplab_v1", "small", frozen_stages=1),
])
def test_param_groups_partition_the_trainable_parameters(build):
    net = build()
    groups = net.param_groups()
    ids = [id(p) for group in groups for p in group]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in trainable(net)}
    backbone = {id(p) for p in net.backbone.parameters()}
    assert all(id(p) in backbone for p in groups[0] + groups[1])
    assert all(id(p) not in backbone for p in groups[2] + groups[3])
    assert all(p.dim() == 1 for p in groups[1] + groups[3])  # biases
    assert groups[2]  # the classifier / head is new


def test_psa_groups_of_the_resnet38d_cam_net():
    """psa: conv weights ×1, no backbone biases, fc8 ×10, nothing ×20; conv1a and b2* and every BN frozen."""
    net = CAMNet(build_backbone("resnet38d", frozen_bn=True, frozen_stages=2))
    groups = net.param_groups()
    convs = [m for m in net.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [len(g) for g in groups] == [len(convs) - 8, 0, 1, 0]  # conv1a + 3 convs in b2 + 2 in b2_1, b2_2 each
    assert groups[2][0] is net.classifier.weight


def test_frozen_bn_keeps_statistics_and_affine_and_frozen_stages_get_no_gradient():
    backbone = build_backbone("small", frozen_bn=True, frozen_stages=2)
    net = CAMNet(backbone).train()
    for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.normal_()  # distinguishable from a fresh BN's zeros
    before = {k: v.clone() for k, v in backbone.state_dict().items() if "bn" in k or "shortcut.1" in k or "stem.1" in k}
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net(image(64, batch=2)).sum().backward()
    optimizer.step()
    after = backbone.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert all(not m.training for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert all(p.grad is None for m in (backbone.stem, backbone.layer1) for p in m.parameters())
    assert all(p.grad is not None for p in backbone.layer2.parameters() if p.requires_grad)
    assert net.dropout.training  # only BN and the frozen stages stay in eval mode


def test_unfrozen_small_backbone_trains_its_batchnorm():
    backbone = build_backbone("small")  # from scratch: nothing frozen
    assert backbone.frozen_stages == 0 and not backbone.frozen_bn
    backbone.train()
    backbone(image(64, batch=2))
    assert backbone.stem[1].running_mean.abs().sum() > 0


def test_train_override_keeps_eval_and_respects_eval():
    net = CAMNet(build_backbone("resnet38d", frozen_bn=True, frozen_stages=2))
    net.train()
    assert net.backbone.training and not net.backbone.bn7.training and not net.backbone.b2_1.training
    assert net.backbone.b3.training
    assert net.backbone.b6.dropout_2b1.training
    net.eval()
    assert not any(m.training for m in net.modules())


def test_saved_state_dict_restores_outputs(tmp_path):
    net = randomized(build_segmenter("deeplab_v1", "small")).eval()
    x = image(64)
    with torch.no_grad():
        expected = net(x)
    torch.save({"state_dict": net.state_dict()}, tmp_path / "seg.pth")
    torch.manual_seed(1)
    copy = build_segmenter("deeplab_v1", "small").eval()
    copy.load_state_dict(torch.load(tmp_path / "seg.pth")["state_dict"])
    with torch.no_grad():
        torch.testing.assert_close(copy(x), expected)


def test_backbone_weights_load_by_path_and_report_keys(tmp_path):
    source = randomized(build_backbone("small")).eval()
    state = {f"module.{k}": v for k, v in source.state_dict().items()}  # as DataParallel saves it
    state["module.fc8.weight"] = torch.zeros(20, 256, 1, 1)  # a classifier the backbone does not have
    del state["module.layer4.0.bn2.running_var"]
    torch.save({"model": state}, tmp_path / "small.pth")
    loaded = build_backbone("small", weights=str(tmp_path / "small.pth"), frozen_bn=False, frozen_stages=0).eval()
    report = loaded.weights_report
    assert report.unexpected == ["fc8.weight"] and report.missing == ["layer4.0.bn2.running_var"]
    assert len(report.matched) == len(state) - 1
    loaded.layer4[0].bn2.running_var.copy_(source.layer4[0].bn2.running_var)
    x = image(64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["out"], source(x)["out"])


def test_deeplab_starts_from_a_trained_classifiers_backbone(tmp_path):
    classifier = CAMNet(randomized(build_backbone("small"))).eval()
    torch.save(classifier.state_dict(), tmp_path / "classifier.pt")
    deeplab = build_segmenter("deeplab_v2", "small", weights=str(tmp_path / "classifier.pt")).eval()
    report = deeplab.backbone.weights_report
    assert report.unexpected == [] and report.missing == []  # the classifier's 1x1 layer is left behind
    x = image(64)
    with torch.no_grad():
        torch.testing.assert_close(deeplab.backbone(x)["out"], classifier.backbone(x)["out"])


def test_tiny_is_small_at_half_the_width():
    small, tiny = build_backbone("small"), build_backbone("tiny")
    assert {k: 2 * v for k, v in tiny.channels.items()} == small.channels
    assert tiny.pyramid_channels == tuple(c // 2 for c in small.pyramid_channels)
    with torch.no_grad():
        assert tiny(image(64))["out"].shape == (1, 128, 8, 8)
    assert sum(p.numel() for p in tiny.parameters()) < sum(p.numel() for p in small.parameters()) / 3


def off_centre_tap_gradients(rates, size):
    """|gradient| of each ASPP branch's off-centre 3×3 taps after one backward pass on a size×size map."""
    net = build_segmenter("deeplab_v2", "tiny", aspp_rates=rates)
    net(image(size * 8)).sum().backward()
    centre = torch.ones(3, 3, dtype=torch.bool)
    centre[1, 1] = False
    return [conv.weight.grad[..., centre].abs().sum().item() for conv in net.head.branches]


def test_aspp_branches_whose_rate_passes_the_map_edge_never_learn_their_taps():
    published = off_centre_tap_gradients((6, 12, 18, 24), size=12)     # the smoke crop 96 at stride 8
    assert published[0] > 0 and published[1:] == [0.0, 0.0, 0.0]      # 12, 18, 24 only read the zero padding
    assert all(g > 0 for g in off_centre_tap_gradients((2, 3, 5, 7), size=12))
    assert all(g > 0 for g in off_centre_tap_gradients((6, 12, 18, 24), size=41))   # the 321 crop's map


def test_pretrained_weights_freeze_by_default(tmp_path):
    torch.save({"conv1a.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "res38.pth")  # a (tiny) pretrained file
    backbone = build_backbone("resnet38d", weights=str(tmp_path / "res38.pth"))
    assert backbone.frozen_bn and backbone.frozen_stages == 2
    assert not any(p.requires_grad for m in (backbone.conv1a, backbone.b2, backbone.b2_2, backbone.bn7) for p in m.parameters())
    assert all(p.requires_grad for p in backbone.b3.conv_branch2a.parameters())


def test_weights_with_no_matching_key_are_rejected(tmp_path):
    torch.save({"something.else": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="wrong.pth.*none of its 1 tensors"):
        load_weights(ResNet38d(), tmp_path / "wrong.pth")


def test_missing_weights_name_the_file_and_where_to_get_it(tmp_path, monkeypatch):
    missing = tmp_path / "models" / "resnet38d_ilsvrc.pth"
    with pytest.raises(FileNotFoundError, match=f"{missing}.*wsss import-weights resnet38_imagenet"):
        build_backbone("resnet38d", weights=str(missing))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match=r"checkpoints/resnet101-63fe2227\.pth.*download\.pytorch\.org"):
        build_segmenter("deeplab_v2", "resnet101", weights="imagenet")
    with pytest.raises(ValueError, match="MXNet"):
        build_backbone("resnet38d", weights=str(tmp_path / "ilsvrc-cls_rna-a1_cls1000_ep-0001.params"))


def test_torchvision_imagenet_weights_come_from_the_hub_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = torchvision.models.resnet50()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth")
    backbone = build_backbone("resnet50", weights="imagenet", output_stride=16)
    assert backbone.weights_report.unexpected == ["fc.weight", "fc.bias"] and not backbone.weights_report.missing
    torch.testing.assert_close(backbone.layer4[2].conv3.weight, reference.layer4[2].conv3.weight)
    assert backbone.frozen_bn and not backbone.conv1.weight.requires_grad and backbone.layer2[0].conv1.weight.requires_grad


@pytest.mark.parametrize("arch", ["deeplab_v2", "deeplab_v1"])
def test_segmenter_outputs_logits_at_the_output_stride(arch):
    net = build_segmenter(arch, "small", num_classes=21, output_stride=16).eval()
    with torch.no_grad():
        assert net(image(64)).shape == (1, 21, 4, 4)


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vgg16")
    with pytest.raises(ValueError, match="unknown segmentation arch"):
        build_segmenter("pspnet", "small")
    with pytest.raises(ValueError, match="output stride 8 only"):
        build_backbone("resnet38d", output_stride=16)
    with pytest.raises(ValueError, match="frozen_stages"):
        build_backbone("small", frozen_stages=9)


@pytest.mark.parametrize("build", [
    lambda: CAMNet(build_backbone("small")),
    lambda: build_segmenter("deeplab_v1", "small"),
    lambda: CAMNet(build_backbone("resnet50")),
])
def test_bf16_channels_last_forward_matches_fp32(build):
    net = build().eval()
    x = image(64, batch=2)
    with torch.no_grad():
        expected = net(x)
        net = net.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = net(x.contiguous(memory_format=torch.channels_last))
    assert got.dtype == torch.bfloat16
    assert (got.float() - expected).abs().max() <= 0.05 * expected.abs().max() + 1e-3


def test_param_groups_helper_counts_a_wrapper_head_as_new():
    """A method that adds a head around a CAMNet (SC-CAM's sub-category classifier) gets it in the new groups."""
    net = CAMNet(build_backbone("small"))
    wrapper = torch.nn.ModuleDict({"cam": net, "sub": torch.nn.Conv2d(256, 200, 1, bias=False)})
    groups = param_groups(wrapper, net.backbone)
    assert len(groups[2]) == 2 and groups[2][1] is wrapper["sub"].weight


def test_classifier_initialisation_needs_the_classifier(tmp_path):
    from wsss.config import load_config
    from wsss.stages.common import initial_weights

    weights = load_config("params.yaml").train_seg.weights  # smoke: weights: classifier
    assert initial_weights(weights, tmp_path / "model.pt", "train_seg") == str(tmp_path / "model.pt")
    with pytest.raises(ValueError, match="train_seg.weights is 'classifier'.*--classifier"):
        initial_weights(weights, None, "train_seg")


def test_trained_weights_of_another_network_or_a_broken_file_name_the_file(tmp_path):
    from wsss.nets.seam import SEAMNet
    from wsss.stages.common import load_trained

    cam_weights = tmp_path / "cam" / "model.pt"
    cam_weights.parent.mkdir()
    torch.save(CAMNet(build_backbone("tiny")).state_dict(), cam_weights)
    with pytest.raises(ValueError, match=r"cam/model\.pt: these weights are not a SEAMNet"):
        load_trained(SEAMNet(build_backbone("tiny")), cam_weights)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"broken\.pt: not a readable state dict"):
        load_trained(CAMNet(build_backbone("tiny")), broken)
    assert not load_trained(CAMNet(build_backbone("tiny")), cam_weights).training


@pytest.mark.parametrize("build", [
    lambda: CAMNet(build_backbone("small")),                 # BasicBlock pairs and Sequential stem/shortcuts
    lambda: CAMNet(build_backbone("resnet50")),              # torchvision's stem and Bottleneck pairs
    lambda: __import__("wsss.nets.ldf", fromlist=["build_ldf"]).build_ldf("small", width=16),
    lambda: CAMNet(build_backbone("efficientnet_lite0")),    # timm's BN + activation: left as it is
])
def test_folding_batchnorm_into_its_conv_keeps_the_eval_outputs(build):
    from wsss.nets.base import fold_batchnorm

    def batchnorms(net):
        kinds = [type(m) for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        return kinds.count(torch.nn.BatchNorm2d), len(kinds)

    net = randomized(build()).eval()
    x = image(64, batch=2)
    plain, every = batchnorms(net)
    with torch.no_grad():
        expected = net(x)
        got = fold_batchnorm(net)(x)
    assert batchnorms(net) == (0, every - plain)
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()


def test_freezing_is_configuration():
    from wsss.config import load_config
    from wsss.nets.registry import build_network

    cfg = load_config("params.yaml", ["profile=lite", "train_cls.frozen_bn=false", "train_cls.frozen_stages=1"])
    backbone = build_network("cam", cfg).backbone
    assert (backbone.frozen_bn, backbone.frozen_stages) == (False, 1)
    assert load_config("params.yaml", ["profile=paper"]).train_cls.frozen_bn is None   # the psa/SEAM default
    assert load_config("params.yaml", ["profile=lite"]).train_cls.frozen_bn is False
