"""Motion programs: one per H36M action (gait with planted feet, sitting, gestures, bending, ...),
each turning a random stream into the per-frame controls of a :class:`~.body.Motion`, and
:func:`generate_motion`, which runs one through forward kinematics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.data.synth.body import TEMPLATE_BODY, Body, Motion, forward_kinematics
from harness.skeleton import H36M_ACTIONS

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


def _heading_vectors(h):
    """Forward and left unit vectors (..., 2) of headings ``h`` (radians)."""
    fwd = np.stack([np.cos(h), np.sin(h)], axis=-1)
    left = np.stack([-np.sin(h), np.cos(h)], axis=-1)
    return fwd, left


def _lr(v):
    """A left-arm vector and its mirror for the right arm: (2, 3)."""
    v = np.asarray(v, dtype=np.float64)
    return np.stack([v, v * np.array([1.0, -1.0, 1.0])])


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
