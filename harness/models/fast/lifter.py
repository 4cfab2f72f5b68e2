"""The attention blocks of :mod:`harness.models.lifter` node-major, and the fast GraFormer.

Functions over the readable modules' parameters, on the node-major layout ``(N*B, C)`` of
:mod:`harness.models.fast.ops`; each computes what the module's ``forward`` does (float32
rounding aside):

* :func:`attention_nm`: the Q/K/V projections as one GEMM (:func:`qkv_params`); without dropout
  the core is ``F.scaled_dot_product_attention``, in training the attention weights get their
  dropout (fused kernel or hand-written backward);
* :func:`graphnet_nm`: ``L`` normalised once per forward and applied to the whole batch with one
  GEMM ``(N, N) @ (N, B*C)``; a layer that narrows the features applies its weights first,
  ``fc(L X) = L (X W^T) + b``, so the graph product runs on the fewer channels;
* :func:`attention_layer_nm`: the released LayerNorm and the residual dropout as fused kernels; in
  evaluation the residual adds fuse into the blocks' last GEMMs.

:class:`FastGraFormer` is :class:`~harness.models.lifter.GraFormer` (same parameters, construction
order and state_dict) with the node-major ``forward``.
"""

from __future__ import annotations

import torch

from harness.models.fast import ops
from harness.models.fast.graph import cheb_conv_nm, cheb_stack_buffers, register_cheb_stacks, res_cheb_gc_nm
from harness.models.lifter import GraAttenLayer, GraFormer, GraphNet, LAMGconv, LayerNorm, MultiHeadedAttention

__all__ = [
    "FastGraFormer",
    "attention_layer_nm",
    "attention_nm",
    "graphnet_nm",
    "lam_gconv_nm",
    "lam_gconv_nm_weights_first",
    "layer_norm_nm",
    "qkv_params",
]


def qkv_params(attn: MultiHeadedAttention) -> tuple[torch.Tensor, torch.Tensor]:
    """``attn``'s Q, K, V projections stacked with rows ordered (head, q|k|v, d_k)."""
    q, k, v = attn.linears[0], attn.linears[1], attn.linears[2]
    d = q.weight.shape[1]
    w = torch.stack([m.weight.view(attn.h, attn.d_k, d) for m in (q, k, v)], dim=1).reshape(3 * d, d)
    b = torch.stack([m.bias.view(attn.h, attn.d_k) for m in (q, k, v)], dim=1).reshape(3 * d)
    return w, b


def attention_nm(attn: MultiHeadedAttention, x: torch.Tensor, n: int,
                 residual: torch.Tensor | None = None) -> torch.Tensor:
    """``attn`` on node-major ``x`` ``(N*B, d_model)`` over ``n`` nodes (``+ residual`` if given)."""
    w, b = qkv_params(attn)
    out = attn.linears[3]
    return ops.attention(x, n, attn.h, w, b, out.weight, out.bias, attn.dropout.p, attn.training,
                         residual=residual)


def layer_norm_nm(norm: LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """The released :class:`LayerNorm` (fused kernel where it applies)."""
    return ops.layer_norm(x, norm.a_2, norm.b_2, norm.eps)


def lam_gconv_nm(layer: LAMGconv, x: torch.Tensor, lap: torch.Tensor) -> torch.Tensor:
    """:class:`LAMGconv` node-major: ``L @ X`` is one GEMM ``(N, N) @ (N, B*C)``."""
    rows, c = x.shape
    n = lap.shape[0]
    lx = ops.graph_mm(lap, x.view(n, -1)).view(rows, c)
    return ops.linear(lx, layer.fc.weight, layer.fc.bias, relu=layer.activation is not None)


def lam_gconv_nm_weights_first(layer: LAMGconv, x: torch.Tensor, lap: torch.Tensor,
                               residual: torch.Tensor | None = None) -> torch.Tensor:
    """Same function as :func:`lam_gconv_nm` for a layer without activation, as
    ``fc(L X) = L (X W^T) + b``: for a layer that narrows the features the graph product then runs
    on the fewer output channels; ``+ residual`` if given."""
    rows = x.shape[0]
    n = lap.shape[0]
    xw = ops.linear(x, layer.fc.weight, None)
    d = xw.shape[1]
    add = None if residual is None else residual.view(n, -1)
    return ops.graph_mm(lap, xw.view(n, -1), col_bias=layer.fc.bias, add=add).view(rows, d)


def graphnet_nm(net: GraphNet, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
    """:class:`GraphNet` node-major (``+ residual`` if given); ``L`` is computed once and shared
    by both layers."""
    lap = net.laplacian(net.A_hat)
    h = lam_gconv_nm(net.gconv1, x, lap)
    g2 = net.gconv2
    if g2.activation is None and g2.fc.out_features < g2.fc.in_features:
        return lam_gconv_nm_weights_first(g2, h, lap, residual)
    y = lam_gconv_nm(g2, h, lap)
    return y if residual is None else y + residual


def attention_layer_nm(layer: GraAttenLayer, x: torch.Tensor, n: int) -> torch.Tensor:
    """:class:`GraAttenLayer` on node-major ``x`` ``(N*B, C)`` over ``n`` nodes."""
    s0, s1 = layer.sublayer[0], layer.sublayer[1]
    if not layer.training:  # no dropout: the residual adds fuse into the last GEMMs
        x = attention_nm(layer.self_attn, layer_norm_nm(s0.norm, x), n, residual=x)
        return graphnet_nm(layer.feed_forward, layer_norm_nm(s1.norm, x), residual=x)
    x = ops.residual_dropout(x, attention_nm(layer.self_attn, layer_norm_nm(s0.norm, x), n),
                             s0.dropout.p, s0.training)
    return ops.residual_dropout(x, graphnet_nm(layer.feed_forward, layer_norm_nm(s1.norm, x)),
                                s1.dropout.p, s1.training)


class FastGraFormer(GraFormer):
    """:class:`~harness.models.lifter.GraFormer` with the node-major forward. Same constructor
    (it calls the readable one, so parameters, their initial values and the state_dict are the
    readable model's) plus the non-persistent ``cheb_t12``, ``cheb_t12_h``, ``cheb_t12t``."""

    def __init__(self, adj: torch.Tensor, hid_dim: int = 96, num_layers: int = 5, n_head: int = 4,
                 dropout: float = 0.25, num_joints: int = 17, coords_dim: tuple[int, int] = (2, 3)):
        super().__init__(adj, hid_dim=hid_dim, num_layers=num_layers, n_head=n_head, dropout=dropout,
                         num_joints=num_joints, coords_dim=coords_dim)
        register_cheb_stacks(self, "cheb", adj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, j, c = x.shape
        g = cheb_stack_buffers(self, "cheb")
        out = cheb_conv_nm(self.gconv_input, x.transpose(0, 1).reshape(j * b, c), g)
        for atten, gconv in zip(self.atten_layers, self.gconv_layers):
            out = res_cheb_gc_nm(gconv, attention_layer_nm(atten, out, j), g)
        out = cheb_conv_nm(self.gconv_output, out, g)
        return out.view(j, b, -1).transpose(0, 1).contiguous()
