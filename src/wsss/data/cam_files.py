"""CAM files: the project's own ``.npz`` format, plus the ``.npy`` dicts of psa/SEAM and irn.

Every reader returns the same convention: ``keys`` are the VOC class indices (1..20) of the
classes present, ascending, and ``cams`` is a float32 K×H×W array of their scores (≥ 0,
normally in [0, 1]); ``cams[i]`` belongs to class ``keys[i]``.

* own format, ``<id>.npz``: arrays ``keys`` (int16, 1..20) and ``cams`` (float16, K×H×W);
* psa / SEAM / SC-CAM, ``<id>.npy``: a pickled dict ``{foreground index 0..19: H×W}``
  (jiwoon-ahn/psa@9493e59:infer_cls.py:77-83, YudeWang/SEAM@3212261:infer_SEAM.py:79-85);
* irn, ``<id>.npy``: a pickled dict with ``keys`` (0-based foreground indices) and
  ``high_res`` (K×H×W), as written by jiwoon-ahn/irn@a2ece00:step/make_cam.py:54-56. irn pickles ``keys`` as a
  torch tensor, so reading its files imports torch.
"""

from pathlib import Path

import numpy as np

from wsss.data.classes import NUM_VOC_CLASSES
from wsss.io import atomic_path

NUM_FOREGROUND = NUM_VOC_CLASSES - 1


def save_cams(path: str | Path, keys, cams) -> None:
    """Write ``<id>.npz`` atomically: ``keys`` (class indices 1..20) and K×H×W ``cams`` as float16."""
    path = Path(path)
    keys = np.asarray(keys)
    cams = np.asarray(cams)
    if keys.size and not np.issubdtype(keys.dtype, np.integer):
        raise ValueError(f"{path}: CAM keys must be integer class indices, got dtype {keys.dtype}")
    keys, cams = _checked(path, keys.astype(np.int64).reshape(-1), cams)
    with np.errstate(over="ignore"):  # overflow becomes inf, rejected just below
        cams16 = cams.astype(np.float16)
    if not np.isfinite(cams16).all() or (cams16 < 0).any():
        raise ValueError(f"{path}: CAM scores must be finite and ≥ 0 (and below 65504 to fit float16)")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, keys=keys.astype(np.int16), cams=cams16)


def load_cams(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a CAM file of any supported format as ``(keys 1..20 int64, cams float32 K×H×W)``."""
    path = Path(path)
    if path.suffix == ".npz":
        keys, cams = _read_npz(path)
    elif path.suffix == ".npy":
        keys, cams = _read_npy_dict(path)
    else:
        raise ValueError(f"{path}: unknown CAM file type; expected <id>.npz (wsss) or <id>.npy (psa/SEAM/irn dict)")
    keys, cams = _checked(path, keys, cams)
    cams = cams.astype(np.float32, copy=False)
    if not np.isfinite(cams).all():
        raise ValueError(f"{path}: CAM scores hold {np.count_nonzero(~np.isfinite(cams))} NaN or infinite values")
    return keys, cams


def cam_path(cam_dir: str | Path, image_id: str) -> Path:
    """The CAM file of ``image_id`` in ``cam_dir``: ``<id>.npz`` if present, else ``<id>.npy``."""
    candidates = [Path(cam_dir) / f"{image_id}{suffix}" for suffix in (".npz", ".npy")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no CAM file for {image_id}: neither {candidates[0]} nor {candidates[1]} exists")


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as data:
            if not {"keys", "cams"} <= set(data.files):
                raise ValueError(f"holds arrays {sorted(data.files)}, expected 'keys' and 'cams'")
            return data["keys"].astype(np.int64).reshape(-1), data["cams"]
    except Exception as error:  # zip, pickle and format errors alike: name the file
        raise ValueError(f"{path}: not a readable wsss CAM file ({error})") from error


def _read_npy_dict(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        content = np.load(path, allow_pickle=True)
    except Exception as error:
        raise ValueError(f"{path}: cannot read CAM file ({error})") from error
    if content.dtype != object or content.shape != () or not isinstance(content.item(), dict):
        raise ValueError(f"{path}: expected a pickled dict of CAMs (psa/SEAM or irn), "
                         f"got an array {content.dtype}{content.shape}")
    cam_dict = content.item()
    if "high_res" in cam_dict:  # irn step/make_cam.py
        if "keys" not in cam_dict:
            raise ValueError(f"{path}: irn CAM dict has 'high_res' but no 'keys'")
        keys = np.asarray(cam_dict["keys"]).reshape(-1)
        return keys.astype(np.int64) + 1, np.asarray(cam_dict["high_res"])
    if not cam_dict:
        raise ValueError(f"{path}: CAM dict is empty, so its image size is unknown")
    if not all(isinstance(key, (int, np.integer)) for key in cam_dict):
        raise ValueError(f"{path}: unknown CAM dict keys {list(cam_dict)[:5]}; expected foreground "
                         "indices 0..19 (psa/SEAM) or 'keys'/'high_res' (irn)")
    maps = [np.asarray(value) for value in cam_dict.values()]
    if len({m.shape for m in maps}) != 1 or maps[0].ndim != 2:
        raise ValueError(f"{path}: CAMs of different or non-2-D shapes {[m.shape for m in maps]}")
    return np.array(list(cam_dict), dtype=np.int64) + 1, np.stack(maps)


def _checked(path: Path, keys: np.ndarray, cams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate keys against cams and sort both by class index."""
    if cams.ndim != 3 or cams.shape[0] != keys.size:
        raise ValueError(f"{path}: CAM array of shape {cams.shape} does not match {keys.size} keys (expected K×H×W)")
    if keys.size and (keys.min() < 1 or keys.max() > NUM_FOREGROUND):
        raise ValueError(f"{path}: CAM class indices {keys.tolist()} outside 1..{NUM_FOREGROUND}")
    if np.unique(keys).size != keys.size:
        raise ValueError(f"{path}: repeated CAM class indices {keys.tolist()}")
    order = np.argsort(keys)
    if (order != np.arange(keys.size)).any():
        keys, cams = keys[order], cams[order]
    return keys, cams
