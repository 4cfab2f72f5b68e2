"""Node-major graph operators and the Chebyshev layers of :mod:`harness.models.graph`, fast.

Functions over the readable modules' parameters (``cheb_conv_nm(conv, x, g)`` computes what
``conv(x, op)`` does), on the node-major layout of :mod:`harness.models.fast.ops`: ``x`` is
``(N*B, C)``, row ``n*B + b`` node ``n`` of sample ``b``.

The operators are :func:`cheb_stacks` of the skeleton graph (``T_0 = I`` needs no product, so only
``T_1`` and ``T_2`` are stored), registered on the fast models as non-persistent buffers by
:func:`register_cheb_stacks`.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.models.fast import ops
from harness.models.graph import ChebConv, GraphConv, ResChebGC, cheb_polynomials

__all__ = [
    "cheb_conv_nm",
    "cheb_stack_buffers",
    "cheb_stacks",
    "graph_conv_nm",
    "register_cheb_stacks",
    "res_cheb_gc_nm",
]

Stacks = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def cheb_stacks(adj: torch.Tensor, dtype: torch.dtype = torch.float32) -> Stacks:
    """The node-major fast path's operators (K = 2), from :func:`cheb_polynomials` (float64, then
    cast): ``t12 = [T_1; T_2]`` stacked by rows ``(2N, N)``; ``t12_h = [T_1 | T_2]`` side by side
    ``(N, 2N)``; ``t12t = [T_1^T; T_2^T]`` ``(2N, N)`` (the polynomials of the row-normalised
    adjacency are not symmetric)."""
    polys = cheb_polynomials(adj, K=2, dtype=torch.float64)
    n = polys.shape[1]
    t12 = polys[1:].reshape(2 * n, n)
    t12_h = polys[1:].permute(1, 0, 2).reshape(n, 2 * n)
    t12t = polys[1:].transpose(1, 2).reshape(2 * n, n)
    return tuple(t.to(dtype).contiguous() for t in (t12, t12_h, t12t))


def register_cheb_stacks(module: nn.Module, prefix: str, adj: torch.Tensor) -> None:
    """Register :func:`cheb_stacks` of ``adj`` on ``module`` as non-persistent buffers
    ``<prefix>_t12``, ``<prefix>_t12_h``, ``<prefix>_t12t``."""
    for name, t in zip(("t12", "t12_h", "t12t"), cheb_stacks(adj)):
        module.register_buffer(f"{prefix}_{name}", t, persistent=False)


def cheb_stack_buffers(module: nn.Module, prefix: str) -> Stacks:
    """The buffers :func:`register_cheb_stacks` registered, as the tuple ``g`` the layers take."""
    return (getattr(module, f"{prefix}_t12"), getattr(module, f"{prefix}_t12_h"), getattr(module, f"{prefix}_t12t"))


def cheb_conv_nm(conv: ChebConv, x: torch.Tensor, g: Stacks) -> torch.Tensor:
    """``conv`` on node-major ``x`` ``(N*B, in_c)`` -> ``(N*B, out_c)``; ``g`` from :func:`cheb_stacks`."""
    if conv.K != 2 or conv.bias is None:
        raise NotImplementedError("the node-major path implements K = 2 with a bias (as released)")
    return ops.cheb_conv(x, g, conv.weight, conv.bias)


def graph_conv_nm(layer: GraphConv, x: torch.Tensor, g: Stacks) -> torch.Tensor:
    """:class:`GraphConv` node-major: ChebConv, ReLU and dropout fused (:func:`ops.cheb_conv`)."""
    p = layer.dropout.p if layer.dropout is not None else 0.0
    return ops.cheb_conv(x, g, layer.gconv.weight, layer.gconv.bias, relu=True, p_drop=p,
                         training=layer.training)


def res_cheb_gc_nm(block: ResChebGC, x: torch.Tensor, g: Stacks) -> torch.Tensor:
    """:class:`ResChebGC` node-major: ``x + gconv2(gconv1(x))``."""
    return x + graph_conv_nm(block.gconv2, graph_conv_nm(block.gconv1, x, g), g)
