"""``harness ablate --jobs N``: the grid split over N worker processes (shards), one results folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from harness.ablate import auto_jobs
from harness.cli import app

REPO = Path(__file__).resolve().parents[2]
GRID = ["--profile", "smoke", "--benchmarks", "3dhp", "--variants", "baseline,cce", "--noises", "gaussian",
        "--device", "cpu", "--epochs", "2", "--no-tables"]


def _metrics(out: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text())["metrics"] for p in sorted(out.glob("3dhp-*/metrics.json"))}


def test_two_workers_equal_one_single_threaded_process(tmp_path, harness_cache):
    """... with --profiles and --set, which the workers must get (else their runs are other runs)."""
    from harness.config import load_profiles

    env = dict(os.environ, HARNESS_CACHE_DIR=str(harness_cache), OMP_NUM_THREADS="1")
    mine = tmp_path / "mine.yaml"  # the built-in smoke on every 8th test frame (smoke: every 4th)
    mine.write_text("profiles:\n  smoke:\n" + "".join(f"    {k}: {v}\n" for k, v in
                                                     {**load_profiles()["smoke"], "test_stride": 8}.items()))
    grid = [*GRID, "--profiles", str(mine), "--set", "lr=2e-3"]
    one = tmp_path / "one"
    r = subprocess.run([sys.executable, "-m", "harness", "ablate", *grid, "--jobs", "1", "--out", str(one)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    two = tmp_path / "two"
    r = subprocess.run([sys.executable, "-m", "harness", "ablate", *grid, "--jobs", "2", "--out", str(two)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 runs in 2 worker processes" in r.stdout and "2 of 2 run(s) done" in r.stdout
    assert sorted(p.name for p in (two / "logs").iterdir()) == ["ablate-shard-0-of-2.log", "ablate-shard-1-of-2.log"]
    a, b = _metrics(one), _metrics(two)
    assert len(a) == 2 and a == b  # same runs, same numbers, whichever process ran them
    for run in two.glob("3dhp-*/config.json"):
        cfg = json.loads(run.read_text())
        assert (cfg["lr"], cfg["test_stride"], cfg["profiles_file"]) == (2e-3, 8, str(mine))


def test_workers_failing_alike_give_one_error_line(tmp_path, harness_cache, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(harness_cache))
    r = CliRunner().invoke(app, ["ablate", *GRID, "--jobs", "2", "--data-root", str(tmp_path / "nowhere"),
                                 "--out", str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "nowhere" in errors[0], r.output
    assert "Traceback" not in r.output


def test_jobs_and_shard_are_exclusive(tmp_path):
    r = CliRunner().invoke(app, ["ablate", *GRID, "--jobs", "2", "--shard", "0/2", "--out", str(tmp_path)])
    assert r.exit_code == 2
    assert "error: --jobs with --shard: give one of them" in r.output


def test_auto_jobs():
    cores = len(os.sched_getaffinity(0))
    assert auto_jobs("cpu", 16) == min(cores, 4)
    assert auto_jobs("cpu", 1) == 1


def test_importing_the_models_draws_no_random_numbers():
    """A run that imports the models after seeding (a worker that loads a shared lifter instead of
    training it) must see the same random stream as one that imported them earlier."""
    code = ("import torch; torch.manual_seed(0); {imp}; print(repr(torch.rand(3).tolist()))")
    outs = [subprocess.run([sys.executable, "-c", code.format(imp=imp)], cwd=REPO, capture_output=True, text=True,
                           timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO))).stdout
            for imp in ("pass", "import harness.models, harness.models.fast, harness.variants, harness.pipeline")]
    assert outs[0] and outs[0] == outs[1]
