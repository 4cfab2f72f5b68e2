"""Human3.6M over VideoPose3D's file formats: 3D positions, 2D keypoints, GT-2D derivation.

Files (in one data folder)
--------------------------
- ``data_3d_h36m.npz``: ``positions_3d[subject][action]`` -> (F, 32 or 17, 3) float32, metres, world
  frame (VideoPose3D's ``prepare_data_h36m.py`` output).
- ``cameras.h5``: the four cameras of each subject (see :mod:`harness.camera`).
- ``data_2d_h36m_<keypoints>.npz``: ``positions_2d[subject][action]`` -> list of one (F, J, 2) pixel
  array per camera (cameras.h5 order) and ``metadata`` = {'num_joints', 'keypoints_symmetry'
  [[left], [right]], optionally 'layout_name'}. ``keypoints`` is ``gt``, ``cpn_ft_h36m_dbb``,
  ``sh_pt_mpii`` or any other name.

When ``keypoints == "gt"`` and ``data_2d_h36m_gt.npz`` is absent, the GT 2D is derived from the 3D and
the cameras exactly as VideoPose3D's ``prepare_data_h36m.py`` does (world -> camera -> distorted
projection, pixel space, float32). Like VideoPose3D (whose ``Human36mDataset`` drops the 15 static
joints before projecting), the derived file has the 17 joints, ``metadata = {'layout_name': 'h36m',
'num_joints': 17, 'keypoints_symmetry': [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}``.

2D joint layouts (told apart by ``num_joints`` and ``keypoints_symmetry``)
--------------------------------------------------------------------------
- 17 joints, H36M order (GT, CPN): used as is.
- 32 joints, H36M's full order: reduced to the 17 (:data:`H36M32_TO_17`).
- 16 joints, Stacked-Hourglass/MPII order (VideoPose3D's ``sh_pt_mpii`` / ``sh_ft_h36m``, symmetry
  [[3, 4, 5, 13, 14, 15], [0, 1, 2, 10, 11, 12]]): permuted into H36M order without Neck/Nose with
  3d-pose-baseline's ``SH_TO_GT_PERM``; the 3D drops Neck/Nose (:data:`SH16_FROM_H36M17`) to match.
- 16 joints already in H36M order without Neck/Nose: used as is, 3D drops Neck/Nose.
Any other layout (e.g. COCO-ordered detections) is refused: PoseSets are in H36M joint order.

DiffPose's per-frame GMM 2D (``keypoints`` ``<name>_gmm``, e.g. ``cpn_ft_h36m_dbb_gmm``, ``gt_gmm``):
``data_2d_h36m_<name>_gmm.npz`` holds (F, 17, K, 5) arrays ``[weight, mu_u, mu_v, sigma_u, sigma_v]`` per
camera, mu in pixels, sigma in normalised screen units (:mod:`harness.data.gmm2d`). ``pose_2d`` is the
heaviest kernel's mu (normalised; the first on ties) and ``meta["gmm_2d"]`` the kernels (N, 17, K, 5)
float32, mu normalised like ``pose_2d``, weights and sigmas as stored. Only the 17-joint H36M order.

Frame counts: a 2D sequence longer than its 3D is cropped to the 3D length (as VideoPose3D's
``run.py`` does); a shorter one is an error. 2D sequences whose subject/action is not in the 3D are
ignored (as VideoPose3D does) and reported as warnings; every 3D sequence must be in the 2D.

Sanity (:mod:`harness.data.sanity`), on the raw arrays before anything is built or cached, in
:func:`build_h36m`, :func:`prepare_gt_2d` and :func:`scan_h36m` alike: subject and action keys are
strings; the 3D is in metres (a millimetre file is named as such) with no degenerate skeletons (all
joints at zero, every joint but the root at zero, zero-length bones, coinciding joints); every camera
in ``cameras.h5`` is one (R a rotation, focal length, principal point and image size positive); a 2D
file holds pixels (not already normalised) and inside the image (points far outside: a warning, an
error when most frames have them). The H36M cache key holds the checks' version, so a cache hit is an
entry that passed them; its warnings are logged again on a hit.
"""

from __future__ import annotations

import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from harness.camera import Camera, load_cameras_h5, normalize_screen_coordinates, project_to_2d, world_to_camera
from harness.data import sanity
from harness.data.base import H36M_TEST_SUBJECTS, H36M_TRAIN_SUBJECTS, PoseSet
from harness.data.gmm2d import GMM_SUFFIX, gmm_array_problem, heaviest_kernel
from harness.errors import ConfigError, DataError
from harness.safeio import load_npz, save_npz
from harness.skeleton import (
    H36M32_TO_17,
    H36M_ACTIONS,
    H36M_JOINT_NAMES,
    H36M_JOINTS_LEFT,
    H36M_JOINTS_RIGHT,
    H36M_PARENTS,
    SH16_FROM_H36M17,
    SH16_JOINTS_LEFT,
    SH16_JOINTS_RIGHT,
    SH16_PARENTS,
)

__all__ = [
    "H36M_3D_FILE", "H36M_CAMERAS_FILE", "H36M_LOADER_VERSION", "ACTION_ALIASES", "H36MScanReport",
    "h36m_2d_filename", "canonical_action", "read_positions_3d", "read_positions_2d", "derive_gt_2d",
    "write_gt_2d", "prepare_gt_2d", "build_h36m", "load_h36m", "scan_h36m",
]

log = logging.getLogger(__name__)

H36M_3D_FILE = "data_3d_h36m.npz"
H36M_CAMERAS_FILE = "cameras.h5"
# Bump when the arrays load_h36m returns change for the same files (invalidates the cache).
H36M_LOADER_VERSION = 1

# VideoPose3D / original-H36M spellings -> the names in harness.skeleton.H36M_ACTIONS.
from harness.protocols import ACTION_ALIASES, action_name  # noqa: E402  (one definition of action names)

# The 32-joint skeleton's sides (VideoPose3D's h36m_skeleton).
_H36M32_LEFT = (6, 7, 8, 9, 10, 16, 17, 18, 19, 20, 21, 22, 23)
_H36M32_RIGHT = (1, 2, 3, 4, 5, 24, 25, 26, 27, 28, 29, 30, 31)
# Stacked Hourglass (MPII) order -> H36M order less Neck/Nose (3d-pose-baseline's SH_TO_GT_PERM).
SH_TO_GT_PERM = (6, 2, 1, 0, 3, 4, 5, 7, 8, 9, 13, 14, 15, 12, 11, 10)
_SH_MPII_LEFT = (3, 4, 5, 13, 14, 15)
_SH_MPII_RIGHT = (0, 1, 2, 10, 11, 12)

_GT_METADATA = {"layout_name": "h36m", "num_joints": 17,
                "keypoints_symmetry": [list(H36M_JOINTS_LEFT), list(H36M_JOINTS_RIGHT)]}
# The 16-joint GT file (H36M order less Neck/Nose; keypoints name "gt16"), as the loader reads it back.
_GT16_METADATA = {"layout_name": "h36m16", "num_joints": len(SH16_FROM_H36M17),
                  "keypoints_symmetry": [list(SH16_JOINTS_LEFT), list(SH16_JOINTS_RIGHT)]}


@dataclass(frozen=True)
class _Layout:
    """How a 2D file's joints map onto the PoseSet's joints."""

    name: str
    num_joints: int                 # joints in the 2D file
    left: tuple[int, ...]           # keypoints_symmetry as written in the file
    right: tuple[int, ...]
    perm_2d: tuple[int, ...] | None  # file joint order -> PoseSet order (None: as is)
    keep_3d: tuple[int, ...] | None  # H36M-17 joints the 3D keeps (None: all 17)


_LAYOUTS = (
    _Layout("h36m17", 17, H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT, None, None),
    _Layout("h36m32", 32, _H36M32_LEFT, _H36M32_RIGHT, H36M32_TO_17, None),
    _Layout("sh16_mpii", 16, _SH_MPII_LEFT, _SH_MPII_RIGHT, SH_TO_GT_PERM, SH16_FROM_H36M17),
    _Layout("h36m16", 16, SH16_JOINTS_LEFT, SH16_JOINTS_RIGHT, None, SH16_FROM_H36M17),
)


def h36m_2d_filename(keypoints: str) -> str:
    return f"data_2d_h36m_{keypoints}.npz"


def _is_gmm(keypoints: str) -> bool:
    """``<name>_gmm``: DiffPose's per-frame GMM 2D layout (:mod:`harness.data.gmm2d`)."""
    return keypoints.endswith(GMM_SUFFIX) and len(keypoints) > len(GMM_SUFFIX)


def canonical_action(name: str) -> str | None:
    """H36M sequence name -> action in :data:`H36M_ACTIONS` ("Walking 1" -> "Walking",
    "TakingPhoto 1" -> "Photo"); None when the name maps to no H36M action."""
    base = action_name(name)
    return base if base in H36M_ACTIONS else None


# ------------------------------------------------------------------------------------------ reading
def _sorted_subjects(subjects: Iterable[str]) -> list[str]:
    def key(s: str):
        m = re.match(r"^S(\d+)$", s)
        return (0, int(m.group(1)), s) if m else (1, 0, s)

    return sorted(subjects, key=key)


def read_positions_3d(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """``positions_3d`` of a ``data_3d_h36m.npz`` (structure checked; per-array checks are done by
    the loader / scanner so that all problems can be listed)."""
    path = Path(path)
    data = load_npz(path)
    if "positions_3d" not in data:
        raise DataError(f"{path}: no 'positions_3d' entry (found: {', '.join(sorted(data)) or 'nothing'})")
    pos = data["positions_3d"]
    if not isinstance(pos, dict) or not all(isinstance(v, dict) for v in pos.values()):
        raise DataError(f"{path}: 'positions_3d' is not a dict subject -> action -> array")
    if not pos:
        raise DataError(f"{path}: 'positions_3d' holds no subject")
    _check_keys(pos, path, "positions_3d")
    return pos


def _check_keys(pos: dict, path: Path, entry: str) -> None:
    """Subject and action keys must be strings (names like 'S1', 'Walking 1')."""
    why = sanity.key_type_problem(pos, "subject", "S1")
    if why is None:
        for subject, actions in pos.items():
            why = sanity.key_type_problem(actions, f"{subject} action", "Walking 1")
            if why is not None:
                break
    if why is not None:
        raise DataError(f"{path}: '{entry}' {why}")


def read_positions_2d(path: str | Path) -> tuple[dict[str, dict[str, Any]], dict]:
    """(``positions_2d``, ``metadata``) of a ``data_2d_h36m_<keypoints>.npz``."""
    path = Path(path)
    data = load_npz(path)
    if "positions_2d" not in data:
        raise DataError(f"{path}: no 'positions_2d' entry (found: {', '.join(sorted(data)) or 'nothing'})")
    pos = data["positions_2d"]
    if not isinstance(pos, dict) or not all(isinstance(v, dict) for v in pos.values()):
        raise DataError(f"{path}: 'positions_2d' is not a dict subject -> action -> list of per-camera arrays")
    _check_keys(pos, path, "positions_2d")
    meta = data.get("metadata")
    if meta is None:
        raise DataError(f"{path}: no 'metadata' entry (VideoPose3D layout needs num_joints and keypoints_symmetry)")
    if not isinstance(meta, dict):
        raise DataError(f"{path}: 'metadata' is not a dict")
    return pos, meta


def _layout_from_metadata(meta: dict, path: Path) -> _Layout:
    try:
        nj = int(meta["num_joints"])
    except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        raise DataError(f"{path}: metadata has no integer 'num_joints'") from None
    sym = meta.get("keypoints_symmetry")
    try:
        left, right = (tuple(int(v) for v in side) for side in sym)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{path}: metadata 'keypoints_symmetry' is not [[left joints], [right joints]]") from None
    for lay in _LAYOUTS:
        if lay.num_joints == nj and sorted(lay.left) == sorted(left) and sorted(lay.right) == sorted(right):
            return lay
    raise DataError(
        f"{path}: unsupported 2D joint layout (num_joints {nj}, keypoints_symmetry {[list(left), list(right)]}"
        f"{', layout ' + repr(meta['layout_name']) if 'layout_name' in meta else ''}); supported: H36M 17/32 "
        "joints, H36M 16 without Neck/Nose, Stacked-Hourglass/MPII 16")


# ----------------------------------------------------------------------------------- GT derivation
def _select_17(arr: np.ndarray) -> np.ndarray:
    return arr[:, list(H36M32_TO_17)] if arr.shape[1] == 32 else arr


def derive_gt_2d(positions_3d: dict, cameras: dict[str, list[Camera]]) -> dict[str, dict[str, list[np.ndarray]]]:
    """GT 2D keypoints as VideoPose3D's ``prepare_data_h36m.py`` computes them: for every
    subject/action/camera, world -> camera, distorted projection, pixel space, float32, 17 joints
    (32-joint input is reduced first; the projection is per joint, so this equals projecting all 32
    and selecting). ``cameras`` as :func:`harness.camera.load_cameras_h5` returns them."""
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject, actions in positions_3d.items():
        if subject not in cameras:
            raise DataError(f"derive_gt_2d: no cameras for subject {subject}")
        out[subject] = {}
        for action, pos in actions.items():
            pos = _select_17(np.asarray(pos))
            out[subject][action] = [project_to_2d(world_to_camera(pos, cam), cam).astype(np.float32)
                                    for cam in cameras[subject]]
    return out


def write_gt_2d(path: str | Path, positions_2d: dict, joints: int = 17) -> Path:
    """Write a derived GT 2D dict (17 joints) as ``data_2d_h36m_gt.npz`` (VideoPose3D layout),
    atomically; ``joints=16`` drops Neck/Nose first (:data:`SH16_FROM_H36M17`) and writes the
    16-joint metadata (the file :func:`prepare_gt_2d` names ``data_2d_h36m_gt16.npz``)."""
    if joints not in (16, 17):
        raise ConfigError(f"GT 2D joints {joints}: expected 17 or 16 (H36M less Neck/Nose)")
    path = Path(path)
    meta = _GT_METADATA
    if joints == 16:
        keep = list(SH16_FROM_H36M17)
        positions_2d = {s: {a: [np.ascontiguousarray(np.asarray(v)[:, keep]) for v in views]
                            for a, views in acts.items()} for s, acts in positions_2d.items()}
        meta = _GT16_METADATA
    save_npz(path, positions_2d=positions_2d, metadata=dict(meta))
    return path


def prepare_gt_2d(data_root: str | Path, out: str | Path, joints: int = 17) -> Path:
    """Derive ``data_2d_h36m_gt.npz`` from ``data_root``'s 3D and cameras and write it into the folder
    ``out`` (atomically). Returns the written path. ``joints=16`` writes ``data_2d_h36m_gt16.npz``
    instead: the same keypoints less Neck/Nose, in H36M order (keypoints name ``gt16``)."""
    if joints not in (16, 17):
        raise ConfigError(f"GT 2D joints {joints}: expected 17 or 16 (H36M less Neck/Nose)")
    data_root, out = Path(data_root), Path(out)
    p3 = _need_file(data_root / H36M_3D_FILE)
    pc = _need_file(data_root / H36M_CAMERAS_FILE)
    pos3d = read_positions_3d(p3)
    cams = load_cameras_h5(pc)
    problems: list[str] = []
    _check_3d(pos3d, p3, cams, pc, problems, subjects=None)
    _raise_problems(problems)
    target = out / h36m_2d_filename("gt" if joints == 17 else "gt16")
    try:
        return write_gt_2d(target, derive_gt_2d(pos3d, cams), joints=joints)
    except OSError as e:
        raise DataError(f"{target}: cannot write ({e.strerror or e})") from None


# ---------------------------------------------------------------------------------------- checking
def _need_file(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def _raise_problems(problems: list[str]) -> None:
    if problems:
        n = len(problems) - 1
        more = f" (and {n} more problem(s); 'harness data check' lists them all)" if n else ""
        raise DataError(problems[0] + more)


def _check_3d(pos3d: dict, path: Path, cams: dict, cam_path: Path, problems: list[str],
              subjects: Iterable[str] | None) -> int | None:
    """Append every problem of the 3D (restricted to ``subjects``) to ``problems``; returns the joint
    count (17 or 32) when consistent."""
    joints: set[int] = set()
    units: list[tuple[str, str, str]] = []  # (sequence, what, detail): one line per kind for the file
    checked = 0
    for subject in _sorted_subjects(pos3d if subjects is None else subjects):
        if subject not in pos3d:
            problems.append(f"{path}: subject {subject} not found (file has {', '.join(_sorted_subjects(pos3d))})")
            continue
        if subject not in cams:
            problems.append(f"{cam_path}: no cameras for subject {subject} (needed by {path.name})")
        elif len(cams[subject]) == 0:
            problems.append(f"{cam_path}: subject {subject} has no cameras")
        if not pos3d[subject]:
            problems.append(f"{path}: subject {subject} has no sequences")
        for action in sorted(pos3d[subject]):
            arr = pos3d[subject][action]
            where = f"{path}: {subject} '{action}'"
            if canonical_action(action) is None:
                problems.append(f"{where}: action name maps to none of the 15 H36M actions")
            if not isinstance(arr, np.ndarray) or arr.ndim != 3 or arr.shape[-1] != 3 or arr.shape[1] not in (17, 32):
                shape = getattr(arr, "shape", type(arr).__name__)
                problems.append(f"{where}: expected a (frames, 32 or 17, 3) array, got {shape}")
                continue
            if not np.issubdtype(arr.dtype, np.floating):
                problems.append(f"{where}: dtype {arr.dtype} is not floating point")
                continue
            if arr.shape[0] == 0:
                problems.append(f"{where}: no frames")
            joints.add(arr.shape[1])
            x17 = _select_17(arr)
            bad = ~np.isfinite(x17).all(axis=(1, 2))
            if bad.any():
                problems.append(f"{where}: {int(bad.sum())} frame(s) with NaN/inf (first: frame {int(np.argmax(bad))})")
            checked += 1
            why = sanity.degenerate_problem(x17, H36M_PARENTS, H36M_JOINT_NAMES)
            if why is not None:
                problems.append(f"{where}: {why}")
                continue
            unit = sanity.unit_problem(sanity.median_bone_length(x17, H36M_PARENTS), "m")
            if unit is not None:
                units.append((f"{subject} '{action}'", *unit))
    problems += sanity.group_findings(path, units, checked, "sequences")
    if len(joints) > 1:
        problems.append(f"{path}: sequences have different joint counts {sorted(joints)}")
        return None
    return joints.pop() if joints else None


def _check_2d(pos2d: dict, path: Path, layout: _Layout, pos3d: dict, path3d: Path, cams: dict,
              subjects: Iterable[str], problems: list[str], warnings: list[str], gmm: bool = False) -> None:
    """Every 3D sequence of ``subjects`` must be in the 2D, with one array per camera, the layout's
    joint count, at least the 3D's frames and finite values over those frames. ``gmm``: the arrays
    are DiffPose's (frames, 17, kernels, 5) kernels (:func:`harness.data.gmm2d.gmm_array_problem`),
    with one kernel count throughout."""
    subjects = [s for s in subjects if s in pos3d]
    if gmm and layout.name != "h36m17":
        problems.append(f"{path}: GMM 2D kernels need the 17 joints in H36M order (DiffPose's layout); "
                        f"the metadata describes {layout.name}")
        return
    kernel_counts: set[int] = set()
    pixel_errors: list[tuple[str, str, str]] = []    # (camera array, what, detail)
    pixel_warnings: list[tuple[str, str, str]] = []
    arrays = 0
    for subject in subjects:
        if subject not in pos2d:
            problems.append(f"{path}: subject {subject} missing (it is in {path3d.name})")
            continue
        missing = [a for a in sorted(pos3d[subject]) if a not in pos2d[subject]]
        if missing:
            problems.append(f"{path}: {subject} lacks {len(missing)} sequence(s) that {path3d.name} has: "
                            + ", ".join(repr(a) for a in missing))
        n_cams = len(cams.get(subject, ()))
        for action in sorted(pos3d[subject]):
            if action not in pos2d[subject]:
                continue
            where = f"{path}: {subject} '{action}'"
            views = pos2d[subject][action]
            if not isinstance(views, (list, tuple)):
                problems.append(f"{where}: expected a list of per-camera arrays, got {type(views).__name__}")
                continue
            if n_cams and len(views) != n_cams:
                problems.append(f"{where}: {len(views)} camera(s), cameras.h5 has {n_cams} for {subject}")
            a3 = pos3d[subject][action]
            n3 = a3.shape[0] if isinstance(a3, np.ndarray) and a3.ndim == 3 else None
            for ci, kp in enumerate(views):
                cid = cams[subject][ci].id if subject in cams and ci < len(cams[subject]) else "?"
                cw = f"{where} camera {ci} ({cid})"
                if gmm:
                    why = gmm_array_problem(kp, n3)
                    if why is None and kp.shape[1] != layout.num_joints:
                        why = f"{kp.shape[1]} joints, metadata num_joints is {layout.num_joints}"
                    if why is None and n3 is not None and kp.shape[0] < n3:
                        why = f"2D has {kp.shape[0]} frames, fewer than the 3D's {n3}"
                    if why is not None:
                        problems.append(f"{cw}: {why}")
                    else:
                        kernel_counts.add(int(kp.shape[2]))
                    continue
                if not isinstance(kp, np.ndarray) or kp.ndim != 3 or kp.shape[-1] != 2:
                    shape = getattr(kp, "shape", type(kp).__name__)
                    problems.append(f"{cw}: expected a (frames, joints, 2) array, got {shape}")
                    continue
                if not np.issubdtype(kp.dtype, np.floating):
                    problems.append(f"{cw}: dtype {kp.dtype} is not floating point")
                    continue
                if kp.shape[1] != layout.num_joints:
                    problems.append(f"{cw}: {kp.shape[1]} joints, metadata num_joints is {layout.num_joints}")
                    continue
                if n3 is not None and kp.shape[0] < n3:
                    problems.append(f"{cw}: 2D has {kp.shape[0]} frames, fewer than the 3D's {n3}")
                    continue
                bad = ~np.isfinite(kp[:n3]).all(axis=(1, 2))
                if bad.any():
                    problems.append(f"{cw}: {int(bad.sum())} frame(s) with NaN/inf "
                                    f"(first: frame {int(np.argmax(bad))})")
                    continue
                if subject in cams and ci < len(cams[subject]):
                    arrays += 1
                    cam = cams[subject][ci]
                    for severity, what, detail in sanity.pixel_problems(kp[:n3], cam.res_w, cam.res_h):
                        (pixel_errors if severity == "error" else pixel_warnings).append(
                            (f"{subject} '{action}' camera {ci} ({cid})", what, detail))
    problems += sanity.group_findings(path, pixel_errors, arrays, "camera arrays")
    warnings += sanity.group_findings(path, pixel_warnings, arrays, "camera arrays")
    if len(kernel_counts) > 1:
        problems.append(f"{path}: arrays have different kernel counts {sorted(kernel_counts)}")
    extra = [(s, a) for s in _sorted_subjects(pos2d) for a in sorted(pos2d[s])
             if s not in pos3d or a not in pos3d[s]]
    if extra:
        shown = ", ".join(f"{s} '{a}'" for s, a in extra[:6]) + (", ..." if len(extra) > 6 else "")
        warnings.append(f"{path}: {len(extra)} sequence(s) not in {path3d.name} are ignored: {shown}")


# ----------------------------------------------------------------------------------------- loading
@dataclass
class _Sources:
    data_root: Path
    keypoints: str
    path_3d: Path
    path_cameras: Path
    path_2d: Path | None  # None: GT 2D derived in memory

    def files(self) -> list[Path]:
        return [p for p in (self.path_3d, self.path_cameras, self.path_2d) if p is not None]


def _sources(data_root: str | Path, keypoints: str) -> _Sources:
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise DataError(f"{data_root}: data folder not found")
    from harness.guards import check_keypoints

    check_keypoints(keypoints or "")  # the CLI's rule: a name, no path
    p3 = _need_file(data_root / H36M_3D_FILE)
    pc = _need_file(data_root / H36M_CAMERAS_FILE)
    p2 = data_root / h36m_2d_filename(keypoints)
    if not p2.is_file():
        if keypoints != "gt":
            hint = (f"; `harness data gmm --keypoints {keypoints[:-len(GMM_SUFFIX)]}` writes one"
                    if _is_gmm(keypoints) else "")
            raise DataError(f"{p2}: file not found (2D keypoints '{keypoints}'{hint})")
        p2 = None
    return _Sources(data_root, keypoints, p3, pc, p2)


def _resolve_subjects(subjects: Iterable[str] | None, available: Iterable[str] | None = None) -> tuple[str, ...]:
    standard = H36M_TRAIN_SUBJECTS + H36M_TEST_SUBJECTS
    if subjects is None:
        return tuple(s for s in standard if available is None or s in available)
    if isinstance(subjects, str):
        subjects = [subjects]
    chosen = set(subjects)
    unknown = sorted(chosen - set(standard))
    if unknown:
        raise ConfigError(f"subjects {unknown}: not H36M subjects of the standard split ({', '.join(standard)})")
    return tuple(s for s in standard if s in chosen)


def _empty_poseset(num_joints: int, meta: dict) -> PoseSet:
    s = np.zeros(0, dtype="<U1")
    return PoseSet(pose_2d=np.zeros((0, num_joints, 2), np.float32), pose_3d=np.zeros((0, num_joints, 3), np.float32),
                   subject=s, action=s.copy(), sequence=s.copy(), camera=np.zeros(0, np.int16),
                   frame=np.zeros(0, np.int32), valid=np.zeros(0, bool), meta=meta)


def _assemble(subjects: tuple[str, ...], pos3d: dict, pos2d: dict | None, cams: dict, layout: _Layout,
              meta: dict, gmm: bool = False) -> PoseSet:
    """One split's PoseSet: every frame of every camera, vectorised per sequence/camera and written
    into preallocated arrays (two threads: numpy releases the GIL). ``pos3d`` holds the 17 joints;
    ``pos2d=None`` derives the GT 2D on the fly (same numbers as :func:`derive_gt_2d`). ``gmm``:
    ``pos2d`` holds checked (F, 17, K, 5) kernels; ``pose_2d`` is the heaviest one's normalised mu and
    ``meta["gmm_2d"]`` the kernels, mu normalised."""
    keep = list(layout.keep_3d) if layout.keep_3d is not None else None
    perm = list(layout.perm_2d) if layout.perm_2d is not None else None
    num_joints = len(keep) if keep is not None else 17
    blocks = []  # (subject, action name, camera index, start, frames)
    start = 0
    for subject in subjects:
        for action in sorted(pos3d[subject]):
            n = int(pos3d[subject][action].shape[0])
            for ci in range(len(cams[subject])):
                blocks.append((subject, action, ci, start, n))
                start += n
    total = start
    if total == 0:
        return _empty_poseset(num_joints, meta)
    pose_2d = np.empty((total, num_joints, 2), np.float32)
    pose_3d = np.empty((total, num_joints, 3), np.float32)
    camera = np.empty(total, np.int16)
    frame = np.empty(total, np.int32)
    gmm_2d = None
    if gmm:
        K = next(int(v[0].shape[2]) for s in subjects for v in (pos2d[s][a] for a in sorted(pos3d[s])) if v)
        gmm_2d = np.empty((total, num_joints, K, 5), np.float32)

    def fill(block) -> None:
        subject, action, ci, s0, n = block
        cam = cams[subject][ci]
        world = pos3d[subject][action]
        if keep is not None:
            world = world[:, keep]
        xc = world_to_camera(world, cam)
        if pos2d is None:
            kp = project_to_2d(xc, cam).astype(np.float32)  # pixels, as a derived GT file stores them
        elif gmm_2d is not None:
            g = np.array(pos2d[subject][action][ci][:n], dtype=np.float64)
            g[..., 1:3] = normalize_screen_coordinates(g[..., 1:3], cam.res_w, cam.res_h)
            gmm_2d[s0:s0 + n] = g
            h = heaviest_kernel(g[..., 0])
            kp = np.take_along_axis(g[..., 1:3], h[..., None, None], axis=2)[:, :, 0]  # normalised already
        else:
            kp = np.asarray(pos2d[subject][action][ci][:n])
            if perm is not None:
                kp = kp[:, perm]
        pose_3d[s0:s0 + n] = xc - xc[:, :1]  # root-relative: joint 0 is exactly 0
        pose_2d[s0:s0 + n] = (kp if gmm_2d is not None
                              else normalize_screen_coordinates(kp.astype(np.float64), cam.res_w, cam.res_h))
        camera[s0:s0 + n] = ci
        frame[s0:s0 + n] = np.arange(n, dtype=np.int32)

    workers = max(1, min(2, os.cpu_count() or 1))
    if workers > 1 and len(blocks) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(fill, blocks))
    else:
        for b in blocks:
            fill(b)
    if gmm_2d is not None:
        meta = dict(meta, gmm_2d=gmm_2d)
    lengths = np.array([b[4] for b in blocks])
    col = lambda values: np.repeat(np.array(values), lengths)  # noqa: E731
    return PoseSet(pose_2d=pose_2d, pose_3d=pose_3d, subject=col([b[0] for b in blocks]),
                   action=col([canonical_action(b[1]) for b in blocks]), sequence=col([b[1] for b in blocks]),
                   camera=camera, frame=frame, valid=np.ones(total, bool), meta=meta)


def _meta(src: _Sources, layout: _Layout, split: str, subjects: tuple[str, ...]) -> dict:
    if layout.keep_3d is not None:  # 16 joints: H36M less Neck/Nose
        names = [H36M_JOINT_NAMES[j] for j in layout.keep_3d]
        parents, left, right = SH16_PARENTS, SH16_JOINTS_LEFT, SH16_JOINTS_RIGHT
    else:
        names, parents, left, right = list(H36M_JOINT_NAMES), H36M_PARENTS, H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT
    return {
        "dataset": "h36m",
        "split": split,
        "subjects": list(subjects),
        "keypoints": src.keypoints,
        "layout_2d": layout.name,
        "num_joints": len(names),
        "joint_names": names,
        "parents": list(parents),
        # 2D sides (from the 2D file's keypoints_symmetry, in PoseSet order) and 3D sides (skeleton):
        # the same joints once the 2D is in H36M order.
        "kps_left": list(left),
        "kps_right": list(right),
        "joints_left": list(left),
        "joints_right": list(right),
        "fps": 50,
        "gt_2d_derived": src.path_2d is None,
        "sources": {"positions_3d": str(src.path_3d.resolve()), "cameras": str(src.path_cameras.resolve()),
                    "positions_2d": (str(src.path_2d.resolve()) if src.path_2d is not None
                                     else "derived from positions_3d + cameras")},
    }


def build_h36m(data_root: str | Path, keypoints: str = "gt",
               subjects: Iterable[str] | None = None) -> dict[str, PoseSet]:
    """Read and check the files and build ``{"train": PoseSet, "test": PoseSet}`` (no cache)."""
    t0 = time.perf_counter()
    src = _sources(data_root, keypoints)
    pos3d = read_positions_3d(src.path_3d)
    cams = load_cameras_h5(src.path_cameras)
    chosen = _resolve_subjects(subjects, available=pos3d)
    problems: list[str] = []
    warnings: list[str] = []
    _check_3d(pos3d, src.path_3d, cams, src.path_cameras, problems, subjects=chosen)
    _raise_problems(problems)
    if not chosen:
        raise DataError(f"{src.path_3d}: none of the H36M subjects {H36M_TRAIN_SUBJECTS + H36M_TEST_SUBJECTS} found")
    sel3d = {s: {a: _select_17(arr) for a, arr in pos3d[s].items()} for s in chosen}
    if src.path_2d is None:
        pos2d, layout = None, _LAYOUTS[0]  # derived on the fly in _assemble
    else:
        pos2d, meta2d = read_positions_2d(src.path_2d)
        layout = _layout_from_metadata(meta2d, src.path_2d)
        _check_2d(pos2d, src.path_2d, layout, sel3d, src.path_3d, cams, chosen, problems, warnings,
                  gmm=_is_gmm(keypoints))
        _raise_problems(problems)
        for w in warnings:
            log.warning(w)
    out = {}
    for split, split_subjects in (("train", H36M_TRAIN_SUBJECTS), ("test", H36M_TEST_SUBJECTS)):
        subs = tuple(s for s in chosen if s in split_subjects)
        meta = _meta(src, layout, split, subs)
        if warnings:
            meta["warnings"] = list(warnings)
        out[split] = _assemble(subs, sel3d, pos2d, cams, layout, meta, gmm=pos2d is not None and _is_gmm(keypoints))
    log.info("built H36M (%s) from %s in %.1f s: train %d, test %d samples", keypoints, src.data_root,
             time.perf_counter() - t0, len(out["train"]), len(out["test"]))
    return out


def load_h36m(data_root: str | Path, keypoints: str = "gt", subjects: Iterable[str] | None = None,
              cache_dir: str | Path | None = None, use_cache: bool = True) -> dict[str, PoseSet]:
    """Human3.6M as ``{"train": PoseSet, "test": PoseSet}`` (train S1 S5 S6 S7 S8, test S9 S11).

    Camera-frame root-relative 3D in metres, 2D normalised by image width, every frame of every
    camera (sample order: subject, sequence name, camera, frame). ``subjects`` restricts the
    subjects loaded (default: all of the split's subjects in the 3D file). With ``use_cache`` the
    result is kept in an HDF5 cache under ``cache_dir`` (default :func:`default_cache_dir`), keyed by
    the source files' content; the cache is never written into ``data_root``.
    """
    src = _sources(data_root, keypoints)
    if not use_cache:
        return build_h36m(data_root, keypoints, subjects)
    from harness.data.cache import cached_load, default_cache_dir

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root = src.data_root.resolve()
    cdir = cache_dir.resolve()
    if cdir == root or root in cdir.parents:
        raise ConfigError(f"cache dir {cache_dir}: must not be inside the data folder {src.data_root}")
    chosen = "all" if subjects is None else list(_resolve_subjects(subjects))
    key_parts = {"dataset": "h36m", "keypoints": keypoints, "subjects": chosen, "data_root": str(root),
                 "gt_2d_derived": src.path_2d is None, "loader_version": H36M_LOADER_VERSION,
                 "sanity_version": sanity.SANITY_VERSION}
    built: list[bool] = []

    def build() -> dict[str, PoseSet]:
        built.append(True)
        return build_h36m(data_root, keypoints, subjects)

    sets = cached_load(key_parts, src.files(), build, cache_dir / "h36m")
    if not built:  # a cache hit: the entry passed the same checks (the key holds the files' content and
        # the checks' version); its suspicions are said again
        for w in next(iter(sets.values())).meta.get("warnings", []) if sets else []:
            log.warning(w)
    return sets


# ---------------------------------------------------------------------------------------- scanning
@dataclass
class H36MScanReport:
    """What ``harness data check`` prints: one row per subject, totals, warnings and every problem."""

    data_root: str
    keypoints: str
    files: dict[str, str] = field(default_factory=dict)
    gt_2d_derived: bool = False
    layout_2d: str = ""
    subjects: list[str] = field(default_factory=list)
    num_sequences: int = 0
    num_frames: int = 0          # 3D frames (each seen by every camera)
    num_samples: int = 0         # frames x cameras
    joints_3d: int | None = None
    joints_2d: int | None = None
    actions: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def scan_h36m(data_root: str | Path, keypoints: str = "gt") -> H36MScanReport:
    """Check an H36M data folder without stopping at the first problem."""
    data_root = Path(data_root)
    rep = H36MScanReport(data_root=str(data_root), keypoints=keypoints)
    p3, pc = data_root / H36M_3D_FILE, data_root / H36M_CAMERAS_FILE
    p2 = data_root / h36m_2d_filename(keypoints)
    rep.files = {"3d": str(p3), "cameras": str(pc)}
    if p2.is_file():
        rep.files["2d"] = str(p2)
    elif keypoints == "gt":
        rep.gt_2d_derived = True
        rep.files["2d"] = f"(absent: GT 2D derived from {H36M_3D_FILE} and {H36M_CAMERAS_FILE})"
    else:
        rep.problems.append(f"{p2}: file not found (2D keypoints '{keypoints}')")
    pos3d = cams = None
    try:
        pos3d = read_positions_3d(_need_file(p3))
    except DataError as e:
        rep.problems.append(str(e))
    try:
        cams = load_cameras_h5(pc, problems=rep.problems)
    except DataError as e:
        rep.problems.append(str(e))
    if pos3d is None:
        return rep
    cams = cams or {}
    rep.joints_3d = _check_3d(pos3d, p3, cams, pc, rep.problems, subjects=None)
    rep.subjects = _sorted_subjects(pos3d)
    actions = set()
    for s in rep.subjects:
        seqs = pos3d[s]
        frames = sum(int(a.shape[0]) for a in seqs.values() if isinstance(a, np.ndarray) and a.ndim == 3)
        split = "train" if s in H36M_TRAIN_SUBJECTS else "test" if s in H36M_TEST_SUBJECTS else "-"
        n_cams = len(cams.get(s, ()))
        rep.rows.append({"subject": s, "split": split, "sequences": len(seqs), "frames": frames,
                         "cameras": n_cams, "samples": frames * n_cams})
        rep.num_sequences += len(seqs)
        rep.num_frames += frames
        rep.num_samples += frames * n_cams
        actions.update(a for a in (canonical_action(n) for n in seqs) if a is not None)
    rep.actions = [a for a in H36M_ACTIONS if a in actions]
    missing_std = [s for s in H36M_TRAIN_SUBJECTS + H36M_TEST_SUBJECTS if s not in pos3d]
    if missing_std:
        rep.warnings.append(f"{p3}: standard-split subject(s) absent: {', '.join(missing_std)}")
    if rep.gt_2d_derived:
        rep.layout_2d, rep.joints_2d = "h36m17", 17
    elif p2.is_file():
        try:
            pos2d, meta2d = read_positions_2d(p2)
            layout = _layout_from_metadata(meta2d, p2)
        except DataError as e:
            rep.problems.append(str(e))
        else:
            rep.layout_2d, rep.joints_2d = layout.name, layout.num_joints
            _check_2d(pos2d, p2, layout, pos3d, p3, cams, rep.subjects, rep.problems, rep.warnings,
                      gmm=_is_gmm(keypoints))
    return rep
