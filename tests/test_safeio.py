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


# ------------------------------------------------------------------------ hostile files cost nothing
def _max_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_header_claiming_terabytes_is_refused_without_allocating(tmp_path):
    """A tiny npz whose npy header claims (100000, 100000, 100) float64 (8 TB): one line naming the
    file and member, and no memory spent (the shape is bounded by the bytes the member holds)."""
    path = tmp_path / "huge.npz"
    _npz_with_raw_member(path, "positions_3d", {"descr": "<f8", "fortran_order": False,
                                                "shape": (100000, 100000, 100)}, b"\0" * 1000)
    before = _max_rss_mb()
    with pytest.raises(DataError) as ei:
        load_npz(path)
    assert _max_rss_mb() - before < 200
    assert _one_line(ei) == (f"{path}[positions_3d]: truncated array: header claims 8.0 TB (shape (100000, 100000, "
                             "100), float64) but the member holds 1.0 KB")


def test_64_gb_header_in_a_real_sized_member(tmp_path):
    """The same with 64 GB claimed beside real data: the member's declared size bounds it."""
    path = tmp_path / "h.npz"
    _npz_with_raw_member(path, "positions_3d", {"descr": "<f4", "fortran_order": False,
                                                "shape": (16 * 10**9,)}, np.arange(300, dtype=np.float32).tobytes())
    with pytest.raises(DataError) as ei:
        load_npz(path)
    assert _one_line(ei).endswith("[positions_3d]: truncated array: header claims 64.0 GB (shape (16000000000,), "
                                  "float32) but the member holds 1.2 KB")


@pytest.mark.parametrize("descr, shape, why", [
    ("<f8", (-1, 17, 3), "the .npy header has a negative dimension in shape (-1, 17, 3)"),
    ("<f8", (2**40, 2**40, 2**40), "truncated array: header claims 1.1e+37 B (shape (1099511627776, 1099511627776, "
                                      "1099511627776), float64) but the member holds 64 B"),
    ("|S0", (3,), "dtype |S0 has no size; not a data array"),
])
def test_absurd_header_shapes(tmp_path, descr, shape, why):
    path = tmp_path / "s.npz"
    # write_array_header refuses nothing: the shape goes into the header text as is
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    buf.write(b"\0" * 64)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", buf.getvalue())
    with pytest.raises(DataError) as ei:
        load_npz(path)
    assert _one_line(ei).startswith(f"{path}[x]: {why}")


def _forge_declared_size(path, new_size: int) -> None:
    """Rewrite the uncompressed size of the (only) member in the zip's central directory and local
    header: what a zip bomb's directory says, without writing gigabytes."""
    raw = bytearray(path.read_bytes())
    cd = raw.rindex(b"PK\x01\x02")
    raw[cd + 24:cd + 28] = new_size.to_bytes(4, "little")
    raw[22:26] = new_size.to_bytes(4, "little")  # the local header (member 0 at offset 0)
    path.write_bytes(bytes(raw))


def test_zip_bomb_is_refused_before_decompressing(tmp_path, monkeypatch):
    """A member declaring 3.4 GB from a few KB compressed is refused from the central directory; the
    member is never opened."""
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (425_000_000,)})
        zf.writestr("positions_3d.npy", buf.getvalue() + b"\0" * 4_000_000)
    _forge_declared_size(path, 3_400_000_000)

    def never(*a, **k):
        raise AssertionError("the member was opened")

    monkeypatch.setattr(zipfile.ZipFile, "open", never)
    before = _max_rss_mb()
    with pytest.raises(DataError) as ei:
        load_npz(path)
    assert _max_rss_mb() - before < 200
    msg = _one_line(ei)
    assert msg.startswith(f"{path}[positions_3d]: declares 3.4 GB uncompressed from ")
    assert msg.endswith("refused as a likely zip bomb")


def test_real_deflate_bomb_streamed(tmp_path):
    """A real bomb: 300 MB of zeros deflated to ~0.3 MB (written streaming, no 300 MB buffer)."""
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("positions_3d.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (300 * 2**20 // 8,)})
            block = bytes(2**22)
            for _ in range(75):
                fh.write(block)
    assert path.stat().st_size < 2_000_000
    before = _max_rss_mb()
    with pytest.raises(DataError, match="refused as a likely zip bomb") as ei:
        load_npz(path)
    assert _max_rss_mb() - before < 100
    assert _one_line(ei).startswith(f"{path}[positions_3d]: declares 314.6 MB uncompressed from ")


def test_stream_longer_than_declared_is_stopped(tmp_path):
    """A member whose deflate stream decompresses to more than its declared size: zipfile stops at the
    declared size (and its CRC then fails), so nothing beyond it is read or allocated."""
    path = tmp_path / "long.npz"
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (1_000_000,)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", buf.getvalue() + bytes(8_000_000))
    _forge_declared_size(path, 1024)
    with pytest.raises(DataError) as ei:
        load_npz(path)
    assert _one_line(ei) == f"{path}: not a valid .npz file (Bad CRC-32 for file 'x.npy')"


def test_total_declared_size_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(safeio, "MAX_TOTAL_BYTES", 1000)
    path = tmp_path / "t.npz"
    save_npz(path, compressed=False, a=np.zeros(100), b=np.zeros(100))
    with pytest.raises(DataError) as ei:
        load_npz(path)
    assert _one_line(ei) == f"{path}: members declare 1.9 KB uncompressed in all (the limit is 1.0 KB); refused"


def _pickled_member(path, body: bytes) -> None:
    _npz_with_raw_member(path, "positions_3d", {"descr": "|O", "fortran_order": False, "shape": ()}, body)


def _reconstruct_pickle(shape, state_shape=None, raw=b"abc") -> bytes:
    """numpy's own pickle of an array, with the shapes rewritten by hand."""
    import pickle

    mod = np.zeros(0).__reduce__()[0].__module__
    out = b"\x80\x02c" + mod.encode() + b"\n_reconstruct\ncnumpy\nndarray\n"
    out += pickle.dumps(tuple(shape), protocol=2)[2:-1] + b"C\x01b\x87R"  # (ndarray, shape, b'b') REDUCE
    if state_shape is not None:
        dt = pickle.dumps(np.dtype("<f8"), protocol=2)[2:-1]
        out += (b"(K\x01" + pickle.dumps(tuple(state_shape), protocol=2)[2:-1] + dt + b"\x89"
                + pickle.dumps(raw, protocol=3)[2:-1] + b"tb")
    return out + b"."


@pytest.mark.parametrize("shape, state_shape, needle", [
    ((100000, 100000, 100), None, "a pickled array claims 1.0 TB but the member holds 75 B"),  # int8
    ((0,), (100000, 100000, 100), "a pickled array claims 8.0 TB but the member holds"),
    ((0,), (2**40, 2**40), "a pickled array claims"),
    ((0,), (100,), "corrupt pickled data (an array of shape (100,) float64 needs 800 B, the pickle holds 3 B)"),
    ((0,), (-3,), "negative dimension"),
])
def test_pickled_array_cannot_allocate_more_than_the_member(tmp_path, shape, state_shape, needle):
    path = tmp_path / "p.npz"
    _pickled_member(path, _reconstruct_pickle(shape, state_shape))
    before = _max_rss_mb()
    with pytest.raises(DataError) as ei:
        load_npz(path)
    assert _max_rss_mb() - before < 200
    msg = _one_line(ei)
    assert msg.startswith(f"{path}[positions_3d]: ") and needle in msg, msg


def test_pickle_control_reconstruct_round_trip(tmp_path):
    """The hand-made pickle above is right: with a consistent shape and data it loads."""
    path = tmp_path / "ok.npz"
    _pickled_member(path, _reconstruct_pickle((0,), (2,), np.array([1.5, -2.0]).tobytes()))
    np.testing.assert_array_equal(load_npz(path)["positions_3d"], [1.5, -2.0])


@pytest.mark.parametrize("opcode", [b"\x8e", b"\x8d", b"\x96", b"\x95"])  # BINBYTES8 BINUNICODE8 BYTEARRAY8 FRAME
def test_pickle_counted_lengths_are_bounded(tmp_path, opcode):
    """A counted string claiming 2^45 bytes costs nothing: reads are bounded by the member."""
    import struct

    path = tmp_path / "c.npz"
    _pickled_member(path, b"\x80\x04" + opcode + struct.pack("<Q", 2**45) + b"abc")
    before = _max_rss_mb()
    with pytest.raises(DataError) as ei:
        load_npz(path)
    assert _max_rss_mb() - before < 100
    assert _one_line(ei).startswith(f"{path}[positions_3d]: ")
    assert "MemoryError" not in str(ei.value)


def test_ndarray_global_is_not_callable(tmp_path):
    """``numpy.ndarray((huge,))`` through REDUCE cannot run: the global is a stand-in."""
    path = tmp_path / "n.npz"
    _pickled_member(path, b"\x80\x02cnumpy\nndarray\nJ\x00\xe1\xf5\x05\x85\x85R.")
    with pytest.raises(DataError, match="corrupt pickled data") as ei:
        load_npz(path)
    _one_line(ei)
