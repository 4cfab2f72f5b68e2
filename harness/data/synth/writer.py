"""The writers: :func:`synth_h36m` and :func:`synth_3dhp` put the synthetic benchmarks on disk in the
layouts of the real preprocessed files, with the ``SYNTHETIC`` marker beside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.camera import Camera, project_to_2d, save_cameras_h5, world_to_camera
from harness.data.h36m import H36M_3D_FILE, H36M_CAMERAS_FILE, h36m_2d_filename
from harness.data.mpi3dhp import MPI3DHP_TEST_SEQUENCES, TEST_FILE, TRAIN_FILE
from harness.data.synth._util import (_TAG_3DHP_BODY, _TAG_3DHP_TEST, _TAG_3DHP_TRAIN, _TAG_H36M_BODY,
                                      _TAG_H36M_DET, _TAG_H36M_SEQ, H36M_SUBJECTS, MPI3DHP_TEST_SCENE,
                                      _check_seed, _rng)
from harness.data.synth.body import UNIVERSAL_BODY, Body, _bodies, rescale_bones
from harness.data.synth.cameras import _3dhp_test_camera, _3dhp_train_camera, h36m_cameras
from harness.data.synth.detector import DetectorNoise, add_detector_noise
from harness.data.synth.motion import _seq_len, generate_motion
from harness.errors import ConfigError
from harness.safeio import atomic_path, save_npz
from harness.skeleton import H36M_ACTIONS, H36M_FROM_3DHP, H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT

FORMAT_VERSION = 4  # 4: the detector error model calibrated to a real detector (heavier tails)

DEFAULT_H36M_FRAMES = 120
DEFAULT_H36M_FPS = 50
DEFAULT_DETECTOR = "synth_det"
H36M_METADATA = {"layout_name": "h36m", "num_joints": 17,
                 "keypoints_symmetry": [list(H36M_JOINTS_LEFT), list(H36M_JOINTS_RIGHT)]}

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

# Stored values are rounded to a binary grid (exact in float32) so the files compress well:
# 3D to 2^-12 m (0.24 mm), detections to 1/8 px; both far below the errors being measured.
_Q3D_M = 2.0**-12
_Q2D_PX = 2.0**-3


def _quantize(a: np.ndarray, step: float) -> np.ndarray:
    return (np.round(np.asarray(a, dtype=np.float64) / step) * step).astype(np.float32)


# ================================================================================================
# Human3.6M
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
    check_synth_target(out)
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


# ================================================================================================
# MPI-INF-3DHP
# ================================================================================================

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
    check_synth_target(out)
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


# ================================================================================================
# The SYNTHETIC marker
# ================================================================================================

MARKER_FILE = "SYNTHETIC"


def mark_synthetic(out: Path, benchmark: str, seed: int) -> Path:
    """A marker beside the files, so results made from them are labelled synthetic wherever they are read."""
    path = Path(out) / MARKER_FILE
    path.write_text(f"Synthetic {benchmark} benchmark written by harness (seed {seed}, format v{FORMAT_VERSION}); "
                    "not real data.\n")
    return path


def is_synthetic(folder: Path) -> bool:
    return (Path(folder) / MARKER_FILE).is_file()


def check_synth_target(out: str | Path) -> None:
    """Refuse, before writing anything, a folder that holds a benchmark's data files (data_3d_h36m.npz,
    data_2d_h36m_*.npz, cameras.h5, data_test_3dhp.npz, data_train_3dhp.npz), itself or in its h36m/
    or 3dhp/ folder, without the ``SYNTHETIC`` marker beside them: that is real data. Rewriting a
    synthetic folder is allowed."""
    from harness.errors import DataError
    from harness.guards import is_data_file

    out = Path(out)
    for folder in (out, out / "h36m", out / "3dhp"):
        if not folder.is_dir() or is_synthetic(folder):
            continue
        try:
            names = sorted(p.name for p in folder.iterdir())
        except OSError:
            continue
        real = [n for n in names if is_data_file(n)]
        if real:
            shown = (folder / real[0]).relative_to(out) if folder != out else real[0]
            raise DataError(f"{out}: holds {shown} and no {MARKER_FILE} marker (real data?); refusing to write "
                            "a synthetic benchmark into it, choose another folder")
