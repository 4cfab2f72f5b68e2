"""Reading untrusted ``.npz`` files without running code, and writing files atomically.

VideoPose3D / P-STMO / D3DP npz files hold pickled dicts in 0-d object arrays.
``np.load(allow_pickle=True)`` on such a file runs whatever the pickle asks for. Here every
pickled payload goes through :class:`RestrictedUnpickler`, which admits only numpy arrays and
dtypes, dicts, lists, tuples, strings, bytes, numbers, booleans and None, and refuses anything
else before it is called.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import struct
import tempfile
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from harness.errors import DataError, UnsafeFileError

# The globals a pickled numpy array (of plain dtypes) needs, and nothing else.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("builtins", "complex"),
}


# Zip members: refuse, before decompressing anything, a member whose declared size is both large and
# far beyond what its compressed bytes can plausibly hold (a zip bomb), and archives whose members
# declare more than any real data file (VideoPose3D's npz are 0.1-0.5 GB; 3DHP's smaller).
BOMB_MIN_BYTES = 256 * 1024**2      # a member may only be suspicious above this declared size ...
BOMB_RATIO = 200                    # ... and when it declares more than this many times its compressed size
MAX_TOTAL_BYTES = 16 * 1024**3      # total declared uncompressed size of all members
_CHUNK = 16 * 1024**2               # array data is read in chunks of this many bytes


def format_bytes(n: int | float) -> str:
    """``1234`` -> ``'1.2 KB'`` (decimal units, one decimal; beyond petabytes ``'1.1e+37 B'``)."""
    if n >= 1e18:
        return f"{float(n):.1e} B"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000:
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


class _NdarrayType:
    """Stands in for ``numpy.ndarray`` in a pickle: it can be handed to ``_reconstruct`` (as numpy's
    pickles do) but not called, so no pickle can allocate ``ndarray(huge_shape)``."""

    def __repr__(self) -> str:
        return "<numpy.ndarray (restricted)>"


_NDARRAY = _NdarrayType()
_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's own _reconstruct, whatever module it lives in


def _shape_count(shape: Any, source: str, what: str) -> int:
    """Element count of a claimed shape, refusing anything but a tuple of non-negative ints
    (computed in Python integers: no overflow)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (int(shape),)
    if not isinstance(shape, tuple) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) for d in shape):
        raise DataError(f"{source}: {what} has an invalid shape {shape!r}")
    if any(int(d) < 0 for d in shape):
        raise DataError(f"{source}: {what} has a negative dimension in shape {tuple(int(d) for d in shape)}")
    return math.prod(int(d) for d in shape)


class _BoundedReader:
    """A read-only view of the next ``limit`` bytes of ``fp``: no read is ever asked of ``fp`` for
    more than what the member declares, whatever length a pickle claims."""

    def __init__(self, fp, limit: int):
        self.fp = fp
        self.left = max(0, int(limit))

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0 or n > self.left:
            n = self.left
        out = []
        while n > 0:
            block = self.fp.read(min(n, _CHUNK))
            if not block:
                break
            out.append(block)
            n -= len(block)
            self.left -= len(block)
        return b"".join(out)

    def readline(self) -> bytes:
        line = self.fp.readline(self.left) if self.left else b""
        self.left -= len(line)
        return line


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler whose ``find_class`` admits only the plain-data globals above, and that cannot be
    made to allocate more than the member it reads holds.

    Built on pickle's pure-Python unpickler, which reads a counted string before allocating it (the C
    one allocates the claimed length first). Every read is bounded by ``limit`` (the bytes the member
    declares); ``BYTEARRAY8`` is refused beyond it; ``numpy.ndarray`` is a non-callable stand-in;
    ``_reconstruct`` may allocate at most ``limit`` bytes in all (numpy's pickles ask for 0); and an
    array's state (``BUILD``) must hold the data its shape claims."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, *, source: str = "<pickle>", limit: int | None = None):
        self.limit = limit
        if limit is not None:
            file = _BoundedReader(file, limit)
        super().__init__(file, encoding="latin1")
        self.source = source
        self._budget = limit if limit is not None else 1 << 62

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            if name == "ndarray":
                return _NDARRAY
            if name == "_reconstruct":
                return self._reconstruct
            return super().find_class(module, name)
        raise UnsafeFileError(
            f"{self.source}: refused to unpickle '{module}.{name}': only numpy arrays, dicts, lists, "
            "tuples, strings and numbers are allowed")

    def persistent_load(self, pid):  # noqa: D401 - pickle protocol hook
        raise UnsafeFileError(f"{self.source}: refused persistent id in pickle")

    def _holds(self) -> str:
        return f"the member holds {format_bytes(self.limit)}" if self.limit is not None else "too large"

    def _reconstruct(self, subtype, shape, dtype):
        if subtype is not _NDARRAY:
            raise UnsafeFileError(f"{self.source}: refused to reconstruct a {subtype!r}: only numpy.ndarray")
        try:
            dt = np.dtype(dtype.decode("latin1") if isinstance(dtype, bytes) else dtype)
        except (TypeError, ValueError) as e:
            raise DataError(f"{self.source}: corrupt pickled data (dtype {dtype!r}: {e})") from None
        nbytes = _shape_count(shape, self.source, "a pickled array") * max(dt.itemsize, 1)
        if nbytes > self._budget:
            raise DataError(f"{self.source}: a pickled array claims {format_bytes(nbytes)} but {self._holds()}")
        self._budget -= nbytes
        return _RECONSTRUCT(np.ndarray, shape, dtype)

    def load_build(self):
        inst = self.stack[-2] if len(self.stack) >= 2 else None
        state = self.stack[-1] if self.stack else None
        if isinstance(inst, np.ndarray) and isinstance(state, tuple) and len(state) in (4, 5):
            shape, dt, raw = state[-4], state[-3], state[-1]
            count = _shape_count(shape, self.source, "a pickled array")
            itemsize = dt.itemsize if isinstance(dt, np.dtype) else 1
            nbytes = count * max(itemsize, 1)
            if self.limit is not None and nbytes > 8 * self.limit + 64:
                raise DataError(f"{self.source}: a pickled array claims {format_bytes(nbytes)} but {self._holds()}")
            if isinstance(dt, np.dtype) and dt.hasobject:
                if not isinstance(raw, list) or len(raw) != count:
                    got = f"{len(raw)} items" if isinstance(raw, list) else type(raw).__name__
                    raise DataError(f"{self.source}: corrupt pickled data (an object array of shape "
                                    f"{tuple(shape)} holds {got})")
            elif isinstance(raw, (bytes, bytearray, str)) and len(raw) != count * itemsize:
                raise DataError(f"{self.source}: corrupt pickled data (an array of shape {tuple(shape)} "
                                f"{dt} needs {format_bytes(count * itemsize)}, the pickle holds "
                                f"{format_bytes(len(raw))})")
        super().load_build()

    def load_bytearray8(self):
        (n,) = struct.unpack("<Q", self.read(8))
        if self.limit is not None and n > self.limit:
            raise DataError(f"{self.source}: a pickled bytearray claims {format_bytes(n)} but {self._holds()}")
        data = self.read(n)
        if len(data) != n:
            raise DataError(f"{self.source}: corrupt pickled data (truncated bytearray)")
        self.append(bytearray(data))

    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


def _check_dtype(dtype: np.dtype, source: str) -> None:
    if dtype.hasobject and dtype != np.dtype(object):
        raise UnsafeFileError(f"{source}: structured dtype with objects is not supported")


def _read_npy(fp: io.BufferedIOBase, source: str, size: int | None = None) -> Any:
    """One ``.npy`` member: plain arrays are read without pickle; object arrays through the
    restricted unpickler. A 0-d object array (a pickled dict) is returned as its item.

    ``size``: the bytes the member holds (its declared uncompressed size). The header's shape is
    checked against it before anything is allocated, and data are read in bounded chunks."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise DataError(f"{source}: unsupported .npy format version {version}")
    except (ValueError, SyntaxError, TypeError, tokenize.TokenError) as e:  # numpy's header parser
        raise DataError(f"{source}: not a valid .npy array ({' '.join(str(e).split())[:200]})") from None
    _check_dtype(dtype, source)
    available = None if size is None else max(0, size - fp.tell())
    if dtype.hasobject:
        try:
            arr = RestrictedUnpickler(fp, source=source, limit=available).load()
        except (UnsafeFileError, DataError):
            raise
        except Exception as e:  # truncated or corrupt pickle
            raise DataError(f"{source}: corrupt pickled data ({type(e).__name__}: {e})") from None
        if isinstance(arr, np.ndarray) and arr.shape == () and arr.dtype == object:
            return arr.item()
        return arr
    count = _shape_count(tuple(shape), source, "the .npy header")
    if dtype.itemsize == 0:
        raise DataError(f"{source}: dtype {dtype} has no size; not a data array")
    nbytes = count * dtype.itemsize
    if available is not None and nbytes > available:
        raise DataError(f"{source}: truncated array: header claims {format_bytes(nbytes)} "
                        f"(shape {tuple(shape)}, {dtype}) but the member holds {format_bytes(available)}")
    buf = np.empty(nbytes, dtype=np.uint8)
    view = memoryview(buf)
    got = 0
    while got < nbytes:
        n = fp.readinto(view[got:got + _CHUNK])
        if not n:
            break
        got += n
    if got != nbytes:
        raise DataError(f"{source}: truncated array (expected {nbytes} bytes, got {got})")
    arr = buf.view(dtype)
    if fortran:
        return arr.reshape(shape[::-1]).transpose().copy()
    return arr.reshape(shape)


def _check_members(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse, from the central directory alone, members that would cost more than the file can hold."""
    on_disk = path.stat().st_size
    total = 0
    for info in infos:
        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        where = f"{path}[{name}]"
        if info.compress_size > on_disk:
            raise DataError(f"{where}: declares {format_bytes(info.compress_size)} of compressed data but the "
                            f"file holds {format_bytes(on_disk)}")
        if info.file_size > BOMB_MIN_BYTES and info.file_size > BOMB_RATIO * max(info.compress_size, 1):
            raise DataError(f"{where}: declares {format_bytes(info.file_size)} uncompressed from "
                            f"{format_bytes(info.compress_size)} compressed (ratio "
                            f"{info.file_size / max(info.compress_size, 1):,.0f}:1, the limit is {BOMB_RATIO}:1 "
                            f"above {format_bytes(BOMB_MIN_BYTES)}); refused as a likely zip bomb")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise DataError(f"{path}: members declare {format_bytes(total)} uncompressed in all (the limit is "
                        f"{format_bytes(MAX_TOTAL_BYTES)}); refused")


def load_npz(path: str | Path) -> dict[str, Any]:
    """Load every member of an ``.npz`` file safely: ``{name: array or unpickled plain data}``.

    Raises :class:`DataError` for a missing, truncated, corrupt or hostile file (a zip bomb, a header
    claiming more than the member holds: refused before anything large is allocated) and
    :class:`UnsafeFileError` for a pickle that asks for anything but plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    out: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check_members(path, infos)
            for info in infos:
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                size = info.file_size if info.compress_type != zipfile.ZIP_STORED else min(
                    info.file_size, info.compress_size)
                with zf.open(info) as member:
                    out[name] = _read_npy(io.BufferedReader(member), f"{path}[{name}]", size=size)
    except zipfile.BadZipFile as e:
        raise DataError(f"{path}: not a valid .npz file ({e})") from None
    except (zipfile.LargeZipFile, EOFError, OSError, zlib.error, NotImplementedError, RuntimeError) as e:
        # RuntimeError: zipfile's "File ... is encrypted, password required" (a flipped flag bit)
        raise DataError(f"{path}: unreadable .npz file ({type(e).__name__}: {e})") from None
    return out


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed into place (atomic on
    POSIX), on failure removed. Nothing half-written is ever left at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    except OSError as e:
        if _is_disk_full(e):  # no inode or block left for the temporary file
            raise _disk_full_error(path) from None
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as e:  # a full disk (or quota) while writing or renaming: one line, the old file kept
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if _is_disk_full(e):
            raise _disk_full_error(path) from None
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _is_disk_full(e: OSError) -> bool:
    """ENOSPC or EDQUOT (also when only the message says so, as h5py's errors do)."""
    import errno

    return e.errno in (errno.ENOSPC, errno.EDQUOT) or any(
        m in str(e) for m in ("No space left on device", "Disk quota exceeded"))


def _disk_full_error(path: Path):
    """The one line for a write that filled the disk: ``<path>: disk full while writing (N MB free); ...``."""
    import shutil

    from harness.errors import HarnessError

    try:
        free = f"{shutil.disk_usage(path.parent).free / 1e6:.0f}"
    except OSError:
        free = "?"
    kept = "the previous file is kept" if path.exists() else "nothing was written"
    return HarnessError(f"{path}: disk full while writing ({free} MB free); {kept}")


def save_npz(path: str | Path, compressed: bool = True, **arrays: Any) -> None:
    """``np.savez[_compressed]`` written atomically. Dict values are stored the way VideoPose3D
    does (a 0-d object array holding the pickled dict)."""
    packed = {k: (np.array(v, dtype=object) if isinstance(v, dict) else v) for k, v in arrays.items()}
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            (np.savez_compressed if compressed else np.savez)(fh, **packed)


# ------------------------------------------------------------------------------------------ JSON
def write_json(path: Path, obj: Any) -> None:
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:  # a directory, unreadable, ...
        raise DataError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise DataError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as e:  # e.g. an integer of more digits than Python converts
        raise DataError(f"{path}: not valid JSON ({' '.join(str(e).split())})") from None

