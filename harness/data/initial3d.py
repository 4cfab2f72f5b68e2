"""The user's own initial 3D poses (``--initial-3d``), in place of the lifter stage's predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.data.base import PoseSet
from harness.errors import DataError
from harness.safeio import load_npz


def initial_predictions(path: Path, data: dict[str, PoseSet]) -> dict[str, np.ndarray]:
    """The user's own initial 3D poses, from an npz in the 2D file's layout: ``positions_3d`` (or
    ``positions_2d``) ``[subject][action]`` -> one (frames, 17, 3) array per camera, camera frame,
    metres (made root-relative here). Every test frame must be covered; training frames are optional
    (they are needed only for the GMM noise fit)."""
    path = Path(path)
    z = load_npz(path)
    pos = z.get("positions_3d", z.get("positions_2d"))
    if not isinstance(pos, dict):
        raise DataError(f"{path}: expected a pickled dict 'positions_3d[subject][action]' of per-camera arrays")
    out: dict[str, np.ndarray] = {}
    for split, ps in data.items():
        pred = np.full(ps.pose_3d.shape, np.nan, dtype=np.float32)
        for key in sorted(set(zip(ps.subject.tolist(), ps.sequence.tolist(), ps.camera.tolist()))):
            s, a, c = key
            rows = np.flatnonzero((ps.subject == s) & (ps.sequence == a) & (ps.camera == c))
            try:
                arr = np.asarray(pos[s][a][int(c)], dtype=np.float32)
            except (KeyError, IndexError, TypeError):
                if split == "test":
                    raise DataError(f"{path}: no initial 3D for {s} '{a}' camera {c}") from None
                continue
            if arr.ndim != 3 or arr.shape[1:] != ps.pose_3d.shape[1:]:
                raise DataError(f"{path}: {s} '{a}' camera {c} has shape {arr.shape}, "
                                f"expected (frames, {ps.pose_3d.shape[1]}, 3)")
            frames = ps.frame[rows]
            if frames.max() >= len(arr):
                raise DataError(f"{path}: {s} '{a}' camera {c} has {len(arr)} frames, need {frames.max() + 1}")
            pred[rows] = arr[frames]
        done = np.isfinite(pred).all(axis=(1, 2))
        if split == "test" and not done.all():
            raise DataError(f"{path}: NaN or Inf in the initial 3D of {int((~done).sum())} test frames")
        pred[done] -= pred[done][:, :1]
        if split == "test" or done.all():
            out[split] = pred
    return out
