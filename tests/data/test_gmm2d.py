"""Tests for harness.data.gmm2d: DiffPose's (frames, 17, kernels, 5) GMM 2D layout."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data.gmm2d import (
    GMM2D_FIELDS,
    DetectorErrorGMM,
    fit_detector_error_gmm,
    gmm_2d_from_detections,
    write_gmm_2d_npz,
)
from harness.errors import DataError
from harness.safeio import load_npz


def _model(J: int = 17) -> DetectorErrorGMM:
    w = np.tile([0.7, 0.2, 0.1], (J, 1))
    mu = np.zeros((J, 3, 2))
    mu[:, 0] = [1.0, -2.0]
    mu[:, 1] = [-4.0, 3.0]
    mu[:, 2] = [10.0, 10.0]
    sd = np.zeros((J, 3, 2))
    sd[:, 0] = [2.0, 3.0]
    sd[:, 1] = [5.0, 6.0]
    sd[:, 2] = [20.0, 25.0]
    return DetectorErrorGMM(w, mu, sd)


def test_layout_fields_and_pinned_values():
    assert GMM2D_FIELDS == ("weight", "mu_u", "mu_v", "sigma_u", "sigma_v")
    kp = np.zeros((4, 17, 2))
    kp[2, 5] = [500.0, 250.0]
    out = gmm_2d_from_detections(kp, _model(), 3)
    assert out.shape == (4, 17, 3, 5) and out.dtype == np.float64
    # weights are renormalised in float64 (1-ulp changes at most)
    np.testing.assert_allclose(out[2, 5, 0], [0.7, 501.0, 248.0, 2.0, 3.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(out[2, 5, 1], [0.2, 496.0, 253.0, 5.0, 6.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(out[0, 0, 2], [0.1, 10.0, 10.0, 20.0, 25.0], rtol=1e-15, atol=0)
    # sigma_scale to DiffPose's normalised units (1000 px wide): 2 / 1000
    out_n = gmm_2d_from_detections(kp, _model(), 3, sigma_scale=2 / 1000)
    np.testing.assert_allclose(out_n[2, 5, 0], [0.7, 501.0, 248.0, 0.004, 0.006])


def test_kernel_truncation_and_padding():
    kp = np.full((2, 17, 2), 100.0)
    two = gmm_2d_from_detections(kp, _model(), 2)
    np.testing.assert_allclose(two[0, 0, :, 0], [0.7 / 0.9, 0.2 / 0.9])
    five = gmm_2d_from_detections(kp, _model(), 5)
    assert five.shape == (2, 17, 5, 5)
    np.testing.assert_allclose(five[1, 3, 3], [0.0, 100.0, 100.0, 2.0, 3.0], rtol=1e-15, atol=0)  # pad: detection, heaviest sigma
    np.testing.assert_allclose(five[..., 0].sum(-1), 1.0, rtol=0, atol=1e-15)


def test_diffpose_generator_can_read_kernels():
    """Re-state PoseGenerator_gmm's kernel draw: np.random.choice(p=column 0), mu = 1:3, scale = 3:5."""
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 1000, size=(50, 17, 2))
    gmm = gmm_2d_from_detections(kp, _model(), 5, sigma_scale=2 / 1000)
    np.random.seed(0)
    for f in range(gmm.shape[0]):
        frame = gmm[f]
        kern = np.zeros((17, 5))
        for i in range(17):
            kern[i] = frame[i, np.random.choice(gmm.shape[2], 1, p=frame[i, :, 0]).item()]
        assert np.all(kern[:, 3:] > 0)


def test_fit_recovers_two_component_error():
    rng = np.random.default_rng(1)
    n, J = 4000, 3
    gt = rng.uniform(0, 1000, size=(n, J, 2))
    comp = rng.random((n, J)) < 0.75
    off = np.where(comp[..., None], rng.normal([0.0, 0.0], [3.0, 4.0], size=(n, J, 2)),
                   rng.normal([30.0, -20.0], [10.0, 8.0], size=(n, J, 2)))
    pred = gt - off  # so gt - pred = off
    m = fit_detector_error_gmm(pred, gt, kernels=2, seed=0)
    assert m.weights.shape == (J, 2)
    np.testing.assert_allclose(m.weights, np.tile([0.75, 0.25], (J, 1)), atol=0.03)
    np.testing.assert_allclose(m.means[:, 0], np.tile([0.0, 0.0], (J, 1)), atol=0.5)
    np.testing.assert_allclose(m.means[:, 1], np.tile([30.0, -20.0], (J, 1)), atol=1.5)
    np.testing.assert_allclose(m.sigmas[:, 0], np.tile([3.0, 4.0], (J, 1)), rtol=0.08)
    assert DetectorErrorGMM.from_dict(m.to_dict()).to_dict() == m.to_dict()
    again = fit_detector_error_gmm(pred, gt, kernels=2, seed=0)
    np.testing.assert_array_equal(again.means, m.means)


def test_write_npz_videopose3d_style(tmp_path):
    kp = np.zeros((6, 17, 2))
    arr = gmm_2d_from_detections(kp, _model(), 3)
    positions = {"S1": {"Walking 1": [arr, arr[:5]]}, "S5": {"Eating": [arr]}}
    meta = {"layout_name": "h36m", "num_joints": 17,
            "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    path = tmp_path / "data_2d_h36m_test_gmm.npz"
    write_gmm_2d_npz(path, positions, meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left behind
    back = load_npz(path)
    assert back["metadata"] == meta
    np.testing.assert_array_equal(back["positions_2d"]["S1"]["Walking 1"][1], arr[:5])
    # DiffPose's own read
    raw = np.load(path, allow_pickle=True)
    assert sorted(raw.files) == ["metadata", "positions_2d"]
    kps = raw["positions_2d"].item()
    assert kps["S5"]["Eating"][0].shape == (6, 17, 3, 5)


def test_write_npz_rejects_bad_weights(tmp_path):
    bad = gmm_2d_from_detections(np.zeros((2, 17, 2)), _model(), 3)
    bad[0, 0, 0, 0] = 0.5
    with pytest.raises(DataError, match=r"positions_2d\['S1'\]\['A'\]\[0\]: kernel weights"):
        write_gmm_2d_npz(tmp_path / "x.npz", {"S1": {"A": [bad]}}, {})
    with pytest.raises(DataError, match="expected \\(frames, joints, kernels, 5\\)"):
        write_gmm_2d_npz(tmp_path / "x.npz", {"S1": {"A": [np.zeros((2, 17, 5))]}}, {})
    assert not any(tmp_path.iterdir())
