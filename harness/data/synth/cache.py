"""The default synthetic benchmarks in the harness cache: where they live
(:func:`default_synth_dir`), which files a complete folder holds, and :func:`ensure_synth`, which
generates one on first use."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from harness.data.h36m import H36M_3D_FILE, H36M_CAMERAS_FILE, h36m_2d_filename
from harness.data.mpi3dhp import TEST_FILE, TRAIN_FILE
from harness.data.synth._util import _check_seed
from harness.data.synth.writer import DEFAULT_DETECTOR, FORMAT_VERSION, MARKER_FILE, synth_3dhp, synth_h36m
from harness.errors import ConfigError
from harness.protocols import BENCHMARK_ALIASES, BENCHMARKS

_BENCHMARK_ALIASES = BENCHMARK_ALIASES


def cache_root() -> Path:
    """The harness cache folder (:func:`harness.data.cache.default_cache_dir`: $HARNESS_CACHE_DIR,
    else $XDG_CACHE_HOME/harness, else ~/.cache/harness)."""
    from harness.data.cache import default_cache_dir

    return Path(default_cache_dir())


def _canonical(benchmark: str) -> str:
    key = str(benchmark).strip().lower()
    if key not in _BENCHMARK_ALIASES:
        raise ConfigError(f"unknown synthetic benchmark {benchmark!r} (choose from {', '.join(BENCHMARKS)})")
    return _BENCHMARK_ALIASES[key]


def default_synth_dir(benchmark: str, seed: int = 0) -> Path:
    """``<cache>/synth/<benchmark>-seed<seed>-v<FORMAT_VERSION>``."""
    return cache_root() / "synth" / f"{_canonical(benchmark)}-seed{_check_seed(seed)}-v{FORMAT_VERSION}"


def synth_files(benchmark: str) -> tuple[str, ...]:
    """File names a default synthetic folder of ``benchmark`` holds."""
    if _canonical(benchmark) == "h36m":
        return (H36M_3D_FILE, H36M_CAMERAS_FILE, h36m_2d_filename(DEFAULT_DETECTOR), MARKER_FILE)
    return (TEST_FILE, TRAIN_FILE, MARKER_FILE)


def ensure_synth(benchmark: str, seed: int = 0) -> Path:
    """The default-size synthetic ``benchmark`` for ``seed``, generated on first use.

    Generation happens under a lock beside the folder (``.<name>.lock``), into a temporary folder that
    is renamed into place, so a folder that exists under its final name is complete, and a complete
    folder is never removed: processes that start together on an empty cache wait for the first one
    and then read its files. Only a folder found incomplete (files removed by hand) is replaced."""
    from harness.locks import file_lock

    bench = _canonical(benchmark)
    seed = _check_seed(seed)
    final = default_synth_dir(bench, seed)
    names = synth_files(bench)

    def complete() -> bool:
        return all((final / n).is_file() for n in names)

    if complete():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(final.parent / f".{final.name}.lock"):
        if complete():  # another process generated it while this one waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; give the folder the usual mode
        try:
            (synth_h36m if bench == "h36m" else synth_3dhp)(tmp, seed=seed)
            if final.exists():  # incomplete (files removed by hand): move it aside first
                trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=final.parent))
                with contextlib.suppress(OSError):
                    os.replace(final, trash / "old")
                shutil.rmtree(trash, ignore_errors=True)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final
