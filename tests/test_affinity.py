"""AffinityNet and the random walk: pair labels, the network, its loss, the walk, the stages in the DAG."""

import numpy as np
import pytest
import torch

from wsss.config import AffinityConfig, CRFConfig, load_config
from wsss.infer.crf import affinity_label_map
from wsss.infer.random_walk import random_walk, random_walk_label, transition_matrix, walk_dense, walk_sparse
from wsss.losses import affinity_loss, block_labels, pair_labels
from wsss.nets.affinity import AffinityNet, pair_affinities, pair_offsets, related_pairs
from wsss.nets.backbones import build_backbone

from conftest import run

CRF = CRFConfig(alpha_low=4, alpha_high=24, iterations=10, gaussian_sxy=3, gaussian_compat=3,
                bilateral_sxy=80, bilateral_srgb=13, bilateral_compat=10)
WALK = load_config("params.yaml").affinity


def walk_settings(**changes) -> AffinityConfig:
    return AffinityConfig(**{**WALK.model_dump(), **changes})


def test_radius_5_pairs_each_position_with_34_offsets_after_it_in_raster_order():
    offsets = pair_offsets(5)
    assert len(offsets) == 34 and len(set(offsets)) == 34
    assert offsets[:4] == [(0, 1), (0, 2), (0, 3), (0, 4)]
    assert all(0 < dy * dy + dx * dx < 25 and (dy > 0 or dx > 0) for dy, dx in offsets)
    disc = {(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5) if 0 < dy * dy + dx * dx < 25}
    assert disc == set(offsets) | {(-dy, -dx) for dy, dx in offsets}   # both directions: the whole disc


def brute_force_pairs(labels: np.ndarray, radius: int, psa: bool = False) -> dict[str, set]:
    """Every pair (p, q), q after p in raster order and closer than radius, by its labels; with ``psa`` only
    the pairs whose p has all its partners inside the map."""
    height, width = labels.shape
    pairs = {"bg": set(), "fg": set(), "neg": set()}
    positions = [(y, x) for y in range(height) for x in range(width)]

    def partners(p):   # inside the map or not
        steps = range(-radius + 1, radius)
        return [(p[0] + dy, p[1] + dx) for dy in steps for dx in steps
                if (dy > 0 or (dy == 0 and dx > 0)) and dy * dy + dx * dx < radius ** 2]

    for p in positions:
        if psa and not all(0 <= y < height and 0 <= x < width for y, x in partners(p)):
            continue
        for q in positions:
            after = q[0] > p[0] or (q[0] == p[0] and q[1] > p[1])
            close = (q[0] - p[0]) ** 2 + (q[1] - p[1]) ** 2 < radius ** 2
            a, b = labels[p], labels[q]
            if not (after and close) or 255 in (a, b):
                continue
            pairs["neg" if a != b else "bg" if a == 0 else "fg"].add((p, q))
    return pairs


@pytest.mark.parametrize("rule", ["inside", "psa"])
def test_pair_labels_of_a_two_region_map_are_exactly_the_pairs_within_the_radius(rule):
    labels = np.zeros((9, 11), np.uint8)
    labels[:, 6:] = 3          # background left, class 3 right
    labels[4, 5] = 255         # an uncertain cell is in no pair
    found = pair_labels(torch.from_numpy(labels)[None], radius=5, pairs=rule)
    offsets = pair_offsets(5)
    as_sets = {name: {((y, x), (y + offsets[k][0], x + offsets[k][1]))
                      for k, y, x in zip(*np.nonzero(mask[0].numpy()))} for name, mask in found.items()}
    expected = brute_force_pairs(labels, 5, psa=rule == "psa")
    assert as_sets == expected
    assert all(expected.values())   # the map has pairs of every kind
    if rule == "psa":   # psa's sources: rows 0..h-5, columns 4..w-5 (jiwoon-ahn/psa@9493e59:tool/pyutils.py:125-160)
        assert {p for pairs in expected.values() for p, _ in pairs} <= {(y, x) for y in range(5) for x in range(4, 7)}


def test_psa_pairs_zero_the_affinities_of_border_sources_and_keep_the_others():
    torch.manual_seed(0)
    features = torch.randn(1, 8, 9, 11)
    inside, psa = (pair_affinities(features, radius=5, pairs=rule) for rule in ("inside", "psa"))
    kept = related_pairs(9, 11, 5, "psa")
    assert kept.sum() == 34 * 5 * 3 and torch.equal(psa[0][kept], inside[0][kept])
    assert psa[0][~kept].eq(0).all() and inside[0][~kept].gt(0).any()


def test_block_labels_take_the_label_covering_most_of_each_cell():
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    labels[:, :, 8:] = 7
    labels[:, :6, :8] = 255    # 6 of the 8 rows of the top-left cell: uncertain
    labels[:, 8:11, 8:] = 2    # 3 of 8 rows of the bottom-right cell: the minority
    assert block_labels(labels, (2, 2)).tolist() == [[[255, 7], [0, 7]]]


def test_affinity_labels_keep_the_low_alpha_foreground_and_the_high_alpha_background():
    size = 48
    yy, xx = np.mgrid[0:size, 0:size]
    distance = np.hypot(yy - size / 2, xx - size / 2)
    image = np.where((distance < 12)[..., None], [220, 200, 40], [30, 60, 200]).astype(np.uint8)
    cams = np.clip(1 - distance / 24, 0, 1)[None].astype(np.float32)   # a cone: fades into the background
    labels = affinity_label_map(image, [5], cams, CRF)
    assert set(np.unique(labels)) == {0, 5, 255}
    assert labels[size // 2, size // 2] == 5 and labels[0, 0] == 0
    uncertain = labels == 255
    assert ((distance[uncertain] > distance[labels == 5].max() - 1) & (distance[uncertain] < distance[labels == 0].min() + 1)).all()


@pytest.mark.parametrize("name, output_stride", [("tiny", 8), ("efficientnet_lite0", 16), ("resnet38d", 8)])
def test_affinitynet_gives_stride_8_features_and_affinities_in_0_1_on_every_backbone(name, output_stride):
    torch.manual_seed(0)
    model = AffinityNet(build_backbone(name, output_stride=output_stride)).eval()
    with torch.no_grad():
        features = model(torch.randn(1, 3, 64, 48))
    assert model.stride == 8 and features.shape == (1, 448, 8, 6)
    affinity = pair_affinities(features, radius=5)
    assert affinity.shape == (1, 34, 8, 6)
    assert (affinity >= 0).all() and (affinity <= 1).all()
    assert affinity[0, 0, :, -1].eq(0).all()   # (0, 1): the last column has no partner


def test_pair_affinities_are_exp_of_minus_the_mean_l1_distance_of_each_pair():
    features = torch.randn(2, 3, 6, 7)
    affinity = pair_affinities(features, radius=3)
    for k, (dy, dx) in enumerate(pair_offsets(3)):
        for y in range(6):
            for x in range(7):
                inside = y + dy < 6 and 0 <= x + dx < 7
                expected = torch.exp(-(features[:, :, y, x] - features[:, :, y + dy, x + dx]).abs().mean(1)) \
                    if inside else torch.zeros(2)
                assert torch.allclose(affinity[:, k, y, x], expected), (k, y, x)


def test_the_affinity_loss_counts_the_pairs_and_reaches_the_new_layers():
    torch.manual_seed(0)
    model = AffinityNet(build_backbone("tiny"))
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    labels[:, :, 16:] = 4
    losses = affinity_loss(model, (torch.randn(2, 3, 32, 32), labels), WALK)
    grid_pairs = brute_force_pairs(np.where(np.arange(4) < 2, 0, 4)[None].repeat(4, 0), 5)
    assert [float(losses[f"{name}_pairs"]) for name in ("bg", "fg", "neg")] == [len(grid_pairs[n]) for n in ("bg", "fg", "neg")]
    expected = losses["bg_loss"] / 4 + losses["fg_loss"] / 4 + losses["neg_loss"] / 2
    assert torch.isclose(losses["loss"], expected)
    losses["loss"].backward()
    assert model.head.weight.grad.abs().sum() > 0 and model.projections["low"].weight.grad.abs().sum() > 0


def two_region_affinity(height: int, width: int, split: int) -> torch.Tensor:
    """Affinity 1 between positions of the same side of column ``split``, 0 across (and for partners outside)."""
    region = torch.zeros(height, width)
    region[:, split:] = 1
    maps = []
    for dy, dx in pair_offsets(5):
        ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        inside = (ys + dy < height) & (xs + dx >= 0) & (xs + dx < width)
        partner = region[(ys + dy).clamp(max=height - 1), (xs + dx).clamp(0, width - 1)]
        maps.append((inside & (partner == region)).float())
    return torch.stack(maps)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_a_walk_spreads_each_region_score_over_exactly_that_region(kind):
    height, width, split = 9, 14, 6
    scores = torch.zeros(2, height, width)
    scores[0, 4, 1] = 1      # one seed per region
    scores[1, 2, 12] = 1
    walked = random_walk(scores, two_region_affinity(height, width, split), walk_settings(logt=8), kind)
    assert (walked[0, :, :split] > 0).all() and (walked[0, :, split:] == 0).all()
    assert (walked[1, :, split:] > 0).all() and (walked[1, :, :split] == 0).all()
    left = walked[0, :, :split]
    assert torch.allclose(left, left.mean().expand_as(left), rtol=1e-3)   # t = 256: mixed over the region


def test_transition_columns_sum_to_1_and_a_constant_score_stays_constant():
    torch.manual_seed(0)
    affinity = torch.rand(34, 7, 9)
    transition = transition_matrix(affinity, 5, beta=8).to_dense()
    assert torch.allclose(transition.sum(0), torch.ones(63), atol=1e-6)
    assert torch.allclose(torch.ones(1, 63) @ transition, torch.ones(1, 63), atol=1e-5)


def test_dense_and_sparse_walks_agree():
    torch.manual_seed(0)
    affinity = torch.rand(34, 12, 15) ** 0.1   # mostly strong affinities: the walk mixes far
    transition = transition_matrix(affinity, 5, beta=8)
    scores = torch.rand(3, 12 * 15)
    for logt in (0, 3, 8):
        assert torch.allclose(walk_dense(transition, scores, logt), walk_sparse(transition, scores, logt), atol=1e-5)


@pytest.mark.parametrize("crf", [None, CRF])
def test_random_walk_labels_of_an_image_whose_side_is_no_multiple_of_8(crf):
    from wsss.runtime import pick_runtime

    torch.manual_seed(0)
    model = AffinityNet(build_backbone("tiny")).eval()
    image = np.random.default_rng(0).integers(0, 256, (37, 90, 3), dtype=np.uint8)
    cams = np.zeros((2, 37, 90), np.float32)
    cams[0, :, :45], cams[1, :, 45:] = 0.9, 0.8   # no background: each half keeps its class
    walk = walk_settings(logt=0)   # one step: the untrained network's affinities would mix the halves in 256
    labels = random_walk_label(model, image, [3, 11], cams, walk, pick_runtime("cpu", "fp32"), crf)
    assert labels.shape == (37, 90) and labels.dtype == np.uint8
    assert set(np.unique(labels)) == {3, 11} and labels[:, 0].max() == 3 and labels[:, -1].min() == 11
    assert random_walk_label(model, image, [], cams[:0], WALK, pick_runtime("cpu", "fp32")).max() == 0


def test_pseudo_must_name_a_way_to_make_labels():
    from wsss.errors import ConfigError

    with pytest.raises(ConfigError, match="pseudo: must be one of crf, rw, rw_crf, got 'walk'"):
        load_config("params.yaml", ["pseudo=walk"])


def test_a_dry_run_with_pseudo_rw_plans_the_affinity_chain(project):
    from test_dag import planned_rules

    target = ["results/voc_miou.json", "--config", "pseudo=rw"]
    assert planned_rules(project, *target) >= {"aff_labels", "train_aff", "infer_rw", "eval_pseudo", "train_seg"}
    assert "crf" not in planned_rules(project, *target)
    out = run(["snakemake", "-n", "--cores", "1", *target, "--printshellcmds"], project)
    assert "wsss --processes 1 train-aff --voc data/prepared/voc --labels data/aff_labels/cam/train_aug" in out
    assert "wsss infer-rw --voc data/prepared/voc --model models/cam/affinity/model.pt" in out
    assert "--labels data/rw/cam/train_aug" in out and "results/synthetic-voc/cam/rw_miou.json" in out
    with_crf = run(["snakemake", "-n", "--cores", "1", "results/voc_miou.json", "--config", "pseudo=rw_crf",
                    "--printshellcmds"], project)
    assert "--out data/rw_crf/cam/train_aug" in with_crf and " --crf" in with_crf


def test_the_affinity_settings_are_psa_s_with_seam_s_walk_for_the_seam_method():
    paper = load_config("params.yaml", ["profile=paper"]).affinity
    assert (paper.backbone, paper.crop, paper.batch, paper.epochs, paper.lr) == ("resnet38d", 448, 8, 8, 0.1)
    assert (paper.radius, paper.beta, paper.logt, paper.alpha) == (5, 8, 8, 16)
    seam = load_config("params.yaml", ["profile=paper", "method=seam"]).affinity
    assert (seam.logt, seam.alpha, seam.lr) == (6, 6, 0.01)
    assert load_config("params.yaml").affinity.backbone == "tiny"
    assert load_config("params.yaml", ["profile=lite"]).affinity.backbone == "efficientnet_lite0"
