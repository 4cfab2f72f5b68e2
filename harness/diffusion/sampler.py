"""Inference: DDIM from ``x_K = [2D, lifter 3D]`` (no added noise, as released, or one of ``H`` noisy
hypotheses), averaged with the flipped pose's refinement (``test_flip``; DiffPose has none).

Root: ``root_mode`` (:func:`harness.skeleton.root_relative`). ``subtract`` is the true root-relative
pose; ``zero_root`` reproduces the released in-place ``x[:, :, :] -= x[:, :1, :]``, which only zeroes
the root (the other joints keep what the network output). The ``released`` and ``diffpose`` recipes use
it, because the numbers their code prints were computed that way.

Released recipe (jjkislele/monoMotionDiff ``runners/diffpose.py`` ``test``, DiffPose's likewise): the
timesteps are :meth:`DDIMScheduler.timesteps` of ``test_timesteps`` over ``test_num_diffusion_timesteps``
(t = 6 then 0 at the defaults), ``eta = 0``; the output's 3D channels, made root-relative.

Compiled (``cfg.compile`` ``default`` or ``graphs``, eta = 0): one call (both refinements and the flip
average) is one graph, ``torch.compile(fullgraph=True, dynamic=False)`` (``graphs``: CUDA graphs).
Its DDIM coefficients are the eager loop's (the same float64 values cast to float32), made once as
device tensors; the timesteps are constants of the graph. One shape per graph: a batch smaller than
``eval_batch_size`` (an evaluation's last) is padded to it with copies of its last pose and the
padding's outputs dropped (poses are refined independently, so the others do not see it). With
eta > 0 (a draw from a ``torch.Generator`` at every step) it runs eagerly.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from harness.config import Config
from harness.device import autocast
from harness.diffusion.scheduler import DDIMScheduler
from harness.skeleton import root_relative
from harness.train.augment import Flip


class Sampler:
    """DDIM inference from ``x_K = [2D, lifter 3D]`` with flip averaging."""

    def __init__(self, cfg: Config, model: torch.nn.Module, flip: Flip, device: torch.device,
                 backend: str | None = None):
        self.cfg, self.model, self.flip, self.device = cfg, model, flip, device
        self.sched = DDIMScheduler(beta_start=cfg.beta_start, beta_end=cfg.beta_end, num_train_timesteps=cfg.num_timesteps)
        self.seq = self.sched.timesteps(cfg.test_timesteps, cfg.test_num_diffusion_timesteps)
        self._compiled = None
        if getattr(cfg, "compile", "off") != "off" and cfg.eta == 0:
            from harness.device import compile_fn

            if device.type == "cpu":
                from harness.models.fast import native

                native.lib()  # loaded before tracing: the graph keeps the custom operators
            pairs = self.sched.step_pairs(self.seq)
            coefs = np.array([[c["x0_from_xt"], c["x0_from_eps"], c["sqrt_alpha_bar_prev"], c["dir_coef"], c["sigma"]]
                              for c in (self.sched.ddim_coefficients(t, tn, cfg.eta) for t, tn in pairs)])
            self._coef = torch.from_numpy(coefs).to(device=device, dtype=torch.float32)   # (steps, 5), as sample()
            self._start = math.sqrt(1.0 - self.sched.alpha_bar(self.seq[0]))
            self._compiled = compile_fn(self._run, cfg.compile, backend)

    def _refine_static(self, pose_2d: torch.Tensor, pose_3d: torch.Tensor,
                       start_noise: torch.Tensor | None) -> torch.Tensor:
        """:meth:`refine` with eta = 0 and no host work: what the compiled graph runs."""
        x = torch.cat([pose_2d, pose_3d], dim=-1)
        if start_noise is not None:
            x = x + self._start * start_noise
        n = x.shape[0]
        with autocast(self.device, self.cfg.precision):
            for i, t in enumerate(self.seq):
                eps = self.model(x, torch.full((n,), int(t), dtype=torch.long, device=x.device), pose_2d)
                c = self._coef[i]
                x = DDIMScheduler._apply_step(x, eps, c[0], c[1], c[2], c[3], c[4], None)
            out = x.float()
        return root_relative(out[..., 2:], self.cfg.root_mode)

    def _run(self, pose_2d, lifter_3d, start_noise=None, flip_noise=None):
        y = self._refine_static(pose_2d, lifter_3d, start_noise)
        if not self.cfg.test_flip:
            return y
        yf = self._refine_static(self.flip(pose_2d), self.flip(lifter_3d), flip_noise)
        return 0.5 * (y + self.flip(yf))

    def graph_breaks(self, pose_2d, lifter_3d) -> tuple[int, list[str]]:
        """:func:`harness.device.graph_breaks` of one sampler call on these inputs."""
        from harness.device import graph_breaks

        self.model.eval()
        with torch.no_grad():
            return graph_breaks(self._run, pose_2d, lifter_3d)

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def _call_compiled(self, pose_2d, lifter_3d, start_noise, flip_noise) -> torch.Tensor:
        n, full = pose_2d.shape[0], self.cfg.eval_batch_size
        pad = full - n if n < full else 0

        def fill(x):
            return x if x is None or not pad else torch.cat([x, x[-1:].expand(pad, *x.shape[1:])], 0)

        if self.cfg.compile == "graphs":
            torch.compiler.cudagraph_mark_step_begin()
        out = self._compiled(fill(pose_2d), fill(lifter_3d), fill(start_noise), fill(flip_noise))
        return out[:n].clone() if pad or self.cfg.compile == "graphs" else out

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
        if self._compiled is not None:
            return self._call_compiled(pose_2d, lifter_3d, start_noise, flip_noise)
        y = self.refine(pose_2d, lifter_3d, start_noise, generator)
        if not self.cfg.test_flip:
            return y
        yf = self.refine(self.flip(pose_2d), self.flip(lifter_3d), flip_noise, generator)
        return 0.5 * (y + self.flip(yf))
