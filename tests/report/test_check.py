"""The accuracy gate: `harness check` passes on its own baseline and fails, naming the metric, on a planted
regression, on values that are not finite, plausible numbers (either side), on runs or metrics missing on either
side, and on files that are not UTF-8 JSON of the expected shape; `--update` writes no such baseline."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from harness.errors import DataError
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


# ------------------------------------------------------------------ a gate that cannot pass garbage
KEY = "h36m/full/gaussian/seed0/diffusion/P1/Avg"


def one_line_error(result) -> str:
    """Exactly one 'error: ...' line, no traceback."""
    text = result.output.strip()
    assert "Traceback" not in text and result.exception is None or isinstance(result.exception, SystemExit), text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("error: "), text
    return lines[0][len("error: "):]


def failure_lines(result) -> list[str]:
    """The '  - ...' lines of a failed gate."""
    assert "Traceback" not in result.output
    return [ln[4:] for ln in result.output.splitlines() if ln.startswith("  - ")]


def _set(res, run, *path_and_value):
    """Set metrics.json's entry at path (a tuple of keys) to value (written with json.dumps: NaN as NaN)."""
    f = res / run / "metrics.json"
    m = json.loads(f.read_text())
    *path, value = path_and_value
    node = m
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    f.write_text(json.dumps(m))


def _gate(tmp_path):
    """Two runs (H36M P1 50, 3DHP PCK 90) and their baseline, written by --update."""
    res = tmp_path / "res"
    _fake_run(res, "h36m-full", "h36m", "full", 50.0)
    _fake_run(res, "3dhp-full", "3dhp", "full", 80.0)
    baseline = tmp_path / "baseline.json"
    r = runner.invoke(app, ["check", str(res), "--baseline", str(baseline), "--update"])
    assert r.exit_code == 0, r.output
    return res, baseline


def check(res, baseline, *extra):
    return runner.invoke(app, ["check", str(res), "--baseline", str(baseline), *extra])


@pytest.mark.parametrize("run, path, value, line", [
    ("h36m-full", ("diffusion", "p1", "Avg"), float("nan"),
     f"{KEY}: result is NaN, not a finite number (run h36m-full)"),
    ("h36m-full", ("diffusion", "p1", "Avg"), float("inf"),
     f"{KEY}: result is inf, not a finite number (run h36m-full)"),
    ("h36m-full", ("lifter", "p2", "Avg"), float("-inf"),
     "h36m/full/gaussian/seed0/lifter/P2/Avg: result is -inf, not a finite number (run h36m-full)"),
    ("h36m-full", ("diffusion", "p1", "Avg"), -3.0,  # better than the baseline by 53 mm: passed before
     f"{KEY}: result is -3.000 mm: an error (P1) cannot be negative (run h36m-full)"),
    ("h36m-full", ("diffusion", "p1", "Walking"), -1.0,  # a per-action value: checked too
     "h36m/full/gaussian/seed0/diffusion/P1/Walking: result is -1.000 mm: an error (P1) cannot be negative "
     "(run h36m-full)"),
    ("h36m-full", ("diffusion", "p2", "Avg"), 12000.0,
     "h36m/full/gaussian/seed0/diffusion/P2/Avg: result is 12000.000 mm: above 10000 mm (10 m), not a plausible "
     "root-relative pose error (P2) (run h36m-full)"),
    ("3dhp-full", ("diffusion", "All", "PCK"), 120.0,  # "better" than 90: passed before
     "3dhp/full/gaussian/seed0/diffusion/PCK/All: result is 120.000: outside 0-100 (PCK is a percentage) "
     "(run 3dhp-full)"),
    ("3dhp-full", ("lifter", "All", "AUC"), -0.5,
     "3dhp/full/gaussian/seed0/lifter/AUC/All: result is -0.500: outside 0-100 (AUC is a percentage) "
     "(run 3dhp-full)"),
    ("3dhp-full", ("diffusion", "All", "MPJPE"), float("nan"),
     "3dhp/full/gaussian/seed0/diffusion/MPJPE/All: result is NaN, not a finite number (run 3dhp-full)"),
])
def test_gate_fails_on_values_that_are_not_finite_plausible_numbers(tmp_path, run, path, value, line):
    res, baseline = _gate(tmp_path)
    _set(res, run, "metrics", *path, value)
    r = check(res, baseline)
    assert r.exit_code == 1, r.output
    assert failure_lines(r) == [line]
    assert "1 problem(s) against" in r.output and " ok" not in r.output


def test_gate_fails_on_nan_from_json_nan_literal(tmp_path):
    # What Python's json writes for a NaN metric: the bare NaN token (json.loads accepts it).
    res, baseline = _gate(tmp_path)
    f = res / "h36m-full" / "metrics.json"
    f.write_text(f.read_text().replace('"Avg": 50.0', '"Avg": NaN', 1))
    r = check(res, baseline)
    assert r.exit_code == 1
    assert failure_lines(r) == [f"{KEY}: result is NaN, not a finite number (run h36m-full)"]


@pytest.mark.parametrize("value, needle", [
    ("NaN", "is NaN, not a finite number"),
    ("Infinity", "is inf, not a finite number"),
    ("-5.0", "is -5.000 mm: an error (P1) cannot be negative"),
    ("1e6", "is 1000000.000 mm: above 10000 mm (10 m), not a plausible root-relative pose error (P1)"),
    ('"50.0"', "is not a number ('50.0')"),
    ("true", "is not a number"),
])
def test_baseline_holding_garbage_is_refused(tmp_path, value, needle):
    res, baseline = _gate(tmp_path)
    text = baseline.read_text()
    assert f'"{KEY}": 50.0' in text
    baseline.write_text(text.replace(f'"{KEY}": 50.0', f'"{KEY}": {value}'))
    before = baseline.read_bytes()
    r = check(res, baseline)
    assert r.exit_code == 2
    assert one_line_error(r) == f"{baseline}: metric '{KEY}' {needle}; a baseline holds finite, plausible numbers only"
    assert baseline.read_bytes() == before


def test_baseline_pck_outside_range_and_bad_keys_are_refused(tmp_path):
    from harness.report.check import read_baseline

    res, baseline = _gate(tmp_path)
    data = json.loads(baseline.read_text())
    k = "3dhp/full/gaussian/seed0/diffusion/PCK/All"
    for bad, msg in ((("metrics", k, 101.0), f"{baseline}: metric '{k}' is 101.000: outside 0-100 (PCK is a "
                                             "percentage); a baseline holds finite, plausible numbers only"),
                     (("metrics", "h36m/full/P1", 1.0), f"{baseline}: key 'h36m/full/P1' is not "
                                                       "benchmark/variant/noise/seed<k>/model/metric/group"),
                     (("metrics", "h36m/full/gaussian/seed0/diffusion/P9/Avg", 1.0),
                      f"{baseline}: key 'h36m/full/gaussian/seed0/diffusion/P9/Avg': unknown metric 'P9' (known: "
                      "P1, P2, PCK, AUC, MPJPE, PCK17, AUC17, MPJPE17)")):
        d = json.loads(json.dumps(data))
        d[bad[0]][bad[1]] = bad[2]
        baseline.write_text(json.dumps(d))
        with pytest.raises(DataError) as e:
            read_baseline(baseline)
        assert str(e.value) == msg


def test_gate_fails_on_a_run_missing_from_the_results(tmp_path):
    res, baseline = _gate(tmp_path)
    shutil.rmtree(res / "3dhp-full")
    r = check(res, baseline)
    assert r.exit_code == 1
    lines = failure_lines(r)
    assert len(lines) == 6  # PCK, AUC, MPJPE x diffusion, lifter
    assert lines[0] == ("3dhp/full/gaussian/seed0/diffusion/AUC/All: missing from the results, which have no run "
                        "3dhp/full/gaussian/seed0 (baseline 50.000)")


def test_gate_fails_on_a_metric_missing_from_the_results(tmp_path):
    res, baseline = _gate(tmp_path)
    m = json.loads((res / "3dhp-full" / "metrics.json").read_text())
    del m["metrics"]["lifter"]["All"]["AUC"]
    (res / "3dhp-full" / "metrics.json").write_text(json.dumps(m))
    r = check(res, baseline)
    assert r.exit_code == 1
    assert failure_lines(r) == ["3dhp/full/gaussian/seed0/lifter/AUC/All: missing from the results (baseline 50.000; "
                                "run 3dhp-full)"]


def test_gate_fails_on_a_run_the_baseline_lacks(tmp_path):
    res, baseline = _gate(tmp_path)
    _fake_run(res, "h36m-cce", "h36m", "cce", 51.0)
    r = check(res, baseline)
    assert r.exit_code == 1
    assert failure_lines(r) == ["h36m/cce/gaussian/seed0: run in the results but not in the baseline: its 4 metric(s) "
                                "would go ungated (--update adds it) (run h36m-cce)"]


def test_metrics_the_baseline_lacks_are_a_note_not_a_failure(tmp_path):
    # A metric the harness reports since the baseline was written (3DHP's PCK17): not gated, said once.
    res, baseline = _gate(tmp_path)
    _set(res, "3dhp-full", "metrics", "diffusion", "All", "PCK17", 91.0)
    _set(res, "3dhp-full", "metrics", "lifter", "All", "PCK17", 89.0)
    r = check(res, baseline)
    assert r.exit_code == 0, r.output
    assert ("note: 2 metric(s) of the baseline's runs are not in the baseline and not gated "
            "(e.g. 3dhp/full/gaussian/seed0/diffusion/PCK17/All); --update adds them") in r.output
    assert "ok: 10 metrics within tolerance" in r.output
    # ... but a garbage value of such a metric still fails
    _set(res, "3dhp-full", "metrics", "lifter", "All", "PCK17", 150.0)
    r = check(res, baseline)
    assert r.exit_code == 1
    assert failure_lines(r) == ["3dhp/full/gaussian/seed0/lifter/PCK17/All: result is 150.000: outside 0-100 "
                                "(PCK17 is a percentage) (run 3dhp-full)"]


def test_gate_fails_on_a_run_folder_without_metrics(tmp_path):
    res, baseline = _gate(tmp_path)
    (res / "h36m-cag").mkdir()
    (res / "h36m-cag" / "config.json").write_text("{}")
    (res / "tables").mkdir()  # not a run: no run file in it
    (res / "tables" / "h36m_p1.md").write_text("x")
    r = check(res, baseline)
    assert r.exit_code == 1
    assert failure_lines(r) == [f"{res / 'h36m-cag'}: run folder has no metrics.json (unfinished or failed run)"]


def test_every_folder_of_one_run_is_compared(tmp_path):
    # The same config finished under other numerics (another run folder): both are gated.
    res, baseline = _gate(tmp_path)
    _fake_run(res, "h36m-full-other", "h36m", "full", 53.0)
    r = check(res, baseline)
    assert r.exit_code == 1
    assert failure_lines(r) == [f"{KEY}: 53.000 vs baseline 50.000 (worse by 3.000, allowed 1.000; "
                                "run h36m-full-other)",
                                "h36m/full/gaussian/seed0/lifter/P1/Avg: 58.000 vs baseline 55.000 (worse by 3.000, "
                                "allowed 1.100; run h36m-full-other)"]


@pytest.mark.parametrize("option", ["--tolerance", "--abs-tolerance"])
def test_infinite_tolerance_is_refused(tmp_path, option):
    # --abs-tolerance inf allowed any worsening: the gate passed anything (nan is refused by the option's min).
    res, baseline = _gate(tmp_path)
    _set(res, "h36m-full", "metrics", "diffusion", "p1", "Avg", 500.0)
    r = check(res, baseline, option, "inf")
    assert r.exit_code == 2
    assert one_line_error(r) == f"{option}: expected a finite number >= 0, got inf"


# ----------------------------------------------------------------------------------- --update
def _update(res, baseline):
    return runner.invoke(app, ["check", str(res), "--baseline", str(baseline), "--update"])


@pytest.mark.parametrize("path, value, what", [
    (("diffusion", "p1", "Avg"), float("nan"), f"{KEY} is NaN, not a finite number (run h36m-full)"),
    (("diffusion", "p1", "Avg"), -2.0, f"{KEY} is -2.000 mm: an error (P1) cannot be negative (run h36m-full)"),
    (("diffusion", "p1", "Avg"), 2e4, f"{KEY} is 20000.000 mm: above 10000 mm (10 m), not a plausible root-relative "
                                      "pose error (P1) (run h36m-full)"),
])
def test_update_refuses_to_write_garbage(tmp_path, path, value, what):
    res, baseline = _gate(tmp_path)
    before = baseline.read_bytes()
    _set(res, "h36m-full", "metrics", *path, value)
    r = _update(res, baseline)
    assert r.exit_code == 2
    assert one_line_error(r) == (f"{baseline}: not written: {what}; a baseline holds finite, plausible numbers of "
                                 "finished runs only")
    assert baseline.read_bytes() == before  # unchanged
    fresh = tmp_path / "new.json"
    assert _update(res, fresh).exit_code == 2 and not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline.json", "res"]  # no temp file either


def test_update_refuses_unfinished_and_ambiguous_runs(tmp_path):
    res, baseline = _gate(tmp_path)
    before = baseline.read_bytes()
    (res / "h36m-cag").mkdir()
    (res / "h36m-cag" / "identity.json").write_text("{}")
    r = _update(res, baseline)
    assert r.exit_code == 2
    assert one_line_error(r) == (f"{baseline}: not written: {res / 'h36m-cag'}: run folder has no metrics.json "
                                 "(unfinished or failed run); a baseline holds finite, plausible numbers of finished "
                                 "runs only")
    shutil.rmtree(res / "h36m-cag")
    _fake_run(res, "h36m-full-other", "h36m", "full", 51.0)
    _set(res, "3dhp-full", "metrics", "lifter", "All", "PCK", float("nan"))
    r = _update(res, baseline)
    assert r.exit_code == 2
    assert one_line_error(r) == (f"{baseline}: not written: 3dhp/full/gaussian/seed0/lifter/PCK/All is NaN, not a "
                                 "finite number (run 3dhp-full) (and 1 more); a baseline holds finite, plausible "
                                 "numbers of finished runs only")
    _set(res, "3dhp-full", "metrics", "lifter", "All", "PCK", 90.0)
    r = _update(res, baseline)
    assert one_line_error(r) == (f"{baseline}: not written: runs h36m-full, h36m-full-other are all "
                                 "h36m/full/gaussian/seed0 (other numerics or data?); a baseline holds one value per "
                                 "metric: keep one; a baseline holds finite, plausible numbers of finished runs only")
    assert baseline.read_bytes() == before


def test_write_baseline_itself_refuses_garbage(tmp_path):
    from harness.report.check import write_baseline

    path = tmp_path / "b.json"
    with pytest.raises(DataError) as e:
        write_baseline(path, {KEY: float("nan")}, "smoke", None)
    assert str(e.value) == (f"{path}: not written: {KEY} is NaN, not a finite number; a baseline holds finite, "
                            "plausible numbers only")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------- files of the wrong shape
BAD_METRICS = [
    (b"\xff\xfe{\x00}", "not UTF-8 text (byte 0xff at offset 0); a metrics file is UTF-8 JSON"),
    (b"{'run': 1}", "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    (b"", "empty file; expected a metrics file (JSON)"),
    (b"[1, 2]", "expected a JSON object (a run's metrics), got a list"),
    (b'{"run": "r", "config": {"benchmark": "h36m", "variant": "full", "noise": "gaussian", "seed": 0}, '
     b'"metrics": [1]}', "'metrics' is a list, expected an object"),
    (b'{"run": "r", "config": {"benchmark": "h36m", "variant": "full", "noise": "gaussian", "seed": 0}, '
     b'"metrics": {"diffusion": {"p1": {"Avg": "50.0"}, "p2": {"Avg": 40}}}}',
     "metrics.diffusion.p1.Avg is a string ('50.0'), expected a number"),
    (b'{"run": "r", "config": {"benchmark": "h36m", "variant": "full", "noise": "gaussian", "seed": "0"}, '
     b'"metrics": {}}', "config.seed is a string, expected an integer"),
    (b'{"run": "r", "config": {"benchmark": "h36m", "variant": "full", "noise": "gaussian", "seed": 0}, '
     b'"metrics": {}}', "'metrics' is empty"),
    (b'{"run": "r", "config": {"benchmark": "h36m", "variant": "full"}, "metrics": {}}',
     "lacks 'config.noise'"),
    (b'{"run": "r", "config": {"benchmark": "h36m", "variant": "full", "noise": "gaussian", "seed": 0}, '
     b'"metrics": {"diffusion": {"p1": {"Avg": 50}}}}', "lacks 'metrics.diffusion.p2'"),
    (b'{"run": "r", "config": {"benchmark": "3dhp", "variant": "full", "noise": "gaussian", "seed": 0}, '
     b'"metrics": {"diffusion": {"All": {"PCK": null}}}}', "metrics.diffusion.All.PCK is null, expected a number"),
    (b'{"run": "r", "config": {"benchmark": "h36m", "variant": "full", "noise": "gaussian", "seed": 0}, '
     b'"wall_time_s": "1 min", "metrics": {}}', "wall_time_s is a string ('1 min'), expected a number"),
    (b"[" * 100000, "not a metrics file: JSON nested too deeply"),
]


def _truncated(res) -> tuple[bytes, str]:
    data = (res / "h36m-full" / "metrics.json").read_bytes()
    return data[:len(data) // 2], "not valid JSON (truncated?)"


@pytest.mark.parametrize("command", ["check", "tables"])
@pytest.mark.parametrize("content, message", BAD_METRICS + [(None, None)], ids=[f"m{i}" for i in range(len(BAD_METRICS))]
                         + ["truncated"])
def test_malformed_metrics_file_is_one_line(tmp_path, command, content, message):
    res, baseline = _gate(tmp_path)
    f = res / "h36m-full" / "metrics.json"
    if content is None:
        content, message = _truncated(res)
    f.write_bytes(content)
    before = baseline.read_bytes()
    args = ["check", str(res), "--baseline", str(baseline)] if command == "check" else ["tables", str(res)]
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    line = one_line_error(r)
    assert line.startswith(f"{f}: {message}"), line
    assert baseline.read_bytes() == before and not (res / "tables").exists()
    if command == "check":  # --update writes nothing either
        r = _update(res, baseline)
        assert r.exit_code == 2 and one_line_error(r).startswith(f"{f}: {message}")
        assert baseline.read_bytes() == before


BAD_BASELINES = [
    (b"\xef\xbb\xbf\x80", "not UTF-8 text (byte 0x80 at offset 3); a baseline file is UTF-8 JSON"),
    (b"not json", "not valid JSON: Expecting value at line 1 column 1"),
    (b'{"metrics": {"h36m/full/gaussian/seed0/diffusion/P1/Avg": 50.0', "not valid JSON (truncated?): "),
    (b"[]", "expected an object with a non-empty 'metrics' mapping"),
    (b'{"metrics": ["h36m"]}', "expected an object with a non-empty 'metrics' mapping"),
    (b'{"metrics": {}}', "expected an object with a non-empty 'metrics' mapping"),
    (b'{"metrics": {"h36m/full/gaussian/seed0/diffusion/P1/Avg": "fifty"}}',
     "metric 'h36m/full/gaussian/seed0/diffusion/P1/Avg' is not a number ('fifty')"),
    (b'{"metrics": {"h36m/full/gaussian/seed0/diffusion/P1/Avg": {"v": 1}}}',
     "metric 'h36m/full/gaussian/seed0/diffusion/P1/Avg' is not a number;"),
]


@pytest.mark.parametrize("content, message", BAD_BASELINES)
def test_malformed_baseline_is_one_line(tmp_path, content, message):
    res, baseline = _gate(tmp_path)
    baseline.write_bytes(content)
    r = check(res, baseline)
    assert r.exit_code == 2, r.output
    line = one_line_error(r)
    assert line.startswith(f"{baseline}: {message}"), line
    assert baseline.read_bytes() == content
