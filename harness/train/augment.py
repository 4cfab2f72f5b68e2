"""Left/right flip: the training augmentation and the test-time flip of DiffPose and GraFormer."""

from __future__ import annotations

import torch

from harness.skeleton import h36m_layout


class Flip:
    """Left/right mirroring on (B, J, C) tensors: negate x, swap left and right joints.

    ``left``/``right`` default to the sides of the H36M-order layout with ``num_joints`` joints
    (:func:`harness.skeleton.h36m_layout`: 17, or 16 without Neck/Nose)."""

    def __init__(self, num_joints: int, left=None, right=None, device=None):
        if left is None or right is None:
            _, dl, dr = h36m_layout(num_joints)
            left, right = (dl if left is None else left), (dr if right is None else right)
        if len(left) != len(right) or not all(0 <= j < num_joints for j in (*left, *right)):
            raise ValueError(f"flip sides {list(left)} / {list(right)} do not fit {num_joints} joints")
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
