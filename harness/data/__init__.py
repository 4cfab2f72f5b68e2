"""Data: loaders for the real file formats, the synthetic benchmark, caching."""

from __future__ import annotations

from pathlib import Path

from harness.errors import DataError


def resolve_data_root(benchmark: str, data_root: Path | str | None, seed: int = 0) -> Path:
    """The folder a benchmark's files are read from: ``data_root`` if given (it must exist), else the
    synthetic benchmark, generated on first use into the harness cache."""
    if data_root is None:
        from harness.data.synth import ensure_synth

        return Path(ensure_synth(benchmark, seed=seed))
    root = Path(data_root)
    if not root.is_dir():
        raise DataError(f"--data-root {root}: folder not found")
    # Accept the parent of h36m/ and 3dhp/ folders too (e.g. ../shared/data).
    sub = root / benchmark
    if sub.is_dir() and not any(root.glob("data_*.npz")):
        return sub
    return root
