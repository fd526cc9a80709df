"""Typed configuration: ``params.yaml`` → validated, frozen pydantic models.

``params.yaml`` is the one configuration of Snakemake (``configfile:``, validated against
``workflow/schemas/config.schema.json``, the JSON Schema of these models that ``wsss config --schema`` writes), DVC
(``params:``) and the CLI. Its top-level sections hold the published settings of the papers and their official code
(each class below cites its source); ``profiles.<name>`` holds overrides, and the key ``profile`` picks one of those
names (``smoke`` shrinks the pipeline to the synthetic CPU benchmark, ``lite`` runs ImageNet-pretrained
EfficientNet-Lite0 on a CPU). ``--set a.b=value`` overrides come last. Every error names its dotted key
(``train_cls.lr must be > 0, got -1``).
"""

from __future__ import annotations

import copy
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError, model_serializer,
                      model_validator)

from wsss.errors import ConfigError
from wsss.nets.registry import CAM_NETWORKS, NETWORKS

SYNTHETIC_VOC_ROOT = "data/synth/voc"   # where the synth_voc rule writes the synthetic VOC (voc.source: synthetic)
MAX_IMAGES = 1_000_000        # synthetic set sizes: beyond VOC + SBD and DUTS many times over
MAX_IMAGE_SIZE = 4096         # synthetic image side, pixels
MAX_SWEEP_THRESHOLDS = 1000   # background thresholds of one CAM sweep (0.001 apart over [0, 1])
MAX_WORKERS = 256             # processes of one stage
# CAMs scored without a params file: YudeWang/SEAM@3212261:infer_SEAM.py:28 and evaluation.py:123-130
# (params.yaml's evaluate section)
DEFAULT_BG_THRESHOLD = 0.26
DEFAULT_BG_SWEEP = (0.0, 0.6, 0.01)


# The YAML types as written: a bool is no int, 1.0 no int, "1" no number; an int is a number (4 → 4.0).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]


def _shown(value):
    return list(value) if isinstance(value, tuple) else value


def rule(check, requirement: str) -> AfterValidator:
    """A rule on one value beyond its bounds: ``<key> must be <requirement>, got <value>``."""
    def validate(value):
        if not check(value):
            raise ValueError(f"must be {requirement}, got {_shown(value)!r}")
        return value
    return AfterValidator(validate)


Probability = Annotated[Float, Field(ge=0, le=1)]
Count = Annotated[Int, Field(ge=1)]
Images = Annotated[Int, Field(ge=1, le=MAX_IMAGES)]
ImageSize = Annotated[Int, Field(ge=32, le=MAX_IMAGE_SIZE)]
JPEGQuality = Annotated[Int, Field(ge=1, le=100)]
Momentum = Annotated[Float, Field(ge=0, lt=1)]
NonEmpty = Annotated[Str, Field(min_length=1)]
OutputStride = Annotated[Int, rule(lambda stride: stride in (8, 16), "8 or 16")]
Scales = Annotated[tuple[Float, ...], rule(lambda s: len(s) > 0 and all(x > 0 for x in s), "positive")]
low_high = rule(lambda pair: 0 < pair[0] <= pair[1], "[low, high] with 0 < low <= high")
stride_multiples = rule(lambda sizes: all(s >= 32 and s % 32 == 0 for s in sizes),
                        "multiples of 32 (the network's output stride)")
Backbone = Literal["resnet38d", "resnet50", "resnet101", "small", "tiny",
                   "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
Supervision = Literal["body_detail", "body_edge", "saliency_detail", "saliency_edge"]
SUPERVISIONS = typing.get_args(Supervision)


class Section(BaseModel):
    """A frozen configuration section: unknown keys are errors, and so is a value built in code that
    breaks a rule (``SynthVOCConfig(train=0)``), with the message ``build`` gives a YAML value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **values):
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise _config_error(error, type(self), _section_key(type(self)), in_code=True) from None

    # nested sections are validated without this __init__ (the marker pydantic-settings sets too)
    __init__.__pydantic_base_init__ = True

    def _need(self, ok: bool, name: str, requirement: str) -> None:
        """A rule spanning fields: ``<section>.<name> must be <requirement>, got <value>``."""
        if not ok:
            raise ValueError(f"{name} must be {requirement}, got {_shown(getattr(self, name))!r}")


class RuntimeConfig(Section):
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["auto", "fp32", "bf16", "fp16"]
    workers: Annotated[Int, Field(ge=0, le=MAX_WORKERS)]
    threads: Annotated[Int, Field(ge=1, le=MAX_WORKERS)] = 2   # CPU threads of each workflow job (Snakemake's threads)
    checkpoint_every: Annotated[Int, Field(ge=0)] = 0   # training steps between extra checkpoints (0: epoch ends only)


class TrackingConfig(Section):
    enabled: Bool


class VOCDataConfig(Section):
    """Where VOC2012 (+ SBD for train_aug) lives and how image-level labels are derived.

    ``source: synthetic`` swaps in the synthetic VOC: :func:`resolve` then sets ``root`` to
    :data:`SYNTHETIC_VOC_ROOT` and ``sbd_root`` to "" (the generated tree has its own train_aug).
    """

    root: NonEmpty
    sbd_root: Str
    label_source: Annotated[Str, rule(lambda s: s in ("xml", "mask") or s.endswith(".npy"),
                                      "'xml', 'mask' or a path to a cls_labels .npy file")]
    download: Bool
    source: Literal["voc2012", "synthetic"] = "voc2012"

    @model_validator(mode="after")
    def _synthetic_tree(self):
        if self.source == "synthetic" and (self.root, self.sbd_root) != (SYNTHETIC_VOC_ROOT, ""):
            raise ValueError(f"source synthetic reads {SYNTHETIC_VOC_ROOT} only, got root {self.root!r}, sbd_root "
                             f"{self.sbd_root!r} (to read another tree, also set voc.source=voc2012)")
        return self


class SODDataConfig(Section):
    """Where the saliency datasets live (one folder per set under ``root``; the set names are params.yaml's).

    A set in both ``train_sets`` and ``test_sets`` trains on its train.txt and is tested on its test.txt (SOD).
    """

    root: NonEmpty
    train_sets: Annotated[tuple[Str, ...], Field(min_length=1)]
    test_sets: Annotated[tuple[Str, ...], Field(min_length=1)]
    download: Bool


class SynthVOCConfig(Section):
    """Knobs of the synthetic VOC benchmark (sizes in pixels are for the long image side ``size``)."""

    seed: Int = 0
    train: Images = 400                # ids in train.txt (the first ids of train_aug)
    val: Images = 200                  # ids in val.txt (disjoint from train_aug)
    train_aug: Images = 2000           # ids in train_aug.txt, a superset of train
    size: ImageSize = 128              # long image side; the short side is 75-100 % of it
    max_objects: Count = 4             # objects per image: 1..max_objects, fewer more likely
    discriminative_part: Probability = 0.5   # P(body drawn in its family's shared look): only the mark tells the class
    context: Probability = 0.8         # P(a context-bearing class brings its context: sky, water, rails, grass)
    cooccurrence: Probability = 0.5    # P(a further object is a usual companion of an earlier class)
    occlusion: Probability = 0.4       # P(a further object is placed over an earlier one)
    min_visible: Probability = 0.35    # share of each object that occluders must leave visible
    clutter: Annotated[Int, Field(ge=0)] = 6                  # at most this many textured distractor shapes per image
    min_scale: Annotated[Float, Field(gt=0, le=1)] = 0.3      # object long side / image long side, lower bound
    max_scale: Annotated[Float, Field(le=1)] = 0.75           # ... upper bound
    rotation: Annotated[Float, Field(ge=0, le=90)] = 15.0     # objects are rotated by up to this many degrees
    mark_size: Annotated[Float, Field(gt=0, le=1)] = 0.4      # mark radius / the object's short half side
    void_width: Annotated[Int, Field(ge=0)] = 2               # px of the 255 band along object boundaries (0: none)
    noise: Annotated[Float, Field(ge=0)] = 6.0                # std of additive Gaussian pixel noise (0..255 scale)
    jpeg_quality: JPEGQuality = 90

    @model_validator(mode="after")
    def _ordered(self):
        self._need(self.train <= self.train_aug, "train_aug", f"in [synth_voc.train ({self.train}), {MAX_IMAGES}]")
        self._need(self.min_scale <= self.max_scale, "max_scale", f"in [synth_voc.min_scale ({self.min_scale}), 1]")
        return self


class SynthSODConfig(Section):
    """Knobs of the generator; sizes and widths are in pixels of the written images."""

    seed: Int = 0
    train: Images = 2000  # DUTS-TR images
    test: Images = 200  # ECSSD images
    size: ImageSize = 128  # long side; the short side is drawn from [min_aspect, 1] x size
    min_aspect: Annotated[Float, Field(ge=0.5, le=1)] = 0.75
    two_objects_prob: Probability = 0.15  # scenes with two salient objects
    large_prob: Probability = 0.15  # single objects covering about half the image or more
    thin_prob: Probability = 0.85  # objects with thin parts
    thin_width_min: Annotated[Float, Field(ge=1)] = 1.5
    thin_width_max: Float = 3.5
    object_contrast: Annotated[Float, Field(gt=0, le=255)] = 70.0  # RGB distance object - local background (x0.7-1.3)
    clutter: Annotated[Float, Field(ge=0)] = 8.0  # mean number of distractors (Poisson)
    clutter_contrast: Annotated[Float, Field(ge=0, le=255)] = 30.0  # RGB distance distractor - surround (x0.3-1)
    bg_contrast: Annotated[Float, Field(ge=0, le=255)] = 40.0  # amplitude of background colour variation and texture
    noise: Annotated[Float, Field(ge=0)] = 5.0  # std of Gaussian pixel noise
    jpeg_quality: JPEGQuality = 90
    antialias: Bool = False  # masks keep partial edge coverage instead of 0/255

    @model_validator(mode="after")
    def _ordered(self):
        self._need(self.thin_width_min <= self.thin_width_max, "thin_width_max",
                   f">= thin_width_min ({self.thin_width_min})")
        return self


class EvaluateConfig(Section):
    """Segmentation scoring: background score for CAMs and the threshold sweep
    (YudeWang/SEAM@3212261:evaluation.py:10-130)."""

    bg_threshold: Probability
    bg_sweep: Annotated[tuple[Float, Float, Float], rule(
        lambda s: 0 <= s[0] < s[1] <= 1 and s[2] > 0 and (s[1] - s[0]) / s[2] <= MAX_SWEEP_THRESHOLDS,
        f"[start, stop, step] with 0 <= start < stop <= 1, step > 0 and at most {MAX_SWEEP_THRESHOLDS} thresholds")]
    workers: Annotated[Int, Field(ge=1, le=MAX_WORKERS)]
    # A of the equivariance error mean |F(A(I)) - A(F(I))| (SEAM Fig. 1): a rescale
    equivariance_scale: Annotated[Float, Field(gt=0, le=4), rule(lambda scale: scale != 1, "in (0, 4] and not 1")]


class EpochTraining(Section):
    """A backbone trained for ``epochs`` under psa's poly schedule (what ``wsss.engine.TrainSettings`` reads)."""

    backbone: Backbone
    weights: Str
    crop: Annotated[Int, Field(ge=16)]
    batch: Count
    epochs: Count
    lr: Annotated[Float, Field(gt=0)]
    weight_decay: Annotated[Float, Field(ge=0)]
    momentum: Momentum
    poly_power: Float
    polyoptimizer_bug: Bool
    # pretrained backbones: psa/SEAM freeze every BN and the first 2 stages (null: that default with weights,
    # nothing frozen from scratch)
    frozen_bn: Bool | None = None
    frozen_stages: Annotated[Int, Field(ge=0, le=5)] | None = None


class TrainClsConfig(EpochTraining):
    """CAM classifier training (jiwoon-ahn/psa@9493e59:train_cls.py:42-96;
    YudeWang/SEAM@3212261:train_SEAM.py:35-84)."""

    resize_long: Annotated[tuple[Int, Int], low_high]
    color_jitter: tuple[Float, Float, Float, Float]
    output_stride: OutputStride = 8   # psa/SEAM ResNet-38: 8; 16 halves the cost of the dilated stages


class InferCamConfig(Section):
    """Multi-scale, flipped CAM inference (jiwoon-ahn/psa@9493e59:infer_cls.py:40-80;
    YudeWang/SEAM@3212261:infer_SEAM.py:38-82)."""

    scales: Scales
    flip: Bool
    norm: Literal["max", "minmax"]
    # the map read: the CAM, SEAM's PCM output (network seam), SC-CAM's merged sub-category CAM (network sccam)
    source: Literal["cam", "pcm", "subcategory"] = "cam"
    upsample: Literal["direct", "view_first"] = "direct"   # view_first: SEAM's two resizes (view size, then image)


class CRFKernels(Section):
    """The dense CRF's pairwise kernels (pydensecrf ``addPairwiseGaussian`` / ``addPairwiseBilateral``)."""

    gaussian_sxy: Float
    gaussian_compat: Float
    bilateral_sxy: Float
    bilateral_srgb: Float
    bilateral_compat: Float

    def kernels(self) -> dict[str, float]:
        """The five kernel settings, as keyword arguments of :func:`wsss.infer.crf.dense_crf`."""
        return {name: getattr(self, name) for name in CRFKernels.model_fields}

    @model_serializer(mode="wrap")
    def _kernels_last(self, handler):
        """The section's own keys, then the kernels: params.yaml's order (Snakemake compares params by repr)."""
        values = handler(self)
        return {**{key: value for key, value in values.items() if key not in CRFKernels.model_fields}, **self.kernels()}


class CRFConfig(CRFKernels):
    """Dense CRF on CAMs: unary from [(1 - max)^alpha ; CAMs] (jiwoon-ahn/psa@9493e59:tool/imutils.py:200-217)."""

    alpha_low: Annotated[Float, Field(gt=0)]
    alpha_high: Float
    iterations: Count

    @model_validator(mode="after")
    def _ordered(self):
        self._need(self.alpha_low <= self.alpha_high, "alpha_high", f">= alpha_low ({self.alpha_low})")
        return self


class AffinityConfig(EpochTraining):
    """AffinityNet and its random walk (Ahn & Kwak, CVPR'18; jiwoon-ahn/psa@9493e59:train_aff.py:18-74,
    infer_aff.py:59-62).

    Training labels come from the CRF of the CAMs at ``crf.alpha_low`` and ``crf.alpha_high``; ``alpha`` is the
    background power of the walk's input, ``(1 - max cam)^alpha``. ``weights``: ImageNet weights as psa, "" from
    scratch, or ``classifier``, the trained CAM classifier's backbone.
    """

    color_jitter: tuple[Float, Float, Float, Float]
    output_stride: OutputStride = 8
    radius: Annotated[Int, Field(ge=2, le=16)]        # pairs closer than this on the feature grid (psa 5)
    pairs: Literal["inside", "psa"]                   # inside: every pair in the map | psa: no border sources
    beta: Annotated[Float, Field(gt=0)]               # A^beta sharpens the affinities (psa 8)
    logt: Annotated[Int, Field(ge=0, le=12)]          # t = 2^logt walk steps (psa 8, SEAM 6)
    alpha: Annotated[Float, Field(gt=0)]              # background power of the walk's input (psa 16, SEAM 6)
    walk: Literal["auto", "dense", "sparse"]          # auto: dense on CUDA up to dense_max_nodes, else sparse
    dense_max_nodes: Annotated[Int, Field(ge=1)]      # feature-grid positions of the largest dense walk
    crf_iterations: Count                             # pseudo: rw_crf, the CRF on the walk's scores (SEAM: 1)


class TrainSegConfig(Section):
    """DeepLab retraining on pseudo labels (kazuto1011/deeplab-pytorch@4219467:configs/voc12.yaml:36-49;
    YudeWang/semantic-segmentation-codebase@a40f6c6:experiment/seamv1-pseudovoc/config.py:11-50)."""

    arch: Literal["deeplab_v2", "deeplab_v1"]
    backbone: Backbone
    weights: Str
    crop: Annotated[Int, Field(ge=16)]
    batch: Count
    iterations: Count
    lr: Annotated[Float, Field(gt=0)]
    momentum: Float
    weight_decay: Float
    scale_range: Annotated[tuple[Float, Float], low_high]
    # deeplab_v2's ASPP dilations (for the 41×41 map of a 321 crop)
    aspp_rates: Annotated[tuple[Int, ...], rule(lambda rates: len(rates) > 0 and min(rates) >= 1,
                                                "dilations >= 1")] = (6, 12, 18, 24)
    output_stride: OutputStride = 8   # DeepLab-v2: 8
    frozen_bn: Bool | None = None     # null: the official repos' freezing with weights (backbone BN), none from scratch
    frozen_stages: Annotated[Int, Field(ge=0, le=5)] | None = None


class InferSegConfig(CRFKernels):
    """DeepLab inference: multi-scale + flip logits averaged, then optionally a dense CRF on the softmax
    (SEAM's retraining test:
    YudeWang/semantic-segmentation-codebase@a40f6c6:experiment/seamv1-pseudovoc/test.py:67-98)."""

    scales: Scales
    flip: Bool
    crf: Bool
    crf_iterations: Count


class SEAMConfig(Section):
    """SEAM's siamese training (Wang et al., CVPR'20; YudeWang/SEAM@3212261:train_SEAM.py:104-146; the losses in
    ``wsss.losses``)."""

    rescale: Annotated[Float, Field(gt=0, le=4)]   # the affine transform A: rescale factor (official 0.3) ...
    flip: Bool              # ... and an optional horizontal flip
    cls_weight: Annotated[Float, Field(ge=0)]
    er_weight: Annotated[Float, Field(ge=0)]
    er_source: Literal["cam", "pcm"]   # ER between raw CAMs (official) or between PCM outputs
    ecr_weight: Annotated[Float, Field(ge=0)]
    ohem_ratio: Annotated[Float, Field(gt=0, le=1)]       # share of ECR errors kept (official 0.2; 1.0 = no OHEM)
    official_detach: Bool   # detach PCM inputs, PCM features and ECR targets as the official code
    pcm_classes: Literal["all", "present"]   # the PCM's input: every class (official) or the image's classes
    min_pool_loss: Bool     # the official code's extra min-pooling loss (not in the paper)
    min_pool_weight: Annotated[Float, Field(ge=0)]
    min_pool_ratio: Annotated[Float, Field(gt=0, le=1)]
    # input: the maps upsampled to their input's size before every loss, as the official network returns them
    # (YudeWang/SEAM@3212261:network/resnet38_SEAM.py:48-49); stride: the losses on the network's stride-8 maps
    # (cheaper, not the official)
    loss_resolution: Literal["input", "stride"] = "input"

    @model_validator(mode="after")
    def _changes_the_image(self):
        self._need(self.rescale != 1 or self.flip, "rescale",
                   "in (0, 4] and not 1 unless flip is on (A must change the image)")
        return self


class AblationRow(Section):
    """One row of an ablation table: a method's CAMs (or, with ``crf``, its CRF pseudo labels) on train."""

    row: Str
    method: Str
    crf: Bool
    paper: Float            # the paper's mIoU (%) on VOC train


class SCCAMConfig(Section):
    """SC-CAM's sub-category rounds (Chang et al., CVPR'20, §3; Juliachang/SC-CAM@191ec48:script.sh:22-48).

    Round ``r`` clusters the features of round ``r − 1``'s classifier (round 0: ``initial_method``'s) per parent
    class into ``clusters`` sub-categories and trains a new classifier on them, from ``train_cls.weights``.
    ``round`` is the round a job belongs to; the workflow sets it, and its default 0 means the last
    (``rounds``), the method's own classifier.
    """

    clusters: Count                     # K sub-categories per parent class (official 10; 1: the parent labels again)
    rounds: Count
    round: Annotated[Int, Field(ge=0)] = 0
    # λ of L = L_parent + λ·L_sub (Juliachang/SC-CAM@191ec48:train_cls.py:121: 5)
    subcls_weight: Annotated[Float, Field(ge=0)]
    initial_method: NonEmpty = "cam"    # the method whose classifier extracts round 1's features (official: psa's)
    # none: the raw GAP feature (Juliachang/SC-CAM@191ec48:extract_feature.py:80-84); l2: unit length
    feature_norm: Literal["none", "l2"] = "none"
    # sklearn KMeans restarts (sklearn < 1.4's default, Juliachang/SC-CAM@191ec48:create_pseudo_label.py:185)
    kmeans_n_init: Count = 10
    kmeans_seed: Int = 0                # its random_state

    @model_validator(mode="after")
    def _round_in_range(self):
        self._need(self.round <= self.rounds, "round", f"in [0, sccam.rounds ({self.rounds})]")
        return self

    @property
    def training_round(self) -> int:
        """The round (1..rounds) a job of this configuration trains."""
        return self.round or self.rounds


def round_method(method: str, training_round: int, rounds: int) -> str:
    """The folder name of round ``training_round`` of an SC-CAM method: ``<method>_round<r>``, the method's
    own name for its last round (whose classifier, CAMs and results are the method's)."""
    return method if training_round == rounds else f"{method}_round{training_round}"


class SCCAMAblationConfig(Section):
    """The SC-CAM ablation: the CAM mIoU on train of rounds 0..R of ``method`` and of the last round of each
    method of ``clusters`` (the same method at other K)."""

    method: NonEmpty
    clusters: Annotated[tuple[Str, ...], Field(min_length=1)]


class DecoupleConfig(Section):
    """Label decoupling into body and detail maps (weijun88/LDF@d49ff02:utils.py:7-25)."""

    variant: Literal["code", "paper"]   # code: weijun88/LDF@d49ff02:utils.py:7-25; paper: body × binary mask
    exact_edt: Bool                     # exact Euclidean distance instead of cv2's 5×5 chamfer DIST_L2


class LDFConfig(Section):
    """LDF training and testing (weijun88/LDF@d49ff02:train-fine/train.py, test.py); ``supervision`` picks the two
    branches' targets (Table 5)."""

    backbone: Literal["resnet50", "small", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    weights: Str
    width: Count
    batch: Count
    epochs: Count
    fine_epochs: Count
    lr: Annotated[Float, Field(gt=0)]
    backbone_lr_factor: Annotated[Float, Field(gt=0)]
    momentum: Momentum
    weight_decay: Float
    train_sizes: Annotated[tuple[Int, ...], Field(min_length=1), stride_multiples]
    test_size: Annotated[Int, rule(lambda size: size >= 32 and size % 32 == 0,
                                   "a multiple of 32 (the network's output stride)")]
    test_flip: Bool                      # also predict the mirrored image and average the logits (LDF's test.py: no)
    two_stage: Bool
    supervision: Supervision


class LDFAblationConfig(Section):
    """LDF's Table 5 (the four supervision rows): every row trained once per seed."""

    seeds: Annotated[tuple[Int, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _distinct(self):
        self._need(len(set(self.seeds)) == len(self.seeds), "seeds", "distinct")
        return self


class Config(Section):
    """The resolved configuration of one pipeline invocation."""

    profile: Str                         # a name under ``profiles`` (checked by :func:`resolve`)
    method: Str                          # a name under ``methods``: the folder name of its models, CAMs, results
    pseudo: Literal["crf", "rw", "rw_crf"]   # DeepLab's labels: the CRF of the CAMs, the random walk, or walk + CRF
    network: Literal[CAM_NETWORKS]       # what that method trains: a CAM network of ``wsss.nets.registry``
    seed: Int
    runtime: RuntimeConfig
    tracking: TrackingConfig
    voc: VOCDataConfig
    sod: SODDataConfig
    synth_voc: SynthVOCConfig
    synth_sod: SynthSODConfig
    evaluate: EvaluateConfig
    train_cls: TrainClsConfig
    infer_cam: InferCamConfig
    crf: CRFConfig
    affinity: AffinityConfig
    train_seg: TrainSegConfig
    infer_seg: InferSegConfig
    seam: SEAMConfig
    seam_ablation: tuple[AblationRow, ...]
    sccam: SCCAMConfig
    sccam_ablation: SCCAMAblationConfig
    decouple: DecoupleConfig
    ldf: LDFConfig
    ldf_ablation: LDFAblationConfig

    @model_validator(mode="after")
    def _pcm_needs_seam(self):
        source = self.infer_cam.source
        if source not in NETWORKS[self.network].maps:
            having = " or ".join(name for name in CAM_NETWORKS if source in NETWORKS[name].maps)
            raise ValueError(f"infer_cam.source {source} needs network {having}, but method {self.method} "
                             f"is network {self.network}")
        return self

    @property
    def voc_dataset(self) -> str:
        """Dataset name used in experiment names and result paths."""
        return "synthetic-voc" if self.voc.source == "synthetic" else "voc2012"

    @property
    def sod_dataset(self) -> str:
        """Dataset name used in experiment names and result paths: the training sets' (DUTS-TR: duts, SOD: sod)."""
        if self.profile == "smoke":
            return "synthetic-sod"
        return "+".join(name.lower().removesuffix("-tr") for name in self.sod.train_sets)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _section_key(cls) -> str:
    """The key of section ``cls`` in :class:`Config` ("" for Config itself and for rows)."""
    return next((name for name, field in Config.model_fields.items() if field.annotation is cls), "")


def _model_in(annotation):
    """The model class of a field's annotation (``LDFConfig``, ``tuple[AblationRow, ...]``), or None."""
    return next((kind for kind in (annotation, *typing.get_args(annotation))
                 if isinstance(kind, type) and issubclass(kind, BaseModel)), None)


def _locate(model, loc: tuple):
    """The model holding the last key of ``loc`` (a pydantic error location under ``model``) and its field."""
    field = None
    for part in loc:
        if isinstance(part, int):
            continue
        if field is not None:
            model = _model_in(field.annotation)
        field = model.model_fields.get(part) if model else None
        if field is None:
            break
    return model, field


def _bounds(field) -> str:
    """The field's ``Field(ge=…, gt=…, le=…, lt=…)`` in words: ``in [0, 1]``, ``in (0, 4]``, ``>= 0``."""
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    bound = {name: getattr(item, name) for item in field.metadata for name in signs if hasattr(item, name)}
    if len(bound) == 1:
        [(name, value)] = bound.items()
        return f"{signs[name]} {value}"
    low = f"[{bound['ge']}" if "ge" in bound else f"({bound['gt']}"
    high = f"{bound['le']}]" if "le" in bound else f"{bound['lt']})"
    return f"in {low}, {high}"


TYPES = {"int_type": ("int", "an integer"), "float_type": ("float", "a number"),
         "bool_type": ("bool", "true or false"), "string_type": ("str", "a string")}
BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _path(key: str, loc: tuple) -> str:
    for part in loc:
        key = f"{key}[{part}]" if isinstance(part, int) else _join(key, part)
    return key


def _message(error: dict, root, key: str, in_code: bool) -> str:
    """One pydantic error as a sentence that names the dotted key (``train_cls.lr must be > 0, got -1``)."""
    loc, kind, value = error["loc"], error["type"], error["input"]
    model, field = _locate(root, loc)
    path = _path(key, loc)
    if kind == "missing" and loc and isinstance(loc[-1], int):   # a fixed-length list cut short
        length = len(typing.get_args(field.annotation))
        return f"{_path(key, loc[:-1])}: expected a list of {length} values, got {len(value)}"
    if kind == "missing":
        return f"{path}: missing key"
    if kind == "too_long" and error["ctx"]["field_type"] == "Tuple":
        return f"{path}: expected a list of {error['ctx']['max_length']} values, got {len(value)}"
    if kind in ("too_short", "string_too_short"):
        return f"{path} must not be empty"
    if kind == "extra_forbidden":
        return f"{path}: unknown key (known: {', '.join(model.model_fields)})"
    if kind == "model_type":
        return f"{path or 'the top level'}: expected a mapping, got {type(value).__name__}"
    if kind == "tuple_type":
        return f"{path}: expected a list, got {value!r}"
    if kind in TYPES:
        python, yaml_type = TYPES[kind]
        return f"{path} must be of type {python}, got {value!r}" if in_code else \
            f"{path}: expected {yaml_type}, got {value!r}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", error["ctx"]["expected"])
        return f"{path}: must be one of {', '.join(choices)}, got {value!r}"
    if kind in BOUNDS:
        return f"{path} must be {_bounds(field)}, got {value!r}"
    if kind == "value_error":   # a rule(): "must be …"; a model validator: "<field> must be …"
        of_one_value = field is not None and _model_in(field.annotation) is None and not isinstance(loc[-1], int)
        return f"{path} {error['ctx']['error']}" if of_one_value else _join(path, str(error["ctx"]["error"]))
    return f"{path}: {error['msg']}"


def _config_error(error: ValidationError, root, key: str = "", in_code: bool = False) -> ConfigError:
    return ConfigError("; ".join(_message(item, root, key, in_code) for item in error.errors()))


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def build(cls, data: Any, key: str = ""):
    """Validate ``data`` as the model ``cls`` of section ``key``: unknown keys, types and ranges."""
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        raise _config_error(error, cls, key) from None


def deep_merge(base: dict, override: dict) -> dict:
    """Return ``base`` with ``override`` merged in recursively (mappings merge, other values replace)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_override(text: str) -> dict:
    """``"a.b=value"`` → ``{"a": {"b": value}}`` with the value parsed as YAML (``0.1``, ``true``, ``[1, 2]``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({error})") from error
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def read_params(path: str | Path) -> dict:
    """Read a params YAML file, with errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def resolve(raw: dict, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Merge the method, the profile and the ``--set`` overrides into ``raw`` and validate the result.

    Order: the sections ← ``methods.<method>`` ← ``profiles.<profile>`` ← ``--set``. An entry of ``methods``
    names the ``network`` it trains and overrides any section with that method's published settings (SEAM
    trains at lr 0.01, batch 8, where psa's CAM trains at 0.1, 16); the profile then scales any key to its
    data and hardware (the smoke profile's crops, batches and from-scratch lr hold for every method).
    ``voc.source: synthetic`` then points ``voc.root`` at the synthetic VOC (:class:`VOCDataConfig`).
    """
    override = {}
    for text in overrides:
        override = deep_merge(override, parse_override(text))
    chosen = deep_merge(raw, override)
    profiles = chosen.pop("profiles", None) or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"profiles: expected a mapping of profile names to overrides, got {profiles!r}")
    profile = chosen.get("profile")
    if not isinstance(profile, str) or profile not in profiles:
        known = ", ".join(profiles) or "none: add a profiles section"
        raise ConfigError(f"profile must be one of {known}, got {profile!r}")
    methods = chosen.pop("methods", None) or {}
    method = chosen.get("method")
    if not isinstance(method, str) or method not in methods:
        known = ", ".join(methods) or "none: add a methods section"
        raise ConfigError(f"method: unknown method {method!r} (known: {known})")
    entry, changes = methods[method], profiles[profile] or {}
    if not isinstance(entry, dict) or "network" not in entry:
        raise ConfigError(f"methods.{method}: expected a mapping with a network key ({' or '.join(CAM_NETWORKS)})")
    if not isinstance(changes, dict):
        raise ConfigError(f"profiles.{profile}: expected a mapping of overrides, got {changes!r}")
    resolved = deep_merge(deep_merge(deep_merge(chosen, entry), changes), override)
    resolved.pop("methods", None)
    if isinstance(resolved.get("voc"), dict) and resolved["voc"].get("source") == "synthetic":
        named = override.get("voc") if isinstance(override.get("voc"), dict) else {}
        kept = {key: named[key] for key in ("root", "sbd_root") if key in named}  # refused below, not ignored
        resolved["voc"] = {**resolved["voc"], "root": SYNTHETIC_VOC_ROOT, "sbd_root": "", **kept}
    cfg = build(Config, resolved)
    named = {"seam_ablation": [row.method for row in cfg.seam_ablation], "sccam.initial_method":
             [cfg.sccam.initial_method], "sccam_ablation": [cfg.sccam_ablation.method, *cfg.sccam_ablation.clusters]}
    for key, names in named.items():
        unknown = [name for name in names if name not in methods]
        if unknown:
            raise ConfigError(f"{key}: unknown method {unknown[0]!r} (known: {', '.join(methods)})")
    return cfg


def method_names(raw: dict) -> list[str]:
    """The method names of a params mapping (the keys of ``methods``)."""
    return list(raw.get("methods") or {})


def load_config(path: str | Path = "params.yaml", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read and resolve ``params.yaml``: the one entry point of every stage."""
    try:
        return resolve(read_params(path), overrides)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def _partial(node):
    """A JSON Schema ``node`` with no key required and no defaults, referring to the partial definitions."""
    if isinstance(node, list):
        return [_partial(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {key: "#/$defs/Partial" + value.rsplit("/", 1)[1] if key == "$ref" else _partial(value)
            for key, value in node.items() if key not in ("required", "default")}


def params_schema() -> dict:
    """The JSON Schema of a params file (``wsss config --schema`` → ``workflow/schemas/config.schema.json``):
    the sections of :class:`Config` (``network`` comes from the method), plus ``methods`` and ``profiles``,
    whose entries override any keys of the sections (each entry of ``methods`` names its ``network``)."""
    schema = Config.model_json_schema()
    defs = schema.pop("$defs")
    defs.update({f"Partial{name}": _partial(part) for name, part in defs.items()}, PartialConfig=_partial(schema))
    schema["properties"].update(
        methods={"type": "object", "description": "CAM methods: each a network and the settings it overrides",
                 "additionalProperties": {"$ref": "#/$defs/PartialConfig", "required": ["network"]},
                 "minProperties": 1},
        profiles={"type": "object", "description": "profiles: each overrides any keys; `profile` picks one",
                  "additionalProperties": {"$ref": "#/$defs/PartialConfig"}, "minProperties": 1})
    schema["required"] = [name for name in schema["required"] if name != "network"] + ["methods", "profiles"]
    schema.update(title="params.yaml", description="The pipeline's configuration (wsss.config.Config and its sections)")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "$defs": defs}
