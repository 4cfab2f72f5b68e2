"""The H36M camera model: projection, distortion, normalisation, frames, cameras.h5 round trip."""

from __future__ import annotations

import numpy as np
import pytest

from harness.camera import (H36M_CAMERA_IDS, H36M_RESOLUTION, Camera, camera_to_world, image_coordinates,
                            load_cameras_h5, normalize_screen_coordinates, project_to_2d, save_cameras_h5,
                            world_to_camera)
from harness.errors import DataError

# Made-up calibration of the H36M cameras' magnitude (p in cameras.h5 order: p1, p2).
F = np.array([1145.0, 1143.5])
C = np.array([512.5, 515.25])
K = np.array([-0.2, 0.24, -0.003])
P = np.array([-0.0014, -0.001])


def _rotation(seed: int = 0) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _cam(R=None, T=None, p=P) -> Camera:
    return Camera(id="54138969", R=np.eye(3) if R is None else R, T=np.zeros(3) if T is None else T,
                  f=F, c=C, k=K, p=np.asarray(p, dtype=np.float64), res_w=1000, res_h=1002)


def _h36m_distortion_reference(x: float, y: float, z: float) -> tuple[float, float]:
    """Human3.6M's own radial-tangential model (its release code, 3d-pose-baseline's
    ``project_point_radial``), written per component in plain float64 with cameras.h5's p1, p2:
        x_d = x (1 + k1 r2 + k2 r4 + k3 r6 + p1 y + p2 x) + p2 r2
        y_d = y (1 + k1 r2 + k2 r4 + k3 r6 + p1 y + p2 x) + p1 r2
    (VideoPose3D stores the pair reversed as [p2, p1] and writes the same thing as
    ``XX * (radial + p.XX) + p * r2``.)"""
    u, v = x / z, y / z
    r2 = u * u + v * v
    k1, k2, k3 = (float(k) for k in K)
    p1, p2 = (float(p) for p in P)
    common = 1.0 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2 + p1 * v + p2 * u
    xd = u * common + p2 * r2
    yd = v * common + p1 * r2
    return float(F[0]) * xd + float(C[0]), float(F[1]) * yd + float(C[1])


def test_point_on_optical_axis_lands_on_principal_point():
    cam = _cam()
    for z in (0.5, 3.0, 40.0):
        np.testing.assert_array_equal(project_to_2d(np.array([0.0, 0.0, z]), cam), C)
    # Same through a rotated, translated camera: a world point straight ahead of it.
    R, T = _rotation(1), np.array([1.0, -4.0, 1.5])
    cam = _cam(R, T)
    ahead = camera_to_world(np.array([0.0, 0.0, 4.2]), cam)
    np.testing.assert_allclose(project_to_2d(world_to_camera(ahead, cam), cam), C, atol=1e-9)


def test_distortion_pinned_against_independent_model():
    cam = _cam()
    X = np.array([0.4, -0.3, 2.0])
    got = project_to_2d(X, cam)
    np.testing.assert_allclose(got, _h36m_distortion_reference(*X), rtol=0, atol=1e-9)
    np.testing.assert_allclose(got, [738.78274728, 345.60661194], rtol=0, atol=1e-6)  # pinned value
    # The tangential order matters: swapping p1 and p2 moves this point by ~0.06 px.
    swapped = project_to_2d(X, _cam(p=P[::-1]))
    assert np.abs(swapped - got).max() > 0.05
    # Many points, batched (..., 3) shapes.
    pts = np.random.default_rng(0).uniform([-1.5, -1.5, 2.0], [1.5, 1.5, 6.0], size=(4, 5, 3))
    ref = np.array([_h36m_distortion_reference(*p) for p in pts.reshape(-1, 3)]).reshape(4, 5, 2)
    np.testing.assert_allclose(project_to_2d(pts, cam), ref, rtol=0, atol=1e-9)


def test_normalised_coordinates_are_clamped():
    cam = _cam()
    far = project_to_2d(np.array([5.0, -7.0, 1.0]), cam)  # x/z, y/z beyond [-1, 1]
    edge = project_to_2d(np.array([1.0, -1.0, 1.0]), cam)
    np.testing.assert_allclose(far, edge)


def test_normalize_image_coordinates_round_trip():
    px = np.random.default_rng(0).uniform(0, 1000, size=(10, 17, 2))
    for w, h in ((1000, 1002), (1000, 1000), (1920, 1080)):
        n = normalize_screen_coordinates(px, w, h)
        np.testing.assert_allclose(image_coordinates(n, w, h), px, atol=1e-9)
    # The image's corners map to x = -1 .. 1 and y = -h/w .. h/w, the centre to 0.
    np.testing.assert_allclose(normalize_screen_coordinates(np.array([[0, 0], [1000, 1002], [500, 501]]), 1000, 1002),
                               [[-1, -1.002], [1, 1.002], [0, 0]])


def test_world_camera_round_trip():
    cam = _cam(_rotation(2), np.array([1.8, 4.9, 1.6]))
    X = np.random.default_rng(1).normal(size=(7, 17, 3))
    np.testing.assert_allclose(camera_to_world(world_to_camera(X, cam), cam), X, atol=1e-12)
    # R^T (X - T): the camera centre is the origin of the camera frame; distances are kept.
    np.testing.assert_allclose(world_to_camera(cam.T, cam), 0, atol=1e-12)
    d_world = np.linalg.norm(X[:, 1] - X[:, 0], axis=-1)
    d_cam = np.linalg.norm(np.diff(world_to_camera(X, cam)[:, :2], axis=1)[:, 0], axis=-1)
    np.testing.assert_allclose(d_cam, d_world, atol=1e-12)
    # Row-vector form: (X - T) @ R equals R^T (X - T) for column vectors.
    np.testing.assert_allclose(world_to_camera(X[0, 0], cam), cam.R.T @ (X[0, 0] - cam.T), atol=1e-12)


def test_h36m_resolutions_match_videopose3d():
    # VideoPose3D's h36m_dataset.py: cameras 1 and 4 are 1000 x 1002, cameras 2 and 3 are 1000 x 1000.
    assert H36M_CAMERA_IDS == ("54138969", "55011271", "58860488", "60457274")
    assert H36M_RESOLUTION == {"54138969": (1000, 1002), "55011271": (1000, 1000),
                               "58860488": (1000, 1000), "60457274": (1000, 1002)}


def test_cameras_h5_round_trip(tmp_path):
    cams = {"S1": [Camera(id=cid, R=_rotation(i), T=np.array([i, -i, 1.5]), f=F + i, c=C - i, k=K * (1 + i),
                          p=P * (1 + i), res_w=1000, res_h=H36M_RESOLUTION[cid][1])
                   for i, cid in enumerate(H36M_CAMERA_IDS)]}
    save_cameras_h5(tmp_path / "cameras.h5", cams)
    back = load_cameras_h5(tmp_path / "cameras.h5")
    assert list(back) == ["S1"] and [c.id for c in back["S1"]] == list(H36M_CAMERA_IDS)
    for a, b in zip(cams["S1"], back["S1"]):
        for name in ("R", "T", "f", "c", "k", "p"):
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), atol=1e-12, err_msg=name)
        assert (b.res_w, b.res_h) == (a.res_w, a.res_h)
    with pytest.raises(DataError, match="not found"):
        load_cameras_h5(tmp_path / "absent.h5")


def test_real_cameras(h36m_root):
    cams = load_cameras_h5(h36m_root / "cameras.h5")
    assert sorted(cams) == sorted(["S1", "S5", "S6", "S7", "S8", "S9", "S11"])
    for lst in cams.values():
        assert [c.id for c in lst] == list(H36M_CAMERA_IDS)
        assert [(c.res_w, c.res_h) for c in lst] == [(1000, 1002), (1000, 1000), (1000, 1000), (1000, 1002)]
        for c in lst:
            np.testing.assert_allclose(c.R @ c.R.T, np.eye(3), atol=1e-6)
            assert 1.0 < np.linalg.norm(c.T) < 10.0  # metres
            assert 1100 < c.f.min() < c.f.max() < 1200 and np.all(np.abs(c.c - 510) < 15)
