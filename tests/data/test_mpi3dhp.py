"""MPI-INF-3DHP loader: the real test file (TS5, TS6) when present, and tiny synthetic files in both
P-STMO layouts written here, with every error case."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data.mpi3dhp import load_3dhp, scan_3dhp
from harness.errors import ConfigError, DataError, UnsafeFileError
from harness.safeio import load_npz, save_npz
from harness.skeleton import H36M_FROM_3DHP, MPI3DHP_ROOT

TEST = "data_test_3dhp.npz"
TRAIN = "data_train_3dhp.npz"


# ----------------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def real(mpi3dhp_root):
    return mpi3dhp_root, load_3dhp(mpi3dhp_root)


def test_real_sequences_and_valid_frames(real):
    _, sets = real
    assert set(sets) == {"test"}  # no train file at hand
    test = sets["test"]
    assert len(test) == 320 + 492
    assert test.num_joints == 17
    for seq, n, n_valid in (("TS5", 320, 276), ("TS6", 492, 392)):
        m = test.sequence == seq
        assert m.sum() == n
        assert test.valid[m].sum() == n_valid
        np.testing.assert_array_equal(test.frame[m], np.arange(n))
    assert set(test.action.tolist()) == {"Outdoor"}
    assert set(test.camera.tolist()) == {0}
    assert test.pose_2d.dtype == np.float32 and test.pose_3d.dtype == np.float32
    assert test.valid.dtype == bool


def test_real_root_zero_metres_and_2d_range(real):
    _, sets = real
    test = sets["test"]
    assert np.all(test.pose_3d[:, 0] == 0)
    assert np.isfinite(test.pose_3d).all() and np.isfinite(test.pose_2d).all()
    # Metres: a person is within ~1 m of the pelvis; head-top to ankles on the order of 1.5 m.
    assert 0.5 < np.abs(test.pose_3d).max() < 1.5
    height = np.linalg.norm(test.pose_3d[:, 10] - test.pose_3d[:, 3], axis=-1)[test.valid]
    assert 1.0 < np.median(height) < 2.0
    # 1920x1080 normalised by width: x in about [-1, 1], y in about [-0.5625, 0.5625].
    x, y = test.pose_2d[test.valid, :, 0], test.pose_2d[test.valid, :, 1]
    assert -1.3 < x.min() < x.max() < 1.3
    assert -0.8 < y.min() < y.max() < 0.8
    assert x.std() > 0.05 and y.std() > 0.05


def test_real_conversion_matches_raw(real):
    root, sets = real
    raw = load_npz(root / TEST)["data"]["TS5"]
    test = sets["test"]
    m = test.sequence == "TS5"
    d3 = np.asarray(raw["data_3d"], dtype=np.float64)
    d2 = np.asarray(raw["data_2d"], dtype=np.float64)
    exp3 = ((d3 - d3[:, 14:15]) / 1000.0)[:, list(H36M_FROM_3DHP)]
    exp2 = (d2 / 1920 * 2 - np.array([1.0, 1080 / 1920]))[:, list(H36M_FROM_3DHP)]
    np.testing.assert_allclose(test.pose_3d[m], exp3, atol=1e-6)
    np.testing.assert_allclose(test.pose_2d[m], exp2, atol=1e-6)
    np.testing.assert_array_equal(test.valid[m], np.asarray(raw["valid"]) != 0)


def test_real_native_order(real):
    root, sets = real
    native = load_3dhp(root, joint_order="3dhp")["test"]
    assert native.meta["root_joint"] == MPI3DHP_ROOT and sets["test"].meta["root_joint"] == 0
    assert np.all(native.pose_3d[:, MPI3DHP_ROOT] == 0)
    np.testing.assert_array_equal(sets["test"].pose_3d, native.pose_3d[:, list(H36M_FROM_3DHP)])


def test_real_scan(real):
    root, _ = real
    rep = scan_3dhp(root)
    assert rep["problems"] == []
    assert rep["sequences"] == ["TS5", "TS6"]
    assert rep["scenes"] == ["Outdoor"]
    assert rep["frames"] == {"test": 812}
    assert rep["valid_frames"] == {"test": 668}
    assert [(r["sequence"], r["frames"], r["valid"], r["joints"]) for r in rep["rows"]] == [
        ("TS5", 320, 276, 17), ("TS6", 492, 392, 17)]


# ------------------------------------------------------------------------------ synthetic files
def _seq(rng, n=6, valid=None, w=2048, h=2048, joints=17):
    d3 = rng.normal(0.0, 300.0, (n, joints, 3))
    d3[..., 2] += 4000.0
    d2 = rng.uniform(0, 1, (n, joints, 2)) * np.array([w, h])
    v = np.ones(n, dtype=np.float32) if valid is None else np.asarray(valid, dtype=np.float32)
    return {"data_2d": d2.astype(np.float32), "data_3d": d3.astype(np.float32), "valid": v}


def _cam(rng, n=5):
    s = _seq(rng, n)
    return {"data_2d": s["data_2d"], "data_3d": s["data_3d"]}


def _write_test(root, data):
    save_npz(root / TEST, data=data)


def _write_train(root, data):
    save_npz(root / TRAIN, data=data)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_synthetic_test_layout(tmp_path, rng):
    seqs = {"TS3": _seq(rng, 4), "TS1": _seq(rng, 5, valid=[1, 0, 1, 1, 1]),
            "TS6": _seq(rng, 3, w=1920, h=1080)}
    seqs["TS1"]["data_2d"][0, 14] = [1024.0, 1024.0]  # 3DHP pelvis = H36M joint 0
    seqs["TS6"]["data_2d"][0, 14] = [960.0, 540.0]
    seqs["TS6"]["data_2d"][1, 14] = [0.0, 0.0]
    _write_test(tmp_path, seqs)
    test = load_3dhp(tmp_path)["test"]
    assert len(test) == 12
    # Sequences in TS order, scene per sequence.
    assert test.sequence.tolist() == ["TS1"] * 5 + ["TS3"] * 4 + ["TS6"] * 3
    assert test.action.tolist() == ["GS"] * 5 + ["noGS"] * 4 + ["Outdoor"] * 3
    assert test.subject.tolist() == test.sequence.tolist()
    assert test.valid.tolist() == [True, False, True, True, True] + [True] * 7
    assert test.frame.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2]
    # 2D: normalised by each sequence's width.
    np.testing.assert_allclose(test.pose_2d[0, 0], [0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(test.pose_2d[9, 0], [0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(test.pose_2d[10, 0], [-1.0, -1080 / 1920], atol=1e-7)
    # 3D: metres, root-relative, reordered to H36M.
    raw = seqs["TS3"]["data_3d"].astype(np.float64)
    exp = ((raw - raw[:, 14:15]) / 1000.0)[:, list(H36M_FROM_3DHP)]
    np.testing.assert_allclose(test.pose_3d[5:9], exp, atol=1e-6)
    assert np.all(test.pose_3d[:, 0] == 0)
    assert test.meta["resolution"] == {"TS1": [2048, 2048], "TS3": [2048, 2048], "TS6": [1920, 1080]}
    rep = scan_3dhp(tmp_path)
    assert rep["problems"] == [] and rep["scenes"] == ["GS", "noGS", "Outdoor"]
    assert rep["valid_frames"] == {"test": 11}


def test_synthetic_train_layout(tmp_path, rng):
    # P-STMO writes str(camera) keys and [cams, fps]; ints are accepted too.
    train = {"S2 Seq1": [{"4": _cam(rng, 3), 0: _cam(rng, 2)}, 25],
             "S1 Seq2": [{"8": _cam(rng, 4)}, 50]}
    _write_train(tmp_path, train)
    _write_test(tmp_path, {"TS5": _seq(rng, 2, w=1920, h=1080)})
    sets = load_3dhp(tmp_path)
    assert set(sets) == {"train", "test"}
    tr = sets["train"]
    assert len(tr) == 9
    assert tr.sequence.tolist() == ["S1 Seq2"] * 4 + ["S2 Seq1"] * 5
    assert tr.subject.tolist() == ["S1"] * 4 + ["S2"] * 5
    assert tr.action.tolist() == ["Seq2"] * 4 + ["Seq1"] * 5
    assert tr.camera.tolist() == [8] * 4 + [0] * 2 + [4] * 3
    assert tr.camera.dtype == np.int16
    assert tr.valid.all()
    assert np.all(tr.pose_3d[:, 0] == 0)
    cam = train["S2 Seq1"][0]["4"]
    np.testing.assert_allclose(
        tr.pose_2d[6:9], (cam["data_2d"].astype(np.float64) / 2048 * 2 - 1)[:, list(H36M_FROM_3DHP)], atol=1e-6)
    d3 = cam["data_3d"].astype(np.float64)
    np.testing.assert_allclose(tr.pose_3d[6:9], ((d3 - d3[:, 14:15]) / 1000)[:, list(H36M_FROM_3DHP)], atol=1e-6)
    rep = scan_3dhp(tmp_path)
    assert rep["problems"] == []
    assert rep["frames"] == {"train": 9, "test": 2}
    assert [r["cameras"] for r in rep["rows"] if r["split"] == "train"] == ["8", "0,4"]


def test_nan_in_invalid_frames_is_kept_as_zero(tmp_path, rng):
    s = _seq(rng, 4, valid=[1, 0, 1, 0])
    s["data_3d"][1, 3] = np.nan
    s["data_2d"][3, :, :] = np.inf
    _write_test(tmp_path, {"TS2": s})
    test = load_3dhp(tmp_path)["test"]
    assert len(test) == 4 and test.valid.tolist() == [True, False, True, False]
    assert np.isfinite(test.pose_3d).all() and np.isfinite(test.pose_2d).all()
    assert np.all(test.pose_3d[[1, 3]] == 0) and np.all(test.pose_2d[[1, 3]] == 0)
    assert np.any(test.pose_3d[0] != 0)
    assert len(test.meta["notes"]) == 1 and "TS2" in test.meta["notes"][0] and "2 invalid" in test.meta["notes"][0]
    rep = scan_3dhp(tmp_path)
    assert rep["problems"] == [] and len(rep["notes"]) == 1


def _bad(key, fn):
    def make(rng):
        s = _seq(rng, 4)
        fn(s)
        return {key: s}
    return make


def _set(arr_key, idx, value):
    def fn(s):
        s[arr_key][idx] = value
    return fn


def _replace(arr_key, value):
    def fn(s):
        s[arr_key] = value
    return fn


def _drop(arr_key):
    def fn(s):
        del s[arr_key]
    return fn


TEST_ERRORS = [
    ("nan_valid_3d", _bad("TS1", _set("data_3d", (2, 5, 0), np.nan)), ["TS1", "NaN/Inf", "frame 2"]),
    ("inf_valid_2d", _bad("TS4", _set("data_2d", (0, 1, 1), np.inf)), ["TS4", "NaN/Inf", "frame 0"]),
    ("joints_16", _bad("TS1", _replace("data_3d", np.zeros((4, 16, 3)))), ["TS1", "data_3d", "16 joints"]),
    ("3d_dims_2", _bad("TS1", _replace("data_3d", np.zeros((4, 17, 2)))), ["TS1", "data_3d", "shape (4, 17, 2)"]),
    ("2d_flat", _bad("TS2", _replace("data_2d", np.zeros((4, 34)))), ["TS2", "data_2d", "shape (4, 34)"]),
    ("frames_differ", _bad("TS5", _replace("data_2d", np.zeros((3, 17, 2)))), ["TS5", "3 frames", "data_3d has 4"]),
    ("valid_length", _bad("TS1", _replace("valid", np.ones(5))), ["TS1", "valid", "(5,)"]),
    ("missing_key", _bad("TS3", _drop("data_2d")), ["TS3", "missing data_2d"]),
    ("not_numeric", _bad("TS3", _replace("data_3d", "abc")), ["TS3", "data_3d", "not a numeric"]),
    ("no_frames", lambda rng: {"TS1": {"data_2d": np.zeros((0, 17, 2)), "data_3d": np.zeros((0, 17, 3)),
                                       "valid": np.zeros(0)}}, ["TS1", "no frames"]),
    ("unknown_seq", lambda rng: {"TS7": _seq(rng)}, ["'TS7'", "unknown test sequence"]),
    ("train_name_in_test", lambda rng: {"S1 Seq1": _seq(rng)}, ["'S1 Seq1'", "unknown test sequence"]),
    ("not_a_dict", lambda rng: {"TS1": [1, 2, 3]}, ["TS1", "expected a dict"]),
    ("empty", lambda rng: {}, ["no sequences"]),
]


@pytest.mark.parametrize("name,make,words", TEST_ERRORS, ids=[e[0] for e in TEST_ERRORS])
def test_test_file_errors(tmp_path, rng, name, make, words):
    _write_test(tmp_path, make(rng))
    with pytest.raises(DataError) as ei:
        load_3dhp(tmp_path)
    msg = str(ei.value)
    assert "\n" not in msg
    assert TEST in msg
    for w in words:
        assert w in msg, (w, msg)
    rep = scan_3dhp(tmp_path)
    assert any(all(w in p for w in words) for p in rep["problems"]), rep["problems"]


def test_npz_without_data_key(tmp_path):
    save_npz(tmp_path / TEST, positions=np.zeros((3, 17, 3)))
    with pytest.raises(DataError, match="no 'data' key"):
        load_3dhp(tmp_path)


TRAIN_ERRORS = [
    ("bad_name", lambda rng: {"S1-Seq1": [{"0": _cam(rng)}, 25]}, ["'S1-Seq1'", "unknown train sequence"]),
    ("subject_9", lambda rng: {"S9 Seq1": [{"0": _cam(rng)}, 25]}, ["'S9 Seq1'", "unknown train sequence"]),
    ("bad_camera", lambda rng: {"S1 Seq1": [{"cam0": _cam(rng)}, 25]}, ["S1 Seq1", "'cam0'", "not a camera index"]),
    ("dup_camera", lambda rng: {"S1 Seq1": [{"0": _cam(rng), 0: _cam(rng)}, 25]}, ["S1 Seq1", "camera 0 appears twice"]),
    ("not_list", lambda rng: {"S1 Seq1": 25}, ["S1 Seq1", "element 0"]),
    ("elem0_not_dict", lambda rng: {"S1 Seq1": [25, {"0": _cam(rng)}]}, ["S1 Seq1", "element 0"]),
    ("joints", lambda rng: {"S1 Seq1": [{"2": {"data_2d": np.zeros((3, 17, 2)), "data_3d": np.zeros((3, 15, 3))}}, 25]},
     ["S1 Seq1", "camera '2'", "15 joints"]),
    ("nan", lambda rng: {"S1 Seq1": [{"2": {"data_2d": np.full((3, 17, 2), np.nan), "data_3d": np.zeros((3, 17, 3))}}, 25]},
     ["S1 Seq1", "camera '2'", "NaN/Inf in 3 valid"]),
    ("frames", lambda rng: {"S1 Seq1": [{1: {"data_2d": np.zeros((2, 17, 2)), "data_3d": np.zeros((3, 17, 3))}}, 25]},
     ["S1 Seq1", "camera 1", "2 frames"]),
    ("empty", lambda rng: {}, ["no sequences"]),
]


@pytest.mark.parametrize("name,make,words", TRAIN_ERRORS, ids=[e[0] for e in TRAIN_ERRORS])
def test_train_file_errors(tmp_path, rng, name, make, words):
    _write_train(tmp_path, make(rng))
    _write_test(tmp_path, {"TS1": _seq(rng)})
    with pytest.raises(DataError) as ei:
        load_3dhp(tmp_path)
    msg = str(ei.value)
    assert TRAIN in msg and "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)
    rep = scan_3dhp(tmp_path)
    assert any(all(w in p for w in words) for p in rep["problems"]), rep["problems"]


def test_scan_collects_every_problem(tmp_path, rng):
    good = _seq(rng)
    bad_nan = _seq(rng)
    bad_nan["data_3d"][1, 0, 0] = np.nan
    _write_test(tmp_path, {"TS1": good, "TS2": bad_nan, "TS3": {"data_2d": np.zeros((2, 16, 2)),
                                                                "data_3d": np.zeros((2, 16, 3)), "valid": np.ones(2)},
                           "TS9": good})
    _write_train(tmp_path, {"S1 Seq1": [{"x": _cam(rng)}, 25], "S2 Seq2": [{"1": _cam(rng)}, 25]})
    rep = scan_3dhp(tmp_path)
    probs = rep["problems"]
    assert len(probs) == 5, probs
    assert any("TS2" in p and "NaN" in p for p in probs)
    assert any("TS3" in p and "data_2d has 16 joints" in p for p in probs)
    assert any("TS3" in p and "data_3d has 16 joints" in p for p in probs)
    assert any("TS9" in p for p in probs)
    assert any("S1 Seq1" in p and "'x'" in p for p in probs)
    # The good sequences are still summarised.
    assert [r["sequence"] for r in rep["rows"]] == ["S2 Seq2", "TS1"]
    assert rep["sequences"] == ["TS1"] and rep["scenes"] == ["GS"]


def test_missing_files_and_folder(tmp_path, rng):
    with pytest.raises(DataError, match="folder not found"):
        load_3dhp(tmp_path / "nope")
    with pytest.raises(DataError, match=f"{TEST}: file not found"):
        load_3dhp(tmp_path)
    rep = scan_3dhp(tmp_path)
    assert len(rep["problems"]) == 1 and TEST in rep["problems"][0]
    assert rep["files"] == {TRAIN: False, TEST: False}
    _write_test(tmp_path, {"TS1": _seq(rng)})
    assert set(load_3dhp(tmp_path)) == {"test"}


def test_bad_joint_order(tmp_path, rng):
    _write_test(tmp_path, {"TS1": _seq(rng)})
    with pytest.raises(ConfigError, match="joint_order"):
        load_3dhp(tmp_path, joint_order="coco")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_unsafe_file_is_refused_and_reported(tmp_path):
    marker = tmp_path / "pwned"
    np.savez(tmp_path / TEST, data=np.array({"TS1": _Evil(marker)}, dtype=object))
    with pytest.raises(UnsafeFileError, match="system"):
        load_3dhp(tmp_path)
    rep = scan_3dhp(tmp_path)
    assert len(rep["problems"]) == 1 and "refused" in rep["problems"][0]
    assert not marker.exists()


def test_truncated_file(tmp_path, rng):
    _write_test(tmp_path, {"TS1": _seq(rng, 50)})
    raw = (tmp_path / TEST).read_bytes()
    (tmp_path / TEST).write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=TEST):
        load_3dhp(tmp_path)
    assert len(scan_3dhp(tmp_path)["problems"]) == 1
