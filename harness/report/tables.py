"""``harness tables``: result tables as pure functions of a results set's tidy table.

Input is the DataFrame of :func:`harness.report.results.collect` / :func:`harness.report.results.read_tidy`
(columns :data:`harness.report.results.TIDY_COLUMNS`); the tables are

* :func:`h36m_table` -- Human3.6M per action and Avg, P1 (MPJPE) or P2 (P-MPJPE);
* :func:`mpi3dhp_table` -- MPI-INF-3DHP PCK and AUC per scene and All, and MPJPE;
* :func:`ablation_table` -- the paper's ablation: baseline / +CCE / +CAG / full, Gaussian vs GMM;
* :func:`summary_table` -- one row per run, its averages;
* :func:`summary_tables` -- the printed summary (``harness tables``, the end of ``harness ablate``): a
  table per benchmark, setting and profile, rendered by :func:`summary_rich`, :func:`summary_markdown`
  and :func:`summary_json`.

Rows are the ``diffusion`` model of each (variant, noise) and one row for the shared GraFormer
lifter (taken once per seed). Where a cell has several seeds it shows ``mean ± std`` (sample std,
ddof=1); one seed, the plain value. The best of our rows per column is bold (lowest error, highest
PCK/AUC). Published numbers (``harness/configs/reference/*.yaml``) are shown as extra rows, matched to our
results by their 2D input, with our difference to them (``Δ``) for the average.

A builder returns a DataFrame of display strings (index: the row labels) whose ``attrs`` hold
``bold`` (``[row label, column]`` pairs), ``caption`` and ``label``, and how LaTeX lays it out
(``latex_env``, ``latex_split``, ``latex_headers``, ``latex_labels``, ``latex_note``); :func:`to_markdown` and
:func:`to_latex` render it (tabulate via ``DataFrame.to_markdown``; booktabs via ``Styler.to_latex``). Every
LaTeX table fits a two-column IEEEtran paper: per-action and 3DHP tables span the page (``table*``), the
ablation one column (``table``); see :func:`to_latex`. Captions say what ran (2D input, protocol, profile,
recipe, seeds, what each reference row is); where and how long it ran is :func:`provenance`'s
(``provenance.md`` beside the tables).
A results set holding several input settings (benchmark x 2D keypoints x synthetic/real) is split by
:func:`split_settings`, one table per setting; a builder given several raises :class:`DataError`.
:func:`write_tables` writes everything (atomically) and the plots of :mod:`harness.report.plots`;
:func:`write_table_set` (``harness tables``) writes the whole set, ``results.csv`` included, into a
temporary sibling folder and swaps it into place, so that the folder is always a complete set.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Sequence

import numpy as np
import pandas as pd

from harness.errors import DataError
from harness.report import significance
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
           "mpi3dhp_table", "ablation_table", "summary_table", "summary_tables", "summary_rich", "summary_markdown",
           "summary_json", "to_markdown", "to_latex", "tex_file", "provenance", "write_tables"]

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
    if keypoints.startswith("gt"):  # also gt16, the 16-joint skeleton's
        return f"ground-truth 2D ({keypoints})"
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


def _setting_caption(sub: pd.DataFrame) -> str:
    """What the rows of one setting are: 2D input (and the training set of a cross-dataset setting),
    profile(s), recipe, the GMM note, seeds, synthetic data. Nothing of where or how long they ran
    (data root, device, wall time, superseded runs): that is :func:`provenance`'s."""
    runs = sub.drop_duplicates("run")
    bench = runs["benchmark"].iloc[0]
    parts = []
    train_on = _train_on(runs)
    if bench == "h36m" or train_on != "h36m":
        parts.append(f"Input: {_keypoints_desc(runs['keypoints'].iloc[0])}.")
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
    if bool(runs["synthetic"].iloc[0]):
        parts.append("Synthetic benchmark (not the real data).")
    return " ".join(parts)


def _noises_text(noises: Sequence[str]) -> str:
    """``Gaussian noise``, ``each of Gaussian and GMM noise``: the noises that ran."""
    names = [NOISE_LABELS.get(n, n) for n in noises]
    if len(names) == 1:
        return f"{names[0]} noise"
    return f"each of {', '.join(names[:-1])} and {names[-1]} noise"


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


# Said in the LaTeX caption of a table with 3DHP columns (their headers subscript the joints evaluated).
JOINTS_NOTE = "Subscripts 14 and 17: over the 14 evaluation joints or all 17."


def _short_labels(refs: Sequence[dict[str, Any]]) -> dict[str, str]:
    """LaTeX row labels of the reference rows: their ``short`` name (the caption says what each is),
    unless two references share one."""
    shorts = [r["short"] for r in refs]
    return {r["name"]: r["short"] for r in refs if shorts.count(r["short"]) == 1}


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
    sub, _ = _single_setting(df, "h36m")
    kp, syn = sub["keypoints"].iloc[0], bool(sub["synthetic"].iloc[0])
    refs = [r for r in matching_references(load_references() if references is None else references, "h36m", kp, syn)
            if metric in r["metrics"]]
    present = set(sub.loc[sub["metric"] == metric, "group"])
    groups = [a for a in H36M_ACTIONS if a in present] + ["Avg"]
    rows = [_ref_row(r) for r in refs] + our_rows(sub, [metric], groups)
    cols = [_Col(g, key=(metric, g)) for g in groups]
    headers_seen: set[str] = set()
    latex_headers: dict[str, tuple[str, str]] = {}
    for ref_row, ref in zip(rows, refs):
        if (metric, "Avg") in ref_row.mean:
            header = f"Δ Avg vs {ref['short']}"
            while header in headers_seen:
                header += "'"
            headers_seen.add(header)
            latex_headers[header] = ("Δ Avg vs", header.removeprefix("Δ Avg vs "))
            cols.append(_Col(header, delta_of=(metric, "Avg"), against=ref_row))
    table = _assemble(rows, cols, decimals)
    what = "MPJPE" if metric == "P1" else "P-MPJPE"
    caption = (f"Human3.6M, {METRIC_NAMES[metric]} per action, lower is better; our rows are the refined "
               f"(diffusion) pose of each variant and noise, and the shared lifter's initial pose. "
               + _setting_caption(sub)
               + " Bold: best of our rows per column."
               + (f" Δ: our Avg {what} minus the reference's (negative is better). " + _refs_caption(refs)
                  if refs else ""))
    table.attrs.update(caption=caption.strip(), label=f"tab:{_slug('h36m', metric, kp, 'synth' if syn else '')}",
                       title=f"Human3.6M {metric} ({kp}{', synthetic' if syn else ''})",
                       latex_env="table*", latex_split="halves", latex_headers=latex_headers,
                       latex_labels=_short_labels(refs))
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
    sub, _ = _single_setting(df, "3dhp")
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
               + _setting_caption(sub) + " Bold: best of our rows per column."
               + (" Δ: our PCK All (14 joints) minus the reference's. " + _refs_caption(refs) if refs else ""))
    table.attrs.update(caption=caption.strip(),
                       label=f"tab:{_slug('3dhp', f'from-{train_on}' if train_on else '', 'synth' if syn else '')}",
                       title=f"MPI-INF-3DHP, {trained_on('3dhp', train_on)}{' (synthetic)' if syn else ''}",
                       latex_env="table*", latex_split="joints", latex_labels=_short_labels(refs),
                       latex_note=JOINTS_NOTE)
    return table


def ablation_table(df: pd.DataFrame, decimals: int = 2, intervals: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ablation in the paper's form for one setting: rows baseline / +CCE / +CAG / full
    (CCE+CAG); a column group per noise (Gaussian, GMM) with the averages (H36M: P1, P2; 3DHP: PCK,
    AUC, MPJPE over All on the 14 evaluation joints, and PCK, AUC on all 17 where the results have them)
    and the change of the first against the baseline with the same noise. ``intervals``
    (:func:`harness.report.significance.ablation_intervals`) adds ``Δ<metric> [95% CI]`` columns
    (:func:`~harness.report.significance.interval_columns`); without any, none are added."""
    sub, _ = _single_setting(df, None)
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
    ci_note = significance.interval_columns(table, merged, noises, intervals, metrics, NOISE_LABELS, METRIC_LABELS,
                                            decimals, MISSING)
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
               f"(CCE+CAG), trained with {_noises_text(noises)}. Δ{label(lead)}: change against the baseline with the "
               f"same noise "
               f"({'negative' if lead not in HIGHER_IS_BETTER else 'positive'} is better). "
               + _setting_caption(sub) + " Bold: best per column."
               + (f" Shared lifter: {lift_txt}." if lift_txt else ""))
    kp = sub["keypoints"].iloc[0]
    syn = bool(sub["synthetic"].iloc[0])
    slug = _slug("ablation", bench, kp if bench == "h36m" else "", f"from-{train_on}" if train_on else "",
                 "synth" if syn else "")
    table.attrs.update(caption=caption.strip(), label=f"tab:{slug}", title=f"Ablation {where}", latex_env="table",
                       latex_split="groups", latex_note=JOINTS_NOTE if bench == "3dhp" else "")
    if ci_note:
        table.attrs["caption"] += " " + ci_note
    return table


SUMMARY_METRICS = {"h36m": [("P1", "Avg", "P1"), ("P2", "Avg", "P2")],
                   "3dhp": [(m, "All", METRIC_LABELS[m]) for m in ("PCK", "AUC", "MPJPE", "PCK17", "AUC17")]}
SUMMARY_LIFTER = {"h36m": ("P1", "Avg", "lifter P1"), "3dhp": ("PCK", "All", f"lifter {METRIC_LABELS['PCK']}")}


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run (the printed summary is :func:`summary_tables`): run, benchmark, variant, noise,
    seed, profile, keypoints, the diffusion averages (P1, P2 for H36M; PCK, AUC, MPJPE All for 3DHP on
    14 joints, PCK, AUC on 17), the lifter's (P1 or PCK) and ``wall_time_s``; ``train_on`` after
    ``benchmark`` when a cross-dataset run is among them. Metric columns no run has are left out; numbers are floats (NaN: n/a)."""
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


# ------------------------------------------------------------------------------ on-screen summary
# What the summary shows per benchmark: (metric, group, header). Units go in the title, so headers stay short.
SUMMARY_COLUMNS = {"h36m": [("P1", "Avg", "P1"), ("P2", "Avg", "P2")],
                   "3dhp": [("PCK", "All", "PCK"), ("AUC", "All", "AUC"), ("MPJPE", "All", "MPJPE")]}
SUMMARY_UNITS = {"h36m": "P1 (MPJPE), P2 (P-MPJPE): mm, average over actions",
                 "3dhp": "14 joints, All: PCK@150mm %, AUC %, MPJPE mm"}
SUMMARY_LIFTER_LABEL = "GraFormer lifter"
SUMMARY_DECIMALS = 2


@dataclass
class SummaryTable:
    """One table of the on-screen summary: one benchmark and input setting.

    ``settings``: what is the same on every row (said once, in :attr:`settings_line`); ``columns``: the
    display headers (``method``, then ``noise`` and ``seeds`` only where they differ between rows, then
    the metrics); ``rows``: per row ``method``, ``kind`` (``lifter`` | ``ours``), ``variant``, ``noise``,
    ``seeds`` (how many) and ``values`` ({header: {mean, std, n}}, std None for one seed)."""

    title: str
    benchmark: str
    settings: dict[str, str]
    columns: list[str]
    rows: list[dict[str, Any]]

    @property
    def settings_items(self) -> list[str]:
        return [f"{k}: {v}" for k, v in self.settings.items()]

    @property
    def settings_line(self) -> str:
        return " · ".join(self.settings_items)

    def cells(self) -> list[list[str]]:
        """The display strings of :attr:`rows` under :attr:`columns`."""
        out = []
        for row in self.rows:
            line = []
            for c in self.columns:
                if c in row["values"]:
                    v = row["values"][c]
                    line.append(fmt_value(v["mean"], v["std"] if v["std"] is not None else float("nan"), v["n"],
                                          SUMMARY_DECIMALS))
                elif c == "seeds":
                    line.append(str(row["seeds"]))
                else:
                    line.append(str(row.get(c) or MISSING))
            out.append(line)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The table as JSON-ready data (:func:`summary_json`)."""
        return {"title": self.title, "benchmark": self.benchmark, "settings": dict(self.settings),
                "settings_line": self.settings_line, "columns": list(self.columns),
                "rows": [{**{k: v for k, v in r.items() if k != "values"},
                          "values": {c: dict(v) for c, v in r["values"].items()},
                          "cells": dict(zip(self.columns, cells))} for r, cells in zip(self.rows, self.cells())]}


def _seed_text(seeds: Sequence[int]) -> str:
    return ", ".join(map(str, sorted(seeds)))


def summary_tables(df: pd.DataFrame) -> list[SummaryTable]:
    """The on-screen summary of a results set: one :class:`SummaryTable` per benchmark, input setting
    (:func:`split_settings`) and profile, the latest run per seed as in the tables. Rows: the shared
    lifter, then each variant + noise of the diffusion model, in the tables' order; values: H36M P1, P2
    (Avg over actions, mm), 3DHP PCK, AUC, MPJPE (All, 14 joints), each the mean over seeds with the
    sample std (ddof=1) where there are several. What every row shares (2D input, noise, profile, seeds,
    how many runs and their wall time) is in ``settings``, not in a column."""
    out: list[SummaryTable] = []
    for (bench, kp, syn, train_on), part in split_settings(df):
        spec = SUMMARY_COLUMNS.get(bench)
        if spec is None:
            raise DataError(f"unknown benchmark '{bench}' in the results")
        sub, _ = _single_setting(part, bench)
        name = BENCHMARK_NAMES.get(bench, bench) + (f", {trained_on(bench, train_on)}" if train_on else "")
        for profile in sorted(sub["profile"].unique()):
            psub = sub[sub["profile"] == profile]
            settings = {"2D": kp + (" (synthetic)" if syn else ""), "profile": profile}
            columns, recs = _summary_rows(psub, spec, settings)
            runs = psub.drop_duplicates("run")
            settings["runs"] = f"{len(runs)}, {fmt_duration(float(runs['wall_time_s'].sum(min_count=1)))}"
            out.append(SummaryTable(f"{name} — {SUMMARY_UNITS[bench]}", bench, settings, columns, recs))
    return out


def _summary_rows(sub: pd.DataFrame, spec: Sequence[tuple[str, str, str]], settings: dict[str, str]
                  ) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and rows of one summary table (one setting and profile); what the rows share goes
    into ``settings``."""
    rows = our_rows(sub, [m for m, _, _ in spec], sorted({g for _, g, _ in spec}))
    seeds_of: dict[tuple[str, str], set[int]] = {}
    for r in sub.drop_duplicates("run").itertuples(index=False):
        seeds_of.setdefault((r.variant, r.noise), set()).add(int(r.seed))
        seeds_of.setdefault(("", ""), set()).add(int(r.seed))  # the lifter: every seed
    recs, seed_sets = [], []
    for row in rows:
        lifter = row.kind == "lifter"
        seeds = sorted(seeds_of.get(("", "") if lifter else (row.variant, row.noise), set()))
        values = {}
        for metric, group, header in spec:
            if (metric, group) in row.mean:
                mean, std = row.mean[(metric, group)], row.std.get((metric, group), float("nan"))
                values[header] = {"mean": mean if math.isfinite(mean) else None,  # JSON has no inf or NaN
                                  "std": std if math.isfinite(std) else None, "n": row.n.get((metric, group), 1)}
        recs.append({"method": SUMMARY_LIFTER_LABEL if lifter else VARIANT_LABELS.get(row.variant, row.variant),
                     "kind": row.kind, "variant": row.variant,
                     "noise": "" if lifter else NOISE_LABELS.get(row.noise, row.noise), "seeds": len(seeds),
                     "values": values})
        seed_sets.append(tuple(seeds))
    columns = ["method"]
    noises = {r["noise"] for r in recs if r["noise"]}
    if len(noises) > 1:
        columns.append("noise")
    elif noises:
        settings["noise"] = noises.pop()
    every = sorted({s for seeds in seed_sets for s in seeds})
    mean_std = f" (mean {PM} std)" if any(len(s) > 1 for s in seed_sets) else ""
    settings["seeds" if len(every) > 1 else "seed"] = _seed_text(every) + mean_std
    if len(set(seed_sets)) > 1:  # not every row has every seed: say how many each has
        columns.append("seeds")
    columns += [h for _, _, h in spec if any(h in r["values"] for r in recs)]
    return columns, recs


class _Items:
    """A rich renderable: ``items`` joined by `` · `` on one line, wrapped (where the console is narrower)
    between items only, never inside one."""

    def __init__(self, items: Sequence[str]):
        self.items = list(items)

    def __rich_console__(self, console: Any, options: Any):
        from rich.cells import cell_len
        from rich.text import Text

        line = ""
        for item in self.items:
            joined = f"{line} · {item}" if line else item
            if line and cell_len(joined) > options.max_width:
                yield Text(line)
                line = item
            else:
                line = joined
        if line:
            yield Text(line)


def summary_rich(tables: Sequence[SummaryTable]):
    """The summary as rich renderables (a :class:`rich.console.Group`): per table its title, the settings
    line (what every row shares; wrapped between its items where the console is narrower) and the
    table. Numbers never wrap nor get cut (``no_wrap``, at least the width of their longest cell); the
    text columns fold first where the console is narrower than the table (at 80 columns, rich's width
    when output is piped, the widest summary still fits)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    for i, st in enumerate(tables):
        cells = st.cells()
        t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for j, c in enumerate(st.columns):
            width = max([len(c)] + [len(row[j]) for row in cells])
            numeric = c not in ("method", "noise")
            t.add_column(c, justify="right" if numeric else "left", no_wrap=numeric, min_width=width if numeric
                         else None, overflow="fold")
        for row in cells:
            t.add_row(*row)
        if i:
            parts.append(Text(""))
        parts += [Text(st.title, style="bold"), _Items(st.settings_items), t]
    return Group(*parts)


def summary_markdown(tables: Sequence[SummaryTable]) -> str:
    """The summary as Markdown: per table a bold title, the settings line and a pipe table."""
    blocks = []
    for st in tables:
        frame = pd.DataFrame(st.cells(), columns=st.columns)
        body = frame.to_markdown(index=False, disable_numparse=True,
                                 colalign=["left" if c in ("method", "noise") else "right"
                                           for c in st.columns])
        blocks.append(f"**{st.title}**\n\n{st.settings_line}\n\n{body}\n")
    return "\n".join(blocks)


def summary_json(tables: Sequence[SummaryTable]) -> list[dict[str, Any]]:
    """The summary as JSON-ready data: a list of tables, each ``title``, ``benchmark``, ``settings`` (and
    ``settings_line``), ``columns`` and ``rows`` (numbers in ``values``, display strings in ``cells``)."""
    return [st.to_dict() for st in tables]


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
    """Escape LaTeX's special characters, spell out the few non-ASCII marks the tables use, and quote
    ``"..."`` as LaTeX does (````...''``)."""
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    for u, tex in _LATEX_UNICODE.items():
        out = out.replace(u, tex)
    return re.sub(r'"([^"]*)"', r"``\1''", out)  # "a title" -> ``a title''


def _latex_cell(v: Any) -> str:
    s = latex_escape(v)
    return re.sub(r"(?<![\w.])-(?=\d)", "$-$", s)  # a minus sign, not a hyphen


def to_latex(table: pd.DataFrame, caption: str | None = None, label: str | None = None,
             environment: str | None = None, split: str | None = None) -> str:
    """A booktabs float of ``table``: one or more tabulars (``Styler.to_latex(hrules=True)``) under one
    caption, the bold cells in ``\\textbf{}``, action names abbreviated as papers print them, two-level
    headers as ``\\multicolumn`` with a ``\\cmidrule(lr)`` under each group, "(14 joints)"/"(17 joints)"
    as a subscript (``PCK$_{14}$``), reference rows by their short name (``attrs["latex_labels"]``).

    Fitting the page: ``split`` (default ``attrs["latex_split"]``) stacks the columns as several tabulars
    (``halves``: the H36M actions in two halves, Avg and the Δ columns with the second; ``joints``: the
    3DHP 14-joint columns, then the 17-joint ones; ``groups``: one tabular per top-level column group, the
    ablation's noises), each repeating the row labels; and every tabular is shrunk to the line width only
    when it is wider (``\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{...}``, graphicx),
    so that no table overflows its column (``table``) or the page (``table*``, two-column layouts).
    ``environment`` defaults to ``attrs["latex_env"]`` (else ``table``). Needs booktabs and graphicx."""
    caption = table.attrs.get("caption", "") if caption is None else caption
    if caption and table.attrs.get("latex_note"):
        caption = f"{caption} {table.attrs['latex_note']}"
    label = table.attrs.get("label") if label is None else label
    env = environment or table.attrs.get("latex_env") or "table"
    split = table.attrs.get("latex_split") if split is None else split
    lines = [f"\\begin{{{env}}}", "\\centering"]
    if caption:
        lines.append(f"\\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(f"\\label{{{label}}}")
    for i, cols in enumerate(_latex_parts(table, split)):
        if i:
            lines.append("\\par\\medskip")
        lines += [LATEX_FIT + "%", _latex_tabular(table, cols).rstrip("\n") + "}"]
    lines.append(f"\\end{{{env}}}")
    return "\n".join(lines) + "\n"


# Shrink a tabular to the line width when (only when) it is wider: graphicx's \resizebox, whose size
# argument may use the box's natural \width.
LATEX_FIT = "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{"
LATEX_PACKAGES = ("booktabs", "graphicx")
_JOINTS_HEADER = re.compile(r"^(.*) \((14|17) joints\)$")


def _top(col: Hashable) -> str:
    return str(col[0]) if isinstance(col, tuple) else ""


def _latex_parts(table: pd.DataFrame, split: str | None) -> list[list[int]]:
    """Column positions of each stacked tabular (see :func:`to_latex`)."""
    cols = list(table.columns)
    every = list(range(len(cols)))
    if split == "halves":
        actions = [i for i, c in enumerate(cols) if c in H36M_ACTIONS]
        rest = [i for i in every if i not in actions]
        if len(actions) < 6:  # few columns: one tabular
            return [every]
        first = min(len(actions), math.ceil(len(cols) / 2))
        return [actions[:first], actions[first:] + rest]
    if split == "joints":
        seventeen = [i for i, c in enumerate(cols) if _top(c).endswith(f"({MPI3DHP_ALL_JOINTS_SUFFIX} joints)")]
        rest = [i for i in every if i not in seventeen]
        return [rest, seventeen] if seventeen and rest else [every]
    if split == "groups":
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(cols):
            groups.setdefault(_top(c), []).append(i)
        return list(groups.values())
    if split is not None:
        raise ValueError(f"split must be halves, joints or groups, not {split!r}")
    return [every]


def _latex_header(h: Any) -> str:
    h = LATEX_HEADERS.get(str(h), str(h))
    m = _JOINTS_HEADER.match(h)
    return latex_escape(m.group(1)) + f"$_{{{m.group(2)}}}$" if m else latex_escape(h)


def _latex_tabular(table: pd.DataFrame, positions: Sequence[int]) -> str:
    """One booktabs tabular of the columns at ``positions`` (the row labels first)."""
    sub = table.iloc[:, list(positions)]
    headers = table.attrs.get("latex_headers", {})
    cols = list(sub.columns)
    if headers and not isinstance(sub.columns, pd.MultiIndex) and any(c in headers for c in cols):
        cols = [tuple(headers[c]) if c in headers else ("", c) for c in cols]  # grouped for LaTeX only
    multi = bool(cols) and isinstance(cols[0], tuple)
    index_name = table.index.name or ""
    labels = table.attrs.get("latex_labels", {})
    t = pd.DataFrame(sub.to_numpy(), columns=range(len(cols)))
    t.insert(0, -1, [labels.get(lab, lab) for lab in sub.index])
    t.columns = (pd.MultiIndex.from_tuples([("", index_name)] + cols) if multi else [index_name] + cols)
    bold = {(lab, tuple(c) if isinstance(c, list) else c) for lab, c in table.attrs.get("bold", [])}
    css = pd.DataFrame("", index=t.index, columns=t.columns)
    for i, lab in enumerate(sub.index):
        for j, col in enumerate(sub.columns):
            if (lab, col) in bold:
                css.iat[i, j + 1] = "textbf: --rwrap;"
    styler = t.style.hide(axis="index").format(_latex_cell)
    styler = styler.format_index(_latex_header, axis=1, level=list(range(t.columns.nlevels)))
    styler = styler.apply(lambda _: css, axis=None)
    tex = styler.to_latex(hrules=True, column_format="l" + "r" * (t.shape[1] - 1), multicol_align="c")
    if not multi:
        return tex
    rules, start = [], 0
    for _, run in itertools.groupby(c[0] for c in t.columns):
        n = len(list(run))
        top = t.columns[start][0]
        if str(top):
            rules.append(f"\\cmidrule(lr){{{start + 1}-{start + n}}}")
        start += n
    out = tex.splitlines()
    k = out.index("\\toprule") + 1  # the first header row: the groups
    return "\n".join(out[:k + 1] + ([" ".join(rules)] if rules else []) + out[k + 1:]) + "\n"


# ------------------------------------------------------------------------------------------ files
def _write_text(path: Path, text: str) -> Path:
    from harness.safeio import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


LATEX_HEAD = (f"% booktabs tables written by `harness tables`; needs \\usepackage{{{','.join(LATEX_PACKAGES)}}} "
              "(graphicx: \\resizebox shrinks a table to the line width only where it is wider)\n")


def tex_file(tables: Sequence[pd.DataFrame]) -> str:
    """A ``.tex`` file of tables (:func:`to_latex` each), headed by the packages it needs."""
    return LATEX_HEAD + "\n".join(to_latex(t) for t in tables)


def build_tables(df: pd.DataFrame, references: Sequence[dict[str, Any]] | None = None,
                 runs_dir: Path | None = None, intervals: pd.DataFrame | None = None
                 ) -> dict[str, list[pd.DataFrame]]:
    """Every table of a results set, by file stem: ``h36m_p1``, ``h36m_p2``, ``3dhp``, ``ablation``
    (a stem with several settings has one table per setting). The ablation has the intervals of its
    differences: ``intervals`` (:func:`harness.report.significance.ablation_intervals` of ``df``, every
    setting), or, with ``runs_dir`` (the run folders), those computed from the runs' per-clip errors
    where they are there."""
    refs = load_references() if references is None else list(references)
    if intervals is None and runs_dir is not None:
        intervals = significance.ablation_intervals(df, runs_dir, strict=False)
    docs: dict[str, list[pd.DataFrame]] = {"h36m_p1": [], "h36m_p2": [], "3dhp": [], "ablation": []}
    for key, sub in split_settings(df):
        bench = key[0]
        if bench == "h36m":
            docs["h36m_p1"].append(h36m_table(sub, "P1", refs))
            docs["h36m_p2"].append(h36m_table(sub, "P2", refs))
        elif bench == "3dhp":
            docs["3dhp"].append(mpi3dhp_table(sub, refs))
        else:
            raise DataError(f"unknown benchmark '{bench}' in the results")
        if (sub["model"] == "diffusion").any():
            mine = None if intervals is None else intervals[np.logical_and.reduce(
                [intervals[c] == v for c, v in zip(_SETTING, key)])]  # this setting's
            docs["ablation"].append(ablation_table(sub, intervals=mine))
    return {k: v for k, v in docs.items() if v}


def provenance(df: pd.DataFrame) -> str:
    """Where and how the runs of a results set were made, the part kept out of the captions: a Markdown
    table with one row per run shown (the latest per setting and seed; benchmark, 2D input, profile,
    variant, noise, seed, data root, device, git commit, date, wall time), the total wall time, and the
    runs left out as superseded."""
    df = normalise(df)
    kept, dropped = latest_runs(df)
    runs = kept.drop_duplicates("run").copy()
    runs["_s"] = [_settings_order(tuple(k)) for k in runs[_SETTING].itertuples(index=False, name=None)]
    runs["_v"] = runs["variant"].map(lambda v: _order(v, VARIANT_ORDER))
    runs["_n"] = runs["noise"].map(lambda n: _order(n, NOISE_ORDER))
    runs = runs.sort_values(["_s", "profile", "_v", "_n", "seed", "run"])

    def root(r: Any) -> str:
        return r.data_root or ("synthetic" if r.synthetic else "unknown")

    table = pd.DataFrame({
        "run": runs["run"], "benchmark": [b + (f" (trained on {t})" if t else "") for b, t in
                                          zip(runs["benchmark"], runs["train_on"])],
        "2D": runs["keypoints"], "profile": runs["profile"], "variant": runs["variant"], "noise": runs["noise"],
        "seed": runs["seed"].astype(str), "data root": [root(r) for r in runs.itertuples(index=False)],
        "device": [d or "unknown" for d in runs["device"]], "git commit": [c[:12] or "unknown" for c in
                                                                          runs["git_commit"]],
        "date": [d or "unknown" for d in runs["date"]],
        "wall time": [fmt_duration(float(w)) for w in runs["wall_time_s"]]})
    total = fmt_duration(float(runs["wall_time_s"].sum(min_count=1)))
    lines = ["# Provenance", "",
             "Where and how the runs in these tables were made (the table captions say what was run, not where). "
             "Written by `harness tables`.", "",
             table.to_markdown(index=False, disable_numparse=True), "",
             f"{len(runs)} run{'s' if len(runs) != 1 else ''}, total wall time {total}."]
    if dropped:
        lines += ["", f"Left out: {len(dropped)} earlier run{'s' if len(dropped) != 1 else ''} with the same "
                      f"settings and seed as a later one (the latest is shown): {', '.join(dropped)}."]
    return "\n".join(lines) + "\n"


def write_tables(df: pd.DataFrame, out_dir: Path, runs_dir: Path | None = None,
                 references: Sequence[dict[str, Any]] | None = None) -> list[Path]:
    """Write ``<stem>.md`` and ``<stem>.tex`` for each table with data, ``provenance.md``
    (:func:`provenance`: where and how the runs were made) and the figures of
    :mod:`harness.report.plots`, each a ``.pdf`` and a ``.png``: ``h36m_p1_by_action`` and
    ``h36m_p2_by_action`` (H36M results), ``3dhp_by_scene`` (3DHP results), ``ablation_deltas`` (when
    the run folders in ``runs_dir`` give the differences' intervals) and, when ``runs_dir`` holds a run
    whose ``per_frame.npz`` has the sample poses, ``poses``. Every file is written atomically; returns
    the paths written."""
    df = normalise(df)
    if df.empty:
        raise DataError("no finished runs in the results: nothing to tabulate")
    out_dir = Path(out_dir)
    refs = load_references() if references is None else list(references)
    paths: list[Path] = []
    # the intervals of the ablation's differences, read once for the tables and the figure
    intervals = None if runs_dir is None else significance.ablation_intervals(df, runs_dir, strict=False)
    for stem, tables in build_tables(df, refs, intervals=intervals).items():
        paths.append(_write_text(out_dir / f"{stem}.md", "\n".join(to_markdown(t) for t in tables)))
        paths.append(_write_text(out_dir / f"{stem}.tex", tex_file(tables)))
    paths.append(_write_text(out_dir / "provenance.md", provenance(df)))
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
        paths += _ablation_delta_figures(plots, intervals, out_dir)
        run_dir = plots.pick_pose_run(df, runs_dir)
        if run_dir is not None:
            paths += plots.plot_poses(run_dir, out_dir / "poses.png") or []
    return paths


def _ablation_delta_figures(plots, intervals: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``ablation_deltas_<benchmark>`` (.pdf, .png) for each benchmark whose runs give intervals; a
    benchmark with several settings (2D input, trained-on, profile) gets one figure per setting,
    numbered in the order of :func:`harness.report.rows.split_settings`."""
    if intervals.empty:
        return []
    paths: list[Path] = []
    keys = ["keypoints", "synthetic", "train_on", "profile"]
    for bench, sub in intervals.groupby("benchmark", sort=False):
        groups = [g for _, g in sub.groupby(keys, sort=True, dropna=False)]
        for k, g in enumerate(groups):
            stem = f"ablation_deltas_{bench}" + (f"_{k + 1}" if len(groups) > 1 else "")
            paths += plots.plot_ablation_deltas(g, out_dir / f"{stem}.png")
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
