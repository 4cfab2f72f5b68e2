"""Denoiser variants (the readable model): parameter counts, graphs, conditioning, and a float64 reference forward.

The reference (``ref_forward``) is written from the papers' description in plain numpy, straight
from the state_dict and the skeleton edges, with none of the model's code: the model must agree
with it (the independent route behind the pinned values)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from harness.models import VARIANTS, build_denoiser, count_parameters
from harness.models.graph import cross_channel_adjacency, cross_channel_edges, num_undirected_edges
from harness.skeleton import H36M_PARENTS, h36m_edges

EXPECTED_PARAMS = {"baseline": 1_025_674, "cce": 1_028_899, "cag": 1_865_396, "full": 1_872_990}
SWITCHES = {"baseline": (False, False), "cce": (True, False), "cag": (False, True), "full": (True, True)}


# --- float64 reference ---------------------------------------------------------------------------

def _cheb_terms(num_pts, edges):
    a = np.zeros((num_pts, num_pts))
    for i, j in edges:
        a[i, j] = a[j, i] = 1.0
    a += np.eye(num_pts)
    a /= a.sum(axis=1, keepdims=True)
    d = np.diag(a.sum(axis=1) ** -0.5)
    lap = np.eye(num_pts) - d @ a @ d
    return [np.eye(num_pts), lap, 2 * lap @ lap - np.eye(num_pts)]


def _lin(p, pre, x):
    return x @ p[pre + ".weight"].T + p[pre + ".bias"]


def _cheb(p, pre, x, terms):
    w = p[pre + ".weight"]
    return sum(np.einsum("nm,bmc->bnc", terms[k], x) @ w[k, 0] for k in range(len(terms))) + p[pre + ".bias"][0]


def _norm(p, pre, x):
    return p[pre + ".a_2"] * (x - x.mean(-1, keepdims=True)) / (x.std(-1, ddof=1, keepdims=True) + 1e-6) + p[pre + ".b_2"]


def _attention(p, pre, x, heads):
    q, k, v = (_lin(p, f"{pre}.linears.{i}", x) for i in range(3))
    dk = x.shape[-1] // heads
    out = []
    for h in range(heads):
        s = slice(h * dk, (h + 1) * dk)
        z = q[..., s] @ k[..., s].transpose(0, 2, 1) / math.sqrt(dk)
        z = np.exp(z - z.max(-1, keepdims=True))
        out.append((z / z.sum(-1, keepdims=True)) @ v[..., s])
    return _lin(p, f"{pre}.linears.3", np.concatenate(out, -1))


def _graphnet(p, pre, x):
    a = p[pre + ".A_hat"]
    d = (a.sum(0) + 1e-5) ** -0.5
    lap = d[:, None] * a * d[None, :]
    h = np.maximum(_lin(p, pre + ".gconv1.fc", np.einsum("nm,bmc->bnc", lap, x)), 0)
    return _lin(p, pre + ".gconv2.fc", np.einsum("nm,bmc->bnc", lap, h))


def _atten_layer(p, pre, x, heads):
    x = x + _attention(p, pre + ".self_attn", _norm(p, pre + ".sublayer.0.norm", x), heads)
    return x + _graphnet(p, pre + ".feed_forward", _norm(p, pre + ".sublayer.1.norm", x))


def _res_diff(p, pre, x, temb, terms):
    h = np.maximum(_cheb(p, pre + ".gconv1.gconv", x, terms), 0)
    swish = temb / (1 + np.exp(-temb))
    h = h + _lin(p, pre + ".temb_proj", swish)[:, None, :]
    return x + np.maximum(_cheb(p, pre + ".gconv2.gconv", h, terms), 0)


def ref_forward(model, x, t, pose_2d, heads, parents=H36M_PARENTS):
    p = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    cce, cag = model.cce, model.cag
    x, pose_2d, t = x.double().numpy(), pose_2d.double().numpy(), t.double().numpy()
    j, layers, hid = x.shape[1], model.n_layers, model.hid_dim
    assert j == len(parents)
    t17 = _cheb_terms(j, h36m_edges(parents))
    t34 = _cheb_terms(2 * j, cross_channel_edges(parents))
    g = t34 if cce else t17

    half = hid // 2
    arg = t[:, None] * np.exp(-math.log(10000) / (half - 1) * np.arange(half))[None, :]
    temb = _lin(p, "temb.dense.0", np.concatenate([np.sin(arg), np.cos(arg)], 1))
    temb = _lin(p, "temb.dense.1", temb / (1 + np.exp(-temb)))

    h = np.concatenate([_lin(p, "fc1", x[..., :2]), x[..., 2:]], axis=1) if cce else x
    out = _cheb(p, "gconv_input", h, g)
    if cag:
        guide = _cheb(p, "gconv_input_t", pose_2d, t17)
        if cce:  # Linear over the node axis, 17 -> 34
            guide = np.einsum("kj,bjc->bkc", p["fc3.weight"], guide) + p["fc3.bias"][None, :, None]
        out = out + guide
    for i in range(layers):
        out = _atten_layer(p, f"atten_layers.{i}", out, heads)
        if cag:
            guide = _atten_layer(p, f"atten_layers_t.{i}", guide, heads)
            out = out + guide
            guide = guide + out
        out = _res_diff(p, f"gconv_layers.{i}", out, temb, g)
        if cag and i < layers - 1:
            guide = _res_diff(p, f"gconv_layers_t.{i}", guide, temb, g)
    out = _cheb(p, "gconv_output", out, g)
    if cce:
        out = _lin(p, "fc2", np.concatenate([out[:, :j], out[:, j:]], -1))
    return out


def fixed_input(batch=2):
    x = torch.linspace(-1.0, 1.0, batch * 17 * 5).reshape(batch, 17, 5)
    return x, torch.arange(batch) * 10, torch.flip(x[..., 1:3], dims=[1])


def small(variant, seed=0, **kw):
    torch.manual_seed(seed)
    args = dict(hid_dim=16, num_layers=2, n_head=2) | kw
    return build_denoiser(variant, **args).eval()


# --- counts, construction, API -------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_counts(variant):
    model = build_denoiser(variant)
    assert count_parameters(model) == EXPECTED_PARAMS[variant]
    assert (model.cce, model.cag) == SWITCHES[variant] and model.variant == variant


@pytest.mark.parametrize("variant", ["cag", "full"])
def test_inert_blocks_are_exactly_the_released_unused_ones(variant):
    model = build_denoiser(variant).train()
    x, t, p2 = fixed_input()
    model(x, t, p2).square().sum().backward()
    no_grad = {n for n, p in model.named_parameters() if p.grad is None}
    expect = {n for n, _ in model.named_parameters()
              if n.startswith(("gconv_output_t.", "gconv_layers_t.4."))}
    assert no_grad == expect
    inert = sum(p.numel() for n, p in model.named_parameters() if n in no_grad)
    assert inert == {"full": 93_315, "cag": 93_893}[variant]


def test_unknown_variant_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        build_denoiser("x")
    assert str(e.value) == "unknown variant 'x'; valid: baseline, cag, cce, full"
    with pytest.raises(ConfigError):
        build_denoiser(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("variant", VARIANTS)
def test_output_shape_and_state_dict_has_no_buffers(variant):
    model = small(variant)
    x, t, p2 = fixed_input(3)
    with torch.no_grad():
        assert model(x, t, p2).shape == (3, 17, 5)
    assert not any("cheb" in k or "freqs" in k for k in model.state_dict())


@pytest.mark.parametrize("variant", VARIANTS)
def test_determinism(variant):
    x, t, p2 = fixed_input()
    with torch.no_grad():
        a, b, c = (small(variant, seed)(x, t, p2) for seed in (5, 5, 6))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_cross_channel_graph():
    edges = cross_channel_edges()
    assert len(edges) == 16 * 2 + 17 and len({frozenset(e) for e in edges}) == 49
    adj = cross_channel_adjacency()
    assert adj.shape == (34, 34)
    assert num_undirected_edges(adj) == 49
    nz = adj != 0
    for j in range(17):
        assert nz[j, j + 17] and nz[j + 17, j]
        assert int(nz[j, 17:].sum()) == 1  # a 2D node touches only its own 3D node
    for c, p in h36m_edges():
        assert nz[c, p] and nz[c + 17, p + 17]
    torch.testing.assert_close(adj.sum(1), torch.ones(34))
    model = small("cce")
    assert model.cheb.shape == (34 * 3, 34)
    assert model.atten_layers[0].feed_forward.A_hat.shape == (34, 34)


@pytest.mark.parametrize("variant,uses", [("baseline", False), ("cce", False), ("cag", True), ("full", True)])
def test_pose_2d_conditioning(variant, uses):
    model = small(variant)
    x, t, p2 = fixed_input()
    with torch.no_grad():
        a = model(x, t, p2)
        b = model(x, t, p2 + 0.5)
    assert (not torch.allclose(a, b)) == uses
    if not uses:
        with torch.no_grad():
            torch.testing.assert_close(model(x, t, None), a, rtol=0, atol=0)
    else:
        with pytest.raises(ValueError):
            model(x, t, None)


def test_timestep_matters():
    model = small("baseline")
    x, _, p2 = fixed_input()
    with torch.no_grad():
        assert not torch.allclose(model(x, torch.tensor([0, 0]), p2), model(x, torch.tensor([5, 5]), p2))


# --- values --------------------------------------------------------------------------------------

def test_pinned_baseline_output():
    model = small("baseline", seed=0)
    x, t, _ = fixed_input()
    with torch.no_grad():
        out = model(x, t, x[..., :2])
    # (a sum of 170 float32 outputs: association changes in the fast path move it by ~1e-5)
    assert out.sum().item() == pytest.approx(9.913005828857422, abs=1e-4)
    np.testing.assert_allclose(out[0, 0].numpy(), [-0.0038509592, 0.2942587435, 0.4712058604,
                                                   0.6807992458, -0.3344630003], atol=1e-5)
    np.testing.assert_allclose(out[1, 16].numpy(), [-0.6556671858, -0.5450556874, 0.0966603085,
                                                    -0.3114912212, 0.8096444607], atol=1e-5)
    # ... and the same numbers come out of the independent float64 reference
    ref = ref_forward(model, x, t, x[..., :2], heads=2)
    assert np.isfinite(ref).all()
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_float64_reference_with_perturbed_weights(variant):
    # perturb every weight so the identical-prototype init (all layers equal) cannot hide mistakes
    model = small(variant, seed=1, num_layers=3).double()
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
            # keep the learnable adjacencies' column sums positive (they are raised to -1/2)
            p.add_(0.1 * (noise.abs() if name.endswith("A_hat") else noise))
    x, t, p2 = fixed_input(4)
    with torch.no_grad():
        out = model(x.double(), t, p2.double()).numpy()
    ref = ref_forward(model, x, t, p2, heads=2)
    assert np.isfinite(ref).all()
    scale = np.abs(ref).max()
    # float32-stored graph operators / frequencies bound the agreement at ~1e-7 relative
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6 * scale)


def test_train_mode_backward():
    model = small("full").train()
    x, t, p2 = fixed_input()
    out = model(x, t, p2)
    out.square().mean().backward()
    assert model.gconv_input.weight.grad is not None and model.fc3.weight.grad is not None
