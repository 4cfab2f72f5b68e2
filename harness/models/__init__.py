"""Models: the GraFormer 2D -> 3D lifter and the diffusion denoiser variants.

Public API::

    build_lifter(hid_dim=96, num_layers=5, n_head=4, dropout=0.25) -> GraFormer
    build_denoiser(variant, hid_dim=96, num_layers=5, n_head=4, dropout=0.25) -> GCNDiff

``variant`` is one of :data:`VARIANTS` (``baseline``, ``cag``, ``cce``, ``full``); see
:mod:`harness.models.denoiser` for what each one is. Both are built on the Human3.6M 17-joint
skeleton of :mod:`harness.skeleton`. Parameter counts at the defaults: lifter 654,344; baseline
1,025,674; cce 1,028,899; cag 1,865,396; full 1,872,990.

These are the readable models (plain torch, batch-major, one ``forward`` per block).
:mod:`harness.models.fast` has the same builders for the fast models that training uses: subclasses
with the same parameters and state_dict whose ``forward`` runs node-major with fused kernels.
This package does not import it.
"""

from __future__ import annotations

from torch import nn

from harness.errors import ConfigError
from harness.models.denoiser import GCNDiff
from harness.models.graph import cross_channel_adjacency, h36m_adjacency
from harness.models.lifter import GraFormer
from harness.variants import VARIANTS as _REGISTRY

__all__ = ["VARIANTS", "GCNDiff", "GraFormer", "build_denoiser", "build_lifter", "count_parameters"]

# The variant names and their switches are declared once, in harness/configs/variants.yaml.
VARIANTS: tuple[str, ...] = tuple(sorted(_REGISTRY))


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (all of them, trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def build_lifter(hid_dim: int = 96, num_layers: int = 5, n_head: int = 4, dropout: float = 0.25) -> nn.Module:
    """GraFormer lifter on the H36M 17-joint graph: ``(B, 17, 2) -> (B, 17, 3)``."""
    return GraFormer(h36m_adjacency(), **lifter_kwargs(hid_dim, num_layers, n_head, dropout))


def build_denoiser(variant: str, hid_dim: int = 96, num_layers: int = 5, n_head: int = 4,
                   dropout: float = 0.25) -> nn.Module:
    """Denoiser ``variant`` on the H36M graph: ``forward(x (B,17,5), t (B,), pose_2d (B,17,2))
    -> (B,17,5)``. Raises :class:`~harness.errors.ConfigError` for an unknown variant."""
    return GCNDiff(h36m_adjacency(), **denoiser_kwargs(variant, hid_dim, num_layers, n_head, dropout))


def lifter_kwargs(hid_dim: int, num_layers: int, n_head: int, dropout: float) -> dict:
    """The keyword arguments (after ``adj``) :func:`build_lifter` passes to the model class."""
    return dict(hid_dim=hid_dim, num_layers=num_layers, n_head=n_head, dropout=dropout, num_joints=17)


def denoiser_kwargs(variant: str, hid_dim: int, num_layers: int, n_head: int, dropout: float) -> dict:
    """The keyword arguments (after ``adj``) :func:`build_denoiser` passes to the model class;
    raises :class:`~harness.errors.ConfigError` for an unknown variant."""
    if not isinstance(variant, str) or variant not in _REGISTRY:
        raise ConfigError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    spec = _REGISTRY.get(variant)
    cce, cag = spec["cce"], spec["cag"]
    return dict(hid_dim=hid_dim, num_layers=num_layers, n_head=n_head, dropout=dropout, cce=cce, cag=cag,
                adj_cross=cross_channel_adjacency() if cce else None)
