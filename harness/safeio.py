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
import os
import pickle
import tempfile
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


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` admits only the plain-data globals above."""

    def __init__(self, file, *, source: str = "<pickle>"):
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafeFileError(
            f"{self.source}: refused to unpickle '{module}.{name}': only numpy arrays, dicts, lists, "
            "tuples, strings and numbers are allowed")

    def persistent_load(self, pid):  # noqa: D401 - pickle protocol hook
        raise UnsafeFileError(f"{self.source}: refused persistent id in pickle")


def _check_dtype(dtype: np.dtype, source: str) -> None:
    if dtype.hasobject and dtype != np.dtype(object):
        raise UnsafeFileError(f"{source}: structured dtype with objects is not supported")


def _read_npy(fp: io.BufferedIOBase, source: str) -> Any:
    """One ``.npy`` member: plain arrays are read without pickle; object arrays through the
    restricted unpickler. A 0-d object array (a pickled dict) is returned as its item."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise DataError(f"{source}: unsupported .npy format version {version}")
    except ValueError as e:
        raise DataError(f"{source}: not a valid .npy array ({e})") from None
    _check_dtype(dtype, source)
    if dtype.hasobject:
        try:
            arr = RestrictedUnpickler(fp, source=source).load()
        except UnsafeFileError:
            raise
        except Exception as e:  # truncated or corrupt pickle
            raise DataError(f"{source}: corrupt pickled data ({type(e).__name__}: {e})") from None
        if isinstance(arr, np.ndarray) and arr.shape == () and arr.dtype == object:
            return arr.item()
        return arr
    count = int(np.prod(shape)) if shape else 1
    data = fp.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise DataError(f"{source}: truncated array (expected {count * dtype.itemsize} bytes, got {len(data)})")
    arr = np.frombuffer(data, dtype=dtype)
    if fortran:
        return arr.reshape(shape[::-1]).transpose().copy()
    return arr.reshape(shape).copy()


def load_npz(path: str | Path) -> dict[str, Any]:
    """Load every member of an ``.npz`` file safely: ``{name: array or unpickled plain data}``.

    Raises :class:`DataError` for a missing, truncated or corrupt file and
    :class:`UnsafeFileError` for a pickle that asks for anything but plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    out: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with zf.open(info) as member:
                    out[name] = _read_npy(io.BufferedReader(member), f"{path}[{name}]")
    except zipfile.BadZipFile as e:
        raise DataError(f"{path}: not a valid .npz file ({e})") from None
    except (zipfile.LargeZipFile, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: unreadable .npz file ({type(e).__name__}: {e})") from None
    return out


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed into place (atomic on
    POSIX), on failure removed. Nothing half-written is ever left at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


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
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None

