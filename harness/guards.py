"""The command line's option checks: one function per option, shared by every command that has it
(train, ablate, eval, bench, data, import-weights), so a value one command refuses, all of them refuse
with the same one line; and all of it runs before anything is created on disk.

- :func:`check_options` checks whatever options a command passes it, in one fixed order.
- :func:`check_out` is the one rule for an output folder: not an existing file, creatable, and never
  inside (or equal to) a data folder (``--data-root`` resolved, symlinks followed, plus the folders its
  data files link into).
- :func:`check_not_input` refuses an output file that is one of the command's input data files.
- :func:`cleanup_on_refusal` removes an output folder the command created itself when it is refused
  before any result exists in it.

Every refusal is a :class:`harness.errors.ConfigError` with one line naming the option and the value.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from harness.errors import ConfigError, HarnessError

PRECISIONS = ("fp32", "bf16")
_KEYPOINTS_RE = re.compile(r"[A-Za-z0-9_.\-]+")
# Benchmark data files (harness.data.h36m / harness.data.mpi3dhp): what a data folder holds.
_DATA_FILE_RE = re.compile(r"(data_3d_h36m\.npz|data_2d_h36m_.+\.npz|cameras\.h5|data_(test|train)_3dhp\.npz)")


def is_data_file(name: str) -> bool:
    """True for a benchmark data file's name: data_3d_h36m.npz, data_2d_h36m_*.npz, cameras.h5,
    data_test_3dhp.npz, data_train_3dhp.npz."""
    return bool(_DATA_FILE_RE.fullmatch(name))
# What a refused command may leave in a folder it created without anything being lost by removing it:
# run configs, identities, fitted noise, the training log (harness/train/records.py), locks and temporary
# files (no checkpoint, metrics or predictions).
_NOT_RESULTS = {"config.json", "identity.json", "noise.json", "train.log", ".lock"}


# ------------------------------------------------------------------------------ one check an option
def check_device(value: str | None) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``; CUDA must be available (and device N exist): the rule of
    :func:`harness.device.select_device`, which every run applies again."""
    if value is None:
        return
    from harness.device import select_device

    select_device(value)


def check_precision(value: str | None, option: str = "--precision") -> None:
    if value is not None and value not in PRECISIONS:
        raise ConfigError(f"{option} {value!r}: must be one of {', '.join(PRECISIONS)}")


def check_profile(value: str | None, option: str = "--profile", profiles: Path | str | None = None) -> None:
    """A built-in profile, or one of the user's ``--profiles`` file (read and checked here first, so a bad
    file is one line naming it): :func:`harness.config.check_profile_name`."""
    if value is None and profiles is None:
        return
    from harness import config

    if value is None:
        config.profile_files(profiles)
        return
    config.check_profile_name(value, profiles, option)


def check_recipe(value: str | None, option: str = "--recipe") -> None:
    if value is None:
        return
    from harness.config import check_recipe_name

    check_recipe_name(value, option)


def check_keypoints(value: str | None, option: str = "--keypoints") -> None:
    """A 2D keypoints name (``data_2d_h36m_<name>.npz``): letters, digits, ``_ . -``, no path."""
    if value is not None and (not _KEYPOINTS_RE.fullmatch(value) or value in (".", "..")):
        # the loaders' own line (harness.data.h36m), so `data check` and train say the same
        raise ConfigError(f"keypoints {value!r}: expected a name like gt, cpn_ft_h36m_dbb or sh_pt_mpii")


def check_count(value: int | Sequence[int] | None, option: str, minimum: int) -> None:
    """An integer option (or each of a comma-separated list) at least ``minimum``: seeds, epochs, hypotheses."""
    if value is None:
        return
    for v in ([value] if isinstance(value, int) else value):
        if v < minimum:
            raise ConfigError(f"{option} {v}: must be an integer >= {minimum}")


def parse_ints(text: str, option: str) -> list[int]:
    """A comma-separated list of integers (``--seeds 0,1``, ``--hypotheses 1,5``)."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{option}: empty list")
    try:
        return [int(t) for t in items]
    except ValueError:
        raise ConfigError(f"{option}: expected comma-separated integers, got {text!r}") from None


def check_names(values: str | Sequence[str] | None, kind: str, option: str,
                valid_names: Sequence[str] | None = None) -> None:
    """Variant / noise / benchmark names (or any other ``kind`` of ``valid_names``), one or a list:
    ``<option>: unknown <kind> '<name>'; valid: ...``."""
    if values is None:
        return
    if kind == "benchmark":
        from harness.protocols import BENCHMARKS

        valid: Sequence[str] = BENCHMARKS
    elif valid_names is not None:
        valid = valid_names
    else:
        from harness.variants import NOISES, VARIANTS

        valid = (VARIANTS if kind == "variant" else NOISES).names()
    for name in ([values] if isinstance(values, str) else values):
        if name not in valid:
            raise ConfigError(f"{option}: unknown {kind} '{name}'; valid: {', '.join(valid)}")


def check_data_root(value: Path | str | None, option: str = "--data-root") -> None:
    if value is None:
        return
    path = Path(value)
    if not path.exists():
        raise ConfigError(f"{option} {path}: folder not found")
    if not path.is_dir():
        raise ConfigError(f"{option} {path}: not a folder")


def data_folders(data_root: Path | str) -> list[Path]:
    """The real folders a data root stands for: itself resolved (symlinks followed), and every folder its
    data files (and those of its ``h36m/`` and ``3dhp/`` folders) link into."""
    root = Path(data_root)
    found = [root.resolve()]
    for folder in (root, root / "h36m", root / "3dhp"):
        if not folder.is_dir():
            continue
        with contextlib.suppress(OSError):
            for p in folder.iterdir():
                if is_data_file(p.name) and p.is_symlink():
                    real = p.resolve().parent
                    if real not in found:
                        found.append(real)
    return found


def check_out(out: Path | str | None, data_root: Path | str | None = None, option: str = "--out",
              kind: str = "folder", what: str = "results folder") -> None:
    """The one rule for an output path (``kind`` folder or file): not a file where a folder belongs (or
    the reverse), creatable (its first existing ancestor a writable folder), and, given ``data_root``,
    never inside or equal to a data folder (:func:`data_folders`). The folder messages are
    :func:`harness.runs.check_writable`'s (``<out>: cannot create the results folder (File exists)``),
    which train and ablate gave before anything else looked."""
    if out is None:
        return
    out = Path(out)
    if kind == "folder" and out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: cannot create the {what} ({os.strerror(errno.EEXIST)})")
    if kind == "file" and out.is_dir():
        raise ConfigError(f"{option} {out}: is a folder; give a file name")
    anc = Path(os.path.abspath(out if kind == "folder" else out.parent))
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise ConfigError(f"{out}: cannot create the {what} ({os.strerror(errno.ENOTDIR)})")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise ConfigError(f"{out}: cannot create the {what} ({os.strerror(errno.EACCES)})")
    if data_root is None or not Path(data_root).is_dir():
        return
    real_out = out.resolve()
    for folder in data_folders(data_root):
        if real_out == folder or folder in real_out.parents:
            raise ConfigError(f"{option} {out}: inside the data folder {folder} (--data-root {data_root}); "
                              "write results elsewhere")


def check_not_input(out: Path | str, inputs: Iterable[Path | str], option: str = "--out") -> None:
    """An output file must not be one of the command's input data files (symlinks followed)."""
    real = Path(out).resolve()
    for p in inputs:
        if Path(p).exists() and Path(p).resolve() == real:
            raise ConfigError(f"{option} {out}: is the input data file {p}; give another file name")


def check_options(**options: Any) -> None:
    """Check the options a command passes (by option name less the dashes, underscores for dashes), in
    one fixed order, so every command reports the same first problem: ``device``, ``precision``,
    ``profile`` (with ``profiles``, the user's file), ``recipe``, ``keypoints``, ``variant``/``variants``,
    ``noise``/``noises``, ``benchmarks``, ``seed``/``seeds``, ``epochs``, ``hypotheses``, ``data_root``,
    then ``out`` (checked against ``data_root``)."""
    known = {"device", "precision", "profile", "profiles", "recipe", "keypoints", "variant", "variants", "noise",
             "noises", "benchmarks", "seed", "seeds", "epochs", "hypotheses", "data_root", "out"}
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"check_options: unknown option(s) {sorted(unknown)}")
    o = options.get
    check_device(o("device"))
    check_precision(o("precision"))
    check_profile(o("profile"), profiles=o("profiles"))
    check_recipe(o("recipe"))
    check_keypoints(o("keypoints"))
    for key, kind in (("variant", "variant"), ("variants", "variant"), ("noise", "noise"), ("noises", "noise"),
                      ("benchmarks", "benchmark")):
        check_names(o(key), kind, "--" + key)
    for key, minimum in (("seed", 0), ("seeds", 0), ("epochs", 0), ("hypotheses", 1)):
        check_count(o(key), "--" + key, minimum)
    check_data_root(o("data_root"))
    if "out" in options:
        check_out(o("out"), o("data_root"))


# ------------------------------------------------------------------------------ leave nothing behind
def _missing_top(path: Path) -> Path | None:
    """The topmost folder of ``path`` (itself included) that does not exist yet, or None."""
    path = Path(os.path.abspath(path))
    if path.exists():
        return None
    top = path
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    return top


def _held(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError as e:
        return e.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)


def _only_scaffolding(top: Path) -> bool:
    """True when ``top`` holds nothing but folders, run configs, locks nobody holds and temporary files."""
    for dirpath, _, files in os.walk(top):
        for name in files:
            p = Path(dirpath) / name
            if name.endswith(".lock") and _held(p):
                return False
            if name in _NOT_RESULTS or name.startswith("."):  # locks, atomic writes' temporary files
                continue
            return False
    return True


@contextlib.contextmanager
def cleanup_on_refusal(*outs: Path | str | None) -> Iterator[None]:
    """Around a command: an output folder that did not exist when it started is removed again (with the
    folders created above it) when the command is refused (a HarnessError or an OS error) while the
    folder holds no result yet: only run configs, unheld locks and temporary files."""
    tops = [t for t in (_missing_top(Path(o)) for o in outs if o is not None) if t is not None]
    try:
        yield
    except (HarnessError, OSError):
        for top in tops:
            if top.is_dir() and not top.is_symlink() and _only_scaffolding(top):
                shutil.rmtree(top, ignore_errors=True)
        raise


def cleans_up(*params: str) -> Callable:
    """A command decorator: :func:`cleanup_on_refusal` of the output paths its parameters ``params`` name
    (Typer passes them as keyword arguments), looked at before the command starts."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with cleanup_on_refusal(*(kwargs.get(p) for p in params)):
                return fn(*args, **kwargs)

        return wrapper

    return deco
