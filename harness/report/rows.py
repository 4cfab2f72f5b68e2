"""Result rows: the data model that tables and figures share (references, settings, our rows).

Pure functions of the tidy results DataFrame (:data:`harness.report.results.TIDY_COLUMNS`) and of the
reference numbers under ``harness/configs/reference``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from harness.errors import DataError
from harness.protocols import BENCHMARK_NAMES, H36M_ACTIONS, MPI3DHP_METRICS, MPI3DHP_SCENE_ORDER  # noqa: F401
from harness.report.results import OPTIONAL_COLUMNS, TIDY_COLUMNS, with_optional_columns  # noqa: F401
from harness.variants import NOISES, VARIANTS

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "configs" / "reference"  # package data

VARIANT_ORDER = tuple(VARIANTS.names())  # the declaration order of harness/configs/variants.yaml
NOISE_ORDER = tuple(NOISES.names())
VARIANT_LABELS = {"baseline": "baseline", "cce": "+CCE", "cag": "+CAG", "full": "full"}
ABLATION_LABELS = {"baseline": "baseline", "cce": "+CCE", "cag": "+CAG", "full": "full (CCE+CAG)"}
NOISE_LABELS = {"gaussian": "Gaussian", "gmm": "GMM"}
LIFTER_LABEL = "GraFormer lifter (ours)"
MISSING = "–"  # an en dash: no value
PM = "±"
METRIC_NAMES = {"P1": "Protocol 1 (MPJPE, mm)", "P2": "Protocol 2 (P-MPJPE, mm)", "PCK": "PCK (%, 150 mm)",
                "AUC": "AUC (%)", "MPJPE": "MPJPE (mm)", "PCK17": "PCK (17 joints, %, 150 mm)",
                "AUC17": "AUC (17 joints, %)", "MPJPE17": "MPJPE (17 joints, mm)"}
# 3DHP metrics as table headers say them: the official 14 evaluation joints or all 17.
METRIC_LABELS = {"PCK": "PCK (14 joints)", "AUC": "AUC (14 joints)", "MPJPE": "MPJPE (14 joints)",
                 "PCK17": "PCK (17 joints)", "AUC17": "AUC (17 joints)", "MPJPE17": "MPJPE (17 joints)"}
BENCHMARK_SHORT = {"h36m": "H36M", "3dhp": "3DHP"}
# Column headers as papers print them (LaTeX only; Markdown keeps the full names).
LATEX_HEADERS = {"Directions": "Dir.", "Discussion": "Disc.", "Eating": "Eat", "Greeting": "Greet",
                 "Phoning": "Phone", "Photo": "Photo", "Posing": "Pose", "Purchases": "Purch.", "Sitting": "Sit",
                 "SittingDown": "SitD.", "Smoking": "Smoke", "Waiting": "Wait", "WalkDog": "WalkD.",
                 "Walking": "Walk", "WalkTogether": "WalkT.", "Avg": "Avg"}

_SETTING = ["benchmark", "keypoints", "synthetic", "train_on"]  # train_on: "" = the benchmark's own training set
_RUN_KEY = _SETTING + ["profile", "variant", "noise", "seed"]


# ------------------------------------------------------------------------------------- references
# What a reference's numbers are (its required ``kind``), and what its ``origin`` must then name.
REFERENCE_KINDS = {"paper": "the paper's table, e.g. 'Table 1'",
                   "released-code-output": "the released repository's file, e.g. 'README of github owner/repo'"}


def load_references(ref_dir: Path | None = None) -> list[dict[str, Any]]:
    """The published rows of every ``*.yaml`` under ``ref_dir`` (default ``harness/configs/reference``).

    Each entry: ``name``, ``short``, ``kind`` (:data:`REFERENCE_KINDS`: ``paper``, a table of a
    published paper, or ``released-code-output``, the example output a released repository shows),
    ``origin`` (the paper's table, or the repository's file), ``source``, ``year`` (rows are ordered
    by it), ``benchmark``, ``input`` (gt | cpn; optional for 3DHP), ``protocol``, optional
    ``decimals``, and ``metrics: {metric: {group: value}}``. A missing
    folder gives no references (an installed package without the repository's ``results/``).
    """
    import yaml

    ref_dir = Path(ref_dir) if ref_dir is not None else REFERENCE_DIR
    if not ref_dir.is_dir():
        return []
    refs: list[dict[str, Any]] = []
    for path in sorted(ref_dir.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
        entries = data.get("references") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise DataError(f"{path}: expected a mapping with a 'references' list")
        for i, ref in enumerate(entries):
            name = f" ({ref['name']!r})" if isinstance(ref, dict) and "name" in ref else ""
            refs.append(_check_reference(ref, f"{path}: reference {i + 1}{name}"))
    return sorted(refs, key=lambda r: r["year"] if r["year"] is not None else 9999)  # stable: file order within a year


def _check_reference(ref: Any, where: str) -> dict[str, Any]:
    if not isinstance(ref, dict):
        raise DataError(f"{where}: must be a mapping")
    for key in ("name", "source", "benchmark", "metrics"):
        if key not in ref:
            raise DataError(f"{where}: missing key '{key}'")
    kind = ref.get("kind")
    if kind is None:
        raise DataError(f"{where}: missing key 'kind' (one of {', '.join(REFERENCE_KINDS)})")
    if not isinstance(kind, str) or kind not in REFERENCE_KINDS:
        raise DataError(f"{where}: kind must be one of {', '.join(REFERENCE_KINDS)}, got {kind!r}")
    origin = " ".join(str(ref.get("origin") or "").split())
    if not origin:
        raise DataError(f"{where}: kind {kind!r} needs 'origin' ({REFERENCE_KINDS[kind]})")
    bench = ref["benchmark"]
    if bench not in BENCHMARK_NAMES:
        raise DataError(f"{where}: benchmark '{bench}' is not one of {', '.join(BENCHMARK_NAMES)}")
    if bench == "h36m" and ref.get("input") not in ("gt", "cpn"):
        raise DataError(f"{where}: input must be 'gt' or 'cpn' for Human3.6M, got {ref.get('input')!r}")
    metrics = ref["metrics"]
    if not isinstance(metrics, dict) or not metrics:
        raise DataError(f"{where}: 'metrics' must map a metric to {{group: value}}")
    valid_metrics = ("P1", "P2") if bench == "h36m" else MPI3DHP_METRICS
    valid_groups = set(H36M_ACTIONS) | {"Avg"} if bench == "h36m" else \
        set(MPI3DHP_SCENE_ORDER) | {f"TS{i}" for i in range(1, 7)}
    clean: dict[str, dict[str, float]] = {}
    for metric, vals in metrics.items():
        if metric not in valid_metrics:
            raise DataError(f"{where}: metric '{metric}' is not one of {', '.join(valid_metrics)}")
        if not isinstance(vals, dict) or not vals:
            raise DataError(f"{where}: metric '{metric}' must map groups to values")
        for group, v in vals.items():
            if group not in valid_groups:
                raise DataError(f"{where}: unknown group '{group}' for {BENCHMARK_NAMES[bench]}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise DataError(f"{where}: {metric} {group} must be a number, got {v!r}")
        clean[str(metric)] = {str(g): float(v) for g, v in vals.items()}
    decimals = ref.get("decimals")
    if decimals is not None and (isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0):
        raise DataError(f"{where}: decimals must be a non-negative integer")
    year = ref.get("year")
    if year is not None and (isinstance(year, bool) or not isinstance(year, int)):
        raise DataError(f"{where}: year must be an integer")
    return {"name": str(ref["name"]), "short": str(ref.get("short") or ref["name"]), "year": year,
            "kind": kind, "origin": origin,
            "source": " ".join(str(ref["source"]).split()), "benchmark": bench, "input": ref.get("input"),
            "protocol": str(ref.get("protocol", "")), "decimals": decimals, "metrics": clean}


def trained_on(benchmark: str, train_on: str = "") -> str:
    """``"trained on H36M"`` / ``"trained on 3DHP"``: the training set of a run of ``benchmark``
    (``train_on`` "": its own; else a cross-dataset run's)."""
    src = train_on or benchmark
    return f"trained on {BENCHMARK_SHORT.get(src, src)}"


def input_class(keypoints: str, synthetic: bool) -> str | None:
    """Which published 2D input our ``keypoints`` compare to: ``gt`` (also every synthetic set),
    ``cpn`` (``cpn_*`` detections) or None (no reference, e.g. Stacked Hourglass)."""
    if keypoints == "gt":
        return "gt"
    if keypoints.startswith("cpn"):
        return "cpn"
    if synthetic:
        return "gt"
    return None


def matching_references(references: Sequence[dict[str, Any]], benchmark: str, keypoints: str,
                        synthetic: bool) -> list[dict[str, Any]]:
    if benchmark == "3dhp":
        return [r for r in references if r["benchmark"] == "3dhp"]
    cls = input_class(keypoints, synthetic)
    return [r for r in references if r["benchmark"] == benchmark and r.get("input") == cls]


# -------------------------------------------------------------------------------- tidy table prep
def _as_bool(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v)


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of a tidy table with its types fixed (a CSV read gives strings): ``synthetic`` bool
    (also true for ``synth_*`` keypoints), ``seed`` int, ``value``/``wall_time_s`` float; a missing or
    empty ``recipe`` (older runs) is ``harness``."""
    missing = [c for c in TIDY_COLUMNS if c not in df.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise DataError(f"results table lacks column '{missing[0]}'")
    out = with_optional_columns(df)
    for c in ("run", "benchmark", "variant", "noise", "profile", "data_root", "keypoints", "model", "metric",
              "group", "git_commit", "date", "device"):
        out[c] = out[c].fillna("").astype(str)
    out["synthetic"] = out["synthetic"].map(_as_bool) | out["keypoints"].str.startswith("synth")
    try:
        out["seed"] = pd.to_numeric(out["seed"]).astype(int)
        out["value"] = pd.to_numeric(out["value"]).astype(float)
    except (ValueError, TypeError) as e:
        raise DataError(f"results table: non-numeric seed or value ({e})") from None
    out["wall_time_s"] = pd.to_numeric(out["wall_time_s"], errors="coerce")
    # Runs of another recipe than the default are other rows: their profile tag names the recipe
    # ("quick/released"), so they are neither merged with nor superseded by the harness recipe's runs.
    # Idempotent: a table normalised already keeps its tags (the builders normalise what they are given).
    rec = out["recipe"].fillna("").astype(str).replace("", "harness")
    tagged = (rec == "harness") | np.array([p.endswith("/" + r) for p, r in zip(out["profile"], rec)], dtype=bool)
    out["profile"] = np.where(tagged, out["profile"], out["profile"] + "/" + rec)
    return out


def latest_runs(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Keep one run per setting x profile x variant x noise x seed: the latest (by ``date``, then
    name). Returns the rows kept and the names of the runs left out (superseded)."""
    if df.empty:
        return df, []
    runs = df.drop_duplicates("run")[_RUN_KEY + ["run", "date"]].sort_values(["date", "run"])
    keep = set(runs.drop_duplicates(_RUN_KEY, keep="last")["run"])
    dropped = sorted(set(runs["run"]) - keep)
    return df[df["run"].isin(keep)], dropped


def _settings_order(key: tuple) -> tuple:
    bench, kp, syn = key[:3]
    return (list(BENCHMARK_NAMES).index(bench) if bench in BENCHMARK_NAMES else 9, bench, kp != "gt", kp, syn,
            *key[3:])


def split_settings(df: pd.DataFrame) -> list[tuple[tuple[str, str, bool, str], pd.DataFrame]]:
    """``[((benchmark, keypoints, synthetic, train_on), rows), ...]``: one entry per input setting,
    H36M first, GT 2D before detections, real before synthetic, the own training set before another
    (``train_on`` "": the benchmark's own)."""
    df = normalise(df)
    keys = sorted({tuple(k) for k in df[_SETTING].itertuples(index=False, name=None)}, key=_settings_order)
    out = []
    for key in keys:
        mask = np.logical_and.reduce([df[c] == v for c, v in zip(_SETTING, key)])
        out.append(((str(key[0]), str(key[1]), bool(key[2]), *map(str, key[3:])), df[mask]))
    return out


def _single_setting(df: pd.DataFrame, benchmark: str | None) -> tuple[pd.DataFrame, list[str]]:
    df = normalise(df)
    if benchmark is not None:
        df = df[df["benchmark"] == benchmark]
        if df.empty:
            raise DataError(f"no {BENCHMARK_NAMES.get(benchmark, benchmark)} runs in the results")
    elif df.empty:
        raise DataError("no runs in the results")
    settings = df[_SETTING].drop_duplicates()
    if len(settings) > 1:
        desc = "; ".join(f"{key[0]} " + " ".join(f"{c}={v}" for c, v in zip(_SETTING[1:], key[1:]) if v != "")
                         for key in settings.itertuples(index=False, name=None))
        raise DataError(f"the results hold several input settings ({desc}); split them with split_settings()")
    return latest_runs(df)


# -------------------------------------------------------------------------------------- row stats
@dataclass
class Row:
    """One table row: ``mean``/``std``/``n`` keyed by (metric, group)."""

    label: str
    kind: str  # "ours" (a diffusion variant), "lifter" or "ref"
    mean: dict[tuple[str, str], float] = field(default_factory=dict)
    std: dict[tuple[str, str], float] = field(default_factory=dict)
    n: dict[tuple[str, str], int] = field(default_factory=dict)
    decimals: int | None = None
    variant: str = ""
    noise: str = ""
    profile: str = ""


def _order(value: str, order: Sequence[str]) -> tuple[int, str]:
    return (order.index(value) if value in order else len(order), value)


def variant_label(variant: str, noise: str | None = None) -> str:
    v = VARIANT_LABELS.get(variant, variant)
    return v if noise is None else f"{v} + {NOISE_LABELS.get(noise, noise)}"


def _agg(per_seed: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return per_seed.groupby(keys, sort=False)["value"].agg(mean="mean", std=lambda s: s.std(ddof=1),
                                                          n="count").reset_index()


def our_rows(sub: pd.DataFrame, metrics: Sequence[str], groups: Sequence[str], lifter: bool = True) -> list[Row]:
    """Our rows of one setting (already deduplicated): each (profile, variant, noise) of the
    ``diffusion`` model, then the lifter once per profile (one value per seed: it is shared by
    every variant of a seed)."""
    sub = sub[sub["metric"].isin(list(metrics)) & sub["group"].isin(list(groups))]
    profiles = sorted(sub["profile"].unique())
    tag = (lambda p: f" [{p}]") if len(profiles) > 1 else (lambda p: "")
    rows: list[Row] = []
    diff = sub[sub["model"] == "diffusion"]
    per_seed = diff.groupby(["profile", "variant", "noise", "seed", "metric", "group"], sort=False)["value"] \
        .mean().reset_index()
    stats = _agg(per_seed, ["profile", "variant", "noise", "metric", "group"])
    lift_rows: dict[str, Row] = {}
    if lifter:
        lift = sub[sub["model"] == "lifter"]
        lseed = lift.groupby(["profile", "seed", "metric", "group"], sort=False)["value"].mean().reset_index()
        for r in _agg(lseed, ["profile", "metric", "group"]).itertuples(index=False):
            row = lift_rows.setdefault(r.profile, Row(LIFTER_LABEL + tag(r.profile), "lifter", profile=r.profile))
            _put(row, r)
    for profile in profiles:
        if profile in lift_rows:
            rows.append(lift_rows[profile])
        ps = stats[stats["profile"] == profile]
        keys = sorted({(v, n) for v, n in zip(ps["variant"], ps["noise"])},
                      key=lambda k: (_order(k[0], VARIANT_ORDER), _order(k[1], NOISE_ORDER)))
        for variant, noise in keys:
            row = Row(variant_label(variant, noise) + tag(profile), "ours", variant=variant, noise=noise,
                      profile=profile)
            for r in ps[(ps["variant"] == variant) & (ps["noise"] == noise)].itertuples(index=False):
                _put(row, r)
            rows.append(row)
    return rows


def _put(row: Row, r: Any) -> None:
    key = (r.metric, r.group)
    row.mean[key] = float(r.mean)
    row.std[key] = float(r.std) if r.n > 1 else float("nan")
    row.n[key] = int(r.n)


def _ref_row(ref: dict[str, Any]) -> Row:
    row = Row(ref["name"], "ref", decimals=ref.get("decimals"))
    for metric, vals in ref["metrics"].items():
        for group, v in vals.items():
            row.mean[(metric, group)] = v
            row.n[(metric, group)] = 1
    return row
