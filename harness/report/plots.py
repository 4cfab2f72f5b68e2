"""Figures beside the tables, as small deterministic PNGs (matplotlib's Agg canvas, no pyplot state,
no version or date stamped in the file).

* :func:`plot_h36m_by_action` -- Human3.6M P1 per action and Avg, one bar per variant + noise and
  the lifter (error bars: sample std over seeds where several), references as black ticks;
* :func:`plot_poses` -- a few test poses of one run (``per_frame.npz``'s ``sample_*`` arrays): the
  normalised 2D input above, the predicted 3D pose over the ground truth below.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.errors import DataError
from harness.safeio import atomic_path
from harness.skeleton import H36M_ACTIONS, H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT, h36m_edges, h36m_layout
from harness.report.rows import (LATEX_HEADERS, latest_runs, load_references, matching_references, normalise, our_rows,
                            split_settings)

__all__ = ["plot_h36m_by_action", "pick_pose_run", "plot_poses", "SAMPLE_KEYS"]

DPI = 100
PNG_METADATA = {"Software": None}  # matplotlib would stamp its version; PNGs carry no date
SAMPLE_KEYS = ("sample_pose_2d", "sample_gt_3d", "sample_diffusion_3d")
# Fixed colours (matplotlib's tab10), lifter grey.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
LIFTER_COLOUR = "#7f7f7f"
SIDE_COLOURS = {"left": "#1f77b4", "right": "#d62728", "centre": "#333333"}


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata=PNG_METADATA)
    return path


# ------------------------------------------------------------------------------------ bar chart
def plot_h36m_by_action(df: pd.DataFrame, path: Path, metric: str = "P1",
                        references: Sequence[dict[str, Any]] | None = None) -> Path:
    """Grouped bars of ``metric`` per action and Avg for each H36M setting of ``df`` (one panel per
    setting: GT 2D, CPN, ...)."""
    refs_all = load_references() if references is None else list(references)
    settings = [(key, sub) for key, sub in split_settings(normalise(df)) if key[0] == "h36m"]
    if not settings:
        raise DataError("no Human3.6M runs in the results: nothing to plot per action")
    fig = _new_figure(13.0, 3.4 * len(settings) + 0.4)
    for i, ((_, kp, syn, *_), sub) in enumerate(settings):
        sub, _ = latest_runs(sub)
        ax = fig.add_subplot(len(settings), 1, i + 1)
        present = set(sub.loc[sub["metric"] == metric, "group"])
        groups = [a for a in H36M_ACTIONS if a in present] + ["Avg"]
        rows = our_rows(sub, [metric], groups)
        refs = [r for r in matching_references(refs_all, "h36m", kp, syn) if metric in r["metrics"]]
        x = np.arange(len(groups), dtype=float)
        width = 0.8 / max(len(rows), 1)
        colour_i = 0
        for j, row in enumerate(rows):
            means = np.array([row.mean.get((metric, g), np.nan) for g in groups], dtype=float)
            means[~np.isfinite(means)] = np.nan  # an inf is no bar (the tables show it; the gate refuses it)
            stds = np.array([row.std.get((metric, g), np.nan) for g in groups])
            if row.kind == "lifter":
                colour = LIFTER_COLOUR
            else:
                colour = PALETTE[colour_i % len(PALETTE)]
                colour_i += 1
            yerr = np.where(np.isfinite(stds), stds, 0.0) if np.isfinite(stds).any() else None
            ax.bar(x + (j - (len(rows) - 1) / 2) * width, means, width, yerr=yerr, capsize=1.5, color=colour,
                   label=row.label, error_kw={"elinewidth": 0.6})
        styles = ("-", "--", ":", "-.")
        for k, ref in enumerate(refs):
            vals = ref["metrics"][metric]
            xs = [xi for xi, g in zip(x, groups) if g in vals]
            ys = [vals[g] for g in groups if g in vals]
            ax.hlines(ys, np.array(xs) - 0.45, np.array(xs) + 0.45, colors="black", linestyles=styles[k % 4],
                      linewidth=1.2, label=f"{ref['name']} (reference)")
        ax.set_xticks(x)
        ax.set_xticklabels([LATEX_HEADERS.get(g, g) for g in groups], fontsize=8)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylabel(f"{metric} (mm)")
        title = f"Human3.6M {metric} per action, input {kp}"
        if syn:
            title += " (synthetic benchmark, not the real data)"
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", linewidth=0.4, alpha=0.5)
        ax.set_axisbelow(True)
        ax.legend(fontsize=7, ncol=min(4, len(rows) + len(refs)), loc="upper left", frameon=False)
        top = max([m for r in rows for m in r.mean.values() if np.isfinite(m)]
                  + [v for r in refs for v in r["metrics"][metric].values() if np.isfinite(v)] + [1.0])
        ax.set_ylim(0, top * 1.35)
    fig.tight_layout()
    return _save(fig, path)


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


def _side(j: int, left=H36M_JOINTS_LEFT, right=H36M_JOINTS_RIGHT) -> str:
    return "left" if j in left else "right" if j in right else "centre"


def _load_samples(npz: Path) -> dict[str, np.ndarray]:
    wanted = SAMPLE_KEYS + ("sample_lifter_3d", "sample_index", "action", "diffusion_p1")
    try:
        with np.load(npz, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in wanted if k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{npz}: unreadable per-frame file ({type(e).__name__}: {e})") from None


def plot_poses(run_dir: Path, path: Path, num: int = 3) -> Path | None:
    """``num`` test poses of one run: 2D input (normalised image coordinates) above, the refined
    3D pose (colour) over the ground truth (black) below, root-relative, in metres. Returns None
    (and writes nothing) when the run's ``per_frame.npz`` lacks the sample arrays."""
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
    parents, left, right = h36m_layout(gt.shape[1])
    n_avail = p2d.shape[0]
    if n_avail == 0:
        return None
    pick = sorted(set(np.linspace(0, n_avail - 1, num=min(num, n_avail)).round().astype(int).tolist()))
    index = s.get("sample_index")
    actions = s.get("action")
    errors = s.get("diffusion_p1")
    edges = h36m_edges(parents)
    fig = _new_figure(3.0 * len(pick), 6.2)
    for col, k in enumerate(pick):
        frame = int(index[k]) if index is not None and k < len(index) else None
        title = f"test frame {frame}" if frame is not None else f"sample {k}"
        if frame is not None and actions is not None and frame < len(actions):
            title = f"{actions[frame]} · {title}"
        # 2D input: image coordinates, y down.
        ax = fig.add_subplot(2, len(pick), col + 1)
        for c, p in edges:
            ax.plot(p2d[k, [c, p], 0], p2d[k, [c, p], 1], color=SIDE_COLOURS[_side(c, left, right)], linewidth=1.8)
        ax.scatter(p2d[k, :, 0], p2d[k, :, 1], s=6, color="black", zorder=3)
        ax.set_aspect("equal", adjustable="datalim")
        ax.invert_yaxis()
        ax.set_title(f"{title}\n2D input", fontsize=8)
        ax.tick_params(labelsize=6)
        # 3D: camera coordinates (x right, y down, z forward) drawn as x, z, -y; root-relative.
        ax3 = fig.add_subplot(2, len(pick), len(pick) + col + 1, projection="3d")
        g = gt[k] - gt[k, :1]
        q = pred[k] - pred[k, :1]
        for pose, colour_of, lw, label in ((g, lambda j: "black", 1.2, "ground truth"),
                                           (q, lambda j: SIDE_COLOURS[_side(j, left, right)], 2.0, "prediction")):
            for i_e, (c, p) in enumerate(edges):
                ax3.plot(pose[[c, p], 0], pose[[c, p], 2], -pose[[c, p], 1], color=colour_of(c), linewidth=lw,
                         alpha=0.55 if label == "ground truth" else 0.95,
                         label=label if i_e == 0 else None)
        radius = float(max(np.abs(np.concatenate([g, q])).max(), 0.1)) * 1.05
        ax3.set_xlim(-radius, radius)
        ax3.set_ylim(-radius, radius)
        ax3.set_zlim(-radius, radius)
        ax3.set_box_aspect((1, 1, 1))
        ax3.view_init(elev=15.0, azim=-70.0)
        ticks = [-0.5, 0.0, 0.5] if radius > 0.55 else [0.0]
        for setter in (ax3.set_xticks, ax3.set_yticks, ax3.set_zticks):
            setter(ticks)
        ax3.tick_params(labelsize=5, pad=0)
        err = float(errors[frame]) if errors is not None and frame is not None and frame < len(errors) else \
            float(np.linalg.norm(q - g, axis=-1).mean() * 1000.0)
        ax3.set_title(f"prediction over ground truth\nP1 {err:.1f} mm" if math.isfinite(err) else
                      "prediction over ground truth", fontsize=8)
        if col == 0:
            ax3.legend(fontsize=6, loc="upper left", frameon=False)
    fig.suptitle(f"{run_dir.name}: test poses (2D input; 3D prediction over ground truth, metres)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
