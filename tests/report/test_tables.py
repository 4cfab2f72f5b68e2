"""`harness tables`: tables as pure functions of a hand-built tidy results table; every cell checked
by hand (means, sample std over seeds, bold on the right cell, differences to the references)."""

from __future__ import annotations

import errno
import math
import re

import pandas as pd
import pytest

from harness.report import tables as T
from harness.errors import DataError
from harness.report.results import TIDY_COLUMNS, read_tidy, write_tidy
from harness.skeleton import H36M_ACTIONS

# ------------------------------------------------------------------------------------------ helpers
CCE_ROW = "Cross-channel embedding (ICASSP 2024), released code's example output, CPN 2D"  # not a paper table
BASE = {"profile": "quick", "synthetic": True, "data_root": "", "keypoints": "gt", "git_commit": "abc",
        "device": "cpu"}


def _rows(run, bench, variant, noise, seed, model, metric, values, *, date="2026-01-01T00:00:00+00:00",
          wall=60.0, **over):
    base = {**BASE, **over}
    return [{"run": run, "benchmark": bench, "variant": variant, "noise": noise, "seed": seed, **base,
             "model": model, "metric": metric, "group": g, "value": float(v), "wall_time_s": wall,
             "date": date} for g, v in values.items()]


def actions(base: float, **cells: float) -> dict[str, float]:
    """Per-action values base + i (i = action index) and Avg = base + 7 (their mean); ``cells``
    override single actions (the Avg stays base + 7)."""
    vals = {a: base + i for i, a in enumerate(H36M_ACTIONS)}
    vals["Avg"] = base + 7
    vals.update(cells)
    return vals


def h36m_run(variant, noise, seed, p1_base, lifter_base, *, p2_base=None, lifter_p2_base=None, name=None, **over):
    run = name or f"h36m-{variant}-{noise}-seed{seed}-{over.get('keypoints', 'gt')}"
    p2_base = p1_base - 10 if p2_base is None else p2_base
    lifter_p2_base = lifter_base - 10 if lifter_p2_base is None else lifter_p2_base
    rows = []
    rows += _rows(run, "h36m", variant, noise, seed, "diffusion", "P1", actions(p1_base), **over)
    rows += _rows(run, "h36m", variant, noise, seed, "diffusion", "P2", actions(p2_base), **over)
    rows += _rows(run, "h36m", variant, noise, seed, "lifter", "P1", actions(lifter_base), **over)
    rows += _rows(run, "h36m", variant, noise, seed, "lifter", "P2", actions(lifter_p2_base), **over)
    return rows


def frame(*row_lists) -> pd.DataFrame:
    return pd.DataFrame([r for rows in row_lists for r in rows], columns=TIDY_COLUMNS)


def md_rows(md: str) -> dict[str, list[str]]:
    """Markdown pipe table -> {first cell: [other cells]} (header included under its first cell)."""
    out = {}
    for line in md.splitlines():
        if line.startswith("|") and not line.startswith("|:") and not line.startswith("|-"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            out[cells[0]] = cells[1:]
    return out


@pytest.fixture()
def h36m_df() -> pd.DataFrame:
    # Lifter: seed 0 -> 60 + i, seed 1 -> 64 + i (the same in every run of a seed).
    return frame(
        h36m_run("baseline", "gaussian", 0, 50, 60),
        h36m_run("baseline", "gaussian", 1, 52, 64),
        h36m_run("full", "gaussian", 0, 45, 60),
        h36m_run("full", "gaussian", 1, 46, 64),
        h36m_run("cce", "gmm", 0, 48, 60),
    )


# ---------------------------------------------------------------------------------------- H36M
def test_h36m_p1_cells_std_bold_and_reference(h36m_df):
    t = T.h36m_table(h36m_df, "P1")
    assert list(t.index) == ["DiffPose (CVPR 2023), GT 2D", "GraFormer lifter (ours)", "baseline + Gaussian",
                             "+CCE + GMM", "full + Gaussian"]
    assert list(t.columns) == list(H36M_ACTIONS) + ["Avg", "Δ Avg vs DiffPose"]
    # Two seeds: mean ± sample std (ddof=1). std(50, 52) = sqrt(2) = 1.414; std(45, 46) = 0.707.
    assert t.loc["baseline + Gaussian", "Directions"] == "51.0 ± 1.4"
    assert t.loc["baseline + Gaussian", "Avg"] == "58.0 ± 1.4"
    assert t.loc["full + Gaussian", "Directions"] == "45.5 ± 0.7"
    assert t.loc["full + Gaussian", "WalkTogether"] == "59.5 ± 0.7"  # 45 + 14, 46 + 14
    assert t.loc["full + Gaussian", "Avg"] == "52.5 ± 0.7"
    # One seed: the plain value.
    assert t.loc["+CCE + GMM", "Directions"] == "48.0"
    assert t.loc["+CCE + GMM", "Avg"] == "55.0"
    # The lifter once per seed: std(60, 64) = 2.83 (per run, [60, 60, 60, 64, 64], it would be 2.19).
    assert t.loc["GraFormer lifter (ours)", "Directions"] == "62.0 ± 2.8"
    # The reference (GT 2D: our keypoints are gt) and our difference to its Avg 31.6.
    assert t.loc["DiffPose (CVPR 2023), GT 2D", "Directions"] == "28.8"
    assert t.loc["DiffPose (CVPR 2023), GT 2D", "SittingDown"] == "41.0"
    assert t.loc["DiffPose (CVPR 2023), GT 2D", "Avg"] == "31.6"
    assert t.loc["DiffPose (CVPR 2023), GT 2D", "Δ Avg vs DiffPose"] == "–"
    assert t.loc["full + Gaussian", "Δ Avg vs DiffPose"] == "+20.9"  # 52.5 - 31.6
    assert t.loc["baseline + Gaussian", "Δ Avg vs DiffPose"] == "+26.4"
    assert t.loc["GraFormer lifter (ours)", "Δ Avg vs DiffPose"] == "+37.4"  # 69 - 31.6
    # Bold: best of OUR rows per column (the reference, lower, is not bold); full wins everywhere.
    bold = {(r, c) for r, c in t.attrs["bold"]}
    assert bold == {("full + Gaussian", c) for c in list(H36M_ACTIONS) + ["Avg"]}


def test_h36m_markdown_exact(h36m_df):
    md = T.to_markdown(T.h36m_table(h36m_df, "P1"))
    assert md.startswith("Table: Human3.6M, Protocol 1 (MPJPE, mm) per action")
    rows = md_rows(md)
    assert rows["Method"][:2] == ["Directions", "Discussion"] and rows["Method"][-2:] == ["Avg", "Δ Avg vs DiffPose"]
    assert rows["full + Gaussian"][0] == "**45.5 ± 0.7**"
    assert rows["full + Gaussian"][-2:] == ["**52.5 ± 0.7**", "+20.9"]
    assert rows["baseline + Gaussian"][0] == "51.0 ± 1.4"
    assert rows["+CCE + GMM"][0] == "48.0"
    assert rows["DiffPose (CVPR 2023), GT 2D"][-2:] == ["31.6", "–"]
    assert rows["GraFormer lifter (ours)"][0] == "62.0 ± 2.8"
    # Caption: benchmark, input, profile, seeds, synthetic; what the runs were, not where or how long they
    # ran (run count, device, wall time: provenance.md).
    cap = md.splitlines()[0]
    for part in ("Input: ground-truth 2D (gt).", "Profile: quick.", "Seeds: 0, 1 (mean ± sample std",
                 "Synthetic benchmark (not the real data).", "Reference: DiffPose (CVPR 2023), GT 2D: Gong"):
        assert part in cap, part
    for part in ("5 runs", "Device", "cpu", "wall time", "5.0 min"):
        assert part not in cap, part


def test_h36m_latex_booktabs_bold(h36m_df):
    tex = T.to_latex(T.h36m_table(h36m_df, "P1"))
    # A table* of two tabulars (the actions in two halves: 9 columns, then 6 + Avg + the Δ group), each
    # shrunk to the line width only where wider.
    assert tex.startswith("\\begin{table*}\n\\centering\n\\caption{") and tex.endswith("\\end{table*}\n")
    assert tex.count(T.LATEX_FIT + "%\n\\begin{tabular}") == 2 and tex.count("\\end{tabular}}") == 2
    assert tex.count("\\toprule") == tex.count("\\midrule") == tex.count("\\bottomrule") == 2
    first, second = tex.split("\\par\\medskip")
    for part in ("\\begin{tabular}{lrrrrrrrrr}", "\\label{tab:h36m-p1-gt-synth}",
                 "\nMethod & Dir. & Disc. & Eat & Greet & Phone & Photo & Pose & Purch. & Sit \\\\\n"):
        assert part in first, part
    for part in ("\\begin{tabular}{lrrrrrrrr}", "\n\\multicolumn{8}{c}{} & $\\Delta$ Avg vs \\\\\n\\cmidrule(lr){9-9}\n"
                 "Method & SitD. & Smoke & Wait & WalkD. & Walk & WalkT. & Avg & DiffPose \\\\\n"):
        assert part in second, part
    lines = [ln for ln in tex.splitlines() if ln.startswith("full + Gaussian")]
    assert len(lines) == 2
    assert lines[0].startswith("full + Gaussian & \\textbf{45.5 $\\pm$ 0.7} & \\textbf{46.5 $\\pm$ 0.7} &")
    assert lines[0].endswith("& \\textbf{53.5 $\\pm$ 0.7} \\\\")  # Sit: 45 + 8, 46 + 8
    assert lines[1].startswith("full + Gaussian & \\textbf{54.5 $\\pm$ 0.7} &")
    assert lines[1].endswith("& \\textbf{52.5 $\\pm$ 0.7} & +20.9 \\\\")
    # The reference row by its short name (the caption says what it is).
    ref = [ln for ln in tex.splitlines() if ln.startswith("DiffPose &")]
    assert ref[1].endswith("& 27.5 & 31.6 & -- \\\\") and "textbf" not in ref[0] + ref[1]
    assert "DiffPose (CVPR 2023), GT 2D &" not in tex and "DiffPose: a paper table" in tex
    assert "Synthetic benchmark (not the real data)." in tex


def test_h36m_p2_has_no_gt_reference_and_real_data_caption():
    df = frame(h36m_run("baseline", "gaussian", 0, 50, 60, synthetic=False, data_root="/data/h36m"))
    t = T.h36m_table(df, "P2")
    # DiffPose GT-2D gives only P1: no reference row, no delta column.
    assert list(t.index) == ["GraFormer lifter (ours)", "baseline + Gaussian"]
    assert list(t.columns) == list(H36M_ACTIONS) + ["Avg"]
    assert t.loc["baseline + Gaussian", "Avg"] == "47.0"  # p2 base 40 + 7
    cap = t.attrs["caption"]
    assert "Protocol 2 (P-MPJPE, mm)" in cap and "Synthetic" not in cap
    assert "Seed: 0." in cap and "/data/h36m" not in cap and "1 run" not in cap  # the data root: provenance.md


def test_cpn_input_matches_cpn_references():
    df = frame(h36m_run("full", "gmm", 0, 48, 55, keypoints="cpn_ft_h36m_dbb", synthetic=False, data_root="/d"),
               h36m_run("baseline", "gmm", 0, 50, 55, keypoints="cpn_ft_h36m_dbb", synthetic=False, data_root="/d"))
    p1 = T.h36m_table(df, "P1")
    assert list(p1.index) == ["DiffPose (CVPR 2023), CPN 2D", CCE_ROW, "GraFormer lifter (ours)", "baseline + GMM",
                              "full + GMM"]
    assert list(p1.columns)[-3:] == ["Avg", "Δ Avg vs DiffPose", "Δ Avg vs CCE code"]
    assert p1.loc["DiffPose (CVPR 2023), CPN 2D", "Photo"] == "63.5"
    assert p1.loc[CCE_ROW, "Avg"] == "49.40"
    assert p1.loc[CCE_ROW, "Directions"] == "–"
    assert p1.loc["full + GMM", "Avg"] == "55.0"
    assert p1.loc["full + GMM", "Δ Avg vs DiffPose"] == "+5.3"  # 55 - 49.7
    assert p1.loc["full + GMM", "Δ Avg vs CCE code"] == "+5.60"  # 55 - 49.40, to the reference's 2 decimals
    p2 = T.h36m_table(df, "P2")
    assert list(p2.index)[0] == CCE_ROW
    assert p2.iloc[0]["Avg"] == "39.05"
    assert p2.loc["full + GMM", "Δ Avg vs CCE code"] == "+5.95"  # 45 - 39.05
    assert "CPN detections (cpn_ft_h36m_dbb)" in p1.attrs["caption"]


def test_no_reference_for_other_detections_and_explicit_empty_refs(h36m_df):
    df = frame(h36m_run("baseline", "gaussian", 0, 50, 60, keypoints="sh_pt_mpii", synthetic=False))
    assert "DiffPose" not in " ".join(T.h36m_table(df, "P1").index)
    assert list(T.h36m_table(h36m_df, "P1", references=[]).index)[0] == "GraFormer lifter (ours)"


def test_committed_references_transcribed():
    refs = {(r["name"]): r for r in T.load_references()}
    cpn = refs["DiffPose (CVPR 2023), CPN 2D"]["metrics"]["P1"]
    gt = refs["DiffPose (CVPR 2023), GT 2D"]["metrics"]["P1"]
    assert [cpn[a] for a in H36M_ACTIONS] == [42.8, 49.1, 45.2, 48.7, 52.1, 63.5, 46.3, 45.2, 58.6, 66.3, 50.4,
                                              47.6, 52.0, 37.6, 40.2]
    assert [gt[a] for a in H36M_ACTIONS] == [28.8, 32.7, 27.8, 30.9, 32.8, 38.9, 32.2, 28.3, 33.3, 41.0, 31.0,
                                             32.1, 31.5, 25.9, 27.5]
    assert (cpn["Avg"], gt["Avg"]) == (49.7, 31.6)
    # The published Avg is the mean of the actions (to the printed precision).
    assert abs(sum(cpn[a] for a in H36M_ACTIONS) / 15 - 49.7) < 0.06
    assert abs(sum(gt[a] for a in H36M_ACTIONS) / 15 - 31.6) < 0.06
    cc = refs[CCE_ROW]
    assert cc["metrics"] == {"P1": {"Avg": 49.40}, "P2": {"Avg": 39.05}} and cc["input"] == "cpn"
    assert all(r["source"] for r in refs.values())
    # What each is: DiffPose's rows are a paper table; the cross-channel numbers are the example console
    # output in the released code's README, not a table of the ICASSP 2024 paper.
    assert {name: r["kind"] for name, r in refs.items()} == {
        "DiffPose (CVPR 2023), CPN 2D": "paper", "DiffPose (CVPR 2023), GT 2D": "paper",
        CCE_ROW: "released-code-output"}
    assert cc["origin"] == "README of github jjkislele/monoMotionDiff, Evaluation section, the console output of eval.py"
    assert all(r["origin"] for r in refs.values())


def test_bad_reference_yaml_is_a_data_error(tmp_path):
    (tmp_path / "x.yaml").write_text("references:\n  - name: a\n    source: s\n    benchmark: h36m\n    kind: paper\n"
                                     "    origin: Table 1\n    input: gt\n    metrics: {P1: {Jumping: 3}}\n")
    with pytest.raises(DataError, match="unknown group 'Jumping'"):
        T.load_references(tmp_path)
    (tmp_path / "x.yaml").write_text("references: [{name: a, source: s, benchmark: h36m, kind: paper, origin: Table 1,"
                                     " metrics: {P1: {Avg: 1}}}]")
    with pytest.raises(DataError, match="input must be 'gt' or 'cpn'"):
        T.load_references(tmp_path)
    assert T.load_references(tmp_path / "absent") == []


def _ref_yaml(**over) -> str:
    entry = {"name": "X (2099), GT 2D", "short": "X", "kind": "paper", "origin": "Table 3", "source": "s",
             "benchmark": "h36m", "input": "gt", "metrics": {"P1": {"Avg": 30.0}}, **over}
    return "references:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in entry.items() if v is not None) + "\n"


def test_reference_kind_is_required_and_checked(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(_ref_yaml())
    (ref,) = T.load_references(tmp_path)
    assert (ref["kind"], ref["origin"]) == ("paper", "Table 3")
    path.write_text(_ref_yaml(kind="released-code-output", origin="README of github owner/repo"))
    assert T.load_references(tmp_path)[0]["kind"] == "released-code-output"
    # Missing or unknown kind, or no origin: one line naming the file and the entry.
    for over, msg in (({"kind": None}, "missing key 'kind' (one of paper, released-code-output)"),
                      ({"kind": "preprint"}, "kind must be one of paper, released-code-output, got 'preprint'"),
                      ({"kind": "[paper]"}, "kind must be one of paper, released-code-output, got ['paper']"),
                      ({"origin": None}, "kind 'paper' needs 'origin' (the paper's table, e.g. 'Table 1')")):
        path.write_text(_ref_yaml(**over))
        with pytest.raises(DataError, match=re.escape(msg)) as e:
            T.load_references(tmp_path)
        assert str(e.value).startswith(f"{path}: reference 1 ('X (2099), GT 2D'): ") and "\n" not in str(e.value)


def test_reference_kind_in_markdown_and_latex_captions():
    df = frame(h36m_run("full", "gaussian", 0, 48, 55, keypoints="cpn_ft_h36m_dbb", synthetic=False, data_root="/d"))
    t = T.h36m_table(df, "P1")
    cap = T.to_markdown(t).splitlines()[0]
    cce = ("CCE code: the released code's example output (README of github jjkislele/monoMotionDiff, Evaluation "
           "section, the console output of eval.py), not a paper table.")
    diffpose = ("DiffPose: a paper table (the paper's Human3.6M MPJPE comparison table, frame-based rows, "
                "CPN-detected 2D input).")
    assert cce in cap and diffpose in cap
    assert cap.index("Reference: DiffPose (CVPR 2023), CPN 2D:") < cap.index(diffpose) < cap.index(
        f"Reference: {CCE_ROW}:") < cap.index(cce)
    tex = T.to_latex(t)
    assert T.latex_escape(cce) in tex and T.latex_escape(diffpose) in tex
    assert "\\caption{" in tex and "eval.py), not a paper table." in tex
    # The GT-2D table has only the paper row.
    gt = T.h36m_table(frame(h36m_run("full", "gaussian", 0, 48, 55)), "P1").attrs["caption"]
    assert "DiffPose: a paper table (the paper's Human3.6M MPJPE comparison table, frame-based rows, " \
           "ground-truth 2D input)." in gt and "not a paper table" not in gt


GMM_NOTE = ("GMM: the harness's own per-joint mixture fitted on the lifter's training residuals (harness/noise.py), "
            "not the cross-channel paper's or DiffPose's GMM construction.")


def test_gmm_rows_caption_says_the_gmm_is_the_harness_own(h36m_df):
    # h36m_df has a "+CCE + GMM" row: the H36M and the ablation captions say whose GMM it is.
    for t in (T.h36m_table(h36m_df, "P1"), T.h36m_table(h36m_df, "P2"), T.ablation_table(h36m_df)):
        assert GMM_NOTE in t.attrs["caption"]
        assert GMM_NOTE in T.to_markdown(t).splitlines()[0]
        assert T.latex_escape(GMM_NOTE) in T.to_latex(t)
    hp = frame(_hp_run("full", "gmm", 0, 88.0, 53.0, 70.0))
    assert GMM_NOTE in T.mpi3dhp_table(hp).attrs["caption"] and GMM_NOTE in T.ablation_table(hp).attrs["caption"]
    # Gaussian rows only: no GMM note.
    gauss = frame(h36m_run("full", "gaussian", 0, 45, 60))
    assert "harness/noise.py" not in T.h36m_table(gauss, "P1").attrs["caption"]
    assert "harness/noise.py" not in T.ablation_table(gauss).attrs["caption"]


def _metrics_json(run, recipe=None, p1=50.0):
    """A run's metrics.json content as the pipeline writes it (config = the run's config.json)."""
    cfg = {"benchmark": "h36m", "variant": "full", "noise": "gaussian", "seed": 0, "profile": "quick",
           "data_root": None, "keypoints": "gt", **({"recipe": recipe} if recipe is not None else {})}
    res = {"p1": {"Directions": p1, "Avg": p1}, "p2": {"Directions": p1 - 10, "Avg": p1 - 10}}
    return {"run": run, "config": cfg, "data": {"synthetic": True}, "wall_time_s": 60.0, "git_commit": "abc",
            "date": "2026-01-01T00:00:00+00:00", "device": "cpu",
            "metrics": {"diffusion": res, "lifter": {k: {g: v + 5 for g, v in d.items()} for k, d in res.items()}}}


def test_recipe_in_setting_caption():
    from harness.report.results import run_rows

    harness_cap = "Recipe: harness (this project's defaults; see README 'Recipes')."
    # A config without `recipe` (runs from before it existed) is the harness recipe.
    old = pd.DataFrame(run_rows(_metrics_json("old")), columns=TIDY_COLUMNS)
    assert set(old["recipe"]) == {"harness"}
    t = T.h36m_table(old, "P1", references=[])
    assert harness_cap in t.attrs["caption"] and harness_cap in T.to_markdown(t).splitlines()[0]
    assert T.latex_escape(harness_cap) in T.to_latex(t)
    # Hand-built frames without a recipe value, and tidy tables without the column at all.
    assert harness_cap in T.h36m_table(frame(h36m_run("full", "gaussian", 0, 45, 60)), "P1").attrs["caption"]
    assert harness_cap in T.ablation_table(old.drop(columns=["recipe"])).attrs["caption"]
    released = pd.DataFrame(run_rows(_metrics_json("rel", "released")), columns=TIDY_COLUMNS)
    assert set(released["recipe"]) == {"released"}
    cap = T.h36m_table(released, "P1", references=[]).attrs["caption"]
    assert ("Recipe: released (the cross-channel paper's released code, jjkislele/monoMotionDiff; see README "
            "'Recipes').") in cap
    diffpose = pd.DataFrame(run_rows(_metrics_json("dp", "diffpose")), columns=TIDY_COLUMNS)
    assert "Recipe: diffpose (DiffPose's released code, GONGJIA0208/Diffpose; see README 'Recipes')." in \
        T.h36m_table(diffpose, "P1", references=[]).attrs["caption"]
    # Runs of different recipes in one table: said so, with the run count of each.
    other = pd.DataFrame(run_rows({**_metrics_json("old2", p1=48.0),
                                   "config": {**_metrics_json("old2")["config"], "variant": "baseline"}}),
                         columns=TIDY_COLUMNS)
    mixed = pd.concat([old, other, released.assign(variant="cce")])
    cap = T.h36m_table(mixed, "P1", references=[]).attrs["caption"]
    assert ("Recipes mixed in this table (rows are not split by recipe): harness, 2 runs (this project's defaults); "
            "released, 1 run (the cross-channel paper's released code, jjkislele/monoMotionDiff). See README "
            "'Recipes'.") in cap
    assert "Recipe: " not in cap


def test_normalise_twice_tags_a_recipe_once():
    """The builders normalise what they are given, and build_tables gives them normalised rows: a run of
    another recipe is tagged ``quick/released`` once, not ``quick/released/released``."""
    df = frame(h36m_run("full", "gaussian", 0, 45, 60, name="a"),
               h36m_run("full", "gaussian", 0, 44, 60, name="b", recipe="released"))
    once = T.normalise(df)
    assert sorted(set(once["profile"])) == ["quick", "quick/released"]
    assert T.normalise(once).equals(once)
    assert list(T.ablation_table(once).index) == ["full (CCE+CAG) [quick]", "full (CCE+CAG) [quick/released]"]
    (abl,) = T.build_tables(df, references=[])["ablation"]
    assert list(abl.index) == ["full (CCE+CAG) [quick]", "full (CCE+CAG) [quick/released]"]


def test_old_results_csv_without_recipe_reads_as_harness(h36m_df, tmp_path):
    path = tmp_path / "results.csv"
    h36m_df.drop(columns=["recipe"]).to_csv(path, index=False)  # written before the column existed
    back = read_tidy(path)
    assert set(back["recipe"]) == {"harness"}
    assert T.to_markdown(T.h36m_table(back, "P1")) == T.to_markdown(T.h36m_table(h36m_df, "P1"))
    with pytest.raises(DataError, match="lacks column 'noise'"):
        h36m_df.drop(columns=["noise"]).to_csv(path, index=False)
        read_tidy(path)


def test_latest_run_per_seed_is_kept():
    old = h36m_run("baseline", "gaussian", 0, 70, 60, name="old", date="2026-01-01T00:00:00+00:00")
    new = h36m_run("baseline", "gaussian", 0, 50, 60, name="new", date="2026-02-01T00:00:00+00:00")
    t = T.h36m_table(frame(old, new), "P1", references=[])
    assert t.loc["baseline + Gaussian", "Directions"] == "50.0"  # not 60.0 ± 14.1
    assert "Seed: 0." in t.attrs["caption"] and "earlier run" not in t.attrs["caption"]
    prov = T.provenance(frame(old, new))
    assert "| new " in prov and "| old " not in prov
    assert prov.endswith("Left out: 1 earlier run with the same settings and seed as a later one (the latest is "
                         "shown): old.\n")


def test_several_profiles_get_tagged_rows():
    df = frame(h36m_run("baseline", "gaussian", 0, 50, 60, profile="quick"),
               h36m_run("baseline", "gaussian", 0, 40, 55, profile="full", name="r2"))
    t = T.h36m_table(df, "P1", references=[])
    assert list(t.index) == ["GraFormer lifter (ours) [full]", "baseline + Gaussian [full]",
                             "GraFormer lifter (ours) [quick]", "baseline + Gaussian [quick]"]
    assert t.loc["baseline + Gaussian [full]", "Directions"] == "40.0"
    assert "Profiles: full, quick." in t.attrs["caption"]


def test_several_settings_must_be_split(h36m_df):
    cpn = frame(h36m_run("baseline", "gaussian", 0, 50, 60, keypoints="cpn_ft_h36m_dbb", synthetic=False))
    both = pd.concat([h36m_df, cpn])
    with pytest.raises(DataError, match="several input settings"):
        T.h36m_table(both, "P1")
    keys = [k for k, _ in T.split_settings(both)]
    assert keys == [("h36m", "gt", True, ""), ("h36m", "cpn_ft_h36m_dbb", False, "")]


def test_csv_round_trip_gives_the_same_tables(h36m_df, tmp_path):
    path = write_tidy(h36m_df, tmp_path / "results.csv")
    back = read_tidy(path)
    for metric in ("P1", "P2"):
        assert T.to_markdown(T.h36m_table(back, metric)) == T.to_markdown(T.h36m_table(h36m_df, metric))
    assert T.to_latex(T.ablation_table(back)) == T.to_latex(T.ablation_table(h36m_df))


# -------------------------------------------------------------------------------------- ablation
def _abl_run(variant, noise, seed, p1, p2, lifter=(60.0, 45.0)):
    run = f"h36m-{variant}-{noise}-seed{seed}"
    return (_rows(run, "h36m", variant, noise, seed, "diffusion", "P1", {"Avg": p1})
            + _rows(run, "h36m", variant, noise, seed, "diffusion", "P2", {"Avg": p2})
            + _rows(run, "h36m", variant, noise, seed, "lifter", "P1", {"Avg": lifter[0]})
            + _rows(run, "h36m", variant, noise, seed, "lifter", "P2", {"Avg": lifter[1]}))


def test_ablation_h36m_paper_form():
    df = frame(_abl_run("full", "gaussian", 0, 48.25, 38.0), _abl_run("baseline", "gaussian", 0, 50.0, 40.0),
               _abl_run("cce", "gaussian", 0, 49.5, 39.5), _abl_run("cag", "gaussian", 0, 49.0, 39.0),
               _abl_run("baseline", "gmm", 0, 49.0, 39.0), _abl_run("baseline", "gmm", 1, 51.0, 39.2),
               _abl_run("cce", "gmm", 0, 48.0, 38.5), _abl_run("full", "gmm", 0, 47.10, 37.2))
    t = T.ablation_table(df)
    assert list(t.index) == ["baseline", "+CCE", "+CAG", "full (CCE+CAG)"]
    assert list(t.columns) == [("Gaussian", "P1"), ("Gaussian", "P2"), ("Gaussian", "ΔP1"),
                               ("GMM", "P1"), ("GMM", "P2"), ("GMM", "ΔP1")]
    # GMM baseline over seeds 0, 1: P1 50.00 ± 1.41, P2 39.10 ± 0.14.
    assert list(t.loc["baseline"]) == ["50.00", "40.00", "–", "50.00 ± 1.41", "39.10 ± 0.14", "–"]
    assert list(t.loc["+CCE"]) == ["49.50", "39.50", "-0.50", "48.00", "38.50", "-2.00"]
    assert list(t.loc["+CAG"]) == ["49.00", "39.00", "-1.00", "–", "–", "–"]
    assert list(t.loc["full (CCE+CAG)"]) == ["48.25", "38.00", "-1.75", "47.10", "37.20", "-2.90"]
    assert {(r, c) for r, c in t.attrs["bold"]} == {("full (CCE+CAG)", (n, m)) for n in ("Gaussian", "GMM")
                                                      for m in ("P1", "P2")}
    rows = md_rows(T.to_markdown(t))
    assert rows["Variant"] == ["Gaussian P1", "Gaussian P2", "Gaussian ΔP1", "GMM P1", "GMM P2", "GMM ΔP1"]
    assert rows["full (CCE+CAG)"] == ["**48.25**", "**38.00**", "-1.75", "**47.10**", "**37.20**", "-2.90"]
    tex = T.to_latex(t)
    # One column (table), a tabular per noise stacked, each group header with its \cmidrule.
    assert tex.startswith("\\begin{table}\n") and tex.count("\\begin{tabular}{lrrr}") == 2
    gauss, gmm = tex.split("\\par\\medskip")
    assert " & \\multicolumn{3}{c}{Gaussian} \\\\\n\\cmidrule(lr){2-4}\nVariant & P1 & P2 & $\\Delta$P1 \\\\" in gauss
    assert " & \\multicolumn{3}{c}{GMM} \\\\\n\\cmidrule(lr){2-4}\nVariant & P1 & P2 & $\\Delta$P1 \\\\" in gmm
    assert "full (CCE+CAG) & \\textbf{48.25} & \\textbf{38.00} & $-$1.75 \\\\" in gauss
    assert "full (CCE+CAG) & \\textbf{47.10} & \\textbf{37.20} & $-$2.90 \\\\" in gmm
    assert "baseline & 50.00 & 40.00 & -- \\\\" in gauss and "baseline & 50.00 $\\pm$ 1.41 & 39.10 $\\pm$ 0.14 & -- \\\\" in gmm
    cap = t.attrs["caption"]
    assert "Shared lifter: GraFormer lifter (ours): P1 60.00 ± 0.00, P2 45.00 ± 0.00." in cap
    assert "trained with each of Gaussian and GMM noise." in cap
    # Only the noises that ran are named.
    gauss = T.ablation_table(df[df["noise"] == "gaussian"]).attrs["caption"]
    assert "trained with Gaussian noise. ΔP1: change against the baseline" in gauss and "GMM" not in gauss


# ----------------------------------------------------------------------------------------- 3DHP
def _hp_run(variant, noise, seed, pck, auc, mpjpe, lifter=(80.0, 45.0, 90.0), joints17=False, **over):
    """A 3DHP run's rows; ``joints17``: also PCK17/AUC17/MPJPE17, the 14-joint values - 5, - 3, + 10."""
    run = f"3dhp{'_from_' + over['train_on'] if over.get('train_on') else ''}-{variant}-{noise}-seed{seed}"
    rows = []
    for model, (p, a, m) in (("diffusion", (pck, auc, mpjpe)), ("lifter", lifter)):
        metrics = [("PCK", p), ("AUC", a), ("MPJPE", m)]
        if joints17:
            metrics += [("PCK17", p - 5), ("AUC17", a - 3), ("MPJPE17", m + 10)]
        for metric, base in metrics:
            vals = {"TS1": base, "GS": base + 1, "noGS": base + 2, "Outdoor": base + 3, "All": base}
            rows += _rows(run, "3dhp", variant, noise, seed, model, metric, vals, **over)
    return rows


def test_3dhp_table():
    df = frame(_hp_run("baseline", "gaussian", 0, 85.0, 50.0, 80.0), _hp_run("full", "gaussian", 0, 88.0, 53.0, 70.0),
               _hp_run("full", "gaussian", 1, 90.0, 55.0, 72.0))
    t = T.mpi3dhp_table(df)
    P, A, M = "PCK (14 joints)", "AUC (14 joints)", "MPJPE (14 joints)"
    assert list(t.columns) == [(P, "GS"), (P, "noGS"), (P, "Outdoor"), (P, "All"),
                               (A, "GS"), (A, "noGS"), (A, "Outdoor"), (A, "All"), (M, "All")]
    assert list(t.index) == ["GraFormer lifter (ours)", "baseline + Gaussian", "full + Gaussian"]
    assert list(t.loc["full + Gaussian"]) == ["90.0 ± 1.4", "91.0 ± 1.4", "92.0 ± 1.4", "89.0 ± 1.4",
                                              "55.0 ± 1.4", "56.0 ± 1.4", "57.0 ± 1.4", "54.0 ± 1.4", "71.0 ± 1.4"]
    assert t.loc["GraFormer lifter (ours)", (M, "All")] == "90.0 ± 0.0"  # the same lifter value for both seeds
    # Highest PCK/AUC and lowest MPJPE are bold: full in every column.
    assert {(r, c) for r, c in t.attrs["bold"]} == {("full + Gaussian", c) for c in t.columns}
    rows = md_rows(T.to_markdown(t))
    assert rows["Method"][:4] == [f"{P} GS", f"{P} noGS", f"{P} Outdoor", f"{P} All"] and rows["Method"][-1] == f"{M} All"
    # LaTeX: the joints as a subscript, a \cmidrule under each group (the label column has none).
    tex = T.to_latex(t)
    assert ("\\multicolumn{4}{c}{PCK$_{14}$} & \\multicolumn{4}{c}{AUC$_{14}$} & MPJPE$_{14}$ \\\\\n"
            "\\cmidrule(lr){2-5} \\cmidrule(lr){6-9} \\cmidrule(lr){10-10}\nMethod & GS & noGS") in tex
    assert tex.startswith("\\begin{table*}") and tex.count("\\begin{tabular}") == 1
    assert "Subscripts 14 and 17: over the 14 evaluation joints or all 17." in tex
    assert "Subscripts" not in t.attrs["caption"]  # LaTeX only: the Markdown headers say "(14 joints)"
    assert t.attrs["title"] == "MPI-INF-3DHP, trained on 3DHP (synthetic)"
    assert t.attrs["caption"].startswith("MPI-INF-3DHP, trained on 3DHP: ") and "over the 14 evaluation joints," in \
        t.attrs["caption"]
    a = T.ablation_table(df)
    assert list(a.columns) == [("Gaussian", P), ("Gaussian", A), ("Gaussian", M), ("Gaussian", f"Δ{P}")]
    assert list(a.loc["full (CCE+CAG)"]) == ["89.00 ± 1.41", "54.00 ± 1.41", "71.00 ± 1.41", "+4.00"]
    assert "positive is better" in a.attrs["caption"]


def test_3dhp_14_and_17_joints_trained_on_h36m_vs_3dhp(tmp_path):
    """A cross-dataset setting (trained on H36M) and the own one (trained on 3DHP) are two tables, each
    labelled; the 17-joint figures get their own labelled columns."""
    own = frame(_hp_run("full", "gaussian", 0, 88.0, 53.0, 70.0, joints17=True))
    cross = frame(_hp_run("full", "gaussian", 0, 80.0, 45.0, 90.0, joints17=True, train_on="h36m"),
                  _hp_run("baseline", "gaussian", 0, 78.0, 44.0, 95.0, joints17=True, train_on="h36m"))
    both = pd.concat([own, cross])
    with pytest.raises(DataError, match="several input settings.*train_on=h36m"):
        T.mpi3dhp_table(both)
    assert [k for k, _ in T.split_settings(both)] == [("3dhp", "gt", True, ""), ("3dhp", "gt", True, "h36m")]
    t = T.mpi3dhp_table(cross)
    P, A, M = "PCK (14 joints)", "AUC (14 joints)", "MPJPE (14 joints)"
    P17, A17, M17 = "PCK (17 joints)", "AUC (17 joints)", "MPJPE (17 joints)"
    scenes = ["GS", "noGS", "Outdoor", "All"]
    assert list(t.columns) == ([(P, s) for s in scenes] + [(A, s) for s in scenes] + [(M, "All")]
                               + [(P17, s) for s in scenes] + [(A17, s) for s in scenes] + [(M17, "All")])
    assert list(t.loc["full + Gaussian"]) == ["81.0", "82.0", "83.0", "80.0", "46.0", "47.0", "48.0", "45.0", "90.0",
                                              "76.0", "77.0", "78.0", "75.0", "43.0", "44.0", "45.0", "42.0", "100.0"]
    assert ("full + Gaussian", (P17, "All")) in {(r, tuple(c)) for r, c in t.attrs["bold"]}  # higher is better
    assert ("full + Gaussian", (M17, "All")) in {(r, tuple(c)) for r, c in t.attrs["bold"]}  # lower is better
    assert t.attrs["title"] == "MPI-INF-3DHP, trained on H36M (synthetic)"
    assert t.attrs["label"] == "tab:3dhp-from-h36m-synth"
    cap = t.attrs["caption"]
    assert cap.startswith("MPI-INF-3DHP, trained on H36M: ")
    assert "over the 14 evaluation joints (the official protocol) and over all 17 joints" in cap
    assert "Trained on Human3.6M's training set (2D input: ground-truth 2D (gt)), tested on MPI-INF-3DHP's" in cap
    # LaTeX: the 14-joint columns, then the 17-joint ones below.
    first, second = T.to_latex(t).split("\\par\\medskip")
    assert "\\multicolumn{4}{c}{PCK$_{14}$}" in first and "17}$" not in first
    assert "\\multicolumn{4}{c}{PCK$_{17}$} & \\multicolumn{4}{c}{AUC$_{17}$} & MPJPE$_{17}$ \\\\" in second
    own_t = T.mpi3dhp_table(own)
    assert own_t.attrs["title"] == "MPI-INF-3DHP, trained on 3DHP (synthetic)" and "Trained on Human3.6M" not in \
        own_t.attrs["caption"]
    a = T.ablation_table(cross)
    assert list(a.columns) == [("Gaussian", c) for c in (P, A, M, P17, A17, f"Δ{P}")]
    assert list(a.loc["full (CCE+CAG)"]) == ["80.00", "45.00", "90.00", "75.00", "42.00", "+2.00"]
    assert a.attrs["title"] == "Ablation MPI-INF-3DHP, trained on H36M"
    assert a.attrs["caption"].startswith("Ablation on MPI-INF-3DHP, trained on H36M: ")
    docs = T.build_tables(both, references=[])
    assert [d.attrs["title"] for d in docs["3dhp"]] == ["MPI-INF-3DHP, trained on 3DHP (synthetic)",
                                                        "MPI-INF-3DHP, trained on H36M (synthetic)"]
    s = T.summary_table(both)
    assert list(s.columns)[:3] == ["run", "benchmark", "train_on"]
    assert list(zip(s["train_on"], s["variant"])) == [("", "full"), ("h36m", "baseline"), ("h36m", "full")]
    assert list(s["PCK (17 joints)"]) == [83.0, 73.0, 75.0] and list(s["AUC (17 joints)"]) == [50.0, 41.0, 42.0]
    assert "train_on" not in T.summary_table(own).columns
    # A CSV round trip keeps the setting; a CSV written before the column existed reads as the own training set.
    back = read_tidy(write_tidy(cross, tmp_path / "cross.csv"))
    assert T.to_markdown(T.mpi3dhp_table(back)) == T.to_markdown(t)
    old = read_tidy(write_tidy(own.drop(columns=["train_on"]), tmp_path / "old.csv"))
    assert T.mpi3dhp_table(old).attrs["title"] == "MPI-INF-3DHP, trained on 3DHP (synthetic)"


# --------------------------------------------------------------------------------- summary, misc
def test_summary_table(h36m_df):
    df = pd.concat([h36m_df, frame(_hp_run("full", "gmm", 0, 88.0, 53.0, 70.0))])
    s = T.summary_table(df)
    assert list(s.columns) == ["run", "benchmark", "variant", "noise", "seed", "profile", "keypoints", "P1", "P2",
                               "lifter P1", "PCK (14 joints)", "AUC (14 joints)", "MPJPE (14 joints)",
                               "lifter PCK (14 joints)", "wall_time_s"]
    assert list(zip(s["benchmark"], s["variant"], s["noise"], s["seed"])) == [
        ("h36m", "baseline", "gaussian", 0), ("h36m", "baseline", "gaussian", 1), ("h36m", "cce", "gmm", 0),
        ("h36m", "full", "gaussian", 0), ("h36m", "full", "gaussian", 1), ("3dhp", "full", "gmm", 0)]
    assert list(s["P1"][:5]) == [57.0, 59.0, 55.0, 52.0, 53.0]
    assert list(s["lifter P1"][:5]) == [67.0, 71.0, 67.0, 67.0, 71.0]
    assert math.isnan(s["P1"].iloc[5]) and s["PCK (14 joints)"].iloc[5] == 88.0
    assert s["lifter PCK (14 joints)"].iloc[5] == 80.0
    assert list(s["wall_time_s"]) == [60.0] * 6  # (the printed summary: tests/report/test_summary.py)


def test_formatting_helpers():
    assert T.fmt_value(49.96, 0.04, 2, 1) == "50.0 ± 0.0"
    assert T.fmt_value(49.96) == "50.0"
    assert T.fmt_value(float("nan")) == "–"
    assert T.fmt_delta(-0.04) == "+0.0" and T.fmt_delta(-1.25, 2) == "-1.25" and T.fmt_delta(2) == "+2.0"
    assert T.latex_escape("cpn_ft_h36m_dbb 50% & #1 ± Δ –") == \
        "cpn\\_ft\\_h36m\\_dbb 50\\% \\& \\#1 $\\pm$ $\\Delta$ --"
    assert T.fmt_duration(42) == "42 s" and T.fmt_duration(600) == "10.0 min" and T.fmt_duration(7200) == "2.0 h"


def test_missing_benchmark_and_empty_results():
    with pytest.raises(DataError, match="no MPI-INF-3DHP runs"):
        T.mpi3dhp_table(frame(h36m_run("baseline", "gaussian", 0, 50, 60)))
    with pytest.raises(DataError, match="nothing to tabulate"):
        T.write_tables(pd.DataFrame(columns=TIDY_COLUMNS), "/nonexistent/never-written")
    with pytest.raises(DataError, match="lacks column"):
        T.normalise(pd.DataFrame({"run": ["a"]}))


def test_write_tables_files(h36m_df, tmp_path):
    cpn = frame(h36m_run("baseline", "gaussian", 0, 50, 60, keypoints="cpn_ft_h36m_dbb", synthetic=False,
                         data_root="/d"))
    df = pd.concat([h36m_df, cpn, frame(_hp_run("full", "gmm", 0, 88.0, 53.0, 70.0))])
    out = tmp_path / "tables"
    paths = T.write_tables(df, out)
    names = [p.name for p in paths]
    assert names == ["h36m_p1.md", "h36m_p1.tex", "h36m_p2.md", "h36m_p2.tex", "3dhp.md", "3dhp.tex",
                     "ablation.md", "ablation.tex", "provenance.md", "h36m_p1_by_action.pdf", "h36m_p1_by_action.png",
                     "h36m_p2_by_action.pdf", "h36m_p2_by_action.png", "3dhp_by_scene.pdf", "3dhp_by_scene.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # nothing half-written left behind
    md = (out / "h36m_p1.md").read_text()
    assert md.count("Table: ") == 2  # the GT-2D and the CPN setting
    assert md.index("Input: ground-truth 2D (gt)") < md.index("Input: CPN detections (cpn_ft_h36m_dbb)")
    assert (out / "ablation.md").read_text().count("Table: Ablation on") == 3
    tex = (out / "h36m_p1.tex").read_text()
    assert tex.startswith("% booktabs tables written by `harness tables`; needs \\usepackage{booktabs,graphicx}")
    assert tex.count("\\begin{table*}") == 2  # per action: the page width
    assert (out / "3dhp.tex").read_text().count("\\begin{table*}") == 1
    abl = (out / "ablation.tex").read_text()
    assert abl.count("\\begin{table}") == 3 and "table*" not in abl  # one column
    # Where and how the runs were made: beside the tables, not in their captions.
    prov = (out / "provenance.md").read_text()
    assert prov.startswith("# Provenance\n") and prov.endswith("7 runs, total wall time 7.0 min.\n")
    row = next(ln for ln in prov.splitlines() if ln.startswith("| h36m-baseline-gaussian-seed0-cpn_ft_h36m_dbb "))
    assert [c.strip() for c in row.strip("|").split("|")] == [
        "h36m-baseline-gaussian-seed0-cpn_ft_h36m_dbb", "h36m", "cpn_ft_h36m_dbb", "quick", "baseline", "gaussian", "0",
        "/d", "cpu", "abc", "2026-01-01T00:00:00+00:00", "60 s"]
    assert "| synthetic " in prov
    assert "/d" not in tex and "wall time" not in tex + md
    # Only H36M: no 3dhp files.
    paths = T.write_tables(h36m_df, tmp_path / "only")
    assert "3dhp.md" not in [p.name for p in paths]


# ------------------------------------------------------------------- the table set, swapped in whole
def _results(tmp_path, with_3dhp=True):
    from tests.report.test_check import _fake_run

    res = tmp_path / "res"
    _fake_run(res, "h36m-full", "h36m", "full", 50.0)
    if with_3dhp:
        _fake_run(res, "3dhp-full", "3dhp", "full", 80.0)
    return res


def _tables(*args):
    from typer.testing import CliRunner

    from harness.cli import app

    return CliRunner().invoke(app, ["tables", *map(str, args)])


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _leftovers(res):
    return sorted(p.name for p in res.iterdir() if p.name.startswith(".tables-"))


H36M_FIGS = ["h36m_p1_by_action.pdf", "h36m_p1_by_action.png", "h36m_p2_by_action.pdf", "h36m_p2_by_action.png"]
SET = sorted(["3dhp.md", "3dhp.tex", "3dhp_by_scene.pdf", "3dhp_by_scene.png", "ablation.md", "ablation.tex",
              "h36m_p1.md", "h36m_p1.tex", "h36m_p2.md", "h36m_p2.tex", "provenance.md", "results.csv"] + H36M_FIGS)


def test_tables_failure_midway_leaves_the_old_set_intact(tmp_path, monkeypatch):
    from harness.report import plots

    res = _results(tmp_path)
    r = _tables(res)
    assert r.exit_code == 0, r.output
    old = _snapshot(res / "tables")
    assert sorted(old) == SET
    # New numbers, then the PNG writer fails after the CSV and every table of the new set are written.
    (res / "h36m-full" / "metrics.json").write_text(
        (res / "h36m-full" / "metrics.json").read_text().replace("50.0", "47.5"))

    seen = []

    def boom(df, path, **k):
        seen.append(path)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(plots, "plot_h36m_by_action", boom)
    r = _tables(res)
    assert r.exit_code == 2
    assert r.output.strip() == (f"error: {res / 'tables' / 'h36m_p1_by_action.png'}: No space left on device; the "
                                f"tables were not replaced (the previous set, if any, is kept in {res / 'tables'})")
    assert seen[0].parent.name.startswith(".tables-tmp-")  # the new set was being written beside tables/
    assert _snapshot(res / "tables") == old  # the complete old set, unchanged bytes
    assert _leftovers(res) == []  # no temporary folder beside it, no temporary file inside it
    # Any other exception (a bug, a signal turned KeyboardInterrupt) too.
    monkeypatch.setattr(plots, "plot_h36m_by_action", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    r = _tables(res)
    assert r.exit_code == 130
    assert _snapshot(res / "tables") == old and _leftovers(res) == []


def test_tables_success_replaces_the_whole_set(tmp_path):
    res = _results(tmp_path)
    assert _tables(res).exit_code == 0
    old = _snapshot(res / "tables")
    inodes = {p.name: p.stat().st_ino for p in (res / "tables").iterdir()}
    # The 3DHP run is gone and the H36M one has new numbers: its tables are new, the 3DHP ones removed.
    import shutil

    shutil.rmtree(res / "3dhp-full")
    (res / "h36m-full" / "metrics.json").write_text(
        (res / "h36m-full" / "metrics.json").read_text().replace("50.0", "47.5"))
    r = _tables(res)
    assert r.exit_code == 0, r.output
    new = _snapshot(res / "tables")
    assert sorted(new) == sorted(["ablation.md", "ablation.tex", "h36m_p1.md", "h36m_p1.tex", "h36m_p2.md",
                                  "h36m_p2.tex", "provenance.md", "results.csv"] + H36M_FIGS)
    assert all((res / "tables" / n).stat().st_ino != inodes[n] for n in new)  # every file is the new set's
    assert [n for n in new if new[n] == old[n]] == ["h36m_p2.md", "h36m_p2.tex", "h36m_p2_by_action.pdf",
                                                    "h36m_p2_by_action.png"]  # only P1 changed
    assert "47.5" in new["h36m_p1.md"].decode() and "3dhp" not in new["results.csv"].decode()
    assert _leftovers(res) == []
    assert f"wrote {res / 'tables' / 'results.csv'}" in r.output  # the paths of the set in place


def test_tables_two_renames_where_no_atomic_exchange(tmp_path, monkeypatch):
    res = _results(tmp_path, with_3dhp=False)
    assert _tables(res).exit_code == 0
    old = _snapshot(res / "tables")
    monkeypatch.setattr(T, "_exchange", lambda a, b: False)
    (res / "h36m-full" / "metrics.json").write_text(
        (res / "h36m-full" / "metrics.json").read_text().replace("50.0", "47.5"))
    assert _tables(res).exit_code == 0
    new = _snapshot(res / "tables")
    assert sorted(new) == sorted(old) and new["h36m_p1.md"] != old["h36m_p1.md"] and _leftovers(res) == []


def test_tables_killed_midway_leftovers_are_cleaned_next_run(tmp_path, monkeypatch):
    from harness.report import plots

    res = _results(tmp_path, with_3dhp=False)
    assert _tables(res).exit_code == 0
    old = _snapshot(res / "tables")
    # A run killed while writing (its temporary folder, half a set) ...
    (res / ".tables-tmp-k1ll3d").mkdir()
    (res / ".tables-tmp-k1ll3d" / "results.csv").write_text("half")
    assert _tables(res).exit_code == 0
    assert _leftovers(res) == [] and sorted(_snapshot(res / "tables")) == sorted(old)
    # ... and one killed between its two renames: tables/ gone, the old set beside it, the new one unfinished.
    (res / "tables").rename(res / ".tables-old-k1ll3d")
    (res / ".tables-tmp-x").mkdir()
    monkeypatch.setattr(plots, "plot_h36m_by_action", lambda *a, **k: (_ for _ in ()).throw(DataError("no plot")))
    assert _tables(res).exit_code == 2
    assert _snapshot(res / "tables") == old and _leftovers(res) == []  # the old set is back in place


def test_tables_refuse_a_folder_that_is_not_a_table_set(tmp_path):
    res = _results(tmp_path, with_3dhp=False)
    before = sorted(p.relative_to(res) for p in res.rglob("*"))
    r = _tables(res, "--out", res)  # the results folder itself: its run folders would be swapped away
    assert r.exit_code == 2
    assert r.output.strip() == (f"error: {res}: holds h36m-full, which `harness tables` does not write; the table set "
                                "replaces the whole folder: give --out a folder of its own")
    assert sorted(p.relative_to(res) for p in res.rglob("*") if not p.name.startswith(".res")) == before
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.txt").write_text("mine")
    r = _tables(res, "--out", notes)
    assert r.exit_code == 2 and "holds README.txt" in r.output
    assert [p.name for p in notes.iterdir()] == ["README.txt"]


def test_tables_from_a_csv_inside_the_set_keeps_it(tmp_path):
    res = _results(tmp_path, with_3dhp=False)
    assert _tables(res).exit_code == 0
    csv = res / "tables" / "results.csv"
    data = csv.read_bytes()
    (res / "tables" / "h36m_p1.md").write_text("stale")
    r = _tables(csv, "--out", res / "tables")
    assert r.exit_code == 0, r.output
    assert csv.read_bytes() == data and (res / "tables" / "h36m_p1.md").read_text() != "stale"
