"""The kinematic body model: per-person bone lengths (:class:`Body`), per-frame controls
(:class:`Motion`), joint limits, two-bone IK and forward kinematics to the H36M 17 joints."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.data.synth._util import _rng, _unit
from harness.skeleton import H36M_PARENTS

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
# Rotations and two-bone IK
# ================================================================================================

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
