"""The fast models against the readable ones on the 16-joint layout (graphs of 16 and 32 nodes):
the checks of test_fast_path.py that depend on the graph, mirrored with ``parents=SH16_PARENTS``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.models import VARIANTS
from harness.models import build_denoiser as build_readable_denoiser
from harness.models import build_lifter as build_readable_lifter
from harness.models.fast import build_denoiser, build_lifter, native, ops
from harness.skeleton import SH16_PARENTS
from tests.models.fast.test_fast_path import SMALL, _assert_grads_close, _run, _SharedMasks

MODELS = [*VARIANTS, None]  # None: the lifter
IDS = [*VARIANTS, "lifter"]


@pytest.fixture
def no_native(monkeypatch):
    monkeypatch.setattr(ops, "NATIVE", False)


def _pair(variant=None, seed=0, dtype=torch.float32, **kw):
    args = SMALL | kw | {"parents": SH16_PARENTS}
    torch.manual_seed(seed)
    fast = build_denoiser(variant, **args) if variant else build_lifter(**args)
    torch.manual_seed(seed)
    ref = build_readable_denoiser(variant, **args) if variant else build_readable_lifter(**args)
    fast, ref = fast.to(dtype), ref.to(dtype)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():  # break the identical-prototype init so layer mix-ups cannot hide
        for name, p in fast.named_parameters():
            noise = 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype)
            p.add_(noise.abs() if name.endswith("A_hat") else noise)
    ref.load_state_dict(fast.state_dict())
    return fast, ref


def _inputs(batch=6, dtype=torch.float32, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 16, 5, generator=g).to(dtype)
    t = torch.randint(0, 51, (batch,), generator=g)
    p2 = torch.randn(batch, 16, 2, generator=g).to(dtype)
    return x, t, p2


def test_readable_shares_the_state_dict_and_the_seeded_weights_16():
    for variant in MODELS:
        torch.manual_seed(4)
        fast = build_denoiser(variant, parents=SH16_PARENTS) if variant else build_lifter(parents=SH16_PARENTS)
        torch.manual_seed(4)
        ref = (build_readable_denoiser(variant, parents=SH16_PARENTS) if variant
               else build_readable_lifter(parents=SH16_PARENTS))
        a, b = fast.state_dict(), ref.state_dict()
        assert list(a) == list(b)
        assert all(torch.equal(a[k], b[k]) for k in a)
        n = 32 if getattr(fast, "cce", False) else 16
        assert fast.cheb_t12.shape == (2 * n, n) and fast.cheb_t12_h.shape == (n, 2 * n)


@pytest.mark.parametrize("variant", MODELS, ids=IDS)
def test_eval_outputs_match_readable_float32_16(variant):
    fast, ref = _pair(variant)
    fast.eval(), ref.eval()
    x, t, p2 = _inputs(batch=12)
    with torch.no_grad():
        a, b = _run(fast, variant, x, t, p2), _run(ref, variant, x, t, p2)
    assert a.shape == b.shape == ((12, 16, 5) if variant else (12, 16, 3))
    torch.testing.assert_close(a, b, rtol=0, atol=2e-6 * max(b.abs().max().item(), 1.0))


@pytest.mark.parametrize("variant", MODELS, ids=IDS)
def test_eval_gradients_match_readable_float64_16(variant):
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
def test_eval_gradients_match_readable_float32_16(variant, batch):
    # float32 runs the oneDNN GEMMs and the fused kernels; from 4096 rows (32 nodes x 128, 16 x 256)
    # on, weight gradients take the split batched-GEMM route. Seed 3: no ReLU input lies within
    # float32 rounding of 0 at these sizes (one that lands on the other side in one model changes
    # a weight gradient by ~1e-3 of the gradients' scale; other seeds have such units)
    fast, ref = _pair(variant, seed=3)
    fast.eval(), ref.eval()
    x, t, p2 = _inputs(batch=batch)
    w = torch.randn(_run(ref, variant, x, t, p2).shape)
    (_run(fast, variant, x, t, p2) * w).sum().backward()
    (_run(ref, variant, x, t, p2) * w).sum().backward()
    _assert_grads_close(fast, ref, rel=2e-4)


@pytest.mark.parametrize("variant", MODELS, ids=IDS)
def test_train_mode_matches_readable_with_the_same_masks_16(variant, monkeypatch, no_native):
    dtype = torch.float64
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
    torch.testing.assert_close(out_fast, out_ref, rtol=0, atol=1e-6 * max(out_ref.abs().max().item(), 1.0))
    w = torch.randn(out_ref.shape, dtype=dtype)
    (out_fast * w).sum().backward()
    (out_ref * w).sum().backward()
    _assert_grads_close(fast, ref, rel=1e-6)


@pytest.mark.skipif(not native.available(), reason=f"fused kernels unavailable: {native.error()}")
@pytest.mark.parametrize("variant", ["full", "cag", None], ids=["full", "cag", "lifter"])
def test_native_and_torch_paths_agree_16(variant, monkeypatch):
    # the fused attention kernels pad the nodes to 8-lane vectors: 16 and 32 nodes fill them exactly
    fast, _ = _pair(variant)
    x, t, p2 = _inputs(batch=10)
    fast.eval()
    with torch.no_grad():
        a = _run(fast, variant, x, t, p2)
        monkeypatch.setattr(ops, "NATIVE", False)
        b = _run(fast, variant, x, t, p2)
    torch.testing.assert_close(a, b, rtol=0, atol=2e-6 * max(b.abs().max().item(), 1.0))
    monkeypatch.setattr(ops, "NATIVE", True)
    fast.train()  # training mode (dropout in the kernels) runs and gives finite gradients
    torch.manual_seed(0)
    out = _run(fast, variant, x, t, p2)
    out.square().sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in fast.parameters() if p.grad is not None)
