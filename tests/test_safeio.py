"""The restricted npz reader: crafted pickles are refused before anything runs, legit files load,
broken files give DataError; atomic writes leave nothing behind."""

from __future__ import annotations

import io
import os
import pathlib
import zipfile
import zlib

import numpy as np
import pytest

import harness.safeio as safeio
from harness.errors import DataError, UnsafeFileError
from harness.safeio import atomic_path, load_npz, save_npz


# ------------------------------------------------------------------------------- crafted pickles
class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class _Touch:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


PAYLOADS = [
    (_System, f"{os.system.__module__}.system"),
    (_Touch, f"{pathlib.Path.touch.__module__}.{pathlib.Path.touch.__qualname__}"),  # pathlib._local on 3.13
    (_Eval, "builtins.eval"),
]


def _evil_npz(path, payload_cls, marker):
    """A VideoPose3D-looking file whose pickled dict hides the payload among real arrays."""
    data = {"S1": {"Walking 1": np.zeros((4, 17, 3), dtype=np.float32), "Eating": payload_cls(marker)}}
    np.savez_compressed(path, positions_3d=np.array(data, dtype=object), plain=np.arange(3))


@pytest.mark.parametrize("payload_cls,global_name", PAYLOADS, ids=[p[1] for p in PAYLOADS])
def test_crafted_pickle_is_refused_and_never_runs(tmp_path, payload_cls, global_name):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.npz"
    _evil_npz(path, payload_cls, marker)
    with pytest.raises(UnsafeFileError) as ei:
        load_npz(path)
    msg = str(ei.value)
    assert str(path) in msg and global_name in msg and "\n" not in msg
    assert not marker.exists()  # the payload's code did not run


@pytest.mark.parametrize("payload_cls,global_name", PAYLOADS, ids=[p[1] for p in PAYLOADS])
def test_control_the_payload_is_real(tmp_path, payload_cls, global_name):
    """The same file through plain np.load(allow_pickle=True) does run the payload (in tmp_path):
    the refusal above is what keeps the marker from appearing."""
    marker = tmp_path / "marker"
    path = tmp_path / "evil.npz"
    _evil_npz(path, payload_cls, marker)
    with np.load(path, allow_pickle=True) as f:
        f["positions_3d"]
    assert marker.exists()


def _npz_with_raw_member(path, name, header: dict | None, body: bytes):
    buf = io.BytesIO()
    if header is not None:
        np.lib.format.write_array_header_1_0(buf, header)
    buf.write(body)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(name + ".npy", buf.getvalue())


def test_protocol0_global_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "old.npz"
    body = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    _npz_with_raw_member(path, "data", {"descr": "|O", "fortran_order": False, "shape": ()}, body)
    with pytest.raises(UnsafeFileError, match=r"os\.system") as ei:
        load_npz(path)
    assert str(path) in str(ei.value)
    assert not marker.exists()


def test_persistent_id_is_refused(tmp_path):
    path = tmp_path / "pid.npz"
    _npz_with_raw_member(path, "data", {"descr": "|O", "fortran_order": False, "shape": ()}, b"P0\n.")
    with pytest.raises(UnsafeFileError, match="persistent"):
        load_npz(path)


def test_structured_dtype_with_objects_is_refused(tmp_path):
    path = tmp_path / "struct.npz"
    _npz_with_raw_member(path, "data", {"descr": [("a", "<f4"), ("b", "|O")], "fortran_order": False,
                                        "shape": (2,)}, b"")
    with pytest.raises(UnsafeFileError, match="structured"):
        load_npz(path)


# --------------------------------------------------------------------------------- legit files
def test_videopose3d_style_dict_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    positions_2d = {
        "S1": {"Walking 1": [rng.normal(size=(5, 17, 2)).astype(np.float32) for _ in range(4)],
               "Directions": [rng.normal(size=(3, 17, 2)).astype(np.float32) for _ in range(4)]},
        "S9": {"Photo": [rng.normal(size=(2, 17, 2)).astype(np.float32) for _ in range(4)]},
    }
    metadata = {"layout_name": "h36m", "num_joints": 17,
                "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
                "scale": 1.5, "flag": True, "none": None, "pair": (1, 2), "c": 1 + 2j,
                "counts": np.int64(7), "ratio": np.float32(0.5)}
    path = tmp_path / "data_2d_h36m_gt.npz"
    save_npz(path, positions_2d=positions_2d, metadata=metadata)
    out = load_npz(path)
    assert set(out) == {"positions_2d", "metadata"}
    assert out["metadata"] == metadata
    assert set(out["positions_2d"]) == {"S1", "S9"}
    for s, acts in positions_2d.items():
        assert set(out["positions_2d"][s]) == set(acts)
        for a, cams in acts.items():
            got = out["positions_2d"][s][a]
            assert isinstance(got, list) and len(got) == len(cams)
            for g, c in zip(got, cams):
                assert g.dtype == np.float32
                np.testing.assert_array_equal(g, c)


@pytest.mark.parametrize("compressed", [True, False])
def test_plain_arrays_load_without_pickle(tmp_path, monkeypatch, compressed):
    arrays = {
        "f32": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "i64": np.array([-1, 0, 2**40], dtype=np.int64),
        "b": np.array([True, False]),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 17, 3), dtype=np.float32),
        "text": np.array(["S1", "Walking 1"]),
    }
    path = tmp_path / "plain.npz"
    save_npz(path, compressed=compressed, **arrays)

    class NoPickle:
        def __init__(self, *a, **k):
            raise AssertionError("a plain array went through the unpickler")

    monkeypatch.setattr(safeio, "RestrictedUnpickler", NoPickle)
    out = load_npz(path)
    with np.load(path, allow_pickle=False) as ref:
        for k, v in arrays.items():
            assert out[k].dtype == v.dtype and out[k].shape == v.shape, k
            np.testing.assert_array_equal(out[k], v)
            np.testing.assert_array_equal(out[k], ref[k])
    assert out["f32"].flags.writeable


# ------------------------------------------------------------------------------- broken files
def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_npz(tmp_path / "nope.npz")


def test_truncated_file(tmp_path):
    path = tmp_path / "t.npz"
    save_npz(path, data={"a": np.arange(10_000.0)}, plain=np.arange(10_000))
    raw = path.read_bytes()
    for cut in (len(raw) // 2, len(raw) - 10, 30):
        path.write_bytes(raw[:cut])
        with pytest.raises(DataError) as ei:
            load_npz(path)
        assert str(path) in str(ei.value)


def test_not_a_zip(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("this is not a zip file\n")
    with pytest.raises(DataError, match="not a valid .npz"):
        load_npz(path)
    # A bare .npy renamed .npz is not an npz either.
    np.save(tmp_path / "a.npy", np.arange(3))
    os.replace(tmp_path / "a.npy", tmp_path / "a.npz")
    with pytest.raises(DataError):
        load_npz(tmp_path / "a.npz")


def test_truncated_members(tmp_path):
    obj = {"descr": "|O", "fortran_order": False, "shape": ()}
    _npz_with_raw_member(tmp_path / "p.npz", "data", obj, b"\x80\x04\x95\x10\x00\x00")
    with pytest.raises(DataError, match="corrupt pickled data"):
        load_npz(tmp_path / "p.npz")
    _npz_with_raw_member(tmp_path / "a.npz", "x", {"descr": "<f8", "fortran_order": False, "shape": (10,)},
                         np.arange(4.0).tobytes())
    with pytest.raises(DataError, match="truncated array"):
        load_npz(tmp_path / "a.npz")
    _npz_with_raw_member(tmp_path / "h.npz", "x", None, b"garbage, not an npy header")
    with pytest.raises(DataError, match="not a valid .npy"):
        load_npz(tmp_path / "h.npz")
    _npz_with_raw_member(tmp_path / "v.npz", "x", None, b"\x93NUMPY\x09\x00rest")
    with pytest.raises(DataError, match="format version"):
        load_npz(tmp_path / "v.npz")


def test_corrupt_compressed_member(tmp_path):
    path = tmp_path / "c.npz"
    save_npz(path, plain=np.random.default_rng(0).normal(size=20_000))
    raw = bytearray(path.read_bytes())
    for i in range(200, 250):  # inside the deflate stream of the only member
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError):
        load_npz(path)


# ------------------------------------------------------------------------------- atomic writes
def test_atomic_path_leaves_nothing_on_exception(tmp_path):
    target = tmp_path / "out" / "result.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_path_keeps_old_file_on_exception_and_replaces_on_success(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("new, half")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_save_npz_failure_leaves_nothing(tmp_path):
    target = tmp_path / "x.npz"
    with pytest.raises(Exception):
        save_npz(target, data={"f": lambda: 0})  # not picklable
    assert list(tmp_path.iterdir()) == []
