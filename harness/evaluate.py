"""Evaluation on the test split: the sampler's refined poses and the lifter's, per-frame P1/P2 (mm) and
their aggregation by the benchmark's protocol (:mod:`harness.metrics`: H36M per action, 3DHP per
sequence and scene), plus a few sample poses for figures. For 3DHP the per-frame errors also hold
MPJPE (mm) and PCK (%) over the 14 evaluation joints (``<model>_mpjpe14``, ``<model>_pck14``; their
means over valid frames are the summary's ``MPJPE`` and ``PCK``), for the per-clip sums of
:func:`harness.report.significance.clip_record`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness import metrics as M
from harness.config import Config
from harness.data.base import PoseSet
from harness.device import DeviceData
from harness.errors import DataError
from harness.diffusion.sampler import Sampler
from harness.skeleton import MPI3DHP_EVAL_JOINTS_H36M
from harness.train.augment import Flip

NUM_SAMPLE_POSES = 8


def evaluate(cfg: Config, model: torch.nn.Module, data: dict[str, PoseSet], lifter_test: np.ndarray,
             noise_model, device: torch.device, where: str = "evaluation", progress=None
             ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metrics of the refined and the lifter's poses on the test split, and per-frame errors (mm).
    Poses that are not finite (or beyond 1 km) are a one-line DataError prefixed with ``where`` (the run's
    checkpoint): no metric of them is a number to report. ``progress`` gets ``{"stage": "eval", "done": b,
    "total": NB}`` before the first sampler batch and after each (NB: the batches of the refinement and
    of every hypothesis)."""
    test = data["test"]
    dd = DeviceData.from_poseset(test, device)
    lift = torch.from_numpy(lifter_test).to(device)
    flip = Flip(test.num_joints, device=device)
    sampler = Sampler(cfg, model, flip, device)
    B = cfg.eval_batch_size
    per_pass = -(-dd.pose_2d.shape[0] // B)
    count = _Count(progress, per_pass * (1 + (cfg.hypotheses if cfg.hypotheses > 1 else 0)))
    preds = _predict_pairs(lambda a, b: sampler(a, b), dd.pose_2d, lift, B, count).cpu().numpy()
    gt_mm = test.pose_3d.astype(np.float64) * 1000.0
    out: dict[str, Any] = {}
    per_frame: dict[str, np.ndarray] = {}
    hyp = None
    if cfg.hypotheses > 1:
        gen = torch.Generator(device=device).manual_seed(cfg.seed + 2)
        hs = []
        for _ in range(cfg.hypotheses):
            def one(a, b):
                e1 = noise_model.sample(a.shape[0], generator=gen, device=device)
                e2 = noise_model.sample(a.shape[0], generator=gen, device=device)
                return sampler(a, b, start_noise=e1, flip_noise=e2)
            hs.append(_predict_pairs(one, dd.pose_2d, lift, B, count).cpu().numpy())
        hyp = np.stack(hs, 0)  # (H, N, J, 3)
    for name, pred in (("diffusion", preds), ("lifter", lifter_test)):
        with np.errstate(invalid="ignore"):
            bad = ~(np.abs(pred) <= 1e3).all(axis=(1, 2))  # NaN, inf, or a joint beyond 1 km (metres)
        if bad.any():  # damaged weights or inputs: no metric of such poses is a number to report
            raise DataError(f"{where}: the {'refined' if name == 'diffusion' else name} poses are not finite (NaN, inf or "
                            f"beyond 1 km) "
                            f"in {int(bad.sum())} of {len(bad)} test frames: the checkpoint's weights or the "
                            "lifter's predictions are damaged; nothing was written")
        pred_mm = pred.astype(np.float64) * 1000.0
        per_frame[f"{name}_p1"] = M.mpjpe_per_frame(pred_mm, gt_mm).astype(np.float32)
        per_frame[f"{name}_p2"] = M.p_mpjpe_per_frame(pred_mm, gt_mm).astype(np.float32)
        if cfg.benchmark != "h36m":
            per_frame[f"{name}_mpjpe14"], per_frame[f"{name}_pck14"] = mpi3dhp_per_frame(pred_mm, gt_mm)
        out[name] = _summarise(cfg, test, pred_mm, gt_mm, per_frame[f"{name}_p1"], per_frame[f"{name}_p2"])
    if hyp is not None:
        hyp_mm = hyp.astype(np.float64) * 1000.0
        mean_mm = hyp_mm.mean(0)
        errs = np.stack([M.mpjpe_per_frame(h, gt_mm) for h in hyp_mm], 0)
        best = hyp_mm[errs.argmin(0), np.arange(hyp_mm.shape[1])]
        for name, pred_mm in ((f"hyp{cfg.hypotheses}_mean", mean_mm), (f"hyp{cfg.hypotheses}_best", best)):
            p1 = M.mpjpe_per_frame(pred_mm, gt_mm)
            p2 = M.p_mpjpe_per_frame(pred_mm, gt_mm)
            out[name] = _summarise(cfg, test, pred_mm, gt_mm, p1, p2)
    # A few test poses for figures: evenly spaced frames, inputs and outputs in metres.
    pick = np.linspace(0, len(test) - 1, num=min(NUM_SAMPLE_POSES, len(test))).astype(np.int64)
    per_frame["sample_index"] = pick
    per_frame["sample_pose_2d"] = test.pose_2d[pick]
    per_frame["sample_gt_3d"] = test.pose_3d[pick]
    per_frame["sample_lifter_3d"] = lifter_test[pick]
    per_frame["sample_diffusion_3d"] = preds[pick]
    per_frame["subject"] = test.subject.astype(str)
    per_frame["action"] = test.action.astype(str)
    per_frame["sequence"] = test.sequence.astype(str)
    per_frame["camera"] = test.camera
    per_frame["frame"] = test.frame
    per_frame["valid"] = test.valid
    return out, per_frame


def mpi3dhp_per_frame(pred_mm: np.ndarray, gt_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3DHP per frame over the 14 evaluation joints (:data:`~harness.skeleton.MPI3DHP_EVAL_JOINTS_H36M`,
    as :func:`harness.metrics.mpi3dhp_summary`): MPJPE (mm) and PCK (%, error < 150 mm), float32 ``(N,)``
    each; their means over the valid frames are the summary's ``MPJPE`` and ``PCK``."""
    err = M.joint_errors(pred_mm, gt_mm)[:, list(MPI3DHP_EVAL_JOINTS_H36M)]
    return err.mean(axis=1).astype(np.float32), (100.0 * (err < M.PCK_THRESHOLD).mean(axis=1)).astype(np.float32)


class _Count:
    """The "eval" events: ``done`` of ``total`` sampler batches (the first event at construction)."""

    def __init__(self, progress, total: int):
        self.progress, self.total, self.done = progress, total, 0
        if progress:
            progress({"stage": "eval", "done": 0, "total": total})

    def __call__(self) -> None:
        self.done += 1
        if self.progress:
            self.progress({"stage": "eval", "done": self.done, "total": self.total})


def _predict_pairs(fn, a: torch.Tensor, b: torch.Tensor, batch: int, count=None) -> torch.Tensor:
    outs = []
    for i in range(0, a.shape[0], batch):
        outs.append(fn(a[i:i + batch], b[i:i + batch]))
        if count is not None:
            count()
    return torch.cat(outs, 0)


def _summarise(cfg: Config, test: PoseSet, pred_mm, gt_mm, p1, p2) -> dict[str, Any]:
    valid = test.valid.astype(bool)
    if cfg.benchmark == "h36m":
        return {"p1": M.h36m_per_action(p1, test.action), "p2": M.h36m_per_action(p2, test.action),
                "frames": int(len(test))}
    summ = M.mpi3dhp_summary(pred_mm, gt_mm, test.sequence, valid)
    summ["frames"] = int(valid.sum())
    return summ
