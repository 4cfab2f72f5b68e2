"""Gaussian diffusion on the 5-channel pose ``[u, v, x, y, z]``: DDPM forward process, DDIM sampling.

Notation follows the papers (as diffusers' ``DDIMScheduler`` does):

- DDPM, Ho et al. 2020: ``beta_t`` the noise schedule, ``alpha_t = 1 - beta_t``,
  ``alpha_bar_t = prod_{s <= t} alpha_s`` (the paper's ``\\bar\\alpha_t``).
  Eq. 4: ``q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)``, sampled as
  ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``.
- DDIM, Song et al. 2021 (arXiv 2010.02502), whose ``alpha_t`` is DDPM's ``alpha_bar_t``. Eq. 12::

      x_prev = sqrt(alpha_bar_prev) * x0_pred                          # "predicted x_0"
             + sqrt(1 - alpha_bar_prev - sigma_t**2) * eps_theta(x_t)    # "direction pointing to x_t"
             + sigma_t * z                                               # random noise, z ~ N(0, I)
      x0_pred = (x_t - sqrt(1 - alpha_bar_t) * eps_theta(x_t)) / sqrt(alpha_bar_t)

  Eq. 16: ``sigma_t(eta) = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)``.

Timesteps are 0-based, ``t = 0 .. T-1`` (T = 51 in DiffPose). The step after the last one is ``t = -1``
with ``alpha_bar_{-1} = 1`` (diffusers' ``set_alpha_to_one=True``; DiffPose's ``compute_alpha``
prepends ``beta = 0`` and indexes ``t + 1``), so the final DDIM step returns ``x0_pred`` itself.

What the released DiffPose code does (github GONGJIA0208/Diffpose, commit 11813f1):

- ``common/utils_diff.py::get_beta_schedule('linear')``: ``np.linspace(beta_start, beta_end, T, float64)``;
  configs ``human36m_diffpose_uvxyz_{gt,cpn}.yml``: ``beta_start 1e-4, beta_end 1e-3, T = 51``.
- ``runners/diffpose_frame.py::test_hyber``, ``skip_type == "uniform"``:
  ``skip = test_num_diffusion_timesteps // test_timesteps; seq = range(0, test_num_diffusion_timesteps, skip)``.
  ``test_timesteps = 2`` in both configs; ``test_num_diffusion_timesteps`` is 12 in the GT config
  (``seq = [0, 6]``) and 24 in the CPN config (``seq = [0, 12]``); the cross-channel paper's release
  (jjkislele/monoMotionDiff ``cfgs/cfg_{gt,cpn}.yml``) uses 12 for both.
  ``common/utils_diff.py::generalized_steps`` pairs ``reversed(seq)`` with ``reversed([-1] + seq[:-1])``,
  i.e. runs ``6 -> 0 -> -1``. This module takes the sequence in that run order (``[6, 0]``).
- The reverse process starts from the un-noised ``x_K = [u, v, lifter xyz]``: the line adding noise
  before ``generalized_steps`` is commented out in ``test_hyber``.
- Training: antithetic ``t`` (see :func:`antithetic_timesteps`) and the loss
  ``(e - output).square().sum(dim=(1, 2)).mean(dim=0)`` (see :func:`noise_prediction_loss`).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from harness.errors import ConfigError

__all__ = [
    "linear_betas",
    "alphas_cumprod",
    "uniform_timesteps",
    "quad_timesteps",
    "DDIMScheduler",
    "antithetic_timesteps",
    "noise_prediction_loss",
]

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --- schedules (float64, numpy) -------------------------------------------------------------------

def linear_betas(beta_start: float = 1e-4, beta_end: float = 1e-3, num_timesteps: int = 51) -> np.ndarray:
    """DiffPose's 'linear' schedule: ``np.linspace(beta_start, beta_end, num_timesteps)`` in float64."""
    if int(num_timesteps) < 1:
        raise ConfigError(f"diffusion.num_diffusion_timesteps: must be >= 1, got {num_timesteps}")
    if not (0.0 < beta_start < 1.0 and 0.0 < beta_end < 1.0):
        raise ConfigError(f"diffusion.beta_start/beta_end: must lie in (0, 1), got {beta_start}, {beta_end}")
    return np.linspace(beta_start, beta_end, int(num_timesteps), dtype=np.float64)


def alphas_cumprod(betas: np.ndarray) -> np.ndarray:
    """``alpha_bar_t = prod_{s=0}^{t} (1 - beta_s)`` (DDPM notation), float64."""
    return np.cumprod(1.0 - np.asarray(betas, dtype=np.float64))


def uniform_timesteps(num_steps: int = 2, num_diffusion_timesteps: int = 12) -> list[int]:
    """DiffPose's uniform sub-sequence, in run order (descending).

    DiffPose: ``skip = num_diffusion_timesteps // num_steps; seq = range(0, num_diffusion_timesteps, skip)``
    run reversed. ``(2, 12)`` gives ``[6, 0]``; ``(2, 24)`` gives ``[12, 0]``. Note ``range`` can yield
    more than ``num_steps`` entries when ``num_steps`` does not divide ``num_diffusion_timesteps``
    (``(5, 12)``: skip 2, six steps); that is kept, as released.
    """
    num_steps, total = int(num_steps), int(num_diffusion_timesteps)
    if num_steps < 1:
        raise ConfigError(f"testing.test_timesteps: must be >= 1, got {num_steps}")
    if total < num_steps:
        raise ConfigError(
            f"testing.test_num_diffusion_timesteps: must be >= test_timesteps ({num_steps}), got {total}")
    skip = total // num_steps
    return list(range(0, total, skip))[::-1]


def quad_timesteps(num_steps: int = 2, num_diffusion_timesteps: int = 12) -> list[int]:
    """DiffPose's ``skip_type == "quad"``, in run order:
    ``[int(s) for s in np.linspace(0, sqrt(0.8 * total), num_steps) ** 2]`` reversed (may repeat 0)."""
    num_steps, total = int(num_steps), int(num_diffusion_timesteps)
    if num_steps < 1:
        raise ConfigError(f"testing.test_timesteps: must be >= 1, got {num_steps}")
    seq = np.linspace(0, np.sqrt(total * 0.8), num_steps) ** 2
    return [int(s) for s in seq][::-1]


# --- scheduler --------------------------------------------------------------------------------------

class DDIMScheduler:
    """DDPM forward process and DDIM reverse steps with DiffPose's conventions.

    All coefficients are computed in float64 (numpy) and cast to the working dtype once per
    (device, dtype); the sampling loop then runs without host round-trips.
    """

    def __init__(self, betas: np.ndarray | None = None, *, beta_start: float = 1e-4,
                 beta_end: float = 1e-3, num_train_timesteps: int = 51):
        if betas is None:
            betas = linear_betas(beta_start, beta_end, num_train_timesteps)
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size < 1 or not np.all((betas > 0) & (betas < 1)):
            raise ConfigError("diffusion betas: must be a non-empty 1-D array with values in (0, 1)")
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(self.alphas)
        self.num_train_timesteps = int(betas.size)
        # alpha_bar with t = -1 prepended as 1 (index t + 1), like DiffPose's compute_alpha.
        self._abar_ext = np.concatenate([[1.0], self.alphas_cumprod])
        self._tables: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    # -- helpers ---------------------------------------------------------------------------------
    def alpha_bar(self, t: int) -> float:
        """``alpha_bar_t`` in float64; ``t = -1`` gives 1."""
        self._check_t(t, allow_minus_one=True)
        return float(self._abar_ext[t + 1])

    def _check_t(self, t: int, *, allow_minus_one: bool = False) -> None:
        lo = -1 if allow_minus_one else 0
        if not (lo <= int(t) < self.num_train_timesteps):
            raise ConfigError(
                f"diffusion timestep {t}: must lie in [{lo}, {self.num_train_timesteps - 1}] "
                f"(num_diffusion_timesteps = {self.num_train_timesteps})")

    def _table(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t))`` for t = 0..T-1 on ``device``, cached."""
        key = (torch.device(device), dtype)
        if key not in self._tables:
            a = self.alphas_cumprod
            self._tables[key] = (torch.from_numpy(np.sqrt(a)).to(device=device, dtype=dtype),
                                 torch.from_numpy(np.sqrt(1.0 - a)).to(device=device, dtype=dtype))
        return self._tables[key]

    def timesteps(self, num_steps: int = 2, num_diffusion_timesteps: int = 12,
                  skip_type: str = "uniform") -> list[int]:
        """The sub-sequence DiffPose's ``test_hyber`` runs, in run order (``[6, 0]`` by default)."""
        if skip_type == "uniform":
            seq = uniform_timesteps(num_steps, num_diffusion_timesteps)
        elif skip_type == "quad":
            seq = quad_timesteps(num_steps, num_diffusion_timesteps)
        else:
            raise ConfigError(f"testing.skip_type: unknown '{skip_type}' (valid: uniform, quad)")
        for t in seq:
            self._check_t(t)
        return seq

    @staticmethod
    def step_pairs(seq: Sequence[int]) -> list[tuple[int, int]]:
        """``(t, t_next)`` for each step of ``seq`` (run order); the last step goes to ``-1``.

        Same pairs as DiffPose's ``zip(reversed(seq), reversed([-1] + seq[:-1]))`` for its ascending seq.
        """
        seq = [int(t) for t in seq]
        return list(zip(seq, seq[1:] + [-1]))

    def ddim_coefficients(self, t: int, t_next: int, eta: float = 0.0) -> dict[str, float]:
        """Float64 coefficients of one DDIM step ``t -> t_next`` (Eq. 12 and 16)."""
        self._check_t(t)
        self._check_t(t_next, allow_minus_one=True)
        a_t, a_prev = self._abar_ext[t + 1], self._abar_ext[t_next + 1]
        # Eq. 16; zero when t_next = -1 (alpha_bar_prev = 1) or t_next = t.
        var = (1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev)
        sigma = float(eta) * math.sqrt(max(var, 0.0))
        return {
            "x0_from_xt": 1.0 / math.sqrt(a_t),                       # x0_pred = c1 * x_t - c2 * eps
            "x0_from_eps": math.sqrt(1.0 - a_t) / math.sqrt(a_t),
            "sqrt_alpha_bar_prev": math.sqrt(a_prev),
            "dir_coef": math.sqrt(max(1.0 - a_prev - sigma * sigma, 0.0)),
            "sigma": sigma,
        }

    # -- forward process -------------------------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor) -> torch.Tensor:
        """DDPM Eq. 4: ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise``.

        ``t``: an int or a LongTensor of shape (N,) (one timestep per sample, batch dim first).
        ``noise`` is used as given (DiffPose scales its unit normal per channel before this).
        """
        sqrt_a, sqrt_1ma = self._table(x0.device, x0.dtype)
        if not torch.is_tensor(t):
            self._check_t(int(t))
            t = torch.full((x0.shape[0],), int(t), dtype=torch.long, device=x0.device)
        t = t.to(device=x0.device, dtype=torch.long)
        shape = (-1,) + (1,) * (x0.dim() - 1)
        return sqrt_a[t].view(shape) * x0 + sqrt_1ma[t].view(shape) * noise

    # -- reverse process -------------------------------------------------------------------------
    def pred_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        """DDIM Eq. 12, "predicted x_0": ``(x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)``."""
        c = self.ddim_coefficients(t, -1)
        return c["x0_from_xt"] * x_t - c["x0_from_eps"] * eps

    def ddim_step(self, x_t: torch.Tensor, eps: torch.Tensor, t: int, t_next: int, eta: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """One DDIM step ``x_t -> x_{t_next}`` given the predicted noise ``eps`` (Eq. 12)."""
        c = self.ddim_coefficients(int(t), int(t_next), eta)
        noise = None
        if eta > 0:
            noise = _randn_like(x_t, generator)
        return self._apply_step(x_t, eps, c["x0_from_xt"], c["x0_from_eps"], c["sqrt_alpha_bar_prev"],
                                c["dir_coef"], c["sigma"], noise)

    @staticmethod
    def _apply_step(x_t, eps, x0_from_xt, x0_from_eps, sqrt_a_prev, dir_coef, sigma, noise):
        # 1. predicted x_0 (Eq. 12, first term's bracket)
        x0 = x0_from_xt * x_t - x0_from_eps * eps
        # 2. direction pointing to x_t (Eq. 12, second term)
        direction = dir_coef * eps
        # 3. x_{t_next} without random noise
        x_next = sqrt_a_prev * x0 + direction
        # 4. random noise sigma_t z (Eq. 12, third term; sigma_t from Eq. 16)
        if noise is not None:
            x_next = x_next + sigma * noise
        return x_next

    def sample(self, model_fn: ModelFn, x_K: torch.Tensor, seq: Sequence[int], eta: float = 0.0,
               generator: torch.Generator | None = None, return_x0: bool = False):
        """Run DDIM over ``seq`` (run order, e.g. ``[6, 0]``) from ``x_K``; returns the final ``x``.

        ``model_fn(x, t)`` returns the predicted noise, ``t`` a LongTensor (N,) on ``x``'s device
        (cast it inside the model if it wants floats, as DiffPose's ``t.float()``). No ``.item()``,
        numpy or host copies inside the loop: coefficients and timestep tensors are made before it.
        With ``eta > 0`` one normal draw is made at every step (also the last, where sigma = 0), as
        DiffPose's ``torch.randn_like`` does. ``return_x0`` also returns the list of ``x0`` predictions.
        """
        pairs = self.step_pairs(seq)
        if not pairs:
            raise ConfigError("diffusion sampling: empty timestep sequence")
        device, dtype, n = x_K.device, x_K.dtype, x_K.shape[0]
        coefs = np.array([[c["x0_from_xt"], c["x0_from_eps"], c["sqrt_alpha_bar_prev"], c["dir_coef"], c["sigma"]]
                          for c in (self.ddim_coefficients(t, tn, eta) for t, tn in pairs)], dtype=np.float64)
        # (steps, 5) coefficients and (steps, N) timesteps on the device: host->device copies happen here only.
        coef_t = torch.from_numpy(coefs).to(device=device, dtype=dtype)
        t_all = torch.tensor([t for t, _ in pairs], dtype=torch.long, device=device).view(-1, 1).expand(-1, n).contiguous()
        x = x_K
        x0_preds = []
        with torch.no_grad():
            for i in range(len(pairs)):
                t_vec = t_all[i]
                eps = model_fn(x, t_vec)
                c = coef_t[i]
                noise = _randn_like(x, generator) if eta > 0 else None
                if return_x0:
                    x0_preds.append(c[0] * x - c[1] * eps)
                x = self._apply_step(x, eps, c[0], c[1], c[2], c[3], c[4], noise)
        return (x, x0_preds) if return_x0 else x


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.randn_like(x)
    if generator.device.type != x.device.type:  # e.g. a CPU generator for CUDA tensors
        return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


# --- training helpers -------------------------------------------------------------------------------

def antithetic_timesteps(batch: int, T: int, generator: torch.Generator | None = None,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """DiffPose's antithetic timestep draw (``runners/diffpose_frame.py::train``)::

        t = torch.randint(low=0, high=T, size=(n // 2 + 1,))
        t = torch.cat([t, T - t - 1], dim=0)[:n]

    so ``t[i] + t[i + n // 2 + 1] == T - 1``. Drawn on the generator's device, returned on ``device``.
    """
    n, T = int(batch), int(T)
    if n < 1 or T < 1:
        raise ConfigError(f"antithetic_timesteps: batch and T must be >= 1, got {n}, {T}")
    draw_device = generator.device if generator is not None else (device or "cpu")
    t = torch.randint(0, T, (n // 2 + 1,), generator=generator, device=draw_device)
    t = torch.cat([t, T - t - 1], dim=0)[:n]
    return t.to(device) if device is not None else t


def noise_prediction_loss(eps_pred: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Squared error summed over every non-batch dim (joints, channels), mean over the batch.

    DiffPose: ``(e - output_noise).square().sum(dim=(1, 2)).mean(dim=0)`` on (N, 17, 5).
    """
    if eps_pred.shape != eps.shape:
        raise ValueError(f"noise_prediction_loss: shapes differ, {tuple(eps_pred.shape)} vs {tuple(eps.shape)}")
    dims = tuple(range(1, eps.dim()))
    sq = (eps - eps_pred).square()
    return (sq.sum(dim=dims) if dims else sq).mean(dim=0)
