"""The results-folder layout: run names, what counts as done, the shared lifter folder, provenance.

Layout of a results folder (``--out``)::

    <out>/shared/lifter-<benchmark>-seed<S>-<hash>/   the first stage, shared by every variant of a
        config.json  checkpoint.pt  predictions.npz  gmm-k<K>-n<N>.json     benchmark and seed
    <out>/<benchmark>-<variant>-<noise>-seed<S>-<hash>/   one run
        (a cross-dataset run's <benchmark> is e.g. 3dhp_from_h36m: trained on H36M, tested on 3DHP)
        config.json  checkpoint.pt  noise.json  metrics.json  per_frame.npz

``<hash>`` is :meth:`harness.config.Config.hash` of the resolved config (the lifter's of its own keys).
Everything is written to a temporary file and renamed into place.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.config import Config
from harness.errors import HarnessError


def git_commit() -> str | None:
    """The commit of the package's checkout, or None (an installed wheel, no git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def benchmark_tag(cfg: Config) -> str:
    """``<benchmark>``, or ``<benchmark>_from_<train_on>`` for a cross-dataset run (``3dhp_from_h36m``:
    trained on Human3.6M, tested on MPI-INF-3DHP)."""
    return cfg.benchmark if not cfg.train_on else f"{cfg.benchmark}_from_{cfg.train_on}"


def run_name(cfg: Config) -> str:
    """``<benchmark tag>-<variant>-<noise>-seed<S>-<config hash>`` (:func:`benchmark_tag`)."""
    return f"{benchmark_tag(cfg)}-{cfg.variant}-{cfg.noise}-seed{cfg.seed}-{cfg.hash()}"


def lifter_dir(cfg: Config, out: Path) -> Path:
    """The shared first stage's folder: ``<out>/shared/lifter-<benchmark tag>-seed<S>-<lifter hash>``."""
    return Path(out) / "shared" / f"lifter-{benchmark_tag(cfg)}-seed{cfg.seed}-{cfg.lifter_hash()}"


def is_done(cfg: Config, out: Path) -> bool:
    """True when the run's metrics exist for exactly this resolved config."""
    path = Path(out) / run_name(cfg) / "metrics.json"
    if not path.exists():
        return False
    try:
        old = json.loads(path.read_text()).get("config", {})
    except (OSError, json.JSONDecodeError):
        return False
    mine = cfg.to_dict()
    from harness.config import FIELD_DEFAULTS  # a field added later reads as its default in an old run

    return all(old.get(k, FIELD_DEFAULTS[k]) == mine[k] for k in mine if k not in Config.NOT_HASHED)


def check_writable(folder: Path) -> None:
    """Create the results folder; fail before hours of training if it is not writable or the disk is full."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HarnessError(f"{folder}: cannot create the results folder ({e.strerror})") from None
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-") as fh:
            fh.write(b"0" * 4096)
            fh.flush()
    except OSError as e:
        raise HarnessError(f"{folder}: results folder is not writable ({e.strerror})") from None
    free = shutil.disk_usage(folder).free
    if free < 200 * 1024 * 1024:
        raise HarnessError(f"{folder}: only {free / 1e6:.0f} MB free on its disk; need at least 200 MB")


def read_run_config(run_dir: Path) -> Config:
    """A run folder's resolved config (``config.json``), validated; one-line errors naming the file."""
    from harness.config import config_from_dict
    from harness.errors import DataError
    from harness.safeio import read_json

    path = Path(run_dir) / "config.json"
    d = read_json(path)  # a missing file: "<run>/config.json: file not found"
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a JSON object")
    return config_from_dict(d, source=str(path))
