"""File I/O shared by every stage: atomic writes and label PNGs read with PIL."""

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from wsss.data.classes import voc_palette

_PALETTE = voc_palette().reshape(-1).tolist()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only if the block succeeds.

    Works for files and directories: nothing half-written ever sits under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_json(path: str | Path, data) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path):
    """A JSON file's content; a missing or malformed file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the stage that writes it first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def read_id_list(path: str | Path) -> list[str]:
    """Ids of a list file: one bare id per line, or psa-style lines ``/JPEGImages/x.jpg /SegmentationClassAug/x.png``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: id list not found")
    ids = [Path(line.split()[0]).stem for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"{path}: id list is empty")
    return ids


def save_label_png(path: str | Path, labels: np.ndarray) -> None:
    """Save an HxW uint8 label map as a VOC palette PNG (mode P)."""
    image = Image.fromarray(np.asarray(labels, dtype=np.uint8), mode="P")
    image.putpalette(_PALETTE)
    image.save(path, optimize=False)


def read_label_png(path: str | Path) -> np.ndarray:
    """Read a label PNG as class indices (PIL, never OpenCV: palette colours are not indices)."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise ValueError(f"{path}: label PNG has mode {image.mode}; expected a palette or 8-bit grey PNG of class indices")
            return np.asarray(image, dtype=np.uint8)
    except (OSError, SyntaxError) as error:
        raise ValueError(f"{path}: cannot read label PNG ({error})") from error
