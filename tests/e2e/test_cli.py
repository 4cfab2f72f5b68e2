"""The CLI through Typer's CliRunner: data commands, variants, errors as one line + exit code."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def one_line_error(result) -> str:
    """The error output must be exactly one 'error: ...' line and no traceback."""
    text = result.output.strip()
    assert "Traceback" not in text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("error: "), text
    return lines[0]


def test_variants_table_counts():
    r = invoke("variants")
    assert r.exit_code == 0, r.output
    rows = {m.group(1): int(m.group(2).replace(",", ""))
            for m in re.finditer(r"│ (baseline|cce|cag|full)\s+│.*?│\s+([\d,]+) │", r.output)}
    assert rows == {"baseline": 1_025_674, "cce": 1_028_899, "cag": 1_865_396, "full": 1_872_990}
    assert "654,344" in r.output  # the GraFormer lifter


def test_synth_then_check_h36m(tmp_path):
    out = tmp_path / "h36m"
    r = invoke("data", "synth", "--benchmark", "h36m", "--out", str(out), "--seed", "3")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["SYNTHETIC", "cameras.h5", "data_2d_h36m_synth_det.npz",
                                                      "data_3d_h36m.npz"]
    r = invoke("data", "check", "--benchmark", "h36m", "--data-root", str(out))
    assert r.exit_code == 0, r.output
    assert "no problems found" in r.output
    for s in ("S1", "S5", "S6", "S7", "S8", "S9", "S11"):
        assert re.search(rf"│ {s}\s", r.output), s
    r = invoke("data", "check", "--benchmark", "h36m", "--data-root", str(out), "--keypoints", "synth_det")
    assert r.exit_code == 0, r.output


def test_synth_then_check_3dhp(tmp_path):
    out = tmp_path / "3dhp"
    r = invoke("data", "synth", "--benchmark", "3dhp", "--out", str(out))
    assert r.exit_code == 0, r.output
    r = invoke("data", "check", "--benchmark", "3dhp", "--data-root", str(out))
    assert r.exit_code == 0, r.output
    for seq in ("TS1", "TS2", "TS3", "TS4", "TS5", "TS6"):
        assert seq in r.output
    assert "no problems found" in r.output


def test_check_reports_problems_and_fails(tmp_path):
    out = tmp_path / "h36m"
    assert invoke("data", "synth", "--benchmark", "h36m", "--out", str(out)).exit_code == 0
    r = invoke("data", "check", "--benchmark", "h36m", "--data-root", str(out), "--keypoints", "cpn_ft_h36m_dbb")
    assert r.exit_code != 0
    assert "data_2d_h36m_cpn_ft_h36m_dbb.npz" in r.output


def test_prepare_writes_gt_2d(tmp_path):
    src = tmp_path / "h36m"
    assert invoke("data", "synth", "--benchmark", "h36m", "--out", str(src)).exit_code == 0
    r = invoke("data", "prepare", "--data-root", str(src), "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "data_2d_h36m_gt.npz").is_file()


@pytest.mark.parametrize("args, needle", [
    (("ablate", "--plan", "--variants", "nope"), "unknown variant 'nope'; valid: baseline, cce, cag, full"),
    (("ablate", "--plan", "--noises", "laplace"), "unknown noise 'laplace'; valid: gaussian, gmm"),
    (("train", "--profile", "huge"), "unknown profile 'huge'"),
    (("data", "check", "--data-root", "/nonexistent/folder"), "/nonexistent/folder: folder not found"),
    (("data", "prepare", "--data-root", "/nonexistent", "--out", "/tmp/x"), "/nonexistent"),
])
def test_errors_are_one_line(args, needle):
    r = invoke(*args)
    assert r.exit_code == 2
    line = one_line_error(r)
    assert needle in line, line


def test_out_of_range_option_is_rejected():
    r = invoke("data", "synth", "--benchmark", "h36m", "--out", "/tmp/x", "--seed", "-1")
    assert r.exit_code == 2
    assert "Traceback" not in r.output
    assert "--seed" in r.output


def test_bench_command_writes_json_and_table(tmp_path):
    import json

    r = invoke("bench", "--variants", "baseline,full", "--batch", "8", "--device", "cpu", "--impl", "fast,reference",
               "--hypotheses", "1", "--hid-dim", "16", "--layers", "1", "--heads", "2", "--reps", "1",
               "--warmup", "0", "--out", str(tmp_path), "--tag", "tiny")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "tiny.json").read_text())
    assert set(res["variants"]) == {"baseline", "full"} and res["batch"] == 8
    assert res["variants"]["full"]["parameters"] == 18_446  # full at hid 16, 1 layer, 2 heads
    header = next(ln for ln in r.output.splitlines() if ln.startswith("variant"))
    assert "train samples/s" in header and "denoiser poses/s" in header
    rows = [ln.split()[:3] for ln in r.output.splitlines() if re.match(r"(baseline|full)\s+(fast|reference)\s", ln)]
    assert rows == [["baseline", "fast", "10,870"], ["baseline", "reference", "10,870"],
                    ["full", "fast", "18,446"], ["full", "reference", "18,446"]]


@pytest.mark.parametrize("args, needle", [
    (("bench", "--variants", "nope"), "--variants: unknown variant 'nope'; valid: baseline, cce, cag, full"),  # as ablate's
    (("bench", "--impl", "fast,slow"), "--impl: unknown implementation 'slow'; valid: fast, reference, compiled"),
    (("bench", "--device", "tpu"), "--device 'tpu': must be one of auto, cpu, cuda"),
    (("bench", "--hid-dim", "15", "--heads", "4"), "--hid-dim 15: must be a multiple of --heads (4)"),
])
def test_bench_bad_options(args, needle):
    line = one_line_error(invoke(*args))
    assert needle in line
