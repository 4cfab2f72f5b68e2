"""Results sets: the run folders under a results directory, collected into one tidy table.

Every table and plot is a pure function of this table (``results.csv``), which is itself a pure
function of the runs' ``metrics.json`` files.

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


def run_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Tidy rows of one run's ``metrics.json`` content."""
    cfg = result["config"]
    base = {"run": result["run"], "benchmark": cfg["benchmark"], "variant": cfg["variant"], "noise": cfg["noise"],
            "seed": int(cfg["seed"]), "profile": cfg.get("profile", "custom"),
            "recipe": cfg.get("recipe") or DEFAULT_RECIPE,
            "synthetic": bool(result.get("data", {}).get("synthetic", cfg.get("data_root") is None)),
            "data_root": cfg.get("data_root") or "", "keypoints": cfg.get("keypoints", ""),
            "train_on": cfg.get("train_on") or "",
            "wall_time_s": result.get("wall_time_s"), "git_commit": result.get("git_commit") or "",
            "date": result.get("date", ""), "device": result.get("device", "")}
    rows = []
    for model, res in result["metrics"].items():
        if cfg["benchmark"] == "h36m":
            for proto in ("p1", "p2"):
                for group, value in res[proto].items():
                    rows.append({**base, "model": model, "metric": proto.upper(), "group": group, "value": float(value)})
        else:
            for group, vals in res.items():
                if not isinstance(vals, dict):
                    continue
                for metric in MPI3DHP_METRICS:
                    if metric in vals:
                        rows.append({**base, "model": model, "metric": metric, "group": group,
                                     "value": float(vals[metric])})
    return rows


def find_runs(results_dir: Path) -> list[Path]:
    """Run folders (those holding a finished ``metrics.json``) under ``results_dir``, sorted."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise DataError(f"{results_dir}: results folder not found")
    return sorted(p.parent for p in results_dir.glob("*/metrics.json"))


def collect(results_dir: Path) -> pd.DataFrame:
    """All finished runs under ``results_dir`` as one tidy DataFrame (columns :data:`TIDY_COLUMNS`)."""
    rows: list[dict[str, Any]] = []
    for run_dir in find_runs(results_dir):
        path = run_dir / "metrics.json"
        try:
            result = json.loads(path.read_text())
            rows.extend(run_rows(result))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise DataError(f"{path}: not a valid metrics file ({type(e).__name__}: {e})") from None
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
