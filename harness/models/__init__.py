"""Models: the GraFormer 2D -> 3D lifter and the diffusion denoiser variants.

Public API::

    build_lifter(hid_dim=96, num_layers=5, n_head=4, dropout=0.25, parents=H36M_PARENTS) -> GraFormer
    build_denoiser(variant, hid_dim=96, num_layers=5, n_head=4, dropout=0.25, parents=H36M_PARENTS) -> GCNDiff

``variant`` is one of :data:`VARIANTS` (``baseline``, ``cag``, ``cce``, ``full``); see
:mod:`harness.models.denoiser` for what each one is. Both are built on the graph of the skeleton
``parents`` (``parents[j]`` the parent of joint ``j``, -1 for the root; :mod:`harness.skeleton`):
by default the Human3.6M 17-joint one, or e.g. :data:`~harness.skeleton.SH16_PARENTS` for the
16-joint layout without Neck/Nose (the lifter and the baseline/cag then have 16 nodes, CCE 32).
Parameter counts at the defaults: lifter 654,344; baseline 1,025,674; cce 1,028,899; cag 1,865,396;
full 1,872,990 (16 joints: 654,179; 1,025,509; 1,028,239; 1,865,066; 1,871,602).

These are the readable models (plain torch, batch-major, one ``forward`` per block).
:mod:`harness.models.fast` has the same builders for the fast models that training uses: subclasses
with the same parameters and state_dict whose ``forward`` runs node-major with fused kernels.
This package does not import it.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from harness.errors import ConfigError
from harness.models.denoiser import GCNDiff
from harness.models.graph import cross_channel_adjacency, h36m_adjacency
from harness.models.lifter import GraFormer
from harness.skeleton import H36M_PARENTS
from harness.variants import VARIANTS as _REGISTRY

__all__ = ["VARIANTS", "GCNDiff", "GraFormer", "build_denoiser", "build_lifter", "count_parameters",
           "skeleton_parents"]

# The variant names and their switches are declared once, in harness/configs/variants.yaml.
VARIANTS: tuple[str, ...] = tuple(sorted(_REGISTRY))


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (all of them, trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def skeleton_parents(parents: Sequence[int] = H36M_PARENTS) -> tuple[int, ...]:
    """``parents`` as a tuple of ints, checked: one root (-1), every other entry a joint index."""
    out = tuple(int(p) for p in parents)
    n = len(out)
    if n < 2 or out.count(-1) != 1 or any(not -1 <= p < n or p == j for j, p in enumerate(out)):
        raise ValueError(f"parents {list(out)}: expected one root (-1) and a joint index for every other joint")
    return out


def build_lifter(hid_dim: int = 96, num_layers: int = 5, n_head: int = 4, dropout: float = 0.25,
                 parents: Sequence[int] = H36M_PARENTS) -> nn.Module:
    """GraFormer lifter on the skeleton graph of ``parents`` (J joints): ``(B, J, 2) -> (B, J, 3)``."""
    parents = skeleton_parents(parents)
    return GraFormer(h36m_adjacency(parents), **lifter_kwargs(hid_dim, num_layers, n_head, dropout, len(parents)))


def build_denoiser(variant: str, hid_dim: int = 96, num_layers: int = 5, n_head: int = 4,
                   dropout: float = 0.25, parents: Sequence[int] = H36M_PARENTS) -> nn.Module:
    """Denoiser ``variant`` on the skeleton graph of ``parents`` (J joints): ``forward(x (B,J,5), t (B,),
    pose_2d (B,J,2)) -> (B,J,5)``. Raises :class:`~harness.errors.ConfigError` for an unknown variant."""
    parents = skeleton_parents(parents)
    return GCNDiff(h36m_adjacency(parents), **denoiser_kwargs(variant, hid_dim, num_layers, n_head, dropout, parents))


def lifter_kwargs(hid_dim: int, num_layers: int, n_head: int, dropout: float, num_joints: int = 17) -> dict:
    """The keyword arguments (after ``adj``) :func:`build_lifter` passes to the model class."""
    return dict(hid_dim=hid_dim, num_layers=num_layers, n_head=n_head, dropout=dropout, num_joints=num_joints)


def denoiser_kwargs(variant: str, hid_dim: int, num_layers: int, n_head: int, dropout: float,
                    parents: Sequence[int] = H36M_PARENTS) -> dict:
    """The keyword arguments (after ``adj``) :func:`build_denoiser` passes to the model class (the
    cross-channel graph on ``2J`` nodes of skeleton ``parents`` with CCE); raises
    :class:`~harness.errors.ConfigError` for an unknown variant."""
    if not isinstance(variant, str) or variant not in _REGISTRY:
        raise ConfigError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    spec = _REGISTRY.get(variant)
    cce, cag = spec["cce"], spec["cag"]
    return dict(hid_dim=hid_dim, num_layers=num_layers, n_head=n_head, dropout=dropout, cce=cce, cag=cag,
                adj_cross=cross_channel_adjacency(skeleton_parents(parents)) if cce else None)
