"""harness.bench on a tiny configuration: structure of the result, the JSON file and the table
(no timing assertions: the numbers depend on the machine)."""

from __future__ import annotations

import json
import math

import pytest

from harness.bench import format_table, print_table, run_bench
from harness.errors import ConfigError

TINY = dict(hid_dim=16, num_layers=1, n_head=2, reps=1, warmup=0, max_other_load=math.inf)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return run_bench(["baseline", "full"], batch=8, device="cpu", precision="fp32", hypotheses=(1, 2),
                     out_dir=out, implementations=("fast", "reference"), tag="tiny", **TINY)


def test_result_structure(result):
    assert result["kind"] == "bench" and result["batch"] == 8 and result["precision"] == "fp32"
    assert result["implementations"] == ["fast", "reference"]
    assert set(result["variants"]) == {"baseline", "full"}
    for variant, entry in result["variants"].items():
        assert entry["parameters"] > 0
        for impl in ("fast", "reference"):
            r = entry[impl]
            assert r["train"]["samples_per_s"] > 0 and r["train"]["seconds"] > 0
            assert r["train"]["peak_memory_mib"] >= 0
            assert r["denoiser_pass"]["poses_per_s"] > 0
            assert set(r["end_to_end"]) == {"1", "2"}
            assert r["end_to_end"]["2"]["denoiser_passes_per_pose"] == 2 * r["end_to_end"]["1"]["denoiser_passes_per_pose"]
            assert r["max_abs_diff_denoiser"] >= 0 and r["mean_joint_dist_end_to_end"] >= 0
        assert entry["fast"]["max_abs_diff_denoiser"] == 0.0  # the yardstick itself
        # same weights in the reference: equal to float32 rounding
        assert entry["reference"]["max_abs_diff_denoiser"] < 1e-4 * max(1.0, entry["reference"]["max_abs_denoiser_output"])
        assert set(entry["speedup_fast_vs_reference"]) == {"train", "denoiser_pass", "end_to_end_H1", "end_to_end_H2"}


def test_json_written(result):
    data = json.loads(open(result["path"]).read())
    assert result["path"].endswith("tiny.json")
    assert data["variants"]["full"]["fast"]["train"]["samples_per_s"] == pytest.approx(
        result["variants"]["full"]["fast"]["train"]["samples_per_s"])
    assert "machine" in data and data["machine"]["torch"]


def test_table(result, capsys):
    rows = format_table(result)
    assert rows[0][:3] == ["variant", "impl", "params"]
    assert len(rows) == 1 + 2 * 2 and all(len(r) == len(rows[0]) for r in rows)
    print_table(result)
    text = capsys.readouterr().out
    assert "baseline" in text and "reference" in text and "fp32" in text


def test_bf16_and_no_output(tmp_path):
    r = run_bench(["cce"], batch=4, precision="bf16", hypotheses=(1,), out_dir=None, **TINY)
    assert "path" not in r and r["precision"] == "bf16"
    e = r["variants"]["cce"]["fast"]
    assert e["max_abs_diff_denoiser"] > 0  # bf16 differs from the float32 yardstick
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kw, msg", [
    (dict(variants=["nope"]), "unknown"),
    (dict(precision="fp16"), "precision"),
    (dict(implementations=("slow",)), "implementations"),
    (dict(batch=1), "batch"),
    (dict(hypotheses=(0,)), "hypotheses"),
])
def test_bad_arguments_are_config_errors(kw, msg):
    args = dict(variants=["baseline"], batch=4, out_dir=None) | kw
    with pytest.raises(ConfigError, match=msg):
        run_bench(**args, **TINY)
