"""GraFormer 2D -> 3D lifter and the graph-attention blocks it shares with the denoisers.

A clean re-implementation of ``network/GraFormer.py`` of Graformer/GraFormer (the copy DiffPose ships
as ``models/GraFormer.py`` and the cross-channel paper as ``models/backbone/GraFormer.py`` is the
same). Same math, same module and parameter names (a released ``state_dict`` maps key for key;
graph operators are non-persistent buffers so they add no keys), but:

* the model runs *node-major* (see :mod:`harness.models.ops`): graph products are single GEMMs of
  the operator against the whole batch, per-node linear maps are single GEMMs over all nodes;
* graph operators (Chebyshev polynomials) are computed once at construction, not per call;
* the learnable-adjacency graph layers normalise ``A_hat`` once per forward and apply it to the
  whole batch with one GEMM (the released code ``repeat``s it per sample);
* the Q/K/V projections run as one GEMM; attention without dropout (evaluation) is
  ``F.scaled_dot_product_attention`` (the released code only ever passes an all-True mask, which
  is a no-op, so there is none); in training the attention weights get their dropout;
* the custom ``LayerNorm`` (unbiased std, ``eps`` added to the std) keeps its math (it is not
  ``nn.LayerNorm``'s) with a fused kernel for the statistics and a hand-written backward;
* ChebConv + ReLU + dropout run as one fused autograd Function; dropout masks are cheap to draw.

Every block keeps a batch-major ``forward`` (``(B, N, C)`` in and out) as its API; the models call
the node-major ``forward_nm`` methods.

Initialisation follows the released constructors, including their quirks, so a seed gives the same
weights: one ``MultiHeadedAttention`` and one ``GraphNet`` prototype are built and *deep-copied* into
every layer (all layers start identical), and inside the attention the four projections are
deep copies of one ``nn.Linear``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from harness.models import ops
from harness.models.graph import ChebConv, ResChebGC, cheb_operator, cheb_stack_buffers, register_cheb_stacks

__all__ = [
    "GraAttenLayer",
    "GraFormer",
    "GraphNet",
    "LAMGconv",
    "LayerNorm",
    "MultiHeadedAttention",
    "SublayerConnection",
    "clones",
]


def clones(module: nn.Module, n: int) -> nn.ModuleList:
    """``n`` deep copies of ``module`` (identical initial weights), as released."""
    return nn.ModuleList([copy.deepcopy(module) for _ in range(n)])


class LayerNorm(nn.Module):
    """Released LayerNorm: ``a_2 * (x - mean) / (std + eps) + b_2`` with the *unbiased* std."""

    def __init__(self, features: int, eps: float = 1e-6):
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(features))
        self.b_2 = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.layer_norm(x, self.a_2, self.b_2, self.eps)


class SublayerConnection(nn.Module):
    """Pre-norm residual: ``x + dropout(sublayer(norm(x)))``."""

    def __init__(self, size: int, dropout: float):
        super().__init__()
        self.norm = LayerNorm(size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, sublayer) -> torch.Tensor:
        return ops.residual_dropout(x, sublayer(self.norm(x)), self.dropout.p, self.training)


class MultiHeadedAttention(nn.Module):
    """Multi-head self-attention over the nodes. ``linears[0..2]`` are the Q, K, V projections,
    ``linears[3]`` the output; ``dropout`` (0.1 as released) acts on the attention weights."""

    def __init__(self, h: int, d_model: int, dropout: float = 0.1):
        super().__init__()
        if d_model % h:
            raise ValueError(f"d_model {d_model} is not divisible by the number of heads {h}")
        self.d_k = d_model // h
        self.h = h
        self.linears = clones(nn.Linear(d_model, d_model), 4)
        self.dropout = nn.Dropout(p=dropout)

    def qkv_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Q, K, V projections stacked with rows ordered (head, q|k|v, d_k)."""
        q, k, v = self.linears[0], self.linears[1], self.linears[2]
        d = q.weight.shape[1]
        w = torch.stack([m.weight.view(self.h, self.d_k, d) for m in (q, k, v)], dim=1).reshape(3 * d, d)
        b = torch.stack([m.bias.view(self.h, self.d_k) for m in (q, k, v)], dim=1).reshape(3 * d)
        return w, b

    def forward_nm(self, x: torch.Tensor, n: int, residual: torch.Tensor | None = None) -> torch.Tensor:
        """Node-major ``x`` ``(N*B, d_model)`` over ``n`` nodes (``+ residual`` if given)."""
        w, b = self.qkv_params()
        out = self.linears[3]
        return ops.attention(x, n, self.h, w, b, out.weight, out.bias, self.dropout.p, self.training,
                             residual=residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        y = self.forward_nm(x.transpose(0, 1).reshape(n * b, d), n)
        return y.view(n, b, d).transpose(0, 1)


class LAMGconv(nn.Module):
    """Released ``LAM_Gconv``: ``act(fc(L @ X))`` with ``L`` the normalised learnable adjacency."""

    def __init__(self, in_features: int, out_features: int, activation: bool = True):
        super().__init__()
        self.fc = nn.Linear(in_features=in_features, out_features=out_features)
        self.activation = nn.ReLU() if activation else None

    def forward(self, x: torch.Tensor, lap: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        x = self.fc(torch.bmm(lap.expand(b, n, n), x))
        return self.activation(x) if self.activation is not None else x

    def forward_nm(self, x: torch.Tensor, lap: torch.Tensor) -> torch.Tensor:
        """Node-major: ``L @ X`` is one GEMM ``(N, N) @ (N, B*C)``."""
        rows, c = x.shape
        n = lap.shape[0]
        lx = ops.graph_mm(lap, x.view(n, -1)).view(rows, c)
        return ops.linear(lx, self.fc.weight, self.fc.bias, relu=self.activation is not None)

    def forward_nm_weights_first(self, x: torch.Tensor, lap: torch.Tensor,
                                 residual: torch.Tensor | None = None) -> torch.Tensor:
        """Same function, ``fc(L X) = L (X W^T) + b``: for a layer that narrows the features
        the graph product then runs on the fewer output channels (no activation); ``+ residual``
        if given."""
        rows = x.shape[0]
        n = lap.shape[0]
        xw = ops.linear(x, self.fc.weight, None)
        d = xw.shape[1]
        add = None if residual is None else residual.view(n, -1)
        return ops.graph_mm(lap, xw.view(n, -1), col_bias=self.fc.bias, add=add).view(rows, d)


class GraphNet(nn.Module):
    """Released ``GraphNet``: two :class:`LAMGconv` over a learnable adjacency ``A_hat`` (init
    identity). ``L = d_i A_ij d_j`` with ``d = (column sums of A_hat + 1e-5)^-1/2`` (the released
    ``laplacian_batch``), computed once per forward and shared by both layers."""

    def __init__(self, in_features: int = 2, out_features: int = 2, n_pts: int = 21):
        super().__init__()
        self.A_hat = nn.Parameter(torch.eye(n_pts), requires_grad=True)
        self.gconv1 = LAMGconv(in_features, in_features * 2)
        self.gconv2 = LAMGconv(in_features * 2, out_features, activation=False)

    @staticmethod
    def laplacian(a_hat: torch.Tensor) -> torch.Tensor:
        d = (a_hat.sum(dim=0) + 1e-5) ** -0.5
        return d[:, None] * a_hat * d[None, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        y = self.forward_nm(x.transpose(0, 1).reshape(n * b, c))
        return y.view(n, b, -1).transpose(0, 1)

    def forward_nm(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        lap = self.laplacian(self.A_hat)
        h = self.gconv1.forward_nm(x, lap)
        g2 = self.gconv2
        if g2.activation is None and g2.fc.out_features < g2.fc.in_features:
            return g2.forward_nm_weights_first(h, lap, residual)
        y = g2.forward_nm(h, lap)
        return y if residual is None else y + residual


class GraAttenLayer(nn.Module):
    """Pre-norm residual self-attention followed by a pre-norm residual :class:`GraphNet`."""

    def __init__(self, size: int, self_attn: MultiHeadedAttention, feed_forward: GraphNet, dropout: float):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.sublayer = clones(SublayerConnection(size, dropout), 2)
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        y = self.forward_nm(x.transpose(0, 1).reshape(n * b, c), n)
        return y.view(n, b, c).transpose(0, 1)

    def forward_nm(self, x: torch.Tensor, n: int) -> torch.Tensor:
        if not self.training:  # no dropout: the residual adds fuse into the last GEMMs
            x = self.self_attn.forward_nm(self.sublayer[0].norm(x), n, residual=x)
            return self.feed_forward.forward_nm(self.sublayer[1].norm(x), residual=x)
        x = self.sublayer[0](x, lambda h: self.self_attn.forward_nm(h, n))
        return self.sublayer[1](x, self.feed_forward.forward_nm)


class GraFormer(nn.Module):
    """GraFormer lifter: ChebConv in, ``num_layers`` x (GraAttenLayer, residual ChebConv pair),
    ChebConv out. ``forward(x (B, J, 2)) -> (B, J, 3)``.

    ``adj`` is the normalised skeleton adjacency (:func:`harness.models.graph.adj_mx_from_edges`).
    ``dropout`` is the attention-block residual dropout; the graph layers use 0.1 and the attention
    weights 0.1, fixed as released. At hid 96, 5 layers, 4 heads, 17 joints: 654,344 parameters.
    """

    def __init__(self, adj: torch.Tensor, hid_dim: int = 96, num_layers: int = 5, n_head: int = 4,
                 dropout: float = 0.25, num_joints: int = 17, coords_dim: tuple[int, int] = (2, 3)):
        super().__init__()
        if tuple(adj.shape) != (num_joints, num_joints):
            raise ValueError(f"adj must be ({num_joints}, {num_joints}), got {tuple(adj.shape)}")
        self.n_layers = num_layers
        self.num_joints = num_joints
        self.register_buffer("cheb", cheb_operator(adj, K=2), persistent=False)
        register_cheb_stacks(self, "cheb", adj)

        # Construction order as released (it fixes which random numbers each weight gets).
        self.gconv_input = ChebConv(coords_dim[0], hid_dim, K=2)
        attn = MultiHeadedAttention(n_head, hid_dim)
        gcn = GraphNet(in_features=hid_dim, out_features=hid_dim, n_pts=num_joints)
        gconv_layers, atten_layers = [], []
        for _ in range(num_layers):
            gconv_layers.append(ResChebGC(hid_dim, hid_dim, hid_dim, p_dropout=0.1))
            atten_layers.append(GraAttenLayer(hid_dim, copy.deepcopy(attn), copy.deepcopy(gcn), dropout))
        self.gconv_layers = nn.ModuleList(gconv_layers)
        self.atten_layers = nn.ModuleList(atten_layers)
        self.gconv_output = ChebConv(hid_dim, coords_dim[1], K=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, j, c = x.shape
        g = cheb_stack_buffers(self, "cheb")
        out = self.gconv_input.forward_nm(x.transpose(0, 1).reshape(j * b, c), g)
        for atten, gconv in zip(self.atten_layers, self.gconv_layers):
            out = gconv.forward_nm(atten.forward_nm(out, j), g)
        out = self.gconv_output.forward_nm(out, g)
        return out.view(j, b, -1).transpose(0, 1).contiguous()

