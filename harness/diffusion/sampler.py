"""Inference: DDIM from ``x_K = [2D, lifter 3D]`` (no added noise, as released, or one of ``H`` noisy
hypotheses), averaged with the flipped pose's refinement (``test_flip``; DiffPose has none).

Root: ``root_mode`` (:func:`harness.skeleton.root_relative`). ``subtract`` is the true root-relative
pose; ``zero_root`` reproduces the released in-place ``x[:, :, :] -= x[:, :1, :]``, which only zeroes
the root (the other joints keep what the network output). The ``released`` and ``diffpose`` recipes use
it, because the numbers their code prints were computed that way.

Released recipe (jjkislele/monoMotionDiff ``runners/diffpose.py`` ``test``, DiffPose's likewise): the
timesteps are :meth:`DDIMScheduler.timesteps` of ``test_timesteps`` over ``test_num_diffusion_timesteps``
(t = 6 then 0 at the defaults), ``eta = 0``; the output's 3D channels, made root-relative.
"""

from __future__ import annotations

import math

import torch

from harness.config import Config
from harness.device import autocast
from harness.diffusion.scheduler import DDIMScheduler
from harness.skeleton import root_relative
from harness.train.augment import Flip


class Sampler:
    """DDIM inference from ``x_K = [2D, lifter 3D]`` with flip averaging."""

    def __init__(self, cfg: Config, model: torch.nn.Module, flip: Flip, device: torch.device):
        self.cfg, self.model, self.flip, self.device = cfg, model, flip, device
        self.sched = DDIMScheduler(beta_start=cfg.beta_start, beta_end=cfg.beta_end, num_train_timesteps=cfg.num_timesteps)
        self.seq = self.sched.timesteps(cfg.test_timesteps, cfg.test_num_diffusion_timesteps)

    def refine(self, pose_2d: torch.Tensor, pose_3d: torch.Tensor, start_noise: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        x_K = torch.cat([pose_2d, pose_3d], dim=-1)
        if start_noise is not None:
            a = self.sched.alpha_bar(self.seq[0])
            x_K = x_K + math.sqrt(1.0 - a) * start_noise
        fn = lambda x, t: self.model(x, t, pose_2d)  # noqa: E731
        with autocast(self.device, self.cfg.precision):
            out = self.sched.sample(fn, x_K, self.seq, eta=self.cfg.eta, generator=generator).float()
        return root_relative(out[..., 2:], self.cfg.root_mode)

    @torch.no_grad()
    def __call__(self, pose_2d: torch.Tensor, lifter_3d: torch.Tensor, start_noise=None, generator=None,
                 flip_noise=None) -> torch.Tensor:
        self.model.eval()
        y = self.refine(pose_2d, lifter_3d, start_noise, generator)
        if not self.cfg.test_flip:
            return y
        yf = self.refine(self.flip(pose_2d), self.flip(lifter_3d), flip_noise, generator)
        return 0.5 * (y + self.flip(yf))
