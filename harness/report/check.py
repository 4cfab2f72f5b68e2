"""Accuracy gate: compare a results set with a committed baseline, metric by metric.

A baseline file (JSON) holds ``{"profile", "created", "git_commit", "metrics": {key: value}}`` where a
key is ``benchmark/variant/noise/seed<k>/model/metric/group`` (e.g.
``h36m/full/gaussian/seed0/diffusion/P1/Avg``; a cross-dataset run's benchmark reads e.g.
``3dhp_from_h36m``). Errors (P1, P2, MPJPE) are worse when higher, PCK and
AUC when lower. A metric is a regression when it is worse than the baseline by more than
``max(abs_tol, rel_tol * |baseline|)``; a metric missing from the results is a failure too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from harness.errors import DataError

from harness.protocols import HIGHER_IS_BETTER, SUMMARY_GROUPS  # noqa: E402


def metric_keys(df: pd.DataFrame, summary_only: bool = True) -> dict[str, float]:
    """``{key: value}`` from a tidy results table (only the Avg / All groups by default)."""
    if summary_only:
        df = df[df["group"].isin(SUMMARY_GROUPS)]

    def bench(r) -> str:  # a cross-dataset run: 3dhp_from_h36m (as its run name)
        train_on = getattr(r, "train_on", "")
        return f"{r.benchmark}_from_{train_on}" if isinstance(train_on, str) and train_on else r.benchmark

    return {f"{bench(r)}/{r.variant}/{r.noise}/seed{int(r.seed)}/{r.model}/{r.metric}/{r.group}": float(r.value)
            for r in df.itertuples()}


@dataclass
class Finding:
    key: str
    baseline: float
    value: float | None
    allowed: float

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.key}: missing from the results (baseline {self.baseline:.3f})"
        return (f"{self.key}: {self.value:.3f} vs baseline {self.baseline:.3f} "
                f"(worse by {abs(self.value - self.baseline):.3f}, allowed {self.allowed:.3f})")


def read_baseline(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: baseline file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict) or not data["metrics"]:
        raise DataError(f"{path}: expected an object with a non-empty 'metrics' mapping")
    for k, v in data["metrics"].items():
        if not isinstance(v, (int, float)):
            raise DataError(f"{path}: metric '{k}' is not a number")
    return data


def compare(results: dict[str, float], baseline: dict[str, float], rel_tol: float = 0.02, abs_tol: float = 0.1
            ) -> list[Finding]:
    """Every baseline metric that got worse beyond tolerance, or is missing."""
    bad = []
    for key, base in sorted(baseline.items()):
        allowed = max(abs_tol, rel_tol * abs(base))
        value = results.get(key)
        if value is None:
            bad.append(Finding(key, base, None, allowed))
            continue
        metric = key.split("/")[-2]
        worse = (base - value) if metric in HIGHER_IS_BETTER else (value - base)
        if worse > allowed:
            bad.append(Finding(key, base, value, allowed))
    return bad


def write_baseline(path: Path, results: dict[str, float], profile: str, git_commit: str | None) -> Path:
    from harness.safeio import atomic_path

    payload = {"profile": profile, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "git_commit": git_commit, "metrics": dict(sorted(results.items()))}
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(payload, indent=1) + "\n")
    return Path(path)
