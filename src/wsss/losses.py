"""The training losses of every network of ``wsss.nets.registry``: ``loss(model, batch[, cfg]) -> dict`` of
scalar tensors with a ``"loss"`` entry (the one back-propagated; every entry is logged), logits in fp32.

* ``classification_loss``: the CAM classifier's multilabel soft-margin loss on the GAP logits
  (jiwoon-ahn/psa@9493e59:train_cls.py:125).
* ``segmentation_loss``: DeepLab's pixel cross-entropy, pseudo-label 255 ignored
  (YudeWang/semantic-segmentation-codebase@a40f6c6:experiment/seamv1-pseudovoc/train.py:85).
* ``ldf_loss``: LDF's six terms (weijun88/LDF@d49ff02:train-fine/train.py:18-23, 57-64): per output level, BCE of
  the body and detail logits against their soft targets and BCE + soft IoU of the saliency logits against the mask;
  summed and halved.
* ``sccam_loss``: SC-CAM's joint loss (Chang et al., CVPR'20, §3; Juliachang/SC-CAM@191ec48:train_cls.py:264-267):
  ``L_parent + λ·L_sub``, both multilabel soft-margin, λ = ``sccam.subcls_weight`` (official 5).
* ``affinity_loss``: AffinityNet's pair loss (Ahn & Kwak, CVPR'18, Eqs. 3-5;
  jiwoon-ahn/psa@9493e59:train_aff.py:99-113):
  ``-log a`` over the background and the foreground pairs, ``-log(1 - a)`` over the negative pairs, each the
  mean over its own pairs, combined as ``bg/4 + fg/4 + neg/2``. The labels (la/ha CRF labels of the crop,
  ``wsss.infer.crf.affinity_label_map``) go to the feature grid by :func:`block_labels` and into pairs by
  :func:`pair_labels`.
* ``seam_loss``: SEAM's siamese loss (Wang et al., CVPR'20, Eqs. 1-7;
  YudeWang/SEAM@3212261:train_SEAM.py:104-146), below.

SEAM: one step sees the image ``I`` and its affine transform ``A(I)`` (a rescale, by default SEAM's 0.3×, and an
optional horizontal flip). With ``F`` the network's CAM and ``F̂`` its PCM output, both max-normalised and
masked by the image label (background always on):

* classification: multilabel soft-margin loss on the GAP of the raw foreground maps of both branches, averaged;
* ER (Eq. 3): ``mean |A(F(I)) − F(A(I))|`` over the foreground channels — on the raw CAMs (``er_source: cam``,
  the official code) or on the PCM outputs (``pcm``, the ablation row "ER on PCM");
* ECR (Eq. 6): ``|max_onehot(A(F(I))) − F̂(A(I))| + |max_onehot(F(A(I))) − A(F̂(I))|``, the CAM targets
  with background ``1 − max`` and the PCM outputs with their own revised background channel, each the mean of its top ``ohem_ratio`` share of (channel, pixel) errors per sample (OHEM,
  official 20 %; 1.0 = the plain mean). ``official_detach`` detaches the CAM targets as the official code
  (YudeWang/SEAM@3212261:train_SEAM.py:135-136); the paper's equation lets the gradient reach both sides;
* min pooling (official, not in the paper; YudeWang/SEAM@3212261:train_SEAM.py:16-24): per branch, the mean ReLU of
  the smallest ``min_pool_ratio`` share of the per-pixel maximum of the masked foreground PCM output.

``total = cls_weight·cls + er_weight·ER + ecr_weight·ECR + min_pool_weight·min_pool``; all weights are 1 in the
official code. With ``loss_resolution: input`` (the official) the maps are first upsampled bilinearly
(``align_corners=True``) to their input's size, as SEAM's network returns them
(YudeWang/SEAM@3212261:network/resnet38_SEAM.py:48-49),
so the pooling, normalisation and min pooling see full-size maps; ``stride`` keeps them at the network's
stride. Either way they are then resized to the transformed image's size, where ER and ECR are compared
(the official code compares at 134×134 for 448).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wsss.config import AffinityConfig, SCCAMConfig, SEAMConfig
from wsss.data.classes import IGNORE_INDEX, NUM_VOC_CLASSES
from wsss.nets.affinity import PairRule, pair_affinities, pair_offsets, related_pairs, shifted
from wsss.nets.seam import max_norm, max_onehot, with_background


def classification_loss(model, batch) -> dict[str, torch.Tensor]:
    """Multilabel soft-margin loss on the GAP logits of a batch ``(images, labels N×20)``
    (jiwoon-ahn/psa@9493e59:train_cls.py:125)."""
    images, labels = batch
    return {"loss": F.multilabel_soft_margin_loss(model(images).float(), labels)}


def sccam_loss(model, batch, cfg: SCCAMConfig) -> dict[str, torch.Tensor]:
    """The joint loss of a batch ``(images, labels N×(20 + 20K))``: the parent labels, then the sub-category
    labels (``wsss.data.subcategories.with_subcategories``), for an ``SCCAMNet``."""
    images, labels = batch
    parent_logits, sub_logits = (logits.float() for logits in model(images))
    parent = F.multilabel_soft_margin_loss(parent_logits, labels[:, :parent_logits.shape[1]])
    subcategory = F.multilabel_soft_margin_loss(sub_logits, labels[:, parent_logits.shape[1]:])
    return {"loss": parent + cfg.subcls_weight * subcategory, "parent": parent, "subcategory": subcategory}


def segmentation_loss(model, batch) -> dict[str, torch.Tensor]:
    """Cross-entropy over pixels, pseudo-label 255 ignored, on logits upsampled to the label size."""
    images, masks = batch
    logits = F.interpolate(model(images), masks.shape[-2:], mode="bilinear", align_corners=False)
    return {"loss": F.cross_entropy(logits.float(), masks.long(), ignore_index=IGNORE_INDEX)}


def block_labels(labels: torch.Tensor, size: tuple[int, int], num_classes: int = NUM_VOC_CLASSES) -> torch.Tensor:
    """N×h×w labels of N×H×W labels (0..num_classes-1 and 255) on a coarser grid: each cell takes the label that
    covers most of it, 255 counting as one (psa average-pools the la/ha scores 8×8 before the argmax)."""
    values = torch.where(labels == IGNORE_INDEX, num_classes, labels.long())
    shares = F.adaptive_avg_pool2d(F.one_hot(values, num_classes + 1).permute(0, 3, 1, 2).float(), size)
    cells = shares.argmax(1)
    return torch.where(cells == num_classes, IGNORE_INDEX, cells)


def pair_labels(labels: torch.Tensor, radius: int, pairs: PairRule = "inside") -> dict[str, torch.Tensor]:
    """Boolean N×D×h×w pair labels of N×h×w labels (0 background, 1..20, 255 uncertain; psa
    ``ExtractAffinityLabelInRadius``): ``bg`` both background, ``fg`` the same foreground class, ``neg`` two
    different certain labels. Pairs with an uncertain end or that ``pairs`` does not relate are in none."""
    sources = labels[:, None].float()
    partners = torch.cat([shifted(sources, dy, dx, fill=IGNORE_INDEX) for dy, dx in pair_offsets(radius)], 1)
    certain = (sources != IGNORE_INDEX) & (partners != IGNORE_INDEX)
    if pairs == "psa":
        certain &= related_pairs(*labels.shape[-2:], radius, pairs).to(labels.device)
    same = certain & (sources == partners)
    return {"bg": same & (sources == 0), "fg": same & (sources > 0), "neg": certain & (sources != partners)}


def affinity_loss(model, batch, cfg: AffinityConfig) -> dict[str, torch.Tensor]:
    """``bg/4 + fg/4 + neg/2`` of a batch ``(images, labels N×H×W)`` for an ``AffinityNet``; the counts are logged."""
    images, labels = batch
    features = model(images)
    affinity = pair_affinities(features, cfg.radius, cfg.pairs)
    pairs = pair_labels(block_labels(labels, features.shape[-2:]), cfg.radius, cfg.pairs)
    positive, negative = -torch.log(affinity + 1e-5), -torch.log(1 + 1e-5 - affinity)
    losses = {}
    for name, fit in (("bg", positive), ("fg", positive), ("neg", negative)):
        count = pairs[name].sum()
        losses[f"{name}_loss"] = (fit * pairs[name]).sum() / (count + 1e-5)
        losses[f"{name}_pairs"] = count.float().detach() / len(images)
    losses["loss"] = losses["bg_loss"] / 4 + losses["fg_loss"] / 4 + losses["neg_loss"] / 2
    return losses


def iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − (Σpm + 1)/(Σ(p + m) − Σpm + 1) per image, averaged: the soft IoU of
    weijun88/LDF@d49ff02:train-fine/train.py:18-23."""
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum((1, 2, 3))
    union = (prob + target).sum((1, 2, 3))
    return (1 - (inter + 1) / (union - inter + 1)).mean()


def ldf_loss(model, batch: dict) -> dict[str, torch.Tensor]:
    """The six-term LDF loss of a batch (``image``, ``mask``, ``body``, ``detail``)."""
    outputs = [out.float() for out in model(batch["image"])]
    mask, body, detail = batch["mask"], batch["body"], batch["detail"]
    terms = {}
    for k, (out_body, out_detail, out_saliency) in enumerate((outputs[:3], outputs[3:]), start=1):
        terms[f"body{k}"] = F.binary_cross_entropy_with_logits(out_body, body)
        terms[f"detail{k}"] = F.binary_cross_entropy_with_logits(out_detail, detail)
        terms[f"saliency{k}"] = F.binary_cross_entropy_with_logits(out_saliency, mask) + iou_loss(out_saliency, mask)
    return {"loss": sum(terms.values()) / 2, **terms}


def affine(x: torch.Tensor, size: tuple[int, int], flip: bool) -> torch.Tensor:
    """SEAM's transform ``A``: bilinear resize to ``size`` (``align_corners=True``), then an optional h-flip."""
    x = F.interpolate(x, size, mode="bilinear", align_corners=True)
    return x.flip(-1) if flip else x


def transformed_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """``A``'s output size for an input of ``size`` (``F.interpolate(scale_factor=...)`` rounds down)."""
    return max(1, int(size[0] * scale)), max(1, int(size[1] * scale))


def er_loss(transformed_cam: torch.Tensor, cam_of_transformed: torch.Tensor) -> torch.Tensor:
    """Equivariant regularisation (Eq. 3): the mean L1 distance of the foreground channels (1:), absent classes included."""
    return (transformed_cam[:, 1:] - cam_of_transformed[:, 1:]).abs().mean()


def ohem_mean(errors: torch.Tensor, ratio: float) -> torch.Tensor:
    """Mean of each sample's largest ``int(ratio · C·H·W)`` errors, averaged over samples
    (YudeWang/SEAM@3212261:train_SEAM.py:137-138)."""
    flat = errors.flatten(1)
    k = max(1, int(flat.shape[1] * ratio))
    return flat.topk(k, dim=1).values.mean() if k < flat.shape[1] else flat.mean()


def min_pool_loss(revised: torch.Tensor, ratio: float) -> torch.Tensor:
    """Mean ReLU of the smallest ``ratio`` share of pixels of ``max_c revised[:, 1:]`` (``adaptive_min_pooling_loss``)."""
    strongest = revised[:, 1:].amax(dim=1).flatten(1)
    k = max(1, int(strongest.shape[1] * ratio))
    return F.relu(-(-strongest).topk(k, dim=1).values).mean()


def seam_loss(model, batch, cfg: SEAMConfig) -> dict[str, torch.Tensor]:
    """The SEAM losses of one batch ``(images N×3×H×W, labels N×20)`` for a ``SEAMNet`` (or its DDP wrapper)."""
    images, labels = batch
    size = transformed_size(images.shape[2:], cfg.rescale)
    mask = torch.cat([torch.ones_like(labels[:, :1]), labels], dim=1)[:, :, None, None]
    cam1, pcm1 = (x.float() for x in model(images, labels))
    cam2, pcm2 = (x.float() for x in model(affine(images, size, cfg.flip), labels))
    if cfg.loss_resolution == "input":
        cam1, pcm1 = (affine(x, images.shape[2:], False) for x in (cam1, pcm1))
        cam2, pcm2 = (affine(x, size, False) for x in (cam2, pcm2))

    cls = (F.multilabel_soft_margin_loss(cam1.mean((2, 3))[:, 1:], labels)
           + F.multilabel_soft_margin_loss(cam2.mean((2, 3))[:, 1:], labels)) / 2
    losses = {"cls": cls}
    if cfg.min_pool_loss:
        losses["min_pool"] = (min_pool_loss(pcm1 * mask, cfg.min_pool_ratio)
                              + min_pool_loss(pcm2 * mask, cfg.min_pool_ratio)) / 2
    cam1, pcm1 = (affine(max_norm(x), size, cfg.flip) * mask for x in (cam1, pcm1))
    cam2, pcm2 = (affine(max_norm(x), size, False) * mask for x in (cam2, pcm2))
    losses["er"] = er_loss(cam1, cam2) if cfg.er_source == "cam" else er_loss(pcm1, pcm2)

    target1, target2 = with_background(cam1), with_background(cam2)
    if cfg.official_detach:
        target1, target2 = target1.detach(), target2.detach()
    losses["ecr"] = (ohem_mean((max_onehot(target2) - pcm1).abs(), cfg.ohem_ratio)
                     + ohem_mean((max_onehot(target1) - pcm2).abs(), cfg.ohem_ratio))
    weights = {"cls": cfg.cls_weight, "er": cfg.er_weight, "ecr": cfg.ecr_weight, "min_pool": cfg.min_pool_weight}
    losses["loss"] = sum(weights[name] * value for name, value in losses.items())
    return losses
