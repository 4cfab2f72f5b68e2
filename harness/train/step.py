"""One optimiser step of each stage: the code the training loops run and ``harness bench`` times.

Denoiser (DiffPose's ``train`` loop, ``runners/diffpose.py``; the cross-channel code's is the same):

1. flip augmentation: mirror a random half of the batch (``flip_augment``); with DiffPose's kernel
   noise (``kernels``: the batch's per-frame 2D kernels given) a kernel is drawn per sample and joint
   (between the flip mask and the flip): its mu replaces the 2D, its sigma is the u, v noise std
   (mirrored with the pose);
2. ``x_0 = [u, v, x, y, z]`` per joint, the clean 2D beside the ground-truth 3D;
3. draw the training noise ``eps`` from the noise model and antithetic timesteps ``t``;
4. ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` (:meth:`DDIMScheduler.q_sample`, eq. 4 of DDPM);
5. ``loss = || eps - eps_theta(x_t, t, 2D) ||^2`` summed over joints and channels, mean over the batch;
6. Adam step after clipping the gradient norm to ``grad_clip``; then the EMA update.

Lifter (GraFormer): flip augmentation, MPJPE loss in metres, Adam step.

Every random draw comes from the generator passed in, in this order, so a resumed run draws
exactly what an uninterrupted one does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.config import Config
from harness.device import autocast
from harness.errors import DataError
from harness.diffusion import DDIMScheduler, antithetic_timesteps, noise_prediction_loss
from harness.train.augment import Flip
from harness.train.ema import EMA


def make_optimizer(model: torch.nn.Module, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam; on CUDA the fused kernel (same update, ~10 fewer launches per parameter tensor)."""
    return torch.optim.Adam(model.parameters(), lr=lr, fused=True if device.type == "cuda" else None)


@dataclass
class DenoiserStep:
    """What one denoiser step needs besides the batch and the generator."""

    cfg: Config
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    ema: EMA
    diffusion: DDIMScheduler
    noise_model: object  # harness.noise.GaussianNoise | GMMNoise: .sample(n, generator=, device=)
    flip: Flip
    device: torch.device

    @classmethod
    def build(cls, cfg: Config, model: torch.nn.Module, noise_model, num_joints: int,
              device: torch.device) -> "DenoiserStep":
        return cls(cfg=cfg, model=model, opt=make_optimizer(model, cfg.lr, device),
                   ema=EMA(model, cfg.ema_rate, warmup=cfg.ema_warmup),
                   diffusion=DDIMScheduler(beta_start=cfg.beta_start, beta_end=cfg.beta_end,
                                           num_train_timesteps=cfg.num_timesteps),
                   noise_model=noise_model, flip=Flip(num_joints, device=device), device=device)

    def __call__(self, x2d: torch.Tensor, y3d: torch.Tensor, gen: torch.Generator,
                 kernels: torch.Tensor | None = None) -> torch.Tensor:
        """Steps 1-6 on the batch ``x2d (B, J, 2)``, ``y3d (B, J, 3)`` (and its ``kernels (B, J, K, 5)``
        for the ``kernels`` noise); returns the loss (detached)."""
        cfg, device, model = self.cfg, self.device, self.model
        b = x2d.shape[0]
        sigma = None
        if getattr(self.noise_model, "needs_kernels", False) and kernels is None:
            raise DataError("noise 'kernels': the training batch has no per-frame GMM 2D kernels; "
                            "use --keypoints <name>_gmm (a data_2d_h36m_<name>_gmm.npz file)")
        if cfg.flip_augment:                                                       # 1
            m = torch.rand(b, generator=gen, device=device) < 0.5
        if kernels is not None:
            x2d, sigma = self.noise_model.draw(kernels, generator=gen)
        if cfg.flip_augment:
            x2d, y3d = self.flip.random(x2d, m), self.flip.random(y3d, m)
            if sigma is not None:  # a std: the joints swap, no sign
                sigma = torch.where(m.view(-1, 1, 1), sigma.index_select(-2, self.flip.perm), sigma)
        x0 = torch.cat([x2d, y3d], dim=-1)                                        # 2
        eps = (self.noise_model.sample(b, generator=gen, device=device) if sigma is None  # 3
               else self.noise_model.sample(b, generator=gen, device=device, sigma=sigma))
        t = antithetic_timesteps(b, cfg.num_timesteps, generator=gen, device=device)
        x_t = self.diffusion.q_sample(x0, t, eps)                                 # 4
        with autocast(device, cfg.precision):
            eps_pred = model(x_t, t, x2d).float()
        loss = noise_prediction_loss(eps_pred, eps)                               # 5
        self.opt.zero_grad(set_to_none=True)                                      # 6
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        self.opt.step()
        self.ema.update(model)
        return loss.detach()


def lifter_step(cfg: Config, model: torch.nn.Module, opt: torch.optim.Optimizer, flip: Flip, x: torch.Tensor,
                y: torch.Tensor, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """One lifter step on ``x (B, J, 2)`` -> ``y (B, J, 3)``: flip augmentation, MPJPE (metres), Adam."""
    if cfg.flip_augment:
        m = torch.rand(x.shape[0], generator=gen, device=device) < 0.5
        x, y = flip.random(x, m), flip.random(y, m)
    with autocast(device, cfg.precision):
        pred = model(x).float()
    loss = torch.linalg.vector_norm(pred - y, dim=-1).mean()  # MPJPE, metres
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()
