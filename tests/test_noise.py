"""Tests for harness.noise: Gaussian scale, GMM fit by BIC, sampling statistics, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from harness.errors import ConfigError, DataError
from harness.noise import GaussianNoise, GMMNoise, KernelNoise, build_noise, noise_from_dict

# --- Gaussian --------------------------------------------------------------------------------------


def test_gaussian_default_is_released_std():
    g = GaussianNoise()
    np.testing.assert_array_equal(g.std, [0.1, 0.1, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(g.variance, [0.01, 0.01, 1.0, 1.0, 1.0])


def test_gaussian_empirical_variance_200k():
    g = GaussianNoise()
    e = g.sample(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert e.shape == (200_000, 17, 5) and e.dtype == torch.float64
    var = e.reshape(-1, 5).var(dim=0).numpy()
    mean = e.reshape(-1, 5).mean(dim=0).numpy()
    # 3.4M draws per channel: relative s.e. of a variance ~ sqrt(2 / 3.4e6) ~ 0.08%
    np.testing.assert_allclose(var, [0.01, 0.01, 1.0, 1.0, 1.0], rtol=0.005)
    z = np.abs(mean) / np.array([0.1, 0.1, 1.0, 1.0, 1.0]) * np.sqrt(3.4e6)  # mean in standard errors
    assert np.all(z < 5), z


def test_gaussian_is_released_formula_and_shapes():
    g = GaussianNoise()
    got = g.sample((3, 4, 17, 5), generator=torch.Generator().manual_seed(7))
    ref = torch.randn((3, 4, 17, 5), generator=torch.Generator().manual_seed(7)) * torch.tensor([0.1, 0.1, 1., 1., 1.])
    assert torch.equal(got, ref)  # randn * noise_scale, as jjkislele/monoMotionDiff does
    with pytest.raises(ValueError, match="must end with"):
        g.sample((3, 16, 5))
    with pytest.raises(ConfigError, match="noise.std"):
        GaussianNoise(std=(0.1, 1.0))
    assert noise_from_dict(json.loads(json.dumps(g.to_dict()))).std.tolist() == g.std.tolist()


# --- GMM -------------------------------------------------------------------------------------------

MEANS = {  # joint -> component means (5-D)
    0: np.array([[1.0, -1.0, 0.5, 0.0, 0.2], [-1.0, 1.0, -0.5, 0.3, -0.2]]),
    1: np.array([[0.05, 0.02, -0.1, 0.0, 0.3]]),
}
WEIGHTS = {0: np.array([0.6, 0.4]), 1: np.array([1.0])}


def _cov(seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(5, 5)) * 0.05
    return a @ a.T + np.diag([0.01, 0.01, 0.02, 0.02, 0.02])


COVS = {0: [_cov(1), _cov(2)], 1: [_cov(3)]}


def _synthetic_residuals(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, 2, 5))
    for j in (0, 1):
        comp = rng.choice(len(WEIGHTS[j]), size=n, p=WEIGHTS[j])
        for k in range(len(WEIGHTS[j])):
            m = comp == k
            out[m, j] = rng.multivariate_normal(MEANS[j][k], COVS[j][k], size=int(m.sum()))
    return out


@pytest.fixture(scope="module")
def fitted() -> GMMNoise:
    return GMMNoise.fit(_synthetic_residuals(3000), max_components=4, seed=0)


def test_gmm_fit_bic_picks_true_counts_and_recovers_means(fitted):
    assert fitted.n_components.tolist() == [2, 1]
    assert fitted.weights.shape == (2, 2) and fitted.means.shape == (2, 2, 5) and fitted.cholesky.shape == (2, 2, 5, 5)
    # joint 0: heaviest first
    np.testing.assert_allclose(fitted.weights[0], [0.6, 0.4], atol=0.03)
    np.testing.assert_allclose(fitted.means[0], MEANS[0], atol=0.03)
    np.testing.assert_allclose(fitted.covariances[0, 0], COVS[0][0], atol=0.01)
    # joint 1: one component, padded slot has zero weight
    np.testing.assert_allclose(fitted.weights[1], [1.0, 0.0])
    np.testing.assert_allclose(fitted.means[1, 0], MEANS[1][0], atol=0.02)
    assert len(fitted.info["bic"][0]) == 4 and int(np.argmin(fitted.info["bic"][0])) == 1


def test_gmm_fit_is_deterministic():
    r = _synthetic_residuals(600, seed=4)
    a = GMMNoise.fit(r, max_components=3, seed=0, max_samples=400)
    b = GMMNoise.fit(r, max_components=3, seed=0, max_samples=400)
    assert a.to_dict() == b.to_dict()
    assert a.info["num_fit_samples"] == 400


def test_gmm_sampling_matches_fit_moments(fitted):
    e = fitted.sample((100_000, 2, 5), generator=torch.Generator().manual_seed(0), dtype=torch.float64).numpy()
    for j in range(2):
        np.testing.assert_allclose(e[:, j].mean(axis=0), fitted.mixture_mean()[j], atol=0.01)
        np.testing.assert_allclose(np.cov(e[:, j].T), fitted.mixture_covariance()[j], atol=0.01)
    # joint 0 is bimodal: the sign of u splits the two components in the fitted proportions
    frac = (e[:, 0, 0] > 0).mean()
    assert abs(frac - fitted.weights[0, 0]) < 0.01


def test_gmm_roundtrip_identical_samples(fitted, tmp_path):
    d = json.loads(json.dumps(fitted.to_dict()))
    back = GMMNoise.from_dict(d)
    a = fitted.sample((500, 2, 5), generator=torch.Generator().manual_seed(11))
    b = back.sample((500, 2, 5), generator=torch.Generator().manual_seed(11))
    assert torch.equal(a, b)
    fitted.save(tmp_path / "noise.json")
    c = GMMNoise.load(tmp_path / "noise.json").sample((500, 2, 5), generator=torch.Generator().manual_seed(11))
    assert torch.equal(a, c)
    assert [p.name for p in tmp_path.iterdir()] == ["noise.json"]
    d2 = noise_from_dict(d)
    assert isinstance(d2, GMMNoise)


def test_gmm_sample_int_gives_n_joints_5(fitted):
    assert fitted.sample(7, generator=torch.Generator().manual_seed(0)).shape == (7, 2, 5)
    assert fitted.sample(0).shape == (0, 2, 5)


def test_gmm_validation():
    with pytest.raises(DataError, match=r"expected \(N >= 2, J, 5\)"):
        GMMNoise.fit(np.zeros((10, 17, 3)))
    w = np.array([[0.5, 0.5]])
    mu = np.zeros((1, 2, 5))
    cov = np.tile(np.eye(5), (1, 2, 1, 1))
    with pytest.raises(DataError, match="sum to 1"):
        GMMNoise(w * 0.5, mu, cov)
    bad = cov.copy()
    bad[0, 1] = -np.eye(5)
    with pytest.raises(DataError, match="positive definite"):
        GMMNoise(w, mu, bad)
    with pytest.raises(DataError, match="beyond n_components"):
        GMMNoise(w, mu, cov, n_components=[1])


# --- factory -----------------------------------------------------------------------------------------

def test_build_noise():
    assert isinstance(build_noise("gaussian"), GaussianNoise)
    assert build_noise("gaussian", std=(1, 1, 1, 1, 1)).std.tolist() == [1.0] * 5
    r = _synthetic_residuals(300, seed=2)
    g = build_noise("gmm", residuals=r, max_components=2)
    assert isinstance(g, GMMNoise)
    assert build_noise("gmm", state=g.to_dict()).to_dict() == g.to_dict()
    with pytest.raises(ConfigError, match="exactly one"):
        build_noise("gmm")
    with pytest.raises(ConfigError, match=r"unknown name 'cauchy' \(valid: gaussian, gmm, kernels\)"):
        build_noise("cauchy")


def test_gmm_scale_multiplies_draws_and_round_trips(fitted):
    scaled = GMMNoise.from_dict({**fitted.to_dict(), "scale": 2.5})
    assert scaled.scale == 2.5 and fitted.scale == 1.0
    a = fitted.sample(64, generator=torch.Generator().manual_seed(3))
    b = scaled.sample(64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(b, 2.5 * a, rtol=0, atol=1e-6)
    assert noise_from_dict(json.loads(json.dumps(scaled.to_dict()))).scale == 2.5
    with pytest.raises(DataError, match="scale must be finite and > 0"):
        GMMNoise.from_dict({**fitted.to_dict(), "scale": 0.0})


def test_gmm_scale_for_the_released_schedule():
    """1/sqrt(1 - abar_6), abar_6 = prod_{t<=6} (1 - beta_t), betas linear 1e-4..1e-3 over 51."""
    from harness.config import Config
    from harness.noise import gmm_scale

    betas = np.linspace(1e-4, 1e-3, 51)
    expected = 1.0 / np.sqrt(1.0 - np.prod(1.0 - betas[:7]))
    assert gmm_scale(Config()) == pytest.approx(expected, rel=1e-12)
    assert gmm_scale(Config()) == pytest.approx(30.464217375558235, rel=1e-12)
    assert gmm_scale(Config(gmm_scale_to_start=False)) == 1.0


def test_gmm_fit_constant_joint_gets_one_component():
    """A joint whose residuals are all equal (the root, root-relative) is fit with one component."""
    rng = np.random.default_rng(0)
    r = rng.normal(size=(300, 2, 5)) * 0.01
    r[:, 0] = 0.0
    g = GMMNoise.fit(r, max_components=3, seed=0)
    assert g.n_components[0] == 1 and len(g.info["bic"][0]) == 1 and len(g.info["bic"][1]) == 3


# --- DiffPose's per-frame kernels ('kernels') -------------------------------------------------------

def _two_kernel_toy(n: int, J: int = 3) -> torch.Tensor:
    """(n, J, 2, 5): weights 0.25 / 0.75, mu (0.1, -0.2) / (-0.3, 0.4), sigma (0.01, 0.02) / (0.05, 0.08)."""
    k = torch.empty(n, J, 2, 5)
    k[:, :, 0] = torch.tensor([0.25, 0.1, -0.2, 0.01, 0.02])
    k[:, :, 1] = torch.tensor([0.75, -0.3, 0.4, 0.05, 0.08])
    return k


def test_kernel_noise_draws_the_mixture():
    n, J = 200_000, 3
    kern = _two_kernel_toy(n, J)
    noise = KernelNoise(num_joints=J)
    mu, sig = noise.draw(kern, generator=torch.Generator().manual_seed(0))
    assert mu.shape == sig.shape == (n, J, 2) and mu.dtype == torch.float32
    first = (mu == torch.tensor([0.1, -0.2])).all(-1)
    second = (mu == torch.tensor([-0.3, 0.4])).all(-1)
    assert bool((first ^ second).all())                       # the 2D is one kernel's mu ...
    torch.testing.assert_close(sig[first], torch.tensor([0.01, 0.02]).expand(int(first.sum()), 2), rtol=0, atol=0)
    torch.testing.assert_close(sig[second], torch.tensor([0.05, 0.08]).expand(int(second.sum()), 2), rtol=0, atol=0)
    freq = first.double().mean().item()                        # ... kernel 0 a quarter of the time
    assert abs(freq - 0.25) < 4 * np.sqrt(0.25 * 0.75 / (n * J))
    eps = noise.sample(n, generator=torch.Generator().manual_seed(1), sigma=sig, dtype=torch.float64)
    assert eps.shape == (n, J, 5) and eps.dtype == torch.float64
    var = eps.reshape(-1, 5).var(dim=0).numpy()
    # u, v: the mixture's variance sum_k w_k sigma_k^2; x, y, z: 1
    np.testing.assert_allclose(var, [0.25 * 0.01**2 + 0.75 * 0.05**2, 0.25 * 0.02**2 + 0.75 * 0.08**2, 1, 1, 1],
                               rtol=0.02)
    np.testing.assert_allclose((eps[..., :2] / sig.double()).reshape(-1, 2).std(dim=0).numpy(), [1.0, 1.0], rtol=0.01)
    assert np.abs(eps.reshape(-1, 5).mean(dim=0).numpy()[2:]).max() < 0.01
    # the same generator state draws the same kernels and noise
    mu2, _ = noise.draw(kern, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mu, mu2)


def test_kernel_noise_never_draws_weight_zero_kernels():
    k = torch.zeros(5000, 17, 3, 5)
    k[..., 3:5] = 0.01
    k[..., 0, 0] = 1.0
    k[..., 1:3] = torch.arange(3, dtype=torch.float32).view(3, 1)  # mu = kernel index
    mu, _ = KernelNoise().draw(k, generator=torch.Generator().manual_seed(0))
    assert bool((mu == 0).all())
    k[..., 0] = torch.tensor([0.5, 0.0, 0.5 - 1e-7])  # middle kernel 0, sum short of 1 by float32 rounding
    mu, _ = KernelNoise().draw(k, generator=torch.Generator().manual_seed(0))
    assert set(mu[..., 0].unique().tolist()) == {0.0, 2.0}


def test_kernel_noise_from_kernels_and_persistence():
    kern = _two_kernel_toy(10, 3).numpy()
    noise = build_noise("kernels", kernels=kern)
    assert isinstance(noise, KernelNoise) and noise.num_joints == 3
    rms = np.sqrt([0.25 * 0.01**2 + 0.75 * 0.05**2, 0.25 * 0.02**2 + 0.75 * 0.08**2])
    np.testing.assert_allclose(noise.sigma_uv, np.tile(rms, (3, 1)), rtol=1e-6)
    back = noise_from_dict(json.loads(json.dumps(noise.to_dict())))
    assert isinstance(back, KernelNoise) and back.sigma_uv.tolist() == noise.sigma_uv.tolist()
    # without per-sample sigmas (the multi-hypothesis starts): the RMS sigma on u, v, 1 on x, y, z
    e = back.sample(100_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    np.testing.assert_allclose(e.reshape(-1, 5).std(dim=0).numpy(), [*rms, 1, 1, 1], rtol=0.01)
    with pytest.raises(DataError, match=r"expected \(B, 3, K, 5\) kernels"):
        noise.draw(torch.zeros(4, 17, 2, 5))
    with pytest.raises(DataError, match="sigma_uv must be"):
        KernelNoise(num_joints=2, sigma_uv=[[0.1, 0.0], [0.1, 0.1]])


def test_kernel_noise_needs_gmm_keypoints():
    from harness.config import Config, validate
    from harness.data.base import PoseSet
    from harness.noise import build_noise_for

    with pytest.raises(ConfigError, match=r"'noise' kernels needs --keypoints <name>_gmm .*keypoints is 'gt' "
                                          r"\(got 'kernels'\)"):
        validate(Config(noise="kernels"), source="options")
    assert validate(Config(noise="kernels", keypoints="cpn_ft_h36m_dbb_gmm")).noise == "kernels"
    z = np.zeros(2)
    train = PoseSet(np.zeros((2, 17, 2), np.float32), np.zeros((2, 17, 3), np.float32), z, z, z, z, z, z, meta={})
    with pytest.raises(DataError, match=r"noise 'kernels': the training split has no per-frame GMM 2D kernels"):
        build_noise_for(Config(noise="kernels", keypoints="x_gmm"), {"train": train}, {}, None)


def test_kernels_is_registered_but_left_out_of_the_default_grid():
    from harness.ablate import DEFAULT_NOISES
    from harness.variants import NOISE_NEEDS, NOISES

    assert NOISES.names() == ["gaussian", "gmm", "kernels"]
    assert NOISES.get("kernels").startswith("DiffPose's per-frame kernel noise")
    assert NOISE_NEEDS == {"kernels": "--keypoints <name>_gmm"}
    assert DEFAULT_NOISES == ("gaussian", "gmm")
