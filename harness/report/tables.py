"""``harness tables``: result tables as pure functions of a results set's tidy table.

Input is the DataFrame of :func:`harness.report.results.collect` / :func:`harness.report.results.read_tidy`
(columns :data:`harness.report.results.TIDY_COLUMNS`); the tables are

* :func:`h36m_table` -- Human3.6M per action and Avg, P1 (MPJPE) or P2 (P-MPJPE);
* :func:`mpi3dhp_table` -- MPI-INF-3DHP PCK and AUC per scene and All, and MPJPE;
* :func:`ablation_table` -- the paper's ablation: baseline / +CCE / +CAG / full, Gaussian vs GMM;
* :func:`summary_table` -- one row per run (what ``harness ablate`` prints at the end).

Rows are the ``diffusion`` model of each (variant, noise) and one row for the shared GraFormer
lifter (taken once per seed). Where a cell has several seeds it shows ``mean ± std`` (sample std,
ddof=1); one seed, the plain value. The best of our rows per column is bold (lowest error, highest
PCK/AUC). Published numbers (``harness/configs/reference/*.yaml``) are shown as extra rows, matched to our
results by their 2D input, with our difference to them (``Δ``) for the average.

A builder returns a DataFrame of display strings (index: the row labels) whose ``attrs`` hold
``bold`` (``[row label, column]`` pairs), ``caption`` and ``label``; :func:`to_markdown` and
:func:`to_latex` render it (tabulate via ``DataFrame.to_markdown``; booktabs via ``Styler.to_latex``).
A results set holding several input settings (benchmark x 2D keypoints x synthetic/real) is split by
:func:`split_settings`, one table per setting; a builder given several raises :class:`DataError`.
:func:`write_tables` writes everything (atomically) and the plots of :mod:`harness.report.plots`;
:func:`write_table_set` (``harness tables``) writes the whole set, ``results.csv`` included, into a
temporary sibling folder and swaps it into place, so that the folder is always a complete set.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Sequence

import numpy as np
import pandas as pd

from harness.errors import DataError
from harness.report.results import TIDY_COLUMNS
from harness.report.rows import (  # noqa: F401  (re-exported: the tables' API)
    ABLATION_LABELS,
    LATEX_HEADERS,
    LIFTER_LABEL,
    METRIC_LABELS,
    METRIC_NAMES,
    MISSING,
    NOISE_LABELS,
    NOISE_ORDER,
    PM,
    REFERENCE_DIR,
    Row,
    VARIANT_LABELS,
    VARIANT_ORDER,
    _RUN_KEY,
    _SETTING,
    _agg,
    _as_bool,
    _check_reference,
    _order,
    _put,
    _ref_row,
    _settings_order,
    _single_setting,
    input_class,
    latest_runs,
    load_references,
    matching_references,
    normalise,
    our_rows,
    split_settings,
    trained_on,
    variant_label,
)
from harness.protocols import (BENCHMARK_NAMES, H36M_ACTIONS, HIGHER_IS_BETTER, MPI3DHP_ALL_JOINTS_SUFFIX,
                               MPI3DHP_METRICS, MPI3DHP_SCENE_ORDER)

__all__ = ["REFERENCE_DIR", "load_references", "normalise", "latest_runs", "split_settings", "h36m_table",
           "mpi3dhp_table", "ablation_table", "summary_table", "summary_rich", "to_markdown", "to_latex",
           "write_tables"]

# ----------------------------------------------------------------------------------- formatting
def fmt_value(mean: float, std: float = float("nan"), n: int = 1, decimals: int = 1) -> str:
    """``49.7``, ``49.7 ± 0.3`` (several seeds), or the missing mark."""
    if mean is None or not math.isfinite(mean):
        return MISSING
    if n > 1 and std is not None and math.isfinite(std):
        return f"{mean:.{decimals}f} {PM} {std:.{decimals}f}"
    return f"{mean:.{decimals}f}"


def fmt_delta(delta: float, decimals: int = 1) -> str:
    """A signed difference, ``+1.2`` / ``-0.3``."""
    if delta is None or not math.isfinite(delta):
        return MISSING
    s = f"{delta:+.{decimals}f}"
    return s.replace("-", "+") if float(s) == 0 else s  # no "-0.0"


@dataclass
class _Col:
    header: Hashable
    key: tuple[str, str] | None = None  # (metric, group) of a value column
    delta_of: tuple[str, str] | None = None  # a delta column: this key ...
    against: Row | None = None  # ... minus this row's value (None: the row given per row)
    higher_better: bool = False


def _assemble(rows: list[Row], cols: list[_Col], decimals: int, delta_base: dict[int, Row | None] | None = None,
              index_name: str = "Method") -> pd.DataFrame:
    """The display table and the bold cells (best of our rows per value column)."""
    data: list[list[str]] = []
    for i, row in enumerate(rows):
        d = row.decimals if row.kind == "ref" and row.decimals is not None else decimals
        cells = []
        for c in cols:
            if c.key is not None:
                cells.append(fmt_value(row.mean.get(c.key, float("nan")), row.std.get(c.key, float("nan")),
                                       row.n.get(c.key, 1), d))
            else:
                base = c.against if c.against is not None else (delta_base or {}).get(i)
                if row.kind == "ref" or base is None or base is row:
                    cells.append(MISSING)
                else:
                    dd = max(decimals, base.decimals or 0) if base.kind == "ref" else decimals
                    cells.append(fmt_delta(row.mean.get(c.delta_of, float("nan"))
                                           - base.mean.get(c.delta_of, float("nan")), dd))
        data.append(cells)
    headers = [c.header for c in cols]
    columns = pd.MultiIndex.from_tuples(headers) if headers and isinstance(headers[0], tuple) else headers
    table = pd.DataFrame(data, index=pd.Index([r.label for r in rows], name=index_name), columns=columns)
    bold: list[list[Any]] = []
    for c in cols:
        if c.key is None:
            continue
        cand = [(r.label, round(r.mean[c.key], decimals)) for r in rows
                if r.kind != "ref" and math.isfinite(r.mean.get(c.key, float("nan")))]
        if len(cand) < 2:
            continue
        best = (max if c.higher_better else min)(v for _, v in cand)
        bold.extend([label, c.header] for label, v in cand if v == best)
    table.attrs["bold"] = bold
    return table


# ------------------------------------------------------------------------------------- captions
def _keypoints_desc(keypoints: str) -> str:
    if keypoints == "gt":
        return "ground-truth 2D (gt)"
    if keypoints.startswith("cpn"):
        return f"CPN detections ({keypoints})"
    if keypoints.startswith("synth"):
        return f"synthetic detector-like 2D ({keypoints})"
    if keypoints.startswith("sh"):
        return f"Stacked Hourglass detections ({keypoints})"
    return keypoints or "unknown"


def fmt_duration(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# What each training/evaluation recipe (config ``recipe``; harness/configs/recipes.yaml) follows.
RECIPE_DESCRIPTIONS = {"harness": "this project's defaults",
                       "released": "the cross-channel paper's released code, jjkislele/monoMotionDiff",
                       "diffpose": "DiffPose's released code, GONGJIA0208/Diffpose"}
# Said in the caption of every table with GMM-noise rows.
GMM_NOTE = ("GMM: the harness's own per-joint mixture fitted on the lifter's training residuals (harness/noise.py), "
            "not the cross-channel paper's or DiffPose's GMM construction.")


def _recipe_caption(runs: pd.DataFrame) -> str:
    """``Recipe: harness (this project's defaults; see README 'Recipes').``, or which recipes are
    mixed (one row per run in ``runs``; a missing/empty recipe is ``harness``)."""
    recipes = runs["recipe"] if "recipe" in runs.columns else [None] * len(runs)
    counts = pd.Series([r if isinstance(r, str) and r else "harness" for r in recipes]).value_counts()
    names = sorted(counts.index, key=lambda r: _order(r, tuple(RECIPE_DESCRIPTIONS)))

    def desc(r: str) -> str:
        return RECIPE_DESCRIPTIONS.get(r, "")

    if len(names) == 1:
        r = names[0]
        return f"Recipe: {r} ({desc(r) + '; ' if desc(r) else ''}see README 'Recipes')."
    items = "; ".join(f"{r}, {counts[r]} run{'s' if counts[r] != 1 else ''}" + (f" ({desc(r)})" if desc(r) else "")
                      for r in names)
    return f"Recipes mixed in this table (rows are not split by recipe): {items}. See README 'Recipes'."


def _setting_caption(sub: pd.DataFrame, dropped: Sequence[str]) -> str:
    runs = sub.drop_duplicates("run")
    bench = runs["benchmark"].iloc[0]
    parts = []
    if bench == "h36m":
        parts.append(f"Input: {_keypoints_desc(runs['keypoints'].iloc[0])}.")
    train_on = _train_on(runs)
    if train_on:  # cross-dataset: trained on another benchmark's training set
        parts.append(f"Trained on {BENCHMARK_NAMES.get(train_on, train_on)}'s training set"
                     + (f" (2D input: {_keypoints_desc(runs['keypoints'].iloc[0])})" if train_on == "h36m" else "")
                     + f", tested on {BENCHMARK_NAMES.get(bench, bench)}'s test set (cross-dataset).")
    profiles = sorted(runs["profile"].unique())
    parts.append(f"Profile{'s' if len(profiles) > 1 else ''}: {', '.join(profiles)}.")
    parts.append(_recipe_caption(runs))
    if (runs["noise"] == "gmm").any():
        parts.append(GMM_NOTE)
    seeds = sorted(int(s) for s in runs["seed"].unique())
    several = runs.groupby(["profile", "variant", "noise"])["seed"].nunique().max() > 1
    parts.append(f"Seed{'s' if len(seeds) > 1 else ''}: {', '.join(map(str, seeds))}"
                 + (f" (mean {PM} sample std over seeds where several)." if several else "."))
    parts.append(f"{len(runs)} run{'s' if len(runs) != 1 else ''}.")
    if dropped:
        parts.append(f"{len(dropped)} earlier run{'s' if len(dropped) != 1 else ''} with the same settings and "
                     f"seed left out (the latest is shown).")
    if bool(runs["synthetic"].iloc[0]):
        parts.append("Synthetic benchmark (not the real data).")
    else:
        roots = sorted(r for r in runs["data_root"].unique() if r)
        parts.append(f"Data: {', '.join(roots) if roots else 'unknown root'}.")
    devices = sorted(d for d in runs["device"].unique() if d)
    total = runs["wall_time_s"].sum(min_count=1)
    parts.append(f"Device: {', '.join(devices) or 'unknown'}; total wall time {fmt_duration(float(total))}.")
    return " ".join(parts)


def reference_kind_text(ref: dict[str, Any]) -> str:
    """What a reference row is, from its ``kind`` and ``origin``: ``a paper table (Table 1)`` or
    ``the released code's example output (README of ...), not a paper table`` ("" without a kind)."""
    kind, origin = ref.get("kind"), ref.get("origin")
    where = f" ({origin})" if origin else ""
    if kind == "paper":
        return f"a paper table{where}"
    if kind == "released-code-output":
        return f"the released code's example output{where}, not a paper table"
    return ""


def _refs_caption(refs: Sequence[dict[str, Any]]) -> str:
    parts = []
    for r in refs:
        what = reference_kind_text(r)
        parts.append(f"Reference: {r['name']}: {r['source']}." + (f" {r['short']}: {what}." if what else ""))
    return " ".join(parts)


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", "-".join(p for p in parts if p)).strip("-").lower()


# ---------------------------------------------------------------------------------------- tables
def h36m_table(df: pd.DataFrame, metric: str = "P1", references: Sequence[dict[str, Any]] | None = None,
               decimals: int = 1) -> pd.DataFrame:
    """Human3.6M per-action table of ``metric`` (P1 or P2) for one input setting.

    Rows: the references for this input (``references`` default: :func:`load_references`), the
    lifter, then each variant + noise; columns: the actions present, ``Avg``, and ``Δ Avg vs <ref>``
    (our Avg minus the reference's) for each reference with an Avg.
    """
    metric = metric.upper()
    if metric not in ("P1", "P2"):
        raise ValueError(f"metric must be P1 or P2, not {metric!r}")
    sub, dropped = _single_setting(df, "h36m")
    kp, syn = sub["keypoints"].iloc[0], bool(sub["synthetic"].iloc[0])
    refs = [r for r in matching_references(load_references() if references is None else references, "h36m", kp, syn)
            if metric in r["metrics"]]
    present = set(sub.loc[sub["metric"] == metric, "group"])
    groups = [a for a in H36M_ACTIONS if a in present] + ["Avg"]
    rows = [_ref_row(r) for r in refs] + our_rows(sub, [metric], groups)
    cols = [_Col(g, key=(metric, g)) for g in groups]
    headers_seen: set[str] = set()
    for ref_row, ref in zip(rows, refs):
        if (metric, "Avg") in ref_row.mean:
            header = f"Δ Avg vs {ref['short']}"
            while header in headers_seen:
                header += "'"
            headers_seen.add(header)
            cols.append(_Col(header, delta_of=(metric, "Avg"), against=ref_row))
    table = _assemble(rows, cols, decimals)
    what = "MPJPE" if metric == "P1" else "P-MPJPE"
    caption = (f"Human3.6M, {METRIC_NAMES[metric]} per action, lower is better; our rows are the refined "
               f"(diffusion) pose of each variant and noise, and the shared lifter's initial pose. "
               + _setting_caption(sub, dropped)
               + " Bold: best of our rows per column."
               + (f" Δ: our Avg {what} minus the reference's (negative is better). " + _refs_caption(refs)
                  if refs else ""))
    table.attrs.update(caption=caption.strip(), label=f"tab:{_slug('h36m', metric, kp, 'synth' if syn else '')}",
                       title=f"Human3.6M {metric} ({kp}{', synthetic' if syn else ''})")
    return table


def _train_on(sub: pd.DataFrame) -> str:
    """The ``train_on`` of one setting's rows ("": the benchmark's own training set)."""
    return str(sub["train_on"].iloc[0]) if "train_on" in sub.columns and len(sub) else ""


def _scene_cols(sub: pd.DataFrame, metric: str) -> list[str]:
    present = set(sub.loc[sub["metric"] == metric, "group"])
    return [s for s in MPI3DHP_SCENE_ORDER if s in present]


def mpi3dhp_table(df: pd.DataFrame, references: Sequence[dict[str, Any]] | None = None,
                  decimals: int = 1) -> pd.DataFrame:
    """MPI-INF-3DHP table for one setting: PCK and AUC per scene present (GS, noGS, Outdoor) and
    All, and MPJPE All, over the 14 evaluation joints and (results that have them) over all 17 joints
    (two header levels: metric, e.g. "PCK (14 joints)", and scene). References (3DHP ones) add rows
    and a ``Δ vs <ref>`` column on PCK All (14 joints). Caption and title say what the rows were
    trained on ("trained on 3DHP", or "trained on H36M" for a cross-dataset setting)."""
    sub, dropped = _single_setting(df, "3dhp")
    refs = matching_references(load_references() if references is None else references, "3dhp", "", False)
    cols: list[_Col] = []
    for suffix in ("", MPI3DHP_ALL_JOINTS_SUFFIX):
        for metric in (f"PCK{suffix}", f"AUC{suffix}"):
            cols += [_Col((METRIC_LABELS[metric], s), key=(metric, s), higher_better=True)
                     for s in _scene_cols(sub, metric)]
        if "All" in _scene_cols(sub, f"MPJPE{suffix}"):
            cols.append(_Col((METRIC_LABELS[f"MPJPE{suffix}"], "All"), key=(f"MPJPE{suffix}", "All")))
    keys = [c.key for c in cols]
    rows = [_ref_row(r) for r in refs] + our_rows(sub, list(MPI3DHP_METRICS), list(MPI3DHP_SCENE_ORDER))
    for i, ref in enumerate(refs):
        if ("PCK", "All") in rows[i].mean:
            cols.append(_Col((f"Δ vs {ref['short']}", "PCK All"), delta_of=("PCK", "All"), against=rows[i]))
    if not keys:
        raise DataError("no 3DHP PCK/AUC/MPJPE values in the results")
    table = _assemble(rows, cols, decimals)
    syn = bool(sub["synthetic"].iloc[0])
    train_on = _train_on(sub)
    over = ("over the 14 evaluation joints (the official protocol) and over all 17 joints (as D3DP's and "
            "P-STMO's evaluations)" if any(k[0].endswith(MPI3DHP_ALL_JOINTS_SUFFIX) for k in keys)
            else "over the 14 evaluation joints")
    caption = (f"MPI-INF-3DHP, {trained_on('3dhp', train_on)}: PCK (%, 150 mm) and AUC (%, 0-150 mm) per scene "
               f"and overall (higher is better), and MPJPE (mm, lower is better), {over}, of valid frames; our rows "
               "are the refined (diffusion) pose of each variant and noise, and the shared lifter's initial pose. "
               + _setting_caption(sub, dropped) + " Bold: best of our rows per column."
               + (" Δ: our PCK All (14 joints) minus the reference's. " + _refs_caption(refs) if refs else ""))
    table.attrs.update(caption=caption.strip(),
                       label=f"tab:{_slug('3dhp', f'from-{train_on}' if train_on else '', 'synth' if syn else '')}",
                       title=f"MPI-INF-3DHP, {trained_on('3dhp', train_on)}{' (synthetic)' if syn else ''}")
    return table


def ablation_table(df: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """The ablation in the paper's form for one setting: rows baseline / +CCE / +CAG / full
    (CCE+CAG); a column group per noise (Gaussian, GMM) with the averages (H36M: P1, P2; 3DHP: PCK,
    AUC, MPJPE over All on the 14 evaluation joints, and PCK, AUC on all 17 where the results have them)
    and the change of the first against the baseline with the same noise."""
    sub, dropped = _single_setting(df, None)
    bench = sub["benchmark"].iloc[0]
    train_on = _train_on(sub)
    if bench == "h36m":
        metrics, group = ["P1", "P2"], "Avg"
    else:
        metrics, group = ["PCK", "AUC", "MPJPE"], "All"
        metrics += [m for m in ("PCK17", "AUC17") if (sub["metric"] == m).any()]
    lead = metrics[0]
    label = lambda m: METRIC_LABELS.get(m, m)  # noqa: E731
    rows_all = our_rows(sub, metrics, [group], lifter=True)
    lifters = [r for r in rows_all if r.kind == "lifter"]
    ours = [r for r in rows_all if r.kind == "ours"]
    if not ours:
        raise DataError(f"no {BENCHMARK_NAMES.get(bench, bench)} diffusion results for the ablation")
    noises = sorted({r.noise for r in ours}, key=lambda n: _order(n, NOISE_ORDER))
    profiles = sorted({r.profile for r in ours})
    variants = sorted({r.variant for r in ours}, key=lambda v: _order(v, VARIANT_ORDER))
    tag = (lambda p: f" [{p}]") if len(profiles) > 1 else (lambda p: "")
    by_key = {(r.profile, r.variant, r.noise): r for r in ours}
    # One merged row per (profile, variant), its cells keyed by (metric@noise, group).
    merged: list[Row] = []
    bases: dict[int, Row | None] = {}
    for p in profiles:
        base = Row("base", "ours")
        for noise in noises:
            b = by_key.get((p, "baseline", noise))
            if b is not None:
                for m in metrics:
                    if (m, group) in b.mean:
                        base.mean[(f"{m}@{noise}", group)] = b.mean[(m, group)]
        for v in variants:
            if not any((p, v, n) in by_key for n in noises):
                continue
            row = Row(ABLATION_LABELS.get(v, v) + tag(p), "ours", variant=v, profile=p)
            for noise in noises:
                r = by_key.get((p, v, noise))
                if r is None:
                    continue
                for m in metrics:
                    if (m, group) in r.mean:
                        k = (f"{m}@{noise}", group)
                        row.mean[k], row.std[k], row.n[k] = r.mean[(m, group)], r.std[(m, group)], r.n[(m, group)]
            bases[len(merged)] = None if v == "baseline" or not base.mean else base
            merged.append(row)
    cols: list[_Col] = []
    for noise in noises:
        nl = NOISE_LABELS.get(noise, noise)
        cols += [_Col((nl, label(m)), key=(f"{m}@{noise}", group), higher_better=m in HIGHER_IS_BETTER)
                 for m in metrics]
        cols.append(_Col((nl, f"Δ{label(lead)}"), delta_of=(f"{lead}@{noise}", group)))
    table = _assemble(merged, cols, decimals, delta_base=bases, index_name="Variant")
    lift_txt = "; ".join(
        f"{r.label}: " + ", ".join(f"{label(m)} " + fmt_value(r.mean[(m, group)], r.std.get((m, group), float("nan")),
                                                       r.n[(m, group)], decimals)
                                   for m in metrics if (m, group) in r.mean) for r in lifters)
    what = {"P1": "MPJPE (P1) and P-MPJPE (P2), mm, averaged over actions",
            "PCK": "PCK (%), AUC (%) and MPJPE (mm) over All on the 14 evaluation joints"
                   + (", and PCK and AUC on all 17 joints" if "PCK17" in metrics else "")}
    where = BENCHMARK_NAMES.get(bench, bench) + (f", {trained_on(bench, train_on)}" if bench == "3dhp" else "")
    caption = (f"Ablation on {where}: {what[lead]}, of the refined pose of the baseline "
               f"denoiser, +CCE (cross-channel embedding), +CAG (context attention guidance) and the full model "
               f"(CCE+CAG), trained with Gaussian or GMM noise. Δ{label(lead)}: change against the baseline with the "
               f"same noise "
               f"({'negative' if lead not in HIGHER_IS_BETTER else 'positive'} is better). "
               + _setting_caption(sub, dropped) + " Bold: best per column."
               + (f" Shared lifter: {lift_txt}." if lift_txt else ""))
    kp = sub["keypoints"].iloc[0]
    syn = bool(sub["synthetic"].iloc[0])
    slug = _slug("ablation", bench, kp if bench == "h36m" else "", f"from-{train_on}" if train_on else "",
                 "synth" if syn else "")
    table.attrs.update(caption=caption.strip(), label=f"tab:{slug}", title=f"Ablation {where}")
    return table


SUMMARY_METRICS = {"h36m": [("P1", "Avg", "P1"), ("P2", "Avg", "P2")],
                   "3dhp": [(m, "All", METRIC_LABELS[m]) for m in ("PCK", "AUC", "MPJPE", "PCK17", "AUC17")]}
SUMMARY_LIFTER = {"h36m": ("P1", "Avg", "lifter P1"), "3dhp": ("PCK", "All", f"lifter {METRIC_LABELS['PCK']}")}


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run: run, benchmark, variant, noise, seed, profile, keypoints, the diffusion
    averages (P1, P2 for H36M; PCK, AUC, MPJPE All for 3DHP on 14 joints, PCK, AUC on 17), the lifter's
    (P1 or PCK) and ``wall_time_s``; ``train_on`` after ``benchmark`` when a cross-dataset run is among
    them. Metric columns no run has are left out; numbers are floats (NaN: n/a)."""
    df = normalise(df)
    cols = ["run", "benchmark", "variant", "noise", "seed", "profile", "keypoints"]
    if df.empty:
        return pd.DataFrame(columns=cols + ["wall_time_s"])
    runs = df.drop_duplicates("run").set_index("run")
    if (runs["train_on"] != "").any():
        cols.insert(cols.index("benchmark") + 1, "train_on")
    out = runs[cols[1:]].copy()
    value = df.set_index(["run", "model", "metric", "group"])["value"]
    value = value[~value.index.duplicated()]
    metric_cols: list[str] = []
    for bench in BENCHMARK_NAMES:
        for metric, group, name in SUMMARY_METRICS[bench] + [SUMMARY_LIFTER[bench]]:
            model = "lifter" if name.startswith("lifter") else "diffusion"
            vals = [value.get((run, model, metric, group), np.nan) if runs.at[run, "benchmark"] == bench else np.nan
                    for run in out.index]
            if not np.all(np.isnan(vals)):
                out[name] = vals
                metric_cols.append(name)
    out["wall_time_s"] = runs["wall_time_s"].astype(float)
    out = out.reset_index()
    out["_b"] = out["benchmark"].map(lambda b: _order(b, tuple(BENCHMARK_NAMES)))
    out["_v"] = out["variant"].map(lambda v: _order(v, VARIANT_ORDER))
    out["_n"] = out["noise"].map(lambda n: _order(n, NOISE_ORDER))
    order = ["_b"] + (["train_on"] if "train_on" in cols else []) + ["keypoints", "profile", "_v", "_n", "seed", "run"]
    out = out.sort_values(order).drop(columns=["_b", "_v", "_n"])
    return out[cols + metric_cols + ["wall_time_s"]].reset_index(drop=True)


def summary_rich(summary: pd.DataFrame, title: str = "Results", show_run: bool = False):
    """A :class:`rich.table.Table` of :func:`summary_table` (numbers to two decimals; the run
    name, which repeats the other columns, only with ``show_run``)."""
    from rich.table import Table

    text_cols = ("run", "benchmark", "train_on", "variant", "noise", "profile", "keypoints")
    cols = [c for c in summary.columns if show_run or c != "run"]
    t = Table(title=title)
    for c in cols:
        t.add_column("wall time" if c == "wall_time_s" else c, justify="left" if c in text_cols else "right",
                     no_wrap=c != "run")
    for rec in summary[cols].itertuples(index=False):
        cells = []
        for c, v in zip(cols, rec):
            if c == "wall_time_s":
                cells.append(fmt_duration(float(v)) if v is not None and math.isfinite(float(v)) else MISSING)
            elif isinstance(v, float):
                cells.append(f"{v:.2f}" if math.isfinite(v) else MISSING)
            else:
                cells.append(str(v))
        t.add_row(*cells)
    return t


# ---------------------------------------------------------------------------------------- writers
def _header_text(h: Hashable) -> str:
    return " ".join(str(x) for x in h if str(x)) if isinstance(h, tuple) else str(h)


def to_markdown(table: pd.DataFrame, caption: str | None = None) -> str:
    """A pipe table (``DataFrame.to_markdown``) with the bold cells in ``**...**`` and a
    ``Table: caption`` line (pandoc's caption) above it."""
    caption = table.attrs.get("caption", "") if caption is None else caption
    t = table.copy()
    cols = list(t.columns)
    for label, col in table.attrs.get("bold", []):
        col = tuple(col) if isinstance(col, list) else col
        t.loc[label, col] = f"**{t.loc[label, col]}**"
    t.columns = [_header_text(c) for c in cols]
    index_name = t.index.name or ""
    t = t.reset_index()
    t.columns = [index_name] + list(t.columns[1:])
    body = t.to_markdown(index=False, disable_numparse=True, colalign=("left",) + ("right",) * len(cols))
    return (f"Table: {caption}\n\n" if caption else "") + body + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {PM: r"$\pm$", "Δ": r"$\Delta$", MISSING: "--", "—": "---", "−": "$-$"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters and spell out the few non-ASCII marks the tables use."""
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    for u, tex in _LATEX_UNICODE.items():
        out = out.replace(u, tex)
    return out


def _latex_cell(v: Any) -> str:
    s = latex_escape(v)
    return re.sub(r"(?<![\w.])-(?=\d)", "$-$", s)  # a minus sign, not a hyphen


def to_latex(table: pd.DataFrame, caption: str | None = None, label: str | None = None,
             environment: str = "table") -> str:
    """A booktabs table (``Styler.to_latex(hrules=True)``), the bold cells in ``\\textbf{}``,
    action names abbreviated as papers print them, two-level headers as ``\\multicolumn``."""
    caption = table.attrs.get("caption", "") if caption is None else caption
    label = table.attrs.get("label") if label is None else label
    bold = {(lab, tuple(c) if isinstance(c, list) else c) for lab, c in table.attrs.get("bold", [])}
    multi = isinstance(table.columns, pd.MultiIndex)
    index_name = table.index.name or ""
    t = table.reset_index()
    first = t.columns[0]
    if multi:
        t = t.rename(columns={first[0]: index_name}, level=0)
    else:
        t = t.rename(columns={first: index_name})
    css = pd.DataFrame("", index=t.index, columns=t.columns)
    for i, lab in enumerate(table.index):
        for j, col in enumerate(table.columns):
            if (lab, col) in bold:
                css.iat[i, j + 1] = "textbf: --rwrap;"
    styler = t.style.hide(axis="index")
    styler = styler.format(_latex_cell)
    styler = styler.format_index(lambda h: latex_escape(LATEX_HEADERS.get(str(h), str(h))), axis=1,
                                 level=list(range(t.columns.nlevels)))
    styler = styler.apply(lambda _: css, axis=None)
    column_format = "l" + "r" * (t.shape[1] - 1)
    return styler.to_latex(hrules=True, caption=latex_escape(caption) if caption else None, label=label,
                           column_format=column_format, position_float="centering", multicol_align="c",
                           environment=environment)


# ------------------------------------------------------------------------------------------ files
def _write_text(path: Path, text: str) -> Path:
    from harness.safeio import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def build_tables(df: pd.DataFrame, references: Sequence[dict[str, Any]] | None = None
                 ) -> dict[str, list[pd.DataFrame]]:
    """Every table of a results set, by file stem: ``h36m_p1``, ``h36m_p2``, ``3dhp``, ``ablation``
    (a stem with several settings has one table per setting)."""
    refs = load_references() if references is None else list(references)
    docs: dict[str, list[pd.DataFrame]] = {"h36m_p1": [], "h36m_p2": [], "3dhp": [], "ablation": []}
    for (bench, *_), sub in split_settings(df):
        if bench == "h36m":
            docs["h36m_p1"].append(h36m_table(sub, "P1", refs))
            docs["h36m_p2"].append(h36m_table(sub, "P2", refs))
        elif bench == "3dhp":
            docs["3dhp"].append(mpi3dhp_table(sub, refs))
        else:
            raise DataError(f"unknown benchmark '{bench}' in the results")
        if (sub["model"] == "diffusion").any():
            docs["ablation"].append(ablation_table(sub))
    return {k: v for k, v in docs.items() if v}


def write_tables(df: pd.DataFrame, out_dir: Path, runs_dir: Path | None = None,
                 references: Sequence[dict[str, Any]] | None = None) -> list[Path]:
    """Write ``<stem>.md`` and ``<stem>.tex`` for each table with data and the figures of
    :mod:`harness.report.plots`, each a ``.pdf`` and a ``.png``: ``h36m_p1_by_action`` and
    ``h36m_p2_by_action`` (H36M results), ``3dhp_by_scene`` (3DHP results) and, when ``runs_dir``
    holds a run whose ``per_frame.npz`` has the sample poses, ``poses``. Every file is written
    atomically; returns the paths written."""
    df = normalise(df)
    if df.empty:
        raise DataError("no finished runs in the results: nothing to tabulate")
    out_dir = Path(out_dir)
    refs = load_references() if references is None else list(references)
    paths: list[Path] = []
    for stem, tables in build_tables(df, refs).items():
        paths.append(_write_text(out_dir / f"{stem}.md", "\n".join(to_markdown(t) for t in tables)))
        tex = "\n".join(to_latex(t, environment="table*" if stem.startswith("h36m") or t.shape[1] > 10 else "table")
                        for t in tables)
        paths.append(_write_text(out_dir / f"{stem}.tex",
                                 "% booktabs tables written by `harness tables`; needs \\usepackage{booktabs}\n" + tex))
    try:
        from harness.report import plots
    except ImportError:  # matplotlib absent: tables only
        return paths
    if (df["benchmark"] == "h36m").any():
        for metric in ("P1", "P2"):
            paths += plots.plot_h36m_by_action(df, out_dir / f"h36m_{metric.lower()}_by_action.png", metric=metric,
                                               references=refs)
    if (df["benchmark"] == "3dhp").any():
        paths += plots.plot_3dhp_by_scene(df, out_dir / "3dhp_by_scene.png", references=refs)
    if runs_dir is not None:
        run_dir = plots.pick_pose_run(df, runs_dir)
        if run_dir is not None:
            paths += plots.plot_poses(run_dir, out_dir / "poses.png") or []
    return paths


# ------------------------------------------------------------------------------------ the table set
# What a table set folder holds (results.csv, *.md, *.tex, *.png, *.pdf, and temporary files of an older
# version's writers, killed midway: hidden names with these suffixes). A folder holding anything else
# is not replaced.
SET_SUFFIXES = (".csv", ".md", ".tex", ".png", ".pdf")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap the folders ``a`` and ``b`` in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False
    where the system or the file system cannot (the caller falls back to two renames)."""
    import ctypes
    import errno
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(str(a)), _AT_FDCWD, os.fsencode(str(b)), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _check_set_folder(out_dir: Path) -> None:
    """Refuse to replace ``out_dir`` unless it is a table set (only :data:`SET_SUFFIXES` files)."""
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if out_dir.is_symlink() or not out_dir.is_dir():
        raise DataError(f"{out_dir}: not a folder; the tables are written as a folder of their own")
    for entry in sorted(out_dir.iterdir()):
        if entry.is_symlink() or not entry.is_file() or entry.suffix not in SET_SUFFIXES:
            raise DataError(f"{out_dir}: holds {entry.name}, which `harness tables` does not write; the table "
                            f"set replaces the whole folder: give --out a folder of its own")


def _recover(out_dir: Path) -> None:
    """Clean up after a writer killed midway: with ``out_dir`` gone between its two renames, the old set
    (``.<name>-old-*``) goes back into place; leftover temporary folders are removed."""
    import glob
    import shutil

    parent, name = out_dir.parent, glob.escape(out_dir.name)
    olds = sorted(parent.glob(f".{name}-old-*"), key=lambda p: p.stat().st_mtime)
    if olds and not out_dir.exists():
        olds[-1].rename(out_dir)
        olds = olds[:-1]
    for leftover in olds + sorted(parent.glob(f".{name}-tmp-*")):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def write_table_set(df: pd.DataFrame, out_dir: Path, runs_dir: Path | None = None,
                    references: Sequence[dict[str, Any]] | None = None, tidy: bool = True,
                    keep: Sequence[Path] = ()) -> list[Path]:
    """The whole report of a results set as one folder ``out_dir``: ``results.csv`` (``tidy``: the tidy
    table ``df`` as given), and :func:`write_tables`' tables and figures.

    Everything is written into a temporary sibling folder ``<parent>/.<name>-tmp-XXXX``, which then
    takes the place of ``out_dir`` (swapped in one step where Linux can, else the old set is renamed to
    ``.<name>-old-XXXX``, the new one to ``<name>``, and the old one removed). At any instant
    ``out_dir`` is the complete old set or the complete new one; a failure leaves the old set as it
    was and no temporary folder; one killed midway leaves a hidden folder beside it, which the next
    run removes (or, killed between the two renames, puts back in place). ``keep``: files inside
    ``out_dir`` to carry over unchanged (e.g. a results CSV the tables are made from). A folder
    holding anything but a table set (:data:`SET_SUFFIXES` files) is refused, nothing written. An
    OS error while writing (a full disk) is one line (:class:`DataError`), the old set kept.
    Returns the paths of the new set (under ``out_dir``)."""
    import shutil
    import tempfile

    from harness.locks import file_lock
    from harness.report.results import write_tidy

    out_dir = Path(out_dir)
    if not out_dir.name or out_dir.name in (".", ".."):
        out_dir = out_dir.resolve()
    if normalise(df).empty:
        raise DataError("no finished runs in the results: nothing to tabulate")
    parent, name = out_dir.parent, out_dir.name
    parent.mkdir(parents=True, exist_ok=True)
    with file_lock(parent / f".{name}.lock"):
        _recover(out_dir)
        _check_set_folder(out_dir)
        carried = []
        for k in keep:
            k = Path(k)
            if k.is_file() and k.resolve().parent == out_dir.resolve():
                carried.append(k)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-tmp-", dir=parent))
        try:
            tmp.chmod(0o777 & ~_umask())
            written: list[Path] = []
            for k in carried:
                shutil.copy2(k, tmp / k.name)
                written.append(tmp / k.name)
            if tidy:
                written.append(write_tidy(df, tmp / "results.csv"))
            written += write_tables(df, tmp, runs_dir=runs_dir, references=references)
            if out_dir.exists():
                if not _exchange(tmp, out_dir):
                    old = Path(tempfile.mkdtemp(prefix=f".{name}-old-", dir=parent))
                    old.rmdir()
                    out_dir.rename(old)
                    try:
                        tmp.rename(out_dir)
                    except BaseException:
                        old.rename(out_dir)  # the old set back in place
                        raise
                    tmp = old
                shutil.rmtree(tmp, ignore_errors=True)  # now the old set
            else:
                tmp.rename(out_dir)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, OSError) and not isinstance(e, PermissionError):  # e.g. a full disk
                where = Path(e.filename) if e.filename else out_dir
                if where.parent == tmp:  # name the file of the set, not its temporary folder
                    where = out_dir / where.name
                raise DataError(f"{where}: {e.strerror or e}; the tables were not replaced (the previous set, if "
                                f"any, is kept in {out_dir})") from None
            raise
    return [out_dir / p.name for p in written]


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
