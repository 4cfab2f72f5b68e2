"""Synthetic cameras: a look-at camera builder, the four-camera H36M rig (re-calibrated per
subject) and the MPI-INF-3DHP test (one per sequence) and studio training cameras."""

from __future__ import annotations

import numpy as np

from harness.camera import H36M_CAMERA_IDS, H36M_RESOLUTION, Camera
from harness.data.mpi3dhp import MPI3DHP_TEST_RESOLUTION, MPI3DHP_TEST_SEQUENCES, MPI3DHP_TRAIN_RESOLUTION
from harness.data.synth._util import (_TAG_3DHP_CAM, _TAG_H36M_CAM, H36M_SUBJECTS, MPI3DHP_TEST_SCENE, _rng,
                                      _unit)


def look_at_camera(cid: str, centre, target, f, c, k, p, res) -> Camera:
    """A camera at ``centre`` (world, metres) looking at ``target``, image x right / y down."""
    C = np.asarray(centre, dtype=np.float64)
    z = _unit(np.asarray(target, dtype=np.float64) - C)
    x = _unit(np.cross(z, [0.0, 0.0, 1.0]))
    y = np.cross(z, x)
    R = np.stack([x, y, z], axis=1)  # columns: camera axes in world; world_to_camera = (X - T) @ R
    return Camera(id=cid, R=R, T=C, f=np.asarray(f, dtype=np.float64), c=np.asarray(c, dtype=np.float64),
                  k=np.asarray(k, dtype=np.float64), p=np.asarray(p, dtype=np.float64),
                  res_w=int(res[0]), res_h=int(res[1]))


def _h36m_rig(seed: int) -> list[dict]:
    """Four H36M-like cameras around the volume (shared by all subjects, before per-subject jitter)."""
    rig = []
    for i, cid in enumerate(H36M_CAMERA_IDS):
        r = _rng(seed, _TAG_H36M_CAM, 100 + i)
        ang = np.deg2rad(45.0 + 90.0 * i + r.uniform(-10, 10))
        dist = r.uniform(4.7, 5.4)
        w, h = H36M_RESOLUTION[cid]
        rig.append(dict(
            cid=cid,
            centre=np.array([dist * np.cos(ang), dist * np.sin(ang), r.uniform(1.45, 1.75)]),
            target=np.array([r.uniform(-0.2, 0.2), r.uniform(-0.2, 0.2), r.uniform(0.95, 1.1)]),
            f=np.array([1145.0, 1145.0]) + r.normal(0, 4.0, 2),
            c=np.array([512.0, 515.0]) + r.normal(0, 3.0, 2),
            k=np.array([r.uniform(-0.06, 0.02), r.uniform(-0.02, 0.03), r.uniform(-0.003, 0.003)]),
            p=r.uniform(-0.0015, 0.0015, 2),
            res=(w, h)))
    return rig


def h36m_cameras(seed: int) -> dict[str, list[Camera]]:
    """Per subject the four rig cameras, re-calibrated (a few cm / tenths of a degree apart)."""
    rig = _h36m_rig(seed)
    out = {}
    for si, s in enumerate(H36M_SUBJECTS):
        lst = []
        for i, c in enumerate(rig):
            r = _rng(seed, _TAG_H36M_CAM, si, i)
            lst.append(look_at_camera(c["cid"], c["centre"] + r.normal(0, 0.02, 3),
                                      c["target"] + r.normal(0, 0.02, 3), c["f"], c["c"], c["k"], c["p"], c["res"]))
        out[s] = lst
    return out


def _3dhp_test_camera(seed: int, seq: str) -> Camera:
    r = _rng(seed, _TAG_3DHP_CAM, MPI3DHP_TEST_SEQUENCES.index(seq))
    w, h = MPI3DHP_TEST_RESOLUTION[seq]
    ang = r.uniform(0, 2 * np.pi)
    if MPI3DHP_TEST_SCENE[seq] == "Outdoor":
        dist, f, c = r.uniform(5.0, 5.5), np.array([1683.0, 1672.0]), np.array([939.0, 560.0])
        height, tz = r.uniform(0.9, 1.2), 0.85
    else:
        dist, f, c = r.uniform(3.7, 4.2), np.array([1497.0, 1497.0]), np.array([1024.0, 1024.0])
        height, tz = r.uniform(1.0, 1.4), 0.8
    return look_at_camera(seq, [dist * np.cos(ang), dist * np.sin(ang), height], [0.0, 0.0, tz],
                          f + r.normal(0, 3, 2), c + r.normal(0, 4, 2), np.zeros(3), np.zeros(2), (w, h))


def _3dhp_train_camera(seed: int, cam_id: int) -> Camera:
    """The fixed studio rig: camera ``cam_id`` of 3DHP's set, 2048x2048."""
    r = _rng(seed, _TAG_3DHP_CAM, 100 + cam_id)
    ang = 2 * np.pi * cam_id / 9.0 + r.uniform(-0.15, 0.15)
    heights = {0: 1.0, 1: 0.5, 2: 1.4, 4: 2.3, 5: 0.9, 6: 1.7, 7: 1.2, 8: 2.0}
    dist = r.uniform(3.8, 4.3)
    return look_at_camera(str(cam_id), [dist * np.cos(ang), dist * np.sin(ang), heights.get(cam_id, 1.2)],
                          [0.0, 0.0, 0.85], [1500.0 + r.normal(0, 5), 1500.0 + r.normal(0, 5)],
                          [1024.0 + r.normal(0, 5), 1024.0 + r.normal(0, 5)], np.zeros(3), np.zeros(2),
                          MPI3DHP_TRAIN_RESOLUTION)
