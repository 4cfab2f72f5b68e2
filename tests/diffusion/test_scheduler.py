"""Pinned tests for harness.diffusion (in the manner of diffusers' scheduler tests).

Expected values are computed independently: exact rationals (fractions.Fraction) for the schedule,
closed forms in float64 for DDIM steps, and a line-by-line float64 re-statement of DiffPose's released
``generalized_steps`` for whole sampling runs.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from harness.diffusion import (
    DDIMScheduler,
    alphas_cumprod,
    antithetic_timesteps,
    linear_betas,
    noise_prediction_loss,
    quad_timesteps,
    uniform_timesteps,
)
from harness.errors import ConfigError

T = 51
# beta_s = 1e-4 + s * 9e-4 / 50, exactly.
BETAS_EXACT = [Fraction(1, 10000) + s * Fraction(9, 10000) / 50 for s in range(T)]


def _abar_exact(t: int) -> float:
    p = Fraction(1)
    for b in BETAS_EXACT[: t + 1]:
        p *= 1 - b
    return float(p)


# --- schedule -----------------------------------------------------------------------------------

def test_linear_betas_endpoints_and_sum():
    b = linear_betas()
    assert b.dtype == np.float64 and b.shape == (51,)
    assert b[0] == 1e-4 and b[-1] == 1e-3
    assert math.isclose(b.sum(), 0.02805, rel_tol=1e-14)
    np.testing.assert_allclose(b, [float(x) for x in BETAS_EXACT], rtol=1e-15, atol=0)
    np.testing.assert_allclose(np.diff(b), 1.8e-5, rtol=1e-9)


@pytest.mark.parametrize("t, pinned", [(0, 0.9999), (6, 0.9989224933756821), (50, 0.9723305030035978)])
def test_alphas_cumprod_pinned(t, pinned):
    a = alphas_cumprod(linear_betas())
    assert math.isclose(_abar_exact(t), pinned, rel_tol=1e-15)
    assert math.isclose(a[t], pinned, rel_tol=1e-14)
    s = DDIMScheduler()
    assert s.alpha_bar(t) == a[t]
    assert s.alpha_bar(-1) == 1.0


def test_scheduler_validation():
    with pytest.raises(ConfigError, match="beta"):
        linear_betas(0.0, 1e-3, 51)
    with pytest.raises(ConfigError, match="timestep 51"):
        DDIMScheduler().ddim_coefficients(51, 0)
    with pytest.raises(ConfigError, match="skip_type"):
        DDIMScheduler().timesteps(2, 12, skip_type="cosine")


# --- timestep sub-sequence ---------------------------------------------------------------------

def test_uniform_timesteps_released_default():
    # DiffPose gt config: test_timesteps=2, test_num_diffusion_timesteps=12 -> seq = range(0, 12, 6)
    assert uniform_timesteps(2, 12) == [6, 0]
    assert DDIMScheduler().timesteps(2, 12) == [6, 0]
    assert DDIMScheduler.step_pairs([6, 0]) == [(6, 0), (0, -1)]
    # DiffPose cpn config: 24 -> [12, 0]
    assert uniform_timesteps(2, 24) == [12, 0]
    # range semantics kept when steps do not divide: skip = 12 // 5 = 2
    assert uniform_timesteps(5, 12) == [10, 8, 6, 4, 2, 0]


def test_step_pairs_match_diffpose_zip():
    for seq_asc in ([0, 6], [0, 12], list(range(0, 12, 2)), [0, 0, 2, 5, 9]):
        seq_next = [-1] + list(seq_asc[:-1])
        diffpose = list(zip(reversed(seq_asc), reversed(seq_next)))
        assert DDIMScheduler.step_pairs(seq_asc[::-1]) == diffpose


def test_quad_timesteps():
    seq = np.linspace(0, np.sqrt(12 * 0.8), 5) ** 2
    assert quad_timesteps(5, 12) == [int(s) for s in seq][::-1] == [9, 5, 2, 0, 0]


# --- forward process ---------------------------------------------------------------------------

def test_q_sample_eq4():
    s = DDIMScheduler()
    x0 = torch.tensor([[[1.0, -2.0]], [[0.5, 3.0]]], dtype=torch.float64)
    eps = torch.tensor([[[0.25, 1.0]], [[-1.0, 2.0]]], dtype=torch.float64)
    t = torch.tensor([0, 50])
    out = s.q_sample(x0, t, eps)
    a0, a50 = 0.9999, 0.9723305030035978
    exp = torch.tensor([
        [[math.sqrt(a0) * 1.0 + math.sqrt(1 - a0) * 0.25, math.sqrt(a0) * -2.0 + math.sqrt(1 - a0) * 1.0]],
        [[math.sqrt(a50) * 0.5 - math.sqrt(1 - a50) * 1.0, math.sqrt(a50) * 3.0 + math.sqrt(1 - a50) * 2.0]],
    ], dtype=torch.float64)
    torch.testing.assert_close(out, exp, rtol=1e-14, atol=1e-14)
    # int t broadcasts
    torch.testing.assert_close(s.q_sample(x0, 6, eps), s.q_sample(x0, torch.tensor([6, 6]), eps))


# --- DDIM ----------------------------------------------------------------------------------------

def test_ddim_step_closed_form_eta0():
    s = DDIMScheduler()
    x = torch.tensor([[[0.3, -1.2, 0.7, 2.0, -0.4]]], dtype=torch.float64)
    eps = torch.tensor([[[0.1, 0.2, -0.3, 0.4, -0.5]]], dtype=torch.float64)
    a6, a0 = _abar_exact(6), _abar_exact(0)
    x0 = (x - math.sqrt(1 - a6) * eps) / math.sqrt(a6)
    exp = math.sqrt(a0) * x0 + math.sqrt(1 - a0) * eps
    torch.testing.assert_close(s.ddim_step(x, eps, 6, 0), exp, rtol=1e-14, atol=1e-14)
    # last step: t_next = -1, alpha_bar = 1 -> returns x0_pred exactly
    torch.testing.assert_close(s.ddim_step(x, eps, 6, -1), x0, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(s.pred_x0(x, eps, 6), x0, rtol=1e-14, atol=1e-14)


def test_ddim_step_eta_noise_term():
    s = DDIMScheduler()
    x = torch.full((2, 3, 5), 0.5, dtype=torch.float64)
    eps = torch.full((2, 3, 5), -0.25, dtype=torch.float64)
    eta, t, tn = 0.7, 12, 6
    a_t, a_p = _abar_exact(t), _abar_exact(tn)
    sigma = eta * math.sqrt((1 - a_p) / (1 - a_t)) * math.sqrt(1 - a_t / a_p)  # Eq. 16
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    exp = math.sqrt(a_p) * x0 + math.sqrt(1 - a_p - sigma ** 2) * eps + sigma * z
    got = s.ddim_step(x, eps, t, tn, eta=eta, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, exp, rtol=1e-13, atol=1e-13)


def test_two_step_sample_constant_eps_by_hand():
    """[6, 0] on eps(x, t) = c: step 6->0 then 0->-1 returns x0 = (x_K - sqrt(1-a6) c) / sqrt(a6)."""
    s = DDIMScheduler()
    c = torch.tensor([0.1, -0.2, 0.3, -0.4, 0.5], dtype=torch.float64)
    xK = torch.arange(2 * 17 * 5, dtype=torch.float64).reshape(2, 17, 5) / 100.0
    seen = []

    def model(x, t):
        seen.append(t.clone())
        return c.expand_as(x)

    out = s.sample(model, xK, [6, 0])
    a6 = _abar_exact(6)
    exp = (xK - math.sqrt(1 - a6) * c) / math.sqrt(a6)
    torch.testing.assert_close(out, exp, rtol=1e-13, atol=1e-13)
    assert [t.tolist() for t in seen] == [[6, 6], [0, 0]]
    assert all(t.dtype == torch.long for t in seen)


def _diffpose_generalized_steps(x, seq_asc, model, betas, eta, generator):
    """Float64 re-statement of DiffPose's common/utils_diff.py::generalized_steps (for comparison)."""
    b = torch.from_numpy(betas)

    def compute_alpha(beta, t):
        beta = torch.cat([torch.zeros(1, dtype=beta.dtype), beta], dim=0)
        return (1 - beta).cumprod(dim=0).index_select(0, t + 1).view(-1, 1, 1)

    n = x.size(0)
    seq_next = [-1] + list(seq_asc[:-1])
    xs = [x]
    for i, j in zip(reversed(seq_asc), reversed(seq_next)):
        t = torch.ones(n, dtype=torch.float64) * i
        next_t = torch.ones(n, dtype=torch.float64) * j
        at = compute_alpha(b, t.long())
        at_next = compute_alpha(b, next_t.long())
        xt = xs[-1]
        et = model(xt, t.long())
        x0_t = (xt - et * (1 - at).sqrt()) / at.sqrt()
        c1 = eta * ((1 - at / at_next) * (1 - at_next) / (1 - at)).sqrt()
        c2 = ((1 - at_next) - c1 ** 2).sqrt()
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        xs.append(at_next.sqrt() * x0_t + c1 * noise + c2 * et)
    return xs[-1]


def _toy_model(x, t):
    return torch.tanh(x * 0.7 + 0.01 * t.to(x.dtype).view(-1, 1, 1)) - 0.1 * x.roll(1, dims=1)


@pytest.mark.parametrize("eta", [0.0, 0.5])
@pytest.mark.parametrize("seq_asc", [[0, 6], [0, 12], [0, 0, 2, 5, 9]])
def test_sample_matches_released_generalized_steps(seq_asc, eta):
    s = DDIMScheduler()
    xK = torch.randn((4, 17, 5), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = _diffpose_generalized_steps(xK, seq_asc, _toy_model, s.betas, eta, torch.Generator().manual_seed(1))
    got = s.sample(_toy_model, xK, seq_asc[::-1], eta=eta, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_sample_eta0_deterministic_and_eta_seeded():
    s = DDIMScheduler()
    xK = torch.randn((8, 17, 5), generator=torch.Generator().manual_seed(0))
    a = s.sample(_toy_model, xK, [6, 0])
    b = s.sample(_toy_model, xK, [6, 0])
    assert torch.equal(a, b) and a.dtype == torch.float32
    c1 = s.sample(_toy_model, xK, [12, 6, 0], eta=1.0, generator=torch.Generator().manual_seed(5))
    c2 = s.sample(_toy_model, xK, [12, 6, 0], eta=1.0, generator=torch.Generator().manual_seed(5))
    c3 = s.sample(_toy_model, xK, [12, 6, 0], eta=1.0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(c1, c2) and not torch.equal(c1, c3)


def test_sample_float32_close_to_float64():
    s = DDIMScheduler()
    xK = torch.randn((8, 17, 5), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    hi = s.sample(_toy_model, xK, [12, 6, 0])
    lo = s.sample(_toy_model, xK.float(), [12, 6, 0])
    torch.testing.assert_close(lo.double(), hi, rtol=1e-5, atol=1e-5)


def test_sample_has_no_host_round_trips(monkeypatch):
    s = DDIMScheduler()
    xK = torch.randn((3, 17, 5), generator=torch.Generator().manual_seed(0))
    s.sample(_toy_model, xK, [6, 0])  # warm the coefficient cache

    def forbid(name):
        def _raise(*a, **k):
            raise AssertionError(f"host round-trip: Tensor.{name} called in the sampling loop")
        return _raise

    for name in ("item", "tolist", "numpy", "cpu"):
        monkeypatch.setattr(torch.Tensor, name, forbid(name))
    monkeypatch.setattr(torch.Tensor, "__bool__", forbid("__bool__"))
    out = s.sample(_toy_model, xK, [12, 6, 0], eta=0.3, generator=torch.Generator().manual_seed(0))
    assert out.shape == xK.shape


def test_sample_return_x0():
    s = DDIMScheduler()
    xK = torch.randn((2, 17, 5), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out, x0s = s.sample(_toy_model, xK, [6, 0], return_x0=True)
    assert len(x0s) == 2
    torch.testing.assert_close(x0s[-1], out)  # last step goes to alpha_bar = 1


# --- training helpers ------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 7, 8, 1024])
def test_antithetic_timesteps(n):
    t = antithetic_timesteps(n, T, torch.Generator().manual_seed(0))
    assert t.shape == (n,) and t.dtype == torch.long
    assert int(t.min()) >= 0 and int(t.max()) <= T - 1
    h = n // 2 + 1
    for i in range(n - h):
        assert int(t[i]) + int(t[i + h]) == T - 1
    # same draw as DiffPose's two lines with the same generator state
    g = torch.Generator().manual_seed(0)
    ref = torch.randint(low=0, high=T, size=(h,), generator=g)
    ref = torch.cat([ref, T - ref - 1], dim=0)[:n]
    assert torch.equal(t, ref)


def test_noise_prediction_loss_value():
    eps = torch.arange(12, dtype=torch.float64).reshape(2, 2, 3)
    pred = torch.zeros_like(eps)
    # batch 0: 0^2 + ... + 5^2 = 55; batch 1: 6^2 + ... + 11^2 = 451; mean = 253
    loss = noise_prediction_loss(pred, eps)
    assert loss.shape == () and float(loss) == 253.0
    e = torch.randn((4, 17, 5), generator=torch.Generator().manual_seed(0))
    o = torch.randn((4, 17, 5), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(noise_prediction_loss(o, e), (e - o).square().sum(dim=(1, 2)).mean(dim=0))
