"""Data: loaders for the real file formats, the synthetic benchmark, caching."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.data.base import PoseSet
from harness.errors import DataError

if TYPE_CHECKING:
    from harness.config import Config


def resolve_data_root(benchmark: str, data_root: Path | str | None, seed: int = 0) -> Path:
    """The folder a benchmark's files are read from: ``data_root`` if given (it must exist), else the
    synthetic benchmark, generated on first use into the harness cache."""
    if data_root is None:
        from harness.data.synth import ensure_synth

        return Path(ensure_synth(benchmark, seed=seed))
    root = Path(data_root)
    if not root.is_dir():
        raise DataError(f"--data-root {root}: folder not found")
    # Accept the parent of h36m/ and 3dhp/ folders too (e.g. ../shared/data).
    sub = root / benchmark
    if sub.is_dir() and not any(root.glob("data_*.npz")):
        return sub
    return root


def load_data(cfg: Config) -> dict[str, PoseSet]:
    """The benchmark's train/test PoseSets for ``cfg`` (synthetic when ``data_root`` is None)."""
    root = resolve_data_root(cfg.benchmark, cfg.data_root)
    if cfg.benchmark == "h36m":
        from harness.data.h36m import load_h36m

        data = load_h36m(root, keypoints=cfg.keypoints)
        if cfg.keypoints != "gt":  # the GT 2D gives the detector's residuals for the GMM noise fit
            gt = load_h36m(root, keypoints="gt")
            if data["train"].num_joints == gt["train"].num_joints and len(gt["train"]) == len(data["train"]):
                data["train"].meta["pose_2d_gt"] = gt["train"].pose_2d
    else:
        from harness.data.mpi3dhp import load_3dhp

        data = load_3dhp(root)
    if data.get("test") is not None and data["test"].num_joints != 17:
        raise DataError(f"{root}: keypoints '{cfg.keypoints}' have {data['test'].num_joints} joints; "
                        "the models need the 17-joint H36M layout")
    if "train" not in data or len(data["train"]) == 0:
        why = ("none of the training subjects S1, S5, S6, S7, S8 in data_3d_h36m.npz" if cfg.benchmark == "h36m"
               else "data_train_3dhp.npz is absent or empty")
        raise DataError(f"{root}: no training data for benchmark '{cfg.benchmark}' ({why})")
    if "test" not in data or len(data["test"]) == 0:
        why = ("none of the test subjects S9, S11 in data_3d_h36m.npz" if cfg.benchmark == "h36m"
               else "no test sequences")
        raise DataError(f"{root}: no test data for benchmark '{cfg.benchmark}' ({why})")
    out = {"train": data["train"], "test": data["test"]}
    from harness.data.synth import is_synthetic

    out["train"].meta["synthetic"] = cfg.data_root is None or is_synthetic(root)
    if cfg.train_stride > 1:
        keep = np.arange(len(out["train"])) % cfg.train_stride == 0
        gt2d = out["train"].meta.get("pose_2d_gt")
        out["train"] = out["train"].subset(keep)
        if gt2d is not None:
            out["train"].meta["pose_2d_gt"] = gt2d[keep]
    if cfg.test_stride > 1:
        out["test"] = out["test"].subset(np.arange(len(out["test"])) % cfg.test_stride == 0)
    for split, ps in out.items():
        if not (np.isfinite(ps.pose_2d).all() and np.isfinite(ps.pose_3d).all()):
            raise DataError(f"{root}: {split} split has NaN or Inf values")
    return out
