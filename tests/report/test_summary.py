"""The summary `harness tables` and `harness ablate` print: one table per benchmark, setting and profile,
what the rows share said once above it, every value whole at 100 and at 80 columns (rich's width when
the output is piped), and the same summary as Markdown and as JSON."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from harness.report import tables as T
from harness.report.results import collect
from tests.report.test_tables import _hp_run, frame, h36m_run

ROOT = Path(__file__).resolve().parents[2]


def render(tables, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(T.summary_rich(tables))
    return console.export_text()


def assert_whole(text: str, tables, width: int) -> None:
    """Every cell and every setting appears whole, nothing is cut ("…"), no line is wider than the console."""
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    for st in tables:
        lines = text.splitlines()
        assert any(line.startswith(st.settings_items[0]) for line in lines)  # wrapped between items, if at all
        for item in st.settings_items:
            assert any(item in line for line in lines), (item, width)
        for row in st.cells():
            for cell in row:
                assert cell in text, (cell, width)


@pytest.fixture(scope="module")
def committed() -> pd.DataFrame:
    return collect(ROOT / "results" / "h36m-gt-cpu")


def test_committed_h36m_summary(committed):
    (st,) = T.summary_tables(committed)
    assert st.title == "Human3.6M — P1 (MPJPE), P2 (P-MPJPE): mm, average over actions"
    assert st.settings_line == "2D: gt · profile: cpu_h36m · noise: Gaussian · seed: 0 · runs: 4, 76.4 min"
    assert st.columns == ["method", "P1", "P2"]  # seed, noise, profile and 2D input are the same on every row
    assert st.cells() == [["GraFormer lifter", "54.32", "42.27"], ["baseline", "50.58", "38.84"],
                          ["+CCE", "50.09", "38.83"], ["+CAG", "48.22", "37.05"], ["full", "48.44", "37.49"]]
    for width in (100, 80):
        text = render([st], width)
        assert_whole(text, [st], width)
        lines = text.splitlines()
        assert lines[:2] == [st.title, st.settings_line]  # the settings line above the table
        assert lines[2].split() == ["method", "P1", "P2"]
        assert lines[4].split() == ["GraFormer", "lifter", "54.32", "42.27"]


def widest() -> pd.DataFrame:
    """H36M: 4 variants x 2 noises, seeds 0-2 (full + GMM only 0, 1), two profiles (one another recipe's);
    3DHP trained on H36M alike, with three-digit MPJPEs."""
    parts = []
    for recipe in ("harness", "released"):
        for variant in ("baseline", "cce", "cag", "full"):
            for noise in ("gaussian", "gmm"):
                for seed in (0, 1) if (variant, noise) == ("full", "gmm") else (0, 1, 2):
                    over = {"recipe": recipe}
                    tag = f"{variant}-{noise}-{seed}-{recipe}"
                    parts.append(h36m_run(variant, noise, seed, 50 + 2 * seed, 60 + seed, name=f"h-{tag}", **over))
                    run = _hp_run(variant, noise, seed, 88.0 + seed, 53.0 + seed, 100.0 + 10 * seed,
                                  lifter=(80.0, 45.0, 120.0 + seed), train_on="h36m", **over)
                    parts.append([{**r, "run": f"p-{tag}"} for r in run])
    return frame(*parts)


def test_widest_summary_fits_80_columns():
    tables = T.summary_tables(widest())
    assert [(st.benchmark, st.settings["profile"]) for st in tables] == [
        ("h36m", "quick"), ("h36m", "quick/released"), ("3dhp", "quick"), ("3dhp", "quick/released")]
    h36m, hp = tables[0], tables[2]
    assert h36m.columns == ["method", "noise", "seeds", "P1", "P2"]
    assert h36m.settings == {"2D": "gt (synthetic)", "profile": "quick", "seeds": "0, 1, 2 (mean ± std)",
                             "runs": "23, 23.0 min"}
    cells = {(r[0], r[1]): r for r in h36m.cells()}
    # P1 Avg = base + 7: seeds 57, 59, 61 -> 59.00 ± 2.00; full + GMM seeds 0, 1 -> 58.00 ± 1.41.
    assert cells[("baseline", "Gaussian")] == ["baseline", "Gaussian", "3", "59.00 ± 2.00", "49.00 ± 2.00"]
    assert cells[("full", "GMM")] == ["full", "GMM", "2", "58.00 ± 1.41", "48.00 ± 1.41"]
    # The lifter (60 + seed + 7): once per seed, 67, 68, 69.
    assert cells[("GraFormer lifter", "–")] == ["GraFormer lifter", "–", "3", "68.00 ± 1.00", "58.00 ± 1.00"]
    assert hp.title == "MPI-INF-3DHP, trained on H36M — 14 joints, All: PCK@150mm %, AUC %, MPJPE mm"
    assert hp.columns == ["method", "noise", "seeds", "PCK", "AUC", "MPJPE"]
    assert next(r for r in hp.cells() if r[:2] == ["baseline", "GMM"]) == [
        "baseline", "GMM", "3", "89.00 ± 1.00", "54.00 ± 1.00", "110.00 ± 10.00"]
    for width in (100, 80):
        assert_whole(render(tables, width), tables, width)
    assert h36m.settings_line in render(tables, 100).splitlines()  # one line at 100 columns
    assert render(tables, 80).splitlines()[1:3] == ["2D: gt (synthetic) · profile: quick · seeds: 0, 1, 2 (mean ± std)",
                                                    "runs: 23, 23.0 min"]


def test_summary_markdown_and_json(committed):
    tables = T.summary_tables(committed)
    md = T.summary_markdown(tables)
    assert md.splitlines()[:6] == [
        "**Human3.6M — P1 (MPJPE), P2 (P-MPJPE): mm, average over actions**", "",
        "2D: gt · profile: cpu_h36m · noise: Gaussian · seed: 0 · runs: 4, 76.4 min", "",
        "| method           |    P1 |    P2 |", "|:-----------------|------:|------:|"]
    assert "| baseline         | 50.58 | 38.84 |" in md
    data = T.summary_json(tables)
    assert json.loads(json.dumps(data, allow_nan=False)) == data  # plain JSON: no NaN
    (t,) = data
    assert t["settings"] == {"2D": "gt", "profile": "cpu_h36m", "noise": "Gaussian", "seed": "0",
                             "runs": "4, 76.4 min"}
    assert t["columns"] == ["method", "P1", "P2"] and t["settings_line"] == tables[0].settings_line
    base = t["rows"][1]
    assert base["method"] == "baseline" and base["kind"] == "ours" and base["seeds"] == 1
    assert base["cells"] == {"method": "baseline", "P1": "50.58", "P2": "38.84"}
    assert round(base["values"]["P1"]["mean"], 2) == 50.58 and base["values"]["P1"]["std"] is None
    assert t["rows"][0]["kind"] == "lifter" and t["rows"][0]["noise"] == ""
    # A value that is not finite (a run gone wrong) is the missing mark, and null in the JSON.
    bad = committed.copy()
    bad.loc[(bad["run"].str.startswith("h36m-full")) & (bad["model"] == "diffusion") & (bad["metric"] == "P1")
            & (bad["group"] == "Avg"), "value"] = float("inf")
    (st,) = T.summary_tables(bad)
    assert st.cells()[4] == ["full", "–", "37.49"]
    (t,) = T.summary_json([st])
    assert t["rows"][4]["values"]["P1"] == {"mean": None, "std": None, "n": 1}
    json.dumps(t, allow_nan=False)


def test_tables_command_prints_markdown_or_json(tmp_path):
    from typer.testing import CliRunner

    from harness.cli import app

    res = tmp_path / "res"
    res.mkdir()
    for run in (ROOT / "results" / "3dhp-from-h36m-cpu").iterdir():
        if (run / "metrics.json").is_file():
            (res / run.name).mkdir()
            (res / run.name / "metrics.json").write_bytes((run / "metrics.json").read_bytes())
    df = collect(res)
    runner = CliRunner()
    r = runner.invoke(app, ["tables", str(res), "--out", str(tmp_path / "t1"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == T.summary_json(T.summary_tables(df))  # stdout: the JSON alone
    assert f"wrote {tmp_path / 't1' / 'provenance.md'}" in r.stderr
    r = runner.invoke(app, ["tables", str(res), "--out", str(tmp_path / "t2"), "--format", "md"])
    assert r.exit_code == 0, r.output
    assert r.stdout == T.summary_markdown(T.summary_tables(df))
    assert "| baseline         | 76.97 | 45.06 |  109.97 |" in r.stdout
