"""Run identity: everything that changes a run's numbers, and nothing that does not.

A run's numbers are a function of three things, and its identity is the sha256 of all three:

1. **The resolved config** less where the files lie: the fields :meth:`harness.config.Config.hash`
   hashes, without ``data_root`` and ``initial_3d`` (paths). The same data given as an absolute path,
   as ``../shared/data`` or through a symlink is the same run.
2. **The data**: the sha256 of the content of every file the run reads (:func:`data_sources`), keyed
   by ``<benchmark>/<file name>``. Edit a data file after a run finished and the run is another run.
3. **The numerics**: the device type (``cpu`` | ``cuda``), the precision (``fp32`` | ``bf16``) and
   whether the fused C++ kernels of :mod:`harness.models.fast.native` run (``native``) or the same
   math as torch ops (``torch``: ``HARNESS_NATIVE=0``, no compiler, a read-only build cache, bf16, a
   GPU). The two paths agree to float32 rounding, which a few epochs of training amplify (smoke P1
   300.47 vs 301.26 mm), so they are different runs.

:func:`run_identity` returns the three parts as plain data (recorded in every run's ``identity.json``,
``metrics.json`` and checkpoints); :func:`identity_hash` names the run folder
(:func:`harness.runs.run_name`). The shared lifter has its own identity over the lifter's config keys
(:func:`lifter_identity`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.config import Config

# Config fields that name files: replaced in the identity by the files' content (:func:`data_fingerprint`).
PATH_FIELDS = ("data_root", "initial_3d")

_SHA_MEMO: dict[tuple, str] = {}


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, memoised per process on (real path, size, mtime, inode): a file is read
    once however often a grid asks."""
    from harness.data.cache import file_sha256
    from harness.errors import DataError

    real = Path(os.path.realpath(path))
    try:
        st = real.stat()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    key = (str(real), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = file_sha256(real)
    return _SHA_MEMO[key]


def _benchmark_files(benchmark: str, root: Path, keypoints: str, own_train: bool) -> list[Path]:
    """The files :func:`harness.data._load_benchmark` reads for ``benchmark`` under ``root``."""
    if benchmark == "h36m":
        from harness.data.h36m import _sources

        files = _sources(root, keypoints).files()
        if keypoints != "gt":  # the GT 2D (a file, or derived from the 3D and cameras) for the residual fit
            files += _sources(root, "gt").files()
        return files
    from harness.data.mpi3dhp import TEST_FILE, TRAIN_FILE

    # a missing file is the loader's to report (its message says which file the benchmark needs)
    return [p for p in ([root / TEST_FILE] + ([root / TRAIN_FILE] if own_train else [])) if p.is_file()]


def data_sources(cfg: Config) -> list[tuple[str, Path]]:
    """``[(key, path)]``: every file the run reads, keyed ``<benchmark>/<name>`` (path-independent).

    The synthetic benchmark (``data_root`` None) is generated first if absent (as loading would)."""
    from harness.data import reads_gt_kernels, resolve_data_root

    root = resolve_data_root(cfg.benchmark, cfg.data_root)
    out: list[tuple[str, Path]] = []
    for p in _benchmark_files(cfg.benchmark, root, cfg.keypoints, own_train=not cfg.train_on):
        out.append((f"{cfg.benchmark}/{p.name}", p))
    if reads_gt_kernels(cfg):
        from harness.data.h36m import _sources

        out += [(f"h36m/{p.name}", p) for p in _sources(root, "gt_gmm").files()]
    if cfg.train_on:
        train_root = resolve_data_root(cfg.train_on, cfg.data_root)
        out += [(f"{cfg.train_on}/{p.name}", p) for p in _benchmark_files(cfg.train_on, train_root, cfg.keypoints,
                                                                          own_train=True)]
    if cfg.initial_3d:
        out.append((f"initial_3d/{Path(cfg.initial_3d).name}", Path(cfg.initial_3d)))
    seen: dict[str, Path] = {}
    for key, p in out:
        seen.setdefault(key, p)
    return sorted(seen.items())


def data_fingerprint(cfg: Config) -> dict[str, str]:
    """``{"<benchmark>/<file>": sha256}`` of every file the run reads (:func:`data_sources`)."""
    return {key: file_digest(p) for key, p in data_sources(cfg)}


def numerics(cfg: Config) -> dict[str, str]:
    """``{"device": cpu|cuda, "precision": fp32|bf16, "kernels": native|torch}`` for this process.

    ``kernels`` is ``native`` when the fused CPU kernels apply (a CPU run in fp32 with
    :func:`harness.models.fast.native.lib` loaded, building them if not tried yet, and the switch
    ``ops.NATIVE`` on), else ``torch``."""
    from harness.device import select_device

    dev = select_device(cfg.device).type
    kernels = "torch"
    if dev == "cpu" and cfg.precision == "fp32":
        from harness.models.fast import native, ops

        if ops.NATIVE and native.lib() is not None:
            kernels = "native"
    return {"device": dev, "precision": cfg.precision, "kernels": kernels}


def _config_part(cfg: Config, keys: list[str] | None = None) -> dict[str, Any]:
    return {k: v for k, v in cfg.hashed_dict(keys).items() if k not in PATH_FIELDS}


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def run_identity(cfg: Config, keys: list[str] | None = None) -> dict[str, Any]:
    """``{"config_hash", "config", "data", "numerics"}`` of a run (module docstring), over the config's
    ``keys`` (default: all it hashes); ``config_hash`` is the path-independent config part alone, shared
    by runs that differ only in data or numerics."""
    conf = _config_part(cfg, keys)
    return {"config_hash": _digest(conf), "config": conf, "data": data_fingerprint(cfg), "numerics": numerics(cfg)}


def lifter_identity(cfg: Config) -> dict[str, Any]:
    """:func:`run_identity` over :attr:`Config.LIFTER_KEYS` (the shared first stage)."""
    return run_identity(cfg, cfg.LIFTER_KEYS)


def identity_hash(identity: dict[str, Any]) -> str:
    """12 hex digits of the sha256 of an identity's config, data and numerics."""
    return _digest({k: identity[k] for k in ("config", "data", "numerics")})


def differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What differs between two identities, in words: ``"data (h36m/data_3d_h36m.npz changed)"``,
    ``"numerics (kernels native -> torch)"``, ``"config"``."""
    parts = []
    od, nd = old.get("data") or {}, new.get("data") or {}
    changed = sorted(k for k in set(od) | set(nd) if od.get(k) != nd.get(k))
    if changed:
        words = [f"{k} {'changed' if k in od and k in nd else 'added' if k in nd else 'removed'}" for k in changed]
        parts.append(f"data ({', '.join(words[:3])}{', ...' if len(words) > 3 else ''})")
    on, nn = old.get("numerics") or {}, new.get("numerics") or {}
    nums = [f"{k} {on.get(k)} -> {nn.get(k)}" for k in sorted(set(on) | set(nn)) if on.get(k) != nn.get(k)]
    if nums:
        parts.append(f"numerics ({', '.join(nums)})")
    if old.get("config") != new.get("config"):
        parts.append("config")
    return "; ".join(parts) or "nothing"
