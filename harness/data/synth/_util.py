"""Small helpers and constants shared by the synthetic-benchmark submodules: the random streams
(:func:`_rng` and the stream tags), seed checking and unit vectors."""

from __future__ import annotations

import numpy as np

from harness.data.base import H36M_TEST_SUBJECTS, H36M_TRAIN_SUBJECTS
from harness.data.mpi3dhp import SCENE_OF_SEQUENCE
from harness.errors import ConfigError

H36M_SUBJECTS = H36M_TRAIN_SUBJECTS + H36M_TEST_SUBJECTS  # S1 S5 S6 S7 S8 S9 S11
MPI3DHP_TEST_SCENE = SCENE_OF_SEQUENCE  # GS: TS1 TS2, noGS: TS3 TS4, Outdoor: TS5 TS6

# Random-stream tags (first words of every SeedSequence after the seed).
_TAG_H36M_BODY, _TAG_H36M_CAM, _TAG_H36M_SEQ, _TAG_H36M_DET = 1, 2, 3, 4
_TAG_3DHP_BODY, _TAG_3DHP_TEST, _TAG_3DHP_TRAIN, _TAG_3DHP_CAM = 11, 12, 13, 14


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"synthetic data seed {seed!r}: expected an integer >= 0")
    return int(seed)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)
