"""Fetch the public datasets from their official addresses: checksummed, extracted safely, idempotent.

Checksums: VOC2012 trainval and SBD are the md5 sums torchvision's ``datasets/voc.py`` and
``datasets/sbd.py`` check. DUTS-TR/TE publish none; their md5 sums come from a public DUTS
preparation script (not from the DUTS authors). A resource without a known checksum is pinned on
first download: the sha256 goes into ``<archive>.sha256`` next to it and is checked afterwards.
"""

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from wsss.errors import DownloadError


@dataclass(frozen=True)
class Resource:
    """A downloadable archive: ``unpacks_to`` is the folder (relative to dest) it creates."""

    name: str
    url: str
    md5: str | None
    unpacks_to: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


RESOURCES = {
    r.name: r
    for r in (
        Resource("voc2012", "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
                 "6cd6e144f989b92b3379bac3b3de84fd", "VOCdevkit/VOC2012"),
        Resource("sbd",
                 "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
                 "82b4d87ceb2ed10f6038a1cba92111cb", "benchmark_RELEASE/dataset"),
        Resource("duts-tr", "http://saliencydetection.net/duts/download/DUTS-TR.zip",
                 "30256edc326a4f6c880414f16114c356", "DUTS-TR"),
        Resource("duts-te", "http://saliencydetection.net/duts/download/DUTS-TE.zip",
                 "ed8b6d5995132fb2900657e46a584923", "DUTS-TE"),
    )
}
_CHUNK = 1 << 20


def download(resource: str | Resource, dest_dir: str | Path, progress: bool = True) -> Path:
    """Download, verify and extract ``resource`` into ``dest_dir``; return ``dest_dir / unpacks_to``.

    An archive already in ``dest_dir`` (e.g. put there by hand) is verified and used; a resource
    already extracted (marker file present) is not touched again.
    """
    if isinstance(resource, str):
        if resource not in RESOURCES:
            raise ValueError(f"unknown resource {resource!r}; known: {sorted(RESOURCES)}")
        resource = RESOURCES[resource]
    dest_dir = Path(os.path.abspath(dest_dir))
    target = dest_dir / resource.unpacks_to
    marker = dest_dir / f".{resource.filename}.extracted"
    if marker.is_file() and target.exists():
        return target
    dest_dir.mkdir(parents=True, exist_ok=True)
    archive = dest_dir / resource.filename
    if archive.is_file():
        _verify(resource, archive, *_hashes(archive), downloaded=False)
    else:
        _fetch(resource, archive, progress)
    extract(archive, dest_dir)
    if not target.exists():
        raise DownloadError(f"{archive}: extracted, but {target} was not created")
    marker.write_text(resource.url + "\n")
    return target


def _fetch(resource: Resource, archive: Path, progress: bool) -> None:
    """Stream ``resource.url`` to a temporary sibling of ``archive``, verify it, then rename it (else delete it)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{archive.name}.", suffix=".part", dir=archive.parent)
    tmp = Path(tmp_name)
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as file, urllib.request.urlopen(resource.url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=archive.name, disable=not progress) as bar:
                while chunk := response.read(_CHUNK):
                    file.write(chunk)
                    md5.update(chunk)
                    sha256.update(chunk)
                    bar.update(len(chunk))
        _verify(resource, archive, md5.hexdigest(), sha256.hexdigest(), downloaded=True)
        os.replace(tmp, archive)
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(
            f"cannot download {resource.url} ({error}). If this machine is offline, fetch that file "
            f"elsewhere and put it at {archive}; it is then verified and extracted from there.") from error
    finally:
        tmp.unlink(missing_ok=True)


def _hashes(path: Path) -> tuple[str, str]:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


def _verify(resource: Resource, archive: Path, md5: str, sha256: str, downloaded: bool) -> None:
    """Check the md5 (or the sha256 pinned in ``<archive>.sha256``; pin it when there is none)."""
    lock = archive.with_name(archive.name + ".sha256")
    if resource.md5 is not None:
        expected, actual, kind = resource.md5, md5, "md5"
    elif lock.is_file():
        expected, actual, kind = lock.read_text().split()[0], sha256, f"sha256 pinned in {lock}"
    else:
        lock.write_text(f"{sha256}  {archive.name}\n")
        return
    if actual != expected:
        raise DownloadError(
            f"{archive} (from {resource.url}): checksum mismatch, {kind} expected {expected}, got {actual}"
            + ("; the download was deleted" if downloaded else "; delete the file and retry"))


def extract(archive: str | Path, dest_dir: str | Path) -> None:
    """Extract a tar (any compression) or zip archive into ``dest_dir``, refusing paths that escape it.

    Extraction goes to a temporary folder inside ``dest_dir`` first; its top-level entries are then
    moved into place (merged into existing folders), so a failure leaves nothing half-extracted.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_dir))
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tar:
                try:
                    tar.extractall(tmp, filter="data")
                except tarfile.FilterError as error:
                    raise DownloadError(f"{archive}: unsafe member refused ({error})") from error
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    if Path(name).is_absolute() or not (tmp / name).resolve().is_relative_to(tmp.resolve()):
                        raise DownloadError(f"{archive}: unsafe member {name!r} refused (it lands outside {dest_dir})")
                zf.extractall(tmp)
        else:
            raise DownloadError(f"{archive}: neither a tar nor a zip archive")
        for child in tmp.iterdir():
            _merge(child, dest_dir / child.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _merge(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst``; folders are merged entry by entry."""
    if src.is_dir() and dst.is_dir() and not dst.is_symlink():
        for child in src.iterdir():
            _merge(child, dst / child.name)
    else:
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        os.replace(src, dst)
