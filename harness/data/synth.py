"""Synthetic Human3.6M and MPI-INF-3DHP benchmarks: the embedded default that lets every command
run with no data (and that CI trains on).

Files are written in exactly the layouts of the real preprocessed files, so the ordinary loaders
(``harness.data.h36m``, ``harness.data.mpi3dhp``) read them unchanged:

H36M (VideoPose3D)
- ``data_3d_h36m.npz``: ``positions_3d`` = {subject: {action: float32 (F, 17, 3)}}, metres, world
  frame (z up, floor at z = 0), H36M 17-joint order.
- ``cameras.h5``: ``subject{N}/camera{1..4}`` groups (:func:`harness.camera.save_cameras_h5`).
- ``data_2d_h36m_<detector>.npz``: ``positions_2d`` = {subject: {action: [4 x float32 (F, 17, 2)]}}
  in pixels (cameras.h5 order) and ``metadata`` = {'layout_name': 'h36m', 'num_joints': 17,
  'keypoints_symmetry': [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}.
  No ground-truth 2D file is written: the loader derives it from the 3D and the cameras.
  Actions are ``H36M_ACTIONS`` names, the second take suffixed " 1" ("Walking", "Walking 1").

MPI-INF-3DHP (P-STMO / D3DP preprocessing)
- ``data_test_3dhp.npz``: ``data`` = {"TS1".."TS6": {'data_2d': float32 (N, 17, 2) px,
  'data_3d': float32 (N, 17, 3) mm camera frame (univ_annot3-like), 'valid': float64 (N,) 0/1}},
  3DHP joint order (pelvis = 14). TS1-TS4 2048x2048 studio (TS1, TS2 green screen; TS3, TS4 not),
  TS5, TS6 1920x1080 outdoor.
- ``data_train_3dhp.npz``: ``data`` = {"S1 Seq1": [{"<camera id>": {'data_2d', 'data_3d'}}, fps]},
  camera ids as strings ("0", "8", ... from 3DHP's camera set 0 1 2 4 5 6 7 8), 2048x2048.
  The 3D is scaled to one universal skeleton (like univ_annot3); the 2D is the projection of the
  subject's own-sized pose (like annot2), so the two differ slightly, as in the real data.

Content: a 17-joint kinematic skeleton with per-subject bone lengths, driven by one motion
program per H36M action (gait with planted feet, sitting, gestures, hand-to-head/mouth, bending,
...), spine/neck/pelvis angles clipped to joint limits, knees and elbows solved by two-bone IK
whose reach is clamped so flexion stays in [0, 150] degrees. Detections add per-joint Gaussian
error (part of it temporally smooth), outliers and left/right limb swaps (:class:`DetectorNoise`).

Everything is deterministic for a seed; every sequence, subject and camera has its own random
stream keyed by its indices, so changing a size option does not change the other sequences.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.camera import (H36M_CAMERA_IDS, H36M_RESOLUTION, Camera, project_to_2d, save_cameras_h5,
                            world_to_camera)
from harness.data.base import H36M_TEST_SUBJECTS, H36M_TRAIN_SUBJECTS
from harness.data.h36m import H36M_3D_FILE, H36M_CAMERAS_FILE, h36m_2d_filename
from harness.data.mpi3dhp import (MPI3DHP_TEST_RESOLUTION, MPI3DHP_TEST_SEQUENCES, MPI3DHP_TRAIN_RESOLUTION,
                                  SCENE_OF_SEQUENCE, TEST_FILE, TRAIN_FILE)
from harness.errors import ConfigError
from harness.safeio import atomic_path, save_npz
from harness.skeleton import H36M_ACTIONS, H36M_FROM_3DHP, H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT, H36M_PARENTS

FORMAT_VERSION = 3

H36M_SUBJECTS = H36M_TRAIN_SUBJECTS + H36M_TEST_SUBJECTS  # S1 S5 S6 S7 S8 S9 S11
DEFAULT_H36M_FRAMES = 120
DEFAULT_H36M_FPS = 50
DEFAULT_DETECTOR = "synth_det"
H36M_METADATA = {"layout_name": "h36m", "num_joints": 17,
                 "keypoints_symmetry": [list(H36M_JOINTS_LEFT), list(H36M_JOINTS_RIGHT)]}

MPI3DHP_TEST_SCENE = SCENE_OF_SEQUENCE  # GS: TS1 TS2, noGS: TS3 TS4, Outdoor: TS5 TS6
MPI3DHP_TEST_FPS = {"TS1": 25, "TS2": 25, "TS3": 25, "TS4": 25, "TS5": 50, "TS6": 50}
MPI3DHP_CAMERA_SET = (0, 1, 2, 4, 5, 6, 7, 8)  # the cameras P-STMO's preprocessing keeps
DEFAULT_3DHP_TEST_FRAMES = 240
DEFAULT_3DHP_TRAIN_SUBJECTS = 8
DEFAULT_3DHP_TRAIN_SEQS = 2
DEFAULT_3DHP_TRAIN_CAMERAS = 4
DEFAULT_3DHP_TRAIN_FRAMES = 300
DEFAULT_3DHP_TRAIN_FPS = 25

# Which motion program drives each synthetic 3DHP sequence.
_3DHP_TEST_PROGRAM = {"TS1": "Walking", "TS2": "Posing", "TS3": "SittingDown", "TS4": "Purchases",
                      "TS5": "Walking", "TS6": "Greeting"}
_3DHP_TRAIN_PROGRAMS = ("Walking", "Directions", "Sitting", "Purchases", "Posing", "Waiting",
                        "Greeting", "Photo", "Discussion", "SittingDown", "Smoking", "Phoning",
                        "Eating", "WalkTogether", "WalkDog")

# Random-stream tags (first words of every SeedSequence after the seed).
_TAG_H36M_BODY, _TAG_H36M_CAM, _TAG_H36M_SEQ, _TAG_H36M_DET = 1, 2, 3, 4
_TAG_3DHP_BODY, _TAG_3DHP_TEST, _TAG_3DHP_TRAIN, _TAG_3DHP_CAM = 11, 12, 13, 14

BENCHMARKS = ("h36m", "3dhp")
_BENCHMARK_ALIASES = {"h36m": "h36m", "human36m": "h36m", "3dhp": "3dhp", "mpi3dhp": "3dhp",
                      "mpi_inf_3dhp": "3dhp", "mpi-inf-3dhp": "3dhp"}


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"synthetic data seed {seed!r}: expected an integer >= 0")
    return int(seed)


# Stored values are rounded to a binary grid (exact in float32) so the files compress well:
# 3D to 2^-12 m (0.24 mm), detections to 1/8 px; both far below the errors being measured.
_Q3D_M = 2.0**-12
_Q2D_PX = 2.0**-3


def _quantize(a: np.ndarray, step: float) -> np.ndarray:
    return (np.round(np.asarray(a, dtype=np.float64) / step) * step).astype(np.float32)


# ================================================================================================
# Skeleton
# ================================================================================================

@dataclass(frozen=True)
class Body:
    """Bone lengths of one person, metres."""
    hip_w: float = 0.130      # pelvis centre -> hip joint (lateral)
    thigh: float = 0.450
    shin: float = 0.440
    ankle_h: float = 0.080    # ankle joint above the floor when standing
    spine: float = 0.230      # pelvis -> Spine
    chest: float = 0.250      # Spine -> Thorax
    neck: float = 0.115       # Thorax -> Neck/Nose
    head: float = 0.115       # Neck/Nose -> Head
    shoulder: float = 0.150   # Thorax -> shoulder
    upper_arm: float = 0.280
    forearm: float = 0.250

    @property
    def leg(self) -> float:
        return self.thigh + self.shin

    @property
    def arm(self) -> float:
        return self.upper_arm + self.forearm

    @property
    def height(self) -> float:
        """Standing height (floor to top of head), straight posture."""
        return (self.ankle_h + self.leg + self.spine + self.chest + self.neck * _NECK_DIR[2]
                + self.head * _HEAD_DIR[2] + 0.5 * self.head)

    def bone_lengths(self) -> np.ndarray:
        """(17,) length of the bone from each joint's parent to the joint (0 for the root)."""
        return np.array([0.0, self.hip_w, self.thigh, self.shin, self.hip_w, self.thigh, self.shin,
                         self.spine, self.chest, self.neck, self.head, self.shoulder, self.upper_arm,
                         self.forearm, self.shoulder, self.upper_arm, self.forearm])


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


_NECK_DIR = _unit([0.25, 0.0, 0.97])    # the H36M Neck/Nose joint sits forward of the thorax
_HEAD_DIR = _unit([-0.10, 0.0, 1.0])
_SHOULDER_DIR = _unit([0.0, 1.0, -0.15])  # left; mirrored for the right
TEMPLATE_BODY = Body()
UNIVERSAL_BODY = Body()  # the 3DHP "universal skeleton" all 3DHP 3D is scaled to


def make_body(rng: np.random.Generator, height: float) -> Body:
    """A person of ``height`` metres with individual proportions."""
    t = TEMPLATE_BODY
    s = height / t.height
    leg, ratio = rng.normal(1.0, 0.025), rng.normal(1.0, 0.02)
    torso, arm, width, head = (rng.normal(1.0, 0.03), rng.normal(1.0, 0.03), rng.normal(1.0, 0.06),
                               rng.normal(1.0, 0.03))
    b = Body(hip_w=t.hip_w * s * width, thigh=t.thigh * s * leg * ratio, shin=t.shin * s * leg / ratio,
             ankle_h=t.ankle_h * s, spine=t.spine * s * torso, chest=t.chest * s * torso,
             neck=t.neck * s * head, head=t.head * s * head, shoulder=t.shoulder * s * width,
             upper_arm=t.upper_arm * s * arm * ratio, forearm=t.forearm * s * arm / ratio)
    k = height / b.height  # keep the drawn height exactly
    return Body(**{f: getattr(b, f) * k for f in b.__dataclass_fields__})


def _bodies(seed: int, tag: int, n: int) -> list[Body]:
    """``n`` people with well-separated heights in [1.60, 1.90] m."""
    order = _rng(seed, tag, 999).permutation(n)
    out = []
    for i in range(n):
        r = _rng(seed, tag, i)
        height = 1.60 + 0.30 * (order[i] + r.uniform(0.2, 0.8)) / n
        out.append(make_body(r, height))
    return out


# ================================================================================================
# Small vectorised helpers
# ================================================================================================

def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _pulse(t, t0, rise, hold, fall):
    """0 -> 1 over [t0, t0+rise], 1 for ``hold`` seconds, back to 0 over ``fall``."""
    return _smoothstep((t - t0) / rise) * (1.0 - _smoothstep((t - t0 - rise - hold) / fall))


def _keyframes(t, times, values):
    """Eased piecewise interpolation of ``values`` (K, ...) at increasing ``times`` (K,), held
    constant outside."""
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    k = len(times)
    i = np.clip(np.searchsorted(times, t, side="right") - 1, 0, k - 1)
    j = np.minimum(i + 1, k - 1)
    span = times[j] - times[i]
    w = np.where(span > 0, (t - times[i]) / np.where(span > 0, span, 1.0), 0.0)
    w = _smoothstep(w).reshape(w.shape + (1,) * (values.ndim - 1))
    return values[i] + w * (values[j] - values[i])


def _smooth_noise(rng, t, shape=(), amp=1.0, fmin=0.1, fmax=0.8, n=3):
    """Band-limited random signal (F, *shape), standard deviation about ``amp``."""
    shape = tuple(np.atleast_1d(shape)) if shape != () else ()
    f = rng.uniform(fmin, fmax, (n,) + shape)
    ph = rng.uniform(0.0, 2 * np.pi, (n,) + shape)
    a = rng.normal(0.0, 1.0, (n,) + shape) * np.sqrt(2.0 / n)
    tt = t.reshape((-1, 1) + (1,) * len(shape))
    return amp * np.sum(a * np.sin(2 * np.pi * f * tt + ph), axis=1)


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(np.shape(a) + (3, 3))
    R[..., 0, 0] = 1
    R[..., 1, 1], R[..., 1, 2], R[..., 2, 1], R[..., 2, 2] = c, -s, s, c
    return R


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(np.shape(a) + (3, 3))
    R[..., 1, 1] = 1
    R[..., 0, 0], R[..., 0, 2], R[..., 2, 0], R[..., 2, 2] = c, s, -s, c
    return R


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(np.shape(a) + (3, 3))
    R[..., 2, 2] = 1
    R[..., 0, 0], R[..., 0, 1], R[..., 1, 0], R[..., 1, 1] = c, -s, s, c
    return R


def _bend(deg):
    """Local bone rotation from (F, 3) degrees [flexion (forward), lateral (to the right), twist (to the left)]."""
    r = np.deg2rad(deg)
    return _rz(r[:, 2]) @ _ry(r[:, 0]) @ _rx(r[:, 1])


def _apply(R, v):
    return np.einsum("fij,fj->fi", R, np.broadcast_to(v, R.shape[:-1]))


def _heading_vectors(h):
    """Forward and left unit vectors (..., 2) of headings ``h`` (radians)."""
    fwd = np.stack([np.cos(h), np.sin(h)], axis=-1)
    left = np.stack([-np.sin(h), np.cos(h)], axis=-1)
    return fwd, left


def _lr(v):
    """A left-arm vector and its mirror for the right arm: (2, 3)."""
    v = np.asarray(v, dtype=np.float64)
    return np.stack([v, v * np.array([1.0, -1.0, 1.0])])


def two_bone_ik(a, target, l1, l2, pole, max_flex_deg=150.0):
    """Place a two-bone limb rooted at ``a`` (F, 3) reaching for ``target`` (F, 3): returns the
    middle joint and the end joint. The reach is clamped so the middle joint's flexion stays in
    [0, ``max_flex_deg``]; the limb bends towards ``pole`` (F, 3)."""
    d = target - a
    dist = np.linalg.norm(d, axis=-1, keepdims=True)
    u = d / np.maximum(dist, 1e-9)
    interior_min = np.deg2rad(180.0 - max_flex_deg)
    dmin = np.sqrt(l1 * l1 + l2 * l2 - 2 * l1 * l2 * np.cos(interior_min))
    dc = np.clip(dist, dmin, (l1 + l2) * (1 - 1e-7))
    cos_a = np.clip((l1 * l1 + dc * dc - l2 * l2) / (2 * l1 * dc), -1.0, 1.0)
    sin_a = np.sqrt(1.0 - cos_a**2)
    pp = pole - np.sum(pole * u, axis=-1, keepdims=True) * u
    n = np.linalg.norm(pp, axis=-1, keepdims=True)
    # Degenerate pole (parallel to the limb): any perpendicular will do.
    alt = np.cross(u, np.array([0.0, 0.0, 1.0]))
    alt = np.where(np.linalg.norm(alt, axis=-1, keepdims=True) < 1e-6, np.cross(u, [1.0, 0.0, 0.0]), alt)
    pp = np.where(n > 1e-6, pp / np.maximum(n, 1e-12), alt / np.linalg.norm(alt, axis=-1, keepdims=True))
    mid = a + l1 * (cos_a * u + sin_a * pp)
    end = a + dc * u
    return mid, end


# ================================================================================================
# Motion: per-frame controls and forward kinematics
# ================================================================================================

# Joint limits, degrees: [flexion, lateral, twist] (min, max) for the spine-chain bones; pelvis
# pitch/roll. Knees and elbows are limited in two_bone_ik (flexion 0..150).
JOINT_LIMITS = {
    "pitch": (-20.0, 70.0), "roll": (-20.0, 20.0),
    "lumbar": ((-25.0, 60.0), (-30.0, 30.0), (-35.0, 35.0)),
    "thoracic": ((-20.0, 45.0), (-25.0, 25.0), (-35.0, 35.0)),
    "neck": ((-45.0, 60.0), (-35.0, 35.0), (-70.0, 70.0)),
    "head": ((-35.0, 35.0), (-25.0, 25.0), (-30.0, 30.0)),
}
MAX_KNEE_FLEX = 150.0
MAX_ELBOW_FLEX = 150.0


@dataclass
class Motion:
    """Per-frame controls of one sequence (F frames). Index 0 of ``foot``/``hand``/``pole`` is the
    left limb, 1 the right. Angles in degrees; yaw about world z (0 = facing +x)."""
    root: np.ndarray      # (F, 3) pelvis, world metres
    yaw: np.ndarray       # (F,)
    pitch: np.ndarray     # (F,) forward tilt of the pelvis
    roll: np.ndarray      # (F,)
    lumbar: np.ndarray    # (F, 3)
    thoracic: np.ndarray  # (F, 3)
    neck: np.ndarray      # (F, 3)
    head: np.ndarray      # (F, 3)
    foot: np.ndarray      # (F, 2, 3) ankle targets, world
    hand: np.ndarray      # (F, 2, 3) wrist targets, thorax frame, relative to the shoulder
    pole: np.ndarray      # (F, 2, 3) elbow pole directions, thorax frame


def forward_kinematics(m: Motion, b: Body) -> np.ndarray:
    """Joint positions (F, 17, 3), world metres, H36M order."""
    F = m.root.shape[0]
    lim = JOINT_LIMITS
    clip3 = lambda a, k: np.stack([np.clip(a[:, i], *lim[k][i]) for i in range(3)], axis=1)  # noqa: E731
    yaw = np.deg2rad(m.yaw)
    pitch = np.deg2rad(np.clip(m.pitch, *lim["pitch"]))
    roll = np.deg2rad(np.clip(m.roll, *lim["roll"]))
    P = np.zeros((F, 17, 3))
    G0 = _rz(yaw) @ _ry(pitch) @ _rx(roll)
    P[:, 0] = m.root
    P[:, 1] = m.root + _apply(G0, [0.0, -b.hip_w, 0.0])
    P[:, 4] = m.root + _apply(G0, [0.0, b.hip_w, 0.0])
    Gs = G0 @ _bend(clip3(m.lumbar, "lumbar"))
    P[:, 7] = P[:, 0] + _apply(Gs, [0.0, 0.0, b.spine])
    Gt = Gs @ _bend(clip3(m.thoracic, "thoracic"))
    P[:, 8] = P[:, 7] + _apply(Gt, [0.0, 0.0, b.chest])
    Gn = Gt @ _bend(clip3(m.neck, "neck"))
    P[:, 9] = P[:, 8] + _apply(Gn, b.neck * _NECK_DIR)
    Gh = Gn @ _bend(clip3(m.head, "head"))
    P[:, 10] = P[:, 9] + _apply(Gh, b.head * _HEAD_DIR)
    mirror = np.array([1.0, -1.0, 1.0])
    # Arms: (shoulder, elbow, wrist) joints; side 0 left, 1 right.
    for side, (sh, el, wr) in enumerate(((11, 12, 13), (14, 15, 16))):
        off = b.shoulder * _SHOULDER_DIR * (mirror if side else 1.0)
        P[:, sh] = P[:, 8] + _apply(Gt, off)
        target = P[:, sh] + np.einsum("fij,fj->fi", Gt, m.hand[:, side])
        pole = np.einsum("fij,fj->fi", Gt, m.pole[:, side])
        P[:, el], P[:, wr] = two_bone_ik(P[:, sh], target, b.upper_arm, b.forearm, pole, MAX_ELBOW_FLEX)
    # Legs: (hip, knee, ankle); knees point forward and slightly out.
    for side, (hip, kn, an) in enumerate(((4, 5, 6), (1, 2, 3))):
        pole = _apply(G0, [1.0, 0.15 if side == 0 else -0.15, 0.0])
        P[:, kn], P[:, an] = two_bone_ik(P[:, hip], m.foot[:, side], b.thigh, b.shin, pole, MAX_KNEE_FLEX)
    return P


def rescale_bones(pose: np.ndarray, lengths: np.ndarray, parents=H36M_PARENTS) -> np.ndarray:
    """Same bone directions, bones of ``lengths`` (17,) (univ_annot3-style), root kept."""
    out = np.array(pose, dtype=np.float64, copy=True)
    for j, p in enumerate(parents):
        if p < 0:
            continue
        v = pose[..., j, :] - pose[..., p, :]
        out[..., j, :] = out[..., p, :] + v / np.linalg.norm(v, axis=-1, keepdims=True) * lengths[j]
    return out


# ================================================================================================
# Motion programs
# ================================================================================================

@dataclass
class _Ctx:
    rng: np.random.Generator
    t: np.ndarray          # (F,) seconds
    body: Body
    centre: np.ndarray     # (2,) where the sequence happens, world xy
    yaw: float             # initial facing, radians
    radius: float = 1.4    # capture volume radius around the world origin, metres
    walk_radius: tuple = (0.9, 1.3)

    @property
    def T(self) -> float:
        return float(self.t[-1]) if len(self.t) > 1 else 0.0

    @property
    def F(self) -> int:
        return len(self.t)


def _hang(b: Body):
    return _lr([0.04, 0.05, -0.975 * b.arm])


_POLE_DEFAULT = _lr([-0.3, 0.5, -1.0])


def _arm_scale(b: Body) -> float:
    return b.arm / TEMPLATE_BODY.arm


def _feet_at(c, h, half_w, dx, b: Body):
    """World ankle positions (..., 2, 3) of a stance at centre ``c`` (..., 2), heading ``h`` (...)."""
    fwd, left = _heading_vectors(np.asarray(h))
    out = []
    for side, sgn in ((0, 1.0), (1, -1.0)):
        xy = c + dx[side] * fwd + sgn * half_w * left
        out.append(np.concatenate([xy, np.full(xy.shape[:-1] + (1,), b.ankle_h)], axis=-1))
    return np.stack(out, axis=-2)


def _step_schedule(ctx: _Ctx, n_steps: int, step_len: float, turn_deg: float, half_w: float, dx):
    """Feet planted on the floor, with ``n_steps`` repositioning events (one foot, then the
    other). Returns feet (F, 2, 3), stance centre (F, 2) and heading (F,) radians."""
    rng, t, b = ctx.rng, ctx.t, ctx.body
    dur = 0.4
    C = [np.asarray(ctx.centre, dtype=np.float64)]
    H = [ctx.yaw]
    taus = np.sort(rng.uniform(-0.4, max(ctx.T - 0.3, 0.0), n_steps)) if n_steps else np.zeros(0)
    for k in range(1, len(taus)):
        taus[k] = max(taus[k], taus[k - 1] + 1.8 * dur + 0.3)
    lead = rng.integers(0, 2, n_steps)
    for _ in range(n_steps):
        ang = H[-1] + rng.normal(0.0, 1.2)
        d = step_len * rng.uniform(0.4, 1.0) * np.array([np.cos(ang), np.sin(ang)])
        if np.linalg.norm(C[-1] + d) > ctx.radius:
            d = -d
        C.append(C[-1] + d)
        H.append(H[-1] + np.deg2rad(rng.uniform(-turn_deg, turn_deg)))
    feet_k = _feet_at(np.array(C), np.array(H), half_w, dx, b)  # (K, 2, 3)
    feet = np.empty((ctx.F, 2, 3))
    for side in range(2):
        times, vals = [0.0], [feet_k[0, side]]
        lift = np.zeros(ctx.F)
        for k, tau in enumerate(taus):
            s0 = tau + (0.0 if lead[k] == side else 0.8 * dur)
            times += [s0, s0 + dur]
            vals += [feet_k[k, side], feet_k[k + 1, side]]
            lift += 0.06 * np.sin(np.pi * np.clip((t - s0) / dur, 0.0, 1.0))
        times[0] = min(times[1] - 1e-3, 0.0) if len(times) > 1 else 0.0
        feet[:, side] = _keyframes(t, times, vals)
        feet[:, side, 2] += lift
    if n_steps:
        ct = np.concatenate([[taus[0] - 1e-3], np.ravel(np.stack([taus, taus + 1.8 * dur], 1))])
        cv = np.concatenate([[C[0]], np.repeat(np.array(C[1:]), 2, axis=0)])
        cv[1::2] = np.array(C[:-1])  # hold the old centre until the event starts
        hv = np.concatenate([[H[0]], np.ravel(np.stack([H[:-1], H[1:]], 1))])
        centre = _keyframes(t, ct, cv)
        heading = _keyframes(t, ct, hv)
    else:
        centre = np.broadcast_to(C[0], (ctx.F, 2)).copy()
        heading = np.full(ctx.F, H[0])
    return feet, centre, heading


def _standing(ctx: _Ctx, n_steps_max: int = 1, step_len: float = 0.35, turn_deg: float = 30.0,
              shift: float = 0.025) -> Motion:
    """Idle standing: planted feet (a few steps), weight shifts, small postural sway, arms hanging."""
    rng, t, b, F = ctx.rng, ctx.t, ctx.body, ctx.F
    half_w = b.hip_w * rng.uniform(0.75, 1.3)
    dx = rng.normal(0.0, 0.04, 2)
    n_steps = int(rng.integers(0, n_steps_max + 1))
    feet, centre, heading = _step_schedule(ctx, n_steps, step_len, turn_deg, half_w, dx)
    fwd, left = _heading_vectors(heading)
    ws = shift * np.tanh(_smooth_noise(rng, t, (), 1.5, 0.08, 0.4))
    xy = centre + ws[:, None] * left + _smooth_noise(rng, t, (), 0.01)[:, None] * fwd + 0.5 * np.mean(dx) * fwd
    z = b.ankle_h + b.leg * rng.uniform(0.99, 0.996) + _smooth_noise(rng, t, (), 0.002)
    n = lambda shape, a, lo=0.1, hi=0.8: _smooth_noise(rng, t, shape, a, lo, hi)  # noqa: E731
    return Motion(
        root=np.concatenate([xy, z[:, None]], axis=1),
        yaw=np.rad2deg(heading) + n((), 4.0),
        pitch=rng.uniform(0.0, 6.0) + n((), 1.5),
        roll=-np.rad2deg(ws / 0.5) + n((), 1.0),
        lumbar=np.array([rng.uniform(-2.0, 5.0), 0.0, 0.0]) + n(3, 2.5),
        thoracic=np.array([rng.uniform(0.0, 6.0), 0.0, 0.0]) + n(3, 2.0),
        neck=np.array([rng.uniform(0.0, 10.0), 0.0, 0.0]) + n(3, 5.0) * np.array([1.0, 0.6, 2.5]),
        head=n(3, 4.0),
        foot=feet,
        hand=_hang(b)[None] + n((2, 3), 0.025, 0.2, 1.0),
        pole=np.broadcast_to(_POLE_DEFAULT, (F, 2, 3)).copy(),
    )


def _blend(cur, target, w):
    """Per-frame lerp: ``w`` (F,) weights, ``target`` broadcastable to ``cur``."""
    w = w.reshape((-1,) + (1,) * (np.ndim(cur) - 1))
    return cur + w * (np.asarray(target) - cur)


def _episodes(ctx: _Ctx, n: int, rise=(0.3, 0.6), hold=(0.4, 1.5), fall=(0.3, 0.7)):
    """``n`` non-overlapping gesture episodes (t0, rise, hold, fall) touching the sequence."""
    rng = ctx.rng
    eps = []
    t0 = rng.uniform(-0.8, max(0.3 * ctx.T, 0.1))
    for _ in range(n):
        e = (t0, rng.uniform(*rise), rng.uniform(*hold), rng.uniform(*fall))
        eps.append(e)
        t0 = t0 + e[1] + e[2] + e[3] + rng.uniform(0.2, 1.2)
    return eps


def _sit(ctx: _Ctx, seat=None) -> tuple[Motion, dict]:
    """Seated on a chair: pelvis low, feet on the floor in front, hands on the thighs."""
    rng, t, b, F = ctx.rng, ctx.t, ctx.body, ctx.F
    m = _standing(ctx, n_steps_max=0)
    seat = rng.uniform(0.40, 0.50) * np.sqrt(b.leg / TEMPLATE_BODY.leg) if seat is None else seat
    fwd, left = _heading_vectors(np.full(F, ctx.yaw))
    feet_fwd = rng.uniform(0.36, 0.50) * b.leg / TEMPLATE_BODY.leg
    half_w = b.hip_w * rng.uniform(0.8, 1.6)
    feet = _feet_at(np.asarray(ctx.centre), ctx.yaw, half_w, np.array([feet_fwd, feet_fwd]) + rng.normal(0, 0.05, 2), b)
    feet = np.broadcast_to(feet, (F, 2, 3)).copy()
    # occasional foot slide
    for side in range(2):
        if rng.random() < 0.5:
            e = _episodes(ctx, 1, rise=(0.4, 0.8), hold=(0.5, 2.0), fall=(0.4, 0.8))[0]
            d = rng.uniform(-0.12, 0.12)
            feet[:, side, :2] += _pulse(t, *e)[:, None] * d * fwd
    root_z = seat + 0.09 * b.leg / TEMPLATE_BODY.leg + _smooth_noise(rng, t, (), 0.003)
    root = np.concatenate([np.asarray(ctx.centre)[None] + _smooth_noise(rng, t, 2, 0.006), root_z[:, None]], axis=1)
    pitch = rng.uniform(-15.0, 0.0) + _smooth_noise(rng, t, (), 2.0)
    m.root, m.foot, m.pitch = root, feet, pitch
    m.roll = _smooth_noise(rng, t, (), 1.5)
    m.lumbar = np.stack([-pitch + rng.uniform(-5, 20) + _smooth_noise(rng, t, (), 4.0),
                         _smooth_noise(rng, t, (), 3.0), _smooth_noise(rng, t, (), 5.0)], axis=1)
    m.hand = _lr([0.28, -0.02, -0.38])[None] * _arm_scale(b) + _smooth_noise(rng, t, (2, 3), 0.02)
    m.yaw = np.full(F, np.rad2deg(ctx.yaw)) + _smooth_noise(rng, t, (), 3.0)
    return m, {"seat": seat, "feet_fwd": feet_fwd}


# --- walking ------------------------------------------------------------------------------

def _walk(ctx: _Ctx, speed=(0.95, 1.3), arm_amp=20.0, speed_var=0.06) -> Motion:
    """Gait along a circular path inside the capture volume, feet planted during stance."""
    rng, t, b, F = ctx.rng, ctx.t, ctx.body, ctx.F
    fps = 1.0 / (t[1] - t[0]) if F > 1 else 50.0
    v0 = rng.uniform(*speed) * np.sqrt(b.leg / TEMPLATE_BODY.leg)
    v = np.clip(v0 * (1.0 + _smooth_noise(rng, t, (), speed_var, 0.05, 0.3)), 0.4 * v0, None)
    s = np.concatenate([[0.0], np.cumsum(v[:-1]) / fps])
    step = 0.62 * b.leg / TEMPLATE_BODY.leg * (v0 / 1.1) ** 0.5
    stride, duty = 2.0 * step, 0.62
    phi0 = rng.uniform(0.0, 1.0)
    phi = s / stride + phi0
    R = rng.uniform(*ctx.walk_radius)
    cc = np.asarray(ctx.centre) * 0.2
    th0 = rng.uniform(0.0, 2 * np.pi)
    sgn = rng.choice([-1.0, 1.0])

    def path(sv):
        a = th0 + sgn * sv / R
        p = cc + R * np.stack([np.cos(a), np.sin(a)], axis=-1)
        head = a + sgn * np.pi / 2
        return p, head

    half_w = b.hip_w * rng.uniform(0.55, 0.85)
    feet = np.empty((F, 2, 3))
    lift_h = rng.uniform(0.05, 0.09)
    for side, off in ((0, 0.0), (1, 0.5)):
        psi = phi + off
        k = np.floor(psi)
        r = psi - k
        s_fp = (k - off - phi0 + duty / 2.0) * stride
        w = np.clip((r - duty) / (1.0 - duty), 0.0, 1.0)
        s_foot = s_fp + _smoothstep(w) * stride
        p, hd = path(s_foot)
        _, left = _heading_vectors(hd)
        xy = p + (1.0 if side == 0 else -1.0) * half_w * left
        z = b.ankle_h + lift_h * np.sin(np.pi * w) ** 1.5 + 0.03 * _smoothstep((r - duty + 0.12) / 0.12) * (r < duty)
        feet[:, side] = np.concatenate([xy, z[:, None]], axis=1)
    p, heading = path(s)
    fwd, left = _heading_vectors(heading)
    sway = 0.022 * np.sin(2 * np.pi * (phi + 0.05 - duty / 2 + 0.25))
    xy = p + sway[:, None] * left
    z = b.ankle_h + b.leg * (0.945 - 0.022 * np.cos(4 * np.pi * (phi - (duty - 0.5) / 2)))
    pelvis_rot = 5.0 * np.sin(2 * np.pi * (phi - 0.2))
    swing = arm_amp * np.cos(2 * np.pi * phi)
    n = lambda shape, a: _smooth_noise(rng, t, shape, a)  # noqa: E731
    hand = np.empty((F, 2, 3))
    A = 0.95 * b.arm
    for side, sg in ((0, -1.0), (1, 1.0)):
        th = np.deg2rad(sg * swing + 4.0)
        hand[:, side] = np.stack([A * np.sin(th) + 0.04, np.full(F, 0.05 * (1 if side == 0 else -1)),
                                  -A * np.cos(th)], axis=1)
    hand += n((2, 3), 0.015)
    return Motion(
        root=np.concatenate([xy, z[:, None]], axis=1),
        yaw=np.rad2deg(heading) + pelvis_rot,
        pitch=rng.uniform(2.0, 8.0) + n((), 1.0),
        roll=-np.rad2deg(sway / 0.4) + n((), 1.0),
        lumbar=np.stack([rng.uniform(0, 5) + n((), 1.5), n((), 1.5), -0.8 * pelvis_rot], axis=1),
        thoracic=np.stack([rng.uniform(0, 5) + n((), 1.5), n((), 1.0), -0.8 * pelvis_rot], axis=1),
        neck=np.stack([rng.uniform(0, 12) + n((), 3.0), n((), 2.0), n((), 8.0)], axis=1),
        head=n(3, 3.0),
        foot=feet,
        hand=hand,
        pole=np.broadcast_to(_POLE_DEFAULT, (F, 2, 3)).copy(),
    )


def _prog_walking(ctx):
    return _walk(ctx)


def _prog_walkdog(ctx):
    rng, t = ctx.rng, ctx.t
    m = _walk(ctx, speed=(0.75, 1.05), arm_amp=14.0, speed_var=0.2)
    side = int(rng.integers(0, 2))
    leash = _lr([0.26, 0.04, -0.36])[side] * _arm_scale(ctx.body)
    tug = _smooth_noise(rng, t, 3, 0.05, 0.4, 1.5)
    m.hand[:, side] = leash + tug
    m.pole[:, side] = _lr([0.0, 0.6, -1.0])[side]
    m.lumbar[:, 0] += rng.uniform(4, 12)
    m.neck[:, 0] += rng.uniform(5, 20)
    m.neck[:, 2] += _smooth_noise(rng, t, (), 15.0, 0.1, 0.5)
    return m


def _prog_walktogether(ctx):
    rng = ctx.rng
    m = _walk(ctx, speed=(0.8, 1.1), arm_amp=10.0)
    partner = rng.choice([-1.0, 1.0])
    m.neck[:, 2] += partner * rng.uniform(15, 35) * (0.6 + 0.4 * np.tanh(_smooth_noise(rng, ctx.t, (), 1.5, 0.1, 0.4)))
    m.thoracic[:, 2] += partner * rng.uniform(0, 10)
    if rng.random() < 0.4:  # holding the partner's arm
        side = 0 if partner > 0 else 1
        m.hand[:, side] = _lr([0.18, 0.12, -0.40])[side] * _arm_scale(ctx.body)
    return m


# --- standing actions -------------------------------------------------------------------------

def _prog_directions(ctx):
    rng, t, b = ctx.rng, ctx.t, ctx.body
    m = _standing(ctx, n_steps_max=2, step_len=0.45, turn_deg=45.0)
    for e in _episodes(ctx, int(rng.integers(1, 3)), hold=(0.6, 1.4)):
        side = int(rng.integers(0, 2))
        tgt = np.array([rng.uniform(0.28, 0.42), rng.uniform(0.08, 0.34), rng.uniform(-0.12, 0.22)]) * _arm_scale(b)
        w = _pulse(t, *e)
        m.hand[:, side] = _blend(m.hand[:, side], _lr(tgt)[side], w)
        m.pole[:, side] = _blend(m.pole[:, side], _lr([0.0, 0.3, -1.0])[side], w)
        m.neck[:, 2] += w * (25.0 if side == 0 else -25.0) * rng.uniform(0.3, 1.0)
        m.thoracic[:, 2] += w * (10.0 if side == 0 else -10.0) * rng.uniform(0.0, 1.0)
    return m


def _prog_discussion(ctx):
    rng, t, b = ctx.rng, ctx.t, ctx.body
    m = _standing(ctx, n_steps_max=1, shift=0.035)
    base = _lr([0.20, -0.04, -0.30]) * _arm_scale(b)
    w = np.clip(0.5 + 0.8 * _smooth_noise(rng, t, 2, 1.0, 0.05, 0.25), 0.0, 1.0)
    gest = _smooth_noise(rng, t, (2, 3), 0.07, 0.4, 1.5)
    for side in range(2):
        m.hand[:, side] = _blend(m.hand[:, side], base[side] + gest[:, side], w[:, side])
        m.pole[:, side] = _blend(m.pole[:, side], _lr([-0.1, 0.8, -1.0])[side], w[:, side])
    m.neck += _smooth_noise(rng, t, 3, 1.0, 0.3, 1.2) * np.array([6.0, 3.0, 12.0])
    m.thoracic[:, 2] += _smooth_noise(rng, t, (), 6.0)
    return m


def _prog_greeting(ctx):
    rng, t, b = ctx.rng, ctx.t, ctx.body
    m = _standing(ctx, n_steps_max=2, step_len=0.45)
    eps = _episodes(ctx, 2, hold=(0.8, 1.6))
    order = rng.permutation(2)
    side = int(rng.integers(0, 2))
    for kind, e in zip(order, eps):
        w = _pulse(t, *e)
        if kind == 0:  # wave
            tgt = _lr([0.10, 0.20, 0.40])[side] * _arm_scale(b)
            osc = np.zeros((len(t), 3))
            osc[:, 1] = 0.08 * np.sin(2 * np.pi * rng.uniform(1.5, 2.5) * t)
            m.hand[:, side] = _blend(m.hand[:, side], tgt + osc, w)
            m.pole[:, side] = _blend(m.pole[:, side], _lr([0.2, 1.0, -0.5])[side], w)
        else:  # handshake (right hand) or open arms
            if rng.random() < 0.6:
                m.hand[:, 1] = _blend(m.hand[:, 1], _lr([0.36, -0.02, -0.22])[1] * _arm_scale(b), w)
                m.lumbar[:, 0] += 10.0 * w
            else:
                for s in range(2):
                    m.hand[:, s] = _blend(m.hand[:, s], _lr([0.30, 0.28, -0.05])[s] * _arm_scale(b), w)
                    m.pole[:, s] = _blend(m.pole[:, s], _lr([0.0, 0.5, -1.0])[s], w)
    return m


def _phone_pose(side, b):
    return _lr([0.07, -0.02, 0.15])[side] * _arm_scale(b), _lr([0.3, 0.6, -1.0])[side]


def _prog_phoning(ctx):
    rng, t, b = ctx.rng, ctx.t, ctx.body
    m = _standing(ctx, n_steps_max=2, step_len=0.4, turn_deg=50.0)
    side = int(rng.integers(0, 2))
    tgt, pole = _phone_pose(side, b)
    w = np.ones(len(t)) if rng.random() < 0.7 else _pulse(t, *_episodes(ctx, 1, hold=(1.5, 4.0))[0])
    m.hand[:, side] = _blend(m.hand[:, side], tgt + _smooth_noise(rng, t, 3, 0.01), w)
    m.pole[:, side] = _blend(m.pole[:, side], pole, w)
    m.neck[:, 1] += w * (-8.0 if side == 0 else 8.0)
    other = 1 - side
    if rng.random() < 0.5:  # gesturing or hand on hip
        w2 = np.clip(0.5 + _smooth_noise(rng, t, (), 1.0, 0.1, 0.4), 0, 1)
        m.hand[:, other] = _blend(m.hand[:, other], _lr([0.18, -0.02, -0.28])[other] * _arm_scale(b)
                                  + _smooth_noise(rng, t, 3, 0.06, 0.4, 1.2), w2)
    return m


def _mouth_pose(side, b):
    return _lr([0.16, -0.10, 0.06])[side] * _arm_scale(b), _lr([-0.1, 0.8, -1.0])[side]


def _prog_smoking(ctx):
    rng, t, b = ctx.rng, ctx.t, ctx.body
    m = _standing(ctx, n_steps_max=1, shift=0.04)
    side = int(rng.integers(0, 2))
    tgt, pole = _mouth_pose(side, b)
    for e in _episodes(ctx, 3, rise=(0.5, 0.8), hold=(0.4, 1.0), fall=(0.5, 0.9)):
        w = _pulse(t, *e)
        m.hand[:, side] = _blend(m.hand[:, side], tgt, w)
        m.pole[:, side] = _blend(m.pole[:, side], pole, w)
        m.neck[:, 0] -= 5.0 * w
    other = 1 - side
    if rng.random() < 0.6:  # arm across the body
        m.hand[:, other] = _lr([0.14, -0.22, -0.34])[other] * _arm_scale(b) + _smooth_noise(rng, t, 3, 0.01)
        m.pole[:, other] = _lr([0.0, 1.0, -1.0])[other]
    return m


def _prog_eating(ctx):
    rng, t, b = ctx.rng, ctx.t, ctx.body
    m, _ = _sit(ctx)
    table = _lr([0.30, -0.06, -0.24]) * _arm_scale(b)
    for s in range(2):
        m.hand[:, s] = table[s] + _smooth_noise(rng, t, 3, 0.02)
    m.lumbar[:, 0] += rng.uniform(5, 15)
    side = int(rng.integers(0, 2))
    for e in _episodes(ctx, 4, rise=(0.4, 0.7), hold=(0.2, 0.6), fall=(0.4, 0.7)):
        side = side if rng.random() < 0.6 else 1 - side
        tgt, pole = _mouth_pose(side, b)
        w = _pulse(t, *e)
        m.hand[:, side] = _blend(m.hand[:, side], tgt, w)
        m.pole[:, side] = _blend(m.pole[:, side], pole, w)
        m.neck[:, 0] += 6.0 * w
    return m


def _prog_photo(ctx):
    rng, t, b = ctx.rng, ctx.t, ctx.body
    m = _standing(ctx, n_steps_max=2, step_len=0.4, turn_deg=60.0)
    cam = _lr([0.20, -0.08, 0.10]) * _arm_scale(b)
    low = _lr([0.20, -0.05, -0.25]) * _arm_scale(b)
    w_low = np.clip(0.6 + _smooth_noise(rng, t, (), 0.6, 0.05, 0.2), 0, 1)
    for s in range(2):
        m.hand[:, s] = _blend(m.hand[:, s], low[s], w_low)
    for e in _episodes(ctx, 2, hold=(0.8, 1.8)):
        w = _pulse(t, *e)
        crouch = rng.uniform(0.0, 0.22) if rng.random() < 0.5 else 0.0
        for s in range(2):
            m.hand[:, s] = _blend(m.hand[:, s], cam[s] + _smooth_noise(rng, t, 3, 0.008), w)
            m.pole[:, s] = _blend(m.pole[:, s], _lr([-0.1, 1.0, -1.0])[s], w)
        m.thoracic[:, 2] += w * rng.uniform(-15, 15)
        m.lumbar[:, 0] += w * rng.uniform(0, 20)
        m.root[:, 2] -= w * crouch
        m.pitch = m.pitch + w * crouch * 60.0
    return m


_POSES = [  # (left hand, left pole) in thorax frame, before arm scaling; right = mirror unless given
    ([-0.02, 0.06, -0.40], [0.0, 1.0, -0.3]),   # hands on hips
    ([0.05, 0.22, 0.47], [0.0, 1.0, -0.6]),     # arms up, V
    ([0.0, 0.51, 0.02], [-0.3, 0.0, -1.0]),     # T-pose
    ([0.0, 0.30, 0.24], [0.0, 1.0, -1.0]),      # biceps flex
    ([-0.06, -0.05, 0.30], [0.2, 1.0, 0.3]),    # hands behind the head
    ([0.20, -0.20, -0.20], [0.0, 1.0, -1.0]),   # arms crossed
    ([0.40, 0.05, 0.18], [0.0, 0.3, -1.0]),     # arm forward
]


def _prog_posing(ctx):
    rng, t, b, F = ctx.rng, ctx.t, ctx.body, ctx.F
    m = _standing(ctx, n_steps_max=0, shift=0.01)
    n = int(rng.integers(2, 5))
    hold, trans = rng.uniform(0.7, 1.5), rng.uniform(0.4, 0.7)
    t0 = rng.uniform(-hold, 0.3)
    fwd, left = _heading_vectors(np.asarray(ctx.yaw))
    times, hands, poles, spine, drop, feet = [], [], [], [], [], []
    for k in range(n):
        pl = _POSES[int(rng.integers(len(_POSES)))]
        pr = _POSES[int(rng.integers(len(_POSES)))] if rng.random() < 0.4 else pl
        hands.append(np.stack([_lr(pl[0])[0], _lr(pr[0])[1]]) * _arm_scale(b))
        poles.append(np.stack([_lr(pl[1])[0], _lr(pr[1])[1]]))
        spine.append([rng.uniform(-10, 15), rng.uniform(-12, 12), rng.uniform(-20, 20)])
        lunge = rng.random() < 0.3
        hw = b.hip_w * rng.uniform(0.8, 2.2)
        dxs = np.array([rng.uniform(0.15, 0.35), -rng.uniform(0.1, 0.25)]) if lunge else rng.normal(0, 0.05, 2)
        if lunge and rng.random() < 0.5:
            dxs = dxs[::-1]
        feet.append(_feet_at(np.asarray(ctx.centre), ctx.yaw, hw, dxs, b))
        drop.append((0.08 if lunge else 0.0) + max(0.0, hw - b.hip_w * 1.4) * 0.4 + rng.uniform(0, 0.03))
        ts = t0 + k * (hold + trans)
        times += [ts, ts + hold]
    dup = lambda v: np.repeat(np.asarray(v), 2, axis=0)  # noqa: E731
    times = np.array(times)
    m.hand = _keyframes(t, times, dup(hands)) + _smooth_noise(rng, t, (2, 3), 0.008)
    m.pole = _keyframes(t, times, dup(poles))
    sp = _keyframes(t, times, dup(spine))
    m.lumbar = m.lumbar + 0.6 * sp
    m.thoracic = m.thoracic + 0.4 * sp
    m.foot = _keyframes(t, times, dup(feet))
    fk = np.array(feet)
    for k in range(n - 1):  # lift a foot that moves
        w = np.clip((t - times[2 * k + 1]) / trans, 0, 1)
        for s in range(2):
            dist = np.linalg.norm(fk[k + 1, s, :2] - fk[k, s, :2])
            m.foot[:, s, 2] += min(0.06, 0.4 * dist) * np.sin(np.pi * w)
    ctr = m.foot[:, :, :2].mean(axis=1)
    m.root[:, :2] = ctr + (m.root[:, :2] - np.asarray(ctx.centre))
    m.root[:, 2] -= _keyframes(t, times, dup(drop))
    return m


def _prog_purchases(ctx):
    rng, t, b = ctx.rng, ctx.t, ctx.body
    m = _standing(ctx, n_steps_max=2, step_len=0.4, turn_deg=60.0)
    carry = rng.random() < 0.5
    if carry:
        for s in range(2):
            m.hand[:, s] = _lr([0.22, -0.07, -0.34])[s] * _arm_scale(b) + _smooth_noise(rng, t, 3, 0.015)
    fwd, _ = _heading_vectors(np.deg2rad(m.yaw))
    for e in _episodes(ctx, int(rng.integers(1, 3)), rise=(0.6, 1.0), hold=(0.3, 1.0), fall=(0.6, 1.0)):
        w = _pulse(t, *e)
        bend = rng.uniform(0.6, 1.0)
        m.pitch = m.pitch + w * bend * rng.uniform(30, 45)
        m.lumbar[:, 0] += w * bend * rng.uniform(15, 30)
        m.thoracic[:, 0] += w * bend * rng.uniform(5, 15)
        m.neck[:, 0] -= w * 15.0
        m.root[:, 2] -= w * rng.uniform(0.03, 0.22)
        m.root[:, :2] -= (w * rng.uniform(0.06, 0.14))[:, None] * fwd
        reach = _lr([0.16, 0.0, -0.93]) * np.array([1, 1, b.arm])
        for s in range(2):
            m.hand[:, s] = _blend(m.hand[:, s], reach[s], w)
    return m


def _prog_waiting(ctx):
    rng, t, b = ctx.rng, ctx.t, ctx.body
    m = _standing(ctx, n_steps_max=1, shift=0.055)
    style = int(rng.integers(0, 3))
    if style == 1:  # hands clasped in front
        m.hand = _lr([0.16, -0.13, -0.40])[None] * _arm_scale(b) + _smooth_noise(rng, t, (2, 3), 0.01)
        m.pole = np.broadcast_to(_lr([0.0, 1.0, -1.0]), m.pole.shape).copy()
    elif style == 2:  # hands behind the back
        m.hand = _lr([-0.14, -0.12, -0.40])[None] * _arm_scale(b) + _smooth_noise(rng, t, (2, 3), 0.01)
        m.pole = np.broadcast_to(_lr([0.0, 1.0, -0.5]), m.pole.shape).copy()
    m.neck[:, 2] += _smooth_noise(rng, t, (), 25.0, 0.05, 0.3)
    m.neck[:, 0] += _smooth_noise(rng, t, (), 6.0, 0.05, 0.3)
    return m


# --- sitting ----------------------------------------------------------------------------------

def _prog_sitting(ctx):
    rng, t, b = ctx.rng, ctx.t, ctx.body
    m, _ = _sit(ctx)
    for e in _episodes(ctx, int(rng.integers(0, 3)), hold=(0.8, 2.0)):
        side = int(rng.integers(0, 2))
        w = _pulse(t, *e)
        kind = int(rng.integers(0, 3))
        if kind == 0:
            tgt, pole = _phone_pose(side, b)
        elif kind == 1:
            tgt, pole = _mouth_pose(side, b)
        else:
            tgt, pole = _lr([0.22, 0.0, -0.22])[side] * _arm_scale(b), _lr([-0.1, 0.8, -1.0])[side]
        m.hand[:, side] = _blend(m.hand[:, side], tgt + _smooth_noise(rng, t, 3, 0.03, 0.3, 1.0), w)
        m.pole[:, side] = _blend(m.pole[:, side], pole, w)
    m.neck += _smooth_noise(rng, t, 3, 1.0) * np.array([5.0, 3.0, 15.0])
    return m


def _prog_sittingdown(ctx):
    rng, t, b, F = ctx.rng, ctx.t, ctx.body, ctx.F
    sit, info = _sit(ctx)
    stand = _standing(ctx, n_steps_max=0)
    fwd, _ = _heading_vectors(np.asarray(ctx.yaw))
    # feet where the seated pose has them; standing pelvis above the feet
    stand.foot = sit.foot.copy()
    sway = stand.root[:, :2] - stand.root[:1, :2]
    stand.root[:, :2] = np.asarray(ctx.centre) + (info["feet_fwd"] - 0.04) * fwd + sway
    dur = rng.uniform(1.0, 1.6)
    ts = rng.uniform(-0.3 * dur, max(0.6 * ctx.T - 0.5 * dur, 0.0))
    w = _smoothstep((t - ts) / dur)
    if rng.random() < 0.3 and ts + dur + 1.5 < ctx.T:  # and stands up again
        w = w * (1.0 - _smoothstep((t - ts - dur - rng.uniform(0.5, 1.2)) / dur))
    bump = np.sin(np.pi * np.clip((t - ts) / dur, 0, 1))
    m = stand
    m.root = _blend(stand.root, sit.root, w)
    m.pitch = _blend(stand.pitch, sit.pitch, w) + bump * rng.uniform(15, 30)
    m.lumbar = _blend(stand.lumbar, sit.lumbar, w)
    m.lumbar[:, 0] += bump * rng.uniform(5, 15)
    m.neck[:, 0] -= bump * 10.0
    m.hand = _blend(stand.hand, sit.hand, w)
    reach = _lr([0.35, 0.02, -0.30]) * _arm_scale(b)
    m.hand = m.hand + bump[:, None, None] * 0.6 * (reach[None] - m.hand)
    m.yaw = _blend(stand.yaw, sit.yaw, w)
    return m


PROGRAMS = {
    "Directions": _prog_directions, "Discussion": _prog_discussion, "Eating": _prog_eating,
    "Greeting": _prog_greeting, "Phoning": _prog_phoning, "Photo": _prog_photo,
    "Posing": _prog_posing, "Purchases": _prog_purchases, "Sitting": _prog_sitting,
    "SittingDown": _prog_sittingdown, "Smoking": _prog_smoking, "Waiting": _prog_waiting,
    "WalkDog": _prog_walkdog, "Walking": _prog_walking, "WalkTogether": _prog_walktogether,
}
assert set(PROGRAMS) == set(H36M_ACTIONS)


def generate_motion(program: str, rng: np.random.Generator, frames: int, fps: float, body: Body,
                    radius: float = 1.4, walk_radius=(0.9, 1.3)) -> np.ndarray:
    """World joint positions (F, 17, 3), metres, of one sequence of ``program`` (an H36M action)."""
    r = np.sqrt(rng.uniform(0.0, 1.0)) * 0.7 * radius
    a = rng.uniform(0.0, 2 * np.pi)
    ctx = _Ctx(rng=rng, t=np.arange(frames) / float(fps), body=body,
               centre=np.array([r * np.cos(a), r * np.sin(a)]), yaw=rng.uniform(0.0, 2 * np.pi),
               radius=radius, walk_radius=walk_radius)
    return forward_kinematics(PROGRAMS[program](ctx), body)


def _seq_len(rng: np.random.Generator, frames: int) -> int:
    """Sequence lengths vary by up to +-10% around ``frames`` (real sequences differ in length)."""
    return max(1, int(round(frames * rng.uniform(0.9, 1.1))))


# ================================================================================================
# Cameras
# ================================================================================================

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


# ================================================================================================
# Detector noise
# ================================================================================================

# Per-joint standard deviation (px, each axis) of the detector error, H36M order.
DEFAULT_SIGMA = (4.0, 3.5, 5.0, 7.0, 3.5, 5.0, 7.0, 4.5, 3.5, 3.0, 4.0, 3.0, 5.5, 8.0, 3.0, 5.5, 8.0)
# Left/right groups a swap exchanges: whole legs, lower legs, whole arms, forearms.
SWAP_GROUPS = (((4, 5, 6), (1, 2, 3)), ((5, 6), (2, 3)), ((11, 12, 13), (14, 15, 16)), ((12, 13), (15, 16)))


@dataclass(frozen=True)
class DetectorNoise:
    """The error model of the synthetic 2D detector."""
    sigma: tuple = DEFAULT_SIGMA     # px per joint, per axis
    temporal: float = 0.5            # share of the variance that is temporally smooth
    smooth_frames: float = 2.0       # Gaussian kernel sigma (frames) of the smooth part
    outlier_rate: float = 0.015      # fraction of (frame, joint) entries that are outliers
    outlier_px: tuple = (20.0, 60.0)  # outlier displacement range, px
    swap_rate: float = 0.01          # fraction of frames with a left/right limb swap
    swap_max_len: int = 3            # swaps last 1..swap_max_len frames
    swap_weights: tuple = (0.4, 0.2, 0.2, 0.2)  # over SWAP_GROUPS


def add_detector_noise(gt: np.ndarray, rng: np.random.Generator, noise: DetectorNoise = DetectorNoise()):
    """Detections from ground-truth 2D ``gt`` (F, 17, 2) px. Returns ``(det, outlier, swapped)``:
    det (F, 17, 2) float64, outlier (F, 17) bool (entries replaced by outliers, before swapping),
    swapped (F,) bool (frames whose left/right limbs were exchanged)."""
    gt = np.asarray(gt, dtype=np.float64)
    F, J, _ = gt.shape
    sigma = np.asarray(noise.sigma, dtype=np.float64).reshape(1, J, 1)
    e = rng.standard_normal((F, J, 2))
    if noise.temporal > 0:
        h = max(1, int(np.ceil(3 * noise.smooth_frames)))
        k = np.exp(-0.5 * (np.arange(-h, h + 1) / noise.smooth_frames) ** 2)
        k /= np.sqrt(np.sum(k**2))
        wn = rng.standard_normal((F + 2 * h, J, 2))
        smooth = np.zeros((F, J, 2))
        for i, ki in enumerate(k):
            smooth += ki * wn[i:i + F]
        e = np.sqrt(1.0 - noise.temporal) * e + np.sqrt(noise.temporal) * smooth
    det = gt + sigma * e
    outlier = rng.random((F, J)) < noise.outlier_rate
    ang = rng.uniform(0.0, 2 * np.pi, (F, J))
    mag = rng.uniform(*noise.outlier_px, (F, J))
    off = np.stack([np.cos(ang), np.sin(ang)], axis=-1) * mag[..., None]
    det = np.where(outlier[..., None], gt + off, det)
    mean_len = (1 + noise.swap_max_len) / 2.0
    starts = rng.random(F) < noise.swap_rate / mean_len
    lens = rng.integers(1, noise.swap_max_len + 1, F)
    groups = rng.choice(len(SWAP_GROUPS), F, p=np.asarray(noise.swap_weights) / np.sum(noise.swap_weights))
    swapped = np.zeros(F, dtype=bool)
    for i in np.flatnonzero(starts):
        idx = np.arange(i, min(F, i + lens[i]))
        idx = idx[~swapped[idx]]
        if idx.size == 0:
            continue
        a, b = (list(g) for g in SWAP_GROUPS[groups[i]])
        det[np.ix_(idx, a + b)] = det[np.ix_(idx, b + a)]
        swapped[idx] = True
    return det, outlier, swapped


# ================================================================================================
# Writers
# ================================================================================================

def _action_name(action: str, take: int) -> str:
    return action if take == 0 else f"{action} {take}"


def h36m_bodies(seed: int) -> dict[str, Body]:
    return dict(zip(H36M_SUBJECTS, _bodies(seed, _TAG_H36M_BODY, len(H36M_SUBJECTS))))


def synth_h36m(out: str | Path, seed: int = 0, frames: int = DEFAULT_H36M_FRAMES, takes: int = 2,
               detector_name: str = DEFAULT_DETECTOR, fps: float = DEFAULT_H36M_FPS,
               noise: DetectorNoise | None = None) -> list[Path]:
    """Write a synthetic Human3.6M (VideoPose3D layout) into ``out``: ``data_3d_h36m.npz``,
    ``cameras.h5`` and ``data_2d_h36m_<detector_name>.npz``. Returns the written paths.

    7 subjects x 15 actions x ``takes`` takes of about ``frames`` frames (+-10%) at ``fps``."""
    seed = _check_seed(seed)
    if frames < 1 or takes < 1:
        raise ConfigError(f"synth_h36m: frames ({frames}) and takes ({takes}) must be >= 1")
    if not detector_name or any(ch in detector_name for ch in "/\\"):
        raise ConfigError(f"synth_h36m: invalid detector name {detector_name!r}")
    noise = noise or DetectorNoise()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bodies = h36m_bodies(seed)
    cams = h36m_cameras(seed)
    pos3d: dict = {}
    pos2d: dict = {}
    for si, s in enumerate(H36M_SUBJECTS):
        pos3d[s], pos2d[s] = {}, {}
        for ai, action in enumerate(H36M_ACTIONS):
            for take in range(takes):
                rng = _rng(seed, _TAG_H36M_SEQ, si, ai, take)
                pose = generate_motion(action, rng, _seq_len(rng, frames), fps, bodies[s])
                pose = _quantize(pose, _Q3D_M)
                name = _action_name(action, take)
                pos3d[s][name] = pose
                dets = []
                for ci, cam in enumerate(cams[s]):
                    gt = project_to_2d(world_to_camera(pose, cam), cam)
                    det, _, _ = add_detector_noise(gt, _rng(seed, _TAG_H36M_DET, si, ai, take, ci), noise)
                    dets.append(_quantize(det, _Q2D_PX))
                pos2d[s][name] = dets
    p3d = out / H36M_3D_FILE
    pcam = out / H36M_CAMERAS_FILE
    pdet = out / h36m_2d_filename(detector_name)
    save_npz(p3d, positions_3d=pos3d)
    with atomic_path(pcam, suffix=".h5") as tmp:
        save_cameras_h5(tmp, cams)
    save_npz(pdet, positions_2d=pos2d, metadata=dict(H36M_METADATA))
    return [p3d, pcam, pdet, mark_synthetic(out, "h36m", seed)]


def _to_3dhp_order(pose: np.ndarray) -> np.ndarray:
    out = np.empty_like(pose)
    out[:, list(H36M_FROM_3DHP)] = pose
    return out


def _3dhp_views(pose_world: np.ndarray, cam: Camera):
    """annot2-like 2D (px, own-size pose) and univ_annot3-like 3D (mm, camera frame), 3DHP order."""
    cam_pose = world_to_camera(pose_world, cam)
    p2d = project_to_2d(cam_pose, cam)
    univ = rescale_bones(cam_pose, UNIVERSAL_BODY.bone_lengths()) * 1000.0
    return _to_3dhp_order(p2d).astype(np.float32), _to_3dhp_order(univ).astype(np.float32)


def _valid_flags(rng: np.random.Generator, n: int) -> np.ndarray:
    """0/1 flags with 10-15% invalid frames in 1-3 runs (often at the start or the end)."""
    valid = np.ones(n, dtype=np.float64)
    if n < 10:
        return valid
    n_bad = int(round(n * rng.uniform(0.10, 0.15)))
    runs = int(rng.integers(1, 4))
    sizes = np.maximum(1, np.round(rng.dirichlet(np.ones(runs)) * n_bad).astype(int))
    for k, size in enumerate(sizes):
        if k == 0 and rng.random() < 0.5:
            start = 0 if rng.random() < 0.5 else n - size
        else:
            start = int(rng.integers(0, max(1, n - size)))
        valid[start:start + size] = 0.0
    return valid


def synth_3dhp(out: str | Path, seed: int = 0, test_frames: int = DEFAULT_3DHP_TEST_FRAMES,
               train_subjects: int = DEFAULT_3DHP_TRAIN_SUBJECTS, train_seqs: int = DEFAULT_3DHP_TRAIN_SEQS,
               train_cameras: int = DEFAULT_3DHP_TRAIN_CAMERAS, train_frames: int = DEFAULT_3DHP_TRAIN_FRAMES,
               train: bool = True) -> list[Path]:
    """Write a synthetic MPI-INF-3DHP (P-STMO layout) into ``out``: ``data_test_3dhp.npz`` (TS1-TS6,
    about ``test_frames`` frames each) and, if ``train``, ``data_train_3dhp.npz`` ("S<i> Seq<j>" for
    ``train_subjects`` x ``train_seqs`` sequences, ``train_cameras`` cameras each)."""
    seed = _check_seed(seed)
    if test_frames < 1 or train_frames < 1:
        raise ConfigError("synth_3dhp: frame counts must be >= 1")
    if not (1 <= train_subjects <= 8 and 1 <= train_seqs <= 2 and 1 <= train_cameras <= len(MPI3DHP_CAMERA_SET)):
        raise ConfigError("synth_3dhp: train_subjects must be 1..8, train_seqs 1..2, "
                          f"train_cameras 1..{len(MPI3DHP_CAMERA_SET)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    people = _bodies(seed, _TAG_3DHP_BODY, 6 + 8)
    test = {}
    for i, seq in enumerate(MPI3DHP_TEST_SEQUENCES):
        rng = _rng(seed, _TAG_3DHP_TEST, i)
        outdoor = MPI3DHP_TEST_SCENE[seq] == "Outdoor"
        pose = generate_motion(_3DHP_TEST_PROGRAM[seq], rng, _seq_len(rng, test_frames), MPI3DHP_TEST_FPS[seq],
                               people[i], radius=0.9 if outdoor else 1.0,
                               walk_radius=(0.7, 0.9) if outdoor else (0.8, 1.1))
        p2d, p3d = _3dhp_views(pose, _3dhp_test_camera(seed, seq))
        test[seq] = {"data_2d": p2d, "data_3d": p3d, "valid": _valid_flags(rng, len(pose))}
    ptest = out / TEST_FILE
    save_npz(ptest, data=test)
    paths = [ptest]
    if train:
        tr = {}
        for si in range(train_subjects):
            for q in range(train_seqs):
                rng = _rng(seed, _TAG_3DHP_TRAIN, si, q)
                prog = _3DHP_TRAIN_PROGRAMS[(2 * si + q) % len(_3DHP_TRAIN_PROGRAMS)]
                pose = generate_motion(prog, rng, _seq_len(rng, train_frames), DEFAULT_3DHP_TRAIN_FPS,
                                       people[6 + si], radius=1.0, walk_radius=(0.8, 1.1))
                start = (3 * si + 5 * q) % len(MPI3DHP_CAMERA_SET)
                cams = [MPI3DHP_CAMERA_SET[(start + 3 * k) % len(MPI3DHP_CAMERA_SET)] for k in range(train_cameras)]
                dic_cam = {}
                for cid in sorted(set(cams)):
                    p2d, p3d = _3dhp_views(pose, _3dhp_train_camera(seed, cid))
                    dic_cam[str(cid)] = {"data_2d": p2d, "data_3d": p3d}
                tr[f"S{si + 1} Seq{q + 1}"] = [dic_cam, DEFAULT_3DHP_TRAIN_FPS]
        ptrain = out / TRAIN_FILE
        save_npz(ptrain, data=tr)
        paths.append(ptrain)
    paths.append(mark_synthetic(out, "3dhp", seed))
    return paths


MARKER_FILE = "SYNTHETIC"


def mark_synthetic(out: Path, benchmark: str, seed: int) -> Path:
    """A marker beside the files, so results made from them are labelled synthetic wherever they are read."""
    path = Path(out) / MARKER_FILE
    path.write_text(f"Synthetic {benchmark} benchmark written by harness (seed {seed}, format v{FORMAT_VERSION}); "
                    "not real data.\n")
    return path


def is_synthetic(folder: Path) -> bool:
    return (Path(folder) / MARKER_FILE).is_file()


# ================================================================================================
# Cache
# ================================================================================================

def cache_root() -> Path:
    """The harness cache folder (:func:`harness.data.cache.default_cache_dir`: $HARNESS_CACHE_DIR,
    else $XDG_CACHE_HOME/harness, else ~/.cache/harness)."""
    from harness.data.cache import default_cache_dir

    return Path(default_cache_dir())


def _canonical(benchmark: str) -> str:
    key = str(benchmark).strip().lower()
    if key not in _BENCHMARK_ALIASES:
        raise ConfigError(f"unknown synthetic benchmark {benchmark!r} (choose from {', '.join(BENCHMARKS)})")
    return _BENCHMARK_ALIASES[key]


def default_synth_dir(benchmark: str, seed: int = 0) -> Path:
    """``<cache>/synth/<benchmark>-seed<seed>-v<FORMAT_VERSION>``."""
    return cache_root() / "synth" / f"{_canonical(benchmark)}-seed{_check_seed(seed)}-v{FORMAT_VERSION}"


def synth_files(benchmark: str) -> tuple[str, ...]:
    """File names a default synthetic folder of ``benchmark`` holds."""
    if _canonical(benchmark) == "h36m":
        return (H36M_3D_FILE, H36M_CAMERAS_FILE, h36m_2d_filename(DEFAULT_DETECTOR), MARKER_FILE)
    return (TEST_FILE, TRAIN_FILE, MARKER_FILE)


def ensure_synth(benchmark: str, seed: int = 0) -> Path:
    """The default-size synthetic ``benchmark`` for ``seed``, generated on first use.

    Generation happens under a lock beside the folder (``.<name>.lock``), into a temporary folder that
    is renamed into place, so a folder that exists under its final name is complete, and a complete
    folder is never removed: processes that start together on an empty cache wait for the first one
    and then read its files. Only a folder found incomplete (files removed by hand) is replaced."""
    from harness.locks import file_lock

    bench = _canonical(benchmark)
    seed = _check_seed(seed)
    final = default_synth_dir(bench, seed)
    names = synth_files(bench)

    def complete() -> bool:
        return all((final / n).is_file() for n in names)

    if complete():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(final.parent / f".{final.name}.lock"):
        if complete():  # another process generated it while this one waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; give the folder the usual mode
        try:
            (synth_h36m if bench == "h36m" else synth_3dhp)(tmp, seed=seed)
            if final.exists():  # incomplete (files removed by hand): move it aside first
                trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=final.parent))
                with contextlib.suppress(OSError):
                    os.replace(final, trash / "old")
                shutil.rmtree(trash, ignore_errors=True)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - convenience entry point
    """``python -m harness.data.synth OUT [--seed N]``: write both benchmarks, print timings."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    for name, fn in (("h36m", synth_h36m), ("3dhp", synth_3dhp)):
        t0 = time.perf_counter()
        paths = fn(a.out / name, seed=a.seed)
        dt = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in paths)
        print(f"{name}: {dt:.2f} s, {size / 1e6:.2f} MB: " + ", ".join(p.name for p in paths))


if __name__ == "__main__":  # pragma: no cover
    main()
