"""The slow path: a plain, straightforward implementation in the style of the released code.

This module is the yardstick the fast models are checked (and timed) against. It is written the
way the released repositories write these models (GONGJIA0208/Diffpose ``models/``, Graformer's
``network/``, jjkislele/monoMotionDiff ``models/``), on purpose without any of the fast path's
tricks:

* every :class:`ChebConv` call rebuilds the normalised Laplacian from the adjacency and its
  Chebyshev polynomials, then applies them with broadcast ``matmul`` s over a ``(K+1, B, N, C)``
  intermediate and sums over ``K``;
* every learnable-adjacency layer ``repeat`` s ``A_hat`` once per sample and normalises the copies
  (``laplacian_batch``), then multiplies with ``bmm``;
* attention is the textbook ``softmax(QK^T / sqrt(d_k))`` with an (all-true) mask, the heads split
  by ``view``/``transpose``, three separate Q/K/V projections and ``nn.Dropout`` on the weights;
* ``LayerNorm`` is ``mean``/``std`` then arithmetic; dropout is ``nn.Dropout``; the CAG node
  spreading (``fc3``) is a ``Linear`` over the permuted node axis.

Parameter names, shapes and the construction order are the fast modules' (which are the released
ones), so one ``state_dict`` loads into both and a seed gives both the same weights. Graph
adjacencies are non-persistent buffers here too, so they add no keys.

Use :func:`build_reference_lifter` / :func:`build_reference_denoiser` (same arguments as the fast
builders). Not used for training: it is there for equivalence tests and the ``bench`` baseline.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init

from harness.errors import ConfigError
from harness.models.graph import cross_channel_adjacency, h36m_adjacency

__all__ = ["RefGraFormer", "RefGCNDiff", "build_reference_denoiser", "build_reference_lifter"]


def _clones(module: nn.Module, n: int) -> nn.ModuleList:
    return nn.ModuleList([copy.deepcopy(module) for _ in range(n)])


# --- graph convolution ---------------------------------------------------------------------------

class ChebConv(nn.Module):
    """Chebyshev graph convolution; the Laplacian and its polynomials are rebuilt on every call."""

    def __init__(self, in_c: int, out_c: int, K: int, bias: bool = True, normalize: bool = True):
        super().__init__()
        self.normalize = normalize
        self.weight = nn.Parameter(torch.Tensor(K + 1, 1, in_c, out_c))
        init.xavier_normal_(self.weight)
        if bias:
            self.bias = nn.Parameter(torch.Tensor(1, 1, out_c))
            init.zeros_(self.bias)
        else:
            self.register_parameter("bias", None)
        self.K = K + 1

    def forward(self, inputs: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        lap = self.get_laplacian(graph, self.normalize)
        mul_l = self.cheb_polynomial(lap).unsqueeze(1)      # (K, 1, N, N)
        result = torch.matmul(mul_l, inputs)                # (K, B, N, C)
        result = torch.matmul(result, self.weight)          # (K, B, N, D)
        result = torch.sum(result, dim=0)
        if self.bias is not None:
            result = result + self.bias
        return result

    def cheb_polynomial(self, laplacian: torch.Tensor) -> torch.Tensor:
        n = laplacian.size(0)
        polys = torch.zeros([self.K, n, n], device=laplacian.device, dtype=laplacian.dtype)
        polys[0] = torch.eye(n, device=laplacian.device, dtype=laplacian.dtype)
        if self.K == 1:
            return polys
        polys[1] = laplacian
        for k in range(2, self.K):
            polys[k] = 2 * torch.mm(laplacian, polys[k - 1]) - polys[k - 2]
        return polys

    @staticmethod
    def get_laplacian(graph: torch.Tensor, normalize: bool) -> torch.Tensor:
        if normalize:
            d = torch.diag(torch.sum(graph, dim=-1) ** (-1 / 2))
            eye = torch.eye(graph.size(0), device=graph.device, dtype=graph.dtype)
            return eye - torch.mm(torch.mm(d, graph), d)
        return torch.diag(torch.sum(graph, dim=-1)) - graph


class _GraphConv(nn.Module):
    def __init__(self, input_dim: int, output_dim: int, p_dropout: float | None = None):
        super().__init__()
        self.gconv = ChebConv(input_dim, output_dim, K=2)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(p_dropout) if p_dropout is not None else None

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        x = self.gconv(x, adj)
        if self.dropout is not None:
            x = self.dropout(self.relu(x))
        return self.relu(x)


class _ResChebGC(nn.Module):
    def __init__(self, input_dim: int, output_dim: int, hid_dim: int, p_dropout: float | None):
        super().__init__()
        self.gconv1 = _GraphConv(input_dim, hid_dim, p_dropout)
        self.gconv2 = _GraphConv(hid_dim, output_dim, p_dropout)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.gconv1(x, adj)
        out = self.gconv2(out, adj)
        return residual + out


def _swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class _ResChebGCDiff(nn.Module):
    def __init__(self, input_dim: int, output_dim: int, emd_dim: int, hid_dim: int, p_dropout: float | None):
        super().__init__()
        self.gconv1 = _GraphConv(input_dim, hid_dim, p_dropout)
        self.gconv2 = _GraphConv(hid_dim, output_dim, p_dropout)
        self.temb_proj = nn.Linear(emd_dim, hid_dim)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.gconv1(x, adj)
        out = out + self.temb_proj(_swish(temb))[:, None, :]
        out = self.gconv2(out, adj)
        return residual + out


# --- attention blocks ----------------------------------------------------------------------------

class LayerNorm(nn.Module):
    def __init__(self, features: int, eps: float = 1e-6):
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(features))
        self.b_2 = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.a_2 * (x - mean) / (std + self.eps) + self.b_2


def attention(query, key, value, mask=None, dropout=None):
    d_k = query.size(-1)
    scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    p_attn = F.softmax(scores, dim=-1)
    if dropout is not None:
        p_attn = dropout(p_attn)
    return torch.matmul(p_attn, value), p_attn


class MultiHeadedAttention(nn.Module):
    def __init__(self, h: int, d_model: int, dropout: float = 0.1):
        super().__init__()
        assert d_model % h == 0
        self.d_k = d_model // h
        self.h = h
        self.linears = _clones(nn.Linear(d_model, d_model), 4)
        self.attn = None
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, query, key, value, mask=None):
        if mask is not None:
            mask = mask.unsqueeze(1)
        nbatches = query.size(0)
        query, key, value = [lin(x).view(nbatches, -1, self.h, self.d_k).transpose(1, 2)
                             for lin, x in zip(self.linears, (query, key, value))]
        x, self.attn = attention(query, key, value, mask=mask, dropout=self.dropout)
        x = x.transpose(1, 2).contiguous().view(nbatches, -1, self.h * self.d_k)
        return self.linears[-1](x)


class LAM_Gconv(nn.Module):
    def __init__(self, in_features: int, out_features: int, activation=True):
        super().__init__()
        self.fc = nn.Linear(in_features=in_features, out_features=out_features)
        self.activation = nn.ReLU() if activation else None

    def laplacian_batch(self, a_hat: torch.Tensor) -> torch.Tensor:
        batch, n = a_hat.shape[:2]
        d_hat = (torch.sum(a_hat, 1) + 1e-5) ** (-0.5)
        return d_hat.view(batch, n, 1) * a_hat * d_hat.view(batch, 1, n)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        batch = x.size(0)
        a_hat = a.unsqueeze(0).repeat(batch, 1, 1)
        x = self.fc(torch.bmm(self.laplacian_batch(a_hat), x))
        if self.activation is not None:
            x = self.activation(x)
        return x


class GraphNet(nn.Module):
    def __init__(self, in_features: int = 2, out_features: int = 2, n_pts: int = 21):
        super().__init__()
        self.A_hat = nn.Parameter(torch.eye(n_pts).float(), requires_grad=True)
        self.gconv1 = LAM_Gconv(in_features, in_features * 2)
        self.gconv2 = LAM_Gconv(in_features * 2, out_features, activation=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.gconv1(x, self.A_hat)
        return self.gconv2(x0, self.A_hat)


class SublayerConnection(nn.Module):
    def __init__(self, size: int, dropout: float):
        super().__init__()
        self.norm = LayerNorm(size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, sublayer):
        return x + self.dropout(sublayer(self.norm(x)))


class GraAttenLayer(nn.Module):
    def __init__(self, size: int, self_attn, feed_forward, dropout: float):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.sublayer = _clones(SublayerConnection(size, dropout), 2)
        self.size = size

    def forward(self, x, mask):
        x = self.sublayer[0](x, lambda x: self.self_attn(x, x, x, mask))
        return self.sublayer[1](x, self.feed_forward)


def _all_true_mask(num_nodes: int, device) -> torch.Tensor:
    # what the released scripts pass as ``src_mask``: every node attends to every node
    return torch.tensor([[[True] * num_nodes]], device=device)


# --- the models ----------------------------------------------------------------------------------

class RefGraFormer(nn.Module):
    """GraFormer, released style. ``forward(x (B, J, 2)) -> (B, J, 3)``."""

    def __init__(self, adj: torch.Tensor, hid_dim: int = 96, num_layers: int = 5, n_head: int = 4,
                 dropout: float = 0.25, num_joints: int = 17, coords_dim=(2, 3)):
        super().__init__()
        self.n_layers = num_layers
        self.num_joints = num_joints
        self.register_buffer("adj", adj.clone(), persistent=False)
        self.gconv_input = ChebConv(coords_dim[0], hid_dim, K=2)
        c = copy.deepcopy
        attn = MultiHeadedAttention(n_head, hid_dim)
        gcn = GraphNet(in_features=hid_dim, out_features=hid_dim, n_pts=num_joints)
        gconv_layers, atten_layers = [], []
        for _ in range(num_layers):
            gconv_layers.append(_ResChebGC(hid_dim, hid_dim, hid_dim, p_dropout=0.1))
            atten_layers.append(GraAttenLayer(hid_dim, c(attn), c(gcn), dropout))
        self.gconv_layers = nn.ModuleList(gconv_layers)
        self.atten_layers = nn.ModuleList(atten_layers)
        self.gconv_output = ChebConv(hid_dim, coords_dim[1], K=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = _all_true_mask(self.num_joints, x.device)
        out = self.gconv_input(x, self.adj)
        for i in range(self.n_layers):
            out = self.atten_layers[i](out, mask)
            out = self.gconv_layers[i](out, self.adj)
        return self.gconv_output(out, self.adj)


def get_timestep_embedding(timesteps: torch.Tensor, embedding_dim: int,
                           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Released DDPM embedding (``dtype`` is float32 there; float64 models use float64)."""
    assert len(timesteps.shape) == 1
    half_dim = embedding_dim // 2
    emb = math.log(10000) / (half_dim - 1)
    emb = torch.exp(torch.arange(half_dim, dtype=torch.float32) * -emb)
    emb = emb.to(device=timesteps.device, dtype=dtype)
    emb = timesteps.to(dtype)[:, None] * emb[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    if embedding_dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


class RefGCNDiff(nn.Module):
    """The denoiser variants, released style (same switches and parameters as
    :class:`harness.models.denoiser.GCNDiff`)."""

    def __init__(self, adj: torch.Tensor, hid_dim: int = 96, num_layers: int = 5, n_head: int = 4,
                 dropout: float = 0.25, cce: bool = False, cag: bool = False,
                 adj_cross: torch.Tensor | None = None):
        super().__init__()
        j = adj.shape[0]
        self.num_joints = j
        self.cce, self.cag = bool(cce), bool(cag)
        self.hid_dim = hid_dim
        self.emd_dim = hid_dim * 4
        self.n_layers = num_layers
        n_nodes = 2 * j if cce else j
        self.n_nodes = n_nodes
        self.coords_dim = (3, 3) if cce else (5, 5)
        self.register_buffer("adj", (adj_cross if cce else adj).clone(), persistent=False)
        if cag:
            self.register_buffer("adj_ctx", adj.clone(), persistent=False)
        c = copy.deepcopy

        self.gconv_input = ChebConv(self.coords_dim[0], hid_dim, K=2)
        attn = MultiHeadedAttention(n_head, hid_dim)
        gcn = GraphNet(in_features=hid_dim, out_features=hid_dim, n_pts=n_nodes)
        gconv_layers, atten_layers = [], []
        for _ in range(num_layers):
            gconv_layers.append(_ResChebGCDiff(hid_dim, hid_dim, self.emd_dim, hid_dim, p_dropout=0.1))
            atten_layers.append(GraAttenLayer(hid_dim, c(attn), c(gcn), dropout))
        self.gconv_layers = nn.ModuleList(gconv_layers)
        self.atten_layers = nn.ModuleList(atten_layers)
        self.gconv_output = ChebConv(hid_dim, self.coords_dim[1], K=2)

        if cag:
            self.gconv_input_t = ChebConv(2, hid_dim, K=2)
            gcn_t = GraphNet(in_features=hid_dim, out_features=hid_dim, n_pts=n_nodes)
            gconv_layers_t, atten_layers_t = [], []
            for _ in range(num_layers):
                gconv_layers_t.append(_ResChebGCDiff(hid_dim, hid_dim, self.emd_dim, hid_dim, p_dropout=0.1))
                atten_layers_t.append(GraAttenLayer(hid_dim, c(attn), c(gcn_t), dropout))
            self.gconv_layers_t = nn.ModuleList(gconv_layers_t)
            self.atten_layers_t = nn.ModuleList(atten_layers_t)
            self.gconv_output_t = ChebConv(hid_dim, self.coords_dim[1], K=2)

        if cce:
            self.fc1 = nn.Linear(2, 3)
            self.fc2 = nn.Linear(6, 5)
        if cce and cag:
            self.fc3 = nn.Linear(j, 2 * j)

        self.temb = nn.Module()
        self.temb.dense = nn.ModuleList([nn.Linear(hid_dim, self.emd_dim), nn.Linear(self.emd_dim, self.emd_dim)])

    def forward(self, x: torch.Tensor, t: torch.Tensor, pose_2d: torch.Tensor | None = None) -> torch.Tensor:
        j = self.num_joints
        mask = _all_true_mask(self.n_nodes, x.device)
        temb = get_timestep_embedding(t, self.hid_dim, self.temb.dense[0].weight.dtype)
        temb = self.temb.dense[0](temb)
        temb = _swish(temb)
        temb = self.temb.dense[1](temb)

        if self.cce:
            x = torch.cat([self.fc1(x[:, :, :2]), x[:, :, 2:]], dim=1)  # (B, 2J, 3)
        out = self.gconv_input(x, self.adj)
        if self.cag:
            guide = self.gconv_input_t(pose_2d, self.adj_ctx)
            if self.cce:
                guide = self.fc3(guide.permute(0, 2, 1)).permute(0, 2, 1)
            out = out + guide
        for i in range(self.n_layers):
            out = self.atten_layers[i](out, mask)
            if self.cag:
                guide = self.atten_layers_t[i](guide, mask)
                out = out + guide
                guide = guide + out
            out = self.gconv_layers[i](out, temb, self.adj)
            if self.cag and i < self.n_layers - 1:
                guide = self.gconv_layers_t[i](guide, temb, self.adj)
        out = self.gconv_output(out, self.adj)
        if self.cce:
            out = self.fc2(torch.cat([out[:, :j], out[:, j:]], dim=-1))
        return out


# --- builders ------------------------------------------------------------------------------------

_SWITCHES = {"baseline": (False, False), "cce": (True, False), "cag": (False, True), "full": (True, True)}


def build_reference_lifter(hid_dim: int = 96, num_layers: int = 5, n_head: int = 4,
                           dropout: float = 0.25) -> RefGraFormer:
    return RefGraFormer(h36m_adjacency(), hid_dim=hid_dim, num_layers=num_layers, n_head=n_head,
                        dropout=dropout, num_joints=17)


def build_reference_denoiser(variant: str, hid_dim: int = 96, num_layers: int = 5, n_head: int = 4,
                             dropout: float = 0.25) -> RefGCNDiff:
    if variant not in _SWITCHES:
        raise ConfigError(f"unknown variant {variant!r}; valid: {', '.join(sorted(_SWITCHES))}")
    cce, cag = _SWITCHES[variant]
    return RefGCNDiff(h36m_adjacency(), hid_dim=hid_dim, num_layers=num_layers, n_head=n_head,
                      dropout=dropout, cce=cce, cag=cag,
                      adj_cross=cross_channel_adjacency() if cce else None)
