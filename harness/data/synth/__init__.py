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

Content, by submodule:
- :mod:`.body`: a 17-joint kinematic skeleton with per-subject bone lengths, spine/neck/pelvis
  angles clipped to joint limits, knees and elbows by two-bone IK (flexion kept in [0, 150] degrees).
- :mod:`.motion`: one motion program per H36M action (gait with planted feet, sitting, gestures,
  hand-to-head/mouth, bending, ...).
- :mod:`.cameras`: the H36M rig and the 3DHP test and training cameras.
- :mod:`.detector`: the detections' error model (:class:`DetectorNoise`).
- :mod:`.writer`: :func:`synth_h36m`, :func:`synth_3dhp` and the ``SYNTHETIC`` marker.
- :mod:`.cache`: :func:`ensure_synth`, the default-size benchmarks in the harness cache.
- ``python -m harness.data.synth OUT [--seed N]`` writes both benchmarks (:mod:`.__main__`).

Everything is deterministic for a seed; every sequence, subject and camera has its own random
stream keyed by its indices, so changing a size option does not change the other sequences.
"""

from __future__ import annotations

# Re-exports: this package replaces the former single module ``harness.data.synth``, and code and
# tests use these names from it (``from harness.data import synth as S``; ``S.ensure_synth`` ...).
from harness.data.mpi3dhp import MPI3DHP_TEST_RESOLUTION, MPI3DHP_TEST_SEQUENCES  # noqa: F401
from harness.data.synth._util import H36M_SUBJECTS, MPI3DHP_TEST_SCENE, _check_seed, _rng, _unit  # noqa: F401
from harness.data.synth.body import (JOINT_LIMITS, MAX_ELBOW_FLEX, MAX_KNEE_FLEX, TEMPLATE_BODY,  # noqa: F401
                                     UNIVERSAL_BODY, Body, Motion, _bodies, forward_kinematics, make_body,
                                     rescale_bones, two_bone_ik)
from harness.data.synth.cache import (BENCHMARKS, cache_root, default_synth_dir, ensure_synth,  # noqa: F401
                                      synth_files)
from harness.data.synth.cameras import (_3dhp_test_camera, _3dhp_train_camera, _h36m_rig,  # noqa: F401
                                        h36m_cameras, look_at_camera)
from harness.data.synth.detector import DEFAULT_SIGMA, SWAP_GROUPS, DetectorNoise, add_detector_noise  # noqa: F401
from harness.data.synth.motion import PROGRAMS, _seq_len, generate_motion  # noqa: F401
from harness.data.synth.writer import (DEFAULT_3DHP_TEST_FRAMES, DEFAULT_3DHP_TRAIN_CAMERAS,  # noqa: F401
                                       DEFAULT_3DHP_TRAIN_FPS, DEFAULT_3DHP_TRAIN_FRAMES, DEFAULT_3DHP_TRAIN_SEQS,
                                       DEFAULT_3DHP_TRAIN_SUBJECTS, DEFAULT_DETECTOR, DEFAULT_H36M_FPS,
                                       DEFAULT_H36M_FRAMES, FORMAT_VERSION, H36M_METADATA, MARKER_FILE,
                                       MPI3DHP_CAMERA_SET, MPI3DHP_TEST_FPS, _quantize, check_synth_target,
                                       h36m_bodies, is_synthetic, mark_synthetic, synth_3dhp, synth_h36m)
