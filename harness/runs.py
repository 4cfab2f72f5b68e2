"""The results-folder layout: run names, what counts as done, the shared lifter folder, provenance.

Layout of a results folder (``--out``)::

    <out>/shared/lifter-<benchmark>-seed<S>-<hash>/   the first stage, shared by every variant of a
        config.json  checkpoint.pt  predictions.npz  gmm-k<K>-n<N>.json     benchmark and seed
    <out>/<benchmark>-<variant>-<noise>-seed<S>-<hash>/   one run
        (a cross-dataset run's <benchmark> is e.g. 3dhp_from_h36m: trained on H36M, tested on 3DHP)
        config.json  checkpoint.pt  noise.json  metrics.json  per_frame.npz

        identity.json (what the numbers depend on, written when the run starts)
        eval-<precision>.json  eval-<precision>-per_frame.npz (`harness eval`: never the training results)

``<hash>`` is :func:`harness.identity.identity_hash` of the run's identity: the resolved config less its
paths, the sha256 of every data file it reads, and the numerics (device type, precision, C++ kernels
or torch ops). The lifter's is the same over the lifter's config keys. Everything is written to a
temporary file and renamed into place.
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


def run_name(cfg: Config, identity: dict | None = None) -> str:
    """``<benchmark tag>-<variant>-<noise>-seed<S>-<identity hash>`` (:func:`benchmark_tag`,
    :func:`harness.identity.identity_hash`)."""
    from harness.identity import identity_hash, run_identity

    ident = identity if identity is not None else run_identity(cfg)
    return f"{benchmark_tag(cfg)}-{cfg.variant}-{cfg.noise}-seed{cfg.seed}-{identity_hash(ident)}"


def lifter_dir(cfg: Config, out: Path) -> Path:
    """The shared first stage's folder: ``<out>/shared/lifter-<benchmark tag>-seed<S>-<lifter identity hash>``."""
    from harness.identity import identity_hash, lifter_identity

    return Path(out) / "shared" / f"lifter-{benchmark_tag(cfg)}-seed{cfg.seed}-{identity_hash(lifter_identity(cfg))}"


def is_done(cfg: Config, out: Path, identity: dict | None = None) -> bool:
    """True when the run's metrics exist for exactly this identity: config, data content and numerics."""
    from harness.identity import run_identity

    ident = identity if identity is not None else run_identity(cfg)
    path = Path(out) / run_name(cfg, ident) / "metrics.json"
    if not path.exists():
        return False
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    if not isinstance(old, dict) or not isinstance(old.get("identity"), dict):
        return False
    return all(old["identity"].get(k) == ident[k] for k in ("config", "data", "numerics"))


def stale_note(cfg: Config, out: Path, identity: dict | None = None) -> str | None:
    """One line when a finished run of the same config exists under ``out`` with other data or numerics
    (it is kept; this run is another folder), else None."""
    from harness.identity import differences, run_identity

    ident = identity if identity is not None else run_identity(cfg)
    mine = run_name(cfg, ident)
    prefix = mine.rsplit("-", 1)[0] + "-"
    for path in sorted(Path(out).glob(f"{prefix}*/metrics.json")):
        if path.parent.name == mine:
            continue
        try:
            theirs = json.loads(path.read_text()).get("identity") or {}
        except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            continue
        if isinstance(theirs, dict) and theirs.get("config_hash") == ident["config_hash"]:
            return (f"{path.parent}: the same config finished with other {differences(theirs, ident)}; "
                    f"kept as it is, this run is {mine}")
    return None


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
