"""HDF5 PoseSet cache: hits, content-keyed invalidation, corrupt files rebuilt, never the data root."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest

from harness.data.base import PoseSet
from harness.data.cache import (CACHE_FORMAT_VERSION, cache_file, cache_key, cached_load, default_cache_dir,
                                file_sha256, load_posesets, save_posesets)


def _poseset(n: int, seed: int = 0, labels=("S1", "Walking", "Walking 1")) -> PoseSet:
    rng = np.random.default_rng(seed)
    return PoseSet(
        pose_2d=rng.normal(size=(n, 17, 2)).astype(np.float32),
        pose_3d=rng.normal(size=(n, 17, 3)).astype(np.float32),
        subject=np.array([labels[0]] * n), action=np.array([labels[1]] * n), sequence=np.array([labels[2]] * n),
        camera=(np.arange(n) % 4).astype(np.int16), frame=np.arange(n, dtype=np.int32),
        valid=(np.arange(n) % 3 != 0), meta={"dataset": "t", "parents": (-1, 0, 1), "path": Path("/x/y"),
                                              "n": np.int64(3), "nested": {"a": [1, 2]}})


def _sets(seed: int = 0) -> dict[str, PoseSet]:
    return {"train": _poseset(50, seed), "test": _poseset(20, seed + 1, ("S9", "Photo", "Photo 1"))}


@pytest.fixture
def env(tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    a, b = src / "a.npz", src / "b.h5"
    a.write_bytes(b"source a " * 1000)
    b.write_bytes(b"source b")
    calls = []

    def build():
        calls.append(1)
        return _sets(len(calls))

    return {"sources": [a, b], "cache": tmp_path / "cache", "calls": calls, "build": build,
            "parts": {"dataset": "t", "keypoints": "gt", "v": 1}}


def _load(env):
    return cached_load(env["parts"], env["sources"], env["build"], env["cache"])


def _assert_same(x: dict[str, PoseSet], y: dict[str, PoseSet]) -> None:
    assert list(x) == list(y)
    for k in x:
        for name in ("pose_2d", "pose_3d", "subject", "action", "sequence", "camera", "frame", "valid"):
            a, b = getattr(x[k], name), getattr(y[k], name)
            assert a.dtype.kind == b.dtype.kind and a.dtype.itemsize <= 4 * 64, name
            np.testing.assert_array_equal(a, b, err_msg=name)
        assert y[k].pose_2d.dtype == np.float32 and y[k].camera.dtype == np.int16
        assert y[k].frame.dtype == np.int32 and y[k].valid.dtype == bool and y[k].subject.dtype.kind == "U"


def test_second_load_hits_cache(env):
    first = _load(env)
    second = _load(env)
    assert len(env["calls"]) == 1
    _assert_same(first, second)
    meta = second["train"].meta
    assert meta == {"dataset": "t", "parents": [-1, 0, 1], "path": "/x/y", "n": 3, "nested": {"a": [1, 2]}}
    files = list(env["cache"].glob("*.h5"))
    assert files == [cache_file(env["cache"], env["parts"])] and files[0].name.startswith("t-gt-")
    assert not list(env["cache"].glob(".*"))  # no temporary left behind


def test_changed_source_byte_rebuilds(env):
    _load(env)
    a = env["sources"][0]
    data = bytearray(a.read_bytes())
    data[100] ^= 1
    a.write_bytes(bytes(data))
    rebuilt = _load(env)
    assert len(env["calls"]) == 2
    _assert_same(rebuilt, _sets(2))
    _load(env)
    assert len(env["calls"]) == 2  # the rebuilt entry is used; still one file for these key parts
    assert len(list(env["cache"].glob("*.h5"))) == 1


def test_changed_key_parts_use_another_file(env):
    _load(env)
    env["parts"] = dict(env["parts"], keypoints="cpn_ft_h36m_dbb")
    _load(env)
    assert len(env["calls"]) == 2
    assert len(list(env["cache"].glob("*.h5"))) == 2


def _pose_bytes_offset(path: Path, arr: np.ndarray) -> int:
    blob = path.read_bytes()
    off = blob.find(arr.tobytes()[:64])
    assert off > 0
    return off


@pytest.mark.parametrize("damage", ["flip_data", "truncate", "garbage", "empty", "wrong_key", "missing_column"])
def test_corrupt_cache_is_rebuilt(env, damage, caplog):
    first = _load(env)
    path = cache_file(env["cache"], env["parts"])
    if damage == "flip_data":  # a byte inside pose_3d's stored values: caught by the checksum
        off = _pose_bytes_offset(path, first["train"].pose_3d)
        blob = bytearray(path.read_bytes())
        blob[off + 10] ^= 0xFF
        path.write_bytes(bytes(blob))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00garbage" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "wrong_key":
        with h5py.File(path, "r+") as f:
            f.attrs["key"] = "0" * 64
    elif damage == "missing_column":
        with h5py.File(path, "r+") as f:
            del f["test/sequence"]
    with caplog.at_level(logging.INFO, logger="harness.data.cache"):
        again = _load(env)
    assert len(env["calls"]) == 2
    _assert_same(again, _sets(2))
    # ... and the rewritten file is valid again.
    assert load_posesets(path, cache_key(env["parts"], env["sources"])) is not None


def test_flipped_byte_fails_checksum_on_read(env):
    first = _load(env)
    path = cache_file(env["cache"], env["parts"])
    off = _pose_bytes_offset(path, first["test"].pose_2d)
    blob = bytearray(path.read_bytes())
    blob[off] ^= 0x01
    path.write_bytes(bytes(blob))
    assert load_posesets(path) is None


def test_format_version_mismatch_is_not_trusted(env):
    _load(env)
    path = cache_file(env["cache"], env["parts"])
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = CACHE_FORMAT_VERSION + 1
    assert load_posesets(path) is None


def test_unwritable_cache_only_warns(env, tmp_path, caplog):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    env["cache"] = blocker / "cache"
    with caplog.at_level(logging.WARNING, logger="harness.data.cache"):
        out = _load(env)
        out2 = _load(env)
    assert len(out["train"]) == 50 and len(out2["train"]) == 50 and len(env["calls"]) == 2
    assert "could not write cache" in caplog.text


def test_empty_and_unicode_posesets_round_trip(tmp_path):
    empty = PoseSet(pose_2d=np.zeros((0, 16, 2), np.float32), pose_3d=np.zeros((0, 16, 3), np.float32),
                    subject=np.zeros(0, "<U1"), action=np.zeros(0, "<U1"), sequence=np.zeros(0, "<U1"),
                    camera=np.zeros(0, np.int16), frame=np.zeros(0, np.int32), valid=np.zeros(0, bool), meta={})
    uni = _poseset(5, labels=("Sé", "Walking", "Wälking 1"))
    sets = {"train": empty, "test": uni}
    path = save_posesets(tmp_path / "c.h5", sets, key="k", key_parts={"a": 1})
    back = load_posesets(path, "k")
    _assert_same(sets, back)
    assert back["train"].pose_3d.shape == (0, 16, 3)
    assert load_posesets(path, "other") is None
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["key_parts"]) == {"a": 1}


def test_cache_key_depends_on_content_not_mtime(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"abc")
    k1 = cache_key({"x": 1}, [p])
    p.write_bytes(b"abc")
    assert cache_key({"x": 1}, [p]) == k1
    assert cache_key({"x": 2}, [p]) != k1
    p.write_bytes(b"abd")
    assert cache_key({"x": 1}, [p]) != k1
    assert file_sha256(p, chunk_size=2) == hashlib.sha256(b"abd").hexdigest()


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "hc"))
    assert default_cache_dir() == tmp_path / "hc"
    monkeypatch.delenv("HARNESS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "harness"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "harness"
