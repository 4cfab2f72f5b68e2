"""The models on the 16-joint layout (H36M less Neck/Nose, :data:`harness.skeleton.SH16_PARENTS`):
graphs of 16 nodes (lifter, baseline, cag) and 32 with CCE, pinned parameter counts, output shapes,
the cross-channel graph, and the independent float64 reference of tests/models/test_denoiser.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.data.base import PoseSet
from harness.models import VARIANTS, GraFormer, build_denoiser, build_lifter, count_parameters, skeleton_parents
from harness.models.graph import cross_channel_adjacency, cross_channel_edges, h36m_adjacency, num_undirected_edges
from harness.skeleton import (H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT, H36M_PARENTS, SH16_FROM_H36M17,
                              SH16_JOINTS_LEFT, SH16_JOINTS_RIGHT, SH16_PARENTS, SH_DROPPED_JOINT, flip_pose,
                              h36m_edges, h36m_layout)
from harness.train.augment import Flip
from tests.models.test_denoiser import EXPECTED_PARAMS, ref_forward

# hid 96, 5 layers, 4 heads: the 17-joint counts less 5 (or 10, with CAG) learnable adjacencies of
# 17^2 - 16^2 = 33 (34^2 - 32^2 = 132 with CCE) entries, and fc3 (17 -> 34) less (16 -> 32) = 68
EXPECTED_PARAMS_16 = {"baseline": 1_025_509, "cce": 1_028_239, "cag": 1_865_066, "full": 1_871_602}
LIFTER_PARAMS_16 = 654_179


def test_the_layout_is_the_loaders():
    # the loader drops H36M joint 9 (Neck/Nose) from the 3D; Thorax (8) becomes Head's parent
    assert SH_DROPPED_JOINT == 9 and SH16_FROM_H36M17 == (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16)
    assert SH16_PARENTS == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 8, 10, 11, 8, 13, 14)
    assert h36m_layout(16) == (SH16_PARENTS, SH16_JOINTS_LEFT, SH16_JOINTS_RIGHT)
    assert h36m_layout(17) == (H36M_PARENTS, H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT)
    with pytest.raises(ValueError, match="15 joints"):
        h36m_layout(15)


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_counts_16(variant):
    model = build_denoiser(variant, parents=SH16_PARENTS)
    assert count_parameters(model) == EXPECTED_PARAMS_16[variant]
    assert model.num_joints == 16
    # the default is the 17-joint skeleton, counts as released
    assert count_parameters(build_denoiser(variant, parents=H36M_PARENTS)) == EXPECTED_PARAMS[variant]


def test_lifter_parameter_count_16():
    assert count_parameters(build_lifter(parents=SH16_PARENTS)) == LIFTER_PARAMS_16
    assert count_parameters(build_lifter()) == count_parameters(build_lifter(parents=H36M_PARENTS)) == 654_344


def test_default_parents_build_the_same_17_joint_models():
    for variant in (*VARIANTS, None):
        torch.manual_seed(2)
        a = build_denoiser(variant) if variant else build_lifter()
        torch.manual_seed(2)
        b = (build_denoiser(variant, parents=list(H36M_PARENTS)) if variant
             else build_lifter(parents=list(H36M_PARENTS)))
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
        torch.testing.assert_close(a.cheb, b.cheb, rtol=0, atol=0)


def _small(variant, seed=0, **kw):
    torch.manual_seed(seed)
    args = dict(hid_dim=16, num_layers=2, n_head=2, parents=SH16_PARENTS) | kw
    return (build_denoiser(variant, **args) if variant else build_lifter(**args)).eval()


def _input16(batch=3):
    x = torch.linspace(-1.0, 1.0, batch * 16 * 5).reshape(batch, 16, 5)
    return x, torch.arange(batch) * 10, torch.flip(x[..., 1:3], dims=[1])


@pytest.mark.parametrize("variant", VARIANTS)
def test_denoiser_graphs_and_output_shape_16(variant):
    model = _small(variant)
    n = 32 if model.cce else 16
    assert model.cheb.shape == (n * 3, n)
    assert model.atten_layers[0].feed_forward.A_hat.shape == (n, n)
    if model.cag:
        assert model.cheb_ctx.shape == (16 * 3, 16)  # the guidance input conv runs on the 16 joints
        assert model.atten_layers_t[0].feed_forward.A_hat.shape == (n, n)
    if model.cce and model.cag:
        assert model.fc3.weight.shape == (32, 16)
    x, t, p2 = _input16()
    with torch.no_grad():
        out = model(x, t, p2)
    assert out.shape == (3, 16, 5) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match=r"\(B, 16, 5\)"):
        model(torch.zeros(3, 17, 5), t, torch.zeros(3, 17, 2))
    assert not any("cheb" in k for k in model.state_dict())


def test_lifter_output_shape_16():
    model = _small(None)
    assert model.cheb.shape == (16 * 3, 16)
    assert model.atten_layers[0].feed_forward.A_hat.shape == (16, 16)
    x = torch.randn(4, 16, 2)
    with torch.no_grad():
        out = model(x)
        one = model(x[1:2])
    assert out.shape == (4, 16, 3)
    torch.testing.assert_close(out[1:2], one, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"adj must be \(16, 16\)"):
        GraFormer(h36m_adjacency(), num_joints=16)


def test_skeleton_graph_16():
    adj = h36m_adjacency(SH16_PARENTS)
    assert adj.shape == (16, 16) and num_undirected_edges(adj) == 15
    nz = adj != 0
    assert nz[9, 8] and nz[10, 8] and nz[13, 8]  # Head and both shoulders hang off the Thorax
    torch.testing.assert_close(adj.sum(1), torch.ones(16, dtype=adj.dtype))


def test_cross_channel_graph_16():
    edges = cross_channel_edges(SH16_PARENTS)
    assert len(edges) == 15 * 2 + 16 and len({frozenset(e) for e in edges}) == 46
    adj = cross_channel_adjacency(SH16_PARENTS)
    assert adj.shape == (32, 32)
    assert num_undirected_edges(adj) == 46
    nz = adj != 0
    for j in range(16):
        assert nz[j, j + 16] and nz[j + 16, j]
        assert int(nz[j, 16:].sum()) == 1  # a 2D node touches only its own 3D node
        assert int(nz[j + 16, :16].sum()) == 1
    bones = h36m_edges(SH16_PARENTS)
    for c, p in bones:
        assert nz[c, p] and nz[c + 16, p + 16]
    within = {frozenset((int(i), int(k))) for i, k in zip(*torch.nonzero(nz[:16, :16], as_tuple=True)) if i != k}
    assert within == {frozenset(e) for e in bones}
    torch.testing.assert_close(adj.sum(1), torch.ones(32))


@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_float64_reference_16(variant):
    model = _small(variant, seed=1, num_layers=3).double()
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
            p.add_(0.1 * (noise.abs() if name.endswith("A_hat") else noise))
    x, t, p2 = _input16(4)
    with torch.no_grad():
        out = model(x.double(), t, p2.double()).numpy()
    ref = ref_forward(model, x, t, p2, heads=2, parents=SH16_PARENTS)
    assert np.isfinite(ref).all() and ref.shape == (4, 16, 5)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6 * np.abs(ref).max())


def test_parents_are_checked():
    assert skeleton_parents([-1, 0, 1]) == (-1, 0, 1)
    for bad in ([0, 0, 1], [-1, -1, 1], [-1, 0, 3], [-1, 1, 1], [-1]):
        with pytest.raises(ValueError, match="one root"):
            skeleton_parents(bad)
        with pytest.raises(ValueError):
            build_lifter(hid_dim=8, num_layers=1, n_head=2, parents=bad)


def test_flip_uses_the_16_joint_sides():
    flip = Flip(16)
    perm = flip.perm.tolist()
    for a, b in zip(SH16_JOINTS_LEFT, SH16_JOINTS_RIGHT):
        assert perm[a] == b and perm[b] == a
    assert [perm[j] for j in (0, 7, 8, 9)] == [0, 7, 8, 9]  # pelvis, spine, thorax, head stay
    x = torch.randn(5, 16, 3)
    expected = flip_pose(x.numpy(), SH16_JOINTS_LEFT, SH16_JOINTS_RIGHT)
    np.testing.assert_array_equal(flip(x).numpy(), expected)
    torch.testing.assert_close(flip(flip(x)), x, rtol=0, atol=0)
    # the same mirror as the 17-joint flip with Neck/Nose dropped
    x17 = torch.randn(5, 17, 2)
    keep = list(SH16_FROM_H36M17)
    torch.testing.assert_close(Flip(16)(x17[:, keep]), Flip(17)(x17)[:, keep], rtol=0, atol=0)
    with pytest.raises(ValueError):
        Flip(15)


def test_poseset_parents():
    def ps(j, meta):
        z = np.zeros(2)
        return PoseSet(np.zeros((2, j, 2), np.float32), np.zeros((2, j, 3), np.float32), z, z, z, z, z, z, meta)

    assert ps(16, {}).parents == SH16_PARENTS
    assert ps(17, {}).parents == H36M_PARENTS
    assert ps(16, {"parents": list(SH16_PARENTS)}).parents == SH16_PARENTS
