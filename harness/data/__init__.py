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


def _load_benchmark(benchmark: str, root: Path, keypoints: str) -> dict[str, PoseSet]:
    if benchmark == "h36m":
        from harness.data.h36m import load_h36m

        data = load_h36m(root, keypoints=keypoints)
        if keypoints != "gt":  # the GT 2D gives the detector's residuals for the GMM noise fit
            gt = load_h36m(root, keypoints="gt")
            gt2d = gt["train"].pose_2d
            if data["train"].num_joints == 16 and gt2d.shape[1] == 17:  # 16 joints: the 17 less Neck/Nose
                from harness.skeleton import SH16_FROM_H36M17

                gt2d = gt2d[:, list(SH16_FROM_H36M17)]
            if data["train"].num_joints == gt2d.shape[1] and len(gt["train"]) == len(data["train"]):
                data["train"].meta["pose_2d_gt"] = gt2d
        return data
    from harness.data.mpi3dhp import load_3dhp

    return load_3dhp(root)


def reads_gt_kernels(cfg: Config) -> bool:
    """Whether the run also reads ``data_2d_h36m_gt_gmm.npz``: DiffPose's CPN recipe (``train_keypoints``
    gt on detected ``*_gmm`` keypoints, H36M's own training set) trains the denoiser on the GT kernels."""
    return (cfg.train_keypoints == "gt" and cfg.keypoints.endswith("_gmm") and cfg.keypoints != "gt_gmm"
            and cfg.benchmark == "h36m" and not cfg.train_on)


def load_data(cfg: Config) -> dict[str, PoseSet]:
    """The benchmark's train/test PoseSets for ``cfg`` (synthetic when ``data_root`` is None).

    Cross-dataset (``cfg.train_on``, e.g. "h36m" with benchmark "3dhp"): the training split is that
    benchmark's (H36M S1 S5 S6 S7 S8, 2D ``cfg.keypoints``), read from ``data_root``'s ``h36m/`` folder
    (or the synthetic H36M), the test split the benchmark's own; both in the PoseSet conventions
    (H36M joint order, camera-frame root-relative metres, 2D normalised by each camera's width)."""
    root = resolve_data_root(cfg.benchmark, cfg.data_root)
    data = _load_benchmark(cfg.benchmark, root, cfg.keypoints)
    if reads_gt_kernels(cfg):
        # DiffPose's CPN recipe trains the denoiser on the GT kernels (data_2d_h36m_gt_gmm.npz)
        from harness.data.h36m import load_h36m

        gt = load_h36m(root, keypoints="gt_gmm", subjects=None)["train"]
        if len(gt) != len(data["train"]):
            raise DataError(f"{root}: data_2d_h36m_gt_gmm.npz has {len(gt)} training frames, "
                            f"data_2d_h36m_{cfg.keypoints}.npz {len(data['train'])}")
        data["train"].meta["pose_2d_gt"] = gt.pose_2d
        data["train"].meta["gmm_2d_gt"] = gt.meta["gmm_2d"]
    train_bench, train_root = cfg.benchmark, root
    if cfg.train_on:
        train_bench, train_root = cfg.train_on, resolve_data_root(cfg.train_on, cfg.data_root)
        try:
            train = _load_benchmark(train_bench, train_root, cfg.keypoints)["train"]
        except DataError as e:
            raise DataError(f"{e} (--train-on {train_bench}: give --data-root a folder holding {train_bench}/ "
                            f"and {cfg.benchmark}/)") from None
        test = data.get("test")
        if test is not None and train.num_joints != test.num_joints:
            raise DataError(f"{train_root}: keypoints '{cfg.keypoints}' have {train.num_joints} joints but the "
                            f"{cfg.benchmark} test split has {test.num_joints}; use 17-joint 2D")
        data = {"train": train, "test": test}
    if data.get("test") is not None and data["test"].num_joints not in (16, 17):
        raise DataError(f"{root}: keypoints '{cfg.keypoints}' have {data['test'].num_joints} joints; the models "
                        "need H36M's 17 joints or the 16 without Neck/Nose")
    if "train" not in data or len(data["train"]) == 0:
        why = ("none of the training subjects S1, S5, S6, S7, S8 in data_3d_h36m.npz" if train_bench == "h36m"
               else "data_train_3dhp.npz is absent or empty")
        raise DataError(f"{train_root}: no training data for benchmark '{train_bench}' ({why})")
    if data.get("test") is None or len(data["test"]) == 0:
        why = ("none of the test subjects S9, S11 in data_3d_h36m.npz" if cfg.benchmark == "h36m"
               else "no test sequences")
        raise DataError(f"{root}: no test data for benchmark '{cfg.benchmark}' ({why})")
    out = {"train": data["train"], "test": data["test"]}
    from harness.data.synth import is_synthetic

    out["train"].meta["synthetic"] = cfg.data_root is None or is_synthetic(root) or is_synthetic(train_root)
    if cfg.train_stride > 1:
        keep = np.arange(len(out["train"])) % cfg.train_stride == 0
        gt2d = out["train"].meta.get("pose_2d_gt")
        out["train"] = out["train"].subset(keep)
        if gt2d is not None:
            out["train"].meta["pose_2d_gt"] = gt2d[keep]
    if cfg.test_stride > 1:
        out["test"] = out["test"].subset(np.arange(len(out["test"])) % cfg.test_stride == 0)
    if cfg.gmm_test_input == "sample":  # *_gmm keypoints: the test 2D is one kernel draw, as DiffPose tests
        from harness.data.gmm2d import sample_test_2d

        out["test"] = sample_test_2d(out["test"], cfg.seed)
    for split, ps in out.items():
        if not (np.isfinite(ps.pose_2d).all() and np.isfinite(ps.pose_3d).all()):
            raise DataError(f"{root}: {split} split has NaN or Inf values")
    return out
