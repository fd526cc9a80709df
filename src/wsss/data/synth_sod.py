"""Synthetic salient-object benchmark: a CPU stand-in for DUTS-TR (training) and ECSSD (test).

A scene has one, sometimes two, salient objects with thin parts (legs, antennae, handles,
branches, spikes) on a textured, low-contrast background with less salient distractors
(smaller, lower contrast, some of them thin too). So most of the error sits on boundaries
and thin parts: LDF's "detail" pixels. Each image has its own RNG seeded by
(seed, split, index), so the bytes depend on the seed only, not on the number of workers.
"""

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from wsss.config import SynthSODConfig
from wsss.io import atomic_path, output_dir, read_rgb
from wsss.parallel import parallel_map

SPLITS = (("DUTS-TR", "train.txt", "sod_tr"), ("ECSSD", "test.txt", "sod_te"))
_SS = 4  # supersampling factor used to rasterise shapes with exact-ish pixel coverage


@dataclass
class Scene:
    """One rendered scene: RGB image, 8-bit mask, and id maps of the objects and distractors."""

    image: np.ndarray  # HxWx3 uint8
    mask: np.ndarray  # HxW uint8, 0/255 (partial values only with antialias)
    objects: np.ndarray  # HxW uint8, k = salient object k, 0 elsewhere
    clutter: np.ndarray  # HxW uint8, k = visible part of distractor k, 0 elsewhere


def render(cfg: SynthSODConfig, split: int, index: int) -> Scene:
    """Draw scene ``index`` of ``split`` (0 = train, 1 = test)."""
    rng = np.random.default_rng([cfg.seed, split, index])
    short = round(cfg.size * rng.uniform(cfg.min_aspect, 1.0))
    h, w = (short, cfg.size) if rng.random() < 0.6 else (cfg.size, short)
    image = _background(rng, h, w, cfg)

    clutter = np.zeros((h, w), np.uint8)
    for k in range(1, min(rng.poisson(cfg.clutter), 255) + 1):
        alpha = _rasterise(h, w, _distractor_shapes(rng, h, w, cfg))
        _paint(rng, image, alpha, cfg.clutter_contrast * rng.uniform(0.3, 1.0))
        clutter[alpha >= 0.5] = k

    objects = np.zeros((h, w), np.uint8)
    coverage = np.zeros((h, w), np.float32)
    for k, shapes in enumerate(_object_layout(rng, h, w, cfg), start=1):
        alpha = _rasterise(h, w, shapes)
        _paint(rng, image, alpha, cfg.object_contrast * rng.uniform(0.7, 1.3))
        objects[alpha >= 0.5] = k
        coverage = np.maximum(coverage, alpha)
    clutter[coverage >= 0.5] = 0

    image += cfg.noise * rng.standard_normal(image.shape, dtype=np.float32)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    mask = np.round(coverage * 255) if cfg.antialias else (coverage >= 0.5) * 255
    return Scene(image, mask.astype(np.uint8), objects, clutter)


def generate(out_dir: str | Path, cfg: SynthSODConfig, workers: int = 1, progress: bool = True) -> dict:
    """Write DUTS-TR and ECSSD folders (images, masks, name lists) under ``out_dir``, atomically.

    An existing ``out_dir`` is replaced. Returns counts, seconds, images/s, the mean foreground
    fraction and the fraction of images whose foreground covers more than half the image.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    start = time.perf_counter()
    counts = (cfg.train, cfg.test)
    tasks = []
    with output_dir(out_dir) as root:
        for split, ((folder, listing, prefix), count) in enumerate(zip(SPLITS, counts)):
            names = [f"{prefix}_{i:05d}" for i in range(count)]
            (root / folder / "images").mkdir(parents=True)
            (root / folder / "masks").mkdir()
            (root / folder / listing).write_text("".join(name + "\n" for name in names))
            tasks += [(split, i, name) for i, name in enumerate(names)]
        job = partial(_write_scene, cfg, root)
        foregrounds = parallel_map(job, tasks, workers, "synth_sod", progress, chunksize=16, unit="img",
                                   initializer=_init_worker)
    seconds = time.perf_counter() - start
    foregrounds = np.array(foregrounds)
    return {
        "train": cfg.train,
        "test": cfg.test,
        "size": cfg.size,
        "seconds": round(seconds, 3),
        "images_per_s": round(len(tasks) / seconds, 1),
        "mean_foreground": round(float(foregrounds.mean()), 4),
        "large_fraction": round(float((foregrounds > 0.5).mean()), 4),
    }


def preview_grid(root: str | Path, out_png: str | Path, n: int = 16) -> None:
    """Save a PNG of ``n`` image/mask pairs (half from DUTS-TR, half from ECSSD), four pairs a row."""
    root = Path(root)
    picks = []
    for (folder, listing, _), count in zip(SPLITS, ((n + 1) // 2, n // 2)):
        names = (root / folder / listing).read_text().split()[:count]
        picks += [(root / folder, name) for name in names]
    pairs = []
    for folder, name in picks:
        pairs.append(tuple(Image.fromarray(read_rgb(folder / sub / f"{name}.{ext}"))
                           for sub, ext in (("images", "jpg"), ("masks", "png"))))
    cell = max(max(image.size) for image, _ in pairs)
    cols, gap = 4, 4
    rows = -(-len(pairs) // cols)
    grid = Image.new("RGB", (cols * (2 * cell + 3 * gap), rows * (cell + gap) + gap), (255, 255, 255))
    for i, (image, mask) in enumerate(pairs):
        x = (i % cols) * (2 * cell + 3 * gap) + gap
        y = (i // cols) * (cell + gap) + gap
        dx, dy = (cell - image.width) // 2, (cell - image.height) // 2
        grid.paste(image, (x + dx, y + dy))
        grid.paste(mask, (x + cell + gap + dx, y + dy))
    with atomic_path(out_png) as tmp:
        grid.save(tmp, format="PNG")


def _init_worker():
    """One OpenCV thread per worker process: the pool already uses the cores."""
    cv2.setNumThreads(1)


def _write_scene(cfg: SynthSODConfig, root: Path, task: tuple[int, int, str]) -> float:
    """Render one scene, write its JPEG and PNG; return its foreground fraction."""
    split, index, name = task
    scene = render(cfg, split, index)
    folder = root / SPLITS[split][0]
    Image.fromarray(scene.image).save(folder / "images" / f"{name}.jpg", quality=cfg.jpeg_quality)
    Image.fromarray(scene.mask).save(folder / "masks" / f"{name}.png")
    return float((scene.mask >= 128).mean())


def _smooth_noise(rng, h, w, cells, channels=3):
    """Low-frequency noise in about [-1, 1]: a random ``cells`` x ``cells`` grid upsampled bicubically."""
    grid = rng.uniform(-1, 1, (cells, cells, channels)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, channels)


def _texture(rng, h, w):
    """An HxWx3 pattern in about [-1, 1]: stripes, blotches or grain along a random colour direction."""
    kind = rng.integers(3)
    if kind == 0:
        angle, period = rng.uniform(0, np.pi), rng.uniform(3, 14)
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        pattern = np.sin((x * np.cos(angle) + y * np.sin(angle)) * (2 * np.pi / period))[..., None]
    else:
        cells = rng.integers(10, 20) if kind == 1 else max(h, w) // 2
        pattern = _smooth_noise(rng, h, w, cells, channels=1)
    direction = rng.normal(size=3).astype(np.float32)
    return pattern * (direction / np.linalg.norm(direction))


def _background(rng, h, w, cfg):
    """Float RGB background: a base colour, smooth colour variation and a texture."""
    base = rng.uniform(50, 205, 3).astype(np.float32)
    variation = _smooth_noise(rng, h, w, rng.integers(2, 6))
    return base + cfg.bg_contrast * (0.5 * variation + 0.5 * _texture(rng, h, w))


def _paint(rng, image, alpha, distance):
    """Blend a shape into ``image`` (in place) in a colour about ``distance`` away from its surround."""
    x, y, w, h = cv2.boundingRect((alpha > 0).astype(np.uint8))
    if w == 0:
        return
    y0, y1, x0, x1 = max(y - 3, 0), y + h + 3, max(x - 3, 0), x + w + 3
    alpha, region = alpha[y0:y1, x0:x1], image[y0:y1, x0:x1]
    solid = (alpha >= 0.5).astype(np.uint8)
    ring = (cv2.dilate(solid, np.ones((7, 7), np.uint8)) > solid) if solid.any() else alpha > 0
    surround = region[ring] if ring.any() else region.reshape(-1, 3)  # a shape may cover the whole image
    colour = _colour_at(rng, surround.mean(0), distance)
    h, w = alpha.shape
    fill = colour + 0.15 * distance * (_smooth_noise(rng, h, w, rng.integers(2, 5)) + 0.5 * _texture(rng, h, w))
    region += alpha[..., None] * (fill - region)


def _colour_at(rng, base, distance):
    """The most distant of 16 random colours at ``distance`` from ``base``, clipped to [0, 255]."""
    direction = rng.normal(size=(16, 3))
    candidates = np.clip(base + distance * direction / np.linalg.norm(direction, axis=1, keepdims=True), 0, 255)
    return candidates[np.argmax(np.linalg.norm(candidates - base, axis=1))].astype(np.float32)


def _rasterise(h, w, shapes):
    """Coverage in [0, 1] of filled polygons (width None) and stroked polylines.

    Drawn 4x supersampled over the shapes' bounding box, then block-averaged.
    """
    alpha = np.zeros((h, w), np.float32)
    points = np.concatenate([points for points, _ in shapes])
    margin = max(width or 0 for _, width in shapes) + 1
    x0, y0 = np.clip(np.floor(points.min(0) - margin).astype(int), 0, (w, h))
    x1, y1 = np.clip(np.ceil(points.max(0) + margin).astype(int), 0, (w, h))
    if x1 <= x0 or y1 <= y0:
        return alpha
    canvas = np.zeros(((y1 - y0) * _SS, (x1 - x0) * _SS), np.uint8)
    for points, width in shapes:
        points = np.round((points - (x0, y0)) * _SS).astype(np.int32)
        if width is None:
            cv2.fillPoly(canvas, [points], 255)
        else:
            cv2.polylines(canvas, [points], False, 255, thickness=max(1, round(width * _SS)))
    alpha[y0:y1, x0:x1] = cv2.resize(canvas, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA) / 255
    return alpha


def _object_layout(rng, h, w, cfg):
    """Shapes of the salient objects: one (maybe large) or two side by side."""
    if rng.random() < cfg.two_objects_prob:
        along_x = w >= h
        shapes = []
        for k in range(2):
            x0, x1 = (k * w / 2, (k + 1) * w / 2) if along_x else (0, w)
            y0, y1 = (0, h) if along_x else (k * h / 2, (k + 1) * h / 2)
            shapes.append(_object_in_box(rng, (x0, y0, x1, y1), 0.32, cfg))
        return shapes
    if rng.random() < cfg.large_prob:
        a, b = rng.uniform(0.42, 0.6) * w, rng.uniform(0.42, 0.6) * h
        centre = np.array([w, h]) * (0.5 + rng.uniform(-0.08, 0.08, 2))
        return [_body_and_parts(rng, centre, a, b, cfg, cfg.thin_prob)]
    return [_object_in_box(rng, (0, 0, w, h), 0.3, cfg)]


def _object_in_box(rng, box, max_scale, cfg):
    """An object of radius up to ``max_scale`` x the box's short side, centred in ``box`` (centre-biased)."""
    x0, y0, x1, y1 = box
    radius = rng.uniform(0.4, 1.0) * max_scale * min(x1 - x0, y1 - y0)
    a, b = radius, radius * rng.uniform(0.5, 1.0)
    if rng.random() < 0.5:
        a, b = b, a
    low = np.array([x0 + 0.7 * a, y0 + 0.7 * b])
    high = np.maximum(np.array([x1 - 0.7 * a, y1 - 0.7 * b]), low)
    centre = low + (high - low) * rng.uniform(0, 1, (2, 2)).mean(0)
    return _body_and_parts(rng, centre, a, b, cfg, cfg.thin_prob)


def _distractor_shapes(rng, h, w, cfg):
    """A distractor: a thin curve (twig, grass blade) or a small blob, sometimes with thin parts."""
    short = min(h, w)
    if rng.random() < 0.4:
        start = rng.uniform(0, 1, 2) * (w, h)
        angle, length = rng.uniform(0, 2 * np.pi), short * rng.uniform(0.15, 0.45)
        end = start + length * np.array([np.cos(angle), np.sin(angle)])
        bend = (start + end) / 2 + rng.normal(0, 0.2 * length, 2)
        return [(_curve(start, bend, end), rng.uniform(cfg.thin_width_min, cfg.thin_width_max))]
    radius = short * rng.uniform(0.03, 0.09)
    centre = rng.uniform(0, 1, 2) * (w, h)
    return _body_and_parts(rng, centre, radius, radius * rng.uniform(0.5, 1.0), cfg, 0.3 * cfg.thin_prob)


def _body_and_parts(rng, centre, a, b, cfg, thin_prob):
    """Shapes of a body with half-axes (a, b) at ``centre``, slightly rotated, maybe with thin parts."""
    outline = _body(rng, a, b)
    shapes = [(outline, None)]
    if rng.random() < thin_prob:
        thin = rng.uniform(cfg.thin_width_min, cfg.thin_width_max)
        for kind in rng.choice(list(_PARTS), size=rng.integers(1, 3), replace=False):
            shapes += _PARTS[kind](rng, outline, a, b, thin)
    angle = rng.uniform(-0.5, 0.5)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return [(points @ rotation.T + centre, width) for points, width in shapes]


def _body(rng, a, b, n=64):
    """Closed outline around the origin: a superellipse (ellipse to rounded box) with smooth bumps."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    power = rng.uniform(2, 6)
    radius = 1 + sum(rng.uniform(0, 0.1) * np.cos(k * t + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
    cos, sin = np.cos(t), np.sin(t)
    x = a * np.sign(cos) * np.abs(cos) ** (2 / power)
    y = b * np.sign(sin) * np.abs(sin) ** (2 / power)
    return np.stack([x, y], axis=1) * radius[:, None]


def _at(outline, t):
    """The outline point at parameter angle ``t`` (0 = right, pi/2 = bottom) and its outward direction."""
    point = outline[round(t / (2 * np.pi) * len(outline)) % len(outline)]
    return point, point / np.linalg.norm(point)


def _curve(p0, p1, p2, n=12):
    """A quadratic Bezier curve from ``p0`` to ``p2`` pulled towards ``p1``."""
    s = np.linspace(0, 1, n)[:, None]
    return (1 - s) ** 2 * p0 + 2 * s * (1 - s) * p1 + s**2 * p2


def _circle(centre, radius, n=12):
    """A circle as a polygon."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return centre + radius * np.stack([np.cos(t), np.sin(t)], axis=1)


def _legs(rng, outline, a, b, width):
    """Two to six jointed legs hanging from the underside."""
    count = rng.choice([2, 4, 6])
    shapes = []
    for t in np.linspace(0.2, 0.8, count) * np.pi + rng.normal(0, 0.05, count):
        root, out = _at(outline, t)
        knee = root + out * b * rng.uniform(0.3, 0.7)
        down = np.array([0.3 * out[0], 1.0])
        foot = knee + down / np.linalg.norm(down) * b * rng.uniform(0.4, 0.9)
        shapes.append((np.array([0.8 * root, knee, foot]), width))
    return shapes


def _antennae(rng, outline, a, b, width):
    """Two curved antennae on top, sometimes with a knob at the tip."""
    shapes = []
    knob = rng.random() < 0.5
    for side in (-1, 1):
        root, out = _at(outline, -np.pi / 2 + side * rng.uniform(0.15, 0.5))
        length = b * rng.uniform(0.6, 1.3)
        across = side * np.array([-out[1], out[0]]) * length * rng.uniform(0.1, 0.4)
        tip = root + out * length + across
        shapes.append((_curve(0.8 * root, root + 0.5 * out * length + across, tip), width))
        if knob:
            shapes.append((_circle(tip, width * rng.uniform(1.0, 1.8)), None))
    return shapes


def _handle(rng, outline, a, b, width):
    """A D-shaped loop on one side, like a cup's handle (leaves a background hole)."""
    side = rng.choice([-1, 1])
    rx, ry = a * rng.uniform(0.3, 0.5), b * rng.uniform(0.25, 0.45)
    phi = np.linspace(-np.pi / 2 - 0.4, np.pi / 2 + 0.4, 16)
    loop = np.stack([side * (0.75 * a + rx * np.cos(phi)), ry * np.sin(phi)], axis=1)
    return [(loop, 1.2 * width)]


def _branches(rng, outline, a, b, width):
    """A branching twig growing from the top, thinning towards the tips."""
    root, _ = _at(outline, -np.pi / 2)
    shapes = []
    stack = [(0.8 * root, -np.pi / 2 + rng.normal(0, 0.2), b * rng.uniform(0.4, 0.7), 1.6 * width, rng.integers(2, 4))]
    while stack:
        start, angle, length, size, depth = stack.pop()
        end = start + length * np.array([np.cos(angle), np.sin(angle)])
        shapes.append((np.array([start, end]), size))
        if depth > 0:
            for turn in (-1, 1):
                spread = angle + turn * rng.uniform(0.3, 0.8)
                stack.append((end, spread, length * rng.uniform(0.55, 0.8), max(0.75 * size, width), depth - 1))
    return shapes


def _spikes(rng, outline, a, b, width):
    """Five to eleven thin tapering spikes around the outline."""
    shapes = []
    for t in rng.uniform(0, 2 * np.pi, rng.integers(5, 12)):
        root, out = _at(outline, t)
        across = np.array([-out[1], out[0]]) * width
        tip = root + out * min(a, b) * rng.uniform(0.3, 0.8)
        shapes.append((np.array([0.85 * root + across, 0.85 * root - across, tip]), None))
    return shapes


_PARTS = {"legs": _legs, "antennae": _antennae, "handle": _handle, "branches": _branches, "spikes": _spikes}
