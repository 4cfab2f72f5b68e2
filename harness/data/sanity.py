"""Data sanity: is this plausibly human pose data in the units and conventions the loaders expect?

Pure, vectorised functions (after VideoPose3D's ``common/`` helpers) that the loaders
(:mod:`harness.data.h36m`, :mod:`harness.data.mpi3dhp`) and the camera reader
(:func:`harness.camera.load_cameras_h5`) call on the raw arrays of a file, before anything is built or
cached, and that ``harness data check`` lists. Each returns the text of a problem (or None); the
caller prefixes the file and the subject / action / camera or sequence, so every problem is one line.

Units and thresholds
--------------------
- **3D lengths.** The median bone length of a sequence (over its bones and up to
  :data:`MEDIAN_FRAMES` evenly spaced frames) must lie in :data:`PLAUSIBLE_BONE_M` = 0.05-1.5 m once
  converted from the file's unit (metres for VideoPose3D's ``data_3d_h36m.npz``, millimetres for
  P-STMO's 3DHP files). H36M's bones are 0.1-0.5 m (median ~0.25 m; 3DHP's ``univ_annot3`` is scaled
  to the same skeleton). Outside the range the unit that would make it plausible is named
  (millimetres, centimetres, metres), else the lengths are called implausible. An error: millimetres
  read as metres give a P1 of hundreds of thousands of millimetres.
- **Degenerate skeletons** (an error; counted over every frame, H36M 17-joint order): all joints at
  zero; every joint but the root at zero; a zero-length bone (shorter than :data:`ZERO_FRACTION` =
  1e-3 of the sequence's median bone: 0.25 mm for H36M); two joints that coincide (closer than the
  same tolerance, tested on up to :data:`COINCIDE_FRAMES` evenly spaced frames: 136 pairs each).
  Real H36M's shortest bone is 0.107 m and its closest joints 8 mm apart.
- **2D in pixels, inside the image.** An array whose finite values all lie within
  :data:`NORMALISED_MAX` = 2 in absolute value while the image is at least 100 px wide is already
  normalised (an error: the loaders normalise by image width themselves). A point more than one
  image size past the border (x outside [-w, 2w] or y outside [-h, 2h]) is far outside: a warning
  for some frames, an error when it is so in more than :data:`FAR_OUTSIDE_ERROR` = half of them. A
  frame whose 2D is all zero (a detector's miss) is a warning, an array that is all zero an error.
- **Cameras.** R must be a rotation: ``|R R^T - I| <= 1e-3`` and ``det R = +1 +- 1e-3``
  (:data:`ROTATION_TOL`); the focal lengths, principal point and image size finite and positive;
  T, k and p finite.
- **3DHP ``valid`` flags.** A sequence whose flags are all 0 leaves nothing to evaluate: an error.
- **Keys.** H36M subject and action keys must be strings (3DHP's sequence names must be known ones).

Cost: a few vectorised passes over each array (bone vectors, an exact-zero test, per-frame min/max
of the 2D); the pairwise test and the medians run on samples. Nothing is copied per frame beyond
the bone vectors.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = [
    "SANITY_VERSION", "PLAUSIBLE_BONE_M", "ZERO_FRACTION", "MEDIAN_FRAMES", "COINCIDE_FRAMES", "NORMALISED_MAX",
    "FAR_OUTSIDE_ERROR", "ROTATION_TOL", "UNIT_FACTORS", "bone_lengths", "median_bone_length", "unit_problem",
    "degenerate_problem", "pixel_problems", "camera_problems", "valid_problem", "key_type_problem", "grouped",
    "group_findings",
]

# Bump when a check changes what passes (it is part of the H36M cache key: a cached entry was checked).
SANITY_VERSION = 1

PLAUSIBLE_BONE_M = (0.05, 1.5)
BONE_TEXT = {"m": "H36M bones are 0.1-0.5 m", "mm": "3DHP bones are 100-500 mm"}
UNIT_FACTORS = {"m": 1.0, "cm": 0.01, "mm": 0.001}  # metres per unit
UNIT_NAMES = {"m": "metres", "cm": "centimetres", "mm": "millimetres"}
ZERO_FRACTION = 1e-3
MEDIAN_FRAMES = 256
COINCIDE_FRAMES = 64
NORMALISED_MAX = 2.0
FAR_OUTSIDE_ERROR = 0.5
ROTATION_TOL = 1e-3


def _sample(n: int, k: int) -> np.ndarray:
    """Up to ``k`` evenly spaced frame indices of ``n`` (first and last included)."""
    return np.arange(n) if n <= k else np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


def bone_lengths(pose: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """(F, J, 3) -> (F, B) lengths of the bones ``j -> parents[j]`` (roots skipped), in the pose's unit."""
    pose = np.asarray(pose)
    child = np.array([j for j, p in enumerate(parents) if p >= 0])
    parent = np.array([p for p in parents if p >= 0])
    d = pose[:, child] - pose[:, parent]
    return np.sqrt(np.einsum("fbk,fbk->fb", d, d))


def median_bone_length(pose: np.ndarray, parents: Sequence[int], frames: int = MEDIAN_FRAMES) -> float | None:
    """Median length over all bones of up to ``frames`` evenly spaced finite frames; None if none."""
    pose = np.asarray(pose)
    if pose.shape[0] == 0:
        return None
    sub = pose[_sample(pose.shape[0], frames)]
    sub = sub[np.isfinite(sub).all(axis=(1, 2))]
    if sub.shape[0] == 0:
        return None
    return float(np.median(bone_lengths(sub.astype(np.float64), parents)))


def unit_problem(median: float | None, unit: str = "m") -> tuple[str, str] | None:
    """``(what, detail)`` when a median bone length (in the file's ``unit``, "m" or "mm") is not a
    human's, else None. ``what`` names the unit it looks like: ``"3D looks like millimetres"``."""
    if median is None or not math.isfinite(median):
        return None
    lo, hi = PLAUSIBLE_BONE_M
    if lo <= median * UNIT_FACTORS[unit] <= hi:
        return None
    detail = f"median bone length {median:.4g}, {BONE_TEXT[unit]}"
    expect = f"the loaders expect {UNIT_NAMES[unit]}" if unit == "m" else "the 3DHP format holds millimetres"
    for other in ("mm", "cm", "m"):
        if other != unit and lo <= median * UNIT_FACTORS[other] <= hi:
            return f"3D looks like {UNIT_NAMES[other]}", f"{detail}; {expect}"
    return "3D bone lengths are implausible", f"{detail}; {expect}"


def degenerate_problem(pose: np.ndarray, parents: Sequence[int], joint_names: Sequence[str] | None = None,
                       frames: np.ndarray | None = None, root: int = 0, noun: str = "frames") -> str | None:
    """The text of one line when some frames of ``pose`` (F, J, 3), restricted to the boolean
    ``frames`` mask (default: all), are degenerate skeletons (see the module docstring); None when
    all are fine. Each bad frame is counted under its first kind: all joints at zero, every joint but
    the root at zero, a zero-length bone; coinciding joints are counted on a sample of the rest.
    Non-finite frames are skipped (the loaders report them)."""
    pose = np.asarray(pose)
    if frames is None:
        x, idx = pose, None
    else:
        idx = np.flatnonzero(frames)
        x = pose[idx]
    if x.shape[0] == 0:
        return None
    ok = np.isfinite(x).all(axis=(1, 2))
    if not ok.all():
        idx = np.flatnonzero(ok) if idx is None else idx[ok]
        x = x[ok]
        if x.shape[0] == 0:
            return None
    n = x.shape[0]
    frame_no = (lambda i: int(i)) if idx is None else (lambda i: int(idx[i]))  # noqa: E731
    names = list(joint_names) if joint_names is not None else [str(j) for j in range(pose.shape[1])]
    zero_j = (x == 0).all(axis=2)                               # (F, J): joint exactly at the origin
    all_zero = zero_j.all(axis=1)
    others = [j for j in range(pose.shape[1]) if j != root]
    but_root = zero_j[:, others].all(axis=1) & ~all_zero
    bones = bone_lengths(x, parents)                            # (F, B), in the file's unit
    keep = np.flatnonzero(~(all_zero | but_root))
    med = float(np.median(bones[keep[_sample(keep.size, MEDIAN_FRAMES)]])) if keep.size else 0.0
    tol = ZERO_FRACTION * med
    short = bones <= tol
    zero_bone = short.any(axis=1) & ~all_zero & ~but_root
    parts, first = [], []
    for label, mask in (("all joints at zero", all_zero), ("every joint but the root at zero", but_root)):
        if mask.any():
            parts.append(f"{label}: {int(mask.sum())}")
            first.append(frame_no(np.argmax(mask)))
    if zero_bone.any():
        child = [j for j, p in enumerate(parents) if p >= 0]
        f0 = int(np.argmax(zero_bone))
        c = child[int(np.argmax(short[f0]))]
        several = int(short[zero_bone].any(axis=0).sum()) > 1
        parts.append(f"zero-length bone {names[parents[c]]}-{names[c]}{' and others' if several else ''}: "
                     f"{int(zero_bone.sum())}")
        first.append(frame_no(f0))
    bad = int((all_zero | but_root | zero_bone).sum())
    sampled = 0
    rest = np.flatnonzero(~(all_zero | but_root | zero_bone))
    if rest.size and med > 0:  # coinciding joints (any pair, not only along bones), on a sample
        pick = rest[_sample(rest.size, COINCIDE_FRAMES)]
        s = x[pick].astype(np.float64)
        iu = np.triu_indices(pose.shape[1], 1)
        d = np.sqrt(((s[:, iu[0]] - s[:, iu[1]]) ** 2).sum(-1))  # (S, pairs)
        close = d <= tol
        hit = close.any(axis=1)
        if hit.any():
            f0 = int(np.argmax(hit))
            p0 = int(np.argmax(close[f0]))
            sampled = int(hit.sum())
            parts.append(f"joints {names[iu[0][p0]]} and {names[iu[1][p0]]} coincide: {sampled} of "
                         f"{pick.size} sampled frames")
            first.append(frame_no(pick[f0]))
            if pick.size < rest.size:
                bad = f"at least {bad + sampled}"
            else:
                bad += sampled
    if not parts:
        return None
    return f"degenerate 3D skeletons in {bad} of {n} {noun} ({'; '.join(parts)}; first: frame {min(first)})"


def pixel_problems(kp: np.ndarray, w: int, h: int) -> list[tuple[str, str, str]]:
    """Problems of one finite (F, J, 2) 2D array that should hold pixels of a ``w`` x ``h`` image:
    ``[(severity "error" | "warning", what, detail)]`` (``what`` names the problem, for grouping)."""
    kp = np.asarray(kp)
    out: list[tuple[str, str, str]] = []
    if kp.shape[0] == 0:
        return out
    x, y = kp[..., 0], kp[..., 1]
    xmin, xmax, ymin, ymax = x.min(axis=1), x.max(axis=1), y.min(axis=1), y.max(axis=1)
    frame_zero = (xmin == 0) & (xmax == 0) & (ymin == 0) & (ymax == 0)
    if frame_zero.all():
        return [("error", "2D is all zero", f"{kp.shape[0]} frames")]
    live = ~frame_zero
    peak = float(max(np.abs(xmin[live]).max(), np.abs(xmax[live]).max(), np.abs(ymin[live]).max(),
                     np.abs(ymax[live]).max()))
    if w >= 100 and peak <= NORMALISED_MAX:
        return [("error", "2D looks already normalised to [-1, 1]",
                 f"all |values| <= {peak:.3g} while the image is {w} px wide; expected pixels")]
    if frame_zero.any():
        out.append(("warning", f"2D is all zero in {int(frame_zero.sum())} of {kp.shape[0]} frames",
                    f"first: frame {int(np.argmax(frame_zero))} (a detector's misses?)"))
    far_frames = (xmin < -w) | (xmax > 2 * w) | (ymin < -h) | (ymax > 2 * h)
    if far_frames.any():
        k = int(far_frames.sum())
        f0 = int(np.argmax(far_frames))
        far = (x[f0] < -w) | (x[f0] > 2 * w) | (y[f0] < -h) | (y[f0] > 2 * h)
        j0 = int(np.argmax(far))
        sev = "error" if k > FAR_OUTSIDE_ERROR * kp.shape[0] else "warning"
        out.append((sev, f"2D far outside the {w}x{h} image in {k} of {kp.shape[0]} frames",
                    f"more than one image size past the border; first: frame {f0}, joint {j0} at "
                    f"({float(x[f0, j0]):.1f}, {float(y[f0, j0]):.1f}) px"))
    return out


def camera_problems(R: Any, T: Any, f: Any, c: Any, k: Any, p: Any, res_w: Any, res_h: Any) -> list[str]:
    """What is wrong with one camera's calibration (empty when it is a camera)."""
    out = []
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3) or not np.isfinite(R).all():
        out.append(f"R is not a finite 3x3 matrix (shape {R.shape})")
    else:
        with np.errstate(all="ignore"):  # a hostile R (1e300 entries) overflows: inf, not a rotation
            err = float(np.abs(R @ R.T - np.eye(3)).max())
            det = float(np.linalg.det(R))
        if err > ROTATION_TOL or abs(det - 1.0) > ROTATION_TOL:
            out.append(f"R is not a rotation (max |R R^T - I| = {err:.3g}, det {det:.3g}; expected orthonormal "
                       f"with det +1 within {ROTATION_TOL:g})")
    for name, v, what in (("f", f, "focal length"), ("c", c, "principal point")):
        v = np.asarray(v, dtype=np.float64).ravel()
        if not (np.isfinite(v).all() and (v > 0).all()):
            out.append(f"{what} {name} = [{', '.join(f'{x:g}' for x in v)}] px is not finite and positive")
    for name, v in (("T", T), ("k", k), ("p", p)):
        v = np.asarray(v, dtype=np.float64).ravel()
        if not np.isfinite(v).all():
            out.append(f"{name} holds NaN/inf")
    try:
        ok = all(math.isfinite(float(v)) and float(v) > 0 for v in (res_w, res_h))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        out.append(f"image size {res_w}x{res_h} px is not positive")
    return out


def valid_problem(valid: np.ndarray) -> str | None:
    """3DHP: a ``valid`` flag array that leaves no frame to evaluate."""
    valid = np.asarray(valid)
    if valid.size and not valid.any():
        return f"no valid frames (all {valid.size} 'valid' flags are 0): nothing to evaluate"
    return None


def key_type_problem(mapping: dict, what: str, example: str) -> str | None:
    """A dict whose keys are not all strings (subject / action / sequence names)."""
    for key in mapping:
        if not isinstance(key, str):
            return f"{what} key {key!r} ({type(key).__name__}) is not a string; expected names like {example!r}"
    return None


def grouped(path: Any, what: str, detail: str, locations: Sequence[str], total: int, noun: str) -> str:
    """One line for one problem found at several places: ``"<path>: <loc>: <what>: <detail>"`` for one,
    ``"<path>: <what> in <k> of <n> <noun> (<first three>, ...): <detail>"`` for several."""
    if len(locations) == 1:
        return f"{path}: {locations[0]}: {what}: {detail}"
    shown = ", ".join(locations[:3]) + (", ..." if len(locations) > 3 else "")
    return f"{path}: {what} in {len(locations)} of {total} {noun} ({shown}): {detail}"


def group_findings(path: Any, findings: Iterable[tuple[str, str, str]], total: int, noun: str) -> list[str]:
    """``[(location, what, detail)]`` -> one line per distinct ``what`` (:func:`grouped`), in order of
    first appearance; the detail shown is the first one's."""
    by: dict[str, list[tuple[str, str]]] = {}
    for loc, what, detail in findings:
        by.setdefault(what, []).append((loc, detail))
    return [grouped(path, what, items[0][1], [loc for loc, _ in items], total, noun) for what, items in by.items()]
