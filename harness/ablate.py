"""The ablation grid: variants x noises x benchmarks x seeds, run once each, resumable, shardable.

Runs are independent (the shared lifter and GMM fit are trained once per benchmark and seed, under a
lock); a run whose metrics exist for the same resolved config is skipped, so an interrupted ablation,
rerun, does only what is left. ``--shard i/n`` takes every n-th run starting at i (0-based), a
deterministic slice, so a job array spreads the grid over machines into one results folder.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.config import Config, resolve_config
from harness.errors import ConfigError
from harness.protocols import BENCHMARKS
from harness.variants import GRID_NOISES, VARIANTS

DEFAULT_VARIANTS = tuple(VARIANTS.names())
DEFAULT_NOISES = GRID_NOISES  # every noise that runs on any data (not 'kernels': *_gmm keypoints only)
DEFAULT_BENCHMARKS = BENCHMARKS


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str | None) -> "Shard":
        if not text:
            return cls(0, 1)
        try:
            i, n = (int(v) for v in text.split("/"))
        except ValueError:
            raise ConfigError(f"--shard: expected i/n with integers (e.g. 0/4), got '{text}'") from None
        if n < 1 or not 0 <= i < n:
            raise ConfigError(f"--shard: need 0 <= i < n, got '{text}'")
        return cls(i, n)

    def take(self, items: list) -> list:
        return [x for k, x in enumerate(items) if k % self.count == self.index]


def plan(variants=DEFAULT_VARIANTS, noises=DEFAULT_NOISES, benchmarks=DEFAULT_BENCHMARKS, seeds=(0,),
         profile: str = "quick", overrides: dict[str, Any] | None = None,
         sets: dict[str, Any] | None = None) -> list[Config]:
    """The grid in a fixed order: benchmark, seed, variant, noise (so shared stages come early);
    ``sets`` (``--set``) as :func:`harness.config.resolve_config` takes them."""
    overrides = dict(overrides or {})
    cfgs = []
    for bench, seed, variant, noise in itertools.product(benchmarks, seeds, variants, noises):
        cfgs.append(resolve_config(profile, {**overrides, "benchmark": bench, "seed": seed, "variant": variant,
                                             "noise": noise}, sets=sets))
    names = [c.hash() for c in cfgs]
    if len(set(names)) != len(names):
        raise ConfigError("the grid has duplicate runs (repeated variant, noise, benchmark or seed)")
    return cfgs


def run_grid(cfgs: list[Config], out: Path, on_event: Callable[[dict[str, Any]], None] | None = None
             ) -> dict[str, list[str]]:
    """Run every config not yet done; returns run names by outcome: done, skipped, busy."""
    from harness.data import load_data
    from harness.pipeline import run
    from harness.runs import is_done, run_name
    from harness.locks import Busy

    emit = on_event or (lambda ev: None)
    outcome: dict[str, list[str]] = {"done": [], "skipped": [], "busy": []}
    data_cache: dict[tuple, Any] = {}
    for k, cfg in enumerate(cfgs):
        name = run_name(cfg)
        if is_done(cfg, out):
            outcome["skipped"].append(name)
            emit({"event": "skip", "run": name, "index": k})
            continue
        key = (cfg.benchmark, cfg.train_on, cfg.data_root, cfg.keypoints, cfg.train_stride, cfg.test_stride,
               cfg.gmm_test_input, cfg.seed if cfg.gmm_test_input == "sample" else None)  # a drawn test 2D
        if key not in data_cache:
            data_cache.clear()  # one benchmark's arrays in memory at a time
            data_cache[key] = load_data(cfg)
        emit({"event": "start", "run": name, "index": k, "config": cfg})
        try:
            run(cfg, out, progress=lambda ev, name=name: emit({"event": "progress", "run": name, **ev}),
                data=data_cache[key], blocking=False)
        except Busy:
            outcome["busy"].append(name)
            emit({"event": "busy", "run": name, "index": k})
            continue
        outcome["done"].append(name)
        emit({"event": "finish", "run": name, "index": k})
    return outcome


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def auto_jobs(device: str, runs: int) -> int:
    """Parallel worker processes for ``--jobs 0``: one per core on the CPU (at most 4, and no more
    than there are runs); on CUDA one per GPU this process sees (no more than there are runs; one for a
    named ``cuda:N``). Small models use two single-threaded processes better than one two-threaded
    process (on this project's 2-core machine the quick grid runs ~1.5x faster)."""
    from harness.device import select_device

    dev = select_device(device)
    if dev.type == "cuda":
        import torch

        return 1 if dev.index is not None else max(1, min(torch.cuda.device_count(), runs))
    if dev.type != "cpu":
        return 1
    return max(1, min(_cores(), 4, runs))


def gpu_assignment(jobs: int) -> list[str]:
    """``CUDA_VISIBLE_DEVICES`` of each of ``jobs`` GPU workers: worker k gets the k-th GPU this process
    sees (the k-th entry of its own ``CUDA_VISIBLE_DEVICES`` when that is set), round robin when there
    are more workers than GPUs."""
    import os

    import torch

    seen = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [x.strip() for x in seen.split(",") if x.strip()] if seen else []
    if not ids:
        ids = [str(i) for i in range(max(1, torch.cuda.device_count()))]
    return [ids[k % len(ids)] for k in range(jobs)]


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 4096))
            lines = [ln for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1].strip() if lines else ""
    except OSError:
        return ""


def _die_with_parent() -> None:
    """In a worker, before exec: on Linux, get SIGKILL when the parent dies (a killed ``harness
    ablate`` leaves no orphan holding run locks)."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def run_parallel(argv: list[str], jobs: int, cfgs: list[Config], out: Path,
                 on_tick: Callable[[int, list[str]], None] | None = None,
                 poll_s: float = 1.0, gpus: list[str] | None = None) -> list[tuple[int, int, str]]:
    """Run ``harness ablate ARGV --shard k/jobs`` for k < jobs as worker processes, each with
    ``OMP_NUM_THREADS`` = cores // jobs (unless set) and, with ``gpus`` (:func:`gpu_assignment`),
    ``CUDA_VISIBLE_DEVICES=gpus[k]`` (worker k pinned to its own GPU, which it sees as ``cuda:0``),
    logging to ``OUT/logs/ablate-shard-k-of-jobs.log``.
    ``on_tick(done, last_lines)`` is called every ``poll_s`` with the number of ``cfgs`` done and each
    worker's latest log line. Returns ``(shard, exit code, last log
    line)`` for every worker that failed; interrupting (Ctrl-C) stops the workers, whose finished runs
    are kept."""
    import os
    import subprocess
    import sys
    import time

    from harness.runs import is_done

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, _cores() // jobs)))
    logs = Path(out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    try:
        for k in range(jobs):
            log = open(logs / f"ablate-shard-{k}-of-{jobs}.log", "w")
            cmd = [sys.executable, "-m", "harness", "ablate", *argv, "--shard", f"{k}/{jobs}", "--jobs", "1",
                   "--no-tables"]
            wenv = env if gpus is None else {**env, "CUDA_VISIBLE_DEVICES": gpus[k]}
            procs.append((k, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=wenv,
                                              preexec_fn=_die_with_parent), log))
        def tick() -> None:
            if on_tick:
                on_tick(sum(is_done(c, out) for c in cfgs), [_last_line(Path(log.name)) for _, _, log in procs])

        while any(p.poll() is None for _, p, _ in procs):
            tick()
            time.sleep(poll_s)
        tick()
    except BaseException:
        for _, p, _ in procs:
            if p.poll() is None:
                p.terminate()
        for _, p, _ in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        raise
    finally:
        for _, _, log in procs:
            log.close()
    failed = []
    for k, p, log in procs:
        if p.returncode != 0:
            lines = [ln for ln in Path(log.name).read_text(errors="replace").splitlines() if ln.strip()]
            failed.append((k, p.returncode, lines[-1] if lines else "(no output)"))
    return failed
