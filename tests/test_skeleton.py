"""Skeleton tables and small functions: H36M 32 -> 17, SH16, 3DHP mapping, flips, bones."""

from __future__ import annotations

import numpy as np

from harness.skeleton import (H36M32_PARENTS, H36M32_TO_17, H36M_FROM_3DHP, H36M_JOINT_NAMES, H36M_JOINTS_LEFT,
                              H36M_JOINTS_RIGHT, H36M_PARENTS, MPI3DHP_EVAL_JOINTS, MPI3DHP_EVAL_JOINTS_H36M,
                              MPI3DHP_JOINT_NAMES, MPI3DHP_ROOT, SH16_FROM_H36M17, SH16_JOINTS_LEFT,
                              SH16_JOINTS_RIGHT, SH16_PARENTS, bone_lengths, flip_pose, h36m_edges, remove_joints)


def test_h36m17_from_32_with_videopose3d_shoulder_rewiring():
    assert len(H36M32_PARENTS) == 32 and len(H36M32_TO_17) == 17
    parents = list(remove_joints(H36M32_PARENTS, H36M32_TO_17))
    # Without the rewiring the shoulders hang off the Spine (7); VideoPose3D reattaches them to the thorax.
    assert parents[11] == 7 and parents[14] == 7
    parents[11] = parents[14] = 8
    assert tuple(parents) == H36M_PARENTS


def test_h36m17_tables():
    assert len(H36M_JOINT_NAMES) == len(H36M_PARENTS) == 17
    assert H36M_PARENTS[0] == -1 and all(0 <= p < j for j, p in enumerate(H36M_PARENTS) if j)
    assert not set(H36M_JOINTS_LEFT) & set(H36M_JOINTS_RIGHT)
    for l, r in zip(H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT):
        assert H36M_JOINT_NAMES[l][0] == "L" and H36M_JOINT_NAMES[r] == "R" + H36M_JOINT_NAMES[l][1:]


def test_sh16_skeleton():
    assert SH16_FROM_H36M17 == (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16)
    # Head hangs off the thorax once Neck/Nose is gone; later joints shift down by one.
    assert SH16_PARENTS == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 8, 10, 11, 8, 13, 14)
    assert SH16_JOINTS_LEFT == (4, 5, 6, 10, 11, 12) and SH16_JOINTS_RIGHT == (1, 2, 3, 13, 14, 15)
    names = [H36M_JOINT_NAMES[j] for j in SH16_FROM_H36M17]
    assert "Neck/Nose" not in names and names[SH16_PARENTS[9]] == "Thorax" and names[9] == "Head"


def test_remove_joints_nearest_kept_ancestor():
    chain = (-1, 0, 1, 2, 3)
    assert remove_joints(chain, (0, 2, 4)) == (-1, 0, 1)
    assert remove_joints(chain, (1, 3)) == (-1, 0)


def test_flip_pose_twice_is_identity_and_swaps_sides():
    pose = np.random.default_rng(0).normal(size=(5, 17, 3)).astype(np.float32)
    flipped = flip_pose(pose)
    np.testing.assert_array_equal(flip_pose(flipped), pose)
    for l, r in zip(H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT):
        np.testing.assert_array_equal(flipped[:, l, 0], -pose[:, r, 0])
        np.testing.assert_array_equal(flipped[:, r, 1:], pose[:, l, 1:])
    centre = [j for j in range(17) if j not in H36M_JOINTS_LEFT + H36M_JOINTS_RIGHT]
    np.testing.assert_array_equal(flipped[:, centre, 1:], pose[:, centre, 1:])
    assert not np.shares_memory(flipped, pose)
    # 2D and the SH16 layout too.
    p2 = pose[..., :2][:, list(SH16_FROM_H36M17)]
    np.testing.assert_array_equal(flip_pose(flip_pose(p2, SH16_JOINTS_LEFT, SH16_JOINTS_RIGHT),
                                            SH16_JOINTS_LEFT, SH16_JOINTS_RIGHT), p2)


def test_3dhp_mapping_is_a_permutation_matching_names():
    assert sorted(H36M_FROM_3DHP) == list(range(17))
    assert H36M_FROM_3DHP[0] == MPI3DHP_ROOT
    same = {"Hip": "pelvis", "RHip": "r_hip", "RKnee": "r_knee", "RFoot": "r_ankle", "LHip": "l_hip",
            "LKnee": "l_knee", "LFoot": "l_ankle", "Spine": "spine", "Thorax": "neck", "Neck/Nose": "head",
            "Head": "head_top", "LShoulder": "l_shoulder", "LElbow": "l_elbow", "LWrist": "l_wrist",
            "RShoulder": "r_shoulder", "RElbow": "r_elbow", "RWrist": "r_wrist"}
    for j, name in enumerate(H36M_JOINT_NAMES):
        assert MPI3DHP_JOINT_NAMES[H36M_FROM_3DHP[j]] == same[name]


def test_3dhp_eval_joints():
    assert len(MPI3DHP_EVAL_JOINTS) == 14
    assert len(MPI3DHP_EVAL_JOINTS_H36M) == 14
    assert set(range(17)) - set(MPI3DHP_EVAL_JOINTS_H36M) == {0, 7, 9}  # Hip, Spine, Neck/Nose


def test_edges_and_bone_lengths():
    edges = h36m_edges()
    assert len(edges) == 16 and all(p == H36M_PARENTS[c] for c, p in edges)
    pose = np.zeros((2, 17, 3))
    for j, p in enumerate(H36M_PARENTS):  # every bone 0.5 m along z from its parent
        if p >= 0:
            pose[:, j] = pose[:, p] + [0.0, 0.0, 0.5]
    np.testing.assert_allclose(bone_lengths(pose), 0.5)
    assert bone_lengths(pose[:, list(SH16_FROM_H36M17)], SH16_PARENTS).shape == (2, 15)
