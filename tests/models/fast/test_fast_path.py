"""The fast models (harness.models.fast) against the readable ones (harness.models).

Same weights (one state_dict) must give the same outputs to float32 rounding and the same
gradients (float64, where rounding is out of the way); in training mode, with the dropout masks
made identical, the whole training-mode function and its gradients must match too. The
hand-written autograd Functions are also checked with ``gradcheck``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from harness.errors import ConfigError
from harness.models import VARIANTS
from harness.models import build_denoiser as build_readable_denoiser
from harness.models import build_lifter as build_readable_lifter
from harness.models.fast import build_denoiser, build_lifter, native, ops
from tests.models.test_denoiser import fixed_input, ref_forward

SMALL = dict(hid_dim=32, num_layers=2, n_head=4)


@pytest.fixture
def no_native(monkeypatch):
    monkeypatch.setattr(ops, "NATIVE", False)


def _pair(variant=None, seed=0, dtype=torch.float32, perturb=True, **kw):
    args = SMALL | kw
    torch.manual_seed(seed)
    fast = build_denoiser(variant, **args) if variant else build_lifter(**args)
    torch.manual_seed(seed)
    ref = build_readable_denoiser(variant, **args) if variant else build_readable_lifter(**args)
    fast, ref = fast.to(dtype), ref.to(dtype)
    if perturb:  # break the identical-prototype init so layer mix-ups cannot hide
        g = torch.Generator().manual_seed(seed + 100)
        with torch.no_grad():
            for name, p in fast.named_parameters():
                noise = 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype)
                p.add_(noise.abs() if name.endswith("A_hat") else noise)
    ref.load_state_dict(fast.state_dict())
    return fast, ref


def _inputs(batch=6, dtype=torch.float32, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 17, 5, generator=g).to(dtype)
    t = torch.randint(0, 51, (batch,), generator=g)
    p2 = torch.randn(batch, 17, 2, generator=g).to(dtype)
    return x, t, p2


def _run(model, variant, x, t, p2):
    return model(x, t, p2) if variant else model(p2)


MODELS = [*VARIANTS, None]  # None: the lifter
IDS = [*VARIANTS, "lifter"]


def test_readable_shares_the_state_dict_and_the_seeded_weights():
    for variant in MODELS:
        torch.manual_seed(4)
        fast = build_denoiser(variant) if variant else build_lifter()
        torch.manual_seed(4)
        ref = build_readable_denoiser(variant) if variant else build_readable_lifter()
        a, b = fast.state_dict(), ref.state_dict()
        assert list(a) == list(b)
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("variant", MODELS, ids=IDS)
def test_eval_outputs_match_readable_float32(variant):
    fast, ref = _pair(variant)
    fast.eval(), ref.eval()
    x, t, p2 = _inputs(batch=12)
    with torch.no_grad():
        a, b = _run(fast, variant, x, t, p2), _run(ref, variant, x, t, p2)
    scale = b.abs().max().item()
    assert a.shape == b.shape and a.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=0, atol=2e-6 * max(scale, 1.0))


@pytest.mark.parametrize("variant", MODELS, ids=IDS)
def test_eval_gradients_match_readable_float64(variant):
    fast, ref = _pair(variant, dtype=torch.float64)
    fast.eval(), ref.eval()
    x, t, p2 = _inputs(dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    pa, pb = p2.clone().requires_grad_(), p2.clone().requires_grad_()
    w = torch.randn(_run(ref, variant, x, t, p2).shape, dtype=torch.float64)
    (_run(fast, variant, xa, t, pa) * w).sum().backward()
    (_run(ref, variant, xb, t, pb) * w).sum().backward()
    _assert_grads_close(fast, ref, rel=1e-6)
    for u, v in ((xa, xb), (pa, pb)):
        if v.grad is not None:
            torch.testing.assert_close(u.grad, v.grad, rtol=0, atol=1e-6 * v.grad.abs().max().item())


@pytest.mark.parametrize("variant, batch", [("baseline", 16), ("full", 16), (None, 16), ("full", 128), (None, 256)],
                         ids=["baseline", "full", "lifter", "full-b128", "lifter-b256"])
def test_eval_gradients_match_readable_float32(variant, batch):
    # float32 runs the oneDNN GEMMs and the fused kernels inside the autograd Functions; from
    # 4096 rows (nodes x batch) on, weight gradients take the split batched-GEMM route
    fast, ref = _pair(variant)
    fast.eval(), ref.eval()
    x, t, p2 = _inputs(batch=batch)
    w = torch.randn(_run(ref, variant, x, t, p2).shape)
    (_run(fast, variant, x, t, p2) * w).sum().backward()
    (_run(ref, variant, x, t, p2) * w).sum().backward()
    _assert_grads_close(fast, ref, rel=2e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fast_matches_the_float64_numpy_reference(variant):
    # the independent route of tests/models/test_denoiser.py, run on the fast model
    fast, _ = _pair(variant, seed=1, dtype=torch.float64, num_layers=3, n_head=2)
    fast.eval()
    x, t, p2 = fixed_input(4)
    with torch.no_grad():
        out = fast(x.double(), t, p2.double()).numpy()
    ref = ref_forward(fast, x, t, p2, heads=2)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6 * np.abs(ref).max())


def test_fast_builders_and_inputs_are_checked_like_the_readable_ones():
    with pytest.raises(ConfigError) as e:
        build_denoiser("x")
    assert str(e.value) == "unknown variant 'x'; valid: baseline, cag, cce, full"
    fast, _ = _pair("full", perturb=False)
    x, t, p2 = fixed_input()
    with pytest.raises(ValueError):
        fast(x, t, None)
    with pytest.raises(ValueError):
        fast(x[..., :3], t, p2)


def _assert_grads_close(fast, ref, rel):
    gf = {n: p.grad for n, p in fast.named_parameters()}
    gr = {n: p.grad for n, p in ref.named_parameters()}
    assert {n for n, g in gf.items() if g is None} == {n for n, g in gr.items() if g is None}
    scale = max(g.abs().max().item() for g in gr.values() if g is not None)
    for n, g in gr.items():
        if g is not None:
            # a tolerance on the model's gradient scale: some gradients are zero in exact math
            # (e.g. the key biases: softmax ignores a per-row constant) and rounding noise there
            torch.testing.assert_close(gf[n], g, rtol=0, atol=rel * scale, msg=n)


# --- training mode with identical dropout masks ----------------------------------------------------

class _SharedMasks:
    """Feeds the fast path's mask requests and the readable model's nn.Dropout calls the same masks.

    The fast path asks first (its layout: node-major ``(N*B, C)`` rows, attention
    ``(B*heads, N, N)``); each mask is drawn in the readable model's batch-major layout, stored,
    and handed to the fast path transposed; then the readable model's dropouts consume them in order.
    """

    def __init__(self, batch, dtype):
        self.batch, self.dtype = batch, dtype
        self.masks, self.used = [], 0
        self.gen = torch.Generator().manual_seed(11)

    def fast(self, shape, p, like):
        keep = (torch.rand(self._ref_shape(shape), generator=self.gen) >= p).to(self.dtype) / (1 - p)
        self.masks.append(keep)
        if len(shape) == 2:
            rows, c = shape
            return keep.transpose(0, 1).reshape(rows, c)
        return keep.reshape(shape)

    def _ref_shape(self, shape):
        if len(shape) == 2:
            rows, c = shape
            return (self.batch, rows // self.batch, c)
        bh, n, _ = shape
        return (self.batch, bh // self.batch, n, n)

    def readable(self, module, x):
        if not module.training or module.p == 0:
            return x
        m = self.masks[self.used]
        self.used += 1
        assert m.shape == x.shape, (m.shape, x.shape)
        return x * m


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("variant", MODELS, ids=IDS)
def test_train_mode_matches_readable_with_the_same_masks(variant, dtype, monkeypatch, no_native):
    fast, ref = _pair(variant, dtype=dtype)
    fast.train(), ref.train()
    batch = 8
    x, t, p2 = _inputs(batch=batch, dtype=dtype)
    masks = _SharedMasks(batch, dtype)
    monkeypatch.setattr(ops, "dropout_mask", masks.fast)
    out_fast = _run(fast, variant, x, t, p2)
    monkeypatch.setattr(nn.Dropout, "forward", lambda module, x: masks.readable(module, x))
    out_ref = _run(ref, variant, x, t, p2)
    assert masks.used == len(masks.masks) > 0
    scale = out_ref.abs().max().item()
    # float64 agreement is bounded by the graph operators, computed once and stored in float32
    tol = 1e-6 if dtype == torch.float64 else 3e-6
    torch.testing.assert_close(out_fast, out_ref, rtol=0, atol=tol * max(scale, 1.0))
    w = torch.randn(out_ref.shape, dtype=dtype)
    (out_fast * w).sum().backward()
    (out_ref * w).sum().backward()
    _assert_grads_close(fast, ref, rel=1e-6 if dtype == torch.float64 else 3e-4)


# --- dropout masks -------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.1, 0.25, 0.3])
def test_cpu_dropout_mask_is_inverted_dropout_with_probability_p(p):
    torch.manual_seed(0)
    like = torch.empty(0)
    n = 2_000_000
    m = ops.dropout_mask((n,), p, like)
    assert m.dtype == torch.float32 and m.shape == (n,)
    vals = torch.unique(m)
    torch.testing.assert_close(vals, torch.tensor([0.0, 1.0 / (1.0 - p)]))
    frac = (m == 0).double().mean().item()
    assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert abs(m.double().mean().item() - 1.0) < 5 * math.sqrt(p / (1 - p) / n)


def test_cpu_dropout_mask_probability_is_exact_beyond_one_byte():
    # p = 0.1 is 25.6 / 256: the 1-in-256 ties on byte 25 must be split 60/40 by more bits
    torch.manual_seed(1)
    n = 4_000_000
    m = ops.dropout_mask((n,), 0.1, torch.empty(0))
    frac = (m == 0).double().mean().item()
    assert abs(frac - 0.1) < 5 * math.sqrt(0.09 / n)  # a byte-only rule would give 0.09766


def test_dropout_masks_follow_torch_manual_seed():
    shape = (1000, 7)
    torch.manual_seed(5)
    a, b = ops.dropout_mask(shape, 0.1, torch.empty(0)), ops.dropout_mask(shape, 0.1, torch.empty(0))
    torch.manual_seed(5)
    c = ops.dropout_mask(shape, 0.1, torch.empty(0))
    assert torch.equal(a, c) and not torch.equal(a, b)
    assert ops.dropout_mask(shape, 0.1, torch.empty(0, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("variant", ["full", None], ids=["full", "lifter"])
def test_training_is_deterministic_under_a_seed(variant):
    outs = []
    for _ in range(2):
        fast, _ = _pair(variant)
        fast.train()
        torch.manual_seed(9)
        x, t, p2 = _inputs()
        out = _run(fast, variant, x, t, p2)
        out.square().sum().backward()
        outs.append((out.detach(), fast.gconv_input.weight.grad.clone()))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    fast.eval()
    with torch.no_grad():  # dropout is off in eval: the train-mode output differs from it
        assert not torch.allclose(_run(fast, variant, x, t, p2), outs[0][0])


def test_dropout_rate_in_the_model_matches_the_modules(no_native):
    fast, _ = _pair("baseline", perturb=False)
    fast.train()
    seen = []
    real = ops.dropout_mask

    def spy(shape, p, like):
        seen.append(p)
        return real(shape, p, like)

    ops.dropout_mask = spy
    try:
        x, t, p2 = _inputs()
        fast(x, t, p2)
    finally:
        ops.dropout_mask = real
    # per layer: attention weights 0.1, two residuals 0.25, two graph convs 0.1
    assert sorted(set(seen)) == [0.1, 0.25] and len(seen) == SMALL["num_layers"] * 5


# --- the hand-written autograd Functions ---------------------------------------------------------

def _d(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def test_layer_norm_function_gradcheck():
    x = _d(7, 6).requires_grad_()
    a = (1 + 0.3 * _d(6, seed=1)).requires_grad_()
    b = _d(6, seed=2).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, a, b: ops._LayerNormFn.apply(x, a, b, 1e-6), (x, a, b))
    std, mean = torch.std_mean(x, dim=-1, keepdim=True)
    torch.testing.assert_close(ops.layer_norm(x, a, b, 1e-6), a * (x - mean) / (std + 1e-6) + b)


def test_layer_norm_constant_rows_give_the_bias_and_finite_gradients():
    x = torch.full((3, 8), 2.5, dtype=torch.float64, requires_grad=True)
    a, b = torch.ones(8, dtype=torch.float64), torch.arange(8, dtype=torch.float64)
    y = ops.layer_norm(x, a, b, 1e-6)
    torch.testing.assert_close(y, b.expand(3, 8))
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("with_mask", [False, True])
def test_cheb_function_gradcheck(with_mask):
    from harness.models.fast.graph import cheb_stacks
    from harness.models.graph import h36m_adjacency

    n, b, c, d = 17, 3, 4, 5
    t12, _, t12t = (t.double() for t in cheb_stacks(h36m_adjacency()))
    x = _d(n * b, c).requires_grad_()
    w = _d(3, 1, c, d, seed=1).requires_grad_()
    bias = _d(1, 1, d, seed=2).requires_grad_()
    mask = ((_d(n * b, d, seed=3) > -0.8).double() / 0.8) if with_mask else None
    scale = 1 / 0.8 if with_mask else 1.0
    assert torch.autograd.gradcheck(
        lambda x, w, bias: ops._ChebHidFn.apply(x, t12, t12t, w, bias, mask, scale), (x, w, bias))


def test_attention_core_function_gradcheck():
    n, b, heads, dk = 5, 3, 2, 3
    qkv = _d(n * b, 3 * heads * dk).requires_grad_()
    mask = (_d(b * heads, n, n, seed=4) > -1.0).double() / 0.85
    assert torch.autograd.gradcheck(lambda q: ops._AttnCoreFn.apply(q, n, heads, mask), (qkv,))


def test_linear_and_graph_functions_float32_match_autograd():
    x = torch.randn(50, 8, requires_grad=True)
    w = torch.randn(6, 8, requires_grad=True)
    bias = torch.randn(6, requires_grad=True)
    t = torch.randn(4, 5, requires_grad=True)
    z = torch.randn(5, 30, requires_grad=True)
    g1, g2 = torch.randn(50, 6), torch.randn(4, 30)
    (ops.linear(x, w, bias) * g1).sum().backward()
    (ops.graph_mm(t, z) * g2).sum().backward()
    got = [v.grad.clone() for v in (x, w, bias, t, z)]
    for v in (x, w, bias, t, z):
        v.grad = None
    ((x @ w.t() + bias) * g1).sum().backward()
    ((t @ z) * g2).sum().backward()
    for a, v in zip(got, (x, w, bias, t, z)):
        torch.testing.assert_close(a, v.grad, rtol=1e-5, atol=1e-5)


# --- precision and misc --------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["baseline", "full", None], ids=["baseline", "full", "lifter"])
def test_bf16_autocast_runs_and_stays_close(variant):
    fast, _ = _pair(variant)
    fast.eval()
    x, t, p2 = _inputs(batch=8)
    with torch.no_grad():
        ref = _run(fast, variant, x, t, p2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = _run(fast, variant, x, t, p2).float()
    assert torch.isfinite(low).all()
    assert (low - ref).abs().max().item() < 0.1 * max(ref.abs().max().item(), 1.0)
    fast.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = _run(fast, variant, x, t, p2).float()
    out.square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in fast.parameters() if p.grad is not None)


def test_tune_cpu_allocator_is_idempotent():
    first = ops.tune_cpu_allocator()
    assert isinstance(first, bool) and ops.tune_cpu_allocator() == first


def test_operators_are_buffers_not_state():
    fast, _ = _pair("full", perturb=False)
    names = {n for n, _ in fast.named_buffers()}
    assert {"cheb_t12", "cheb_t12_h", "cheb_t12t", "cheb_ctx_t12"} <= names
    assert not any("t12" in k for k in fast.state_dict())
    np.testing.assert_allclose(fast.cheb_t12t.view(2, 34, 34).numpy(),
                               fast.cheb_t12.view(2, 34, 34).transpose(1, 2).numpy())


# --- the fused kernels ----------------------------------------------------------------------------

needs_native = pytest.mark.skipif(not native.available(),
                                  reason=f"fused kernels unavailable: {native.error()}")


@needs_native
@pytest.mark.parametrize("p", [0.1, 0.25])
def test_native_mask_is_inverted_dropout_with_probability_p(p):
    n = 2_000_000
    m = native.mask((n,), 12345, p)
    torch.testing.assert_close(torch.unique(m), torch.tensor([0.0, 1.0 / (1.0 - p)]))
    assert abs((m == 0).double().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert not torch.equal(m, native.mask((n,), 12346, p))
    assert torch.equal(m, native.mask((n,), 12345, p))


@needs_native
def test_native_residual_dropout_matches_torch_with_its_mask():
    x, y = torch.randn(300, 40), torch.randn(300, 40, requires_grad=True)
    torch.manual_seed(2)
    s = native.seed()
    torch.manual_seed(2)
    out = ops.residual_dropout(x, y, 0.25, training=True)
    m = native.mask(y.shape, s, 0.25)
    torch.testing.assert_close(out, x + y * m, rtol=0, atol=1e-6)
    g = torch.randn_like(out)
    out.backward(g)
    torch.testing.assert_close(y.grad, g * m)


@needs_native
def test_native_layer_norm_matches_torch():
    x = (3 * torch.randn(500, 96) + 1).requires_grad_()
    a = (1 + 0.2 * torch.randn(96)).requires_grad_()
    b = torch.randn(96, requires_grad=True)
    g = torch.randn(500, 96)
    y = ops.layer_norm(x, a, b, 1e-6)
    y.backward(g)
    got = [y.detach(), x.grad, a.grad, b.grad]
    x64, a64, b64 = (t.detach().double().requires_grad_() for t in (x, a, b))
    std, mean = torch.std_mean(x64, dim=-1, keepdim=True)
    y64 = a64 * (x64 - mean) / (std + 1e-6) + b64
    y64.backward(g.double())
    for u, v in zip(got, [y64.detach(), x64.grad, a64.grad, b64.grad]):
        torch.testing.assert_close(u.double(), v, rtol=1e-4, atol=1e-4 * v.abs().max().item())


@needs_native
@pytest.mark.parametrize("p", [0.0, 0.1])
def test_native_attention_matches_torch_with_its_mask(p):
    n, b, heads, dk = 34, 9, 4, 24
    qkv = (0.5 * torch.randn(n * b, 3 * heads * dk)).requires_grad_()
    torch.manual_seed(4)
    out = ops._AttnNativeFn.apply(qkv, n, heads, p)
    if p > 0:
        torch.manual_seed(4)
        m = native.mask((b * heads, n, n), native.seed(), p)
    else:
        m = torch.ones(b * heads, n, n)
    q64 = qkv.detach().double().requires_grad_()
    ref = ops._AttnCoreFn.apply(q64, n, heads, m.double())
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=2e-6)
    g = torch.randn_like(out)
    out.backward(g)
    ref.backward(g.double())
    torch.testing.assert_close(qkv.grad.double(), q64.grad, rtol=0, atol=2e-5 * q64.grad.abs().max().item())


@needs_native
def test_native_cheb_relu_dropout_matches_torch_with_its_mask():
    from harness.models.fast.graph import cheb_stacks
    from harness.models.graph import cross_channel_adjacency

    n, b, c = 34, 5, 32
    g = cheb_stacks(cross_channel_adjacency())
    x = torch.randn(n * b, c, requires_grad=True)
    w = (0.2 * torch.randn(3, 1, c, c)).requires_grad_()
    bias = torch.randn(1, 1, c, requires_grad=True)
    torch.manual_seed(6)
    y = ops.cheb_conv(x, g, w, bias, relu=True, p_drop=0.1, training=True)
    torch.manual_seed(6)
    m = native.mask((n * b, c), native.seed(), 0.1)
    xr, wr, br = (t.detach().clone().requires_grad_() for t in (x, w, bias))
    ref = ops._cheb_plain(xr, g[0], wr, br, n).relu() * m
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-5)
    go = torch.randn_like(y)
    y.backward(go)
    ref.backward(go)
    for u, v in ((x, xr), (w, wr), (bias, br)):
        torch.testing.assert_close(u.grad, v.grad, rtol=1e-4, atol=1e-4)


@needs_native
@pytest.mark.parametrize("variant", ["full", None], ids=["full", "lifter"])
def test_native_and_torch_paths_agree_in_eval(variant, monkeypatch):
    fast, _ = _pair(variant)
    fast.eval()
    x, t, p2 = _inputs(batch=10)
    with torch.no_grad():
        a = _run(fast, variant, x, t, p2)
        monkeypatch.setattr(ops, "NATIVE", False)
        b = _run(fast, variant, x, t, p2)
    torch.testing.assert_close(a, b, rtol=0, atol=2e-6 * max(b.abs().max().item(), 1.0))


# --- the layer's boundaries: switches, imports, torch.compile ---------------------------------------

def test_kernels_state_says_on_or_why_not(monkeypatch):
    import harness.models.fast as fast

    state = fast.kernels_state()
    assert state == "on" if native.available() else state.startswith(("off (", "unavailable: "))
    monkeypatch.setattr(ops, "NATIVE", False)
    assert fast.kernels_state() == "off (harness.models.fast.ops.NATIVE = False)"


def test_the_readable_models_do_not_import_the_fast_path():
    import subprocess
    import sys

    code = ("import sys, harness.models; "
            "assert not [m for m in sys.modules if m.startswith('harness.models.fast')], sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


@needs_native
def test_torch_compile_keeps_the_kernels_and_matches_eager():
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    fast, _ = _pair(None, num_layers=1)
    fast.train()
    x, t, p2 = _inputs(batch=8)
    seen = set()

    def record(gm, example_inputs):
        seen.update(str(node.target) for node in gm.graph.nodes if node.op == "call_function")
        return make_boxed_func(gm.forward)

    torch._dynamo.reset()
    compiled = torch.compile(fast, backend=aot_autograd(fw_compiler=record, bw_compiler=record))
    torch.manual_seed(3)
    out_c = compiled(p2)
    out_c.square().sum().backward()
    grads_c = {n: p.grad.clone() for n, p in fast.named_parameters()}
    fast.zero_grad()
    torch.manual_seed(3)
    out_e = fast(p2)
    out_e.square().sum().backward()
    torch._dynamo.reset()
    assert {"harness.layer_norm.default", "harness.residual_dropout.default", "harness.attention.default",
            "harness.cheb_expand.default", "harness.attention_backward.default"} <= seen
    # the same seeds are drawn (eager RNG under aot_eager): the same masks, the same function
    torch.testing.assert_close(out_c, out_e, rtol=0, atol=1e-5)
    for n, p in fast.named_parameters():
        torch.testing.assert_close(grads_c[n], p.grad, rtol=1e-4, atol=1e-5, msg=n)
