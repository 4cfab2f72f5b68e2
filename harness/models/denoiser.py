"""Diffusion denoisers: DiffPose's cross-joint GCN and the cross-channel paper's extensions.

One class, :class:`GCNDiff`, with two switches; the four variants of the ablation are

=========  =====  =====  ==========================================================  ===========
variant    cce    cag    what it is                                                  params (*)
=========  =====  =====  ==========================================================  ===========
baseline   off    off    DiffPose's ``GCNdiff`` (GONGJIA0208/Diffpose, models/        1,025,674
                         gcndiff.py): 17-node graph, 5 channels [u,v,x,y,z] in/out
cce        on     off    the ``full`` model without the guidance stream (below)       1,028,899
cag        off    on     the baseline plus the ``full`` model's guidance stream,      1,865,396
                         built on the 17-node graph
full       on     on     the released ``DiffModel`` (jjkislele/monoMotionDiff,        1,872,990
                         models/model.py, built as in models/runner.py)
=========  =====  =====  ==========================================================  ===========

(*) hid 96, 5 layers, 4 heads, 17 joints. On the 16-joint layout without Neck/Nose (graphs of 16
and 32 nodes): 1,025,509 / 1,028,239 / 1,865,066 / 1,871,602.

Main stream (all variants): ``gconv_input`` (ChebConv K=2) -> per layer ``atten_layers[i]``
(pre-norm residual multi-head self-attention over the nodes + pre-norm residual ``GraphNet`` with a
learnable adjacency, :class:`~harness.models.lifter.GraAttenLayer`) then ``gconv_layers[i]``
(residual pair of ChebConvs with the projected diffusion-time embedding added between them) ->
``gconv_output``::

    h_0     = gconv_input(x)
    a_i     = atten_layers[i](h_i)
    h_{i+1} = a_i + G_2(G_1(a_i) + temb_proj_i(swish(temb)))      # G = dropout(relu(ChebConv(.)))
    eps     = gconv_output(h_L)

The time embedding is DDPM's sinusoidal one, ``emb(t) = [sin(t f), cos(t f)]`` with
``f_i = 10000^(-i / (hid/2 - 1))``, then ``temb = dense[1](swish(dense[0](emb(t))))``
(``emd_dim = 4 * hid_dim``; ``swish(z) = z sigmoid(z)``).

CCE (cross-channel embedding), ``cce=True``: the graph has ``2J`` nodes (34 for H36M), ``0..J-1``
holding the 2D projections and ``J..2J-1`` the 3D coordinates; edges are the skeleton within each half plus
each joint's 2D node linked to its 3D node (:func:`~harness.models.graph.cross_channel_edges`).
The noisy ``u, v`` go through ``fc1`` (Linear 2 -> 3) so both halves carry 3 values per node;
``coords_dim`` is (3, 3). The readout puts each joint's 2D-node and 3D-node outputs side by side
(6 values) and ``fc2`` (Linear 6 -> 5) maps them to the noise on [u, v, x, y, z].

CAG (context attention guidance), ``cag=True``: a second stream fed the clean 2D pose.
``gconv_input_t`` (ChebConv 2 -> hid on the J-joint graph) embeds it; with CCE, ``fc3`` (Linear
J -> 2J over the node axis, 17 -> 34 for H36M) spreads it over the 2J nodes. It is added to the main
stream's input embedding, then runs through its own ``atten_layers_t`` / ``gconv_layers_t`` (on the
same graph as the main stream). After each layer's attention the streams exchange features both ways,
``out = out + guide; guide = guide + out`` (the second uses the updated ``out``), before their
graph layers. In the last layer only ``out = out + guide`` matters: the guide stream ends there.
With ``g_0 = gconv_input_t(pose_2d)`` (``fc3`` over the node axis with CCE) added to ``h_0``::

    a_i = atten_layers[i](h_i);  b_i = atten_layers_t[i](g_i)
    a_i = a_i + b_i;             b_i = b_i + a_i
    h_{i+1} = gconv_layers[i](a_i);  g_{i+1} = gconv_layers_t[i](b_i)    (i < L - 1)

Consequences kept for fidelity with the released parameter count (and state_dict):
``gconv_output_t`` (ChebConv hid -> coords_dim[1]) and the last ``gconv_layers_t`` exist but are
never used in the forward pass, so they get no gradient (at the default size 93,315 parameters of
``full`` and 93,893 of ``cag`` are inert). The ``cag`` variant is built by
the same code with the same switches, so it has the same inert blocks (its ``gconv_output_t`` is
hid -> 5 because its main stream works in 5 channels).

Everything else follows the released code, including the fixed dropouts (0.1 in the graph
layers and on the attention weights; ``dropout`` is the attention-block residual dropout), the
construction order (a seed gives the weights the released constructor would), and the deep-copied
prototypes (all attention layers of both streams start identical, as do all GraphNets of a stream).
Graph operators are computed once and kept as non-persistent buffers, so a released ``state_dict``
loads key for key (the released ``mask`` argument is dropped: the released code only passes an
all-True mask).

This is the readable model (batch-major ``(B, N, C)``); :mod:`harness.models.fast` runs the same
parameters faster.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from harness.models.graph import ChebConv, GraphConv, cheb_operator
from harness.models.lifter import GraAttenLayer, GraphNet, MultiHeadedAttention

__all__ = ["GCNDiff", "ResChebGCDiff", "TimestepEmbedding", "get_timestep_embedding"]


def _timestep_frequencies(embedding_dim: int) -> torch.Tensor:
    half_dim = embedding_dim // 2
    scale = math.log(10000) / (half_dim - 1)
    return torch.exp(torch.arange(half_dim, dtype=torch.float32) * -scale)


def get_timestep_embedding(timesteps: torch.Tensor, embedding_dim: int,
                           freqs: torch.Tensor | None = None) -> torch.Tensor:
    """DDPM sinusoidal embedding ``[sin(t f), cos(t f)]``, ``f_i = 10000^(-i/(half-1))``; zero
    padded to an odd ``embedding_dim``. ``timesteps`` is ``(B,)``."""
    if timesteps.dim() != 1:
        raise ValueError(f"timesteps must be 1-D (B,), got shape {tuple(timesteps.shape)}")
    if freqs is None:
        freqs = _timestep_frequencies(embedding_dim).to(timesteps.device)
    emb = timesteps.to(freqs.dtype)[:, None] * freqs[None, :]
    emb = torch.cat((torch.sin(emb), torch.cos(emb)), dim=1)
    if embedding_dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


class TimestepEmbedding(nn.Module):
    """Released ``temb``: sinusoidal(``hid_dim``) -> ``dense[0]`` -> swish -> ``dense[1]``."""

    def __init__(self, hid_dim: int, emd_dim: int):
        super().__init__()
        self.hid_dim = hid_dim
        self.dense = nn.ModuleList([nn.Linear(hid_dim, emd_dim), nn.Linear(emd_dim, emd_dim)])
        self.register_buffer("freqs", _timestep_frequencies(hid_dim), persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = get_timestep_embedding(t, self.hid_dim, self.freqs)
        return self.dense[1](F.silu(self.dense[0](emb)))


class ResChebGCDiff(nn.Module):
    """Released ``_ResChebGC_diff``: ``x + gconv2(gconv1(x) + temb_proj(swish(temb)))``.

    ``forward`` takes the time embedding already passed through swish (``temb_act``): it is the
    same for every layer, so the model computes it once.
    """

    def __init__(self, input_dim: int, output_dim: int, emd_dim: int, hid_dim: int, p_dropout: float | None):
        super().__init__()
        self.gconv1 = GraphConv(input_dim, hid_dim, p_dropout)
        self.gconv2 = GraphConv(hid_dim, output_dim, p_dropout)
        self.temb_proj = nn.Linear(emd_dim, hid_dim)

    def forward(self, x: torch.Tensor, temb_act: torch.Tensor, cheb: torch.Tensor) -> torch.Tensor:
        out = self.gconv1(x, cheb) + self.temb_proj(temb_act)[:, None, :]
        return x + self.gconv2(out, cheb)


class GCNDiff(nn.Module):
    """Cross-joint GCN denoiser with optional CCE and CAG (see the module docstring).

    Args:
        adj: ``(J, J)`` normalised skeleton adjacency (the baseline graph, and the graph of the
            guidance stream's input conv).
        cce, cag: switch the cross-channel embedding / context attention guidance on.
        adj_cross: ``(2J, 2J)`` normalised cross-channel adjacency; required when ``cce``.

    ``forward(x (B, J, 5) noisy [u,v,x,y,z], t (B,) timesteps, pose_2d (B, J, 2) clean 2D or None)
    -> (B, J, 5)`` predicted noise. ``pose_2d`` is required with ``cag`` and ignored without.
    """

    def __init__(self, adj: torch.Tensor, hid_dim: int = 96, num_layers: int = 5, n_head: int = 4,
                 dropout: float = 0.25, cce: bool = False, cag: bool = False,
                 adj_cross: torch.Tensor | None = None):
        super().__init__()
        j = adj.shape[0]
        if tuple(adj.shape) != (j, j):
            raise ValueError(f"adj must be square, got {tuple(adj.shape)}")
        if cce and (adj_cross is None or tuple(adj_cross.shape) != (2 * j, 2 * j)):
            raise ValueError(f"cce needs adj_cross of shape ({2 * j}, {2 * j})")
        self.num_joints = j
        self.cce, self.cag = bool(cce), bool(cag)
        self.hid_dim = hid_dim
        self.emd_dim = hid_dim * 4
        self.n_layers = num_layers
        n_nodes = 2 * j if cce else j
        self.coords_dim = (3, 3) if cce else (5, 5)

        self.register_buffer("cheb", cheb_operator(adj_cross if cce else adj, K=2), persistent=False)
        if cag:
            self.register_buffer("cheb_ctx", cheb_operator(adj, K=2), persistent=False)

        # Main stream, in the released construction order.
        self.gconv_input = ChebConv(self.coords_dim[0], hid_dim, K=2)
        attn = MultiHeadedAttention(n_head, hid_dim)
        gcn = GraphNet(in_features=hid_dim, out_features=hid_dim, n_pts=n_nodes)
        self.gconv_layers, self.atten_layers = self._stream(attn, gcn, num_layers, dropout)
        self.gconv_output = ChebConv(hid_dim, self.coords_dim[1], K=2)

        if cag:  # guidance stream; its attention layers are copies of the same prototype
            self.gconv_input_t = ChebConv(2, hid_dim, K=2)
            gcn_t = GraphNet(in_features=hid_dim, out_features=hid_dim, n_pts=n_nodes)
            self.gconv_layers_t, self.atten_layers_t = self._stream(attn, gcn_t, num_layers, dropout)
            self.gconv_output_t = ChebConv(hid_dim, self.coords_dim[1], K=2)  # unused, as released

        if cce:
            self.fc1 = nn.Linear(2, 3)
            self.fc2 = nn.Linear(6, 5)
        if cce and cag:
            self.fc3 = nn.Linear(j, 2 * j)

        self.temb = TimestepEmbedding(hid_dim, self.emd_dim)

    def _stream(self, attn, gcn, num_layers, dropout):
        gconv_layers, atten_layers = [], []
        for _ in range(num_layers):
            gconv_layers.append(ResChebGCDiff(self.hid_dim, self.hid_dim, self.emd_dim, self.hid_dim, p_dropout=0.1))
            atten_layers.append(GraAttenLayer(self.hid_dim, copy.deepcopy(attn), copy.deepcopy(gcn), dropout))
        return nn.ModuleList(gconv_layers), nn.ModuleList(atten_layers)

    @property
    def variant(self) -> str:
        return {(False, False): "baseline", (True, False): "cce",
                (False, True): "cag", (True, True): "full"}[(self.cce, self.cag)]

    def check_inputs(self, x: torch.Tensor, pose_2d: torch.Tensor | None) -> None:
        """Raise ``ValueError`` unless ``x`` is ``(B, J, 5)`` and, with CAG, ``pose_2d`` is given."""
        j = self.num_joints
        if x.dim() != 3 or x.shape[1] != j or x.shape[2] != 5:
            raise ValueError(f"x must be (B, {j}, 5), got {tuple(x.shape)}")
        if self.cag and pose_2d is None:
            raise ValueError(f"variant {self.variant!r} needs pose_2d (B, {j}, 2)")

    def forward(self, x: torch.Tensor, t: torch.Tensor, pose_2d: torch.Tensor | None = None) -> torch.Tensor:
        self.check_inputs(x, pose_2d)
        j = self.num_joints
        temb_act = F.silu(self.temb(t))        # swish(temb): the same in every layer
        if self.cce:  # nodes 0..J-1: fc1(u, v); nodes J..2J-1: (x, y, z)
            x = torch.cat((self.fc1(x[..., :2]), x[..., 2:]), dim=1)         # (B, 2J, 3)
        out = self.gconv_input(x, self.cheb)
        if self.cag:
            guide = self.gconv_input_t(pose_2d, self.cheb_ctx)
            if self.cce:  # fc3 over the node axis, J -> 2J
                guide = self.fc3(guide.transpose(1, 2)).transpose(1, 2)
            out = out + guide
        for i in range(self.n_layers):
            out = self.atten_layers[i](out)
            if self.cag:
                guide = self.atten_layers_t[i](guide)
                out = out + guide
                guide = guide + out
            out = self.gconv_layers[i](out, temb_act, self.cheb)
            if self.cag and i < self.n_layers - 1:  # the last guide graph layer is unused, as released
                guide = self.gconv_layers_t[i](guide, temb_act, self.cheb)
        out = self.gconv_output(out, self.cheb)
        if self.cce:  # read out: each joint's 2D-node and 3D-node outputs side by side -> 5
            out = self.fc2(torch.cat((out[:, :j], out[:, j:]), dim=-1))
        return out
