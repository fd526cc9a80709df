"""Typed configuration: ``params.yaml`` → validated, frozen dataclasses.

``params.yaml`` is the one configuration of Snakemake (``configfile:``), DVC (``params:``) and the
CLI. Its top-level sections hold the published settings of the papers (``../shared/reference``);
``profiles.<name>`` holds overrides, and the key ``profile`` picks one (``smoke`` shrinks the
pipeline to the synthetic CPU benchmark, ``lite`` runs ImageNet-pretrained EfficientNet-Lite0 on a
CPU). ``--set a.b=value`` overrides come last.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from wsss.errors import ConfigError

PROFILES = ("smoke", "lite", "paper")
SYNTHETIC_VOC_ROOT = "data/synth/voc"   # where the synth_voc rule writes the synthetic VOC (voc.source: synthetic)
MAX_IMAGES = 1_000_000        # synthetic set sizes: beyond VOC + SBD and DUTS many times over
MAX_IMAGE_SIZE = 4096         # synthetic image side, pixels
MAX_SWEEP_THRESHOLDS = 1000   # background thresholds of one CAM sweep (0.001 apart over [0, 1])
MAX_WORKERS = 256             # processes of one stage


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _at_least(config, minimum: float, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        _require(value >= minimum, f"{name} must be >= {minimum}, got {value}")


def _above(config, bound: float, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        _require(value > bound, f"{name} must be > {bound}, got {value}")


def _check_scalar_types(config, section: str) -> None:
    """Type-check the scalar fields of a config built in code (``build`` checks what comes from YAML)."""
    for name, hint in typing.get_type_hints(type(config)).items():
        value = getattr(config, name)
        allowed = (int, float) if hint is float else hint
        if isinstance(value, bool) != (hint is bool) or not isinstance(value, allowed):
            raise ValueError(f"{section}.{name} must be of type {hint.__name__}, got {value!r}")


@dataclass(frozen=True)
class RuntimeConfig:
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["auto", "fp32", "bf16", "fp16"]
    workers: int

    checkpoint_every: int = 0   # training steps between extra checkpoints (0: at epoch ends only)

    def __post_init__(self):
        _at_least(self, 0, "workers", "checkpoint_every")
        _require(self.workers <= MAX_WORKERS, f"workers must be <= {MAX_WORKERS}, got {self.workers}")


@dataclass(frozen=True)
class TrackingConfig:
    enabled: bool


@dataclass(frozen=True)
class VOCDataConfig:
    """Where VOC2012 (+ SBD for train_aug) lives and how image-level labels are derived.

    ``source: synthetic`` swaps in the synthetic VOC: :func:`resolve` then sets ``root`` to
    :data:`SYNTHETIC_VOC_ROOT` and ``sbd_root`` to "" (the generated tree has its own train_aug).
    """

    root: str
    sbd_root: str
    label_source: str
    download: bool
    source: Literal["voc2012", "synthetic"] = "voc2012"

    def __post_init__(self):
        _require(bool(self.root), "root must not be empty")
        _require(self.source == "voc2012" or (self.root, self.sbd_root) == (SYNTHETIC_VOC_ROOT, ""),
                 f"source synthetic reads {SYNTHETIC_VOC_ROOT} only, got root {self.root!r}, sbd_root {self.sbd_root!r} "
                 "(to read another tree, also set voc.source=voc2012)")
        _require(self.label_source in ("xml", "mask") or self.label_source.endswith(".npy"),
                 f"label_source must be 'xml', 'mask' or a path to a cls_labels .npy file, got {self.label_source!r}")


@dataclass(frozen=True)
class SODDataConfig:
    """Where the saliency datasets live (one folder per set under ``root``)."""

    root: str
    train_sets: tuple[str, ...]
    test_sets: tuple[str, ...]
    download: bool

    def __post_init__(self):
        _require(bool(self.root), "root must not be empty")
        _require(len(self.train_sets) > 0, "train_sets must name at least one dataset")
        _require(len(self.test_sets) > 0, "test_sets must name at least one dataset")


@dataclass(frozen=True)
class SynthVOCConfig:
    """Knobs of the synthetic VOC benchmark (sizes in pixels are for the long image side ``size``)."""

    seed: int = 0
    train: int = 400                   # ids in train.txt (the first ids of train_aug)
    val: int = 200                     # ids in val.txt (disjoint from train_aug)
    train_aug: int = 2000              # ids in train_aug.txt, a superset of train
    size: int = 128                    # long image side; the short side is 75-100 % of it
    max_objects: int = 4               # objects per image: 1..max_objects, fewer more likely
    discriminative_part: float = 0.5   # P(body drawn in its family's shared look): only the mark tells the class
    context: float = 0.8               # P(a context-bearing class brings its context: sky, water, rails, grass)
    cooccurrence: float = 0.5          # P(a further object is a usual companion of an earlier class)
    occlusion: float = 0.4             # P(a further object is placed over an earlier one)
    min_visible: float = 0.35          # share of each object that occluders must leave visible
    clutter: int = 6                   # at most this many textured distractor shapes per image
    min_scale: float = 0.3             # object long side / image long side, lower bound
    max_scale: float = 0.75            # ... upper bound
    rotation: float = 15.0             # objects are rotated by up to this many degrees
    mark_size: float = 0.4             # mark radius / the object's short half side
    void_width: int = 2                # width in px of the 255 band along object boundaries (0: none)
    noise: float = 6.0                 # std of additive Gaussian pixel noise (0..255 scale)
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        _check_scalar_types(self, "synth_voc")
        self._check("train", 1 <= self.train <= MAX_IMAGES, f"in [1, {MAX_IMAGES}]")
        self._check("val", 1 <= self.val <= MAX_IMAGES, f"in [1, {MAX_IMAGES}]")
        self._check("train_aug", self.train <= self.train_aug <= MAX_IMAGES, f"in [synth_voc.train ({self.train}), {MAX_IMAGES}]")
        self._check("size", 32 <= self.size <= MAX_IMAGE_SIZE, f"in [32, {MAX_IMAGE_SIZE}]")
        self._check("max_objects", self.max_objects >= 1, ">= 1")
        for name in ("discriminative_part", "context", "cooccurrence", "occlusion", "min_visible"):
            self._check(name, 0.0 <= getattr(self, name) <= 1.0, "in [0, 1]")
        self._check("clutter", self.clutter >= 0, ">= 0")
        self._check("min_scale", 0.0 < self.min_scale <= 1.0, "in (0, 1]")
        self._check("max_scale", self.min_scale <= self.max_scale <= 1.0, f"in [synth_voc.min_scale ({self.min_scale}), 1]")
        self._check("rotation", 0.0 <= self.rotation <= 90.0, "in [0, 90]")
        self._check("mark_size", 0.0 < self.mark_size <= 1.0, "in (0, 1]")
        self._check("void_width", self.void_width >= 0, ">= 0")
        self._check("noise", self.noise >= 0.0, ">= 0")
        self._check("jpeg_quality", 1 <= self.jpeg_quality <= 100, "in [1, 100]")

    def _check(self, name: str, ok: bool, requirement: str) -> None:
        if not ok:
            raise ValueError(f"synth_voc.{name} must be {requirement}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class SynthSODConfig:
    """Knobs of the generator; sizes and widths are in pixels of the written images."""

    seed: int = 0
    train: int = 2000  # DUTS-TR images
    test: int = 200  # ECSSD images
    size: int = 128  # long side; the short side is drawn from [min_aspect, 1] x size
    min_aspect: float = 0.75
    two_objects_prob: float = 0.15  # scenes with two salient objects
    large_prob: float = 0.15  # single objects covering about half the image or more
    thin_prob: float = 0.85  # objects with thin parts
    thin_width_min: float = 1.5
    thin_width_max: float = 3.5
    object_contrast: float = 70.0  # RGB distance of an object to its local background (x0.7-1.3)
    clutter: float = 8.0  # mean number of distractors (Poisson)
    clutter_contrast: float = 30.0  # RGB distance of a distractor to its surround (x0.3-1)
    bg_contrast: float = 40.0  # amplitude of background colour variation and texture
    noise: float = 5.0  # std of Gaussian pixel noise
    jpeg_quality: int = 90
    antialias: bool = False  # masks keep partial edge coverage instead of 0/255

    def __post_init__(self):
        _check_scalar_types(self, "synth_sod")
        rules = [
            ("train", 1 <= self.train <= MAX_IMAGES, f"in [1, {MAX_IMAGES}]"),
            ("test", 1 <= self.test <= MAX_IMAGES, f"in [1, {MAX_IMAGES}]"),
            ("size", 32 <= self.size <= MAX_IMAGE_SIZE, f"in [32, {MAX_IMAGE_SIZE}]"),
            ("min_aspect", 0.5 <= self.min_aspect <= 1, "in [0.5, 1]"),
            ("two_objects_prob", 0 <= self.two_objects_prob <= 1, "in [0, 1]"),
            ("large_prob", 0 <= self.large_prob <= 1, "in [0, 1]"),
            ("thin_prob", 0 <= self.thin_prob <= 1, "in [0, 1]"),
            ("thin_width_min", self.thin_width_min >= 1, ">= 1"),
            ("thin_width_max", self.thin_width_max >= self.thin_width_min, f">= thin_width_min ({self.thin_width_min})"),
            ("object_contrast", 0 < self.object_contrast <= 255, "in (0, 255]"),
            ("clutter", self.clutter >= 0, ">= 0"),
            ("clutter_contrast", 0 <= self.clutter_contrast <= 255, "in [0, 255]"),
            ("bg_contrast", 0 <= self.bg_contrast <= 255, "in [0, 255]"),
            ("noise", self.noise >= 0, ">= 0"),
            ("jpeg_quality", 1 <= self.jpeg_quality <= 100, "in [1, 100]"),
        ]
        for name, ok, rule in rules:
            if not ok:
                raise ValueError(f"synth_sod.{name} must be {rule}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class EvaluateConfig:
    """Segmentation scoring: background score for CAMs and the threshold sweep (SEAM evaluation.py)."""

    bg_threshold: float
    bg_sweep: tuple[float, float, float]
    workers: int
    equivariance_scale: float   # A of the equivariance error mean |F(A(I)) - A(F(I))| (SEAM Fig. 1): a rescale

    def __post_init__(self):
        _require(0.0 <= self.bg_threshold <= 1.0, f"bg_threshold must be in [0, 1], got {self.bg_threshold}")
        _require(0 < self.equivariance_scale <= 4 and self.equivariance_scale != 1,
                 f"equivariance_scale must be in (0, 4] and not 1, got {self.equivariance_scale}")
        start, stop, step = self.bg_sweep
        _require(0.0 <= start < stop <= 1.0 and step > 0 and (stop - start) / step <= MAX_SWEEP_THRESHOLDS,
                 f"bg_sweep must be [start, stop, step] with 0 <= start < stop <= 1, step > 0 and at most "
                 f"{MAX_SWEEP_THRESHOLDS} thresholds, got {list(self.bg_sweep)}")
        _at_least(self, 1, "workers")
        _require(self.workers <= MAX_WORKERS, f"workers must be <= {MAX_WORKERS}, got {self.workers}")


@dataclass(frozen=True)
class TrainClsConfig:
    """CAM classifier training (psa/SEAM train_cls; reference §2)."""

    backbone: Literal["resnet38d", "resnet50", "resnet101", "small", "tiny",
                      "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    weights: str
    crop: int
    batch: int
    epochs: int
    lr: float
    weight_decay: float
    momentum: float
    poly_power: float
    polyoptimizer_bug: bool
    resize_long: tuple[int, int]
    color_jitter: tuple[float, float, float, float]
    output_stride: int = 8   # psa/SEAM ResNet-38: 8; 16 halves the cost of the dilated stages

    def __post_init__(self):
        _require(self.output_stride in (8, 16), f"output_stride must be 8 or 16, got {self.output_stride}")
        _at_least(self, 16, "crop")
        _at_least(self, 1, "batch", "epochs")
        _above(self, 0, "lr")
        _at_least(self, 0, "weight_decay")
        _require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        _require(0 < self.resize_long[0] <= self.resize_long[1],
                 f"resize_long must be [low, high] with 0 < low <= high, got {list(self.resize_long)}")


@dataclass(frozen=True)
class InferCamConfig:
    """Multi-scale, flipped CAM inference (reference §4)."""

    scales: tuple[float, ...]
    flip: bool
    norm: Literal["max", "minmax"]
    source: Literal["cam", "pcm"] = "cam"   # the map read: the CAM, or SEAM's PCM output (network seam only)

    def __post_init__(self):
        _require(len(self.scales) > 0 and all(s > 0 for s in self.scales), f"scales must be positive, got {list(self.scales)}")


@dataclass(frozen=True)
class CRFConfig:
    """Dense CRF on CAMs: unary from [(1 - max)^alpha ; CAMs] (psa/SEAM imutils.crf_inference; reference §6)."""

    alpha_low: float
    alpha_high: float
    iterations: int
    gaussian_sxy: float
    gaussian_compat: float
    bilateral_sxy: float
    bilateral_srgb: float
    bilateral_compat: float

    def __post_init__(self):
        _require(0 < self.alpha_low <= self.alpha_high, f"need 0 < alpha_low <= alpha_high, got {self.alpha_low}, {self.alpha_high}")
        _at_least(self, 1, "iterations")


@dataclass(frozen=True)
class TrainSegConfig:
    """DeepLab retraining on pseudo labels (reference §9)."""

    arch: Literal["deeplab_v2", "deeplab_v1"]
    backbone: Literal["resnet101", "resnet38d", "resnet50", "small", "tiny",
                      "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    weights: str
    crop: int
    batch: int
    iterations: int
    lr: float
    momentum: float
    weight_decay: float
    scale_range: tuple[float, float]
    aspp_rates: tuple[int, ...] = (6, 12, 18, 24)   # deeplab_v2's ASPP dilations (for the 41×41 map of a 321 crop)
    output_stride: int = 8   # DeepLab-v2: 8

    def __post_init__(self):
        _require(self.output_stride in (8, 16), f"output_stride must be 8 or 16, got {self.output_stride}")
        _at_least(self, 16, "crop")
        _at_least(self, 1, "batch", "iterations")
        _above(self, 0, "lr")
        _require(0 < self.scale_range[0] <= self.scale_range[1], f"scale_range must be [low, high], got {list(self.scale_range)}")
        _require(len(self.aspp_rates) > 0 and all(r >= 1 for r in self.aspp_rates),
                 f"aspp_rates must be dilations >= 1, got {list(self.aspp_rates)}")


@dataclass(frozen=True)
class InferSegConfig:
    """DeepLab inference: multi-scale + flip logits averaged, then optionally a dense CRF on the softmax
    (SEAM's retraining test: semantic-segmentation-codebase seamv1-pseudovoc; reference §6, §9)."""

    scales: tuple[float, ...]
    flip: bool
    crf: bool
    crf_iterations: int
    gaussian_sxy: float
    gaussian_compat: float
    bilateral_sxy: float
    bilateral_srgb: float
    bilateral_compat: float

    def __post_init__(self):
        _require(len(self.scales) > 0 and all(s > 0 for s in self.scales), f"scales must be positive, got {list(self.scales)}")
        _at_least(self, 1, "crf_iterations")


@dataclass(frozen=True)
class SEAMConfig:
    """SEAM's siamese training (reference §3: train_SEAM.py; the losses in ``wsss.losses``)."""

    rescale: float          # the affine transform A: rescale factor (official 0.3) ...
    flip: bool              # ... and an optional horizontal flip
    cls_weight: float
    er_weight: float
    er_source: Literal["cam", "pcm"]   # ER between raw CAMs (official) or between PCM outputs
    ecr_weight: float
    ohem_ratio: float       # share of ECR errors kept (official 0.2; 1.0 = no OHEM)
    official_detach: bool   # detach PCM inputs, PCM features and ECR targets as the official code
    pcm_classes: Literal["all", "present"]   # the PCM's input: every class (official) or the image's classes
    min_pool_loss: bool     # the official code's extra min-pooling loss (not in the paper)
    min_pool_weight: float
    min_pool_ratio: float

    def __post_init__(self):
        _require(0 < self.rescale <= 4 and (self.rescale != 1 or self.flip),
                 f"rescale must be in (0, 4] and not 1 unless flip is on (A must change the image), got {self.rescale}")
        _require(0 < self.ohem_ratio <= 1, f"ohem_ratio must be in (0, 1], got {self.ohem_ratio}")
        _require(0 < self.min_pool_ratio <= 1, f"min_pool_ratio must be in (0, 1], got {self.min_pool_ratio}")
        _at_least(self, 0, "cls_weight", "er_weight", "ecr_weight", "min_pool_weight")


@dataclass(frozen=True)
class AblationRow:
    """One row of an ablation table: a method's CAMs (or, with ``crf``, its CRF pseudo labels) on train."""

    row: str
    method: str
    crf: bool
    paper: float            # the paper's mIoU (%) on VOC train

@dataclass(frozen=True)
class SCCAMConfig:
    """SC-CAM sub-category clustering rounds (reference §7)."""

    clusters: int
    rounds: int
    subcls_weight: float
    epochs: int

    def __post_init__(self):
        _at_least(self, 2, "clusters")
        _at_least(self, 1, "rounds")


@dataclass(frozen=True)
class DecoupleConfig:
    """Label decoupling into body and detail maps (ldf.md §1)."""

    variant: Literal["code", "paper"]   # code: the released utils.py; paper: body × binary mask
    exact_edt: bool                     # exact Euclidean distance instead of cv2's 5×5 chamfer DIST_L2


SUPERVISIONS = ("body_detail", "body_edge", "saliency_detail", "saliency_edge")


@dataclass(frozen=True)
class LDFConfig:
    """LDF training and testing (ldf.md §2–5); ``supervision`` picks the two branches' targets (Table 5)."""

    backbone: Literal["resnet50", "small", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    weights: str
    width: int
    batch: int
    epochs: int
    fine_epochs: int
    lr: float
    backbone_lr_factor: float
    momentum: float
    weight_decay: float
    train_sizes: tuple[int, ...]
    test_size: int
    two_stage: bool
    supervision: Literal["body_detail", "body_edge", "saliency_detail", "saliency_edge"]

    def __post_init__(self):
        _at_least(self, 1, "width", "batch", "epochs", "fine_epochs")
        _above(self, 0, "lr", "backbone_lr_factor")
        _require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        _require(len(self.train_sizes) > 0 and all(s >= 32 and s % 32 == 0 for s in self.train_sizes),
                 f"train_sizes must be multiples of 32 (the network's output stride), got {list(self.train_sizes)}")
        _require(self.test_size >= 32 and self.test_size % 32 == 0,
                 f"test_size must be a multiple of 32 (the network's output stride), got {self.test_size}")


@dataclass(frozen=True)
class Config:
    """The resolved configuration of one pipeline invocation."""

    profile: Literal["smoke", "lite", "paper"]
    method: str                          # a name under ``methods``: the folder name of its models, CAMs, results
    network: Literal["cam", "seam"]      # what that method trains: CAMNet + soft-margin loss, or SEAM
    seed: int
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
    train_seg: TrainSegConfig
    infer_seg: InferSegConfig
    seam: SEAMConfig
    seam_ablation: tuple[AblationRow, ...]
    sccam: SCCAMConfig
    decouple: DecoupleConfig
    ldf: LDFConfig

    def __post_init__(self):
        if self.infer_cam.source == "pcm" and self.network != "seam":
            raise ValueError(f"infer_cam.source pcm needs network seam, but method {self.method} is network {self.network}")

    @property
    def voc_dataset(self) -> str:
        """Dataset name used in experiment names and result paths."""
        return "synthetic-voc" if self.voc.source == "synthetic" else "voc2012"

    @property
    def sod_dataset(self) -> str:
        return "synthetic-sod" if self.profile == "smoke" else "duts"

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))


def _to_plain(value):
    if isinstance(value, dict):
        return {key: _to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(item) for item in value]
    return value


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
    profile = chosen.get("profile")
    if profile not in PROFILES:
        raise ConfigError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    profiles = chosen.pop("profiles", {}) or {}
    unknown = sorted(set(profiles) - set(PROFILES))
    if unknown:
        raise ConfigError(f"profiles.{unknown[0]}: unknown profile (known: {', '.join(PROFILES)})")
    methods = chosen.pop("methods", None) or {}
    method = chosen.get("method")
    if method not in methods:
        raise ConfigError(f"method: unknown method {method!r} (known: {', '.join(methods) or 'none: add a methods section'})")
    entry = methods[method]
    if not isinstance(entry, dict) or "network" not in entry:
        raise ConfigError(f"methods.{method}: expected a mapping with a network key (cam or seam)")
    resolved = deep_merge(deep_merge(deep_merge(chosen, entry), profiles.get(profile) or {}), override)
    resolved.pop("methods", None)
    if isinstance(resolved.get("voc"), dict) and resolved["voc"].get("source") == "synthetic":
        named = override.get("voc") if isinstance(override.get("voc"), dict) else {}
        kept = {key: named[key] for key in ("root", "sbd_root") if key in named}  # refused below, not ignored
        resolved["voc"] = {**resolved["voc"], "root": SYNTHETIC_VOC_ROOT, "sbd_root": "", **kept}
    cfg = build(Config, resolved, "")
    unknown = [row.method for row in cfg.seam_ablation if row.method not in methods]
    if unknown:
        raise ConfigError(f"seam_ablation: unknown method {unknown[0]!r} (known: {', '.join(methods)})")
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


def build(cls, data: Any, key: str):
    """Build dataclass ``cls`` from ``data``, checking unknown keys, types and ranges."""
    where = key or "the top level"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{_join(key, unknown[0])}: unknown key (known: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        path = _join(key, name)
        if name not in data:
            has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
            if has_default:
                continue
            raise ConfigError(f"{path}: missing key")
        values[name] = _convert(hints[name], data[name], path)
    try:
        return cls(**values)
    except ValueError as error:
        message = str(error)
        raise ConfigError(message if key and message.startswith(key + ".") else _join(key, message)) from None


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _convert(hint, value, path: str):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, path)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(f"{path}: must be one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], item, f"{path}[{i}]") for i, item in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected a list of {len(args)} values, got {len(value)}")
        return tuple(_convert(arg, item, f"{path}[{i}]") for i, (arg, item) in enumerate(zip(args, value)))
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return _convert(arg, value, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: {value!r} does not match {hint}")
    if hint is type(None):
        if value is not None:
            raise ConfigError(f"{path}: expected null, got {value!r}")
        return None
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {hint}")
