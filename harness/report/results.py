"""Results sets: the run folders under a results directory, collected into one tidy table.

Every table and plot is a pure function of this table (``results.csv``), which is itself a pure
function of the runs' ``metrics.json`` files. A ``metrics.json`` that is not UTF-8 JSON of the shape
below (an object; ``config`` with string ``benchmark``/``variant``/``noise`` and an integer ``seed``;
``metrics`` a non-empty object of models whose values are numbers) is a one-line
:class:`~harness.errors.DataError` naming the file and the entry (:func:`read_json_file`, :func:`run_rows`).

Tidy columns (one row per run x model x metric x group):

- ``run``, ``benchmark`` (h36m | 3dhp), ``variant``, ``noise``, ``seed``, ``profile``, ``recipe`` (harness |
  released | diffpose; a run whose config has none, and a results CSV without the column: ``harness``),
  ``synthetic`` (bool), ``data_root``, ``keypoints``, ``train_on`` (the benchmark a cross-dataset run trained
  on, e.g. ``h36m`` for 3DHP trained on H36M; empty: the benchmark's own training set)
- ``model``: ``diffusion`` (the refined pose), ``lifter`` (the initial pose), ``hyp<H>_mean``, ``hyp<H>_best``
- ``metric``: ``P1``, ``P2`` (H36M, mm); ``PCK``, ``AUC`` (percent), ``MPJPE`` (mm) for 3DHP over its 14
  evaluation joints, and ``PCK17``, ``AUC17``, ``MPJPE17`` over all 17 joints
- ``group``: an H36M action or ``Avg``; a 3DHP sequence (TS1..TS6), scene (GS, noGS, Outdoor) or ``All``
- ``value``, and per run ``wall_time_s``, ``git_commit``, ``date``, ``device``
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import DataError
from harness.protocols import MPI3DHP_METRICS

TIDY_COLUMNS = ["run", "benchmark", "variant", "noise", "seed", "profile", "recipe", "synthetic", "data_root",
                "keypoints", "model", "metric", "group", "value", "wall_time_s", "git_commit", "date", "device",
                "train_on"]
# Columns added after results CSVs were first written: a table without one gets the default (older runs
# were all made with it).
OPTIONAL_COLUMNS = {"recipe": "harness", "train_on": ""}
DEFAULT_RECIPE = OPTIONAL_COLUMNS["recipe"]


def with_optional_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with each of :data:`OPTIONAL_COLUMNS` present, empty cells set to its default."""
    out = df.copy()
    for col, default in OPTIONAL_COLUMNS.items():
        if col not in out.columns:
            out[col] = default
        else:
            out[col] = [default if pd.isna(v) or str(v) == "" else str(v) for v in out[col]]
    return out


# JSON files a results set is made of (metrics.json, a baseline) are a few KB to a few MB; a larger one
# is not one of them, and is refused before it is read into memory.
MAX_JSON_BYTES = 64 * 1024**2
# Folders under a results directory that are not runs: the shared first stage, the tables, the gate's
# baselines and speed figures.
NOT_RUN_FOLDERS = frozenset({"shared", "tables", "baselines", "bench"})
# Files a run folder holds from its start (a folder with any of them and no metrics.json is unfinished).
RUN_MARKERS = ("config.json", "identity.json", "checkpoint.pt", "noise.json", "origin.json", "per_frame.npz")


def read_json_file(path: Path, what: str = "metrics file") -> Any:
    """The content of a UTF-8 JSON file; one-line :class:`DataError` naming ``path`` when it cannot be
    read, is larger than :data:`MAX_JSON_BYTES`, is not UTF-8, or is not JSON (a file truncated mid-write
    among them). ``NaN``/``Infinity`` (Python's JSON extension) read as floats: callers judge values."""
    import stat

    path = Path(path)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{path}: not a regular file; expected a {what} (JSON)")
        size = st.st_size
        if size > MAX_JSON_BYTES:
            raise DataError(f"{path}: {size / 1e6:.1f} MB, larger than any {what} "
                            f"(limit {MAX_JSON_BYTES / 1e6:.0f} MB)")
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read the {what} ({e.strerror or type(e).__name__})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                        f"a {what} is UTF-8 JSON") from None
    if not text.strip():
        raise DataError(f"{path}: empty file; expected a {what} (JSON)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        cut = " (truncated?)" if e.pos >= len(text.rstrip()) else ""
        raise DataError(f"{path}: not valid JSON{cut}: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise DataError(f"{path}: not a {what}: JSON nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more digits than Python converts
        raise DataError(f"{path}: not valid JSON ({' '.join(str(e).split())})") from None


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"the number {v!r}"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(v), type(v).__name__)


def _number(v: Any, source: Any, where: str) -> float:
    """``v`` as a float; a string, boolean, null or container is a DataError naming ``where``. NaN and
    infinities pass (the gate refuses them; tables show them as missing)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        shown = f" ({v!r})" if isinstance(v, str) and len(v) <= 40 else ""
        raise DataError(f"{source}: {where} is {_kind(v)}{shown}, expected a number")
    try:
        return float(v)
    except OverflowError:  # an integer beyond float range
        return float("inf") if v > 0 else float("-inf")


def _obj(v: Any, source: Any, where: str, nonempty: bool = False) -> dict:
    if not isinstance(v, dict):
        raise DataError(f"{source}: {where} is {_kind(v)}, expected an object")
    if nonempty and not v:
        raise DataError(f"{source}: {where} is empty")
    return v


def _text(v: Any, source: Any, where: str, required: bool = False) -> str:
    if v is None and not required:
        return ""
    if not isinstance(v, str):
        raise DataError(f"{source}: {where} is {_kind(v)}, expected a string")
    return v


def run_rows(result: dict[str, Any], source: Any = "metrics file") -> list[dict[str, Any]]:
    """Tidy rows of one run's ``metrics.json`` content; its shape and types are checked, a wrong one
    is a one-line :class:`DataError` naming ``source`` (the file) and the entry, e.g.
    ``metrics.diffusion.p1.Avg is a string ('abc'), expected a number``."""
    from harness.protocols import BENCHMARKS

    if not isinstance(result, dict):
        raise DataError(f"{source}: expected a JSON object (a run's metrics), got {_kind(result)}")
    for key in ("run", "config", "metrics"):
        if key not in result:
            raise DataError(f"{source}: lacks '{key}'")
    run = _text(result["run"], source, "'run'", required=True)
    cfg = _obj(result["config"], source, "'config'")
    for key in ("benchmark", "variant", "noise", "seed"):
        if key not in cfg:
            raise DataError(f"{source}: lacks 'config.{key}'")
    bench = _text(cfg["benchmark"], source, "config.benchmark", required=True)
    if bench not in BENCHMARKS:
        raise DataError(f"{source}: config.benchmark is {bench!r}; expected one of {', '.join(BENCHMARKS)}")
    seed = cfg["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataError(f"{source}: config.seed is {_kind(seed)}, expected an integer")
    data = result.get("data", {})
    data = {} if data is None else _obj(data, source, "'data'")
    wall = result.get("wall_time_s")
    wall = None if wall is None else _number(wall, source, "wall_time_s")
    base = {"run": run, "benchmark": bench, "variant": _text(cfg["variant"], source, "config.variant", True),
            "noise": _text(cfg["noise"], source, "config.noise", True), "seed": int(seed),
            "profile": _text(cfg.get("profile", "custom"), source, "config.profile") or "custom",
            "recipe": _text(cfg.get("recipe"), source, "config.recipe") or DEFAULT_RECIPE,
            "synthetic": bool(data.get("synthetic", cfg.get("data_root") is None)),
            "data_root": _text(cfg.get("data_root"), source, "config.data_root"),
            "keypoints": _text(cfg.get("keypoints", ""), source, "config.keypoints"),
            "train_on": _text(cfg.get("train_on"), source, "config.train_on"),
            "wall_time_s": wall, "git_commit": _text(result.get("git_commit"), source, "git_commit"),
            "date": _text(result.get("date", ""), source, "date"),
            "device": _text(result.get("device", ""), source, "device")}
    rows = []
    for model, res in _obj(result["metrics"], source, "'metrics'", nonempty=True).items():
        res = _obj(res, source, f"metrics.{model}")
        if bench == "h36m":
            for proto in ("p1", "p2"):
                if proto not in res:
                    raise DataError(f"{source}: lacks 'metrics.{model}.{proto}'")
                for group, value in _obj(res[proto], source, f"metrics.{model}.{proto}", nonempty=True).items():
                    rows.append({**base, "model": model, "metric": proto.upper(), "group": group,
                                 "value": _number(value, source, f"metrics.{model}.{proto}.{group}")})
        else:
            for group, vals in res.items():
                if not isinstance(vals, dict):
                    continue  # e.g. "frames"
                for metric in MPI3DHP_METRICS:
                    if metric in vals:
                        rows.append({**base, "model": model, "metric": metric, "group": group,
                                     "value": _number(vals[metric], source, f"metrics.{model}.{group}.{metric}")})
    if not rows:
        raise DataError(f"{source}: 'metrics' holds no {bench} metric")
    return rows


def find_runs(results_dir: Path) -> list[Path]:
    """Run folders (those holding a finished ``metrics.json``) under ``results_dir``, sorted."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise DataError(f"{results_dir}: results folder not found")
    return sorted(p.parent for p in results_dir.glob("*/metrics.json"))


def unfinished_runs(results_dir: Path) -> list[Path]:
    """Run folders under ``results_dir`` without a ``metrics.json``: a folder (not hidden, not one of
    :data:`NOT_RUN_FOLDERS`) holding any of :data:`RUN_MARKERS`, i.e. a run that started and did not
    finish (or failed, or was imported and never evaluated). Sorted."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise DataError(f"{results_dir}: results folder not found")
    out = []
    for d in sorted(results_dir.iterdir()):
        if d.name.startswith(".") or d.name in NOT_RUN_FOLDERS or not d.is_dir():
            continue
        if not (d / "metrics.json").exists() and any((d / m).exists() for m in RUN_MARKERS):
            out.append(d)
    return out


def read_run_metrics(path: Path) -> list[dict[str, Any]]:
    """The tidy rows of one ``metrics.json`` (:func:`read_json_file`, :func:`run_rows`)."""
    result = read_json_file(path, "metrics file")
    try:
        return run_rows(result, source=path)
    except (KeyError, TypeError, AttributeError, ValueError) as e:  # a shape run_rows does not foresee
        raise DataError(f"{path}: not a valid metrics file ({type(e).__name__}: {e})") from None


def collect(results_dir: Path) -> pd.DataFrame:
    """All finished runs under ``results_dir`` as one tidy DataFrame (columns :data:`TIDY_COLUMNS`).
    A ``metrics.json`` that is not UTF-8 JSON of the expected shape is a one-line :class:`DataError`
    naming it."""
    rows: list[dict[str, Any]] = []
    for run_dir in find_runs(results_dir):
        rows.extend(read_run_metrics(run_dir / "metrics.json"))
    return pd.DataFrame(rows, columns=TIDY_COLUMNS)


def read_tidy(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: results CSV not found")
    try:
        df = pd.read_csv(path, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: not a valid results CSV ({e})") from None
    missing = [c for c in TIDY_COLUMNS if c not in df.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise DataError(f"{path}: results CSV lacks column '{missing[0]}'")
    return with_optional_columns(df)


def write_tidy(df: pd.DataFrame, path: Path) -> Path:
    from harness.safeio import atomic_path

    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)
