"""Figures beside the tables, paper-ready: each one a vector PDF and a 300 dpi PNG of the same
figure, drawn at print size (column width :data:`COLUMN_WIDTH` = 3.5 in, text width
:data:`TEXT_WIDTH` = 7.2 in) with 7-9 pt text (:data:`PAPER_RC`, one ``matplotlib.rc_context``
applied to every figure; TrueType fonts in the PDF). Deterministic files: matplotlib's Agg canvas, no
pyplot state, no version or date stamped in either file.

One encoding in every figure (:func:`row_style`): one colour per denoiser variant
(:data:`VARIANT_COLOURS`, Okabe-Ito's colour-blind-safe palette in the order of
``harness/configs/variants.yaml``), one marker and shade per training noise (:data:`NOISE_STYLES`:
Gaussian a filled circle, GMM a lighter square edged in the variant's colour), the shared lifter a
grey diamond, the published references dark-grey lines.

* :func:`plot_h36m_by_action` -- Human3.6M P1 or P2 (mm) per action and Avg, a dot plot per input
  setting, 7.2 in wide; error bars: the sample std over seeds where there are several; references as
  grey ticks across each action; the value axis spans the data, not from 0 (its label says so);
* :func:`plot_3dhp_by_scene` -- MPI-INF-3DHP PCK and AUC (%, the 14 evaluation joints) per scene (GS,
  noGS, Outdoor) and All, 3.5 in wide, one row of panels per setting;
* :func:`plot_ablation_deltas` -- the ablation: change of each variant x noise against the baseline
  (mm for P1/P2), with its 95% confidence interval, from
  ``harness.report.significance.ablation_intervals``' table; 3.5 in wide (7.2 in beyond two metrics);
* :func:`plot_poses` -- a few test poses of one run (``per_frame.npz``'s ``sample_*`` arrays): the
  normalised 2D input above, the 3D ground truth (black, solid), the refined pose (the variant's
  colour, dashed) and the lifter's pose (grey, dotted) below, root-relative, in mm; 7.2 in wide.

Each ``plot_*`` takes the figure's path (its suffix, if any, is replaced) and returns the two files
written, ``[<stem>.pdf, <stem>.png]``; the matching ``*_figure`` function returns the
:class:`~matplotlib.figure.Figure` itself (for tests and notebooks).
"""

from __future__ import annotations

import contextlib
import math
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import matplotlib
from matplotlib import colors as mcolors
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.lines import Line2D

from harness.errors import DataError
from harness.protocols import BENCHMARK_NAMES, MPI3DHP_SCENE_ORDER
from harness.report.rows import (BENCHMARK_SHORT, LATEX_HEADERS, LIFTER_LABEL, NOISE_LABELS, NOISE_ORDER,
                                 VARIANT_LABELS, VARIANT_ORDER, latest_runs, load_references, matching_references,
                                 normalise, our_rows, split_settings, trained_on, variant_label)
from harness.safeio import atomic_path
from harness.skeleton import H36M_ACTIONS, h36m_edges, h36m_layout

__all__ = ["plot_h36m_by_action", "h36m_by_action_figure", "plot_3dhp_by_scene", "mpi3dhp_by_scene_figure",
           "plot_ablation_deltas", "ablation_deltas_figure", "ablation_note", "pick_pose_run", "plot_poses",
           "poses_figure", "paper_style", "row_style", "variant_colour", "SAMPLE_KEYS", "VARIANT_COLOURS",
           "NOISE_STYLES", "LIFTER_GREY", "REFERENCE_GREYS", "COLUMN_WIDTH", "TEXT_WIDTH", "PNG_DPI",
           "INTERVAL_COLUMNS"]

COLUMN_WIDTH = 3.5  # inches: one column of a two-column paper
TEXT_WIDTH = 7.2    # inches: the full text width
PNG_DPI = 300
SAMPLE_KEYS = ("sample_pose_2d", "sample_gt_3d", "sample_diffusion_3d")

# The one style of every figure: 7-9 pt text at print size, thin lines, TrueType (Type 42) fonts in
# the PDF (editable text, and what publishers ask for; Type 3 is the default).
PAPER_RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 8.0,
    "axes.titlesize": 8.0,
    "axes.labelsize": 8.0,
    "xtick.labelsize": 7.0,
    "ytick.labelsize": 7.0,
    "legend.fontsize": 7.0,
    "legend.title_fontsize": 7.0,
    "figure.titlesize": 9.0,
    "figure.labelsize": 8.0,
    "mathtext.default": "regular",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "axes.linewidth": 0.6,
    "axes.titlepad": 3.0,
    "axes.labelpad": 2.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "grid.linewidth": 0.4,
    "grid.color": "#d9d9d9",
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "lines.markeredgewidth": 0.6,
    "errorbar.capsize": 0.0,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "xtick.major.pad": 2.0,
    "ytick.major.pad": 2.0,
    "legend.frameon": False,
    "legend.handlelength": 1.6,
    "legend.handletextpad": 0.4,
    "legend.columnspacing": 1.0,
    "legend.borderaxespad": 0.2,
    "figure.constrained_layout.h_pad": 0.03,
    "figure.constrained_layout.w_pad": 0.03,
    "savefig.dpi": PNG_DPI,
}
PNG_METADATA = {"Software": None}  # matplotlib would stamp its version; the PNG carries no date
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}  # no version, no date

# Okabe & Ito's colour-blind-safe palette (black left out: it is the ground truth's), in the order the
# variants are declared; a variant beyond the palette (or not declared) gets one by a hash of its name.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
VARIANT_COLOURS: dict[str, str] = {v: OKABE_ITO[i % len(OKABE_ITO)] for i, v in enumerate(VARIANT_ORDER)}
# Per noise: the marker, how far its face is lightened towards white (0: the variant's colour), the
# hatch a bar of it would carry.
NOISE_STYLES: dict[str, dict[str, Any]] = {
    "gaussian": {"marker": "o", "lighten": 0.0, "hatch": ""},
    "gmm": {"marker": "s", "lighten": 0.55, "hatch": "////"},
    "kernels": {"marker": "^", "lighten": 0.55, "hatch": "xxxx"},
}
OTHER_NOISE_STYLE = {"marker": "v", "lighten": 0.3, "hatch": "...."}
LIFTER_GREY = "#8c8c8c"
LIFTER_MARKER = "D"
REFERENCE_GREYS = ("#404040", "#707070", "#a0a0a0")
REFERENCE_STYLES = ("-", "--", ":", "-.")
GT_COLOUR = "#000000"
TRUNCATED_NOTE = "axis not from 0"


# -------------------------------------------------------------------------------------- style
@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """The rcParams of every figure (:data:`PAPER_RC`), for building and saving it."""
    with matplotlib.rc_context(PAPER_RC):
        yield


def variant_colour(variant: str) -> str:
    """The variant's colour: :data:`VARIANT_COLOURS`, or for an undeclared variant one of the palette's
    colours no declared variant has, chosen by the CRC-32 of its name (the same in every figure and run)."""
    if variant in VARIANT_COLOURS:
        return VARIANT_COLOURS[variant]
    spare = [c for c in OKABE_ITO if c not in VARIANT_COLOURS.values()] or list(OKABE_ITO)
    return spare[zlib.crc32(variant.encode()) % len(spare)]


def _lighten(colour: str, amount: float) -> tuple[float, float, float]:
    r, g, b = mcolors.to_rgb(colour)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


def row_style(variant: str, noise: str) -> dict[str, Any]:
    """Marker keywords of one variant x noise row: ``marker``, ``color`` (the variant's colour: lines,
    error bars, marker edge), ``mfc`` (the face: the colour, or lighter for GMM), ``mec``, ``hatch``."""
    ns = NOISE_STYLES.get(noise, OTHER_NOISE_STYLE)
    colour = variant_colour(variant)
    return {"marker": ns["marker"], "color": colour, "mec": colour,
            "mfc": mcolors.to_hex(_lighten(colour, ns["lighten"])), "hatch": ns["hatch"]}


def _row_marker_style(row: Any) -> tuple[dict[str, Any], str]:
    """(marker keywords, gid) of a table row (:class:`harness.report.rows.Row`)."""
    if row.kind == "lifter":
        return {"marker": LIFTER_MARKER, "color": LIFTER_GREY, "mec": LIFTER_GREY, "mfc": LIFTER_GREY}, "lifter"
    st = row_style(row.variant, row.noise)
    st.pop("hatch")
    return st, f"ours:{row.variant}:{row.noise}:{row.profile}"


def _ref_short(ref: dict[str, Any]) -> str:
    return str(ref.get("short") or ref["name"])


def _ref_style(ref: dict[str, Any], order: Sequence[str]) -> dict[str, Any]:
    """A reference's line: grey and dash by the place of its short name among all references' (the
    same method the same line in every panel and figure, whatever its input)."""
    k = list(order).index(_ref_short(ref)) if _ref_short(ref) in order else len(order)
    return {"color": REFERENCE_GREYS[k % len(REFERENCE_GREYS)],
            "linestyle": REFERENCE_STYLES[k % len(REFERENCE_STYLES)]}


def _legend_rows(rows: Sequence[Any], refs: Sequence[dict[str, Any]], ref_order: Sequence[str] = (),
                 per_row: bool = False) -> list[list[tuple[Any, str]]]:
    """A factorised legend, as rows of (handle, label): the variants (their colours), then the lifter,
    the noises (their markers and shades, in black) and the references; ``per_row``: one entry per
    row of the table instead (rows of several profiles in one panel share a style)."""
    ours = [r for r in rows if r.kind == "ours"]
    first: list[tuple[Any, str]] = []
    second: list[tuple[Any, str]] = []
    if per_row:
        for r in rows:
            st, _ = _row_marker_style(r)
            first.append((Line2D([], [], linestyle="none", **st), r.label))
    else:
        for v in dict.fromkeys(r.variant for r in ours):
            first.append((Line2D([], [], linestyle="none", marker="o", color=variant_colour(v)),
                          VARIANT_LABELS.get(v, v)))
        if any(r.kind == "lifter" for r in rows):
            second.append((Line2D([], [], linestyle="none", marker=LIFTER_MARKER, color=LIFTER_GREY),
                           LIFTER_LABEL.replace(" (ours)", "")))
        for n in dict.fromkeys(r.noise for r in ours):
            st = NOISE_STYLES.get(n, OTHER_NOISE_STYLE)
            second.append((Line2D([], [], linestyle="none", marker=st["marker"], color="black", mec="black",
                                  mfc=_lighten("black", st["lighten"])), f"{NOISE_LABELS.get(n, n)} noise"))
    for short, ref in {_ref_short(r): r for r in refs}.items():
        what = "released code" if ref.get("kind") == "released-code-output" else "published"
        second.append((Line2D([], [], linewidth=1.0, **_ref_style(ref, ref_order)), f"{short} ({what})"))
    return [r for r in (first, second) if r]


LEGEND_LINE = 0.14  # inches: one line of a 7 pt legend


def _legend(fig: Figure, rows: list[list[tuple[Any, str]]], ncol: int, loc: str = "outside upper center",
            lines_planned: int = 1) -> None:
    """``rows`` as a figure legend of ``ncol`` columns, each row starting on a line of its own (all in
    one line when they fit); the figure grows by :data:`LEGEND_LINE` per line beyond ``lines_planned``."""
    entries = [e for r in rows for e in r]
    if not entries:
        return
    if len(entries) <= ncol:
        lines = [entries]
    else:
        lines = [r[i:i + ncol] for r in rows for i in range(0, len(r), ncol)]
        ncol = max(len(line) for line in lines)
    blank = (Line2D([], [], linestyle="none"), "")
    grid = [line + [blank] * (ncol - len(line)) for line in lines]
    ordered = [grid[i][j] for j in range(ncol) for i in range(len(grid))]  # matplotlib fills by column
    fig.legend([h for h, _ in ordered], [lab for _, lab in ordered], loc=loc, ncol=ncol)
    if len(grid) > lines_planned:
        w, h = fig.get_size_inches()
        fig.set_size_inches(w, h + LEGEND_LINE * (len(grid) - lines_planned))


# ---------------------------------------------------------------------------------- figure i/o
def _new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _outputs(path: Path) -> tuple[Path, Path]:
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in (".pdf", ".png") else path
    return stem.with_name(stem.name + ".pdf"), stem.with_name(stem.name + ".png")


def _save(fig: Figure, path: Path) -> list[Path]:
    """Write ``fig`` as ``<stem>.pdf`` and ``<stem>.png`` (300 dpi), each atomically, at its size."""
    pdf, png = _outputs(path)
    with paper_style():
        if isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
            fig.draw_without_rendering()  # lay out once, then keep it for both files
            fig.set_layout_engine("none")
        with atomic_path(pdf, suffix=".pdf") as tmp:
            fig.savefig(tmp, format="pdf", metadata=PDF_METADATA)
        with atomic_path(png, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=PNG_DPI, metadata=PNG_METADATA)
    return [pdf, png]


def _finite(values: Any) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    return a[np.isfinite(a)]


def _value_axis(ax: Any, values: Sequence[float], label: str, upper_limit: float | None = None,
                axis: str = "y") -> None:
    """Limits spanning ``values`` with a margin (not from 0: the differences are the point), and
    ``label``, which then says so."""
    vals = _finite(values)
    if vals.size == 0:
        lo, hi = 0.0, 1.0
    else:
        lo, hi = float(vals.min()), float(vals.max())
    pad = 0.08 * (hi - lo) if hi > lo else max(abs(hi) * 0.05, 0.5)
    lo, hi = lo - pad, hi + pad
    if upper_limit is not None and hi > upper_limit >= vals.max(initial=-math.inf):
        hi = upper_limit
    if lo < 0 <= vals.min(initial=math.inf):
        lo = 0.0
    (ax.set_ylim if axis == "y" else ax.set_xlim)(lo, hi)
    if lo > 0:
        label = f"{label}, {TRUNCATED_NOTE}"
    (ax.set_ylabel if axis == "y" else ax.set_xlabel)(label)


def _dot_rows(ax: Any, rows: Sequence[Any], refs: Sequence[dict[str, Any]], metric: str,
              groups: Sequence[str], ref_order: Sequence[str] = ()) -> list[float]:
    """Rows as dots per group (lifter, then each variant x noise, side by side within a group), with
    error bars of the std over seeds, references as ticks across the group. Returns the values drawn."""
    x = np.arange(len(groups), dtype=float)
    n = max(len(rows), 1)
    step = min(0.78 / n, 0.14)
    drawn: list[float] = []
    for j, row in enumerate(rows):
        means = np.array([row.mean.get((metric, g), np.nan) for g in groups], dtype=float)
        means[~np.isfinite(means)] = np.nan  # an inf is no dot (the tables show it; the gate refuses it)
        stds = np.array([row.std.get((metric, g), np.nan) for g in groups], dtype=float)
        yerr = np.where(np.isfinite(stds), stds, 0.0) if np.isfinite(stds).any() else None
        st, gid = _row_marker_style(row)
        colour = st.pop("color")
        cont = ax.errorbar(x + (j - (n - 1) / 2) * step, means, yerr=yerr, linestyle="none", color=colour,
                           elinewidth=0.6, zorder=3, **st)
        cont.lines[0].set_gid(gid)
        drawn += list(means) + (list(means + yerr) + list(means - yerr) if yerr is not None else [])
    for ref in refs:
        vals = ref["metrics"][metric]
        xs = np.array([xi for xi, g in zip(x, groups) if g in vals])
        ys = [vals[g] for g in groups if g in vals]
        if len(ys):
            st = _ref_style(ref, ref_order)
            lines = ax.hlines(ys, xs - 0.44, xs + 0.44, colors=st["color"], linestyles=st["linestyle"],
                              linewidth=1.0, zorder=2)
            lines.set_gid(f"ref:{ref['name']}")
            drawn += ys
    ax.set_xticks(x)
    ax.set_xlim(-0.55, len(groups) - 0.45)
    ax.grid(axis="y")
    ax.set_axisbelow(True)
    ax.tick_params(axis="x", length=0)
    return drawn


def _input_words(keypoints: str, synthetic: bool) -> str:
    kp = {"gt": "GT 2D"}.get(keypoints, f"{keypoints} 2D")
    return f"{kp} input" + (", synthetic data" if synthetic else "")


class _Panels:
    """What the per-setting dot-plot figures share: the references (and their line order) and the
    settings of one benchmark in ``df`` (a one-line DataError, ``empty``, when it has none), and, panel
    by panel, the rows and references drawn, for the figure's one legend."""

    def __init__(self, df: pd.DataFrame, benchmark: str, references: Sequence[dict[str, Any]] | None, empty: str):
        self.benchmark = benchmark
        self.refs_all = load_references() if references is None else list(references)
        self.ref_order = list(dict.fromkeys(_ref_short(r) for r in self.refs_all))
        self.settings = [(key, sub) for key, sub in split_settings(normalise(df)) if key[0] == benchmark]
        if not self.settings:
            raise DataError(empty)
        self.rows: list[Any] = []
        self.refs: list[dict[str, Any]] = []
        self.panel_rows: list[list[Any]] = []

    def draw(self, ax, sub: pd.DataFrame, metric: str, groups: list[str], keypoints: str, synthetic: bool) -> list:
        """:func:`_dot_rows` of ``sub``'s rows of ``metric`` over ``groups`` and the matching references;
        returns the values drawn."""
        rows = our_rows(sub, [metric], groups)
        refs = [r for r in matching_references(self.refs_all, self.benchmark, keypoints, synthetic)
                if metric in r["metrics"]]
        self.panel_rows.append(rows)
        self.rows += [r for r in rows if r.label not in {q.label for q in self.rows}]
        self.refs += [r for r in refs if r["name"] not in {q["name"] for q in self.refs}]
        return _dot_rows(ax, rows, refs, metric, groups, self.ref_order)

    def legend(self, fig: Figure, ncol: int, ncol_per_row: int, **kw) -> None:
        """The figure's legend: one entry per row (``ncol_per_row`` columns) when a panel holds rows of
        several profiles, else factorised (``ncol``)."""
        per_row = any(len({r.profile for r in rows}) > 1 for rows in self.panel_rows)
        _legend(fig, _legend_rows(self.rows, self.refs, self.ref_order, per_row),
                ncol=ncol_per_row if per_row else ncol, **kw)


# ------------------------------------------------------------------------------ H36M per action
def h36m_by_action_figure(df: pd.DataFrame, metric: str = "P1",
                          references: Sequence[dict[str, Any]] | None = None) -> Figure:
    """The figure of :func:`plot_h36m_by_action`."""
    if metric not in ("P1", "P2"):
        raise DataError(f"per-action figure of {metric!r}: Human3.6M's metrics are P1 and P2")
    panels = _Panels(df, "h36m", references, "no Human3.6M runs in the results: nothing to plot per action")
    name = {"P1": "P1 (MPJPE)", "P2": "P2 (P-MPJPE)"}[metric]
    with paper_style():
        fig = _new_figure(TEXT_WIDTH, 0.35 + 1.85 * len(panels.settings))
        axes = fig.subplots(len(panels.settings), 1, squeeze=False)[:, 0]
        for ax, ((_, kp, syn, *rest), sub) in zip(axes, panels.settings):
            sub, _ = latest_runs(sub)
            present = set(sub.loc[sub["metric"] == metric, "group"])
            groups = [a for a in H36M_ACTIONS if a in present] + ["Avg"]
            drawn = panels.draw(ax, sub, metric, groups, kp, syn)
            ax.set_xticklabels([LATEX_HEADERS.get(g, g) for g in groups])
            if len(groups) > 1:
                ax.axvline(len(groups) - 1.5, color="#bdbdbd", linewidth=0.6, linestyle=":")
            _value_axis(ax, drawn, f"{metric} (mm)")
            where = f", {trained_on('h36m', rest[0])}" if rest and rest[0] else ""
            ax.set_title(f"Human3.6M {name} per action, lower is better; {_input_words(kp, syn)}{where}",
                         loc="left")
        panels.legend(fig, ncol=10, ncol_per_row=4)
    return fig


def plot_h36m_by_action(df: pd.DataFrame, path: Path, metric: str = "P1",
                        references: Sequence[dict[str, Any]] | None = None) -> list[Path]:
    """Human3.6M ``metric`` (P1 or P2, mm) per action and Avg: one dot-plot panel per H36M input
    setting of ``df`` (GT 2D, CPN, ...), 7.2 in wide. Per action, the lifter (grey diamond) and each
    variant x noise (:func:`row_style`), the latest run per seed, the mean over seeds with the sample
    std as error bar where there are several; references of the same input as grey ticks. The value
    axis spans the values drawn (labelled "axis not from 0" when it does not start at 0). Writes
    ``<path stem>.pdf`` and ``.png``; returns both paths."""
    return _save(h36m_by_action_figure(df, metric, references), path)


# ------------------------------------------------------------------------------- 3DHP per scene
MPI3DHP_FIGURE_METRICS = ("PCK", "AUC")  # the official 14 evaluation joints


def mpi3dhp_by_scene_figure(df: pd.DataFrame, references: Sequence[dict[str, Any]] | None = None) -> Figure:
    """The figure of :func:`plot_3dhp_by_scene`."""
    panels = _Panels(df, "3dhp", references, "no MPI-INF-3DHP runs in the results: nothing to plot per scene")
    with paper_style():
        fig = _new_figure(COLUMN_WIDTH, 0.55 + 1.75 * len(panels.settings))
        subfigs = fig.subfigures(len(panels.settings), 1, squeeze=False)[:, 0]
        for sf, ((_, kp, syn, *rest), sub) in zip(subfigs, panels.settings):
            sub, _ = latest_runs(sub)
            axes = sf.subplots(1, len(MPI3DHP_FIGURE_METRICS), squeeze=False)[0]
            for ax, metric in zip(axes, MPI3DHP_FIGURE_METRICS):
                present = set(sub.loc[sub["metric"] == metric, "group"])
                groups = [g for g in MPI3DHP_SCENE_ORDER if g in present]
                drawn = panels.draw(ax, sub, metric, groups, kp, syn)
                ax.set_xticklabels(groups)
                _value_axis(ax, drawn, f"{metric} (%)", upper_limit=100.0)
                ax.set_title(f"{metric}, higher is better")
            train = rest[0] if rest else ""
            sf.suptitle(f"MPI-INF-3DHP, 14 joints, {trained_on('3dhp', train)}"
                        + (" (synthetic data)" if syn else ""), fontsize=8)
        panels.legend(fig, ncol=4, ncol_per_row=2, lines_planned=2)
    return fig


def plot_3dhp_by_scene(df: pd.DataFrame, path: Path,
                       references: Sequence[dict[str, Any]] | None = None) -> list[Path]:
    """MPI-INF-3DHP PCK and AUC (%, over the 14 evaluation joints) per scene present (GS, noGS,
    Outdoor) and All: for each 3DHP setting of ``df`` (trained on 3DHP, or cross-dataset from H36M) a
    row of two dot-plot panels, 3.5 in wide, styled as :func:`plot_h36m_by_action` (axes spanning the
    values, not from 0; capped at 100 %). Writes ``<path stem>.pdf`` and ``.png``; returns both."""
    return _save(mpi3dhp_by_scene_figure(df, references), path)


# ---------------------------------------------------------------------------------- ablation
INTERVAL_COLUMNS = ("benchmark", "variant", "noise", "metric", "delta", "lo", "hi", "significant", "n_clips",
                    "n_seeds", "method")
METRIC_ORDER = ("P1", "P2", "MPJPE", "PCK", "AUC", "MPJPE17", "PCK17", "AUC17")
METRIC_UNITS = {"P1": "mm", "P2": "mm", "MPJPE": "mm", "MPJPE17": "mm", "PCK": "pp", "AUC": "pp", "PCK17": "pp",
                "AUC17": "pp"}
LOWER_IS_BETTER = {"P1", "P2", "MPJPE", "MPJPE17"}


def _order_key(value: str, order: Sequence[str]) -> tuple[int, str]:
    return (list(order).index(value) if value in order else len(order), value)


def _check_intervals(intervals: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in INTERVAL_COLUMNS if c not in intervals.columns]
    if missing:
        raise DataError(f"ablation intervals lack column '{missing[0]}' (expected {', '.join(INTERVAL_COLUMNS)})")
    iv = intervals.copy()
    for c in ("benchmark", "variant", "noise", "metric", "method"):
        iv[c] = iv[c].fillna("").astype(str)
    try:
        for c in ("delta", "lo", "hi"):
            iv[c] = pd.to_numeric(iv[c]).astype(float)
    except (ValueError, TypeError) as e:
        raise DataError(f"ablation intervals: non-numeric delta, lo or hi ({e})") from None
    iv = iv[np.isfinite(iv["delta"])]
    if iv.empty:
        raise DataError("no ablation intervals with a finite delta: nothing to plot")
    return iv


def _count_words(values: pd.Series, word: str) -> str:
    vals = sorted({int(v) for v in pd.to_numeric(values, errors="coerce").dropna()})
    if not vals:
        return ""
    n = f"{vals[0]}" if len(vals) == 1 else f"{vals[0]}-{vals[-1]}"
    return f"{n} {word}{'' if vals == [1] else 's'}"


def ablation_note(intervals: pd.DataFrame) -> str:
    """The footnote of :func:`plot_ablation_deltas` (also for a caption): what the deltas and error bars
    are, the interval method(s) and the numbers of seeds and clips."""
    iv = _check_intervals(intervals)
    methods = "; ".join(m for m in dict.fromkeys(iv["method"]) if m) or "method not given"
    counts = ", ".join(w for w in (_count_words(iv["n_seeds"], "seed"), _count_words(iv["n_clips"], "clip")) if w)
    lower = "negative: lower error than the baseline" if set(iv["metric"]) <= LOWER_IS_BETTER else \
        "mm: lower is better, pp (percentage points): higher is better"
    return (f"Δ: variant minus the baseline ({lower}); error bars: 95% CI, {methods}"
            + (f" ({counts})" if counts else "") + ". Hollow, n.s.: the interval contains 0.")


def _wrap(text: str, width_in: float, fontsize: float) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width_in`` inches at ``fontsize`` points
    (measured with the Agg renderer in the current rcParams' font; a longer word stays whole)."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer, prop = RendererAgg(100, 100, 72), FontProperties(size=fontsize)
    lines: list[str] = []
    for word in text.split():
        trial = f"{lines[-1]} {word}" if lines else word
        if lines and renderer.get_text_width_height_descent(trial, prop, ismath=False)[0] / 72 <= width_in:
            lines[-1] = trial
        else:
            lines.append(word)
    return lines


def ablation_deltas_figure(intervals: pd.DataFrame) -> Figure:
    """The figure of :func:`plot_ablation_deltas`."""
    iv = _check_intervals(intervals)
    benches = sorted(dict.fromkeys(iv["benchmark"]), key=lambda b: _order_key(b, tuple(BENCHMARK_NAMES)))
    metrics = sorted(dict.fromkeys(iv["metric"]), key=lambda m: _order_key(m, METRIC_ORDER))
    pairs = {b: sorted({(v, n) for v, n in zip(iv.loc[iv["benchmark"] == b, "variant"],
                                                 iv.loc[iv["benchmark"] == b, "noise"])},
                       key=lambda k: (_order_key(k[0], VARIANT_ORDER), _order_key(k[1], NOISE_ORDER)))
             for b in benches}
    width = COLUMN_WIDTH if len(metrics) <= 2 else TEXT_WIDTH
    heights = [0.5 + 0.2 * len(pairs[b]) for b in benches]
    with paper_style():
        note_lines = _wrap(ablation_note(iv), width - 0.1, 7.0)
        fig = _new_figure(width, sum(heights) + 0.16 * len(note_lines) + 0.15)
        axes = fig.subplots(len(benches), len(metrics), squeeze=False, sharey="row",
                            gridspec_kw={"height_ratios": heights})
        for i, b in enumerate(benches):
            ys = {p: k for k, p in enumerate(pairs[b])}
            for jm, metric in enumerate(metrics):
                ax = axes[i, jm]
                sel = iv[(iv["benchmark"] == b) & (iv["metric"] == metric)]
                span: list[float] = [0.0]
                for r in sel.itertuples(index=False):
                    y = ys[(r.variant, r.noise)]
                    st = row_style(r.variant, r.noise)
                    sig = bool(r.significant)
                    lo, hi = (r.lo, r.hi) if np.isfinite(r.lo) and np.isfinite(r.hi) else (r.delta, r.delta)
                    cont = ax.errorbar([r.delta], [y], xerr=[[r.delta - lo], [hi - r.delta]], linestyle="none",
                                       marker=st["marker"], color=st["color"], mec=st["color"],
                                       mfc=st["mfc"] if sig else "white", elinewidth=0.9, markersize=4.0,
                                       zorder=3)
                    cont.lines[0].set_gid(f"delta:{b}:{r.variant}:{r.noise}:{metric}:{'sig' if sig else 'ns'}")
                    if not sig:
                        ax.annotate("n.s.", (hi, y), xytext=(3, 0), textcoords="offset points", va="center",
                                    ha="left", fontsize=7, color="#555555")
                    span += [lo, hi, r.delta]
                ax.axvline(0.0, color="black", linewidth=0.6, zorder=1)
                lo_x, hi_x = float(np.min(span)), float(np.max(span))
                pad = 0.1 * (hi_x - lo_x) if hi_x > lo_x else 0.5
                ax.set_xlim(lo_x - pad, hi_x + 2.2 * pad)  # room for "n.s." on the right
                ax.set_ylim(len(pairs[b]) - 0.5, -0.5)
                ax.set_yticks(range(len(pairs[b])))
                ax.set_yticklabels([variant_label(v, n) for v, n in pairs[b]])
                ax.tick_params(axis="y", length=0)
                ax.grid(axis="x")
                ax.set_axisbelow(True)
                unit = METRIC_UNITS.get(metric, "")
                ax.set_xlabel(f"Δ{metric} vs baseline" + (f" ({unit})" if unit else ""))
                ax.set_title(f"{BENCHMARK_SHORT.get(b, b)} {metric}", loc="left")
        fig.supxlabel("\n".join(note_lines), fontsize=7, ha="left", x=0.01, color="#404040")
    return fig


def plot_ablation_deltas(intervals: pd.DataFrame, path: Path) -> list[Path]:
    """The ablation as effects: per benchmark (rows) and metric (columns, P1 and P2 for H36M), each
    variant x noise's change against the baseline (``delta``, mm for P1/P2) with its 95% confidence
    interval (``lo``..``hi``) as error bar, a line at 0; a non-significant effect (``significant``
    false: the interval contains 0) hollow and marked "n.s.". ``intervals``: the table of
    ``harness.report.significance.ablation_intervals`` (columns :data:`INTERVAL_COLUMNS`). The method
    and the counts of seeds and clips are in a footnote (:func:`ablation_note`, for the caption too).
    3.5 in wide (7.2 in for more than two metrics). Writes ``<path stem>.pdf`` and ``.png``; returns
    both paths."""
    return _save(ablation_deltas_figure(intervals), path)


# ---------------------------------------------------------------------------------------- poses
def _has_samples(npz: Path) -> bool:
    try:
        with zipfile.ZipFile(npz) as zf:
            names = {n[:-4] if n.endswith(".npy") else n for n in zf.namelist()}
    except (OSError, zipfile.BadZipFile):
        return False
    return all(k in names for k in SAMPLE_KEYS)


def pick_pose_run(df: pd.DataFrame, runs_dir: Path) -> Path | None:
    """The run folder under ``runs_dir`` whose poses to draw: among the runs of ``df`` with the
    sample arrays in ``per_frame.npz``, H36M before 3DHP, the best (lowest P1 Avg, highest PCK All)
    of the diffusion model. None when no run has them (older runs)."""
    df = normalise(df)
    if df.empty:
        return None
    runs_dir = Path(runs_dir)
    cands = []
    for bench, metric, group, sign in (("h36m", "P1", "Avg", 1.0), ("3dhp", "PCK", "All", -1.0)):
        sel = df[(df["benchmark"] == bench) & (df["model"] == "diffusion") & (df["metric"] == metric)
                 & (df["group"] == group)]
        for run, value in sorted(zip(sel["run"], sel["value"]), key=lambda rv: (sign * rv[1], rv[0])):
            cands.append(run)
    for run in dict.fromkeys(cands):
        npz = runs_dir / run / "per_frame.npz"
        if npz.is_file() and _has_samples(npz):
            return runs_dir / run
    return None


def _load_samples(npz: Path) -> dict[str, np.ndarray]:
    wanted = SAMPLE_KEYS + ("sample_lifter_3d", "sample_index", "subject", "action", "frame", "diffusion_p1",
                            "lifter_p1")
    try:
        with np.load(npz, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in wanted if k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{npz}: unreadable per-frame file ({type(e).__name__}: {e})") from None


def _run_info(run_dir: Path) -> dict[str, Any]:
    """What the pose figure says of a run, from its ``metrics.json`` (absent: nothing)."""
    from harness.report.results import read_json_file

    path = run_dir / "metrics.json"
    if not path.is_file():
        return {}
    res = read_json_file(path, "metrics file")
    cfg = res.get("config") if isinstance(res, dict) and isinstance(res.get("config"), dict) else {}
    data = res.get("data") if isinstance(res, dict) and isinstance(res.get("data"), dict) else {}
    return {"variant": str(cfg.get("variant", "")), "noise": str(cfg.get("noise", "")),
            "benchmark": str(cfg.get("benchmark", "")), "keypoints": str(cfg.get("keypoints", "") or ""),
            "synthetic": bool(data.get("synthetic", False))}


def _bone_path(pose: np.ndarray, edges: Sequence[tuple[int, int]]) -> np.ndarray:
    """The bones of one pose (J, C) as one polyline: child, parent, NaN (a break) per bone."""
    out = np.full((3 * len(edges), pose.shape[1]), np.nan)
    for i, (c, p) in enumerate(edges):
        out[3 * i], out[3 * i + 1] = pose[c], pose[p]
    return out


def _at(arr: np.ndarray | None, i: int | None) -> Any:
    return arr[i] if arr is not None and i is not None and 0 <= i < len(arr) else None


def poses_figure(run_dir: Path, num: int = 3) -> Figure | None:
    """The figure of :func:`plot_poses` (None when the run has no sample arrays)."""
    run_dir = Path(run_dir)
    npz = run_dir / "per_frame.npz"
    if not npz.is_file() or not _has_samples(npz):
        return None
    s = _load_samples(npz)
    p2d, gt, pred = s["sample_pose_2d"], s["sample_gt_3d"], s["sample_diffusion_3d"]
    if p2d.ndim != 3 or gt.ndim != 3 or pred.shape != gt.shape or p2d.shape[:2] != gt.shape[:2] \
            or gt.shape[1] not in (16, 17) or p2d.shape[2] != 2 or gt.shape[2] != 3:
        raise DataError(f"{npz}: sample arrays have shapes {p2d.shape}, {gt.shape}, {pred.shape}; "
                        "expected (N, J, 2) and (N, J, 3) with J = 17 (H36M) or 16 (without Neck/Nose)")
    lifter = s.get("sample_lifter_3d")
    if lifter is not None and lifter.shape != gt.shape:
        lifter = None
    n_avail = p2d.shape[0]
    if n_avail == 0:
        return None
    parents, _, _ = h36m_layout(gt.shape[1])
    edges = h36m_edges(parents)
    info = _run_info(run_dir)
    variant, noise = info.get("variant", ""), info.get("noise", "")
    colour = variant_colour(variant) if variant else OKABE_ITO[0]
    pred_label = f"refined, {variant_label(variant, noise)}" if variant else "refined (diffusion)"
    pick = sorted(set(np.linspace(0, n_avail - 1, num=min(num, n_avail)).round().astype(int).tolist()))
    index = s.get("sample_index")
    ncol = len(pick)
    # One scale for every panel (root-relative, mm), ticks at 0 and one round step either side.
    rel_all = [(q - q[:, :1]) * 1000.0 for q in [gt[pick], pred[pick]] + ([lifter[pick]] if lifter is not None else [])]
    radius = float(max(max(np.abs(r).max() for r in rel_all), 100.0)) * 1.02
    tick = next(t for t in (100.0, 200.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0, math.inf) if 2 * t > 0.95 * radius)
    tick = tick if math.isfinite(tick) else radius / 2
    with paper_style():
        # Placed by hand: constrained layout does not see the labels of 3D axes.
        fig = _new_figure(TEXT_WIDTH, 4.8, layout=None)
        grid = fig.add_gridspec(2, ncol, height_ratios=[1.0, 1.9], left=0.06, right=0.95, top=0.875,
                                bottom=0.07, wspace=0.32, hspace=0.18)
        styles = [("ground truth", GT_COLOUR, "-", 1.3), (pred_label, colour, "--", 1.3)]
        if lifter is not None:
            styles.append(("lifter (initial pose)", LIFTER_GREY, ":", 1.1))
        for col, k in enumerate(pick):
            frame = int(index[k]) if index is not None and k < len(index) else None
            subject, action, video_frame = _at(s.get("subject"), frame), _at(s.get("action"), frame), \
                _at(s.get("frame"), frame)
            words = [str(w) for w in (subject, action) if w is not None and str(w)]
            if video_frame is not None:
                words.append(f"frame {int(video_frame)}")
            elif frame is not None:
                words.append(f"test frame {frame}")
            else:
                words.append(f"sample {k}")
            # 2D input: normalised image coordinates, v down.
            ax = fig.add_subplot(grid[0, col])
            bones = _bone_path(p2d[k], edges)
            ax.plot(bones[:, 0], bones[:, 1], color="#404040", linewidth=1.1)
            ax.plot(p2d[k, :, 0], p2d[k, :, 1], linestyle="none", marker="o", markersize=1.8, color="#404040")
            lo2, hi2 = p2d[k].min(axis=0), p2d[k].max(axis=0)
            centre, half = (lo2 + hi2) / 2, max(float((hi2 - lo2).max()) / 2 * 1.12, 1e-3)
            ax.set_xlim(centre[0] - half, centre[0] + half)
            ax.set_ylim(centre[1] + half, centre[1] - half)  # v down, as in the image
            ax.set_aspect("equal", adjustable="box")
            ax.set_title(" · ".join(words) + "\n2D input", fontsize=8)
            ax.set_xlabel("u (normalised)")
            ax.set_ylabel("v (normalised)")
            ax.locator_params(nbins=4)
            # 3D: camera coordinates (x right, y down, z forward), root-relative, mm; drawn as x, z, -y (up).
            ax3 = fig.add_subplot(grid[1, col], projection="3d")
            poses = [gt[k], pred[k]] + ([lifter[k]] if lifter is not None else [])
            rel = [(q - q[:1]) * 1000.0 for q in poses]
            for i in (2, 0, 1)[3 - len(rel):]:  # the lifter below, the refined (dashed) pose on top of the GT
                pose, (label, c_, ls, lw) = rel[i], styles[i]
                bones = _bone_path(pose, edges)
                ax3.plot(bones[:, 0], bones[:, 2], -bones[:, 1], color=c_, linestyle=ls, linewidth=lw, label=label)
            ax3.set_xlim(-radius, radius)
            ax3.set_ylim(-radius, radius)
            ax3.set_zlim(-radius, radius)
            ax3.set_box_aspect((1, 1, 1), zoom=1.0)
            ax3.view_init(elev=14.0, azim=-58.0)
            for setter in (ax3.set_xticks, ax3.set_yticks, ax3.set_zticks):
                setter([-tick, 0.0, tick])
            ax3.tick_params(pad=-2)
            ax3.set_xlabel("x (mm)", labelpad=-6)
            ax3.set_ylabel("z, depth (mm)", labelpad=-6)
            ax3.set_zlabel("−y, up (mm)", labelpad=-6)
            err = _at(s.get("diffusion_p1"), frame)
            err = float(err) if err is not None else float(np.linalg.norm(rel[1] - rel[0], axis=-1).mean())
            lerr = _at(s.get("lifter_p1"), frame)
            if lerr is None and lifter is not None:
                lerr = float(np.linalg.norm(rel[2] - rel[0], axis=-1).mean())
            title = f"P1 {err:.1f} mm" if math.isfinite(err) else "P1 –"
            if lerr is not None and math.isfinite(float(lerr)):
                title += f" (lifter {float(lerr):.1f} mm)"
            ax3.set_title(title, fontsize=8)
        what = BENCHMARK_NAMES.get(info.get("benchmark", ""), "")
        head = f"Test poses of {variant_label(variant, noise)}" if variant else "Test poses"
        if what:
            head += f" on {what}" + (" (synthetic data)" if info.get("synthetic") else "")
        elif info.get("synthetic"):
            head += " (synthetic data)"
        if info.get("keypoints"):
            head += f", {_input_words(info['keypoints'], False)}"
        fig.suptitle(head + "; 3D root-relative, mm", fontsize=9, y=0.985)
        handles = [Line2D([], [], color=c_, linestyle=ls, linewidth=lw) for _, c_, ls, lw in styles]
        fig.legend(handles, [label for label, *_ in styles], loc="lower center", ncol=len(styles),
                   bbox_to_anchor=(0.5, 0.0))
    return fig


def plot_poses(run_dir: Path, path: Path, num: int = 3) -> list[Path] | None:
    """``num`` test poses of one run, 7.2 in wide: above, the 2D input (normalised image coordinates);
    below, larger, the 3D ground truth (black, solid), the refined pose (the variant's colour, dashed)
    and the lifter's initial pose (grey, dotted, when the run has it), root-relative, in mm, equal
    axes. Each column is titled with the frame's subject, action and video frame, the 3D panel with
    its P1 (and the lifter's); the suptitle names the variant, noise, benchmark and input, and says
    "synthetic" when the run's ``metrics.json`` has ``data.synthetic``. Writes ``<path stem>.pdf`` and
    ``.png`` and returns both; None (nothing written) when ``per_frame.npz`` lacks the sample arrays."""
    fig = poses_figure(run_dir, num)
    return None if fig is None else _save(fig, path)
