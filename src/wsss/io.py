"""File I/O shared by every stage: safe, atomic outputs, and every image read (PIL) or label PNG written.

Every output goes through :func:`atomic_path` (a file) or :func:`output_dir` (a folder): it is written under
a hidden sibling name and renamed onto its final name only when complete, so nothing half-written ever sits
under a final name. An output may replace only the previous version of itself: never the current folder or
one above it, never a folder where a file goes, never a folder that a stage did not write (folder outputs
carry the marker file ``.wsss-output``). The hidden names are fixed per output, so a rerun after a kill
removes what the killed run left; :func:`output_dir` with a ``resume_key`` keeps the files a killed run
completed and the rerun writes only the rest.

Images are read here only (:func:`read_rgb`, :func:`read_grey`, :func:`read_grey_uint8`, :func:`read_label_png`,
:func:`check_image`): a missing file or one that does not decode is a :class:`~wsss.errors.DatasetError` whose
message starts with the file's path.
"""

import fcntl
import json
import os
import shutil
import struct
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from wsss.errors import DatasetError, OutputError

OUTPUT_MARK = ".wsss-output"   # in every folder a stage wrote: what may be replaced by a rerun
RESUME_KEY = ".resume-key"     # in a partial folder: what it was written for


def check_output_path(path: str | Path) -> Path:
    """``path`` if an output may be written there; else an :class:`OutputError` that says why."""
    path = Path(path)
    real, cwd = os.path.realpath(path), os.path.realpath(os.getcwd())
    if path.name in ("", ".", "..") or real == cwd or cwd.startswith(real.rstrip(os.sep) + os.sep):
        raise OutputError(f"{str(path)!r} is not an output path: it names the current folder or one above it; "
                          "give the name of the file or folder to write")
    for ancestor in path.absolute().parents:   # nearest first: above an existing folder every ancestor is one
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OutputError(f"{path}: cannot write here, {ancestor} is a file, not a folder")
            break
    return path


def check_not_an_input(outputs: dict[str, Path], inputs: dict[str, Path]) -> None:
    """Refuse an output that is one of the inputs or holds one (replacing it would delete the input)."""
    for out_name, out in outputs.items():
        out = Path(os.path.abspath(out))
        for in_name, given in inputs.items():
            source = Path(os.path.abspath(given))
            if source == out or out in source.parents:
                raise OutputError(f"--{out_name} {outputs[out_name]} would replace the input --{in_name} {given}: "
                                  "write the output somewhere else")


def _temp_name(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}")


def check_output_file(path: str | Path) -> Path:
    """``path`` if a file may be written there (:func:`check_output_path`, and not an existing folder)."""
    path = check_output_path(path)
    if path.is_dir() and not path.is_symlink():
        raise OutputError(f"{path} is a folder; refusing to replace it with a file (remove it or choose another name)")
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield the hidden temporary name of the file ``path``; rename it onto ``path`` only if the block succeeds."""
    path = check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # the suffix kept: writers infer the format from it
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replaceable_dir(path: Path) -> bool:
    """True when ``path`` may be replaced by a folder output: absent, an empty folder, or a stage's folder."""
    if path.is_symlink() or not path.exists():
        return not path.exists()
    return path.is_dir() and ((path / OUTPUT_MARK).is_file() or not any(path.iterdir()))


@contextmanager
def output_dir(path: str | Path, resume_key: str | None = None) -> Iterator[Path]:
    """Yield a hidden folder to fill; it replaces the folder ``path`` only if the block succeeds.

    Without ``resume_key`` the folder starts empty. With one, the folder a killed or interrupted run
    (Ctrl-C) left under the same key is kept, so the caller can skip the files already complete (write
    each file with :func:`atomic_path`); an error in the block removes it. Two runs cannot fill the same
    output at once.
    """
    path = check_output_path(path)
    if not replaceable_dir(path):
        what = "a file" if path.is_file() or path.is_symlink() else "a folder that no wsss stage wrote"
        raise OutputError(f"{path} is {what}; refusing to replace it (remove it yourself, or choose another name)")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = _temp_name(path, "partial")
    lock_file = _temp_name(path, "lock")
    with open(lock_file, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"{path}: another process is writing this output now") from None
        try:
            _reuse_or_reset(partial, resume_key)
            try:
                yield partial
            except KeyboardInterrupt:
                raise
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
            (partial / RESUME_KEY).unlink(missing_ok=True)
            (partial / OUTPUT_MARK).touch()
            _replace_dir(partial, path)
        finally:
            lock_file.unlink(missing_ok=True)


def _reuse_or_reset(partial: Path, resume_key: str | None) -> None:
    """Keep ``partial`` if it was left under ``resume_key`` (minus temporary files), else start it empty."""
    key_file = partial / RESUME_KEY
    if resume_key is not None and key_file.is_file() and key_file.read_text() == resume_key:
        for leftover in partial.rglob(".*.tmp*"):
            if leftover.is_file():
                leftover.unlink()
        return
    if partial.is_dir() and not partial.is_symlink():
        shutil.rmtree(partial)
    else:
        partial.unlink(missing_ok=True)
    partial.mkdir()
    if resume_key is not None:
        key_file.write_text(resume_key)


def _replace_dir(new: Path, path: Path) -> None:
    """Move the folder ``new`` onto ``path``, the previous version out of the way first."""
    old = _temp_name(path, "old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(new, path)
    shutil.rmtree(old, ignore_errors=True)


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


def voc_palette() -> np.ndarray:
    """The 256×3 uint8 palette of VOC's SegmentationClass PNGs (bit-interleaved label colours)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label in range(256):
        value, r, g, b = label, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[label] = (r, g, b)
    return palette


_PALETTE = voc_palette().reshape(-1).tolist()


def save_label_png(path: str | Path, labels: np.ndarray) -> None:
    """Save an HxW uint8 label map as a VOC palette PNG (mode P)."""
    image = Image.fromarray(np.asarray(labels, dtype=np.uint8), mode="P")
    image.putpalette(_PALETTE)
    image.save(path, optimize=False)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def unfiltered_png(data: bytes) -> np.ndarray | None:
    """The HxW uint8 values of an 8-bit palette (indices) or grey, non-interlaced PNG whose rows all use filter
    type 0, decoded with zlib alone; None for any other content (another format or depth, filtered rows, a
    truncated or corrupt stream), which a full decoder must then read."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    position, compressed, shape = len(PNG_SIGNATURE), [], None
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        body = data[position + 8:position + 8 + length]
        if len(body) != length:
            return None
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (0, 3) or interlace:
                return None
            shape = (height, width)
        elif kind == b"IDAT":
            compressed.append(body)
        elif kind == b"IEND":
            break
        position += 12 + length
    if shape is None or not compressed:
        return None
    try:
        raw = zlib.decompress(b"".join(compressed))
    except zlib.error:
        return None
    height, width = shape
    if len(raw) != height * (width + 1):
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(height, width + 1)
    if rows[:, 0].any():   # a row with a filter (Sub, Up, Average, Paeth) needs the full decoder
        return None
    return np.ascontiguousarray(rows[:, 1:])


@contextmanager
def _open_image(path: str | Path, kind: str, unreadable: str) -> Iterator[Image.Image]:
    """The PIL image of ``path``, decoded in the block; a missing file (``<path>: <kind> missing``) or one that
    does not decode (``<path>: <unreadable> (<why>)``) is a :class:`DatasetError`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: {kind} missing")
    try:
        with Image.open(path) as image:
            yield image
    except DatasetError:
        raise
    except (OSError, SyntaxError, ValueError) as error:  # PIL: truncated, not an image, unsupported conversion
        raise DatasetError(f"{path}: {unreadable} ({error})") from error


def check_image(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image that decodes completely (a file truncated after its header is an error)."""
    with _open_image(path, "image", "unreadable image") as image:
        image.load()
        return image.size


def read_rgb(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB pixels of an image file (a writable copy)."""
    with _open_image(path, "image", "unreadable image") as image:
        return np.array(image.convert("RGB"))


def read_grey(path: str | Path) -> np.ndarray:
    """A grey image on the 0..255 scale: uint8 for 8-bit, 1-bit, palette and colour files (PIL's conversion),
    float64 for 16-bit files (``value · 255 / 65535``, every level kept). Float images are refused."""
    with _open_image(path, "image", "cannot read image") as image:
        if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
            values = np.asarray(image)
            if values.min() < 0 or values.max() > 65535:
                raise DatasetError(f"{path}: cannot read image ({image.mode} values {values.min()}..{values.max()} "
                                   "are not 16-bit)")
            return values.astype(np.float64) * (255 / 65535)
        if image.mode == "F":
            raise DatasetError(f"{path}: cannot read image (a 32-bit float image; save maps as 8- or 16-bit PNGs)")
        return np.asarray(image if image.mode == "L" else image.convert("L"))


def read_grey_uint8(path: str | Path) -> np.ndarray:
    """HxW uint8 grey mask on the 0..255 scale (:func:`read_grey`: 1-bit PNGs become 0/255, 16-bit ones are
    rescaled and rounded, not clipped)."""
    grey = read_grey(path)
    return grey if grey.dtype == np.uint8 else np.rint(grey).astype(np.uint8)


def read_label_png(path: str | Path) -> np.ndarray:
    """Read a label PNG as class indices (never OpenCV: palette colours are not indices).

    The PNGs of VOC, SBD and this project's writers (8-bit palette or grey, every row unfiltered) are decoded by
    zlib alone (:func:`unfiltered_png`, half PIL's time); every other PNG, and any file that does not parse as
    one, goes through PIL, which names what is wrong.
    """
    try:
        labels = unfiltered_png(Path(path).read_bytes())
    except OSError:
        labels = None
    if labels is not None:
        return labels
    with _open_image(path, "label PNG", "cannot read label PNG") as image:
        if image.mode not in ("P", "L"):
            raise DatasetError(f"{path}: label PNG has mode {image.mode}; "
                               "expected a palette or 8-bit grey PNG of class indices")
        return np.asarray(image, dtype=np.uint8)
