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

DEFAULT_VARIANTS = ("baseline", "cce", "cag", "full")
DEFAULT_NOISES = ("gaussian", "gmm")
DEFAULT_BENCHMARKS = ("h36m", "3dhp")


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
         profile: str = "quick", overrides: dict[str, Any] | None = None) -> list[Config]:
    """The grid in a fixed order: benchmark, seed, variant, noise (so shared stages come early)."""
    overrides = dict(overrides or {})
    cfgs = []
    for bench, seed, variant, noise in itertools.product(benchmarks, seeds, variants, noises):
        cfgs.append(resolve_config(profile, {**overrides, "benchmark": bench, "seed": seed, "variant": variant,
                                             "noise": noise}))
    names = [c.hash() for c in cfgs]
    if len(set(names)) != len(names):
        raise ConfigError("the grid has duplicate runs (repeated variant, noise, benchmark or seed)")
    return cfgs


def run_grid(cfgs: list[Config], out: Path, on_event: Callable[[dict[str, Any]], None] | None = None
             ) -> dict[str, list[str]]:
    """Run every config not yet done; returns run names by outcome: done, skipped, busy."""
    from harness.engine import is_done, load_data, run, run_name
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
        key = (cfg.benchmark, cfg.data_root, cfg.keypoints, cfg.train_stride, cfg.test_stride)
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
