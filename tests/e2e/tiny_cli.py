"""The real ``harness`` command line with one extra, test-sized profile ``tiny`` (the sizes of
tests/test_pipeline.py's TINY): ``python tests/e2e/tiny_cli.py train --profile tiny --device cpu --out DIR``.

The profile is added in memory (harness/configs/profiles.yaml is not touched); everything else is the
ordinary CLI, so a test can run, kill and rerun a training in a subprocess in seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY_PROFILE = dict(train_stride=40, test_stride=40, lifter_hid_dim=16, lifter_layers=1, lifter_heads=2,
                    lifter_epochs=3, hid_dim=16, num_layers=1, n_head=2, epochs=4, batch_size=128,
                    lifter_batch_size=128, gmm_max_components=2, gmm_max_samples=500)


def command(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *map(str, args)]


def env(cache_dir: Path) -> dict[str, str]:
    """The subprocess environment: the test session's cache; one thread (two busy-waiting OpenMP
    threads on a loaded 2-core machine make an epoch 50x slower)."""
    e = dict(os.environ, HARNESS_CACHE_DIR=str(cache_dir), OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    e.pop("COLUMNS", None)
    return e


def run(cache_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), env=env(cache_dir), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def main() -> None:
    import harness.config as hc

    original = hc.load_profiles
    hc.load_profiles = lambda path=None: {**original(path), "tiny": dict(TINY_PROFILE)}
    from harness.cli import main as cli_main

    sys.argv = ["harness", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
