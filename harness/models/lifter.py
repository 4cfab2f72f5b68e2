"""GraFormer 2D -> 3D lifter and the graph-attention blocks it shares with the denoisers.

A re-implementation of ``network/GraFormer.py`` of Graformer/GraFormer (DiffPose ships the same
file as ``models/GraFormer.py``, the cross-channel paper as ``models/backbone/GraFormer.py``),
batch-major ``(B, N, C)``, with the released module and parameter names (a released
``state_dict`` maps key for key; graph operators are non-persistent buffers, so they add no keys).

One layer (:class:`GraAttenLayer`) is two pre-norm residual sublayers::

    x = x + dropout(MHA(LN(x)))           # self-attention over the N nodes
    x = x + dropout(GraphNet(LN(x)))      # two graph layers over a learnable adjacency

* ``LN`` is the released LayerNorm (not ``nn.LayerNorm``): ``a_2 * (x - mean) / (std + eps) + b_2``
  with the *unbiased* std and ``eps = 1e-6`` added to the std.
* ``MHA`` is multi-head attention with ``h`` heads of ``d_k = C / h``:
  ``head_i = softmax(Q_i K_i^T / sqrt(d_k)) V_i`` (``Q = x W_q^T + b_q``, likewise ``K``, ``V``;
  dropout 0.1 on the attention weights), ``MHA(x) = [head_1 .. head_h] W_o^T + b_o``. The released
  code passes an all-True mask, a no-op, so there is none.
* ``GraphNet(x) = fc2(L relu(fc1(L x)))`` with ``L = D^-1/2 A_hat D^-1/2``, ``D = diag(column sums
  of A_hat + 1e-5)`` (released ``LAM_Gconv.laplacian_batch``), ``A_hat`` learnable (init ``I``).

The lifter (:class:`GraFormer`) is ChebConv in, ``num_layers`` x (GraAttenLayer, residual
ChebConv pair), ChebConv out (:mod:`harness.models.graph`)::

    h_0 = gconv_input(x);  h_{i+1} = gconv_layers[i](atten_layers[i](h_i));  y = gconv_output(h_L)

Initialisation follows the released constructors, quirks included, so a seed gives the same
weights: one ``MultiHeadedAttention`` and one ``GraphNet`` prototype are built and *deep-copied*
into every layer (all layers start identical), and inside the attention the four projections are
deep copies of one ``nn.Linear``.

This is the readable model; :mod:`harness.models.fast` runs the same parameters faster.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from harness.models.graph import ChebConv, ResChebGC, cheb_operator

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
    """Released LayerNorm over the last dim: ``a_2 * (x - mean) / (std + eps) + b_2``, ``std``
    the *unbiased* standard deviation."""

    def __init__(self, features: int, eps: float = 1e-6):
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(features))
        self.b_2 = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.a_2 * (x - mean) / (std + self.eps) + self.b_2


class SublayerConnection(nn.Module):
    """Pre-norm residual: ``x + dropout(sublayer(norm(x)))``."""

    def __init__(self, size: int, dropout: float):
        super().__init__()
        self.norm = LayerNorm(size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, sublayer) -> torch.Tensor:
        return x + self.dropout(sublayer(self.norm(x)))


class MultiHeadedAttention(nn.Module):
    """Multi-head self-attention over the nodes (see the module docstring). ``linears[0..2]`` are
    the Q, K, V projections, ``linears[3]`` the output; ``dropout`` (0.1 as released) acts on the
    attention weights. ``forward(x (B, N, d_model)) -> (B, N, d_model)``."""

    def __init__(self, h: int, d_model: int, dropout: float = 0.1):
        super().__init__()
        if d_model % h:
            raise ValueError(f"d_model {d_model} is not divisible by the number of heads {h}")
        self.d_k = d_model // h
        self.h = h
        self.linears = clones(nn.Linear(d_model, d_model), 4)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (lin(x).view(b, n, self.h, self.d_k).transpose(1, 2)      # (B, h, N, d_k)
                   for lin in self.linears[:3])
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        p_attn = self.dropout(torch.softmax(scores, dim=-1))
        heads = torch.matmul(p_attn, v).transpose(1, 2).reshape(b, n, self.h * self.d_k)
        return self.linears[3](heads)


class LAMGconv(nn.Module):
    """Released ``LAM_Gconv``: ``act(fc(L @ x))``, ``L`` the normalised learnable adjacency
    (:meth:`GraphNet.laplacian`); ``act`` is ReLU or none."""

    def __init__(self, in_features: int, out_features: int, activation: bool = True):
        super().__init__()
        self.fc = nn.Linear(in_features=in_features, out_features=out_features)
        self.activation = nn.ReLU() if activation else None

    def forward(self, x: torch.Tensor, lap: torch.Tensor) -> torch.Tensor:
        x = self.fc(torch.matmul(lap, x))
        return self.activation(x) if self.activation is not None else x


class GraphNet(nn.Module):
    """Released ``GraphNet``: ``gconv2(gconv1(x))``, two :class:`LAMGconv` (``C -> 2C`` with ReLU,
    ``2C -> C`` without) over one learnable adjacency ``A_hat`` (init identity)."""

    def __init__(self, in_features: int = 2, out_features: int = 2, n_pts: int = 21):
        super().__init__()
        self.A_hat = nn.Parameter(torch.eye(n_pts), requires_grad=True)
        self.gconv1 = LAMGconv(in_features, in_features * 2)
        self.gconv2 = LAMGconv(in_features * 2, out_features, activation=False)

    @staticmethod
    def laplacian(a_hat: torch.Tensor) -> torch.Tensor:
        """``L_ij = d_i A_ij d_j``, ``d = (column sums of A_hat + 1e-5)^-1/2`` (released
        ``laplacian_batch``; the released code repeats ``A_hat`` per sample first)."""
        d = (a_hat.sum(dim=0) + 1e-5) ** -0.5
        return d[:, None] * a_hat * d[None, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lap = self.laplacian(self.A_hat)
        return self.gconv2(self.gconv1(x, lap), lap)


class GraAttenLayer(nn.Module):
    """Pre-norm residual self-attention followed by a pre-norm residual :class:`GraphNet`."""

    def __init__(self, size: int, self_attn: MultiHeadedAttention, feed_forward: GraphNet, dropout: float):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.sublayer = clones(SublayerConnection(size, dropout), 2)
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sublayer[0](x, self.self_attn)
        return self.sublayer[1](x, self.feed_forward)


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
        out = self.gconv_input(x, self.cheb)
        for atten, gconv in zip(self.atten_layers, self.gconv_layers):
            out = gconv(atten(out), self.cheb)
        return self.gconv_output(out, self.cheb)
