"""``harness ablate --jobs 0`` on a machine with N GPUs: N workers, each pinned to its own GPU with
``CUDA_VISIBLE_DEVICES`` (tested with a faked device count and faked worker processes)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from harness.ablate import auto_jobs, gpu_assignment, run_parallel


@pytest.fixture
def four_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_one_worker_per_gpu(four_gpus):
    assert auto_jobs("cuda", 16) == 4
    assert auto_jobs("auto", 16) == 4
    assert auto_jobs("cuda", 3) == 3        # no more workers than runs
    assert auto_jobs("cuda:2", 16) == 1     # a named GPU: one process on it
    assert gpu_assignment(4) == ["0", "1", "2", "3"]


def test_workers_take_the_gpus_this_process_sees(four_gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert gpu_assignment(2) == ["2", "5"]
    assert gpu_assignment(3) == ["2", "5", "2"]   # more workers than GPUs (--jobs 3): round robin


class _FakeWorker:
    """Stands in for a worker process: records its command line and environment, exits 0 at once."""

    started: list[tuple[list[str], dict]] = []

    def __init__(self, cmd, stdout=None, stderr=None, env=None, preexec_fn=None):
        _FakeWorker.started.append((cmd, env))
        self.returncode = 0

    def poll(self):
        return 0


def test_each_worker_is_pinned_to_its_gpu(four_gpus, tmp_path, monkeypatch):
    _FakeWorker.started = []
    monkeypatch.setattr(subprocess, "Popen", _FakeWorker)
    jobs = auto_jobs("cuda", 10)
    failed = run_parallel(["--device", "cuda", "--out", str(tmp_path)], jobs, [], tmp_path, poll_s=0.0,
                          gpus=gpu_assignment(jobs))
    assert failed == []
    assert len(_FakeWorker.started) == 4
    for k, (cmd, env) in enumerate(_FakeWorker.started):
        assert cmd[:4] == [sys.executable, "-m", "harness", "ablate"]
        assert cmd[cmd.index("--shard") + 1] == f"{k}/4" and cmd[cmd.index("--jobs") + 1] == "1"
        assert env["CUDA_VISIBLE_DEVICES"] == str(k)   # worker k sees only GPU k (as cuda:0)
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [f"ablate-shard-{k}-of-4.log" for k in range(4)]


def test_cpu_workers_are_not_pinned(tmp_path, monkeypatch):
    _FakeWorker.started = []
    monkeypatch.setattr(subprocess, "Popen", _FakeWorker)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    run_parallel(["--device", "cpu"], 2, [], tmp_path, poll_s=0.0)
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in _FakeWorker.started] == ["7", "7"]   # left as it was
