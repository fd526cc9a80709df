"""Salient object detection folders (DUTS-TR for training; ECSSD, PASCAL-S, DUTS-TE, HKU-IS, DUT-OMRON,
THUR15K for testing): image/mask pairs, validation, prepare.

A dataset is ``<root>/<NAME>/`` with images in one of ``images/``, ``image/``, ``Imgs/``,
``<NAME>-Image/`` and masks (.png) in ``masks/``, ``mask/``, ``GT/``, ``<NAME>-Mask/``, in any letter case
(the DUTS zips unpack to ``DUTS-TR/DUTS-TR-Image`` and ``DUTS-TR-Mask``). The pairs are the names of an optional
``train.txt``/``test.txt`` (LDF's ``data/<NAME>/`` layout, ``train-*/dataset.py``), otherwise every
mask. LDF keeps DUTS-TR and DUTS-TE in one ``data/DUTS/`` folder told apart by those lists; that
folder is used when ``DUTS-TR``/``DUTS-TE`` are absent.
"""

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

from wsss.data.download import RESOURCES, download
from wsss.data.voc import raise_if_errors
from wsss.errors import DatasetError
from wsss.io import atomic_path, check_image, write_json
from wsss.parallel import parallel_map

SOD_TRAIN_SETS = ("DUTS-TR",)
SOD_TEST_SETS = ("ECSSD", "PASCAL-S", "DUTS-TE", "HKU-IS", "DUT-OMRON", "THUR15K")
SOD_SOURCES = {
    "DUTS-TR": RESOURCES["duts-tr"].url,
    "DUTS-TE": RESOURCES["duts-te"].url,
    "ECSSD": "http://www.cse.cuhk.edu.hk/leojia/projects/hsaliency/dataset.html",
    "PASCAL-S": "http://cbi.gatech.edu/salobj/",
    "HKU-IS": "https://i.cs.hku.hk/~gbli/deep_saliency.html",
    "DUT-OMRON": "http://saliencydetection.net/dut-omron/",
    "THUR15K": "https://mmcheng.net/code-data/ (THUR15000)",
}
IMAGE_DIRS = ("images", "image", "Imgs", "{name}-Image")
MASK_DIRS = ("masks", "mask", "GT", "{name}-Mask")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
_LDF_SHARED = {"DUTS-TR": "DUTS", "DUTS-TE": "DUTS"}


def sod_help(root: str | Path, name: str = "<NAME>") -> str:
    """Where to get the SOD datasets and where to put them, for error messages."""
    sources = SOD_SOURCES if name == "<NAME>" else {name: SOD_SOURCES.get(name, "its authors' page")}
    return (
        f"Put {'each SOD dataset' if name == '<NAME>' else name} in {Path(root) / name}/ with its images in one of "
        f"{[d.format(name=name) for d in IMAGE_DIRS]} and its .png masks in one of "
        f"{[d.format(name=name) for d in MASK_DIRS]}. Get "
        + "; ".join(f"{n} from {source}" for n, source in sources.items())
        + ". `wsss data prepare-sod --download` (or sod.download: true) fetches DUTS-TR and DUTS-TE when online.")


def _missing(root: Path, name: str, what: str) -> DatasetError:
    return DatasetError(f"{what}. {sod_help(root, name)}")


def _first_dir(folder: Path, candidates: Iterable[str], name: str) -> Path | None:
    """The first candidate sub-folder present, ignoring case (HKU-IS ships ``imgs/`` and ``gt/``)."""
    present = {p.name.lower(): p for p in sorted(folder.iterdir()) if p.is_dir()}
    for candidate in candidates:
        if candidate.format(name=name).lower() in present:
            return present[candidate.format(name=name).lower()]
    return None


def find_sod_dirs(root: str | Path, name: str, list_file: str | None = None) -> tuple[Path, Path, Path | None]:
    """(image dir, mask dir, list file or None) of dataset ``name`` under ``root``."""
    root = Path(os.path.abspath(root))
    list_file = list_file or ("train.txt" if name in SOD_TRAIN_SETS else "test.txt")
    folder = root / name
    if not folder.is_dir() and name in _LDF_SHARED and (root / _LDF_SHARED[name] / list_file).is_file():
        folder = root / _LDF_SHARED[name]
    if not folder.is_dir():
        raise _missing(root, name, f"{folder}: SOD dataset folder missing")
    image_dir, mask_dir = _first_dir(folder, IMAGE_DIRS, name), _first_dir(folder, MASK_DIRS, name)
    if image_dir is None or mask_dir is None:
        kind = "image" if image_dir is None else "mask"
        raise _missing(root, name, f"{folder}: no {kind} folder")
    lst = folder / list_file
    return image_dir, mask_dir, lst if lst.is_file() else None


def _check_pair(pair: tuple[str, Path, Path]) -> str | None:
    """None if image and mask decode completely and are of one size, else the problem."""
    _, image, mask = pair
    try:
        image_size = check_image(image)
        mask_size = check_image(mask)
    except DatasetError as error:
        return str(error)
    if image_size != mask_size:
        return f"{mask}: mask is {mask_size[0]}x{mask_size[1]} but its image {image} is {image_size[0]}x{image_size[1]}"
    return None


def list_sod_pairs(root: str | Path, name: str, list_file: str | None = None, workers: int = 1,
                   progress: bool = False) -> list[tuple[str, Path, Path]]:
    """Checked (name, image, mask) triples of dataset ``name``, in list order or sorted by name.

    ``list_file`` defaults to train.txt for the training sets and test.txt otherwise; without it,
    every mask is a sample and every image must have a mask.
    """
    root = Path(os.path.abspath(root))
    image_dir, mask_dir, lst = find_sod_dirs(root, name, list_file)
    images: dict[str, Path] = {}
    errors = []
    for path in sorted(image_dir.iterdir()):
        if path.suffix.lower() in IMAGE_EXTS:
            if path.stem in images:
                errors.append(f"{path}: two images named {path.stem} ({images[path.stem].name})")
            images[path.stem] = path
    masks = {p.stem: p for p in sorted(mask_dir.glob("*.png"))}
    if lst is not None:
        names = [line.split()[0] for line in lst.read_text().splitlines() if line.strip()]
        if not names:
            raise DatasetError(f"{lst}: list is empty")
        errors += [f"{mask_dir / n}.png: mask of {n} (listed in {lst}) missing" for n in names if n not in masks]
    else:
        names = sorted(masks)
        if not names and not images:
            raise _missing(root, name, f"{image_dir} and {mask_dir}: empty")
        errors += [f"{images[n]}: image without mask in {mask_dir}" for n in sorted(images) if n not in masks]
    errors += [f"{image_dir / n}.*: image of {n} missing (mask {masks[n]})" for n in names
               if n not in images and n in masks]
    pairs = [(n, images[n], masks[n]) for n in names if n in images and n in masks]
    if not errors:
        checks = parallel_map(_check_pair, pairs, workers, f"checking {name}", progress, chunksize=32)
        errors = [error for error in checks if error]
    raise_if_errors(errors, f"SOD dataset {name} ({root})")
    return pairs


def read_sod_list(path: str | Path, root: str | Path) -> list[tuple[str, Path, Path]]:
    """(name, image, mask) triples of a ``<NAME>.txt`` written by prepare_sod (paths relative to root)."""
    root = Path(root)
    pairs = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            image, mask = line.split("\t")
            pairs.append((Path(mask).stem, root / image, root / mask))
    return pairs


def prepared_pairs(prepared: str | Path, name: str) -> list[tuple[str, Path, Path]]:
    """(name, image, mask) of set ``name`` from a ``prepare_sod`` folder (``<NAME>.txt`` + ``dataset.json``)."""
    prepared = Path(prepared)
    summary, listing = prepared / "dataset.json", prepared / f"{name}.txt"
    if not summary.is_file():
        raise DatasetError(f"{summary}: missing; run `wsss data prepare-sod --out {prepared}` first")
    if not listing.is_file():
        raise DatasetError(f"{listing}: no such prepared SOD set (is {name} in sod.train_sets or sod.test_sets?)")
    return read_sod_list(listing, json.loads(summary.read_text())["root"])


def prepare_sod(root: str | Path, train_sets: Iterable[str], test_sets: Iterable[str], out_dir: str | Path,
                workers: int = 1, progress: bool = True) -> dict:
    """Validate SOD datasets and write ``<NAME>.txt`` (``image<TAB>mask`` relative to root) and ``dataset.json``.

    Files are written atomically, ``dataset.json`` last. Returns the content of ``dataset.json``.
    """
    given_root, root = str(root), Path(os.path.abspath(root))
    roles = {**{n: "train" for n in train_sets}, **{n: "test" for n in test_sets}}
    if not roles:
        raise ValueError("prepare_sod needs at least one training or test set")
    found = {n: list_sod_pairs(root, n, "train.txt" if role == "train" else "test.txt", workers, progress)
             for n, role in roles.items()}
    digest = hashlib.sha256()
    out_dir = Path(out_dir)
    sets = {}
    for n, pairs in found.items():
        lines = [f"{i.relative_to(root).as_posix()}\t{m.relative_to(root).as_posix()}" for _, i, m in pairs]
        text = "\n".join(lines) + "\n"
        digest.update(f"{n}\n{text}".encode())
        with atomic_path(out_dir / f"{n}.txt") as tmp:
            tmp.write_text(text)
        sets[n] = {"role": roles[n], "count": len(pairs), "image_dir": pairs[0][1].parent.relative_to(root).as_posix(),
                   "mask_dir": pairs[0][2].parent.relative_to(root).as_posix()}
    summary = {"root": given_root, "sets": sets, "content_hash": "sha256:" + digest.hexdigest()}
    write_json(out_dir / "dataset.json", summary)
    return summary


def download_duts(dest_dir: str | Path, progress: bool = True) -> Path:
    """Fetch DUTS-TR and DUTS-TE into ``dest_dir`` (the SOD root); return it."""
    for resource in ("duts-tr", "duts-te"):
        download(resource, dest_dir, progress)
    return Path(dest_dir)
