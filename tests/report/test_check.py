"""The accuracy gate: `harness check` passes on its own baseline and fails, naming the metric, on a planted regression."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from harness.report.check import compare
from harness.cli import app

runner = CliRunner()


def _fake_run(root, name, bench, variant, p1_avg, p2_avg=40.0, pck_all=90.0):
    d = root / name
    d.mkdir(parents=True)
    cfg = {"benchmark": bench, "variant": variant, "noise": "gaussian", "seed": 0, "profile": "smoke",
           "data_root": None, "keypoints": "gt"}
    if bench == "h36m":
        metrics = {m: {"p1": {"Walking": v, "Avg": v}, "p2": {"Walking": p2_avg, "Avg": p2_avg}}
                   for m, v in (("diffusion", p1_avg), ("lifter", p1_avg + 5))}
    else:
        metrics = {m: {"All": {"PCK": pck_all, "AUC": 50.0, "MPJPE": p1_avg}} for m in ("diffusion", "lifter")}
    (d / "metrics.json").write_text(json.dumps({"run": name, "config": cfg, "data": {"synthetic": True},
                                                "metrics": metrics, "wall_time_s": 1.0}))


def test_compare_directions():
    base = {"h36m/full/gaussian/seed0/diffusion/P1/Avg": 50.0, "3dhp/full/gaussian/seed0/diffusion/PCK/All": 90.0}
    assert compare({"h36m/full/gaussian/seed0/diffusion/P1/Avg": 50.9,
                    "3dhp/full/gaussian/seed0/diffusion/PCK/All": 88.3}, base) == []   # within 2%
    bad = compare({"h36m/full/gaussian/seed0/diffusion/P1/Avg": 51.1,
                   "3dhp/full/gaussian/seed0/diffusion/PCK/All": 88.1}, base)
    assert [f.key for f in bad] == ["3dhp/full/gaussian/seed0/diffusion/PCK/All",
                                    "h36m/full/gaussian/seed0/diffusion/P1/Avg"]
    assert compare({"h36m/full/gaussian/seed0/diffusion/P1/Avg": 10.0}, base)[0].value is None  # missing metric


def test_check_cli_passes_then_fails_on_planted_regression(tmp_path):
    res = tmp_path / "res"
    _fake_run(res, "h36m-full", "h36m", "full", 50.0)
    _fake_run(res, "3dhp-full", "3dhp", "full", 80.0)
    baseline = tmp_path / "baseline.json"
    r = runner.invoke(app, ["check", str(res), "--baseline", str(baseline), "--update"])
    assert r.exit_code == 0, r.output
    keys = json.loads(baseline.read_text())["metrics"]
    assert keys["h36m/full/gaussian/seed0/diffusion/P1/Avg"] == 50.0
    assert len(keys) == 2 * 2 + 2 * 3  # (P1, P2) x 2 models + (PCK, AUC, MPJPE) x 2 models
    r = runner.invoke(app, ["check", str(res), "--baseline", str(baseline)])
    assert r.exit_code == 0, r.output
    # Plant a regression: the refined H36M pose gets 3 mm worse (6%).
    m = json.loads((res / "h36m-full" / "metrics.json").read_text())
    m["metrics"]["diffusion"]["p1"]["Avg"] = 53.0
    (res / "h36m-full" / "metrics.json").write_text(json.dumps(m))
    r = runner.invoke(app, ["check", str(res), "--baseline", str(baseline)])
    assert r.exit_code == 1
    assert "h36m/full/gaussian/seed0/diffusion/P1/Avg: 53.000 vs baseline 50.000" in r.output
    assert "1 of 10 metric(s) worse" in r.output
