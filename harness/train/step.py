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

A step is two halves: :meth:`DenoiserStep.draw` (the random inputs: flip mask, kernels, ``eps``, ``t``,
drawn from the run's generator on its device) and :meth:`DenoiserStep.update` (everything else, steps
1-6 given the draws: no random draw from a ``torch.Generator``, no ``.item()``, no Python branch on a
tensor's value). The eager step runs them one after the other; that is the very code it ran before
the split, so its numbers are unchanged. With ``cfg.compile`` (``default`` or ``graphs``) ``update``
is compiled whole (``torch.compile(fullgraph=True, dynamic=False)``: forward, backward, gradient
clipping, a foreach Adam whose state and learning rate live on the device, the EMA) by
:class:`CompiledUpdate`; ``graphs`` adds CUDA graphs (``mode="reduce-overhead"``). The draws stay
outside the graph, which is what makes them capture-safe: a ``torch.Generator`` cannot be captured
by ``torch.compile``, so its draws are made eagerly on the device (no host copy, no sync) into the
tensors the graph reads. Dropout inside the graph draws from the compiler's own RNG (inductor's
Philox, seeded from torch's default generator, which CUDA graph trees capture safely).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.optim.adam import adam

from harness.config import Config
from harness.device import COMPILE_MODES, autocast
from harness.errors import ConfigError, DataError
from harness.diffusion import DDIMScheduler, antithetic_timesteps, noise_prediction_loss
from harness.train.augment import Flip
from harness.train.ema import EMA


def make_optimizer(model: torch.nn.Module, lr: float, device: torch.device,
                   capturable: bool = False) -> torch.optim.Adam:
    """Adam; on CUDA the fused kernel (same update, ~10 fewer launches per parameter tensor).
    ``capturable``: the compiled step's Adam (foreach, state on the device; :class:`CompiledUpdate`
    runs its update, this object holds the state and the schedule's learning rate)."""
    if capturable:
        return torch.optim.Adam(model.parameters(), lr=lr, foreach=True, capturable=True)
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
    compiled: "CompiledUpdate | None" = None

    @classmethod
    def build(cls, cfg: Config, model: torch.nn.Module, noise_model, num_joints: int,
              device: torch.device, backend: str | None = None) -> "DenoiserStep":
        """The step of ``cfg``; with ``cfg.compile`` not ``off`` its :meth:`update` compiled
        (``backend``: torch.compile's, default inductor; the tests use ``aot_eager``)."""
        mode = getattr(cfg, "compile", "off")
        step = cls(cfg=cfg, model=model, opt=make_optimizer(model, cfg.lr, device, capturable=mode != "off"),
                   ema=EMA(model, cfg.ema_rate, warmup=cfg.ema_warmup),
                   diffusion=DDIMScheduler(beta_start=cfg.beta_start, beta_end=cfg.beta_end,
                                           num_train_timesteps=cfg.num_timesteps),
                   noise_model=noise_model, flip=Flip(num_joints, device=device), device=device)
        if mode != "off":
            step.compiled = CompiledUpdate(step, mode, backend)
        return step

    @property
    def static(self) -> bool:
        """Whether the step needs one batch shape (a compiled step): the loop then drops an epoch's
        last partial batch."""
        return self.compiled is not None

    def draw(self, x2d: torch.Tensor, gen: torch.Generator, kernels: torch.Tensor | None = None):
        """The step's random inputs, in the generator order of the module docstring: ``(x2d, m, eps, t)``
        with ``x2d`` the batch's 2D (the drawn kernels' mu with ``kernels``), ``m`` the flip mask
        (None without flip augmentation), ``eps`` the training noise (the flipped kernels' sigma as
        its u, v std), ``t`` the antithetic timesteps."""
        cfg, device = self.cfg, self.device
        b = x2d.shape[0]
        sigma, m = None, None
        if getattr(self.noise_model, "needs_kernels", False) and kernels is None:
            raise DataError("noise 'kernels': the training batch has no per-frame GMM 2D kernels; "
                            "use --keypoints <name>_gmm (a data_2d_h36m_<name>_gmm.npz file)")
        if cfg.flip_augment:                                                       # 1
            m = torch.rand(b, generator=gen, device=device) < 0.5
        if kernels is not None:
            x2d, sigma = self.noise_model.draw(kernels, generator=gen)
            if m is not None:  # a std: the joints swap, no sign
                sigma = torch.where(m.view(-1, 1, 1), sigma.index_select(-2, self.flip.perm), sigma)
        eps = (self.noise_model.sample(b, generator=gen, device=device) if sigma is None  # 3
               else self.noise_model.sample(b, generator=gen, device=device, sigma=sigma))
        t = antithetic_timesteps(b, cfg.num_timesteps, generator=gen, device=device)
        return x2d, m, eps, t

    def loss(self, x2d: torch.Tensor, y3d: torch.Tensor, m: torch.Tensor | None, eps: torch.Tensor,
             t: torch.Tensor) -> torch.Tensor:
        """Steps 1-5 given the draws: flip, ``x_0``, ``q_sample``, forward under the precision's autocast,
        loss (with its graph, for the backward); the eager :meth:`update` and the compiled one share it."""
        if m is not None:                                                          # 1
            x2d, y3d = self.flip.random(x2d, m), self.flip.random(y3d, m)
        x0 = torch.cat([x2d, y3d], dim=-1)                                        # 2
        x_t = self.diffusion.q_sample(x0, t, eps)                                 # 4
        with autocast(self.device, self.cfg.precision):
            eps_pred = self.model(x_t, t, x2d).float()
        return noise_prediction_loss(eps_pred, eps)                               # 5

    def update(self, x2d: torch.Tensor, y3d: torch.Tensor, m: torch.Tensor | None, eps: torch.Tensor,
               t: torch.Tensor) -> torch.Tensor:
        """Steps 1-6 given the draws (eager): :meth:`loss`, then backward, clip, Adam, EMA; returns the
        loss (detached)."""
        model = self.model
        loss = self.loss(x2d, y3d, m, eps, t)
        self.opt.zero_grad(set_to_none=True)                                      # 6
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.ema.update(model)
        return loss.detach()

    def __call__(self, x2d: torch.Tensor, y3d: torch.Tensor, gen: torch.Generator,
                 kernels: torch.Tensor | None = None) -> torch.Tensor:
        """Steps 1-6 on the batch ``x2d (B, J, 2)``, ``y3d (B, J, 3)`` (and its ``kernels (B, J, K, 5)``
        for the ``kernels`` noise); returns the loss (detached, on the device: no host sync)."""
        x2d, m, eps, t = self.draw(x2d, gen, kernels)
        if self.compiled is not None:
            return self.compiled(x2d, y3d, m, eps, t)
        return self.update(x2d, y3d, m, eps, t)


class CompiledUpdate:
    """:meth:`DenoiserStep.update` as one captured graph: ``torch.compile(fullgraph=True,
    dynamic=False)``, mode ``reduce-overhead`` (CUDA graphs) for ``graphs``.

    What differs from the eager update so that it can be captured (same math, float rounding aside):

    * gradients are reset by ``p.grad = None`` (``Optimizer.zero_grad`` and ``Optimizer.step`` are not
      traceable: dynamo breaks the graph around them on purpose);
    * Adam is ``torch.optim.adam.adam(foreach=True, capturable=True)`` on the optimizer's own state
      (step counts on the device) with the learning rate a 0-d device tensor, refreshed from the
      optimizer's ``param_groups`` (where the LR schedule writes it) only when it changed: the
      checkpoint and the schedule see an ordinary Adam;
    * the EMA decay (:meth:`EMA.decay`, a host-side count) is written into a 0-d device tensor
      before each call, and the EMA is one ``_foreach_lerp_`` with that tensor as its weight;
    * ``loss.backward()`` is traced (``torch._dynamo.config.trace_autograd_ops``), so the backward
      is in the same graph as the forward and the update.

    On the CPU the fused C++ kernels are loaded first, so the compiled graph keeps them (custom
    operators) where they apply.
    """

    def __init__(self, step: DenoiserStep, mode: str, backend: str | None = None):
        from harness.device import compile_fn

        if mode not in COMPILE_MODES[1:]:
            raise ConfigError(f"compile: must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
        self.step, self.mode = step, mode
        model, opt, device = step.model, step.opt, step.device
        if device.type == "cpu":
            from harness.models.fast import native

            native.lib()  # loaded before tracing: the graph keeps the custom operators
        self.params = [p for p in model.parameters()]
        group = opt.param_groups[0]
        for p in self.params:  # Adam's lazy state, made now (capturable: the step count on the device)
            st = opt.state[p]
            if not st:
                st["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        self._lr_host = float(group["lr"])
        self.lr = torch.tensor(self._lr_host, dtype=torch.float32, device=device)
        self.decay = torch.zeros((), dtype=torch.float32, device=device)
        named = {**dict(model.named_parameters()), **dict(model.named_buffers())}
        keys = [k for k in step.ema._floats if k in named]  # the state_dict's float entries
        self._ema_shadow, self._ema_src = [step.ema.shadow[k] for k in keys], [named[k] for k in keys]
        # State the graph updates in place, and its scalar inputs: fixed addresses, so that CUDA graph
        # trees replay on them instead of copying them in (and out) at every step.
        from torch._dynamo import mark_static_address

        for t in [*self._ema_shadow, self.lr, self.decay,
                  *(v for p in self.params for v in opt.state[p].values() if torch.is_tensor(v))]:
            mark_static_address(t)
        step.diffusion._table(device, torch.float32)  # made now: the graph reads it, never fills it
        self._fn = compile_fn(self._update, mode, backend)

    def _update(self, x2d, y3d, m, eps, t, lr, decay):
        s = self.step
        params = self.params
        loss = s.loss(x2d, y3d, m, eps, t)                                        # 1-5
        for p in params:                                                          # 6
            p.grad = None
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, s.cfg.grad_clip)
        with torch.no_grad():
            group = s.opt.param_groups[0]
            live = [p for p in params if p.grad is not None]
            state = [s.opt.state[p] for p in live]
            adam(live, [p.grad for p in live], [st["exp_avg"] for st in state], [st["exp_avg_sq"] for st in state],
                 [], [st["step"] for st in state], foreach=True, capturable=True, amsgrad=False,
                 beta1=group["betas"][0], beta2=group["betas"][1], lr=lr, weight_decay=group["weight_decay"],
                 eps=group["eps"], maximize=False)
            torch._foreach_lerp_(self._ema_shadow, [v.detach() for v in self._ema_src], 1.0 - decay)
        for p in params:  # no gradient outlives the graph (under CUDA graphs it would be overwritten memory)
            p.grad = None
        return loss.detach()

    def graph_breaks(self, x2d, y3d, m, eps, t) -> tuple[int, list[str]]:
        """:func:`harness.device.graph_breaks` of the update on these inputs (it runs one update)."""
        from harness.device import graph_breaks

        return graph_breaks(self._update, x2d, y3d, m, eps, t, self.lr, self.decay)

    def __call__(self, x2d, y3d, m, eps, t) -> torch.Tensor:
        from torch._dynamo import config as dynamo_config

        lr = float(self.step.opt.param_groups[0]["lr"])
        if lr != self._lr_host:  # the schedule moved it: one fill, no sync
            self.lr.fill_(lr)
            self._lr_host = lr
        self.decay.fill_(self.step.ema.decay())
        self.step.ema.num_updates += 1
        if self.mode == "graphs":
            torch.compiler.cudagraph_mark_step_begin()
        self.step.opt._opt_called = True  # what Optimizer.step's hook marks (the LR schedule checks it)
        with dynamo_config.patch(trace_autograd_ops=True):
            return self._fn(x2d, y3d, m, eps, t, self.lr, self.decay)


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
