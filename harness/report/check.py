"""Accuracy gate: compare a results set with a committed baseline, metric by metric.

A baseline file (UTF-8 JSON) holds ``{"profile", "created", "git_commit", "metrics": {key: value}}``
where a key is ``benchmark/variant/noise/seed<k>/model/metric/group`` (e.g.
``h36m/full/gaussian/seed0/diffusion/P1/Avg``; a cross-dataset run's benchmark reads e.g.
``3dhp_from_h36m``). Its first four parts name a *run* (``h36m/full/gaussian/seed0``). Errors (P1, P2,
MPJPE, MPJPE17; mm) are worse when higher, PCK and AUC (percent) when lower.

The gate fails (:func:`check_runs`), one line per problem naming the run and the metric, on

* a value that is not a finite, plausible number, in the results or in the baseline
  (:func:`value_problem`): NaN, +-inf, a negative error, an error above :data:`MAX_ERROR_MM`
  (10,000 mm = 10 m: no root-relative pose is that far off, whatever the model; a larger one is a
  unit or data bug, e.g. 3D in mm read as m), a PCK/AUC outside 0-100;
* a baseline metric missing from the results (the whole run, or the one metric);
* a run of the results that the baseline does not have: it would go ungated (``--update`` adds it);
* a run folder with no ``metrics.json`` (unfinished, failed, or imported and never evaluated), or an
  unreadable / malformed one (a one-line :class:`~harness.errors.DataError` from the reader);
* a metric worse than the baseline by more than ``max(abs_tol, rel_tol * |baseline|)``.

A metric of a gated run that the baseline lacks (a metric the harness started reporting after the
baseline was written, e.g. PCK17) is *not* a failure: it is counted in one note line (not gated until
``--update``). Several run folders of one run (the same config under other numerics or data) are each
compared with the baseline; ``--update`` refuses them (a baseline holds one value per metric).
A baseline is refused when it holds any value the gate would fail on (:func:`read_baseline`), and
``--update`` writes none (:func:`baseline_problems`, :func:`write_baseline`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from harness.errors import DataError
from harness.protocols import HIGHER_IS_BETTER, MPI3DHP_METRICS, SUMMARY_GROUPS

# The largest error (mm) a root-relative 3D pose can plausibly have: 10 m. Real results are 20-500 mm;
# a value above this is a unit or data bug, not a bad model.
MAX_ERROR_MM = 10_000.0
PERCENT_RANGE = (0.0, 100.0)  # PCK and AUC
KNOWN_METRICS = ("P1", "P2") + MPI3DHP_METRICS
_SEED = re.compile(r"seed\d+")
_NOT_A_BASELINE = "a baseline holds finite, plausible numbers only"


# ------------------------------------------------------------------------------------------ keys
def split_key(key: str) -> tuple[str, str, str, str] | None:
    """``(run, model, metric, group)`` of a key ``benchmark/variant/noise/seed<k>/model/metric/group``
    (``run`` is its first four parts), or None when it has another form."""
    parts = key.split("/") if isinstance(key, str) else []
    if len(parts) != 7 or not all(parts) or not _SEED.fullmatch(parts[3]):
        return None
    return "/".join(parts[:4]), parts[4], parts[5], parts[6]


def run_of(key: str) -> str:
    s = split_key(key)
    return s[0] if s else key


def metric_of(key: str) -> str:
    s = split_key(key)
    return s[2] if s else key.split("/")[-2] if "/" in key else key


def _key(r) -> str:
    train_on = getattr(r, "train_on", "")  # a cross-dataset run: 3dhp_from_h36m (as its run name)
    bench = f"{r.benchmark}_from_{train_on}" if isinstance(train_on, str) and train_on else r.benchmark
    return f"{bench}/{r.variant}/{r.noise}/seed{int(r.seed)}/{r.model}/{r.metric}/{r.group}"


def metric_keys(df: pd.DataFrame, summary_only: bool = True) -> dict[str, float]:
    """``{key: value}`` from a tidy results table (only the Avg / All groups by default)."""
    if summary_only:
        df = df[df["group"].isin(SUMMARY_GROUPS)]
    return {_key(r): float(r.value) for r in df.itertuples()}


def run_metric_keys(df: pd.DataFrame, summary_only: bool = False) -> dict[str, dict[str, float]]:
    """``{run folder: {key: value}}`` from a tidy results table (every group by default): several
    folders may map to one baseline run (the same config under other numerics or data)."""
    if summary_only:
        df = df[df["group"].isin(SUMMARY_GROUPS)]
    out: dict[str, dict[str, float]] = {}
    for r in df.itertuples():
        out.setdefault(str(r.run), {})[_key(r)] = float(r.value)
    return out


# ---------------------------------------------------------------------------------------- values
def value_problem(metric: str, value: Any) -> str | None:
    """What makes ``value`` of ``metric`` not a finite, plausible number (a phrase following the
    value's name, e.g. ``is NaN, not a finite number``), or None when it is fine."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        shown = f" ({value!r})" if isinstance(value, str) and len(value) <= 40 else ""
        return f"is not a number{shown}"
    try:
        v = float(value)
    except OverflowError:
        v = math.inf if value > 0 else -math.inf
    if math.isnan(v):
        return "is NaN, not a finite number"
    if math.isinf(v):
        return f"is {'-' if v < 0 else ''}inf, not a finite number"
    if metric in HIGHER_IS_BETTER:
        lo, hi = PERCENT_RANGE
        if not lo <= v <= hi:
            return f"is {v:.3f}: outside {lo:.0f}-{hi:.0f} ({metric} is a percentage)"
    elif v < 0:
        return f"is {v:.3f} mm: an error ({metric}) cannot be negative"
    elif v > MAX_ERROR_MM:
        return (f"is {v:.3f} mm: above {MAX_ERROR_MM:.0f} mm (10 m), not a plausible root-relative pose error "
                f"({metric})")
    return None


# -------------------------------------------------------------------------------------- findings
@dataclass
class Finding:
    """One failure of the gate. ``value`` None and no ``problem``: a baseline metric missing from the
    results; ``problem``: any other failure, said as is; else a regression beyond ``allowed``."""
    key: str
    baseline: float | None
    value: float | None
    allowed: float = 0.0
    problem: str | None = None
    run: str | None = None  # the run folder

    def __str__(self) -> str:
        run = f"run {self.run}" if self.run else ""
        if self.problem:
            return f"{self.key}: {self.problem}" + (f" ({run})" if run else "")
        if self.value is None:
            return f"{self.key}: missing from the results (baseline {self.baseline:.3f}" + (
                f"; {run})" if run else ")")
        return (f"{self.key}: {self.value:.3f} vs baseline {self.baseline:.3f} "
                f"(worse by {abs(self.value - self.baseline):.3f}, allowed {self.allowed:.3f}"
                + (f"; {run})" if run else ")"))

    @property
    def kind(self) -> str:
        if self.problem:
            return "problem"
        return "missing" if self.value is None else "worse"


@dataclass
class GateReport:
    failures: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: int = 0  # baseline metrics compared

    @property
    def worse(self) -> int:
        return sum(f.kind == "worse" for f in self.failures)


# -------------------------------------------------------------------------------------- baseline
def read_baseline(path: Path) -> dict:
    """A baseline file, checked: UTF-8 JSON, an object whose ``metrics`` is a non-empty mapping of
    well-formed keys (:func:`split_key`, a known metric) to finite, plausible numbers
    (:func:`value_problem`; Python's JSON ``NaN``/``Infinity`` included). Anything else is a
    one-line :class:`DataError` naming the file (and the metric)."""
    from harness.report.results import read_json_file

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: baseline file not found")
    data = read_json_file(path, "baseline file")
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict) or not data["metrics"]:
        raise DataError(f"{path}: expected an object with a non-empty 'metrics' mapping")
    for k, v in data["metrics"].items():
        parts = split_key(k)
        if parts is None:
            raise DataError(f"{path}: key {k!r} is not benchmark/variant/noise/seed<k>/model/metric/group")
        if parts[2] not in KNOWN_METRICS:
            raise DataError(f"{path}: key {k!r}: unknown metric {parts[2]!r} (known: {', '.join(KNOWN_METRICS)})")
        problem = value_problem(parts[2], v)
        if problem:
            raise DataError(f"{path}: metric '{k}' {problem}; {_NOT_A_BASELINE}")
    return data


def compare(results: dict[str, float], baseline: dict[str, float], rel_tol: float = 0.02, abs_tol: float = 0.1
            ) -> list[Finding]:
    """Every baseline metric that got worse beyond tolerance, is missing, or is not a finite,
    plausible number on either side (a flat ``{key: value}`` of one results set)."""
    bad = []
    for key, base in sorted(baseline.items()):
        metric = metric_of(key)
        bp = value_problem(metric, base)
        if bp:
            bad.append(Finding(key, None, None, problem=f"baseline {bp}"))
            continue
        allowed = max(abs_tol, rel_tol * abs(base))
        value = results.get(key)
        if value is None:
            bad.append(Finding(key, base, None, allowed))
            continue
        vp = value_problem(metric, value)
        if vp:
            bad.append(Finding(key, base, value, allowed, problem=f"result {vp}"))
            continue
        worse = (base - value) if metric in HIGHER_IS_BETTER else (value - base)
        if not worse <= allowed:  # NaN-safe: a NaN difference fails
            bad.append(Finding(key, base, value, allowed))
    return bad


def _is_summary(key: str) -> bool:
    """A well-formed key of a summary group (Avg / All)."""
    parts = split_key(key)
    return parts is not None and parts[3] in SUMMARY_GROUPS


def _scan_runs(runs: Mapping[str, Mapping[str, float]]
               ) -> tuple[dict[str, list[str]], list[tuple[str, str, float, str]]]:
    """``({run key: [folders holding it]}, [(folder, key, value, problem)])`` over ``runs``, folders and keys
    in sorted order: which folders hold each run, and every value that is not a finite, plausible number."""
    folders_of: dict[str, list[str]] = {}
    bad: list[tuple[str, str, float, str]] = []
    for folder, vals in sorted(runs.items()):
        for rk in sorted({run_of(k) for k in vals}):
            folders_of.setdefault(rk, []).append(folder)
        for key, v in sorted(vals.items()):
            p = value_problem(metric_of(key), v)
            if p:
                bad.append((folder, key, v, p))
    return folders_of, bad


def check_runs(runs: Mapping[str, Mapping[str, float]], baseline: Mapping[str, float], rel_tol: float = 0.02,
               abs_tol: float = 0.1, unfinished: Iterable[Path | str] = ()) -> GateReport:
    """The gate over a results set: ``runs`` is ``{run folder: {key: value}}`` (:func:`run_metric_keys`,
    every group: each value is checked), ``baseline`` ``{key: value}``, ``unfinished`` the run folders
    without ``metrics.json``. See the module docstring for what fails."""
    if not (math.isfinite(rel_tol) and math.isfinite(abs_tol) and rel_tol >= 0 and abs_tol >= 0):
        raise ValueError(f"tolerances must be finite and >= 0, got {rel_tol!r}, {abs_tol!r}")
    rep = GateReport(checked=len(baseline))
    for folder in unfinished:
        rep.failures.append(Finding(str(folder), None, None,
                                    problem="run folder has no metrics.json (unfinished or failed run)"))
    folders_of, bad = _scan_runs(runs)
    for folder, key, v, p in bad:
        rep.failures.append(Finding(key, baseline.get(key), v, problem=f"result {p}", run=folder))
    base_runs = {run_of(k) for k in baseline}
    for rk in sorted(set(folders_of) - base_runs):
        for folder in folders_of[rk]:
            n = sum(run_of(k) == rk and _is_summary(k) for k in runs[folder])
            rep.failures.append(Finding(rk, None, None, run=folder,
                                        problem=f"run in the results but not in the baseline: its {n} metric(s) "
                                                f"would go ungated (--update adds it)"))
    extra: list[str] = []
    for rk in sorted(set(folders_of) & base_runs):
        for folder in folders_of[rk]:
            extra += [k for k in runs[folder] if run_of(k) == rk and k not in baseline and _is_summary(k)]
    for key, base in sorted(baseline.items()):
        metric = metric_of(key)
        bp = value_problem(metric, base)
        if bp:  # read_baseline refuses these; a baseline given as a mapping is checked here too
            rep.failures.append(Finding(key, None, None, problem=f"baseline {bp}"))
            continue
        allowed = max(abs_tol, rel_tol * abs(base))
        folders = folders_of.get(run_of(key), [])
        if not folders:
            rep.failures.append(Finding(key, base, None, allowed,
                                        problem=f"missing from the results, which have no run {run_of(key)} "
                                                f"(baseline {base:.3f})"))
            continue
        for folder in folders:
            value = runs[folder].get(key)
            if value is None:
                rep.failures.append(Finding(key, base, None, allowed, run=folder))
            elif value_problem(metric, value):
                continue  # reported above
            else:
                worse = (base - value) if metric in HIGHER_IS_BETTER else (value - base)
                if not worse <= allowed:
                    rep.failures.append(Finding(key, base, value, allowed, run=folder))
    if extra:
        extra = sorted(set(extra))
        rep.notes.append(f"{len(extra)} metric(s) of the baseline's runs are not in the baseline and not gated "
                         f"(e.g. {extra[0]}); --update adds them")
    return rep


def baseline_problems(runs: Mapping[str, Mapping[str, float]], unfinished: Iterable[Path | str] = ()) -> list[str]:
    """Why the results ``runs`` (``{run folder: {key: value}}``, every group) must not become a baseline
    (``--update``): unfinished run folders, two folders of one run, a value that is not a finite,
    plausible number. Empty: they may."""
    out = [f"{folder}: run folder has no metrics.json (unfinished or failed run)" for folder in unfinished]
    folders_of, bad = _scan_runs(runs)
    out += [f"{key} {p} (run {folder})" for folder, key, _, p in bad]
    for rk, folders in sorted(folders_of.items()):
        if len(folders) > 1:
            out.append(f"runs {', '.join(folders)} are all {rk} (other numerics or data?); a baseline holds one "
                       f"value per metric: keep one")
    return out


def write_baseline(path: Path, results: dict[str, float], profile: str, git_commit: str | None) -> Path:
    """Write ``results`` as a baseline (atomically); a value that is not a finite, plausible number is
    a one-line :class:`DataError` and nothing is written."""
    from harness.safeio import atomic_path

    for key, v in sorted(results.items()):
        p = value_problem(metric_of(key), v)
        if p:
            raise DataError(f"{path}: not written: {key} {p}; {_NOT_A_BASELINE}")
    if not results:
        raise DataError(f"{path}: not written: no metrics")
    payload = {"profile": profile, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "git_commit": git_commit, "metrics": dict(sorted(results.items()))}
    text = json.dumps(payload, indent=1, allow_nan=False) + "\n"
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
