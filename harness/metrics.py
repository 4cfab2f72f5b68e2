"""Pose-error metrics and their aggregation (Human3.6M per action, MPI-INF-3DHP per sequence/scene).

After VideoPose3D's ``common/loss.py``: pure functions on numpy arrays ``(N, J, 3)`` (anything
``np.asarray`` accepts, computed in float64). Errors come out in the units of the input; the harness
feeds millimetres. The scalar metrics return a float and are the means of their per-frame variants.

- Protocol #1, :func:`mpjpe`: mean per-joint position error.
- Protocol #2, :func:`p_mpjpe`: MPJPE after a per-frame similarity Procrustes alignment of the
  prediction to the ground truth (scale, rotation without reflection, translation).
- MPI-INF-3DHP, :func:`pck` and :func:`auc`, as the official MATLAB evaluation
  (``mpii_compute_3d_pck.m``) computes them: a joint is correct when its error is strictly below the
  threshold (``error < t``, so an error of exactly 150 mm is *not* correct at PCK@150); PCK uses
  150 mm and AUC is the mean PCK over the 31 thresholds 0, 5, ..., 150 mm (the one at 0 is always 0).
  Both are in percent. :func:`mpi3dhp_summary` reports them (and MPJPE) over the 14 evaluation joints
  of the official protocol (``PCK``, ``AUC``, ``MPJPE``) and over all 17 joints (``PCK17``, ``AUC17``,
  ``MPJPE17``), the figures D3DP's and P-STMO's Python evaluations print.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.protocols import (ACTION_ALIASES, AUC_THRESHOLDS_MM, H36M_ACTIONS, MPI3DHP_ALL_JOINTS_SUFFIX,  # noqa: F401
                               MPI3DHP_SCENES, MPI3DHP_TEST_SEQUENCES, PCK_THRESHOLD_MM, action_name)
from harness.skeleton import MPI3DHP_EVAL_JOINTS_H36M

PCK_THRESHOLD = PCK_THRESHOLD_MM
AUC_THRESHOLDS = AUC_THRESHOLDS_MM


def _pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (N, J, C)")
    return pred, gt


def joint_errors(pred, gt) -> np.ndarray:
    """Euclidean error of every joint, ``(N, J)``, in the input's units."""
    pred, gt = _pair(pred, gt)
    return np.linalg.norm(pred - gt, axis=-1)


# ------------------------------------------------------------------------------ Protocol #1
def mpjpe_per_frame(pred, gt) -> np.ndarray:
    """Protocol #1 per frame: mean over joints of the Euclidean error, ``(N,)``, input units."""
    return joint_errors(pred, gt).mean(axis=1)


def mpjpe(pred, gt) -> float:
    """Protocol #1, MPJPE: mean per-joint position error over all frames and joints, input units (mm)."""
    return float(mpjpe_per_frame(pred, gt).mean())


# ------------------------------------------------------------------------------ Protocol #2
def procrustes_align(pred, gt) -> np.ndarray:
    """Align each frame of ``pred`` to ``gt`` with the least-squares similarity transform
    (scale, rotation without reflection, translation), as VideoPose3D's ``p_mpjpe`` does: SVD of the
    cross-covariance of the centred, norm-scaled poses, with the sign of the last singular direction
    flipped when the rotation would have determinant -1. Returns the aligned prediction ``(N, J, 3)``.

    A frame whose prediction (or ground truth) has all joints at one point aligns to the ground
    truth's centroid (the optimal scale is 0) instead of producing NaN.
    """
    pred, gt = _pair(pred, gt)
    mu_x = gt.mean(axis=1, keepdims=True)
    mu_y = pred.mean(axis=1, keepdims=True)
    x0 = gt - mu_x
    y0 = pred - mu_y
    norm_x = np.sqrt(np.sum(x0**2, axis=(1, 2), keepdims=True))
    norm_y = np.sqrt(np.sum(y0**2, axis=(1, 2), keepdims=True))
    degenerate = (norm_x == 0) | (norm_y == 0)
    norm_x = np.where(norm_x == 0, 1.0, norm_x)
    norm_y = np.where(norm_y == 0, 1.0, norm_y)
    x0 = x0 / norm_x
    y0 = y0 / norm_y

    h = np.matmul(x0.transpose(0, 2, 1), y0)
    u, s, vt = np.linalg.svd(h)
    v = vt.transpose(0, 2, 1)
    r = np.matmul(v, u.transpose(0, 2, 1))
    # No reflection: flip the last column of V (and singular value) where det(R) < 0.
    sign_det = np.sign(np.expand_dims(np.linalg.det(r), axis=1))
    sign_det = np.where(sign_det == 0, 1.0, sign_det)
    v[:, :, -1] *= sign_det
    s[:, -1] *= sign_det.ravel()
    r = np.matmul(v, u.transpose(0, 2, 1))

    tr = np.expand_dims(np.sum(s, axis=1, keepdims=True), axis=2)
    a = tr * norm_x / norm_y  # scale
    a = np.where(degenerate, 0.0, a)
    t = mu_x - a * np.matmul(mu_y, r)  # translation
    return a * np.matmul(pred, r) + t


def p_mpjpe_per_frame(pred, gt) -> np.ndarray:
    """Protocol #2 per frame: MPJPE after per-frame Procrustes alignment, ``(N,)``, input units."""
    return mpjpe_per_frame(procrustes_align(pred, gt), gt)


def p_mpjpe(pred, gt) -> float:
    """Protocol #2, P-MPJPE: MPJPE after per-frame similarity Procrustes alignment (scale,
    rotation without reflection, translation), VideoPose3D's ``p_mpjpe``; input units (mm)."""
    return float(p_mpjpe_per_frame(pred, gt).mean())


# ----------------------------------------------------------------------- MPI-INF-3DHP PCK / AUC
def _pck_of_errors(errors: np.ndarray, threshold: float) -> float:
    return float(100.0 * np.mean(errors < threshold))


def _auc_of_errors(errors: np.ndarray, thresholds: Sequence[float]) -> float:
    return float(np.mean([_pck_of_errors(errors, t) for t in thresholds]))


def pck(pred, gt, threshold: float = PCK_THRESHOLD) -> float:
    """3DPCK: percent of joints (over all frames and joints given) whose Euclidean error is strictly
    below ``threshold`` (input units; 150 mm by default), as 3DHP's ``mpii_compute_3d_pck.m``
    (``error < t``)."""
    return _pck_of_errors(joint_errors(pred, gt), threshold)


def auc(pred, gt, thresholds: Sequence[float] = AUC_THRESHOLDS) -> float:
    """3DHP AUC: the mean of :func:`pck` over the thresholds 0, 5, ..., 150 (31 of them, input
    units: mm), in percent, as ``mpii_compute_3d_pck.m``."""
    return _auc_of_errors(joint_errors(pred, gt), thresholds)


# ----------------------------------------------------------------------------------- H36M actions
def h36m_per_action(errors_per_frame, actions) -> dict[str, float]:
    """Mean error per action and their average, the way H36M results are reported.

    ``errors_per_frame`` (N,) (e.g. :func:`mpjpe_per_frame`, mm) and ``actions`` (N,) names; names
    are merged by :func:`action_name`, so each action's mean pools the frames of all its sequences.
    Returns ``{action: mean}`` in :data:`~harness.skeleton.H36M_ACTIONS` order (other names after,
    sorted) and ``"Avg"``, the mean of the action means (not the mean over frames).
    """
    errors = np.asarray(errors_per_frame, dtype=np.float64).reshape(-1)
    names = np.array([action_name(a) for a in np.asarray(actions).reshape(-1)])
    if names.shape[0] != errors.shape[0]:
        raise ValueError(f"{errors.shape[0]} errors but {names.shape[0]} action names")
    if errors.size == 0:
        raise ValueError("no frames to aggregate")
    present = set(names.tolist())
    order = [a for a in H36M_ACTIONS if a in present] + sorted(present - set(H36M_ACTIONS))
    out = {a: float(errors[names == a].mean()) for a in order}
    out["Avg"] = float(np.mean(list(out.values())))
    return out


# ------------------------------------------------------------------------- MPI-INF-3DHP summary
def _seq_key(name: str) -> tuple:
    return (0, MPI3DHP_TEST_SEQUENCES.index(name)) if name in MPI3DHP_TEST_SEQUENCES else (1, name)


def mpi3dhp_summary(pred, gt, sequences, valid, eval_joints: Sequence[int] = MPI3DHP_EVAL_JOINTS_H36M,
                    pck_threshold: float = PCK_THRESHOLD,
                    auc_thresholds: Sequence[float] = AUC_THRESHOLDS) -> dict[str, dict[str, float]]:
    """MPI-INF-3DHP results per sequence, per scene and overall.

    ``pred``/``gt`` (N, J, 3) in mm (root-relative), ``sequences`` (N,) "TS1".."TS6", ``valid`` (N,)
    flags. Only valid frames and the 14 evaluation joints ``eval_joints`` (default: the H36M-order
    indices, :data:`~harness.skeleton.MPI3DHP_EVAL_JOINTS_H36M`; pass
    :data:`~harness.skeleton.MPI3DHP_EVAL_JOINTS` for 3DHP order) count.

    Returns ``{name: {"PCK": %, "AUC": %, "MPJPE": mm, "PCK17": %, "AUC17": %, "MPJPE17": mm,
    "frames": valid frames}}`` for each sequence present (in TS order), each scene with at least one
    sequence present (GS = TS1+TS2, noGS = TS3+TS4, Outdoor = TS5+TS6) and ``"All"``. ``PCK``/``AUC``/
    ``MPJPE`` are over the 14 ``eval_joints``; the ``17``-suffixed ones over every joint of the input
    (all 17, the root included: its root-relative error is 0), as D3DP's and P-STMO's Python
    evaluations compute them. Scenes and All are computed over their pooled valid frames, i.e.
    weighted by valid frames, as the official evaluation does. A sequence with no valid frame is left
    out.
    """
    err_all = joint_errors(pred, gt)
    err = err_all[:, list(eval_joints)]
    seqs = np.asarray(sequences).astype(str).reshape(-1)
    ok = np.asarray(valid).reshape(-1).astype(bool)
    if seqs.shape[0] != err.shape[0] or ok.shape[0] != err.shape[0]:
        raise ValueError(f"{err.shape[0]} frames but {seqs.shape[0]} sequence names and {ok.shape[0]} valid flags")
    if not ok.any():
        raise ValueError("no valid frames to evaluate")

    def summary(mask: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for suffix, e in (("", err[mask]), (MPI3DHP_ALL_JOINTS_SUFFIX, err_all[mask])):
            out.update({f"PCK{suffix}": _pck_of_errors(e, pck_threshold),
                        f"AUC{suffix}": _auc_of_errors(e, auc_thresholds), f"MPJPE{suffix}": float(e.mean())})
        out["frames"] = int(mask.sum())
        return out

    out: dict[str, dict[str, float]] = {}
    present = sorted({s for s in seqs[ok].tolist()}, key=_seq_key)
    for s in present:
        out[s] = summary(ok & (seqs == s))
    for scene, members in MPI3DHP_SCENES.items():
        mask = ok & np.isin(seqs, members)
        if mask.any():
            out[scene] = summary(mask)
    out["All"] = summary(ok)
    return out
