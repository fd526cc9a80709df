"""SEAM: the pixel correlation module, the losses (ER, ECR with OHEM, min pooling), the detach switch,
training in the shared engine, and the equivariance metric."""


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wsss.config import SEAMConfig
from wsss.engine import TrainSettings, train
from wsss.infer.cam import equivariance_error
from wsss.losses import affine, er_loss, min_pool_loss, ohem_mean, seam_loss, transformed_size
from wsss.nets.backbones import build_backbone
from wsss.nets.seam import SEAMNet, max_norm, max_onehot, pcm_input, pixel_correlation
from wsss.runtime import Runtime, pick_runtime

OFFICIAL = SEAMConfig(rescale=0.5, flip=False, cls_weight=1.0, er_weight=1.0, er_source="cam", ecr_weight=1.0,
                      ohem_ratio=0.2, official_detach=True, pcm_classes="all", min_pool_loss=True, min_pool_weight=1.0,
                      min_pool_ratio=0.25)
FP32 = Runtime(torch.device("cpu"), "fp32")


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def seam_net(official_detach=True, cam_source="pcm", pcm_classes="all"):
    net = SEAMNet(build_backbone("small"), official_detach=official_detach, cam_source=cam_source,
                  pcm_classes=pcm_classes)
    with torch.no_grad():  # the small backbone starts its residual branches at zero: wake every weight up
        for m in net.backbone.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
    return net


def batch(n=2, size=32):
    labels = torch.zeros(n, 20)
    labels[:, 3] = 1
    labels[0, 7] = 1
    return torch.randn(n, 3, size, size), labels


# -- ER --------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale, flip", [(0.5, False), (0.3, True), (1.0, True), (1.5, False)])
def test_er_is_zero_for_an_equivariant_map_and_grows_with_a_perturbation(scale, flip):
    """A 1×1 conv commutes with resizing and flipping, so A(F(I)) = F(A(I)) up to rounding."""
    conv = nn.Conv2d(3, 21, 1)
    image = torch.randn(2, 3, 24, 32)
    size = transformed_size(image.shape[2:], scale)
    with torch.no_grad():
        transformed_cam, cam_of_transformed = affine(conv(image), size, flip), conv(affine(image, size, flip))
    assert er_loss(transformed_cam, cam_of_transformed) < 1e-6
    noise = torch.randn_like(cam_of_transformed)
    errors = [float(er_loss(transformed_cam, cam_of_transformed + eps * noise)) for eps in (0.01, 0.1, 1.0)]
    assert 0 < errors[0] < errors[1] < errors[2]
    assert errors[2] == pytest.approx(float(noise[:, 1:].abs().mean()), rel=1e-4)


def test_er_charges_a_misregistration_more_the_wider_the_activation():
    """Why ER shrinks CAMs trained from scratch (docs/experiments/seam.md): the L1 between max-normalised maps
    that are one cell apart grows with the activated extent, so a branch pair that cannot align exactly
    lowers ER by activating less."""
    yy, xx = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    errors = []
    for width in (1.0, 2.0, 3.0):
        maps = torch.zeros(2, 21, 12, 12)
        maps[0, 5] = torch.exp(-((xx - 5) ** 2 + (yy - 6) ** 2) / (2 * width ** 2))
        maps[1, 5] = torch.exp(-((xx - 6) ** 2 + (yy - 6) ** 2) / (2 * width ** 2))
        errors.append(float(er_loss(max_norm(maps[:1]), max_norm(maps[1:]))))
    assert 0 < errors[0] < errors[1] < errors[2]


def test_er_ignores_the_background_channel():
    maps = torch.rand(1, 21, 4, 4)
    changed = maps.clone()
    changed[:, 0] += 5
    assert er_loss(maps, changed) == 0


# -- PCM -------------------------------------------------------------------------------------

def test_pcm_spreads_a_one_hot_cam_uniformly_over_the_pixels_of_identical_features():
    """Two regions with orthogonal features: a single activated pixel in region 1 becomes 1/|region 1| on every
    pixel of region 1 and 0 on region 2 (each affinity column sums to 1 over its sources)."""
    h, w = 6, 8
    region = torch.zeros(h, w, dtype=torch.bool)
    region[:, :3] = True
    features = torch.zeros(1, 4, h, w)
    features[0, 0][region] = 2.0
    features[0, 1][~region] = 0.5
    cams = torch.zeros(1, 2, h, w)
    cams[0, 1, 2, 1] = 1.0   # class 1: one pixel inside the region
    cams[0, 0, 4, 6] = 1.0   # class 0: one pixel outside it
    revised = pixel_correlation(cams, features)
    inside, outside = revised[0, 1][region], revised[0, 1][~region]
    assert torch.allclose(inside, torch.full_like(inside, 1 / region.sum()), atol=1e-5)
    assert outside.abs().max() < 1e-6
    assert torch.allclose(revised[0, 0][~region], torch.full_like(outside, 1 / (~region).sum()), atol=1e-5)


def test_pcm_is_batched_per_sample():
    cams, features = torch.rand(3, 21, 5, 5), torch.randn(3, 8, 5, 5)
    together = pixel_correlation(cams, features)
    alone = torch.cat([pixel_correlation(cams[k:k + 1], features[k:k + 1]) for k in range(3)])
    assert torch.allclose(together, alone, atol=1e-6)


def test_pcm_input_is_max_normalised_background_completed_and_keeps_the_strongest_class():
    cams = torch.rand(2, 21, 5, 5) * 3 - 0.5
    target = pcm_input(cams)
    foreground = target[:, 1:]
    assert foreground.max() <= 1 and foreground.min() >= 0
    assert ((foreground > 0).sum(1) <= 1).all()  # one foreground class at most per pixel
    normalised = F.relu(cams[:, 1:]) / F.relu(cams[:, 1:]).amax((2, 3), keepdim=True)
    assert torch.allclose(target[:, 0], 1 - normalised.amax(1), atol=1e-4)
    assert torch.equal(max_onehot(target), target)


def test_seam_net_outputs_and_inference_maps():
    net = seam_net().eval()
    image = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        cam, revised = net(image)
        assert cam.shape == revised.shape == (2, 21, 6, 5)
        assert torch.allclose(net.cam(image), revised[:, 1:])
        net.cam_source = "cam"
        assert torch.allclose(net.cam(image), F.relu(cam[:, 1:]))
        classes = torch.tensor([4, 11])
        assert torch.allclose(net.cam(image, classes), F.relu(cam[:, 1:]).index_select(1, classes))


def test_present_class_pcm_input_ignores_absent_classes_and_all_classes_does_not():
    """An absent class whose map is constant is max-normalised to 1 everywhere. With ``pcm_classes="all"``
    (official) it is every pixel's strongest class and zeroes the present class in the PCM's input; with
    ``"present"`` the present class's PCM output is the same as without it."""
    image, labels = batch()
    labels[:, 7] = 0  # class 3 alone is present; class 12 is absent

    class ConstantAbsentClass(nn.Module):
        def __init__(self, classifier: nn.Module, value: float):
            super().__init__()
            self.classifier, self.value = classifier, value

        def forward(self, features):
            maps = self.classifier(features).clone()
            maps[:, 1 + 12] = self.value
            return maps

    revised = {}
    for mode in ("present", "all"):
        torch.manual_seed(0)
        net = seam_net(pcm_classes=mode).eval()
        classifier = net.classifier
        with torch.no_grad():
            for value in (0.0, 1.0):
                net.classifier = ConstantAbsentClass(classifier, value)
                revised[mode, value] = net(image, labels)[1][:, 1 + 3]
            assert torch.allclose(net.cam(image, torch.tensor([3])), revised[mode, 1.0][:, None], atol=1e-6)
    assert torch.allclose(revised["present", 0.0], revised["present", 1.0], atol=1e-6)
    assert revised["all", 1.0].abs().max() < 0.5 * revised["all", 0.0].abs().max()
    with pytest.raises(ValueError, match="needs the image labels"):
        seam_net(pcm_classes="present")(image)


# -- OHEM and min pooling --------------------------------------------------------------------

def test_ohem_keeps_exactly_the_top_20_percent_of_each_samples_errors():
    errors = torch.rand(3, 21, 7, 9, requires_grad=True)
    loss = ohem_mean(errors, 0.2)
    k = int(21 * 7 * 9 * 0.2)
    top = errors.detach().flatten(1).sort(dim=1, descending=True).values[:, :k]
    assert loss.item() == pytest.approx(top.mean().item(), rel=1e-6)
    loss.backward()
    kept = errors.grad.flatten(1) != 0
    assert (kept.sum(1) == k).all()
    threshold = top[:, -1:]
    assert (errors.detach().flatten(1)[kept.logical_not()].view(3, -1) <= threshold).all()
    assert ohem_mean(errors.detach(), 1.0).item() == pytest.approx(errors.detach().mean().item())


def test_min_pool_loss_averages_the_weakest_quarter_of_pixels():
    revised = torch.zeros(1, 21, 4, 4)
    revised[0, 5] = torch.arange(16.0).view(4, 4)
    assert min_pool_loss(revised, 0.25).item() == pytest.approx(np.mean([0, 1, 2, 3]))


# -- the loss and the detach switch ----------------------------------------------------------

class UpsampledOutputs(nn.Module):
    """The official network's contract (YudeWang/SEAM@3212261:network/resnet38_SEAM.py:48-49): CAM and PCM output at
    the input's size."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, images, labels):
        return tuple(F.interpolate(x, images.shape[2:], mode="bilinear", align_corners=True)
                     for x in self.net(images, labels))


def test_the_losses_at_input_resolution_are_those_of_maps_upsampled_to_the_input():
    net, images = seam_net().eval(), batch(size=48)
    official = seam_loss(net, images, OFFICIAL)
    upsampled = seam_loss(UpsampledOutputs(net), images, OFFICIAL.model_copy(update=dict(loss_resolution="stride")))
    for name in official:
        assert torch.allclose(official[name], upsampled[name], atol=1e-6), name
    shortcut = seam_loss(net, images, OFFICIAL.model_copy(update=dict(loss_resolution="stride")))
    assert not torch.allclose(official["er"], shortcut["er"], rtol=1e-3)


def grads_after(net, cfg):
    net.zero_grad()
    losses = seam_loss(net, batch(), cfg)
    losses["loss"].backward()
    return losses, {name for name, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@pytest.mark.parametrize("pcm_classes", ["all", "present"])
def test_loss_total_is_the_weighted_sum_of_its_parts(pcm_classes):
    net = seam_net(pcm_classes=pcm_classes).train()
    cfg = OFFICIAL.model_copy(update=dict(er_weight=2.0, min_pool_weight=0.5))
    torch.manual_seed(1)
    losses = seam_loss(net, batch(), cfg)
    assert set(losses) == {"loss", "cls", "er", "ecr", "min_pool"}
    expected = losses["cls"] + 2 * losses["er"] + losses["ecr"] + 0.5 * losses["min_pool"]
    assert losses["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("official", [True, False])
def test_ecr_gradients_reach_exactly_the_parameters_the_detach_switch_says(official):
    net = seam_net(official_detach=official).train()
    ecr_only = OFFICIAL.model_copy(update=dict(cls_weight=0.0, er_weight=0.0, min_pool_loss=False,
                                               official_detach=official))
    _, reached = grads_after(net, ecr_only)
    pcm = {"proj_low.weight", "proj_mid.weight", "proj.weight"}
    assert {name for name, p in net.named_parameters() if any(p is q for q in net.pcm_parameters())} == pcm
    assert pcm <= reached
    if official:  # detached PCM input, features and targets: ECR trains the three projections only
        assert reached == pcm
    else:         # as the paper reads: also the classifier and the backbone
        assert "classifier.weight" in reached
        assert any(name.startswith("backbone.layer1") for name in reached)


def test_classification_and_er_never_train_the_pcm():
    net = seam_net().train()
    _, reached = grads_after(net, OFFICIAL.model_copy(update=dict(ecr_weight=0.0, min_pool_loss=False)))
    assert not any(name.startswith("proj") for name in reached)
    assert "classifier.weight" in reached and any(name.startswith("backbone.stem") for name in reached)


def test_er_on_pcm_outputs_trains_the_pcm():
    net = seam_net().train()
    cfg = OFFICIAL.model_copy(update=dict(cls_weight=0.0, ecr_weight=0.0, min_pool_loss=False, er_source="pcm"))
    _, reached = grads_after(net, cfg)
    assert reached == {"proj_low.weight", "proj_mid.weight", "proj.weight"}


class Pairs(torch.utils.data.Dataset):
    def __init__(self):
        self.images, self.labels = batch(8, 32)

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return self.images[index], self.labels[index]


def test_seam_trains_in_the_shared_engine(tmp_path):
    net = seam_net()
    settings = TrainSettings(batch=4, lr=0.01, epochs=1, progress=False)
    path = train(net, lambda model, b: seam_loss(model, b, OFFICIAL), Pairs(), settings, pick_runtime("cpu", "fp32"),
                 tmp_path, config=OFFICIAL.model_dump())
    state = torch.load(path, weights_only=True)
    assert {"proj.weight", "classifier.weight"} <= set(state)


# -- the equivariance metric -----------------------------------------------------------------

class PixelModel(nn.Module):
    """CAMs from the pixels alone (nearly equivariant), or a fixed grid pattern (not equivariant at all)."""

    def __init__(self, grid: bool):
        super().__init__()
        self.grid = grid

    def cam(self, x, classes):
        n, _, h, w = x.shape
        if self.grid:
            pattern = ((torch.arange(h)[:, None] // 4 + torch.arange(w)[None] // 4) % 2).float()
            return pattern.expand(n, len(classes), h, w) + 0.01
        return F.relu(x.mean(1, keepdim=True)).expand(n, len(classes), h, w) + 0.01


def test_equivariance_error_separates_an_equivariant_map_from_a_fixed_pattern():
    rng = np.random.default_rng(0)
    image = np.kron(rng.integers(0, 256, (6, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    keys = [2, 9]
    smooth = equivariance_error(PixelModel(False).eval(), image, keys, 0.5, "max", FP32)
    grid = equivariance_error(PixelModel(True).eval(), image, keys, 0.5, "max", FP32)
    assert smooth < 0.05 < grid
    assert equivariance_error(PixelModel(True).eval(), image, [], 0.5, "max", FP32) == 0.0
