"""PASCAL VOC 2012 (+ SBD train_aug): split lists, masks, image-level labels, validation, prepare.

Conventions of the official WSSS code:
* list files hold bare ids or psa-style lines ``/JPEGImages/x.jpg /SegmentationClassAug/x.png``
  (jiwoon-ahn/psa@9493e59:voc12/data.py:49-54);
* image-level labels are 20-dim float32 multi-hot vectors without background, built from every
  ``<name>`` tag of ``Annotations/<id>.xml`` that is a class name, difficult objects included
  (jiwoon-ahn/psa@9493e59:voc12/make_cls_labels.py and ``load_image_label_from_xml``, voc12/data.py:21-34);
* ``cls_labels.npy`` is a pickled dict id -> float32[20], keyed by id strings (psa, SEAM,
  SC-CAM) or by integer ids 2007000032 <-> "2007_000032" (jiwoon-ahn/irn@a2ece00:voc12/dataloader.py:26-28);
* train_aug = (SBD train ∪ SBD val ∪ VOC train) − VOC val, 10,582 ids, with VOC's own masks
  taking precedence over SBD's in ``SegmentationClassAug/``.
"""

import hashlib
import os
import pickle
import shutil
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable

import numpy as np
import scipy.io
from PIL import Image
from scipy.io.matlab import MatReadError

from wsss.data.classes import IGNORE_INDEX, NUM_VOC_CLASSES, VOC_CLASSES
from wsss.data.download import RESOURCES, download
from wsss.errors import DatasetError
from wsss.io import atomic_path, check_image, output_dir, read_id_list, read_label_png, save_label_png, write_json
from wsss.parallel import parallel_map

MASK_DIRS = ("SegmentationClassAug", "SegmentationClass")
SPLIT_DIR = Path("ImageSets") / "Segmentation"
NUM_FG_CLASSES = NUM_VOC_CLASSES - 1
_CLASS_INDEX = {name: k for k, name in enumerate(VOC_CLASSES[1:])}
_MAX_LISTED_ERRORS = 20


def voc_help(root: str | Path) -> str:
    """Where to get VOC2012 and SBD, and where to put them, for error messages."""
    return (
        f"Expected the PASCAL VOC 2012 layout in {root}: JPEGImages/, SegmentationClass/ or "
        "SegmentationClassAug/, Annotations/, ImageSets/Segmentation/. Get the VOC2012 trainval tar "
        f"({RESOURCES['voc2012'].url}) and unpack it so that this folder is its VOCdevkit/VOC2012; "
        f"for train_aug also get SBD's benchmark.tgz ({RESOURCES['sbd'].url}), unpack it and set voc.sbd_root "
        "to its benchmark_RELEASE/dataset (converted by wsss.data.voc.convert_sbd and build_train_aug). "
        "When online, `wsss data prepare-voc --download` (or voc.download: true; wsss.data.voc.download_voc) "
        "fetches and unpacks both."
    )


def check_voc_root(root: str | Path) -> Path:
    """Return ``root`` as an absolute path, or raise if it lacks the VOC folders."""
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise DatasetError(f"VOC2012 root {root} does not exist. {voc_help(root)}")
    for folder in ("JPEGImages", SPLIT_DIR):
        if not (root / folder).is_dir():
            raise DatasetError(f"{root / folder}: folder missing. {voc_help(root)}")
    return root


def read_split(root: str | Path, split: str) -> list[str]:
    """Ids of ``ImageSets/Segmentation/<split>.txt``."""
    path = Path(root) / SPLIT_DIR / f"{split}.txt"
    if not path.is_file():
        hint = ("build it from SBD with wsss.data.voc.build_train_aug" if split == "train_aug"
                else "it comes with the VOC2012 trainval tar")
        raise DatasetError(f"{path}: split list not found ({hint}). {voc_help(root)}")
    return read_id_list(path)


def image_path(root: str | Path, image_id: str) -> Path:
    return Path(root) / "JPEGImages" / f"{image_id}.jpg"


def find_mask(root: str | Path, image_id: str, mask_dirs: Iterable[str] = MASK_DIRS) -> Path | None:
    """The first existing ``<mask_dir>/<id>.png`` in order of preference, or None."""
    for folder in mask_dirs:
        path = Path(root) / folder / f"{image_id}.png"
        if path.is_file():
            return path
    return None


def check_mask(mask: np.ndarray, path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Raise unless ``mask`` has values in 0..20 and 255 (and ``size`` = (width, height) if given).

    Returns the 256-bin histogram of the mask.
    """
    if size is not None and (mask.shape[1], mask.shape[0]) != tuple(size):
        raise DatasetError(
            f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is {size[0]}x{size[1]}")
    counts = _histogram(mask)
    bad = [v for v in np.flatnonzero(counts).tolist() if v >= NUM_VOC_CLASSES and v != IGNORE_INDEX]
    if bad:
        raise DatasetError(
            f"{path}: label values {bad} outside 0..{NUM_VOC_CLASSES - 1} and {IGNORE_INDEX}")
    return counts


def load_mask(root: str | Path, image_id: str, mask_dirs: Iterable[str] = MASK_DIRS) -> np.ndarray:
    """HxW uint8 class indices of ``id``, from the first of ``mask_dirs`` that has it, checked."""
    mask_dirs = tuple(mask_dirs)
    path = find_mask(root, image_id, mask_dirs)
    if path is None:
        tried = [str(Path(root) / folder / f"{image_id}.png") for folder in mask_dirs]
        raise DatasetError(f"no mask for {image_id}: none of {tried}")
    mask = read_label_png(path)
    check_mask(mask, path)
    return mask


def labels_from_mask(mask: np.ndarray) -> np.ndarray:
    """float32[20] multi-hot: the foreground classes with at least one pixel in ``mask``."""
    return _present(_histogram(mask))


def _histogram(mask: np.ndarray) -> np.ndarray:
    """Pixel count of each value 0..255 (PIL's histogram: several times faster than np.bincount)."""
    return np.asarray(Image.fromarray(np.asarray(mask, np.uint8)).histogram())


def _present(counts: np.ndarray) -> np.ndarray:
    return (counts[1:NUM_VOC_CLASSES] > 0).astype(np.float32)


def labels_from_xml(path: str | Path) -> np.ndarray:
    """float32[20] multi-hot from every ``<name>`` tag that is a VOC class (jiwoon-ahn/psa@9493e59:voc12/data.py:21-34)."""
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError) as error:
        raise DatasetError(f"{path}: unreadable annotation XML ({error})") from error
    labels = np.zeros(NUM_FG_CLASSES, np.float32)
    for element in tree.getroot().iter("name"):
        index = _CLASS_INDEX.get((element.text or "").strip())
        if index is not None:
            labels[index] = 1.0
    return labels


def image_labels(root: str | Path, image_id: str, mask_dirs: Iterable[str] = MASK_DIRS) -> np.ndarray:
    """Labels of one image from its XML, or from its mask (with a warning) when the XML is missing."""
    xml = Path(root) / "Annotations" / f"{image_id}.xml"
    if xml.is_file():
        return labels_from_xml(xml)
    warnings.warn(f"{xml} missing: image-level labels of {image_id} derived from its mask", stacklevel=2)
    return labels_from_mask(load_mask(root, image_id, mask_dirs))


def encode_int_id(image_id: str) -> int:
    """irn's integer id: "2007_000032" -> 2007000032."""
    if len(image_id) != 11 or image_id[4] != "_" or not image_id.replace("_", "").isdigit():
        raise ValueError(f"id {image_id!r} is not of the VOC form YYYY_NNNNNN; it has no integer key")
    return int(image_id.replace("_", ""))


def decode_int_id(number: int) -> str:
    """The id string of an irn integer id: 2007000032 -> "2007_000032"."""
    text = str(int(number))
    return f"{text[:4]}_{text[4:]}"


def load_cls_labels(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``cls_labels.npy`` (string or integer keys) as {id string: float32[20]}."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=True).item()  # a pickle: load only files you trust
    except (OSError, ValueError, EOFError, pickle.UnpicklingError) as error:
        raise DatasetError(f"{path}: cannot read a cls_labels dict ({error})") from error
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: holds a {type(data).__name__}, expected a dict id -> float32[20]")
    labels = {}
    for key, value in data.items():
        image_id = key if isinstance(key, str) else decode_int_id(key)
        value = np.asarray(value, dtype=np.float32)
        if value.shape != (NUM_FG_CLASSES,):
            raise DatasetError(f"{path}: label of {image_id} has shape {value.shape}, expected ({NUM_FG_CLASSES},)")
        labels[image_id] = value
    return labels


def save_cls_labels(path: str | Path, labels: dict[str, np.ndarray], int_keys: bool = False) -> None:
    """Write {id: float32[20]} as ``cls_labels.npy``, atomically; ``int_keys`` for irn's format."""
    data = {(encode_int_id(k) if int_keys else k): np.asarray(v, np.float32) for k, v in labels.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.save(file, data, allow_pickle=True)


def _convert_sbd_one(task: tuple[Path, Path]) -> None:
    mat_path, png_path = task
    try:
        mask = scipy.io.loadmat(mat_path)["GTcls"]["Segmentation"][0, 0]
    except (OSError, ValueError, KeyError, IndexError, MatReadError) as error:
        raise DatasetError(f"{mat_path}: not an SBD cls .mat with GTcls.Segmentation ({error})") from error
    check_mask(mask.astype(np.uint8), mat_path)
    save_label_png(png_path, mask)


def _sbd_dataset_dir(sbd_dir: str | Path) -> Path:
    """SBD's ``dataset/`` folder (with cls/, train.txt, val.txt), given it or benchmark_RELEASE/."""
    sbd_dir = Path(sbd_dir)
    if (sbd_dir / "dataset" / "cls").is_dir():
        sbd_dir = sbd_dir / "dataset"
    if not (sbd_dir / "cls").is_dir():
        raise DatasetError(
            f"{sbd_dir / 'cls'}: SBD folder missing. Get benchmark.tgz ({RESOURCES['sbd'].url}), unpack it "
            "and pass its benchmark_RELEASE/dataset folder; when online, wsss.data.voc.download_voc fetches it.")
    return sbd_dir


def convert_sbd(sbd_dir: str | Path, voc_root: str | Path, workers: int = 1, progress: bool = True) -> int:
    """Build ``SegmentationClassAug/`` from SBD's ``cls/*.mat`` and VOC's ``SegmentationClass/``.

    SBD masks (``GTcls.Segmentation``) become palette PNGs; VOC's own masks (with their 255
    boundaries) are copied over them, as in the SegmentationClassAug that psa/SEAM/irn use.
    The folder is written atomically; returns the number of masks in it.
    """
    sbd_dir = _sbd_dataset_dir(sbd_dir)
    voc_root = check_voc_root(voc_root)
    voc_masks = {p.stem: p for p in (voc_root / "SegmentationClass").glob("*.png")}
    with output_dir(voc_root / "SegmentationClassAug") as out:
        tasks = [(mat, out / f"{mat.stem}.png") for mat in sorted((sbd_dir / "cls").glob("*.mat"))
                 if mat.stem not in voc_masks]
        parallel_map(_convert_sbd_one, tasks, workers, "SBD .mat -> png", progress, chunksize=32)
        for stem, path in voc_masks.items():
            shutil.copyfile(path, out / f"{stem}.png")
        return len(tasks) + len(voc_masks)


def build_train_aug(voc_root: str | Path, sbd_dir: str | Path) -> list[str]:
    """Write ``ImageSets/Segmentation/train_aug.txt`` = (SBD train ∪ SBD val ∪ VOC train) − VOC val."""
    sbd_dir = _sbd_dataset_dir(sbd_dir)
    voc_root = check_voc_root(voc_root)
    ids = set(read_id_list(sbd_dir / "train.txt")) | set(read_id_list(sbd_dir / "val.txt"))
    ids = sorted((ids | set(read_split(voc_root, "train"))) - set(read_split(voc_root, "val")))
    with atomic_path(voc_root / SPLIT_DIR / "train_aug.txt") as tmp:
        tmp.write_text("\n".join(ids) + "\n")
    return ids


def download_voc(dest_dir: str | Path, sbd: bool = True, workers: int = 1, progress: bool = True) -> Path:
    """Fetch VOC2012 trainval (and SBD: masks converted, train_aug.txt written); return the VOC2012 root."""
    voc_root = download("voc2012", dest_dir, progress)
    if sbd:
        sbd_dir = download("sbd", dest_dir, progress)
        if not (voc_root / SPLIT_DIR / "train_aug.txt").is_file():
            convert_sbd(sbd_dir, voc_root, workers, progress)
            build_train_aug(voc_root, sbd_dir)
    return voc_root


def _inspect(task: tuple) -> tuple:
    """Check one id; return (id, mask labels or None, xml labels or None, error message or None)."""
    root, image_id, mask_required, read_xml, mask_dirs = task
    try:
        size = check_image(image_path(root, image_id))
        mask_labels = xml_labels = None
        mask_file = find_mask(root, image_id, mask_dirs)
        if mask_file is not None:
            mask = read_label_png(mask_file)
            mask_labels = _present(check_mask(mask, mask_file, size))
        elif mask_required:
            raise DatasetError(f"no mask for {image_id} in {[str(Path(root) / d) for d in mask_dirs]}")
        xml = Path(root) / "Annotations" / f"{image_id}.xml"
        if read_xml and xml.is_file():
            xml_labels = labels_from_xml(xml)
        return image_id, mask_labels, xml_labels, None
    except ValueError as error:  # DatasetError, and read_label_png's errors
        return image_id, None, None, str(error)


def raise_if_errors(errors: list[str], what: str) -> None:
    """Raise one DatasetError listing the first problems of ``what``, if there are any."""
    if errors:
        shown = "\n  ".join(errors[:_MAX_LISTED_ERRORS])
        more = f"\n  ... and {len(errors) - _MAX_LISTED_ERRORS} more" if len(errors) > _MAX_LISTED_ERRORS else ""
        raise DatasetError(f"{len(errors)} problem(s) in {what}:\n  {shown}{more}")


def content_hash(lists: dict[str, list[str]], labels: dict[str, np.ndarray]) -> str:
    """sha256 of the split lists (in order) and the labels (by sorted id)."""
    digest = hashlib.sha256()
    for split, ids in lists.items():
        digest.update(("\n".join([split, *ids]) + "\n").encode())
    for image_id in sorted(labels):
        digest.update(image_id.encode() + np.asarray(labels[image_id], np.float32).tobytes())
    return "sha256:" + digest.hexdigest()


def prepare_voc(root: str | Path, out_dir: str | Path, splits: Iterable[str] = ("train", "val", "train_aug"),
                label_source: str | Path = "xml", check_masks_for: Iterable[str] = ("train", "val"),
                workers: int = 1, progress: bool = True, mask_dirs: Iterable[str] = MASK_DIRS) -> dict:
    """Validate a VOC2012 tree and write ``<split>.txt``, ``cls_labels.npy`` and ``dataset.json`` to ``out_dir``.

    Every listed image must exist and decode completely (in parallel over ``workers``). Every mask found (``mask_dirs`` in order
    of preference) is decoded and must match its image's size and hold only 0..20 and 255; ids of
    the ``check_masks_for`` splits must have one. ``label_source``: "xml" (Annotations, falling back
    to the mask with a warning), "mask", or the path of a ``cls_labels.npy``. Each file is written
    atomically, ``dataset.json`` last. Returns the content of ``dataset.json``.
    """
    given_root, root = str(root), check_voc_root(root)
    splits, mask_dirs = tuple(splits), tuple(mask_dirs)
    lists = {split: read_split(root, split) for split in splits}
    required = {image_id for split in check_masks_for if split in lists for image_id in lists[split]}
    if required and not any((root / folder).is_dir() for folder in mask_dirs):
        raise DatasetError(f"{root}: no mask folder (none of {list(mask_dirs)}). {voc_help(root)}")
    all_ids = sorted({image_id for ids in lists.values() for image_id in ids})
    tasks = [(root, image_id, image_id in required, label_source == "xml", mask_dirs) for image_id in all_ids]
    results = parallel_map(_inspect, tasks, workers, "checking VOC", progress, chunksize=32)
    raise_if_errors([error for *_, error in results if error], f"the VOC2012 tree {root}")
    mask_labels = {image_id: m for image_id, m, _, _ in results if m is not None}

    fallback = []
    if label_source == "xml":
        labels = {image_id: x for image_id, _, x, _ in results if x is not None}
        fallback = [image_id for image_id in all_ids if image_id not in labels]
        raise_if_errors([f"{image_id}: neither {root / 'Annotations' / (image_id + '.xml')} nor a mask"
                       for image_id in fallback if image_id not in mask_labels], "image-level labels")
        if fallback:
            warnings.warn(f"{len(fallback)} ids have no Annotations/<id>.xml in {root} (e.g. {fallback[0]}): "
                          "their image-level labels are derived from their masks", stacklevel=2)
            labels.update({image_id: mask_labels[image_id] for image_id in fallback})
        source = "xml"
    elif label_source == "mask":
        raise_if_errors([f"{image_id}: no mask to derive labels from" for image_id in all_ids
                       if image_id not in mask_labels], "image-level labels")
        labels, source = dict(mask_labels), "mask"
    else:
        path = Path(os.path.abspath(label_source))
        if not path.is_file():
            raise DatasetError(f"{path}: label_source must be 'xml', 'mask' or an existing cls_labels.npy")
        given = load_cls_labels(path)
        missing = [image_id for image_id in all_ids if image_id not in given]
        if missing:
            raise DatasetError(f"{path}: no labels for {len(missing)} listed ids, e.g. {missing[:5]}")
        labels, source = {image_id: given[image_id] for image_id in all_ids}, str(path)
    labels = {image_id: labels[image_id] for image_id in all_ids}

    differing = sum(bool((labels[i] != m).any()) for i, m in mask_labels.items())
    summary = {
        "root": given_root,  # as given (relative paths stay relative: the file is the same on every clone)
        "splits": {split: len(ids) for split, ids in lists.items()},
        "images": len(all_ids),
        "mask_dirs": list(mask_dirs),
        "masks_checked": len(mask_labels),
        "label_source": source,
        "labels_from_masks_for_missing_xml": len(fallback),
        "labels_differing_from_masks": differing,
        "content_hash": content_hash(lists, labels),
    }
    out_dir = Path(out_dir)
    for split, ids in lists.items():
        with atomic_path(out_dir / f"{split}.txt") as tmp:
            tmp.write_text("\n".join(ids) + "\n")
    save_cls_labels(out_dir / "cls_labels.npy", labels)
    write_json(out_dir / "dataset.json", summary)
    return summary
