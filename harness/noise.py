"""Training-noise models for the 5-channel pose ``[u, v, x, y, z]`` (17 joints by default).

Each model draws the ``eps`` of DDPM Eq. 4 (``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``) that
the denoiser learns to predict. Common interface::

    sample(shape_or_n, generator=None, device=None, dtype=torch.float32) -> Tensor (..., J, 5)

``shape_or_n`` is a sample count N (giving (N, J, 5)) or a full shape ending in ``(J, 5)``.
Randoms are drawn on the generator's device (so a seed gives the same numbers wherever the result
goes) and moved to ``device``.

What the released code does
- DiffPose (GONGJIA0208/Diffpose ``runners/diffpose_frame.py::train``): ``e = torch.randn_like(x)``
  then ``e = e*(targets_noise_scale)``, where ``common/generators.py::PoseGenerator_gmm`` builds
  ``targets_noise_scale = concat(kernel[:, 3:5], ones(3))`` per joint from the GMM kernel it drew for
  that frame. The per-channel factor multiplies a unit normal, so it is a **standard deviation**
  (the code names it ``kernel_variance``, but the variance is its square). There is no constant
  2D factor in DiffPose; its 2D scale is whatever the ``*_gmm.npz`` file holds.
- Cross-channel embedding (Jiang & Chen, ICASSP 2024; jjkislele/monoMotionDiff ``models/runner.py::train``):
  ``noise_scale = [0.1, 0.1, 1., 1., 1.]`` and ``e = torch.randn_like(x) * targets_noise_scale``:
  a fixed per-channel **std** of 0.1 on u, v (normalised screen units: 0.1 = 50 px on a 1000-px-wide
  image) and 1 on x, y, z (metres). Variance: ``diag(0.01, 0.01, 1, 1, 1)``. :class:`GaussianNoise`'s
  default is exactly that.

:class:`KernelNoise` (``kernels``) is DiffPose's: it needs the per-frame kernels of a ``*_gmm``
keypoints file (``PoseSet.meta["gmm_2d"]``) and draws, per sample and joint, the kernel whose mu
becomes the batch's 2D and whose sigma the u, v noise std.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from harness.errors import ConfigError, DataError
from harness.variants import NOISES

__all__ = ["CHANNELS", "GaussianNoise", "GMMNoise", "KernelNoise", "build_noise", "noise_from_dict", "NOISE_NAMES"]

CHANNELS = ("u", "v", "x", "y", "z")
NUM_CHANNELS = len(CHANNELS)
_CHUNK = 16384  # rows per block when applying per-sample Cholesky factors


def _resolve_shape(shape_or_n: int | Sequence[int], num_joints: int) -> tuple[int, ...]:
    if isinstance(shape_or_n, (int, np.integer)):
        n = int(shape_or_n)
        if n < 0:
            raise ValueError(f"noise sample count must be >= 0, got {n}")
        return (n, num_joints, NUM_CHANNELS)
    shape = tuple(int(s) for s in shape_or_n)
    if len(shape) < 2 or shape[-2:] != (num_joints, NUM_CHANNELS):
        raise ValueError(f"noise sample shape {shape}: must end with (joints={num_joints}, channels={NUM_CHANNELS})")
    return shape


def _draw_device(generator: torch.Generator | None, device) -> torch.device:
    if generator is not None:
        return generator.device
    return torch.device(device) if device is not None else torch.device("cpu")


def _target_device(generator: torch.Generator | None, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    return generator.device if generator is not None else torch.device("cpu")


class GaussianNoise:
    """``eps ~ N(0, diag(std**2))`` per joint on ``[u, v, x, y, z]``, i.e. ``randn * std``.

    ``std`` is a per-channel standard deviation (a multiplier on a unit normal, as both released
    codes apply it). Default ``(0.1, 0.1, 1, 1, 1)``: the cross-channel paper's released
    ``noise_scale``, variance ``diag(0.01, 0.01, 1, 1, 1)``. ``std = (1,) * 5`` is plain DDPM noise.
    """

    name = "gaussian"

    def __init__(self, std: Sequence[float] = (0.1, 0.1, 1.0, 1.0, 1.0), num_joints: int = 17):
        std_arr = np.asarray(std, dtype=np.float64).reshape(-1)
        if std_arr.shape != (NUM_CHANNELS,) or not np.all(np.isfinite(std_arr)) or np.any(std_arr < 0):
            raise ConfigError(f"noise.std: expected {NUM_CHANNELS} finite non-negative values for "
                              f"{list(CHANNELS)}, got {list(np.atleast_1d(std))}")
        if int(num_joints) < 1:
            raise ConfigError(f"noise.num_joints: must be >= 1, got {num_joints}")
        self.std = std_arr
        self.num_joints = int(num_joints)
        self._std_cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @property
    def variance(self) -> np.ndarray:
        return self.std ** 2

    def sample(self, shape_or_n, generator: torch.Generator | None = None, device=None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        shape = _resolve_shape(shape_or_n, self.num_joints)
        src = _draw_device(generator, device)
        z = torch.randn(shape, generator=generator, device=src, dtype=dtype)
        key = (src, dtype)
        if key not in self._std_cache:  # one host->device copy per (device, dtype)
            self._std_cache[key] = torch.as_tensor(self.std, dtype=dtype, device=src)
        out = z * self._std_cache[key]
        return out.to(_target_device(generator, device))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "std": self.std.tolist(), "num_joints": self.num_joints,
                "channels": list(CHANNELS)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GaussianNoise":
        if "std" not in d:  # to_dict always writes it: a state without it is damaged, not a default
            raise DataError("gaussian noise state: needs 'std' (the per-channel standard deviations)")
        return cls(std=d["std"], num_joints=d.get("num_joints", 17))

    def __repr__(self) -> str:
        return f"GaussianNoise(std={self.std.tolist()}, num_joints={self.num_joints})"


class GMMNoise:
    """Per-joint Gaussian mixtures (full covariance) of the residuals ``[du, dv, dx, dy, dz]``.

    Residual = (network input) - (ground truth): ``du, dv`` the 2D detection minus the GT 2D,
    ``dx, dy, dz`` the lifter's root-relative 3D minus the GT 3D, all in the units the training data
    uses (normalised screen units, metres). Samples include the component means (the residual's bias
    is not removed).

    Arrays (float64, numpy), with K = the largest component count over joints; joints with fewer
    components are padded with weight 0, mean 0 and identity covariance (never drawn):

    - ``weights`` (J, K), ``means`` (J, K, 5), ``covariances`` (J, K, 5, 5), ``n_components`` (J,)
    - ``cholesky`` (J, K, 5, 5): lower factors, recomputed from ``covariances`` on construction.

    Sampling (all batched torch ops): per sample and joint a component ``k`` is drawn with
    ``torch.multinomial(weights[j], N, replacement=True, generator)``, then
    ``eps = scale * (means[j, k] + cholesky[j, k] @ z)`` with ``z ~ N(0, I_5)``.

    ``scale`` (default 1: a draw is a residual) lets the forward process carry the residuals at a
    chosen timestep: with ``scale = 1 / sqrt(1 - abar_K)``, ``x_K = sqrt(abar_K) x_0 +
    sqrt(1 - abar_K) eps`` is (up to ``sqrt(abar_K)`` ~ 1) the ground truth plus one residual, the
    very start DDIM inference refines. Unscaled, residuals of a few cm become
    ``sqrt(1 - abar_t) <= 0.17`` times smaller still, so the denoiser sees almost no noise and learns
    to move the pose by about a millimetre. :func:`build_noise_for` sets it.
    """

    name = "gmm"

    def __init__(self, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray,
                 n_components: np.ndarray | None = None, info: dict[str, Any] | None = None,
                 scale: float = 1.0):
        scale = float(scale)
        if not (math.isfinite(scale) and scale > 0):
            raise DataError(f"GMM noise: scale must be finite and > 0, got {scale}")
        self.scale = scale
        w = np.asarray(weights, dtype=np.float64)
        mu = np.asarray(means, dtype=np.float64)
        cov = np.asarray(covariances, dtype=np.float64)
        if w.ndim != 2 or mu.shape != w.shape + (NUM_CHANNELS,) or cov.shape != w.shape + (NUM_CHANNELS, NUM_CHANNELS):
            raise DataError(f"GMM noise: inconsistent shapes weights {w.shape}, means {mu.shape}, "
                            f"covariances {cov.shape}; expected (J, K), (J, K, 5), (J, K, 5, 5)")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(mu)) and np.all(np.isfinite(cov))):
            raise DataError("GMM noise: weights, means and covariances must be finite")
        if np.any(w < 0) or np.any(np.abs(w.sum(axis=1) - 1.0) > 1e-6):
            raise DataError("GMM noise: weights must be non-negative and sum to 1 for every joint")
        if n_components is None:
            n_components = (w > 0).sum(axis=1)
        n_components = np.asarray(n_components, dtype=np.int64)
        if n_components.shape != (w.shape[0],) or np.any(n_components < 1) or np.any(n_components > w.shape[1]):
            raise DataError(f"GMM noise: n_components {n_components.tolist()} does not fit weights of shape {w.shape}")
        # Padding slots must carry no weight.
        pad = np.arange(w.shape[1])[None, :] >= n_components[:, None]
        if np.any(w[pad] != 0):
            raise DataError("GMM noise: weights beyond n_components must be 0")
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise DataError("GMM noise: a covariance matrix is not positive definite") from None
        self.weights, self.means, self.covariances = w, mu, cov
        self.n_components = n_components
        self.cholesky = chol
        self.info = dict(info or {})
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, ...]] = {}

    @property
    def num_joints(self) -> int:
        return int(self.weights.shape[0])

    @property
    def max_components(self) -> int:
        return int(self.weights.shape[1])

    # -- fitting ---------------------------------------------------------------------------------
    @classmethod
    def fit(cls, residuals: np.ndarray, max_components: int = 8, seed: int = 0, max_samples: int = 20000,
            reg_covar: float = 1e-6, max_iter: int = 200, progress=None) -> "GMMNoise":
        """Fit one mixture per joint on ``residuals`` (N, J, 5); the component count per joint is the
        BIC minimum over ``1..max_components`` (sklearn ``GaussianMixture``, full covariance,
        ``random_state=seed``). At most ``max_samples`` rows per joint are used, drawn without
        replacement with ``np.random.default_rng(seed)`` (same rows for every joint). ``progress`` gets
        ``{"stage": "gmm", "done": j, "total": J}`` before the first joint and after each."""
        from sklearn.mixture import GaussianMixture

        r = np.asarray(residuals, dtype=np.float64)
        if r.ndim != 3 or r.shape[2] != NUM_CHANNELS or r.shape[0] < 2:
            raise DataError(f"GMM noise fit: residuals have shape {r.shape}, expected (N >= 2, J, {NUM_CHANNELS})")
        if not np.all(np.isfinite(r)):
            raise DataError("GMM noise fit: residuals contain NaN or inf")
        if int(max_components) < 1:
            raise ConfigError(f"noise.max_components: must be >= 1, got {max_components}")
        if int(max_samples) < 2:
            raise ConfigError(f"noise.max_samples: must be >= 2, got {max_samples}")
        n, J, _ = r.shape
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(n, size=int(max_samples), replace=False)) if n > max_samples else np.arange(n)
        k_max = int(min(max_components, len(rows)))
        fits, bics = [], []
        if progress:
            progress({"stage": "gmm", "done": 0, "total": J})
        for j in range(J):
            data = r[rows, j, :]
            best, best_bic, joint_bics = None, math.inf, []
            # no more components than distinct points (the root joint's residuals are all zero)
            k_j = min(k_max, len(np.unique(data, axis=0)))
            for k in range(1, k_j + 1):
                gm = GaussianMixture(n_components=k, covariance_type="full", random_state=seed,
                                     reg_covar=reg_covar, max_iter=max_iter)
                gm.fit(data)
                bic = float(gm.bic(data))
                joint_bics.append(bic)
                if bic < best_bic:
                    best, best_bic = gm, bic
            fits.append(best)
            bics.append(joint_bics)
            if progress:
                progress({"stage": "gmm", "done": j + 1, "total": J})
        K = max(g.n_components for g in fits)
        w = np.zeros((J, K))
        mu = np.zeros((J, K, NUM_CHANNELS))
        cov = np.tile(np.eye(NUM_CHANNELS), (J, K, 1, 1))
        for j, g in enumerate(fits):
            order = np.argsort(-g.weights_, kind="stable")  # heaviest component first
            k = g.n_components
            w[j, :k] = g.weights_[order] / g.weights_.sum()
            mu[j, :k] = g.means_[order]
            cov[j, :k] = g.covariances_[order]
        info = {"seed": int(seed), "max_components": int(max_components), "max_samples": int(max_samples),
                "num_fit_samples": int(len(rows)), "num_residuals": int(n), "reg_covar": float(reg_covar),
                "bic": bics}
        return cls(w, mu, cov, n_components=np.array([g.n_components for g in fits]), info=info)

    # -- statistics --------------------------------------------------------------------------------
    def mixture_mean(self) -> np.ndarray:
        """(J, 5): ``sum_k w_k mu_k``."""
        return np.einsum("jk,jkc->jc", self.weights, self.means)

    def mixture_covariance(self) -> np.ndarray:
        """(J, 5, 5): ``sum_k w_k (S_k + mu_k mu_k^T) - m m^T``."""
        m = self.mixture_mean()
        second = np.einsum("jk,jkab->jab", self.weights,
                           self.covariances + np.einsum("jka,jkb->jkab", self.means, self.means))
        return second - np.einsum("ja,jb->jab", m, m)

    # -- sampling ----------------------------------------------------------------------------------
    def _tensors(self, device: torch.device, dtype: torch.dtype):
        key = (torch.device(device), dtype)
        if key not in self._cache:
            self._cache[key] = (
                torch.as_tensor(self.weights, device=device, dtype=torch.float64),
                torch.as_tensor(self.means, device=device, dtype=dtype),
                torch.as_tensor(self.cholesky, device=device, dtype=dtype),
            )
        return self._cache[key]

    def sample(self, shape_or_n, generator: torch.Generator | None = None, device=None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        shape = _resolve_shape(shape_or_n, self.num_joints)
        src = _draw_device(generator, device)
        J = self.num_joints
        n = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        w, mu, chol = self._tensors(src, dtype)
        if n == 0:
            return torch.zeros(shape, dtype=dtype, device=_target_device(generator, device))
        # 1. component per (joint, sample): (J, n)
        comp = torch.multinomial(w, n, replacement=True, generator=generator)
        # 2. unit normals (n, J, 5)
        z = torch.randn((n, J, NUM_CHANNELS), generator=generator, device=src, dtype=dtype)
        # 3. eps = mu[j, k] + L[j, k] z, gathered per sample; applied in blocks to bound memory
        comp = comp.t()  # (n, J)
        joint = torch.arange(J, device=src).expand(n, J)
        out = torch.empty_like(z)
        for s in range(0, n, _CHUNK):
            e = min(s + _CHUNK, n)
            jj, kk = joint[s:e], comp[s:e]
            out[s:e] = mu[jj, kk] + (chol[jj, kk] @ z[s:e].unsqueeze(-1)).squeeze(-1)
        if self.scale != 1.0:
            out.mul_(self.scale)
        return out.reshape(shape).to(_target_device(generator, device))

    # -- persistence -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (nested lists of floats/ints), JSON-safe; floats round-trip exactly."""
        return {
            "name": self.name,
            "channels": list(CHANNELS),
            "num_joints": self.num_joints,
            "n_components": self.n_components.tolist(),
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "covariances": self.covariances.tolist(),
            "scale": self.scale,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GMMNoise":
        try:
            weights, means, covariances = d["weights"], d["means"], d["covariances"]
        except (KeyError, TypeError):
            raise DataError("GMM noise state: needs 'weights', 'means' and 'covariances'") from None
        if list(d.get("channels", CHANNELS)) != list(CHANNELS):
            raise DataError(f"GMM noise state: channels {d.get('channels')} differ from {list(CHANNELS)}")
        return cls(np.asarray(weights, dtype=np.float64), np.asarray(means, dtype=np.float64),
                   np.asarray(covariances, dtype=np.float64), n_components=d.get("n_components"),
                   info=d.get("info"), scale=d.get("scale", 1.0))

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON, atomically."""
        from harness.safeio import atomic_path

        with atomic_path(path, suffix=".json") as tmp:
            tmp.write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> "GMMNoise":
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: GMM noise file not found")
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not a readable GMM noise JSON file ({e})") from None
        return cls.from_dict(d)

    def __repr__(self) -> str:
        return (f"GMMNoise(num_joints={self.num_joints}, n_components={self.n_components.tolist()}, "
                f"scale={self.scale:g})")


class KernelNoise:
    """DiffPose's per-frame kernel noise (``runners/diffpose_frame.py::train`` with
    ``common/generators.py::PoseGenerator_gmm``).

    Each time a sample is used, a kernel is drawn per joint with probability = its weight
    (:meth:`draw`, from the step's generator); its mu is the sample's 2D (the clean u, v of ``x_0`` and
    the guide 2D) and ``eps = randn * [sigma_u, sigma_v, 1, 1, 1]`` with its sigma (:meth:`sample`
    with ``sigma=``). Kernels are ``(B, J, K, 5)`` rows of ``PoseSet.meta["gmm_2d"]``
    (``[weight, mu_u, mu_v, sigma_u, sigma_v]``, mu normalised, sigma a std in normalised units).

    Without per-sample sigmas (the multi-hypothesis starts at evaluation) :meth:`sample` uses
    ``sigma_uv`` (J, 2): the training noise's RMS u, v std per joint over the training split,
    ``sqrt(mean_n sum_k w_k sigma_k^2)`` (:meth:`from_kernels`); default 1.
    """

    name = "kernels"
    needs_kernels = True

    def __init__(self, num_joints: int = 17, sigma_uv: np.ndarray | None = None):
        if int(num_joints) < 1:
            raise ConfigError(f"noise.num_joints: must be >= 1, got {num_joints}")
        self.num_joints = int(num_joints)
        sig = np.ones((self.num_joints, 2)) if sigma_uv is None else np.asarray(sigma_uv, dtype=np.float64)
        if sig.shape != (self.num_joints, 2) or not np.all(np.isfinite(sig)) or np.any(sig <= 0):
            raise DataError(f"kernel noise: sigma_uv must be ({self.num_joints}, 2) finite values > 0, "
                            f"got shape {sig.shape}")
        self.sigma_uv = sig
        self._cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @classmethod
    def from_kernels(cls, gmm_2d: np.ndarray, chunk: int = 65536) -> "KernelNoise":
        """The noise for a training split's kernels ``(N, J, K, 5)``: ``sigma_uv`` their RMS sigma."""
        g = np.asarray(gmm_2d)
        if g.ndim != 4 or g.shape[-1] != 5 or g.shape[0] == 0:
            raise DataError(f"kernel noise: expected (N >= 1, J, K, 5) kernels, got shape {g.shape}")
        acc = np.zeros((g.shape[1], 2))
        for s in range(0, g.shape[0], chunk):
            b = g[s:s + chunk].astype(np.float64)
            acc += np.einsum("njk,njkc->jc", b[..., 0], b[..., 3:5] ** 2)
        return cls(num_joints=g.shape[1], sigma_uv=np.sqrt(acc / g.shape[0]))

    def draw(self, kernels: torch.Tensor, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample and joint of ``kernels (B, J, K, 5)``, kernel k with probability ``w_k`` (one
        float64 uniform per (sample, joint) from ``generator``, inverse CDF; a weight-0 kernel is never
        drawn); returns its ``(mu (B, J, 2), sigma (B, J, 2))`` in ``kernels``' dtype."""
        if kernels.dim() != 4 or kernels.shape[-1] != 5 or kernels.shape[1] != self.num_joints:
            raise DataError(f"kernel noise: expected (B, {self.num_joints}, K, 5) kernels, got {tuple(kernels.shape)}")
        B, J, K, _ = kernels.shape
        w = kernels[..., 0].double()
        cdf = w.cumsum(-1)
        cdf = cdf / cdf[..., -1:]
        last = (K - 1) - (w.flip(-1) > 0).double().argmax(-1)           # last kernel with weight > 0
        cdf = torch.where(torch.arange(K, device=w.device) >= last.unsqueeze(-1), torch.ones_like(cdf), cdf)
        u = torch.rand((B, J), generator=generator, device=_draw_device(generator, kernels.device),
                       dtype=torch.float64).to(w.device)
        idx = (cdf <= u.unsqueeze(-1)).sum(-1)                           # (B, J)
        chosen = kernels.gather(2, idx[..., None, None].expand(B, J, 1, 5)).squeeze(2)
        return chosen[..., 1:3], chosen[..., 3:5]

    def sample(self, shape_or_n, generator: torch.Generator | None = None, device=None,
               dtype: torch.dtype = torch.float32, sigma: torch.Tensor | None = None) -> torch.Tensor:
        """``randn * [sigma_u, sigma_v, 1, 1, 1]`` per joint: ``sigma`` (..., J, 2) the drawn kernels'
        (:meth:`draw`), else :attr:`sigma_uv`."""
        shape = _resolve_shape(shape_or_n, self.num_joints)
        src = _draw_device(generator, device)
        z = torch.randn(shape, generator=generator, device=src, dtype=dtype)
        if sigma is None:
            key = (src, dtype)
            if key not in self._cache:
                self._cache[key] = torch.as_tensor(self.sigma_uv, dtype=dtype, device=src)
            sig = self._cache[key].expand(shape[:-1] + (2,))
        else:
            sig = sigma.to(device=src, dtype=dtype).expand(shape[:-1] + (2,))
        out = torch.cat([z[..., :2] * sig, z[..., 2:]], dim=-1)
        return out.to(_target_device(generator, device))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "num_joints": self.num_joints, "sigma_uv": self.sigma_uv.tolist(),
                "channels": list(CHANNELS)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "KernelNoise":
        return cls(num_joints=d.get("num_joints", 17), sigma_uv=d.get("sigma_uv"))

    def __repr__(self) -> str:
        return f"KernelNoise(num_joints={self.num_joints})"


NOISE_NAMES = tuple(NOISES)  # declared in harness/configs/variants.yaml


def build_noise(name: str, **kw):
    """``"gaussian"``: ``GaussianNoise(**kw)``. ``"gmm"``: one of ``residuals=`` (fit, with
    :meth:`GMMNoise.fit`'s keywords), ``state=`` (a :meth:`GMMNoise.to_dict`) or ``path=`` (a saved JSON).
    ``"kernels"``: ``kernels=`` (a training split's ``meta["gmm_2d"]``) or ``KernelNoise(**kw)``."""
    if name == "gaussian":
        try:
            return GaussianNoise(**kw)
        except TypeError as e:
            raise ConfigError(f"noise 'gaussian': bad options {sorted(kw)} ({e})") from None
    if name == "gmm":
        given = [k for k in ("residuals", "state", "path") if kw.get(k) is not None]
        if len(given) != 1:
            raise ConfigError("noise 'gmm': give exactly one of residuals= (to fit), state= or path=")
        if given[0] == "state":
            return GMMNoise.from_dict(kw["state"])
        if given[0] == "path":
            return GMMNoise.load(kw["path"])
        fit_kw = {k: v for k, v in kw.items() if k != "residuals"}
        try:
            return GMMNoise.fit(kw["residuals"], **fit_kw)
        except TypeError as e:
            raise ConfigError(f"noise 'gmm': bad options {sorted(fit_kw)} ({e})") from None
    if name == "kernels":
        if kw.get("kernels") is not None:
            return KernelNoise.from_kernels(kw["kernels"])
        try:
            return KernelNoise(**kw)
        except TypeError as e:
            raise ConfigError(f"noise 'kernels': bad options {sorted(kw)} ({e})") from None
    raise ConfigError(f"noise: unknown name '{name}' (valid: {', '.join(NOISE_NAMES)})")


def noise_from_dict(d: dict[str, Any], source: str | None = None):
    """Rebuild a noise model from its ``to_dict()``. A malformed state (not a dict, unknown name, values
    of the wrong type or shape, a covariance that is not positive definite) is one :class:`DataError`
    line, prefixed with ``source`` (e.g. ``"<run>/checkpoint.pt: noise entry"``) when given."""
    from harness.errors import HarnessError

    where = f"{source}: " if source else ""
    if not isinstance(d, dict):
        raise DataError(f"{where}noise state: expected a dict, got {type(d).__name__}")
    name = d.get("name")
    builders = {"gaussian": GaussianNoise, "gmm": GMMNoise, "kernels": KernelNoise}
    if not isinstance(name, str) or name not in builders:
        raise DataError(f"{where}noise state: unknown name {name!r} (valid: {', '.join(NOISE_NAMES)})")
    for key in ("num_joints", "scale"):
        v = d.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise DataError(f"{where}noise state: '{key}' must be a number, got {type(v).__name__}")
    try:
        return builders[name].from_dict(d)
    except HarnessError as e:
        raise DataError(f"{where}{e}") from None
    except (ValueError, TypeError, KeyError, OverflowError, np.linalg.LinAlgError) as e:
        raise DataError(f"{where}{name} noise state is malformed ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:120] if str(e) else ''})") from None


# --------------------------------------------------------------------------- the noise of a run
def build_noise_for(cfg, data: dict, lifter_preds: dict[str, np.ndarray], out: Path, progress=None):
    """The training-noise model of run ``cfg``; a GMM fit is cached beside the shared lifter
    (``<lifter folder>/gmm-k<K>-n<N>.json``, under its lock). ``progress``: the fit's "gmm" events
    (:meth:`GMMNoise.fit`)."""
    from harness.runs import lifter_dir

    J = data["train"].num_joints
    if cfg.noise == "gaussian":
        return GaussianNoise(num_joints=J)
    if cfg.noise == "kernels":
        kernels = data["train"].meta.get("gmm_2d")
        if kernels is None:
            raise DataError(f"noise 'kernels': the training split has no per-frame GMM 2D kernels (keypoints "
                            f"'{cfg.keypoints}'); use --keypoints <name>_gmm (a data_2d_h36m_<name>_gmm.npz file)")
        return KernelNoise.from_kernels(kernels)
    from harness.locks import folder_lock

    path = lifter_dir(cfg, out) / f"gmm-k{cfg.gmm_max_components}-n{cfg.gmm_max_samples}.json"
    with folder_lock(path.parent):
        gmm = GMMNoise.load(path) if path.exists() else _fit_gmm(cfg, data, lifter_preds, path, progress)
    gmm.scale = gmm_scale(cfg)
    return gmm


def gmm_scale(cfg) -> float:
    """``1 / sqrt(1 - abar_K)`` at the first inference timestep K (released: t = 6, about 30.4),
    so that training's ``x_K`` is the ground truth plus one fitted residual (see
    :class:`harness.noise.GMMNoise`); 1 with ``gmm_scale_to_start`` off (raw residuals)."""
    if not cfg.gmm_scale_to_start:
        return 1.0
    from harness.diffusion.scheduler import DDIMScheduler

    sched = DDIMScheduler(beta_start=cfg.beta_start, beta_end=cfg.beta_end, num_train_timesteps=cfg.num_timesteps)
    k = sched.timesteps(cfg.test_timesteps, cfg.test_num_diffusion_timesteps)[0]
    return 1.0 / math.sqrt(1.0 - sched.alpha_bar(k))


def _fit_gmm(cfg, data: dict, lifter_preds: dict[str, np.ndarray], path: Path, progress=None):
    train = data["train"]
    if "train" not in lifter_preds:
        raise DataError(f"{cfg.initial_3d}: the GMM noise fit needs initial 3D for every training frame")
    gt_2d = train.meta.get("pose_2d_gt")
    d2d = (train.pose_2d - gt_2d) if gt_2d is not None else np.zeros_like(train.pose_2d)
    d3d = lifter_preds["train"] - train.pose_3d
    residuals = np.concatenate([d2d, d3d], axis=-1)
    gmm = GMMNoise.fit(residuals, max_components=cfg.gmm_max_components, seed=cfg.seed,
                       max_samples=cfg.gmm_max_samples, progress=progress)
    gmm.save(path)
    return gmm
