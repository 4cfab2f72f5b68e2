"""Shared fixtures. Real data lives at ../shared/data beside the checkout (CI lays it there);
tests that need it skip, saying why, when it is absent (a user's fresh clone)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HARNESS_SHARED_DATA", REPO.parent / "shared" / "data"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (licensed data, laid beside the checkout in CI)")
    return path


@pytest.fixture(scope="session")
def h36m_root() -> Path:
    """Folder with the real data_3d_h36m.npz and cameras.h5 (read-only)."""
    root = SHARED_DATA / "h36m"
    _need(root / "data_3d_h36m.npz")
    _need(root / "cameras.h5")
    return root


@pytest.fixture(scope="session")
def mpi3dhp_root() -> Path:
    """Folder with the real data_test_3dhp.npz (TS5, TS6 only; read-only)."""
    root = SHARED_DATA / "3dhp"
    _need(root / "data_test_3dhp.npz")
    return root


@pytest.fixture(scope="session")
def harness_cache(tmp_path_factory) -> Path:
    """A session-wide cache folder (synthetic benchmarks, preprocessed arrays) for CLI/engine tests."""
    path = tmp_path_factory.mktemp("harness-cache")
    old = os.environ.get("HARNESS_CACHE_DIR")
    os.environ["HARNESS_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("HARNESS_CACHE_DIR", None)
    else:
        os.environ["HARNESS_CACHE_DIR"] = old
