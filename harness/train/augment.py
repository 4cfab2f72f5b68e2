"""Left/right flip: the training augmentation and the test-time flip of DiffPose and GraFormer."""

from __future__ import annotations

import torch

from harness.skeleton import H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT


class Flip:
    """Left/right mirroring on (B, J, C) tensors: negate x, swap left and right joints."""

    def __init__(self, num_joints: int, left=H36M_JOINTS_LEFT, right=H36M_JOINTS_RIGHT, device=None):
        perm = list(range(num_joints))
        for a, b in zip(left, right):
            perm[a], perm[b] = b, a
        self.perm = torch.tensor(perm, dtype=torch.long, device=device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = x.index_select(-2, self.perm)
        sign = torch.ones(x.shape[-1], dtype=x.dtype, device=x.device)
        sign[0] = -1
        return out * sign

    def random(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Flip the rows where ``mask`` (B,) is true."""
        return torch.where(mask.view(-1, *([1] * (x.dim() - 1))), self(x), x)
