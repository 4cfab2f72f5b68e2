"""The figures: each a PDF and a 300 dpi PNG at print size (3.5 or 7.2 in wide, read from the PDF's
MediaBox and the PNG's header), 7-9 pt text, no version or date stamped in either file, TrueType
fonts in the PDF; the fixed colour per variant and marker/shade per noise on the artists; the
values drawn checked against hand-computed means; the pose figure from a run's sample arrays,
skipped for runs that lack them."""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib", reason="matplotlib is needed for the figures (tables work without it)")

from matplotlib.text import Text  # noqa: E402

from harness.report import plots as P  # noqa: E402
from harness.report import tables as T  # noqa: E402
from harness.errors import DataError  # noqa: E402
from harness.skeleton import H36M_ACTIONS  # noqa: E402
from tests.report.test_tables import _hp_run, frame, h36m_run  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == PNG_MAGIC
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        out.append((kind, body))
        pos += 12 + length
    return out


def png_size(data: bytes) -> tuple[int, int]:
    ihdr = dict(png_chunks(data))[b"IHDR"]
    return struct.unpack(">II", ihdr[:8])


def pdf_inches(data: bytes) -> tuple[float, float]:
    """The page size of a one-page PDF (its MediaBox, points / 72)."""
    assert data.startswith(b"%PDF-")
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", data)
    assert len(boxes) == 1
    return float(boxes[0][0]) / 72, float(boxes[0][1]) / 72


def check_files(paths: list[Path], stem: Path, inches: tuple[float, float]) -> None:
    """Both files, at ``inches``, unstamped; the PDF with TrueType (Type 42) fonts, no Type 3."""
    assert paths == [stem.with_suffix(".pdf"), stem.with_suffix(".png")]
    pdf, png = (p.read_bytes() for p in paths)
    assert pdf_inches(pdf) == pytest.approx(inches, abs=1e-6)
    assert png_size(png) == (round(inches[0] * 300), round(inches[1] * 300))
    kinds = [k for k, _ in png_chunks(png)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert not {b"tEXt", b"iTXt", b"zTXt", b"tIME"} & set(kinds)  # no Software / date stamp
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf
    assert b"CreationDate" not in pdf and b"Matplotlib" not in pdf
    assert sorted(p.name for p in stem.parent.iterdir() if p.name.startswith(stem.name)) == \
        sorted(p.name for p in paths)  # nothing half-written beside them


def font_sizes(fig) -> list[float]:
    fig.draw_without_rendering()  # creates the tick labels, runs the layout
    return [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def by_gid(fig, gid: str):
    found = [a for a in fig.findobj(lambda a: a.get_gid() == gid)]
    assert len(found) == 1, (gid, len(found))
    return found[0]


@pytest.fixture()
def df() -> pd.DataFrame:
    return frame(h36m_run("baseline", "gaussian", 0, 50, 60, name="run-a"),
                 h36m_run("baseline", "gaussian", 1, 52, 64, name="run-b"),
                 h36m_run("full", "gmm", 0, 45, 60, name="run-c"))


def write_samples(run_dir: Path, n: int = 8, with_samples: bool = True, frames: int = 40,
                  metrics: dict | None = None) -> Path:
    """A per_frame.npz as the engine writes it (sample poses: 2D normalised, 3D in metres), and
    optionally the run's metrics.json."""
    rng = np.random.default_rng(0)
    run_dir.mkdir(parents=True, exist_ok=True)
    pick = np.linspace(0, frames - 1, n).astype(np.int64)
    gt = rng.normal(0, 0.3, (n, 17, 3)).astype(np.float32)
    arrays = {"diffusion_p1": np.arange(frames, dtype=np.float32) + 10.0, "subject": np.array(["S9"] * frames),
              "action": np.array(["Walking"] * frames), "frame": np.arange(frames) + 100}
    if with_samples:
        arrays.update(sample_index=pick, sample_pose_2d=rng.normal(0, 0.3, (n, 17, 2)).astype(np.float32),
                      sample_gt_3d=gt, sample_lifter_3d=gt + 0.02, sample_diffusion_3d=gt + 0.01)
    np.savez_compressed(run_dir / "per_frame.npz", **arrays)
    if metrics is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


# ------------------------------------------------------------------------------------- the style
def test_one_style_for_every_figure():
    assert P.VARIANT_COLOURS == {"baseline": "#0072B2", "cce": "#E69F00", "cag": "#009E73", "full": "#D55E00"}
    # GMM: a square, the face 55 % towards white: #009E73 -> (0, 158, 115) + 0.55 (255 - c) = (140, 211, 192)
    assert P.row_style("cag", "gmm") == {"marker": "s", "color": "#009E73", "mec": "#009E73", "mfc": "#8cd3c0",
                                         "hatch": "////"}
    assert P.row_style("full", "gaussian") == {"marker": "o", "color": "#D55E00", "mec": "#D55E00",
                                               "mfc": "#d55e00", "hatch": ""}
    # An undeclared variant gets a colour no declared one has, the same every time.
    assert P.variant_colour("mystery") == "#F0E442" and P.variant_colour("other") == "#CC79A7"
    assert P.PAPER_RC["pdf.fonttype"] == 42 and P.PAPER_RC["savefig.dpi"] == 300
    fonts = ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize", "legend.fontsize",
             "legend.title_fontsize", "figure.titlesize", "figure.labelsize")
    assert [P.PAPER_RC[k] for k in fonts] == [8.0, 8.0, 8.0, 7.0, 7.0, 7.0, 7.0, 9.0, 8.0]


# ------------------------------------------------------------------------------ H36M per action
def test_h36m_by_action_dots_colours_and_axis(df):
    fig = P.h36m_by_action_figure(df, "P1")
    assert tuple(fig.get_size_inches()) == pytest.approx((7.2, 0.35 + 1.85))
    assert all(7.0 <= s <= 9.0 for s in font_sizes(fig))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()][:3] == ["Dir.", "Disc.", "Eat"]
    i = np.arange(15)
    base = by_gid(fig, "ours:baseline:gaussian:quick")     # seeds 50 + i and 52 + i: mean 51 + i
    np.testing.assert_allclose(base.get_ydata(), np.r_[51 + i, 58.0])
    assert (base.get_color(), base.get_marker(), base.get_markerfacecolor()) == ("#0072B2", "o", "#0072b2")
    full = by_gid(fig, "ours:full:gmm:quick")
    np.testing.assert_allclose(full.get_ydata(), np.r_[45 + i, 52.0])
    assert (full.get_color(), full.get_marker(), full.get_markerfacecolor()) == ("#D55E00", "s", "#ecb78c")
    lifter = by_gid(fig, "lifter")                          # seeds 60 + i and 64 + i
    np.testing.assert_allclose(lifter.get_ydata(), np.r_[62 + i, 69.0])
    assert (lifter.get_color(), lifter.get_marker()) == (P.LIFTER_GREY, "D")
    by_gid(fig, "ref:DiffPose (CVPR 2023), GT 2D")          # the published GT-2D row, as ticks
    # The axis spans what is drawn: the reference's 25.9 (Walking) up to the lifter's 76 + std 2.83
    # (SittingDown), 8 % margin; not from 0, and the label says so.
    lo, hi = 25.9, 76 + 2 * np.sqrt(2)
    assert ax.get_ylim() == pytest.approx((lo - 0.08 * (hi - lo), hi + 0.08 * (hi - lo)))
    assert ax.get_ylabel() == "P1 (mm), axis not from 0"
    assert ax.get_title(loc="left") == ("Human3.6M P1 (MPJPE) per action, lower is better; GT 2D input, "
                                        "synthetic data")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [t for t in legend if t] == ["baseline", "full", "GraFormer lifter", "Gaussian noise", "GMM noise",
                                        "DiffPose (published)"]


def test_h36m_by_action_files_one_panel_per_setting(df, tmp_path):
    cpn = frame(h36m_run("baseline", "gaussian", 0, 50, 60, keypoints="cpn_ft_h36m_dbb", synthetic=False, name="c"))
    fig = P.h36m_by_action_figure(pd.concat([df, cpn]), "P1")
    assert [a.get_title(loc="left").rsplit("; ", 1)[1] for a in fig.axes] == ["GT 2D input, synthetic data",
                                                                             "cpn_ft_h36m_dbb 2D input"]
    # A reference's line is the same in every panel (DiffPose's GT-2D and CPN rows) and in the legend.
    gt_ref, cpn_ref = by_gid(fig, "ref:DiffPose (CVPR 2023), GT 2D"), by_gid(fig, "ref:DiffPose (CVPR 2023), CPN 2D")
    cce = by_gid(fig, "ref:Cross-channel embedding (ICASSP 2024), released code's example output, CPN 2D")
    line = [(tuple(r.get_colors()[0]), r.get_linestyle()) for r in (gt_ref, cpn_ref, cce)]
    assert line[0] == line[1] != line[2]
    legend = {t.get_text(): h for t, h in zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles)}
    assert [t for t in legend if "(" in t] == ["DiffPose (published)", "CCE code (released code)"]
    assert legend["DiffPose (published)"].get_color() == P.REFERENCE_GREYS[0]
    assert legend["CCE code (released code)"].get_color() == P.REFERENCE_GREYS[1]
    assert line[0][0] == pytest.approx((0x40 / 255,) * 3 + (1.0,)) and line[2][0][0] == pytest.approx(0x70 / 255)
    check_files(P._save(fig, tmp_path / "p1.png"), tmp_path / "p1", (7.2, 0.35 + 2 * 1.85))
    with pytest.raises(DataError, match="no Human3.6M runs"):
        P.h36m_by_action_figure(frame(_hp_run("full", "gmm", 0, 88.0, 53.0, 70.0)))
    with pytest.raises(DataError, match="Human3.6M's metrics are P1 and P2"):
        P.h36m_by_action_figure(df, "PCK")


# ------------------------------------------------------------------------------- 3DHP per scene
def test_3dhp_by_scene(tmp_path):
    hp = frame(_hp_run("baseline", "gaussian", 0, 85.0, 50.0, 80.0), _hp_run("cag", "gmm", 0, 88.0, 53.0, 70.0),
               h36m_run("full", "gaussian", 0, 45, 60))  # the H36M run is not drawn here
    fig = P.mpi3dhp_by_scene_figure(hp)
    assert tuple(fig.get_size_inches()) == pytest.approx((3.5, 0.55 + 1.75))
    assert all(7.0 <= s <= 9.0 for s in font_sizes(fig))
    pck, auc = fig.axes
    assert [t.get_text() for t in pck.get_xticklabels()] == ["GS", "noGS", "Outdoor", "All"]  # no TS1
    cag = [a for a in fig.findobj(lambda a: a.get_gid() == "ours:cag:gmm:quick")]
    np.testing.assert_allclose(cag[0].get_ydata(), [89.0, 90.0, 91.0, 88.0])   # PCK GS, noGS, Outdoor, All
    np.testing.assert_allclose(cag[1].get_ydata(), [54.0, 55.0, 56.0, 53.0])   # AUC
    assert (cag[0].get_color(), cag[0].get_marker(), cag[0].get_markerfacecolor()) == ("#009E73", "s", "#8cd3c0")
    assert by_gid(pck, "ours:baseline:gaussian:quick").get_color() == "#0072B2"
    assert pck.get_ylabel() == "PCK (%), axis not from 0" and auc.get_title() == "AUC, higher is better"
    lo, hi = 80.0, 91.0  # the lifter's PCK 80 (All) .. cag's Outdoor 91
    assert pck.get_ylim() == pytest.approx((lo - 0.08 * (hi - lo), hi + 0.08 * (hi - lo)))
    assert fig.subfigs[0]._suptitle.get_text() == "MPI-INF-3DHP, 14 joints, trained on 3DHP (synthetic data)"
    check_files(P.plot_3dhp_by_scene(hp, tmp_path / "hp"), tmp_path / "hp", (3.5, 2.3))
    with pytest.raises(DataError, match="no MPI-INF-3DHP runs"):
        P.mpi3dhp_by_scene_figure(frame(h36m_run("full", "gaussian", 0, 45, 60)))


# ---------------------------------------------------------------------------------- ablation
def intervals(metrics=("P1", "P2")) -> pd.DataFrame:
    """What harness.report.significance.ablation_intervals returns, by hand."""
    rows = []
    for k, metric in enumerate(metrics):
        for variant, noise, delta, lo, hi, sig in (("cce", "gaussian", -0.5, -0.9, -0.1, True),
                                                   ("cag", "gmm", 0.3, -0.4, 1.0, False),
                                                   ("full", "gaussian", -2.0 - k, -2.6 - k, -1.4 - k, True)):
            rows.append({"benchmark": "h36m", "variant": variant, "noise": noise, "metric": metric, "delta": delta,
                         "lo": lo, "hi": hi, "significant": sig, "n_clips": 120, "n_seeds": 3,
                         "method": "paired bootstrap over clips"})
    return pd.DataFrame(rows)


def test_ablation_deltas(tmp_path):
    iv = intervals()
    note = P.ablation_note(iv)
    assert note == ("Δ: variant minus the baseline (negative: lower error than the baseline); error bars: 95% CI, "
                    "paired bootstrap over clips (3 seeds, 120 clips). Hollow, n.s.: the interval contains 0.")
    fig = P.ablation_deltas_figure(iv)
    assert all(7.0 <= s <= 9.0 for s in font_sizes(fig))
    w, h = fig.get_size_inches()
    assert w == 3.5 and h == pytest.approx(0.5 + 0.2 * 3 + 0.16 * fig._supxlabel.get_text().count("\n") + 0.31)
    assert fig._supxlabel.get_text().replace("\n", " ") == note  # the footnote, wrapped
    p1, p2 = fig.axes
    assert [t.get_text() for t in p1.get_yticklabels()] == ["+CCE + Gaussian", "+CAG + GMM", "full + Gaussian"]
    assert (p1.get_xlabel(), p2.get_xlabel()) == ("ΔP1 vs baseline (mm)", "ΔP2 vs baseline (mm)")
    sig = by_gid(fig, "delta:h36m:full:gaussian:P2:sig")
    assert (sig.get_xdata()[0], sig.get_ydata()[0]) == (-3.0, 2)
    assert (sig.get_color(), sig.get_marker(), sig.get_markerfacecolor()) == ("#D55E00", "o", "#d55e00")
    ns = by_gid(fig, "delta:h36m:cag:gmm:P1:ns")  # the interval contains 0: hollow, marked n.s.
    assert (ns.get_color(), ns.get_marker(), ns.get_markerfacecolor()) == ("#009E73", "s", "white")
    assert [t.get_text() for t in p1.texts] == ["n.s."] and [t.get_text() for t in p2.texts] == ["n.s."]
    err = [c for c in p2.containers if c.lines[0].get_gid() == "delta:h36m:full:gaussian:P2:sig"][0]
    np.testing.assert_allclose(err.lines[2][0].get_segments()[0], [[-3.6, 2.0], [-2.4, 2.0]])  # lo .. hi
    assert any(list(line.get_xdata()) == [0.0, 0.0] for line in p1.lines)  # the zero line
    assert p1.get_xlim()[0] < -2.6 and p1.get_xlim()[1] > 1.0
    check_files(P.plot_ablation_deltas(iv, tmp_path / "abl.pdf"), tmp_path / "abl", (w, h))
    # Beyond two metrics: text width.
    assert P.ablation_deltas_figure(intervals(("P1", "P2", "MPJPE"))).get_size_inches()[0] == 7.2
    with pytest.raises(DataError, match="lack column 'significant'"):
        P.ablation_deltas_figure(iv.drop(columns="significant"))


# ---------------------------------------------------------------------------------------- poses
def test_pick_pose_run_prefers_best_run_with_samples(df, tmp_path):
    runs = tmp_path / "runs"
    assert P.pick_pose_run(df, runs) is None
    write_samples(runs / "run-a")                      # P1 Avg 57
    write_samples(runs / "run-c", with_samples=False)  # P1 Avg 52, the best, but an older run without samples
    assert P.pick_pose_run(df, runs) == runs / "run-a"
    write_samples(runs / "run-c")
    assert P.pick_pose_run(df, runs) == runs / "run-c"
    (runs / "run-c" / "per_frame.npz").write_bytes(b"not a zip")
    assert P.pick_pose_run(df, runs) == runs / "run-a"


def test_poses_figure(tmp_path):
    metrics = {"config": {"variant": "full", "noise": "gmm", "benchmark": "h36m", "keypoints": "gt"},
               "data": {"synthetic": True}}
    run = write_samples(tmp_path / "h36m-full-gmm-seed0-abc", metrics=metrics)
    fig = P.poses_figure(run)
    assert tuple(fig.get_size_inches()) == (7.2, 4.8)
    assert all(7.0 <= s <= 9.0 for s in font_sizes(fig))
    assert fig._suptitle.get_text() == ("Test poses of full + GMM on Human3.6M (synthetic data), GT 2D input; "
                                        "3D root-relative, mm")
    flat, tall = fig.axes[0::2], fig.axes[1::2]  # 2D input, 3D below it, per column
    # Samples 0, 4, 7 of 8 -> test frames 0, 22, 39 -> video frames 100, 122, 139; P1 from diffusion_p1
    # (frame + 10); the lifter's computed from its sample (GT + 2 cm everywhere: 0 root-relative).
    assert [a.get_title() for a in flat] == [f"S9 · Walking · frame {f}\n2D input" for f in (100, 122, 139)]
    assert [a.get_title() for a in tall] == [f"P1 {e:.1f} mm (lifter 0.0 mm)" for e in (10.0, 32.0, 49.0)]
    ax3 = tall[0]
    assert (ax3.get_xlabel(), ax3.get_ylabel(), ax3.get_zlabel()) == ("x (mm)", "z, depth (mm)", "−y, up (mm)")
    assert ax3.get_xlim() == ax3.get_ylim() == ax3.get_zlim()  # equal axes, root-relative mm
    assert 300 < ax3.get_xlim()[1] < 5000
    styles = {ln.get_label(): (ln.get_color(), ln.get_linestyle()) for ln in ax3.lines}
    assert styles == {"ground truth": ("#000000", "-"), "refined, full + GMM": ("#D55E00", "--"),
                      "lifter (initial pose)": (P.LIFTER_GREY, ":")}
    handles = fig.legends[0].legend_handles
    assert {t.get_text(): (h.get_color(), h.get_linestyle()) for t, h in zip(fig.legends[0].get_texts(), handles)} \
        == styles  # the legend shows the styles drawn
    check_files(P.plot_poses(run, tmp_path / "poses.png"), tmp_path / "poses", (7.2, 4.8))
    # Without metrics.json: no claim about the data, the first palette colour.
    (run / "metrics.json").unlink()
    fig = P.poses_figure(run, num=1)
    assert fig._suptitle.get_text() == "Test poses; 3D root-relative, mm" and len(fig.axes) == 2
    assert {ln.get_label(): ln.get_color() for ln in fig.axes[1].lines}["refined (diffusion)"] == "#0072B2"
    # An older run without the sample arrays: skipped, nothing written.
    old = write_samples(tmp_path / "old", with_samples=False)
    assert P.plot_poses(old, tmp_path / "none.png") is None
    assert P.plot_poses(tmp_path / "missing", tmp_path / "none.png") is None
    assert not list(tmp_path.glob("none*"))


def test_poses_wrong_shapes_are_a_data_error(tmp_path):
    run = tmp_path / "bad"
    run.mkdir()
    # 17 joints or 16 (H36M less Neck/Nose, tests/test_sixteen_joints.py) are drawn; 15 is not a layout
    np.savez(run / "per_frame.npz", sample_pose_2d=np.zeros((8, 15, 2)), sample_gt_3d=np.zeros((8, 15, 3)),
             sample_diffusion_3d=np.zeros((8, 15, 3)))
    with pytest.raises(DataError, match="sample arrays have shapes"):
        P.plot_poses(run, tmp_path / "p.png")


def test_write_tables_with_runs_dir(df, tmp_path):
    runs = tmp_path / "runs"
    write_samples(runs / "run-c")
    paths = T.write_tables(df, tmp_path / "out", runs_dir=runs)
    assert [p.name for p in paths][-6:] == ["h36m_p1_by_action.pdf", "h36m_p1_by_action.png", "h36m_p2_by_action.pdf",
                                            "h36m_p2_by_action.png", "poses.pdf", "poses.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)
    assert not any(p.name.startswith("3dhp") for p in paths)  # no 3DHP runs: no 3DHP figure
