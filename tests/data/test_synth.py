"""The synthetic benchmarks: exact file layouts, determinism, anatomy and the detector error model."""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from harness.camera import H36M_CAMERA_IDS, H36M_RESOLUTION, load_cameras_h5, project_to_2d, world_to_camera
from harness.data import synth as S
from harness.errors import ConfigError
from harness.safeio import load_npz
from harness.skeleton import H36M_ACTIONS, H36M_FROM_3DHP, H36M_PARENTS, MPI3DHP_ROOT, bone_lengths

SMALL = dict(frames=24, takes=1)          # quick files for determinism checks
SMALL_3DHP = dict(test_frames=60, train_subjects=2, train_seqs=2, train_cameras=2, train_frames=40)
WALKS = ("Walking", "WalkDog", "WalkTogether")


# ----------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("harness-cache")


@pytest.fixture(scope="module")
def h36m_default(cache_dir) -> Path:
    """The default-size H36M, made the way commands without --data-root make it."""
    old = os.environ.get("HARNESS_CACHE_DIR")
    os.environ["HARNESS_CACHE_DIR"] = str(cache_dir)
    try:
        t0 = time.perf_counter()
        root = S.ensure_synth("h36m", seed=0)
        print(f"synthetic h36m generated in {time.perf_counter() - t0:.2f} s")
    finally:
        if old is None:
            os.environ.pop("HARNESS_CACHE_DIR", None)
        else:
            os.environ["HARNESS_CACHE_DIR"] = old
    return root


@pytest.fixture(scope="module")
def h36m_data(h36m_default):
    pos3d = load_npz(h36m_default / "data_3d_h36m.npz")["positions_3d"]
    det = load_npz(h36m_default / f"data_2d_h36m_{S.DEFAULT_DETECTOR}.npz")
    cams = load_cameras_h5(h36m_default / "cameras.h5")
    return pos3d, det, cams


@pytest.fixture(scope="module")
def mpi_default(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("3dhp")
    S.synth_3dhp(out, seed=0)
    return out


def _knee_flexion(P: np.ndarray, hip: int, knee: int, ankle: int) -> np.ndarray:
    a, b = P[:, hip] - P[:, knee], P[:, ankle] - P[:, knee]
    cos = np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return 180.0 - np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


# ------------------------------------------------------------------------------------- H36M layout
def test_h36m_files_and_layout(h36m_default):
    names = sorted(p.name for p in h36m_default.iterdir())
    assert names == sorted(S.synth_files("h36m"))
    assert "data_2d_h36m_gt.npz" not in names  # the loader derives GT 2D from 3D + cameras

    # Read the way VideoPose3D does (plain np.load + .item()), which is what the layout must satisfy.
    with np.load(h36m_default / "data_3d_h36m.npz", allow_pickle=True) as f:
        assert sorted(f.files) == ["positions_3d"]
        pos3d = f["positions_3d"].item()
    with np.load(h36m_default / "data_2d_h36m_synth_det.npz", allow_pickle=True) as f:
        assert sorted(f.files) == ["metadata", "positions_2d"]
        pos2d, meta = f["positions_2d"].item(), f["metadata"].item()
    assert meta == {"layout_name": "h36m", "num_joints": 17,
                    "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    assert list(pos3d) == list(S.H36M_SUBJECTS) == ["S1", "S5", "S6", "S7", "S8", "S9", "S11"]
    assert list(pos2d) == list(pos3d)
    expected_actions = sorted([a for a in H36M_ACTIONS] + [f"{a} 1" for a in H36M_ACTIONS])
    for s in pos3d:
        assert sorted(pos3d[s]) == expected_actions
        assert sorted(pos2d[s]) == expected_actions
        for a, arr in pos3d[s].items():
            assert isinstance(arr, np.ndarray) and arr.dtype == np.float32
            assert arr.ndim == 3 and arr.shape[1:] == (17, 3)
            assert 0.9 * S.DEFAULT_H36M_FRAMES - 1 <= arr.shape[0] <= 1.1 * S.DEFAULT_H36M_FRAMES + 1
            assert np.isfinite(arr).all()
            views = pos2d[s][a]
            assert isinstance(views, list) and len(views) == 4
            for v in views:
                assert isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape == (arr.shape[0], 17, 2)
                assert np.isfinite(v).all()


def test_h36m_cameras(h36m_data):
    pos3d, _, cams = h36m_data
    assert sorted(cams) == sorted(S.H36M_SUBJECTS)
    for s, lst in cams.items():
        assert [c.id for c in lst] == list(H36M_CAMERA_IDS)
        for c in lst:
            assert (c.res_w, c.res_h) == H36M_RESOLUTION[c.id]
            assert np.allclose(c.R @ c.R.T, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(c.R), 1.0)
            assert np.all(np.abs(c.f - 1145.0) < 20) and np.all(np.abs(c.c - [512.0, 515.0]) < 15)
            assert np.all(np.abs(c.k) < 0.1) and np.all(np.abs(c.p) < 0.01)
            assert 4.0 < np.linalg.norm(c.T[:2]) < 6.0 and 1.2 < c.T[2] < 2.0
        # the same rig for every subject, recalibrated: a few centimetres apart
        assert np.linalg.norm(lst[0].T - cams["S1"][0].T) < 0.2
    # Everybody is in front of every camera, inside the image, and a good size.
    heights = []
    for s in pos3d:
        for a, P in pos3d[s].items():
            for c in cams[s]:
                X = world_to_camera(P, c)
                assert X[..., 2].min() > 2.0, (s, a, c.id)
                p = project_to_2d(X, c)
                inside = (p[..., 0] >= 0) & (p[..., 0] < c.res_w) & (p[..., 1] >= 0) & (p[..., 1] < c.res_h)
                assert inside.mean() > 0.999, (s, a, c.id)
                heights.append(np.ptp(p[..., 1], axis=1).mean())
    assert 250 < np.median(heights) < 500


def test_h36m_cameras_h5_layout(h36m_default):
    with h5py.File(h36m_default / "cameras.h5", "r") as f:
        assert sorted(f) == sorted(f"subject{s[1:]}" for s in S.H36M_SUBJECTS)
        for g in f.values():
            assert sorted(g) == ["camera1", "camera2", "camera3", "camera4"]
            cam = g["camera1"]
            assert {"R", "T", "f", "c", "k", "p", "Name", "res"} <= set(cam)
            assert cam["R"].shape == (3, 3) and cam["T"].shape == (3, 1) and cam["k"].shape == (3, 1)
            assert 3000 < np.linalg.norm(cam["T"][()]) < 7000  # millimetres


# ------------------------------------------------------------------------------------- determinism
def _arrays(obj, prefix=""):
    """Flatten nested dict/list data into {path: array}."""
    if isinstance(obj, dict):
        out = {}
        for k in obj:
            out.update(_arrays(obj[k], f"{prefix}/{k}"))
        return out
    if isinstance(obj, (list, tuple)):
        out = {}
        for i, v in enumerate(obj):
            out.update(_arrays(v, f"{prefix}[{i}]"))
        return out
    return {prefix: np.asarray(obj)}


def _content(paths):
    out = {}
    for p in paths:
        if p.name == S.MARKER_FILE:
            out[p.name] = np.frombuffer(p.read_bytes(), dtype=np.uint8)
        elif p.suffix == ".npz":
            out.update(_arrays(load_npz(p), p.name))
        else:
            def visit(name, obj, p=p):
                if isinstance(obj, h5py.Dataset):
                    out[f"{p.name}/{name}"] = obj[()]

            with h5py.File(p, "r") as f:
                f.visititems(visit)
    return out


def test_h36m_deterministic(tmp_path):
    a = _content(S.synth_h36m(tmp_path / "a", seed=3, **SMALL))
    b = _content(S.synth_h36m(tmp_path / "b", seed=3, **SMALL))
    c = _content(S.synth_h36m(tmp_path / "c", seed=4, **SMALL))
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k
    pose_keys = [k for k in a if k.startswith("data_3d_h36m.npz")]
    assert pose_keys and all(not np.array_equal(a[k], c[k]) for k in pose_keys if k in c)
    assert not np.array_equal(a["cameras.h5/subject1/camera1/T"], c["cameras.h5/subject1/camera1/T"])


def test_h36m_size_options(tmp_path):
    paths = S.synth_h36m(tmp_path, seed=0, frames=30, takes=3, detector_name="my_det")
    assert [p.name for p in paths] == ["data_3d_h36m.npz", "cameras.h5", "data_2d_h36m_my_det.npz", "SYNTHETIC"]
    pos3d = load_npz(paths[0])["positions_3d"]
    assert sorted(pos3d["S9"]) == sorted([a for a in H36M_ACTIONS] + [f"{a} {k}" for a in H36M_ACTIONS for k in (1, 2)])
    assert all(27 <= v.shape[0] <= 33 for s in pos3d.values() for v in s.values())
    # A sequence does not depend on the size options of the others.
    default_take = load_npz(S.synth_h36m(tmp_path / "t1", seed=0, frames=30, takes=1)[0])["positions_3d"]
    assert np.array_equal(default_take["S9"]["Walking"], pos3d["S9"]["Walking"])
    with pytest.raises(ConfigError):
        S.synth_h36m(tmp_path / "bad", frames=0)
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


# --------------------------------------------------------------------------------------- anatomy
def test_bone_lengths_constant_per_subject_and_distinct(h36m_data):
    pos3d, _, _ = h36m_data
    bodies = S.h36m_bodies(0)
    means = {}
    for s in pos3d:
        expected = bodies[s].bone_lengths()[1:]
        for a, P in pos3d[s].items():
            bl = bone_lengths(P.astype(np.float64))
            assert bl.std(axis=0).max() < 5e-4, (s, a)                 # float32 + 0.24 mm grid
            assert np.abs(bl - expected).max() < 1.5e-3, (s, a)
        means[s] = expected
        assert 1.60 <= bodies[s].height <= 1.90
        assert 0.38 < bodies[s].thigh < 0.52 and 0.37 < bodies[s].shin < 0.51
    subjects = list(means)
    for i, s in enumerate(subjects):
        for t in subjects[i + 1:]:
            assert np.abs(means[s] - means[t]).max() > 0.005, (s, t)


def test_joint_limits(h36m_data):
    pos3d, _, _ = h36m_data
    for s in pos3d:
        for a, P in pos3d[s].items():
            P = P.astype(np.float64)
            left = P[:, 4] - P[:, 1]
            left[:, 2] = 0
            left /= np.linalg.norm(left, axis=1, keepdims=True)
            fwd = np.cross(left, [0.0, 0.0, 1.0])
            for hip, knee, ankle in ((1, 2, 3), (4, 5, 6)):
                flex = _knee_flexion(P, hip, knee, ankle)
                assert flex.min() >= -1e-6 and flex.max() <= 150.5, (s, a)
                # bent knees point forward: never hyperextended backwards
                u = P[:, ankle] - P[:, hip]
                u /= np.linalg.norm(u, axis=1, keepdims=True)
                v = P[:, knee] - P[:, hip]
                perp = v - np.sum(v * u, 1, keepdims=True) * u
                bent = flex > 20
                assert np.all(np.sum(perp * fwd, 1)[bent] > 0), (s, a)
            for sh, el, wr in ((11, 12, 13), (14, 15, 16)):
                flex = _knee_flexion(P, sh, el, wr)
                assert flex.max() <= 150.5, (s, a)
            # head above the thorax above the pelvis-ish: upright-to-bent humans, never upside down
            assert np.all(P[:, 10, 2] > P[:, 0, 2]), (s, a)


def test_feet_on_ground_and_motion(h36m_data):
    pos3d, _, _ = h36m_data
    bodies = S.h36m_bodies(0)
    for s in pos3d:
        ah = bodies[s].ankle_h
        for a, P in pos3d[s].items():
            P = P.astype(np.float64)
            feet_z = P[:, [3, 6], 2]
            assert feet_z.min() > ah - 2e-3, (s, a)          # never below the floor
            action = a.split(" ")[0]
            if action in WALKS:
                # one foot always on the ground, the other lifted at times
                assert np.all(feet_z.min(axis=1) < ah + 0.03), (s, a)
                assert feet_z.max() > ah + 0.03, (s, a)
                speed = np.linalg.norm(np.diff(P[:, 0, :2], axis=0), axis=1) * S.DEFAULT_H36M_FPS
                assert 0.3 < speed.mean() < 1.8, (s, a)
            if action in ("Sitting", "Eating"):
                assert P[:, 0, 2].max() < 0.75, (s, a)         # root lowered
            else:
                assert P[:, 0, 2].max() > 0.75, (s, a)
            assert np.linalg.norm(P[:, 0, :2], axis=1).max() < 2.0  # inside the capture volume
    # Actions are different motions: mean wrist height relative to the thorax differs by action.
    wrist = {a: np.mean([np.mean(pos3d[s][a][:, [13, 16], 2] - pos3d[s][a][:, 8:9, 2]) for s in pos3d])
             for a in H36M_ACTIONS}
    assert wrist["Phoning"] > wrist["Walking"] + 0.1 and wrist["Photo"] > wrist["Walking"] + 0.2


# ------------------------------------------------------------------------------------ detections
# A real detector's error ||det - gt_2d|| (px) per (frame, joint): Stacked Hourglass on H36M's test
# subjects. The synthetic detector is calibrated to it (harness.data.synth.detector).
REAL_MEDIAN_PX, REAL_P95_PX, REAL_BEYOND_30PX = 9.8, 48.0, 0.127


def _error_figures(r: np.ndarray) -> tuple[float, float, float]:
    r = np.asarray(r, dtype=np.float64).ravel()
    return float(np.median(r)), float(np.percentile(r, 95)), float(np.mean(r > 30.0))


def _assert_like_real_detector(figures, pinned):
    med, p95, beyond = figures
    assert abs(med / REAL_MEDIAN_PX - 1) < 0.25, figures
    assert abs(p95 / REAL_P95_PX - 1) < 0.25, figures
    assert abs(beyond / REAL_BEYOND_30PX - 1) < 0.25, figures
    assert np.allclose(figures, pinned, rtol=0, atol=(0.01, 0.05, 0.0002)), figures


@pytest.fixture(scope="module")
def walking_gt():
    """A fixed synthetic input: 15 actions x 400 frames of subject S9's body through its 4 cameras
    (60 sequences, 24000 frames), GT 2D in px."""
    from harness.data.synth.motion import generate_motion

    body, cams = S.h36m_bodies(0)["S9"], S.h36m_cameras(0)["S9"]
    out = []
    for ai, action in enumerate(H36M_ACTIONS):
        P = generate_motion(action, np.random.default_rng([7, ai]), 400, S.DEFAULT_H36M_FPS, body)
        out.extend(project_to_2d(world_to_camera(P, c), c) for c in cams)
    return out


def test_detector_error_like_real_detector(walking_gt):
    """The default error model's median, p95 and share beyond 30 px are those of a real detector."""
    rng = np.random.default_rng(0)
    errs, outliers, swaps = [], [], []
    for gt in walking_gt:
        det, outlier, swapped = S.add_detector_noise(gt, rng)
        errs.append(np.linalg.norm(det - gt, axis=-1))
        outliers.append(outlier)
        swaps.append(swapped)
    _assert_like_real_detector(_error_figures(np.concatenate(errs)), (9.99, 48.96, 0.1313))
    # outliers and left/right swaps are still part of it, at their rates
    noise = S.DetectorNoise()
    assert abs(np.concatenate(outliers).mean() / noise.outlier_rate - 1) < 0.05
    assert abs(np.concatenate(swaps).mean() / noise.swap_rate - 1) < 0.1
    # the extremities are the worst joints, the torso the best
    r = np.concatenate(errs)
    med = np.median(r, axis=0)
    assert med[[13, 16]].min() > med[[3, 6]].max() > med[[0, 7, 8, 9, 10]].max()
    assert np.round(med[[0, 13]], 2).tolist() == [6.95, 15.27], med.round(2)


def test_detector_noise_model():
    noise = S.DetectorNoise()
    F = 60000
    gt = np.zeros((F, 17, 2))
    gt[:, :, 0] = np.arange(17) * 1000.0  # joints far apart: swaps are obvious
    det, outlier, swapped = S.add_detector_noise(gt, np.random.default_rng(0), noise)
    assert det.shape == gt.shape and outlier.shape == (F, 17) and swapped.shape == (F,)
    # swaps: the swapped frames are exactly those where some left joint sits at its right partner
    moved = np.abs(det[..., 0] - gt[..., 0]) > 500
    assert np.array_equal(moved.any(axis=1), swapped)
    assert 0.9 * noise.swap_rate < swapped.mean() < 1.1 * noise.swap_rate
    assert swapped.sum() == 1275
    # outliers
    assert abs(outlier.mean() - noise.outlier_rate) < 0.05 * noise.outlier_rate
    clean = ~swapped
    err = det - gt
    mag = np.linalg.norm(err, axis=-1)[clean][outlier[clean]]
    assert mag.min() >= noise.outlier_px[0] - 1e-9 and mag.max() <= noise.outlier_px[1] + 1e-9
    # per-joint spread: a Gaussian scale mixture, a hard_rate share of entries hard_scale times wider
    keep = clean[:, None] & ~outlier
    spread = np.sqrt(1 + noise.hard_rate * (noise.hard_scale**2 - 1))
    for j, sigma in enumerate(noise.sigma):
        e = err[:, j][keep[:, j]]
        assert abs(e.std() / (spread * sigma) - 1) < 0.03, j
        assert abs(e.mean()) < 0.05 * sigma
        # heavy-tailed: the mixture's kurtosis, 3 (1 - h + h s^4) / (1 - h + h s^2)^2 = 7.1, not 3
        z = e / e.std()
        kurt = 3 * (1 - noise.hard_rate + noise.hard_rate * noise.hard_scale**4) / spread**4
        assert abs(np.mean(z**4) / kurt - 1) < 0.1, (j, np.mean(z**4), kurt)
    # reproducible for a generator state
    det2, _, _ = S.add_detector_noise(gt, np.random.default_rng(0), noise)
    assert np.array_equal(det, det2)


def test_detector_noise_gaussian_core():
    """Without hard entries, outliers and swaps the error is the per-joint Gaussian, partly smooth."""
    import dataclasses

    noise = dataclasses.replace(S.DetectorNoise(), hard_rate=0.0, outlier_rate=0.0, swap_rate=0.0)
    F = 60000
    gt = np.zeros((F, 17, 2))
    det, outlier, swapped = S.add_detector_noise(gt, np.random.default_rng(0), noise)
    assert not outlier.any() and not swapped.any()
    err = det - gt
    for j, sigma in enumerate(noise.sigma):
        assert abs(err[:, j].std() / sigma - 1) < 0.03, j
    # temporally correlated part: lag-1 autocorrelation ~ temporal * exp(-1 / (4 s^2))
    e0 = err[:, 0, 0]
    r1 = np.corrcoef(e0[:-1], e0[1:])[0, 1]
    expect = noise.temporal * np.exp(-1.0 / (4 * noise.smooth_frames**2))
    assert abs(r1 - expect) < 0.05


def test_hard_episodes():
    """Hard entries come in per-joint runs of 1..hard_max_len frames covering about hard_rate of them."""
    from harness.data.synth.detector import _episodes

    noise = S.DetectorNoise()
    mask = _episodes(np.random.default_rng(0), (50000, 17), noise.hard_rate, noise.hard_max_len)
    assert mask.shape == (50000, 17) and mask.dtype == bool
    assert abs(mask.mean() / noise.hard_rate - 1) < 0.03, mask.mean()
    # run lengths: episodes merge when they meet, so runs are longer than one episode on average
    m = mask[:, 0].astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], m, [0]])))
    runs = edges[1::2] - edges[::2]
    assert runs.min() >= 1 and (1 + noise.hard_max_len) / 2 < runs.mean() < 2 * noise.hard_max_len
    assert not _episodes(np.random.default_rng(0), (100, 3), 0.0, 5).any()


def test_detections_in_files_match_model(h36m_data):
    pos3d, det, cams = h36m_data
    noise = S.DetectorNoise()
    errs = {"train": [], "test": []}
    for s in pos3d:
        for a, P in pos3d[s].items():
            for ci, c in enumerate(cams[s]):
                gt = project_to_2d(world_to_camera(P, c), c).astype(np.float32)  # what the loader derives
                errs["test" if s in ("S9", "S11") else "train"].append(
                    det["positions_2d"][s][a][ci].astype(np.float64) - gt)
    # the figures of the benchmark the harness trains and evaluates on: those of a real detector
    _assert_like_real_detector(_error_figures(np.linalg.norm(np.concatenate(errs["test"]), axis=-1)),
                               (9.89, 48.42, 0.1289))
    _assert_like_real_detector(_error_figures(np.linalg.norm(np.concatenate(errs["train"]), axis=-1)),
                               (9.93, 49.20, 0.1307))
    err = np.concatenate(errs["train"] + errs["test"])
    # robust per-joint spread (median absolute deviation), per axis: the per-joint sigmas times the
    # scale mixture's MAD (1.30 sigma), a little more with outliers and swaps
    mad = np.median(np.abs(err - np.median(err, axis=0)), axis=0) * 1.4826
    ratio = mad / np.asarray(noise.sigma)[:, None]
    assert np.all(np.abs(ratio / 1.35 - 1) < 0.02), ratio.round(3)
    # large errors, beyond 3.2 x 3 sigma (outliers, swaps, the hard entries' far tail), are rare but present
    sig = np.asarray(noise.sigma)[None, :]
    big = np.linalg.norm(err, axis=-1) > noise.hard_scale * 3 * np.sqrt(2) * sig + 5
    assert 0.004 < big.mean() < 0.006, big.mean()


# ------------------------------------------------------------------------------------------ 3DHP
def test_3dhp_test_layout(mpi_default):
    with np.load(mpi_default / "data_test_3dhp.npz", allow_pickle=True) as f:
        assert f.files == ["data"]
        data = f["data"].item()
    assert sorted(data) == ["TS1", "TS2", "TS3", "TS4", "TS5", "TS6"]
    univ = S.UNIVERSAL_BODY.bone_lengths()[1:] * 1000.0
    for seq, (w, h) in S.MPI3DHP_TEST_RESOLUTION.items():
        d = data[seq]
        assert sorted(d) == ["data_2d", "data_3d", "valid"]
        n = d["data_3d"].shape[0]
        assert 0.9 * S.DEFAULT_3DHP_TEST_FRAMES - 1 <= n <= 1.1 * S.DEFAULT_3DHP_TEST_FRAMES + 1
        assert d["data_2d"].dtype == np.float32 and d["data_2d"].shape == (n, 17, 2)
        assert d["data_3d"].dtype == np.float32 and d["data_3d"].shape == (n, 17, 3)
        assert d["valid"].shape == (n,) and set(np.unique(d["valid"])) <= {0.0, 1.0}
        assert 0.82 <= d["valid"].mean() <= 0.92
        p2 = d["data_2d"]
        assert p2[..., 0].min() >= 0 and p2[..., 0].max() < w and p2[..., 1].min() >= 0 and p2[..., 1].max() < h
        p3 = d["data_3d"].astype(np.float64)
        assert 1500 < p3[..., 2].min() and p3[..., 2].max() < 8000  # millimetres, camera frame
        # univ_annot3-like: one universal skeleton for every sequence
        h36 = p3[:, list(H36M_FROM_3DHP)]
        assert np.abs(bone_lengths(h36) - univ).max() < 0.05
        # the pelvis (3DHP joint 14) is the root: the univ scaling keeps it, so the 2D root is its projection
        cam = S._3dhp_test_camera(0, seq)
        root2d = project_to_2d(p3[:, MPI3DHP_ROOT] / 1000.0, cam)
        assert np.abs(root2d - p2[:, MPI3DHP_ROOT]).max() < 0.05
        # ... while the other joints come from the actor's own-size pose, like annot2
        assert np.abs(project_to_2d(p3 / 1000.0, cam) - p2).max() > 1.0
    assert S.MPI3DHP_TEST_RESOLUTION["TS5"] == (1920, 1080) and S.MPI3DHP_TEST_SCENE["TS3"] == "noGS"


def test_3dhp_train_layout(mpi_default):
    with np.load(mpi_default / "data_train_3dhp.npz", allow_pickle=True) as f:
        data = f["data"].item()
    expected = [f"S{s} Seq{q}" for s in range(1, S.DEFAULT_3DHP_TRAIN_SUBJECTS + 1)
                for q in range(1, S.DEFAULT_3DHP_TRAIN_SEQS + 1)]
    assert list(data) == expected
    univ = S.UNIVERSAL_BODY.bone_lengths()[1:] * 1000.0
    for name, value in data.items():
        assert isinstance(value, list) and len(value) == 2 and value[1] == S.DEFAULT_3DHP_TRAIN_FPS
        cams = value[0]
        assert isinstance(cams, dict) and len(cams) == S.DEFAULT_3DHP_TRAIN_CAMERAS
        n = None
        for key, d in cams.items():
            assert isinstance(key, str) and int(key) in S.MPI3DHP_CAMERA_SET
            assert sorted(d) == ["data_2d", "data_3d"]
            n = n or d["data_3d"].shape[0]
            assert d["data_2d"].shape == (n, 17, 2) and d["data_3d"].shape == (n, 17, 3)
            assert d["data_2d"].dtype == np.float32 and d["data_3d"].dtype == np.float32
            assert d["data_2d"].min() >= 0 and d["data_2d"].max() < 2048
            assert d["data_3d"][..., 2].min() > 1500
            assert np.abs(bone_lengths(d["data_3d"][:, list(H36M_FROM_3DHP)].astype(np.float64)) - univ).max() < 0.05


def test_3dhp_deterministic_and_options(tmp_path):
    a = _content(S.synth_3dhp(tmp_path / "a", seed=1, **SMALL_3DHP))
    b = _content(S.synth_3dhp(tmp_path / "b", seed=1, **SMALL_3DHP))
    c = _content(S.synth_3dhp(tmp_path / "c", seed=2, **SMALL_3DHP))
    assert a.keys() == b.keys()
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert not np.array_equal(a["data_test_3dhp.npz/data/TS1/data_3d"], c["data_test_3dhp.npz/data/TS1/data_3d"])
    assert len({k.split("/")[2].split("[")[0] for k in a if k.startswith("data_train")}) == 4
    only_test = S.synth_3dhp(tmp_path / "d", seed=1, train=False, test_frames=30)
    assert [p.name for p in only_test] == ["data_test_3dhp.npz", "SYNTHETIC"]
    with pytest.raises(ConfigError):
        S.synth_3dhp(tmp_path / "e", train_subjects=9)


# ----------------------------------------------------------------------------------------- cache
def test_ensure_synth(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    d = S.default_synth_dir("3dhp", 5)
    assert d == tmp_path / "synth" / f"3dhp-seed5-v{S.FORMAT_VERSION}"
    assert S.default_synth_dir("mpi3dhp", 5) == d
    root = S.ensure_synth("3dhp", seed=5)
    assert root == d and sorted(p.name for p in root.iterdir()) == sorted(S.synth_files("3dhp"))
    stamp = (root / "data_test_3dhp.npz").stat().st_mtime_ns
    assert S.ensure_synth("3dhp", seed=5) == root
    assert (root / "data_test_3dhp.npz").stat().st_mtime_ns == stamp  # not regenerated
    (root / "data_train_3dhp.npz").unlink()                            # damaged by hand: regenerated
    assert S.ensure_synth("3dhp", seed=5) == root
    assert sorted(p.name for p in root.iterdir()) == sorted(S.synth_files("3dhp"))
    # no temporary folders left: only the data and the lock file beside it
    assert sorted(p.name for p in (tmp_path / "synth").iterdir()) == sorted([d.name, f".{d.name}.lock"])
    with pytest.raises(ConfigError):
        S.ensure_synth("coco")
    with pytest.raises(ConfigError):
        S.ensure_synth("h36m", seed=-1)


_CONCURRENT = """
import hashlib, sys
from harness.data.synth import ensure_synth, synth_files
root = ensure_synth("3dhp", seed=0)
h = hashlib.sha256()
for n in sorted(synth_files("3dhp")):
    h.update((root / n).read_bytes())
print(root.stat().st_ino, h.hexdigest())
"""


def test_ensure_synth_concurrent(tmp_path):
    """Several processes started together on an empty cache all finish, with the same data: the first
    generation wins and a complete folder is never removed (it once was, under a worker reading it)."""
    import subprocess
    import sys

    n_proc, rounds = 4, 4
    for r in range(rounds):
        env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp_path / f"cache{r}")}
        procs = [subprocess.Popen([sys.executable, "-c", _CONCURRENT], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(n_proc)]
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err
        lines = {out.strip() for out, _ in outs}
        assert len(lines) == 1, lines  # one folder (same inode), same bytes, in every process
        synth = tmp_path / f"cache{r}" / "synth"
        assert sorted(p.name for p in synth.iterdir()) == sorted(
            [f"3dhp-seed0-v{S.FORMAT_VERSION}", f".3dhp-seed0-v{S.FORMAT_VERSION}.lock"])


# ---------------------------------------------------------------------------------------- loaders
def _loader(module: str, func: str):
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        pytest.skip(f"{module} is not available yet ({e}); the synthetic files are checked without it")
    if not hasattr(mod, func):
        pytest.skip(f"{module}.{func} does not exist yet")
    return getattr(mod, func)


@pytest.mark.parametrize("keypoints", [S.DEFAULT_DETECTOR, "gt"])
def test_h36m_loader_reads_synthetic(h36m_default, h36m_data, keypoints, tmp_path):
    load_h36m = _loader("harness.data.h36m", "load_h36m")
    sets = load_h36m(h36m_default, keypoints=keypoints, use_cache=False)
    pos3d = h36m_data[0]
    assert set(np.unique(np.concatenate([sets["train"].subject, sets["test"].subject]))) == set(S.H36M_SUBJECTS)
    assert set(np.unique(sets["test"].subject)) == {"S9", "S11"}
    assert set(np.unique(sets["test"].action)) == set(H36M_ACTIONS)
    assert len(np.unique(sets["test"].sequence)) == 30
    for split, subjects in (("train", ("S1", "S5", "S6", "S7", "S8")), ("test", ("S9", "S11"))):
        frames = sum(v.shape[0] for s in subjects for v in pos3d[s].values())
        assert len(sets[split]) == 4 * frames
        assert sets[split].pose_3d.shape[1:] == (17, 3) and np.all(sets[split].pose_3d[:, 0] == 0)
        assert np.abs(sets[split].pose_2d).max() < 1.05


def test_3dhp_loader_reads_synthetic(mpi_default):
    load_3dhp = _loader("harness.data.mpi3dhp", "load_3dhp")
    sets = load_3dhp(mpi_default)
    data = load_npz(mpi_default / "data_test_3dhp.npz")["data"]
    test = sets["test"]
    assert sorted(np.unique(test.sequence)) == list(S.MPI3DHP_TEST_SEQUENCES)
    assert len(test) == sum(d["data_3d"].shape[0] for d in data.values())
    assert int(test.valid.sum()) == int(sum(d["valid"].sum() for d in data.values()))
    assert set(np.unique(test.action)) == {"GS", "noGS", "Outdoor"}
    train = sets["train"]
    assert len(np.unique(train.sequence)) == S.DEFAULT_3DHP_TRAIN_SUBJECTS * S.DEFAULT_3DHP_TRAIN_SEQS
    assert set(np.unique(train.camera).tolist()) <= set(S.MPI3DHP_CAMERA_SET)
    assert np.all(test.pose_3d[:, 0] == 0) and np.abs(test.pose_2d).max() < 1.05
    # the model-facing pose is H36M-ordered, root-relative, metres: H36M bone lengths of the universal skeleton
    bl = bone_lengths(test.pose_3d.astype(np.float64), H36M_PARENTS)
    assert np.abs(bl - S.UNIVERSAL_BODY.bone_lengths()[1:]).max() < 1e-4
