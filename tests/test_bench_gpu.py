"""``harness bench --suite gpu`` on the CPU, the way CI runs it: a tiny configuration (one variant, one
batch, dynamo's ``eager`` backend) that checks the suite works and records what it must; no timing
assertions (the figures depend on the machine)."""

from __future__ import annotations

import json

import pytest

from harness.bench import SUITE_MODES, count_ops, run_gpu_suite
from harness.errors import ConfigError


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    return run_gpu_suite("cpu", out_dir=out, variants=["baseline"], batches=[8], compile_backend="eager",
                         modes=["eager_fp32", "compiled_bf16", "graphs_bf16"],
                         reps=1, warmup=0, eval_batch=8, equiv=dict(hid_dim=16, num_layers=1, n_head=2, batch=8))


def test_suite_json_names_the_cpu(suite):
    data = json.loads(open(suite["path"]).read())
    assert data["kind"] == "bench_suite" and data["suite"] == "gpu" and data["device"] == "cpu"
    cpu = data["machine"]["cpu"]
    slug = "".join(c if c.isalnum() else "-" for c in cpu.lower())
    while "--" in slug:
        slug = slug.replace("--", "-")
    assert suite["path"].endswith(f"/gpu-cpu-{slug.strip('-')[:60]}.json")   # the CPU model is named inside
    assert data["compile_backend"] == "eager" and set(data["modes"]) == set(SUITE_MODES) - {"eager_bf16"}
    assert data["cuda_default"].startswith("eager")
    assert data["skipped"] == []


def test_every_compiled_function_records_zero_graph_breaks(suite):
    e = suite["variants"]["baseline"]
    eq = e["equivalence"]["against"]["cpu_default"]
    assert eq["graph_breaks"] == {"train_step": 0, "sampler": 0}
    assert e["train"]["compiled_bf16_b8"]["graph_breaks"] == 0
    assert e["infer"]["compiled_bf16"]["graph_breaks"] == {"denoiser": 0, "sampler": 0}
    assert "graph_breaks" not in e["train"]["eager_fp32_b8"]   # nothing compiled there


def test_equivalence_and_modes(suite):
    e = suite["variants"]["baseline"]
    eq = e["equivalence"]["against"]["cpu_default"]
    assert eq["pass"] and eq["loss_max_rel_diff"] < 1e-5 and eq["weights_max_abs_diff"] < 1e-6
    assert len(eq["losses"]) == 3 and e["equivalence"]["excluded_weights"] == ["atten_layers.0.self_attn.linears.1.bias"]
    for mode in ("eager_fp32", "compiled_bf16"):
        r = e["train"][f"{mode}_b8"]
        assert r["samples_per_s"] > 0 and r["peak_memory_mib"] >= 0 and r["ops_per_step"]["aten_ops"] > 100
        assert e["infer"][mode]["end_to_end"]["poses_per_s"] > 0
    assert e["train"]["graphs_bf16_b8"] == {"skipped": "CUDA graphs need a CUDA device"}
    # bf16 against the float32 eager outputs on the same weights: close, not equal
    d = e["infer"]["compiled_bf16"]["denoiser_max_abs_diff_vs_eager_fp32"]
    assert 0 < d < 0.5
    assert e["infer"]["compiled_bf16"]["end_to_end_mean_joint_dist_vs_eager_fp32"] < 0.05
    p = e["paper_projection"]
    assert p["epochs"] == 800 and p["train_samples"] == 1_464_400 and p["batch"] == 8
    assert set(p["modes"]) == {"eager_fp32", "compiled_bf16"} and p["best_total_hours"] > 0
    assert suite["lifter_train"]["samples_per_s"] > 0


def test_count_ops_counts_an_eager_step():
    import torch

    x = torch.ones(4, 4)
    ops = count_ops(lambda: (x @ x).relu().sum(), torch.device("cpu"))
    assert ops["aten_ops"] == 3 and ops["custom_ops"] == 0   # mm, relu, sum


@pytest.mark.parametrize("kw, msg", [(dict(modes=["turbo"]), "unknown mode"), (dict(variants=["nope"]), "unknown"),
                                     (dict(batches=[1]), "batches"), (dict(hid=3), "unknown size")])
def test_bad_suite_arguments(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        run_gpu_suite("cpu", out_dir=None, **kw)
