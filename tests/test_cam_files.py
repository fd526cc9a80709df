"""CAM files: own .npz format, psa/SEAM and irn .npy dicts, and their errors."""

import numpy as np
import pytest

from wsss.data.cam_files import cam_path, load_cams, save_cams


def _cams(k=2, h=5, w=7, seed=0):
    return np.random.default_rng(seed).random((k, h, w)).astype(np.float16).astype(np.float32)


def test_npz_round_trip_is_float16_exact(tmp_path):
    cams = _cams()
    save_cams(tmp_path / "a.npz", [3, 15], cams)
    keys, loaded = load_cams(tmp_path / "a.npz")
    assert keys.tolist() == [3, 15]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, cams)
    with np.load(tmp_path / "a.npz") as data:
        assert data["keys"].dtype == np.int16 and data["cams"].dtype == np.float16
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]  # atomic: no temporary left


def test_keys_are_sorted_with_their_cams(tmp_path):
    cams = _cams()
    save_cams(tmp_path / "a.npz", [15, 3], cams)
    keys, loaded = load_cams(tmp_path / "a.npz")
    assert keys.tolist() == [3, 15]
    np.testing.assert_array_equal(loaded, cams[::-1])


def test_psa_and_irn_dicts_use_the_same_convention(tmp_path):
    cams = _cams()
    np.save(tmp_path / "psa.npy", {2: cams[0], 14: cams[1]})  # psa/SEAM: 0-based foreground
    np.save(tmp_path / "irn.npy", {"keys": np.array([2, 14]), "cam": cams[:, ::4, ::4], "high_res": cams})
    for name in ("psa.npy", "irn.npy"):
        keys, loaded = load_cams(tmp_path / name)
        assert keys.tolist() == [3, 15]
        np.testing.assert_array_equal(loaded, cams)


def test_irn_dict_without_classes_keeps_its_size(tmp_path):
    np.save(tmp_path / "irn.npy", {"keys": np.zeros(0, int), "high_res": np.zeros((0, 4, 6), np.float32)})
    keys, cams = load_cams(tmp_path / "irn.npy")
    assert keys.size == 0 and cams.shape == (0, 4, 6)


@pytest.mark.parametrize("keys, message", [([0, 5], "outside 1..20"), ([21, 5], "outside 1..20"),
                                            ([5, 5], "repeated"), ([5], "does not match")])
def test_save_rejects_bad_keys(tmp_path, keys, message):
    with pytest.raises(ValueError, match=message) as error:
        save_cams(tmp_path / "bad.npz", keys, _cams())
    assert "bad.npz" in str(error.value)
    assert not list(tmp_path.iterdir())


def test_save_rejects_negative_or_overflowing_scores(tmp_path):
    for cams in (-_cams(), _cams() * 1e6):
        with pytest.raises(ValueError, match="finite and ≥ 0"):
            save_cams(tmp_path / "bad.npz", [1, 2], cams)


def test_unreadable_or_unknown_content_names_the_file(tmp_path):
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    (tmp_path / "garbage.npy").write_bytes(b"not numpy")
    np.savez(tmp_path / "wrong.npz", labels=np.zeros(2))
    np.save(tmp_path / "array.npy", np.zeros((2, 3, 3)))
    np.save(tmp_path / "strkeys.npy", {"person": np.zeros((3, 3))})
    np.save(tmp_path / "empty.npy", {})
    (tmp_path / "cams.txt").write_text("")
    for name in ("garbage.npz", "garbage.npy", "wrong.npz", "array.npy", "strkeys.npy", "empty.npy", "cams.txt"):
        with pytest.raises(ValueError) as error:
            load_cams(tmp_path / name)
        assert name in str(error.value)


def test_load_rejects_out_of_range_keys_and_shape_mismatch(tmp_path):
    np.save(tmp_path / "key20.npy", {20: np.zeros((3, 3))})  # foreground index 20 → class 21
    np.save(tmp_path / "shapes.npy", {0: np.zeros((3, 3)), 1: np.zeros((4, 3))})
    np.save(tmp_path / "irn.npy", {"keys": np.array([0, 1]), "high_res": np.zeros((3, 4, 4))})
    np.savez(tmp_path / "flat.npz", keys=np.array([1], np.int16), cams=np.zeros((4, 4), np.float16))
    for name, message in (("key20.npy", "outside 1..20"), ("shapes.npy", "different"),
                          ("irn.npy", "does not match"), ("flat.npz", "does not match")):
        with pytest.raises(ValueError, match=message) as error:
            load_cams(tmp_path / name)
        assert name in str(error.value)


def test_cam_path_prefers_npz_then_npy(tmp_path):
    np.save(tmp_path / "b.npy", {0: np.zeros((2, 2))})
    assert cam_path(tmp_path, "b").name == "b.npy"
    save_cams(tmp_path / "b.npz", [1], np.zeros((1, 2, 2)))
    assert cam_path(tmp_path, "b").name == "b.npz"
    with pytest.raises(FileNotFoundError, match=r"c\.npz.*c\.npy"):
        cam_path(tmp_path, "c")
