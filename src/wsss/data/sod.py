"""Salient object detection folders (DUTS-TR for training; ECSSD, PASCAL-S, DUTS-TE, HKU-IS, DUT-OMRON,
THUR15K for testing; SOD for both): image/mask pairs, validation, prepare.

A dataset is ``<root>/<NAME>/`` with images in one of ``images/``, ``image/``, ``Imgs/``, ``<NAME>-Image/`` and
masks (.png) in ``masks/``, ``mask/``, ``GT/``, ``<NAME>-Mask/``, in any letter case (the DUTS zips unpack to
``DUTS-TR/DUTS-TR-Image`` and ``DUTS-TR-Mask``). The pairs are the names of an optional ``train.txt``/``test.txt``
(LDF's ``data/<NAME>/`` layout, weijun88/LDF@d49ff02:train-fine/dataset.py:98-110), otherwise every mask. LDF keeps
DUTS-TR and DUTS-TE in one ``data/DUTS/`` folder told apart by those lists; that folder is used when
``DUTS-TR``/``DUTS-TE`` are absent. A set named both in ``sod.train_sets`` and in ``sod.test_sets`` needs both
lists: ``SOD`` (Movahedi & Elder's masks of the 300 BSDS300 photos) is ``SOD/{images,masks}/`` with BSDS300's own
split as ``train.txt`` (200 ids) and ``test.txt`` (100 ids). Every image must be in the orientation of its mask
(some public copies of BSDS300 store portrait photos rotated to landscape; rotate those back).
"""

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

from wsss.data.download import RESOURCES, download
from wsss.data.voc import raise_if_errors
from wsss.errors import DatasetError
from wsss.io import atomic_path, check_image, read_grey_uint8, write_json
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
    "SOD": ("the BSDS300 photos from BSDS300-images.tgz of "
            "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/ (its iids_train.txt and iids_test.txt "
            "are train.txt and test.txt, one id a line) and the masks of the SOD benchmark of Movahedi & Elder from "
            "https://elderlab.yorku.ca/resources/salient-objects-dataset-sod/ (one 0/255 .png per photo, in the "
            "photo's orientation)"),
}
IMAGE_DIRS = ("images", "image", "Imgs", "{name}-Image")
MASK_DIRS = ("masks", "mask", "GT", "{name}-Mask")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
_LDF_SHARED = {"DUTS-TR": "DUTS", "DUTS-TE": "DUTS"}


def sod_help(root: str | Path, names: Iterable[str] = ()) -> str:
    """Where to get the SOD datasets ``names`` (default: every known one) and where to put them, for error messages."""
    names = list(dict.fromkeys(names))
    name = names[0] if len(names) == 1 else "<NAME>"
    sources = {n: SOD_SOURCES.get(n, "its authors' page") for n in names} or SOD_SOURCES
    return (
        f"Put {name if len(names) == 1 else 'each SOD dataset'} in {Path(root) / name}/ with its images in one of "
        f"{[d.format(name=name) for d in IMAGE_DIRS]}, its .png masks in one of "
        f"{[d.format(name=name) for d in MASK_DIRS]} and, where one folder holds a training and a test set, "
        "train.txt and test.txt (one name a line). Get "
        + "; ".join(f"{n} from {source}" for n, source in sources.items())
        + ". `wsss data prepare-sod --download` (or sod.download: true) fetches DUTS-TR and DUTS-TE only, when "
        "online; the other sets have no stable address to check a download against.")


def _missing(root: Path, name: str, what: str) -> DatasetError:
    return DatasetError(f"{what}. {sod_help(root, [name])}")


def _first_dir(folder: Path, candidates: Iterable[str], name: str) -> Path | None:
    """The first candidate sub-folder present, ignoring case (HKU-IS ships ``imgs/`` and ``gt/``)."""
    present = {p.name.lower(): p for p in sorted(folder.iterdir()) if p.is_dir()}
    for candidate in candidates:
        if candidate.format(name=name).lower() in present:
            return present[candidate.format(name=name).lower()]
    return None


def find_sod_dirs(root: str | Path, name: str, list_file: str) -> tuple[Path, Path, Path | None]:
    """(image dir, mask dir, ``list_file`` or None where absent) of dataset ``name`` under ``root``."""
    root = Path(os.path.abspath(root))
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
    """None if image and mask decode completely, are of one size and the mask marks an object, else the problem."""
    _, image, mask = pair
    try:
        image_size = check_image(image)
        values = read_grey_uint8(mask)
    except DatasetError as error:
        return str(error)
    mask_size = values.shape[::-1]
    if image_size != mask_size:
        return f"{mask}: mask is {mask_size[0]}x{mask_size[1]} but its image {image} is {image_size[0]}x{image_size[1]}"
    if not values.any():
        return f"{mask}: mask is empty (all 0), no salient object marked"
    return None


def read_list_names(path: str | Path) -> list[str]:
    """The names of a dataset's ``train.txt``/``test.txt``: the first word of each non-blank line."""
    names = [line.split()[0] for line in Path(path).read_text().splitlines() if line.strip()]
    if not names:
        raise DatasetError(f"{path}: list is empty")
    return names


def list_sod_pairs(root: str | Path, name: str, list_file: str | None = None, workers: int = 1,
                   progress: bool = False, require_list: bool = False) -> list[tuple[str, Path, Path]]:
    """Checked (name, image, mask) triples of dataset ``name``, in list order or sorted by name.

    ``list_file`` defaults to train.txt for the training sets and test.txt otherwise; without it,
    every mask is a sample and every image must have a mask (``require_list``: its absence is an error).
    """
    root = Path(os.path.abspath(root))
    list_file = list_file or ("train.txt" if name in SOD_TRAIN_SETS else "test.txt")
    image_dir, mask_dir, lst = find_sod_dirs(root, name, list_file)
    if lst is None and require_list:
        raise _missing(root, name, f"{image_dir.parent / list_file}: list missing ({name} is a training and a test "
                                   "set, its lists tell the two apart)")
    images: dict[str, Path] = {}
    errors = []
    for path in sorted(image_dir.iterdir()):
        if path.suffix.lower() in IMAGE_EXTS:
            if path.stem in images:
                errors.append(f"{path}: two images named {path.stem} ({images[path.stem].name})")
            images[path.stem] = path
    masks = {p.stem: p for p in sorted(mask_dir.glob("*.png"))}
    if lst is not None:
        names = read_list_names(lst)
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
    """(name, image, mask) triples of a ``<role>/<NAME>.txt`` written by prepare_sod (paths relative to root)."""
    root = Path(root)
    pairs = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            image, mask = line.split("\t")
            pairs.append((Path(mask).stem, root / image, root / mask))
    return pairs


def prepared_pairs(prepared: str | Path, name: str, role: str) -> list[tuple[str, Path, Path]]:
    """(name, image, mask) of set ``name`` in ``role`` (train or test) from a ``prepare_sod`` folder
    (``<role>/<NAME>.txt`` + ``dataset.json``)."""
    prepared = Path(prepared)
    summary, listing = prepared / "dataset.json", prepared / role / f"{name}.txt"
    if not summary.is_file():
        raise DatasetError(f"{summary}: missing; run `wsss data prepare-sod --out {prepared}` first")
    if not listing.is_file():
        raise DatasetError(f"{listing}: no such prepared SOD set (is {name} in sod.{role}_sets?)")
    return read_sod_list(listing, json.loads(summary.read_text())["root"])


def prepare_sod(root: str | Path, train_sets: Iterable[str], test_sets: Iterable[str], out_dir: str | Path,
                workers: int = 1, progress: bool = True) -> dict:
    """Validate SOD datasets and write ``<role>/<NAME>.txt`` (``image<TAB>mask`` relative to root, role train
    or test) and ``dataset.json``. A set may have both roles (SOD: its train.txt and its test.txt).

    Files are written atomically, ``dataset.json`` last. Returns the content of ``dataset.json``.
    """
    given_root, root = str(root), Path(os.path.abspath(root))
    roles = {"train": list(dict.fromkeys(train_sets)), "test": list(dict.fromkeys(test_sets))}
    if not any(roles.values()):
        raise ValueError("prepare_sod needs at least one training or test set")
    both = set(roles["train"]) & set(roles["test"])
    found = {(role, n): list_sod_pairs(root, n, f"{role}.txt", workers, progress, require_list=n in both)
             for role, names in roles.items() for n in names}
    digest = hashlib.sha256()
    out_dir = Path(out_dir)
    sets: dict[str, dict] = {role: {} for role in roles}
    for (role, n), pairs in found.items():
        lines = [f"{i.relative_to(root).as_posix()}\t{m.relative_to(root).as_posix()}" for _, i, m in pairs]
        text = "\n".join(lines) + "\n"
        digest.update(f"{role}/{n}\n{text}".encode())
        with atomic_path(out_dir / role / f"{n}.txt") as tmp:
            tmp.write_text(text)
        sets[role][n] = {"count": len(pairs), "image_dir": pairs[0][1].parent.relative_to(root).as_posix(),
                         "mask_dir": pairs[0][2].parent.relative_to(root).as_posix()}
    summary = {"root": given_root, "sets": sets, "content_hash": "sha256:" + digest.hexdigest()}
    write_json(out_dir / "dataset.json", summary)
    return summary


def download_duts(dest_dir: str | Path, progress: bool = True) -> Path:
    """Fetch DUTS-TR and DUTS-TE into ``dest_dir`` (the SOD root); return it."""
    for resource in ("duts-tr", "duts-te"):
        download(resource, dest_dir, progress)
    return Path(dest_dir)
