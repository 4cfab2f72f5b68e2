"""Exponential moving average of the weights (DiffPose's EMAHelper, with diffusers' warm-up)."""

from __future__ import annotations

import torch


class EMA:
    """Exponential moving average of a model's float parameters (DiffPose's EMAHelper, rate 0.999).

    With ``warmup`` the decay of the update that follows ``n`` earlier ones is
    ``min(rate, (1 + n) / (10 + n))``, as diffusers' ``EMAModel.get_decay`` does: without it a short
    run's average is mostly the random initial weights (0.999 ** 300 = 0.74 after 300 steps). The
    decay reaches 0.999 at n = 8,990, so the released schedule (about 1,430 updates an epoch on
    H36M) is unchanged after its seventh epoch. ``warmup=False`` is DiffPose's constant decay.
    """

    def __init__(self, model: torch.nn.Module, rate: float, warmup: bool = True):
        self.rate, self.warmup = rate, warmup
        self.num_updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._floats = [k for k, v in self.shadow.items() if v.dtype.is_floating_point]

    def decay(self) -> float:
        """The decay the next update uses."""
        n = self.num_updates
        return min(self.rate, (1.0 + n) / (10.0 + n)) if self.warmup else self.rate

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """``shadow = d * shadow + (1 - d) * weights``: one ``_foreach_lerp_`` over the float
        entries (a handful of kernels instead of one per tensor: on a GPU, ~250 launches a step)."""
        d = self.decay()
        self.num_updates += 1
        sd = model.state_dict()
        if self._floats:
            torch._foreach_lerp_([self.shadow[k] for k in self._floats], [sd[k] for k in self._floats], 1.0 - d)
        for k, v in sd.items():
            if not v.dtype.is_floating_point:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, sd: dict[str, torch.Tensor], num_updates: int = 0) -> None:
        for k, v in sd.items():
            self.shadow[k].copy_(v)
        self.num_updates = int(num_updates)
