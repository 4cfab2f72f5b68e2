"""HDF5 cache of preprocessed PoseSets, keyed by the content of the files they came from.

``cached_load(key_parts, sources, build, cache_dir)`` returns ``build()``'s ``{split: PoseSet}``,
from the cache when a valid entry exists. The key is the sha256 of: the cache format version, the
caller's ``key_parts`` (dataset, keypoints name, loader version, ...) and the sha256 of every source
file's bytes (streamed). A changed source byte changes the key and the entry is rebuilt.

One file per ``key_parts`` (``<dataset>-<keypoints>-<hash of key_parts>.h5``), holding the full key
in its attributes: rebuilding for changed sources replaces the stale file instead of piling up new
ones. Files are written atomically (:func:`harness.safeio.atomic_path`); every dataset carries an
HDF5 Fletcher-32 checksum, so a damaged file fails to read and is rebuilt, never trusted. A cache
that cannot be written (read-only folder, full disk) only costs a warning.

Layout: root attributes ``format_version``, ``key``, ``key_parts`` (JSON), ``splits`` (JSON list);
one group per split with ``pose_2d`` ``pose_3d`` (float32), ``camera`` (int16), ``frame`` (int32),
``valid`` (bool) and ``subject`` ``action`` ``sequence`` as fixed-width UTF-8 bytes, and the
PoseSet's ``meta`` as a JSON attribute, less the per-sample arrays it carries (``gmm_2d``, DiffPose's
kernels of ``*_gmm`` keypoints), which are datasets ``meta.<name>`` (float32) beside the columns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from harness.data.base import PoseSet
from harness.errors import DataError
from harness.safeio import atomic_path

__all__ = ["CACHE_FORMAT_VERSION", "default_cache_dir", "file_sha256", "cache_key", "cache_file",
           "save_posesets", "load_posesets", "cached_load"]

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
_FLOAT_COLUMNS = ("pose_2d", "pose_3d")
_LABEL_COLUMNS = ("subject", "action", "sequence")
_OTHER_COLUMNS = {"camera": np.int16, "frame": np.int32, "valid": np.bool_}
_META_ARRAYS = ("gmm_2d",)  # per-sample float32 arrays in PoseSet.meta, stored as datasets
_CHUNK_BYTES = 1 << 20


def default_cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/harness`` (``~/.cache/harness``)."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "harness"


def file_sha256(path: str | Path, chunk_size: int = 1 << 22) -> str:
    """sha256 of a file's bytes, read in chunks."""
    path = Path(path)
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk_size):
                h.update(block)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: unreadable ({e.strerror or e})") from None
    return h.hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in (sorted(obj) if isinstance(obj, (set, frozenset)) else obj)]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def _dumps(obj: Any) -> str:
    return json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"))


def cache_key(key_parts: dict, sources: Iterable[str | Path]) -> str:
    """Full key: format version + key_parts + (file name, sha256 of bytes) of every source."""
    digests = [[Path(p).name, file_sha256(p)] for p in sources]
    return hashlib.sha256(_dumps({"format": CACHE_FORMAT_VERSION, "parts": key_parts,
                                  "sources": digests}).encode()).hexdigest()


def cache_file(cache_dir: str | Path, key_parts: dict) -> Path:
    """Where the entry for ``key_parts`` lives (independent of the sources' content)."""
    slug = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", str(key_parts[k]))[:40]
                    for k in ("dataset", "keypoints") if k in key_parts) or "posesets"
    digest = hashlib.sha256(_dumps({"format": CACHE_FORMAT_VERSION, "parts": key_parts}).encode()).hexdigest()
    return Path(cache_dir) / f"{slug}-{digest[:16]}.h5"


# ---------------------------------------------------------------------------------------- writing
def _encode_labels(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.kind == "S":
        return arr
    arr = arr.astype(str)
    try:
        out = arr.astype("S")  # vectorised; ASCII only
    except UnicodeEncodeError:
        out = np.char.encode(arr, "utf-8")
    return out if out.dtype.itemsize > 0 else out.astype("S1")


def _decode_labels(arr: np.ndarray) -> np.ndarray:
    try:
        return arr.astype("U")
    except UnicodeDecodeError:
        return np.char.decode(arr, "utf-8")


def _write_column(group, name: str, data: np.ndarray) -> None:
    data = np.ascontiguousarray(data)
    row_bytes = max(1, int(np.prod(data.shape[1:], dtype=np.int64)) * data.dtype.itemsize)
    rows = max(1, min(max(data.shape[0], 1), _CHUNK_BYTES // row_bytes))
    group.create_dataset(name, data=data, chunks=(rows,) + data.shape[1:], maxshape=(None,) + data.shape[1:],
                         fletcher32=True)


def save_posesets(path: str | Path, sets: dict[str, PoseSet], key: str, key_parts: dict | None = None) -> Path:
    """Write ``{split: PoseSet}`` to an HDF5 cache file, atomically."""
    import h5py

    path = Path(path)
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format_version"] = CACHE_FORMAT_VERSION
            f.attrs["key"] = key
            f.attrs["key_parts"] = _dumps(key_parts or {})
            f.attrs["splits"] = json.dumps(list(sets))
            for split, ps in sets.items():
                g = f.create_group(split)
                g.attrs["meta"] = _dumps({k: v for k, v in ps.meta.items() if k not in _META_ARRAYS})
                g.attrs["length"] = len(ps)
                for name in _META_ARRAYS:
                    if ps.meta.get(name) is not None:
                        _write_column(g, f"meta.{name}", np.asarray(ps.meta[name], dtype=np.float32))
                for name in _FLOAT_COLUMNS:
                    _write_column(g, name, np.asarray(getattr(ps, name), dtype=np.float32))
                for name, dtype in _OTHER_COLUMNS.items():
                    _write_column(g, name, np.asarray(getattr(ps, name), dtype=dtype))
                for name in _LABEL_COLUMNS:
                    _write_column(g, name, _encode_labels(getattr(ps, name)))
    return path


# ---------------------------------------------------------------------------------------- reading
class _Invalid(Exception):
    pass


def load_posesets(path: str | Path, key: str | None = None) -> dict[str, PoseSet] | None:
    """Read a cache file; None if it is absent, for another key, or damaged in any way."""
    import h5py

    path = Path(path)
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            if int(f.attrs.get("format_version", -1)) != CACHE_FORMAT_VERSION:
                raise _Invalid("format version differs")
            stored = f.attrs.get("key")
            stored = stored.decode() if isinstance(stored, bytes) else stored
            if key is not None and stored != key:
                raise _Invalid("sources or key changed")
            out = {}
            for split in json.loads(f.attrs["splits"]):
                g = f[split]
                n = int(g.attrs["length"])
                cols = {name: g[name][()] for name in _FLOAT_COLUMNS + tuple(_OTHER_COLUMNS)}
                cols.update({name: _decode_labels(g[name][()]) for name in _LABEL_COLUMNS})
                for name, arr in cols.items():
                    if arr.shape[0] != n:
                        raise _Invalid(f"{split}/{name} has {arr.shape[0]} rows, expected {n}")
                for name in _FLOAT_COLUMNS:
                    if cols[name].dtype != np.float32 or cols[name].ndim != 3:
                        raise _Invalid(f"{split}/{name} has dtype {cols[name].dtype} / ndim {cols[name].ndim}")
                meta = json.loads(g.attrs["meta"])
                if not isinstance(meta, dict):
                    raise _Invalid(f"{split} meta is not a dict")
                for name in _META_ARRAYS:
                    if f"meta.{name}" in g:
                        arr = g[f"meta.{name}"][()]
                        if arr.shape[:1] != (n,) or arr.dtype != np.float32:
                            raise _Invalid(f"{split}/meta.{name} has shape {arr.shape}, dtype {arr.dtype}")
                        meta[name] = arr
                out[split] = PoseSet(meta=meta, **cols)
            return out
    except _Invalid as e:
        log.info("cache %s not used: %s", path, e)
    except Exception as e:  # noqa: BLE001 - any failure to read means the file is not trusted
        log.warning("cache %s is damaged (%s: %s); rebuilding", path, type(e).__name__, e)
    return None


def cached_load(key_parts: dict, sources: list[str | Path], build: Callable[[], dict[str, PoseSet]],
                cache_dir: str | Path) -> dict[str, PoseSet]:
    """``build()``'s result, read from ``cache_dir`` when a valid entry for ``key_parts`` and the
    current content of ``sources`` exists; otherwise built and written there (atomically)."""
    t0 = time.perf_counter()
    key = cache_key(key_parts, sources)
    path = cache_file(cache_dir, key_parts)
    hit = load_posesets(path, key)
    if hit is not None:
        log.info("cache hit %s (%.1f s)", path, time.perf_counter() - t0)
        return hit
    sets = build()
    try:
        save_posesets(path, sets, key, key_parts)
        log.info("cache written %s", path)
    except OSError as e:
        log.warning("could not write cache %s (%s); continuing without it", path, e)
    return sets
