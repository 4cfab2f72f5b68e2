"""Issue 6, interruptions: a training killed (SIGKILL) or interrupted (Ctrl-C) at a random moment and
then rerun ends with exactly the metrics of an uninterrupted run; two ablations sharing one results
folder do every run once.

The real CLI runs in subprocesses with a test-sized profile (tests/tiny_cli.py).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e import tiny_cli

SEED = 6  # fixes the random kill moments
EPOCHS = "8"


def train_args(out: Path) -> list:
    return ["train", "--profile", "tiny", "--device", "cpu", "--epochs", EPOCHS, "--out", out]


def metrics_of(out: Path) -> dict:
    (path,) = out.glob("h36m-full-gaussian-seed0-*/metrics.json")
    return json.loads(path.read_text())


def histories_of(out: Path) -> dict:
    """The run's and the shared lifter's history.csv rows less their times (harness.train.records)."""
    from harness.train.records import History

    (run_csv,) = out.glob("h36m-full-gaussian-seed0-*/history.csv")
    (lifter_csv,) = out.glob("shared/lifter-*/history.csv")
    return {name: [{k: v for k, v in r.items() if k != "time_s"} for r in History(p).rows()]
            for name, p in (("denoiser", run_csv), ("lifter", lifter_csv))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, harness_cache) -> dict:
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("uninterrupted")
    r = tiny_cli.run(harness_cache, *train_args(out))
    assert r.returncode == 0, r.stdout + r.stderr
    return {**metrics_of(out), "histories": histories_of(out)}


@pytest.mark.parametrize("wait_for, max_delay, sig", [
    ("shared/lifter-*/checkpoint.pt", 0.2, signal.SIGKILL),
    ("h36m-full-gaussian-seed0-*/checkpoint.pt", 0.5, signal.SIGKILL),
    ("h36m-full-gaussian-seed0-*/checkpoint.pt", 0.5, signal.SIGINT),
], ids=["kill-in-lifter", "kill-in-denoiser", "ctrl-c-in-denoiser"])
def test_interrupted_then_rerun_equals_uninterrupted(wait_for, max_delay, sig, reference, harness_cache, tmp_path):
    rng = random.Random(f"{SEED}-{wait_for}-{int(sig)}")
    out = tmp_path / "runs"
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err:
        # SIGINT back to its default in the child: a test session started in the background by a
        # non-interactive shell (nohup ... &) inherits SIGINT ignored, and so would the run
        proc = subprocess.Popen(tiny_cli.command(*train_args(out)), env=tiny_cli.env(harness_cache), cwd=tiny_cli.REPO,
                                stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 120
            while not list(out.glob(wait_for)):  # the first checkpoint of the stage
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "no checkpoint after 120 s"
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, max_delay))
            assert proc.poll() is None, "the run finished before it could be interrupted"
            os.kill(proc.pid, sig)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130
        assert log.read_text().strip().splitlines()[-1] == "interrupted: finished results are kept; rerun to resume"
    assert not list(out.glob("h36m-*/metrics.json"))  # it was stopped before the end

    r = tiny_cli.run(harness_cache, *train_args(out))
    assert r.returncode == 0, r.stdout + r.stderr
    stage = "lifter" if "lifter" in wait_for else "denoiser"
    assert not re.search(rf"{stage}\s+epoch\s+1/", r.stdout), r.stdout  # resumed, not restarted
    assert metrics_of(out)["metrics"] == reference["metrics"]
    # each epoch once in history.csv, with the uninterrupted run's numbers (the rows after the checkpoint dropped)
    assert histories_of(out) == reference["histories"]
    assert [r["epoch"] for r in reference["histories"]["denoiser"]] == [str(e) for e in range(1, int(EPOCHS) + 1)]


def test_two_ablations_share_one_results_folder(harness_cache, tmp_path):
    out = tmp_path / "results"
    variants = ("baseline", "cce", "cag", "full")
    args = ["ablate", "--jobs", "1", "--profile", "tiny", "--device", "cpu", "--benchmarks", "h36m", "--variants", ",".join(variants),
            "--noises", "gaussian", "--no-tables", "--out", out]
    procs = [subprocess.Popen(tiny_cli.command(*args), env=tiny_cli.env(harness_cache), cwd=tiny_cli.REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    counts = []
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stdout + stderr
        m = re.search(r"(\d+) run\(s\) done, (\d+) skipped \(results existed\), (\d+) busy elsewhere", stdout)
        assert m, stdout
        counts.append(tuple(int(v) for v in m.groups()))
    assert all(sum(c) == len(variants) for c in counts), counts  # each process accounted for every run
    assert counts[0][0] + counts[1][0] == len(variants), counts  # and every run was trained exactly once
    runs = sorted(p for p in out.iterdir() if p.name != "shared")
    assert [r.name.split("-")[1] for r in runs] == sorted(variants)
    for r in runs:
        res = json.loads((r / "metrics.json").read_text())
        assert res["run"] == r.name and res["config"]["variant"] == r.name.split("-")[1]
        assert sorted(res["metrics"]) == ["diffusion", "lifter"]
    assert len(list(out.glob("shared/lifter-*/predictions.npz"))) == 1  # the shared lifter trained once
    assert not [p for p in out.rglob(".*") if p.name != ".lock"]  # no temporary files left behind
