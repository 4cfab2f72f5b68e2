"""Metrics pinned on tiny inputs; expected values computed here in float64 by other routes
(hand arithmetic, Horn's quaternion method, brute force over rotation angles)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics import (AUC_THRESHOLDS, action_name, auc, h36m_per_action, mpi3dhp_summary, mpjpe,
                             mpjpe_per_frame, p_mpjpe, p_mpjpe_per_frame, pck)
from harness.skeleton import H36M_ACTIONS, MPI3DHP_EVAL_JOINTS, MPI3DHP_EVAL_JOINTS_H36M


# ------------------------------------------------------------------------------------ MPJPE
def test_mpjpe_hand_computed():
    gt = np.array([[[1, 2, 3], [0, 0, 0]], [[5, 5, 5], [-1, 0, 1]]], dtype=np.float64)
    off = np.array([[[3, 4, 0], [0, 0, 2]], [[1, 2, 2], [0, 0, 0]]], dtype=np.float64)
    # joint errors: 5, 2 | 3, 0
    np.testing.assert_allclose(mpjpe_per_frame(gt + off, gt), [3.5, 1.5], atol=1e-12)
    assert mpjpe(gt + off, gt) == pytest.approx(2.5, abs=1e-12)
    assert isinstance(mpjpe(gt + off, gt), float)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 16, 3)))


# ----------------------------------------------------------------------------- Protocol #2
def _rotation(axis, angle):
    """Rodrigues' formula, column-vector convention."""
    k = np.asarray(axis, dtype=np.float64)
    k = k / np.linalg.norm(k)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def _horn_p_mpjpe(pred, gt):
    """Per-frame similarity alignment by Horn's (1987) closed form with unit quaternions: the
    rotation is the top eigenvector of the 4x4 matrix N built from M = sum_i y_i x_i^T; it is
    a proper rotation by construction. Scale = sum <x_i, R y_i> / sum |y_i|^2."""
    out = []
    for p, g in zip(pred, gt):
        y = p - p.mean(axis=0)
        x = g - g.mean(axis=0)
        m = y.T @ x
        (sxx, sxy, sxz), (syx, syy, syz), (szx, szy, szz) = m
        n = np.array([
            [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
            [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
            [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
            [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz]])
        w, v = np.linalg.eigh(n)
        q0, q1, q2, q3 = v[:, np.argmax(w)]
        r = np.array([
            [q0**2 + q1**2 - q2**2 - q3**2, 2 * (q1 * q2 - q0 * q3), 2 * (q1 * q3 + q0 * q2)],
            [2 * (q2 * q1 + q0 * q3), q0**2 - q1**2 + q2**2 - q3**2, 2 * (q2 * q3 - q0 * q1)],
            [2 * (q3 * q1 - q0 * q2), 2 * (q3 * q2 + q0 * q1), q0**2 - q1**2 - q2**2 + q3**2]])
        ry = y @ r.T
        s = np.sum(x * ry) / np.sum(y * y)
        aligned = s * ry + g.mean(axis=0)
        out.append(np.linalg.norm(aligned - g, axis=-1).mean())
    return np.array(out)


def test_p_mpjpe_undoes_a_similarity_transform():
    rng = np.random.default_rng(1)
    gt = rng.normal(0, 200, (4, 17, 3))
    pred = np.empty_like(gt)
    for i, (axis, angle, scale) in enumerate([((1, 2, 3), 0.7, 1.7), ((0, 0, 1), np.pi, 0.3),
                                              ((1, -1, 0), 2.5, 1.0), ((0.2, 1, -0.4), -1.1, 4.0)]):
        r = _rotation(axis, angle)
        assert np.linalg.det(r) == pytest.approx(1.0)
        pred[i] = scale * gt[i] @ r.T + rng.normal(0, 500, 3)
    assert mpjpe(pred, gt) > 100
    np.testing.assert_allclose(p_mpjpe_per_frame(pred, gt), 0.0, atol=1e-9)


def test_p_mpjpe_matches_horn_quaternion_method():
    rng = np.random.default_rng(2)
    gt = rng.normal(0, 200, (6, 17, 3))
    pred = 0.8 * gt @ _rotation((1, 1, 0), 0.4).T + rng.normal(0, 40, gt.shape) + 100
    # A mirrored frame: the best *proper* rotation cannot undo a reflection of a non-planar pose.
    pred[5] = gt[5] * np.array([-1.0, 1.0, 1.0])
    expected = _horn_p_mpjpe(pred, gt)
    got = p_mpjpe_per_frame(pred, gt)
    assert got.shape == (6,)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    assert p_mpjpe(pred, gt) == pytest.approx(expected.mean(), rel=1e-9)
    assert got[5] > 50  # no reflection allowed (with one, the error would be 0)


def _brute_force_planar(pred, gt):
    """Three coplanar joints (z = 0) in both poses. Every rotation that keeps the plane is either
    R_z(theta) or R_z(theta) R_x(pi) (which mirrors y inside the plane); search theta on a grid,
    with the optimal scale max(0, <x, Ry>/|y|^2) for each, then refine around the best."""
    y = pred - pred.mean(axis=0)
    x = gt - gt.mean(axis=0)

    def best(thetas):
        results = []
        for flip in (1.0, -1.0):
            c, s = np.cos(thetas), np.sin(thetas)
            yy = y[:, 1] * flip
            rx = c[:, None] * y[None, :, 0] - s[:, None] * yy[None, :]
            ry = s[:, None] * y[None, :, 0] + c[:, None] * yy[None, :]
            rz = y[None, :, 2] * flip + 0 * rx
            dot = (rx * x[:, 0] + ry * x[:, 1] + rz * x[:, 2]).sum(axis=1)
            scale = np.maximum(0.0, dot / np.sum(y * y))
            sse = ((scale[:, None] * rx - x[:, 0]) ** 2 + (scale[:, None] * ry - x[:, 1]) ** 2
                   + (scale[:, None] * rz - x[:, 2]) ** 2).sum(axis=1)
            i = int(np.argmin(sse))
            err = np.sqrt((scale[i] * rx[i] - x[:, 0]) ** 2 + (scale[i] * ry[i] - x[:, 1]) ** 2
                          + (scale[i] * rz[i] - x[:, 2]) ** 2).mean()
            results.append((sse[i], thetas[i], flip, err))
        return min(results)

    _, theta, _, _ = best(np.linspace(-np.pi, np.pi, 400_001))
    _, _, flip, err = best(np.linspace(theta - 1e-4, theta + 1e-4, 200_001))
    return err, flip


@pytest.mark.parametrize("pred,want_flip", [
    # generic: in-plane rotation, scale and offsets
    ([[0.3, -0.2, 0.0], [1.4, 1.1, 0.0], [-1.8, 0.9, 0.0]], 1.0),
    # an in-plane mirror image of gt (y -> -y) plus noise: reachable by a proper 3D rotation
    ([[0.1, 0.05, 0.0], [1.0, -0.1, 0.0], [0.05, -2.1, 0.0]], -1.0),
])
def test_p_mpjpe_three_joints_brute_force(pred, want_flip):
    gt = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    pred = np.array(pred)
    expected, flip = _brute_force_planar(pred, gt)
    assert flip == want_flip
    assert p_mpjpe(pred[None], gt[None]) == pytest.approx(expected, abs=1e-6)
    assert p_mpjpe(pred[None], gt[None]) == pytest.approx(_horn_p_mpjpe(pred[None], gt[None])[0], abs=1e-9)


def test_p_mpjpe_degenerate_prediction_is_finite():
    rng = np.random.default_rng(3)
    gt = rng.normal(0, 100, (2, 17, 3))
    pred = np.zeros_like(gt)  # all joints at one point: best scale is 0, aligned to gt's centroid
    expected = np.linalg.norm(gt - gt.mean(axis=1, keepdims=True), axis=-1).mean(axis=1)
    np.testing.assert_allclose(p_mpjpe_per_frame(pred, gt), expected, rtol=1e-12)


# ---------------------------------------------------------------------------------- PCK / AUC
def _with_errors(errors):
    """One frame, one joint per error, error along x; integer gt so pred - gt is exact."""
    gt = np.arange(len(errors) * 3, dtype=np.float64).reshape(1, len(errors), 3)
    pred = gt.copy()
    pred[0, :, 0] += np.asarray(errors, dtype=np.float64)
    return pred, gt


def test_pck_is_strictly_below_threshold():
    # mpii_compute_3d_pck.m: sum(error < t); an error of exactly 150 mm is not correct at PCK@150.
    pred, gt = _with_errors([0.0, 5.0, 149.5, 150.0, 200.0])
    assert pck(pred, gt) == pytest.approx(100 * 3 / 5)
    assert pck(pred, gt, threshold=150.5) == pytest.approx(100 * 4 / 5)
    assert pck(pred, gt, threshold=5.0) == pytest.approx(100 * 1 / 5)  # only the 0 error
    pred, gt = _with_errors([150.0])
    assert pck(pred, gt) == 0.0


def test_auc_over_31_thresholds():
    assert AUC_THRESHOLDS == tuple(float(t) for t in range(0, 151, 5)) and len(AUC_THRESHOLDS) == 31
    pred, gt = _with_errors([0.0, 5.0, 149.5, 150.0, 200.0])
    # thresholds t with error < t: 0 -> 5..150 (30); 5 -> 10..150 (29); 149.5 -> 150 (1); 150, 200 -> none
    assert auc(pred, gt) == pytest.approx(100 * (30 + 29 + 1) / (31 * 5), abs=1e-12)
    pred, gt = _with_errors([0.0])
    assert auc(pred, gt) == pytest.approx(100 * 30 / 31)  # PCK at threshold 0 is always 0


# ------------------------------------------------------------------------------ H36M actions
@pytest.mark.parametrize("raw,name", [("Walking 1", "Walking"), ("Walking", "Walking"), ("Walking_2", "Walking"), ("WalkDog 1", "WalkDog"),
                                      ("SittingDown 2", "SittingDown"), ("Photo 1", "Photo"),
                                      ("TakingPhoto", "Photo"), ("WalkTogether 1", "WalkTogether")])
def test_action_name(raw, name):
    assert action_name(raw) == name


def test_h36m_per_action_averages_action_means():
    errors = [10.0, 20.0, 30.0, 100.0, 100.0, 100.0, 100.0]
    actions = ["Walking 1", "Walking 1", "Walking", "Eating", "Eating 2", "Eating 2", "Eating"]
    out = h36m_per_action(np.array(errors), np.array(actions))
    assert list(out) == ["Eating", "Walking", "Avg"]  # H36M_ACTIONS order, then Avg
    assert out["Walking"] == pytest.approx(20.0)  # "Walking 1" and "Walking" pooled: (10+20+30)/3
    assert out["Eating"] == pytest.approx(100.0)
    assert out["Avg"] == pytest.approx(60.0)  # mean of action means ...
    assert np.mean(errors) == pytest.approx(460 / 7)  # ... not the mean over frames


def test_h36m_per_action_full_order_and_unknown_last():
    actions = list(reversed(H36M_ACTIONS)) + ["Custom 1"]
    errors = np.arange(len(actions), dtype=np.float64)
    out = h36m_per_action(errors, actions)
    assert list(out) == list(H36M_ACTIONS) + ["Custom", "Avg"]
    assert out["Avg"] == pytest.approx(errors.mean())


# ------------------------------------------------------------------------------ 3DHP summary
def _frames(errs, joints=17, bad_joints=()):
    """Frames (N, J, 3) whose every joint has error ``e`` (mm) along x; ``bad_joints`` get 10 m."""
    gt = np.zeros((len(errs), joints, 3))
    pred = gt.copy()
    pred[..., 0] = np.asarray(errs, dtype=np.float64)[:, None]
    pred[:, list(bad_joints), 0] = 10_000.0
    return pred, gt


def test_mpi3dhp_summary_weights_scenes_by_valid_frames():
    non_eval = [j for j in range(17) if j not in MPI3DHP_EVAL_JOINTS_H36M]
    assert non_eval == [0, 7, 9]
    errs = [10.0, 10.0, 1000.0] + [30.0] * 6 + [200.0, 0.0]
    seqs = ["TS1"] * 3 + ["TS2"] * 6 + ["TS5"] * 2
    valid = [1, 1, 0] + [1] * 6 + [1, 0]
    pred, gt = _frames(errs, bad_joints=non_eval)  # huge errors on non-evaluation joints: ignored
    out = mpi3dhp_summary(pred, gt, np.array(seqs), np.array(valid, dtype=np.float32))
    assert list(out) == ["TS1", "TS2", "TS5", "GS", "Outdoor", "All"]  # no noGS: TS3/TS4 absent
    # over all 17 joints the three 10 m joints count: 14 of 17 correct at best
    assert out["TS1"] == pytest.approx({"PCK": 100.0, "AUC": 100 * 28 / 31, "MPJPE": 10.0, "PCK17": 100 * 14 / 17,
                                        "AUC17": 100 * 28 * 14 / (31 * 17), "MPJPE17": (14 * 10 + 3 * 10_000) / 17,
                                        "frames": 2})
    assert out["TS2"] == pytest.approx({"PCK": 100.0, "AUC": 100 * 24 / 31, "MPJPE": 30.0, "PCK17": 100 * 14 / 17,
                                        "AUC17": 100 * 24 * 14 / (31 * 17), "MPJPE17": (14 * 30 + 3 * 10_000) / 17,
                                        "frames": 6})
    assert out["TS5"] == pytest.approx({"PCK": 0.0, "AUC": 0.0, "MPJPE": 200.0, "PCK17": 0.0, "AUC17": 0.0,
                                        "MPJPE17": (14 * 200 + 3 * 10_000) / 17, "frames": 1})
    # GS pools its 8 valid frames: 25 mm, not the mean of the sequence means (20 mm).
    assert out["GS"]["MPJPE"] == pytest.approx((2 * 10 + 6 * 30) / 8)
    assert out["GS"]["AUC"] == pytest.approx(100 * (2 * 28 + 6 * 24) / (8 * 31))
    assert out["GS"]["frames"] == 8
    assert out["Outdoor"] == out["TS5"]
    assert out["All"]["MPJPE"] == pytest.approx((2 * 10 + 6 * 30 + 200) / 9)
    assert out["All"]["PCK"] == pytest.approx(100 * 8 / 9)
    assert out["All"]["frames"] == 9


def test_mpi3dhp_summary_native_order_and_invalid_sequence():
    non_eval = [j for j in range(17) if j not in MPI3DHP_EVAL_JOINTS]
    assert non_eval == [14, 15, 16]
    pred, gt = _frames([40.0, 40.0, 5.0], bad_joints=non_eval)
    out = mpi3dhp_summary(pred, gt, ["TS4", "TS4", "TS3"], [True, True, False], eval_joints=MPI3DHP_EVAL_JOINTS)
    assert list(out) == ["TS4", "noGS", "All"]  # TS3 has no valid frame
    assert out["All"]["MPJPE"] == pytest.approx(40.0)
    assert out["All"]["AUC"] == pytest.approx(100 * 22 / 31)  # 40 < t for t = 45..150
    with pytest.raises(ValueError):
        mpi3dhp_summary(pred, gt, ["TS4"] * 3, [False] * 3)


def test_mpi3dhp_summary_14_and_17_joints_hand_computed():
    """One TS1 and one TS5 frame in H36M order (the non-evaluation joints are Hip 0, Spine 7, Neck/Nose 9).
    TS1: the 14 evaluation joints 100 mm off, Hip 0 (the root), Spine 200, Neck/Nose 20.
    TS5: every joint 160 mm off but the root (0)."""
    gt = np.zeros((2, 17, 3))
    pred = gt.copy()
    pred[0, :, 0] = 100.0
    pred[0, [0, 7, 9], 0] = [0.0, 200.0, 20.0]
    pred[1, :, 0] = 160.0
    pred[1, 0, 0] = 0.0
    out = mpi3dhp_summary(pred, gt, ["TS1", "TS5"], [1, 1])
    # 14 joints. TS1: 100 < 150, and 100 < t for t = 105..150 (10 of the 31 thresholds). TS5: 160 never.
    assert out["TS1"] == pytest.approx({"PCK": 100.0, "AUC": 100 * 10 / 31, "MPJPE": 100.0,
                                        # 17 joints: 16 below 150 (all but Spine's 200); thresholds passed:
                                        # root 30 (t = 5..150), Neck/Nose 26 (t = 25..150), 14 x 10, Spine 0
                                        "PCK17": 100 * 16 / 17, "AUC17": 100 * (30 + 26 + 140) / (31 * 17),
                                        "MPJPE17": (14 * 100 + 0 + 200 + 20) / 17, "frames": 1})
    assert out["TS5"] == pytest.approx({"PCK": 0.0, "AUC": 0.0, "MPJPE": 160.0,
                                        "PCK17": 100 / 17, "AUC17": 100 * 30 / (31 * 17), "MPJPE17": 16 * 160 / 17,
                                        "frames": 1})
    assert out["GS"] == out["TS1"] and out["Outdoor"] == out["TS5"]
    assert out["All"] == pytest.approx({"PCK": 50.0, "AUC": 100 * 10 / 62, "MPJPE": 130.0,
                                        "PCK17": 50.0, "AUC17": 100 * (196 + 30) / (62 * 17),
                                        "MPJPE17": (1620 + 16 * 160) / 34, "frames": 2})
    # pinned as numbers too
    assert out["All"]["AUC17"] == pytest.approx(21.442125237191653, rel=1e-12)
    assert out["All"]["MPJPE17"] == pytest.approx(122.94117647058823, rel=1e-12)
