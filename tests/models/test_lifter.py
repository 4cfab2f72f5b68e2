"""GraFormer lifter (the readable model), the skeleton graph and the shared blocks, checked against
hand-written math and against the released code's way of computing them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.models import build_lifter, count_parameters
from harness.models.graph import (ChebConv, GraphConv, adj_mx_from_edges, cheb_operator, cheb_polynomials,
                                  h36m_adjacency, num_undirected_edges)
from harness.models.lifter import GraphNet, LayerNorm, MultiHeadedAttention
from harness.skeleton import H36M_PARENTS, h36m_edges


def hand_graph(num_pts: int, edges) -> np.ndarray:
    """Chebyshev polynomials T_0..T_2 of the released Laplacian, from scratch in float64."""
    a = np.zeros((num_pts, num_pts))
    for i, j in edges:
        a[i, j] = a[j, i] = 1.0
    a += np.eye(num_pts)
    a /= a.sum(axis=1, keepdims=True)               # released adj: row-normalised A + I
    d = np.diag(a.sum(axis=1) ** -0.5)
    lap = np.eye(num_pts) - d @ a @ d                # ChebConv's normalised Laplacian
    return np.stack([np.eye(num_pts), lap, 2 * lap @ lap - np.eye(num_pts)])


# --- graph ---------------------------------------------------------------------------------------

def test_h36m_adjacency_is_the_released_normalised_skeleton():
    adj = h36m_adjacency()
    assert adj.shape == (17, 17) and adj.dtype == torch.float32
    assert num_undirected_edges(adj) == 16
    torch.testing.assert_close(adj.sum(dim=1), torch.ones(17))
    nz = adj != 0
    assert torch.equal(nz, nz.T) and bool(nz.diagonal().all())
    for child, parent in h36m_edges():
        assert nz[child, parent] and H36M_PARENTS[child] == parent
    # hip (0) has 3 neighbours + itself -> 1/4 each
    assert adj[0, 0].item() == pytest.approx(0.25) and adj[0, 1].item() == pytest.approx(0.25)


def test_edge_direction_and_duplicates_do_not_matter():
    e = [(0, 1), (1, 2)]
    torch.testing.assert_close(adj_mx_from_edges(3, e), adj_mx_from_edges(3, [(1, 0), (2, 1), (0, 1)]))
    with pytest.raises(ValueError):
        adj_mx_from_edges(3, [(0, 3)])


def test_cheb_polynomials_and_operator_layout():
    polys = cheb_polynomials(h36m_adjacency(), K=2, dtype=torch.float64)
    np.testing.assert_allclose(polys.numpy(), hand_graph(17, h36m_edges()), atol=1e-7)
    op = cheb_operator(h36m_adjacency(), K=2)
    assert op.shape == (51, 17)
    for n in (0, 5, 16):
        for k in range(3):
            torch.testing.assert_close(op[n * 3 + k], polys[k, n].float())


def test_chebconv_matches_hand_computation_float64():
    torch.manual_seed(3)
    conv = ChebConv(3, 4, K=2).double()
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 17, 3, dtype=torch.float64)
    out = conv(x, cheb_operator(h36m_adjacency(), dtype=torch.float64)).detach().numpy()

    t = hand_graph(17, h36m_edges())
    w, b, xn = conv.weight.detach().numpy(), conv.bias.detach().numpy(), x.numpy()
    expect = sum(np.einsum("nm,bmc,cd->bnd", t[k], xn, w[k, 0]) for k in range(3)) + b
    # the operator is computed in float64 from the float32 adjacency
    np.testing.assert_allclose(out, expect, rtol=1e-6, atol=1e-7)


def test_chebconv_parameters_keep_released_shapes():
    conv = ChebConv(5, 7, K=2)
    assert conv.weight.shape == (3, 1, 5, 7) and conv.bias.shape == (1, 1, 7)
    assert torch.count_nonzero(conv.bias) == 0


# --- blocks --------------------------------------------------------------------------------------

def test_layernorm_is_the_released_unbiased_std_form():
    ln = LayerNorm(6)
    x = torch.randn(3, 4, 6, dtype=torch.float64)
    ln = ln.double()
    mean = x.mean(-1, keepdim=True)
    std = x.std(-1, keepdim=True)  # unbiased
    torch.testing.assert_close(ln(x), (x - mean) / (std + 1e-6))


def test_attention_matches_explicit_softmax_float64():
    torch.manual_seed(1)
    mha = MultiHeadedAttention(2, 8).double().eval()
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    lin = [(layer.weight.detach(), layer.bias.detach()) for layer in mha.linears]
    q, k, v = (x @ w.T + b for w, b in lin[:3])
    heads = []
    for h in range(2):
        s = slice(4 * h, 4 * h + 4)
        p = torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / math.sqrt(4), dim=-1)
        heads.append(p @ v[..., s])
    expect = torch.cat(heads, -1) @ lin[3][0].T + lin[3][1]
    torch.testing.assert_close(mha(x), expect)


def test_graphnet_normalises_by_column_sums():
    torch.manual_seed(2)
    gn = GraphNet(4, 4, n_pts=5).double()
    with torch.no_grad():
        gn.A_hat.add_(0.3 * torch.rand(5, 5, dtype=torch.float64))
    a = gn.A_hat.detach()
    d = (a.sum(0) + 1e-5) ** -0.5
    lap = d[:, None] * a * d[None, :]
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    f1, f2 = gn.gconv1.fc, gn.gconv2.fc
    expect = f2(lap @ torch.relu(f1(lap @ x)))
    torch.testing.assert_close(gn(x), expect)


# --- released-code details the readable blocks fold away -----------------------------------------

def _released_cheb_conv(conv, x, adj):
    """The released ``ChebConv.forward``: Laplacian and polynomials rebuilt from ``adj`` per call."""
    eye = torch.eye(adj.size(0), dtype=adj.dtype)
    d = torch.diag(torch.sum(adj, dim=-1) ** (-1 / 2))
    lap = eye - torch.mm(torch.mm(d, adj), d)
    polys = torch.stack([eye, lap, 2 * torch.mm(lap, lap) - eye])
    out = torch.matmul(torch.matmul(polys.unsqueeze(1), x), conv.weight).sum(dim=0)
    return out + conv.bias


def test_chebconv_matches_the_released_per_call_laplacian_float32():
    torch.manual_seed(5)
    conv = ChebConv(8, 6, K=2)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(4, 17, 8)
    adj = h36m_adjacency()
    expect = _released_cheb_conv(conv, x, adj)
    torch.testing.assert_close(conv(x, cheb_operator(adj)), expect, rtol=0, atol=2e-6 * expect.abs().max().item())


def test_graphconv_is_the_released_relu_dropout_relu():
    torch.manual_seed(6)
    gc = GraphConv(8, 8, p_dropout=0.3).train()
    x, op = torch.randn(3, 17, 8), cheb_operator(h36m_adjacency())
    torch.manual_seed(7)
    got = gc(x, op)
    torch.manual_seed(7)
    expect = gc.relu(gc.dropout(gc.relu(gc.gconv(x, op))))
    assert torch.equal(got, expect) and bool((got == 0).any())


def test_graphnet_matches_the_released_laplacian_batch_float32():
    torch.manual_seed(8)
    gn = GraphNet(6, 6, n_pts=17)
    with torch.no_grad():
        gn.A_hat.add_(0.2 * torch.rand(17, 17))
    x = torch.randn(5, 17, 6)
    a_hat = gn.A_hat.unsqueeze(0).repeat(x.shape[0], 1, 1)          # released: one copy per sample
    d_hat = (torch.sum(a_hat, 1) + 1e-5) ** (-0.5)
    lap = d_hat.view(5, 17, 1) * a_hat * d_hat.view(5, 1, 17)
    h = torch.relu(gn.gconv1.fc(torch.bmm(lap, x)))
    expect = gn.gconv2.fc(torch.bmm(lap, h))
    torch.testing.assert_close(gn(x), expect, rtol=1e-5, atol=1e-6)


def test_attention_with_the_released_all_true_mask_is_the_same():
    torch.manual_seed(9)
    mha = MultiHeadedAttention(2, 8).eval()
    x = torch.randn(3, 5, 8)
    q, k, v = (lin(x).view(3, -1, 2, 4).transpose(1, 2) for lin in mha.linears[:3])
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(4)
    mask = torch.tensor([[[True] * 5]]).unsqueeze(1)   # what the released scripts pass as src_mask
    p = torch.softmax(scores.masked_fill(mask == 0, -1e9), dim=-1)
    expect = mha.linears[3](torch.matmul(p, v).transpose(1, 2).contiguous().view(3, -1, 8))
    torch.testing.assert_close(mha(x), expect)


# --- lifter --------------------------------------------------------------------------------------

def test_lifter_parameter_count():
    assert count_parameters(build_lifter()) == 654_344


def test_lifter_shapes_and_batch_independence():
    torch.manual_seed(0)
    model = build_lifter().eval()
    x = torch.randn(4, 17, 2)
    with torch.no_grad():
        out = model(x)
        one = model(x[2:3])
    assert out.shape == (4, 17, 3)
    torch.testing.assert_close(out[2:3], one, rtol=1e-5, atol=1e-5)


def test_lifter_determinism():
    x = torch.randn(2, 17, 2)
    outs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        with torch.no_grad():
            outs.append(build_lifter(hid_dim=32, num_layers=2).eval()(x))
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])


def test_lifter_state_dict_uses_released_names_and_no_buffers():
    model = build_lifter()
    sd = model.state_dict()
    assert not any("cheb" in k for k in sd)
    for key in ("gconv_input.weight", "gconv_input.bias", "gconv_output.weight",
                "gconv_layers.4.gconv2.gconv.weight", "atten_layers.0.self_attn.linears.3.bias",
                "atten_layers.2.feed_forward.A_hat", "atten_layers.2.feed_forward.gconv1.fc.weight",
                "atten_layers.1.sublayer.1.norm.a_2", "atten_layers.1.sublayer.0.norm.b_2"):
        assert key in sd, key
    assert sd["gconv_input.weight"].shape == (3, 1, 2, 96)
    assert sd["atten_layers.0.feed_forward.A_hat"].shape == (17, 17)
    # buffers are there (and move with .to()) but are not persisted
    assert model.cheb.shape == (51, 17)
    model.double()
    assert model.cheb.dtype == torch.float64


def test_lifter_trains():
    torch.manual_seed(0)
    model = build_lifter(hid_dim=16, num_layers=2, n_head=2).train()
    out = model(torch.randn(3, 17, 2))
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
