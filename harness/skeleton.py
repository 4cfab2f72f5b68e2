"""Skeletons: Human3.6M 17-joint (and its 32-joint source), the 16-joint Stacked Hourglass layout,
and MPI-INF-3DHP's 17-joint order with its mapping to H36M's.

Pure data and small pure functions, after VideoPose3D's ``common/skeleton.py``. Joint indices are
positions in the arrays; ``parents[j]`` is the parent of joint ``j`` (-1 for the root).
"""

from __future__ import annotations

import numpy as np

# --- Human3.6M -------------------------------------------------------------------------------
# The 32 joints of the original D3_Positions export (VideoPose3D's h36m_skeleton).
H36M32_PARENTS = (-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12,
                  16, 17, 18, 19, 20, 19, 22, 12, 24, 25, 26, 27, 28, 27, 30)
# The usual 17 of them (the other 15 are static or duplicated).
H36M32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

H36M_JOINT_NAMES = ("Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax",
                    "Neck/Nose", "Head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist")
H36M_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
H36M_JOINTS_LEFT = (4, 5, 6, 11, 12, 13)
H36M_JOINTS_RIGHT = (1, 2, 3, 14, 15, 16)
H36M_ROOT = 0

from harness.protocols import H36M_ACTIONS  # noqa: E402,F401  (defined with the protocol)

# --- Stacked Hourglass (MPII-trained) detections: the 17 less Neck/Nose ----------------------
SH_DROPPED_JOINT = 9
SH16_FROM_H36M17 = tuple(j for j in range(17) if j != SH_DROPPED_JOINT)


def remove_joints(parents: tuple[int, ...], keep: tuple[int, ...]) -> tuple[int, ...]:
    """Parents of the skeleton restricted to ``keep``; a removed parent is replaced by its nearest
    kept ancestor (VideoPose3D's ``Skeleton.remove_joints``)."""
    new_index = {old: new for new, old in enumerate(keep)}
    out = []
    for j in keep:
        p = parents[j]
        while p != -1 and p not in new_index:
            p = parents[p]
        out.append(-1 if p == -1 else new_index[p])
    return tuple(out)


SH16_PARENTS = remove_joints(H36M_PARENTS, SH16_FROM_H36M17)
SH16_JOINTS_LEFT = tuple(SH16_FROM_H36M17.index(j) for j in H36M_JOINTS_LEFT)
SH16_JOINTS_RIGHT = tuple(SH16_FROM_H36M17.index(j) for j in H36M_JOINTS_RIGHT)


def h36m_layout(num_joints: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``(parents, joints_left, joints_right)`` of the H36M-order layout with ``num_joints`` joints:
    17 (Human3.6M's) or 16 (the 17 less Neck/Nose, :data:`SH16_FROM_H36M17`). PoseSets are in one of
    these two layouts (3DHP's is converted to H36M's 17); ``ValueError`` for any other count."""
    if num_joints == 17:
        return H36M_PARENTS, H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT
    if num_joints == len(SH16_FROM_H36M17):
        return SH16_PARENTS, SH16_JOINTS_LEFT, SH16_JOINTS_RIGHT
    raise ValueError(f"no H36M-order skeleton with {num_joints} joints (17, or 16 without Neck/Nose)")

# --- MPI-INF-3DHP, P-STMO / D3DP order -------------------------------------------------------
MPI3DHP_JOINT_NAMES = ("head_top", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder",
                       "l_elbow", "l_wrist", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee",
                       "l_ankle", "pelvis", "spine", "head")
MPI3DHP_ROOT = 14
# H36M joint j is 3DHP joint H36M_FROM_3DHP[j].
H36M_FROM_3DHP = (14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4)
# 3DHP's 14 evaluation joints: all but pelvis, spine and head (3DHP indices 14, 15, 16) ...
MPI3DHP_EVAL_JOINTS = tuple(range(14))
# ... which, in H36M order, are all but Hip (0), Spine (7) and Neck/Nose (9).
MPI3DHP_EVAL_JOINTS_H36M = tuple(j for j in range(17) if H36M_FROM_3DHP[j] in MPI3DHP_EVAL_JOINTS)


def h36m_edges(parents: tuple[int, ...] = H36M_PARENTS) -> list[tuple[int, int]]:
    """(child, parent) bone list of a skeleton."""
    return [(j, p) for j, p in enumerate(parents) if p >= 0]


def flip_pose(pose: np.ndarray, left=H36M_JOINTS_LEFT, right=H36M_JOINTS_RIGHT) -> np.ndarray:
    """Mirror a pose left/right: negate x (channel 0) and swap the left and right joints.

    Works on (..., J, C) arrays of 2D (normalised, centred) or 3D (root-relative) coordinates.
    """
    out = np.array(pose, copy=True)
    out[..., 0] *= -1
    out[..., list(left) + list(right), :] = out[..., list(right) + list(left), :]
    return out


def bone_lengths(pose: np.ndarray, parents: tuple[int, ...] = H36M_PARENTS) -> np.ndarray:
    """Length of each bone (child, parent) of ``pose`` (..., J, 3), in the pose's units."""
    edges = h36m_edges(parents)
    c = [e[0] for e in edges]
    p = [e[1] for e in edges]
    return np.linalg.norm(pose[..., c, :] - pose[..., p, :], axis=-1)


def root_relative(pose, mode: str = "subtract", root: int = 0):
    """A pose made root-relative, ``(..., J, C)`` tensor or array; returns a new one.

    ``subtract``: ``x - x[root]`` for every joint. ``zero_root``: what the released code computes with
    ``x[:, :, :] -= x[:, :1, :]`` in place (DiffPose ``test_hyber``, monoMotionDiff ``runner.test``):
    the right-hand side is a view of the tensor being written, so once the root row is zeroed the
    other joints subtract zero; the root becomes 0 and every other joint keeps its absolute value
    (measured with torch 2.x on CPU; the result of an overlapping in-place op is not guaranteed,
    on a GPU it may differ)."""
    if mode == "subtract":
        return pose - pose[..., root:root + 1, :]
    if mode == "zero_root":
        out = pose.clone() if hasattr(pose, "clone") else pose.copy()
        out[..., root, :] = 0
        return out
    raise ValueError(f"root mode must be subtract or zero_root, got {mode!r}")
