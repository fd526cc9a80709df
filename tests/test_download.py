"""Downloads from file:// URLs: checksums, tar/zip extraction, path traversal, offline message, VOC+SBD setup."""

import hashlib
import io
import socket
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_VOC, write_sbd, write_voc_tree
from wsss.data import download as dl
from wsss.data import sod, voc
from wsss.data.download import Resource
from wsss.errors import DownloadError


def make_tar(path, files: dict[str, bytes], mode="w:gz"):
    with tarfile.open(path, mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_zip(path, files: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def resource(archive, unpacks_to, checksum="auto"):
    return Resource("test", archive.as_uri(), md5(archive) if checksum == "auto" else checksum, unpacks_to)


def test_tar_download_verify_extract_idempotent(tmp_path):
    archive = make_tar(tmp_path / "data.tgz", {"top/sub/a.txt": b"hello", "top/b.txt": b"world"})
    dest = tmp_path / "dest"
    res = resource(archive, "top/sub")
    assert dl.download(res, dest, progress=False) == dest / "top" / "sub"
    assert (dest / "top" / "sub" / "a.txt").read_bytes() == b"hello"
    assert (dest / "data.tgz").read_bytes() == archive.read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == [".data.tgz.extracted", "data.tgz", "top"]
    # already there: nothing is fetched again (the source may be gone)
    archive.unlink()
    assert dl.download(res, dest, progress=False) == dest / "top" / "sub"


def test_zip_download(tmp_path):
    files = {"DUTS-TE/DUTS-TE-Image/x.jpg": b"1", "DUTS-TE/DUTS-TE-Mask/x.png": b"2"}
    archive = make_zip(tmp_path / "DUTS-TE.zip", files)
    assert dl.download(resource(archive, "DUTS-TE"), tmp_path / "dest", progress=False).is_dir()
    assert (tmp_path / "dest" / "DUTS-TE" / "DUTS-TE-Mask" / "x.png").read_bytes() == b"2"


def test_checksum_mismatch_names_file_and_both_hashes(tmp_path):
    archive = make_tar(tmp_path / "data.tar", {"top/a.txt": b"x"}, mode="w")
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError) as info:
        dl.download(resource(archive, "top", checksum="0" * 32), dest, progress=False)
    message = str(info.value)
    assert "data.tar" in message and "0" * 32 in message and md5(archive) in message
    assert list(dest.iterdir()) == []  # the temporary download was removed, nothing extracted


def test_archive_put_there_by_hand_is_verified_and_used(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    archive = make_tar(dest / "data.tgz", {"top/a.txt": b"x"})
    res = Resource("test", "http://unreachable.invalid/data.tgz", md5(archive), "top")
    assert (dl.download(res, dest, progress=False) / "a.txt").read_bytes() == b"x"
    bad = Resource("bad", "http://unreachable.invalid/data.tgz", "f" * 32, "top2")
    with pytest.raises(DownloadError, match="data.tgz .*checksum mismatch.*delete the file"):
        dl.download(bad, dest, progress=False)
    assert archive.is_file()  # a user's file is never deleted


def test_unknown_checksum_is_pinned_on_first_download(tmp_path):
    archive = make_zip(tmp_path / "set.zip", {"set/a.txt": b"v1"})
    dest = tmp_path / "dest"
    res = resource(archive, "set", checksum=None)
    dl.download(res, dest, progress=False)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (dest / "set.zip.sha256").read_text().split() == [sha, "set.zip"]
    # the server now serves different bytes: refused against the pinned hash
    for stale in ("set.zip", ".set.zip.extracted"):
        (dest / stale).unlink()
    make_zip(archive, {"set/a.txt": b"v2"})
    with pytest.raises(DownloadError, match=f"sha256 pinned in .*set.zip.sha256 expected {sha}"):
        dl.download(res, dest, progress=False)
    assert not (dest / "set.zip").exists()


@pytest.mark.parametrize("maker", [make_tar, make_zip])
def test_path_traversal_refused(tmp_path, maker):
    name = "evil.tgz" if maker is make_tar else "evil.zip"
    archive = maker(tmp_path / name, {"top/ok.txt": b"1", "../../evil.txt": b"2"})
    dest = tmp_path / "a" / "b"
    with pytest.raises(DownloadError, match="unsafe member"):
        dl.download(resource(archive, "top"), dest, progress=False)
    assert not list(tmp_path.rglob("evil.txt"))
    assert not (dest / "top").exists()  # nothing half-extracted


def test_not_an_archive(tmp_path):
    (tmp_path / "plain.tar").write_bytes(b"just bytes")
    with pytest.raises(DownloadError, match="plain.tar: neither a tar nor a zip"):
        dl.download(resource(tmp_path / "plain.tar", "x"), tmp_path / "dest", progress=False)


def test_offline_message(tmp_path):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = Resource("test", f"http://127.0.0.1:{port}/VOCtrainval.tar", None, "VOCdevkit")
    with pytest.raises(DownloadError) as info:
        dl.download(res, tmp_path / "dest", progress=False)
    message = str(info.value)
    assert res.url in message and str(tmp_path / "dest" / "VOCtrainval.tar") in message
    assert list((tmp_path / "dest").iterdir()) == []
    with pytest.raises(ValueError, match="unknown resource 'voc2007'"):
        dl.download("voc2007", tmp_path, progress=False)


def test_official_table():
    assert dl.RESOURCES["voc2012"].filename == "VOCtrainval_11-May-2012.tar"
    assert dl.RESOURCES["voc2012"].md5 == "6cd6e144f989b92b3379bac3b3de84fd"
    assert dl.RESOURCES["sbd"].md5 == "82b4d87ceb2ed10f6038a1cba92111cb"
    assert all(len(r.md5) == 32 for r in dl.RESOURCES.values())


def _tar_tree(folder, archive, arcname):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return archive


def test_download_voc_with_sbd(tmp_path, monkeypatch):
    """VOC tar + SBD tgz served from file:// URLs: unpacked, SBD converted, train_aug.txt written."""
    src = tmp_path / "src"
    write_voc_tree(src / "VOC2012", splits={"train": ["2007_000001", "2007_000002"], "val": ["2007_000004"]})
    write_sbd(src / "dataset", {"2007_000003": np.zeros((12, 16), np.uint8)}, ["2007_000003"], ["2007_000004"])
    for key, folder, archive, unpacks_to in (("voc2012", "VOC2012", "VOCtrainval.tar", "VOCdevkit/VOC2012"),
                                             ("sbd", "dataset", "benchmark.tgz", "benchmark_RELEASE/dataset")):
        archive = _tar_tree(src / folder, src / archive, unpacks_to)
        monkeypatch.setitem(dl.RESOURCES, key, Resource(key, archive.as_uri(), md5(archive), unpacks_to))

    root = voc.download_voc(tmp_path / "raw", progress=False)
    assert root == tmp_path / "raw" / "VOCdevkit" / "VOC2012"
    assert voc.read_split(root, "train_aug") == ["2007_000001", "2007_000002", "2007_000003"]
    assert len(list((root / "SegmentationClassAug").glob("*.png"))) == len(TINY_VOC)
    summary = voc.prepare_voc(root, tmp_path / "prepared", progress=False)
    assert summary["splits"] == {"train": 2, "val": 1, "train_aug": 3}


def test_download_duts(tmp_path, monkeypatch):
    for name in ("DUTS-TR", "DUTS-TE"):
        archive = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for folder, value in (("Image", 0), ("Mask", 255)):  # a black photo, all of it salient
                buffer = io.BytesIO()
                Image.new("L", (8, 6), value).save(buffer, "PNG")
                zf.writestr(f"{name}/{name}-{folder}/x.png", buffer.getvalue())
        key = name.lower()
        monkeypatch.setitem(dl.RESOURCES, key, Resource(key, archive.as_uri(), md5(archive), name))
    root = sod.download_duts(tmp_path / "SOD", progress=False)
    assert [n for n, _, _ in sod.list_sod_pairs(root, "DUTS-TE")] == ["x"]
    assert len(sod.list_sod_pairs(root, "DUTS-TR")) == 1
