"""``python -m harness.data.synth OUT [--seed N]``: write both synthetic benchmarks, print timings."""

from __future__ import annotations

import time
from pathlib import Path

import harness.data.synth as _synth
from harness.data.synth.writer import synth_3dhp, synth_h36m


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - convenience entry point
    """``python -m harness.data.synth OUT [--seed N]``: write both benchmarks, print timings."""
    import argparse

    ap = argparse.ArgumentParser(description=_synth.__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    for name, fn in (("h36m", synth_h36m), ("3dhp", synth_3dhp)):
        t0 = time.perf_counter()
        paths = fn(a.out / name, seed=a.seed)
        dt = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in paths)
        print(f"{name}: {dt:.2f} s, {size / 1e6:.2f} MB: " + ", ".join(p.name for p in paths))


if __name__ == "__main__":  # pragma: no cover
    main()
