"""The fast path: the models of :mod:`harness.models` with node-major forwards and fused kernels.

Public API (the same builders as :mod:`harness.models`, for the models training uses)::

    build_lifter(hid_dim=96, num_layers=5, n_head=4, dropout=0.25, parents=H36M_PARENTS) -> FastGraFormer
    build_denoiser(variant, hid_dim=96, num_layers=5, n_head=4, dropout=0.25, parents=H36M_PARENTS) -> FastGCNDiff
    kernels_state() -> str      # "on", "off (why)" or "unavailable: why"

:class:`FastGraFormer` and :class:`FastGCNDiff` subclass the readable
:class:`~harness.models.GraFormer` and :class:`~harness.models.GCNDiff`: the constructor is the
readable one (so a seed gives the same weights and a state_dict loads into either), plus a few
non-persistent operator buffers; only ``forward`` differs. It computes the same function (float32
rounding aside; in training, dropout masks are drawn differently).

Layout: :mod:`.ops` (node-major building blocks, autograd Functions), :mod:`.native` (builds and
loads the C++ kernels of ``kernels.cpp``), :mod:`.graph`, :mod:`.lifter`, :mod:`.denoiser` (the
blocks as functions over the readable modules' parameters, and the two model classes).

Switches: ``HARNESS_NATIVE=0`` in the environment (the whole process), or ``ops.NATIVE``,
``ops.CHEB_EXPAND``, ``ops.NATIVE_ATTENTION`` (tests and A/B timing) turn the kernels off.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from harness.models import denoiser_kwargs, lifter_kwargs, skeleton_parents
from harness.models.fast import native, ops
from harness.models.fast.denoiser import FastGCNDiff
from harness.models.fast.lifter import FastGraFormer
from harness.models.fast.ops import tune_cpu_allocator
from harness.models.graph import h36m_adjacency
from harness.skeleton import H36M_PARENTS

__all__ = ["FastGCNDiff", "FastGraFormer", "build_denoiser", "build_lifter", "kernels_state", "native", "ops",
           "tune_cpu_allocator"]


def build_lifter(hid_dim: int = 96, num_layers: int = 5, n_head: int = 4, dropout: float = 0.25,
                 parents: Sequence[int] = H36M_PARENTS) -> nn.Module:
    """Fast :func:`harness.models.build_lifter`: ``(B, J, 2) -> (B, J, 3)`` on the graph of ``parents``."""
    parents = skeleton_parents(parents)
    return FastGraFormer(h36m_adjacency(parents), **lifter_kwargs(hid_dim, num_layers, n_head, dropout, len(parents)))


def build_denoiser(variant: str, hid_dim: int = 96, num_layers: int = 5, n_head: int = 4,
                   dropout: float = 0.25, parents: Sequence[int] = H36M_PARENTS) -> nn.Module:
    """Fast :func:`harness.models.build_denoiser` (same arguments, same errors)."""
    parents = skeleton_parents(parents)
    return FastGCNDiff(h36m_adjacency(parents),
                       **denoiser_kwargs(variant, hid_dim, num_layers, n_head, dropout, parents))


def kernels_state() -> str:
    """Whether the fused CPU kernels run: ``"on"``, ``"off (why)"`` (a switch turned them off) or
    ``"unavailable: why"`` (no compiler, failed build). Builds them if not tried yet."""
    if not ops.NATIVE:
        return "off (harness.models.fast.ops.NATIVE = False)"
    if native.available():
        return "on"
    why = native.error() or "unknown reason"
    return f"off ({why})" if native.disabled() else f"unavailable: {why}"
