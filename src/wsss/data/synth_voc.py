"""A synthetic PASCAL VOC 2012 stand-in: procedural scenes that are hard for WSSS in VOC's ways.

Every one of the 20 classes is a body whose shape, colour and texture are shared by a *family*
of classes (quadrupeds, vehicles, ...) plus a small class-specific *mark* (a coloured shape,
the discriminative part). A classifier can name the class from the mark alone, so its CAMs
tend to cover only the mark (under-activation). Some classes come with a background *context*
(sky, water, rails, grass) that is as predictive as the object but labelled background
(over-activation). Scenes hold several objects with co-occurring classes, occlusion, scale,
aspect and rotation variety, textured distractor shapes, noise, and a void (255) band along
object boundaries. Each image is drawn from its own RNG seeded by (seed, index), so the bytes
do not depend on the number of workers.

The output is the VOC2012 layout: ``JPEGImages``, ``SegmentationClass``, ``Annotations`` and
``ImageSets/Segmentation/{train,val,train_aug}.txt``. Every object listed in an XML file is
visible in its mask: objects are placed so that each keeps ``min_visible`` of its area and
most of its mark, and placements that would hide more are redrawn (or the object is dropped).
"""

import colorsys
import math
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from wsss.data.classes import IGNORE_INDEX, VOC_CLASSES
from wsss.config import SynthVOCConfig
from wsss.io import atomic_path, output_dir, read_label_png, read_rgb, save_label_png, voc_palette
from wsss.parallel import parallel_map

PLACEMENT_TRIES = 30
MIN_INSIDE = 0.5          # share of an object that must lie inside the image (the rest is truncated)
MIN_MARK_VISIBLE = 0.7    # share of an object's mark that later objects must leave visible


# ----------------------------------------------------------------------------- class appearance

class Part(NamedTuple):
    """A primitive of a body in object coordinates ([-1, 1] spans the object's half sizes)."""

    kind: str  # "ellipse" | "box" (rounded) | "triangle" (apex up)
    cx: float
    cy: float
    rx: float
    ry: float


class Family(NamedTuple):
    """Body shape, colour and texture shared by several classes."""

    aspect: float                   # width / height of the object's box
    parts: tuple[Part, ...]
    anchor: tuple[float, float]     # where the mark sits, in object coordinates
    colour: tuple[int, int, int]
    texture: str


FAMILIES: dict[str, Family] = {
    "quadruped": Family(1.4, (
        Part("ellipse", -0.15, 0.0, 0.7, 0.42), Part("ellipse", 0.62, -0.42, 0.38, 0.55),
        *(Part("box", x, 0.62, 0.08, 0.36) for x in (-0.6, -0.35, 0.1, 0.3)),
    ), anchor=(0.62, -0.42), colour=(150, 105, 65), texture="spots"),
    "vehicle": Family(1.7, (
        Part("box", 0.0, 0.0, 0.95, 0.5), Part("box", 0.05, -0.7, 0.5, 0.25),
        Part("ellipse", -0.55, 0.62, 0.2, 0.34), Part("ellipse", 0.55, 0.62, 0.2, 0.34),
    ), anchor=(0.45, 0.0), colour=(120, 125, 140), texture="stripes"),
    "spindle": Family(2.0, (
        Part("ellipse", 0.0, 0.1, 1.0, 0.55), Part("triangle", -0.15, -0.55, 0.35, 0.42),
        Part("triangle", -0.8, -0.45, 0.15, 0.4),
    ), anchor=(0.4, 0.1), colour=(205, 205, 200), texture="shaded"),
    "upright": Family(0.5, (
        Part("box", 0.0, 0.3, 0.75, 0.68), Part("ellipse", 0.0, -0.62, 0.6, 0.34),
        Part("box", -0.85, 0.2, 0.12, 0.45), Part("box", 0.85, 0.2, 0.12, 0.45),
    ), anchor=(0.0, -0.62), colour=(150, 90, 120), texture="checker"),
    "furniture": Family(1.3, (
        Part("box", 0.0, -0.45, 1.0, 0.5), Part("box", -0.8, 0.5, 0.1, 0.45),
        Part("box", 0.8, 0.5, 0.1, 0.45), Part("box", 0.0, 0.3, 0.85, 0.08),
    ), anchor=(0.0, -0.45), colour=(95, 70, 45), texture="grain"),
}
CLASS_FAMILY: dict[str, str] = {
    **dict.fromkeys(("cat", "cow", "dog", "horse", "sheep"), "quadruped"),
    **dict.fromkeys(("bicycle", "bus", "car", "motorbike", "train"), "vehicle"),
    **dict.fromkeys(("aeroplane", "bird", "boat"), "spindle"),
    **dict.fromkeys(("person", "bottle", "pottedplant"), "upright"),
    **dict.fromkeys(("chair", "diningtable", "sofa", "tvmonitor"), "furniture"),
}
TEXTURES = ("spots", "stripes", "shaded", "checker", "grain")

# The mark of class i (1..20) is shape (i-1) % 5 in colour (i-1) // 5: unique per class.
MARK_SHAPES = ("disc", "square", "plus", "ring", "triangle")
MARK_COLOURS = ((230, 25, 25), (245, 215, 0), (25, 70, 235), (225, 0, 210))
MARKS: dict[int, tuple[str, tuple[int, int, int]]] = {
    c: (MARK_SHAPES[(c - 1) % 5], MARK_COLOURS[(c - 1) // 5]) for c in range(1, len(VOC_CLASSES))
}
# The body colour of class c when its body is not drawn in the family look.
CLASS_COLOURS: dict[int, tuple[int, int, int]] = {
    c: tuple(round(255 * x) for x in colorsys.hsv_to_rgb((c - 1) / 20, 0.6, 0.75)) for c in range(1, len(VOC_CLASSES))
}

CONTEXTS: dict[str, tuple[str, ...]] = {
    "sky": ("aeroplane", "bird"),
    "water": ("boat",),
    "rails": ("train",),
    "grass": ("cow", "horse", "sheep"),
}
CLASS_CONTEXT: dict[int, str] = {VOC_CLASSES.index(n): kind for kind, names in CONTEXTS.items() for n in names}

COMPANIONS: dict[str, tuple[str, ...]] = {
    "aeroplane": ("aeroplane", "person", "car"), "bicycle": ("person", "car", "bicycle"),
    "bird": ("bird", "boat"), "boat": ("boat", "person", "bird"), "bottle": ("bottle", "diningtable", "person", "chair"),
    "bus": ("car", "person", "bus"), "car": ("car", "person", "bus", "motorbike", "bicycle"),
    "cat": ("dog", "sofa", "chair"), "chair": ("chair", "diningtable", "sofa", "pottedplant", "tvmonitor", "person"),
    "cow": ("cow", "sheep", "horse", "person"), "diningtable": ("chair", "bottle", "person", "pottedplant"),
    "dog": ("person", "cat", "sofa"), "horse": ("person", "horse", "cow"), "motorbike": ("person", "car"),
    "person": ("person", "bicycle", "motorbike", "horse", "chair", "sofa", "diningtable", "dog", "boat", "bottle"),
    "pottedplant": ("chair", "sofa", "tvmonitor"), "sheep": ("sheep", "cow", "person"),
    "sofa": ("chair", "tvmonitor", "person", "pottedplant", "cat", "dog"), "train": ("person",),
    "tvmonitor": ("chair", "sofa", "pottedplant", "diningtable"),
}
_COMPANION_IDS = {VOC_CLASSES.index(c): [VOC_CLASSES.index(n) for n in names] for c, names in COMPANIONS.items()}
_CLASS_PRIOR = np.array([4.0 if name == "person" else 1.0 for name in VOC_CLASSES[1:]])
_CLASS_PRIOR /= _CLASS_PRIOR.sum()


# ----------------------------------------------------------------------------- drawing

@dataclass
class SynthObject:
    """One drawn object: its class, VOC bounding box of its visible pixels (1-based) and truncation."""

    label: int
    bbox: tuple[int, int, int, int]  # xmin, ymin, xmax, ymax
    truncated: bool


@dataclass
class Sample:
    """One rendered scene before encoding."""

    image: np.ndarray          # HxWx3 uint8
    labels: np.ndarray         # HxW uint8: 0 background, 1..20 classes, 255 void
    marks: np.ndarray          # HxW uint8: the class whose visible mark covers a pixel, else 0
    objects: list[SynthObject]
    context: str | None        # the background context drawn, if any


Slices = tuple[tuple[slice, slice], tuple[slice, slice]]  # (image rows, cols), (grid rows, cols)


@dataclass
class _Shape:
    """An object or distractor drawn on a square pixel grid whose top-left corner is (top, left)."""

    top: int
    left: int
    mask: np.ndarray           # bool, the whole object (parts and mark)
    mark: np.ndarray           # bool, the mark
    u: np.ndarray              # object-frame x of each grid pixel, px
    v: np.ndarray              # object-frame y, px
    center: tuple[float, float]
    radius: float


def _interp_matrix(n: int, cells: int) -> np.ndarray:
    """n x cells matrix that linearly interpolates ``cells`` values to n positions."""
    position = np.linspace(0, cells - 1, n)
    lower = np.minimum(np.floor(position).astype(int), cells - 2)
    frac = position - lower
    matrix = np.zeros((n, cells), np.float32)
    matrix[np.arange(n), lower] = 1 - frac
    matrix[np.arange(n), lower + 1] = frac
    return matrix


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise (std about 1): a cells x cells random grid, bilinearly upsampled."""
    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    return _interp_matrix(height, cells) @ grid @ _interp_matrix(width, cells).T


def _random_colour(rng: np.random.Generator, max_saturation: float, value: tuple[float, float]) -> np.ndarray:
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, max_saturation), rng.uniform(*value))
    return 255 * np.array(rgb, np.float32)


def _texture(kind: str, u: np.ndarray, v: np.ndarray, scale: float, phase: float) -> np.ndarray:
    """A texture in [-1, 1] over object-frame coordinates (px); ``scale`` is size / 128."""
    u, v = u / scale, v / scale
    if kind == "spots":
        return np.where(np.sin(u / 1.7 + phase) * np.sin(v / 1.5 + 2 * phase) > 0.4, -1.0, 0.0)
    if kind == "stripes":
        return np.sin(1.3 * v + phase)
    if kind == "shaded":
        return np.sin(0.15 * v + phase)
    if kind == "checker":
        return np.sign(np.sin(0.8 * u + phase) * np.sin(0.8 * v + phase))
    return np.sin(1.6 * u + 1.5 * np.sin(0.25 * v + phase))  # grain


def _part_mask(part: Part, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    du, dv = (u - part.cx) / part.rx, (v - part.cy) / part.ry
    if part.kind == "ellipse":
        return du * du + dv * dv <= 1
    if part.kind == "box":  # |du|^6 + |dv|^6 <= 1, without the slow float power
        du2, dv2 = du * du, dv * dv
        return du2 * du2 * du2 + dv2 * dv2 * dv2 <= 1
    return (np.abs(dv) <= 1) & (2 * np.abs(du) <= dv + 1)  # triangle, apex at dv = -1


def _mark_mask(shape: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A mark shape over coordinates in units of the mark radius."""
    ax, ay, r2 = np.abs(x), np.abs(y), x * x + y * y
    if shape == "disc":
        return r2 <= 1
    if shape == "square":
        return np.maximum(ax, ay) <= 0.85
    if shape == "plus":
        return (np.minimum(ax, ay) <= 0.33) & (np.maximum(ax, ay) <= 1)
    if shape == "ring":
        return (r2 <= 1) & (r2 >= 0.3)
    return (ay <= 0.9) & (2 * ax <= y + 0.9)  # triangle


def _frame(center: tuple[float, float], reach: float, angle: float, flip: bool) -> tuple[int, int, np.ndarray, np.ndarray]:
    """The pixel grid within ``reach`` of ``center`` and its object-frame coordinates (px)."""
    cy, cx = center
    top, left = math.floor(cy - reach), math.floor(cx - reach)
    n = math.ceil(2 * reach) + 1
    dy = np.arange(top, top + n, dtype=np.float32)[:, None] + 0.5 - cy
    dx = np.arange(left, left + n, dtype=np.float32)[None, :] + 0.5 - cx
    cos, sin = math.cos(angle), math.sin(angle)
    u, v = cos * dx + sin * dy, cos * dy - sin * dx
    return top, left, (-u if flip else u), v


def _draw_shape(parts: tuple[Part, ...], center: tuple[float, float], half: tuple[float, float], angle: float,
                flip: bool, mark: tuple[str, tuple[float, float], float] | None) -> _Shape:
    """Rasterise parts (and an optional mark: shape, anchor, radius) of an object with half sizes (a, b)."""
    a, b = half
    mark_radius = mark[2] if mark else 0.0
    top, left, u, v = _frame(center, math.hypot(a, b) + mark_radius + 1, angle, flip)
    mask = np.zeros(u.shape, bool)
    for part in parts:
        mask |= _part_mask(part, u / a, v / b)
    mark_pixels = np.zeros(u.shape, bool)
    if mark:
        shape, (anchor_u, anchor_v), radius = mark
        mark_pixels = _mark_mask(shape, (u - anchor_u * a) / radius, (v - anchor_v * b) / radius)
        mask |= mark_pixels
    return _Shape(top, left, mask, mark_pixels, u, v, center, math.sqrt(a * b))


def _clip(shape: _Shape, height: int, width: int) -> Slices | None:
    """(image slices, grid slices) of the part of the shape's grid inside the image, None if outside."""
    n = shape.mask.shape[0]
    y0, x0 = max(shape.top, 0), max(shape.left, 0)
    y1, x1 = min(shape.top + n, height), min(shape.left + n, width)
    if y0 >= y1 or x0 >= x1:
        return None
    image_slices = (slice(y0, y1), slice(x0, x1))
    grid_slices = (slice(y0 - shape.top, y1 - shape.top), slice(x0 - shape.left, x1 - shape.left))
    return image_slices, grid_slices


def _paint(image: np.ndarray, shape: _Shape, where: np.ndarray, slices: Slices, colour: np.ndarray,
           texture: str, amplitude: float, scale: float, phase: float) -> None:
    """Fill ``where`` (grid pixels, already clipped by ``slices``) with a textured colour."""
    image_slices, grid_slices = slices
    u, v = shape.u[grid_slices][where], shape.v[grid_slices][where]
    shade = amplitude * _texture(texture, u, v, scale, phase) - 10 * v / max(shape.radius, 1)
    image[image_slices][where] = colour + shade[:, None]


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A low-saturation gradient with low-frequency blotches."""
    top, bottom = _random_colour(rng, 0.2, (0.3, 0.85)), _random_colour(rng, 0.2, (0.3, 0.85))
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (math.cos(angle) * xs / width + math.sin(angle) * ys / height + 1) / 2
    image = top + (bottom - top) * ramp[..., None]
    return image + 15 * _smooth_noise(rng, height, width, 6)[..., None]


def _draw_context(rng: np.random.Generator, image: np.ndarray, kind: str) -> float:
    """Draw a background context; return its border row (sky: horizon; others: top of the ground band)."""
    height, width = image.shape[:2]
    scale = max(height, width) / 128
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "sky":
        horizon = rng.uniform(0.55, 0.8) * height
        t = np.clip(ys / horizon, 0, 1)[..., None]
        sky = np.array([100, 150, 225], np.float32) * (1 - t) + np.array([185, 210, 240], np.float32) * t
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0.1, 0.7) * horizon, rng.uniform(0, width)
            ry, rx = rng.uniform(0.04, 0.1) * height, rng.uniform(0.1, 0.25) * width
            cloud = np.clip(1.5 - ((ys - cy) / ry) ** 2 - ((xs - cx) / rx) ** 2, 0, 1)[..., None]
            sky = sky * (1 - cloud) + 242 * cloud
        rows = slice(0, math.ceil(horizon))
        image[rows] = sky[rows]
        return horizon
    ground = rng.uniform(0.55, 0.75) * height
    rows = slice(math.floor(ground), height)
    y, x = ys[rows], xs[rows]
    if kind == "water":
        waves = np.sin(2 * math.pi * y / (4 * scale) + 1.2 * np.sin(x / (7 * scale) + rng.uniform(0, 6)))
        band = np.array([30, 80, 140], np.float32) + 22 * waves[..., None]
    elif kind == "grass":
        blades = rng.uniform(-1, 1, width).astype(np.float32)[None, :]
        sway = 0.5 + 0.5 * np.sin(y / (3 * scale) + 3 * blades)
        band = np.array([60, 130, 50], np.float32) + (30 * blades * sway)[..., None]
    else:  # rails: ballast, sleepers, two rails
        band = np.array([125, 115, 100], np.float32) + rng.uniform(-25, 25, y.shape + (1,)).astype(np.float32)
        near, far = ground + 0.7 * (height - ground), ground + 0.3 * (height - ground)
        sleepers = ((x + rng.uniform(0, 9)) % (9 * scale) < 3 * scale) & (y > far - 3 * scale) & (y < near + 3 * scale)
        band[sleepers] = (80, 55, 35)
        band[(np.abs(y - near) < scale) | (np.abs(y - far) < scale)] = (195, 195, 205)
    image[rows] = band
    return ground


def _draw_clutter(rng: np.random.Generator, image: np.ndarray, cfg: SynthVOCConfig) -> None:
    """Textured distractor shapes (single primitives, no mark) in the background."""
    height, width = image.shape[:2]
    long_side = max(height, width)
    for _ in range(rng.integers(0, cfg.clutter + 1)):
        kind = ("ellipse", "box", "triangle")[rng.integers(3)]
        half = (rng.uniform(0.04, 0.18) * long_side, rng.uniform(0.02, 0.18) * long_side)
        center = (rng.uniform(0, height), rng.uniform(0, width))
        shape = _draw_shape((Part(kind, 0, 0, 1, 1),), center, half, rng.uniform(0, math.pi), False, None)
        slices = _clip(shape, height, width)
        if slices is None:
            continue
        where = shape.mask[slices[1]]
        colour = _random_colour(rng, 0.25, (0.25, 0.9))
        _paint(image, shape, where, slices, colour, TEXTURES[rng.integers(len(TEXTURES))],
               rng.uniform(5, 30), long_side / 128, rng.uniform(0, 6))


def _sample_classes(rng: np.random.Generator, cfg: SynthVOCConfig) -> list[int]:
    """1..max_objects classes (fewer more likely); further ones often companions of earlier ones."""
    count_weights = 0.55 ** np.arange(cfg.max_objects)
    count = 1 + rng.choice(cfg.max_objects, p=count_weights / count_weights.sum())
    classes = [1 + int(rng.choice(len(_CLASS_PRIOR), p=_CLASS_PRIOR))]
    while len(classes) < count:
        if rng.random() < cfg.cooccurrence:
            companions = _COMPANION_IDS[classes[rng.integers(len(classes))]]
            classes.append(companions[rng.integers(len(companions))])
        else:
            classes.append(1 + int(rng.choice(len(_CLASS_PRIOR), p=_CLASS_PRIOR)))
    return classes


def _sample_object(rng: np.random.Generator, label: int, height: int, width: int, cfg: SynthVOCConfig,
                   placed: list[_Shape], context: tuple[str, float] | None) -> _Shape:
    """Draw a class's object at a random pose; on its context if the scene has it, else maybe over an earlier one."""
    family = FAMILIES[CLASS_FAMILY[VOC_CLASSES[label]]]
    long_half = rng.uniform(cfg.min_scale, cfg.max_scale) * max(height, width) / 2
    aspect = family.aspect * math.exp(rng.uniform(-0.25, 0.25))
    a, b = (long_half, long_half / aspect) if aspect >= 1 else (long_half * aspect, long_half)
    angle = math.radians(rng.uniform(-cfg.rotation, cfg.rotation))
    flip = bool(rng.random() < 0.5)
    if placed and rng.random() < cfg.occlusion:
        other = placed[rng.integers(len(placed))]
        distance = rng.uniform(0.3, 0.9) * (other.radius + math.sqrt(a * b))
        direction = rng.uniform(0, 2 * math.pi)
        cy, cx = other.center[0] + distance * math.sin(direction), other.center[1] + distance * math.cos(direction)
    else:
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    if context and CLASS_CONTEXT.get(label) == context[0]:
        kind, border = context
        if kind == "sky":
            cy = rng.uniform(0.15, 0.85) * border
        else:  # stand on the ground band
            cy = border + rng.uniform(0.2, 0.8) * (height - border) - 0.85 * b
    mark_shape, _ = MARKS[label]
    mark = (mark_shape, family.anchor, cfg.mark_size * min(a, b))
    return _draw_shape(family.parts, (cy, cx), (a, b), angle, flip, mark)


def _paint_object(rng: np.random.Generator, image: np.ndarray, shape: _Shape, slices: Slices, label: int,
                  cfg: SynthVOCConfig) -> None:
    """Paint a body in its family's look (or, with 1 - discriminative_part, its class colour) and its mark."""
    family = FAMILIES[CLASS_FAMILY[VOC_CLASSES[label]]]
    body = family.colour if rng.random() < cfg.discriminative_part else CLASS_COLOURS[label]
    colour = np.array(body, np.float32) + rng.normal(0, 10, 3).astype(np.float32) + rng.uniform(-20, 20)
    image_slices, grid_slices = slices
    _paint(image, shape, shape.mask[grid_slices], slices, colour, family.texture, 25, cfg.size / 128, rng.uniform(0, 6))
    image[image_slices][shape.mark[grid_slices]] = MARKS[label][1]


class _Scene:
    """The objects placed so far: which one owns each pixel and each mark pixel, and their areas."""

    def __init__(self, height: int, width: int) -> None:
        self.instances = np.zeros((height, width), np.int32)   # 0 background, k the k-th object
        self.mark_owner = np.zeros((height, width), np.int32)  # k where object k's mark is visible
        self.labels, self.areas, self.mark_areas = [0], [0], [0]
        self.shapes: list[_Shape] = []
        self.truncated: list[bool] = []

    def fits(self, shape: _Shape, min_visible: float) -> Slices | None:
        """The shape's slices if it lies mostly (its mark wholly) inside the image and leaves every
        earlier object ``min_visible`` of its area and ``MIN_MARK_VISIBLE`` of its mark; else None."""
        slices = _clip(shape, *self.instances.shape)
        if slices is None:
            return None
        image_slices, grid_slices = slices
        mask, mark = shape.mask[grid_slices], shape.mark[grid_slices]
        if mask.sum() < MIN_INSIDE * shape.mask.sum() or mark.sum() < shape.mark.sum():
            return None
        n = len(self.labels)
        visible = np.bincount(self.instances.ravel(), minlength=n) - np.bincount(self.instances[image_slices][mask], minlength=n)
        marks = np.bincount(self.mark_owner.ravel(), minlength=n) - np.bincount(self.mark_owner[image_slices][mask], minlength=n)
        if (visible < min_visible * np.array(self.areas)).any() or (marks < MIN_MARK_VISIBLE * np.array(self.mark_areas)).any():
            return None
        return slices

    def add(self, shape: _Shape, slices: Slices, label: int) -> None:
        image_slices, grid_slices = slices
        mask, mark = shape.mask[grid_slices], shape.mark[grid_slices]
        k = len(self.labels)
        self.instances[image_slices][mask] = k
        self.mark_owner[image_slices][mask] = 0
        self.mark_owner[image_slices][mark] = k
        self.labels.append(label)
        self.areas.append(int(mask.sum()))
        self.mark_areas.append(int(mark.sum()))
        self.shapes.append(shape)
        self.truncated.append(bool(mask.sum() < shape.mask.sum()))

    def objects(self) -> list[SynthObject]:
        objects = []
        for k, (label, truncated) in enumerate(zip(self.labels[1:], self.truncated), start=1):
            ys, xs = np.nonzero(self.instances == k)
            bbox = (int(xs.min()) + 1, int(ys.min()) + 1, int(xs.max()) + 1, int(ys.max()) + 1)
            objects.append(SynthObject(label, bbox, truncated))
        return objects


def render(cfg: SynthVOCConfig, index: int) -> Sample:
    """Render image ``index`` of the dataset (deterministic in (cfg, index))."""
    rng = np.random.default_rng([cfg.seed, index])
    short_side = round(cfg.size * rng.uniform(0.75, 1.0))
    height, width = (short_side, cfg.size) if rng.random() < 0.7 else (cfg.size, short_side)

    classes = _sample_classes(rng, cfg)
    context_kind = next((CLASS_CONTEXT[c] for c in classes if c in CLASS_CONTEXT), None)
    if context_kind is not None and rng.random() >= cfg.context:
        context_kind = None
    image = _background(rng, height, width)
    context = (context_kind, _draw_context(rng, image, context_kind)) if context_kind else None
    _draw_clutter(rng, image, cfg)
    classes.sort(key=lambda c: CLASS_CONTEXT.get(c) != context_kind)  # objects on the context go behind

    scene = _Scene(height, width)
    for label in classes:
        for _ in range(PLACEMENT_TRIES):
            shape = _sample_object(rng, label, height, width, cfg, scene.shapes, context)
            slices = scene.fits(shape, cfg.min_visible)
            if slices is not None:
                _paint_object(rng, image, shape, slices, label, cfg)
                scene.add(shape, slices, label)
                break

    if cfg.noise:
        image += rng.normal(0, cfg.noise, image.shape).astype(np.float32)
    class_of = np.array(scene.labels, np.uint8)
    labels = class_of[scene.instances]
    if cfg.void_width:
        window = cfg.void_width + 1
        band = ndimage.maximum_filter(scene.instances, window) != ndimage.minimum_filter(scene.instances, window)
        labels[band] = IGNORE_INDEX
    image = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    return Sample(image, labels, class_of[scene.mark_owner], scene.objects(), context_kind)


# ----------------------------------------------------------------------------- writing

def image_id(index: int) -> str:
    """The VOC-style id of image ``index`` (0-based)."""
    return f"2026_{index + 1:06d}"


def annotation_xml(name: str, sample: Sample) -> str:
    """The VOC XML annotation of a sample."""
    height, width = sample.labels.shape
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2012"
    ET.SubElement(root, "filename").text = f"{name}.jpg"
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "wsss synthetic VOC"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "1"
    for obj in sample.objects:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = VOC_CLASSES[obj.label]
        ET.SubElement(node, "pose").text = "Unspecified"
        ET.SubElement(node, "truncated").text = str(int(obj.truncated))
        ET.SubElement(node, "difficult").text = "0"
        box = ET.SubElement(node, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), obj.bbox):
            ET.SubElement(box, tag).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _write_sample(root: Path, cfg: SynthVOCConfig, index: int) -> tuple[int, ...]:
    """Render and write one image, its mask and its XML; return the class of each object."""
    name = image_id(index)
    sample = render(cfg, index)
    Image.fromarray(sample.image).save(root / "JPEGImages" / f"{name}.jpg", quality=cfg.jpeg_quality,
                                       subsampling=2, optimize=False)
    save_label_png(root / "SegmentationClass" / f"{name}.png", sample.labels)
    (root / "Annotations" / f"{name}.xml").write_text(annotation_xml(name, sample))
    return tuple(obj.label for obj in sample.objects)


def generate(out_dir: str | Path, cfg: SynthVOCConfig, workers: int = 1, progress: bool = True) -> dict:
    """Write the dataset to ``out_dir`` atomically; return counts and throughput."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    total = cfg.train_aug + cfg.val
    ids = [image_id(i) for i in range(total)]
    splits = {"train": ids[:cfg.train], "val": ids[cfg.train_aug:], "train_aug": ids[:cfg.train_aug]}
    start = time.perf_counter()
    with output_dir(out_dir) as root:
        for folder in ("JPEGImages", "SegmentationClass", "Annotations", "ImageSets/Segmentation"):
            (root / folder).mkdir(parents=True)
        write = partial(_write_sample, root, cfg)
        object_labels = parallel_map(write, range(total), workers, "synth_voc", progress, chunksize=16, unit="img")
        for split, split_ids in splits.items():
            (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in split_ids))
    seconds = time.perf_counter() - start
    images_per_class = {name: sum(c in labels for labels in object_labels) for c, name in enumerate(VOC_CLASSES) if c}
    return {
        "images": total, **{split: len(split_ids) for split, split_ids in splits.items()},
        "objects": sum(len(labels) for labels in object_labels),
        "images_per_class": images_per_class,
        "seconds": round(seconds, 3), "images_per_second": round(total / seconds, 1),
    }


def preview_grid(root: str | Path, out_png: str | Path, n: int = 16) -> None:
    """Save a grid of the first ``n`` train_aug images, each beside its colour mask and class names."""
    root = Path(root)
    ids = (root / "ImageSets" / "Segmentation" / "train_aug.txt").read_text().split()[:n]
    palette = voc_palette()
    tile, caption, gap, per_row = 128, 12, 4, 4
    rows = math.ceil(len(ids) / per_row)
    grid = Image.new("RGB", (per_row * (2 * tile + gap) + gap, rows * (tile + caption + gap) + gap), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for k, name in enumerate(ids):
        labels = read_label_png(root / "SegmentationClass" / f"{name}.png")
        pair = [Image.fromarray(read_rgb(root / "JPEGImages" / f"{name}.jpg")), Image.fromarray(palette[labels])]
        x = gap + (k % per_row) * (2 * tile + gap)
        y = gap + (k // per_row) * (tile + caption + gap)
        for i, picture in enumerate(pair):
            picture.thumbnail((tile, tile), Image.NEAREST)
            grid.paste(picture, (x + i * tile, y))
        names = [VOC_CLASSES[c] for c in np.unique(labels) if 0 < c < IGNORE_INDEX]
        draw.text((x, y + tile), " ".join(names), fill=(0, 0, 0))
    with atomic_path(out_png) as tmp:
        grid.save(tmp, format="PNG")
