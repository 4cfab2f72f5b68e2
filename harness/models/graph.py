"""Skeleton graphs and the Chebyshev graph convolution shared by the lifter and the denoisers.

Graph construction follows the released code of GraFormer (``network/ChebConv.py``) and DiffPose
(``models/ChebConv.py``), which is also what the cross-channel paper's code uses
(``models/backbone/ChebConv.py`` of jjkislele/monoMotionDiff):

* :func:`adj_mx_from_edges`: the binary adjacency of the (undirected) edge list, plus self loops,
  row-normalised (``D^-1 (A + I)``), as a dense float tensor. This is the ``adj`` the released
  models carry around.
* :func:`cheb_polynomials`: what the released ``ChebConv.forward`` recomputes on every call from
  that ``adj``: the symmetrically normalised Laplacian ``L = I - D^-1/2 adj D^-1/2`` (``D`` the
  row sums of ``adj``, which the row normalisation makes all ones, so ``L = I - adj``) and its
  Chebyshev polynomials ``T_0 = I, T_1 = L, T_k = 2 L T_{k-1} - T_{k-2}``, stacked ``(K+1, N, N)``.
  Here it is computed once, in float64, and the models keep it (as :func:`cheb_operator`, in
  float32) as a non-persistent buffer.

Note on "normalisation": the released ``adj`` is *row*-normalised; the symmetric normalisation
happens in the Laplacian above. Both steps are reproduced exactly.

The graph layers take their operators as arguments (the released ones take ``adj``), so a model
computes its operators once (non-persistent buffers) and every layer shares them. Two entry points:

* ``forward(x (B, N, C), op)`` with ``op`` from :func:`cheb_operator`: the batch-major API (one
  batched matmul of the operator broadcast with a stride-0 ``expand``, then one GEMM);
* ``forward_nm(x (N*B, C), g)``: the node-major fast path the models use (see
  :mod:`harness.models.ops`), with ``g`` the stacked polynomials of :func:`cheb_stacks`
  (``T_0 = I`` needs no product).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import init

from harness.models import ops
from harness.skeleton import H36M_PARENTS, h36m_edges

__all__ = [
    "ChebConv",
    "adj_mx_from_edges",
    "cheb_operator",
    "cheb_polynomials",
    "cheb_stacks",
    "cheb_stack_buffers",
    "register_cheb_stacks",
    "cross_channel_adjacency",
    "cross_channel_edges",
    "h36m_adjacency",
    "num_undirected_edges",
    "GraphConv",
    "ResChebGC",
]


# --- graphs --------------------------------------------------------------------------------------

def _binary_adjacency(num_pts: int, edges: Iterable[Sequence[int]]) -> np.ndarray:
    a = np.zeros((num_pts, num_pts), dtype=np.float64)
    for e in edges:
        i, j = int(e[0]), int(e[1])
        if not (0 <= i < num_pts and 0 <= j < num_pts):
            raise ValueError(f"edge ({i}, {j}) out of range for a graph of {num_pts} nodes")
        a[i, j] = a[j, i] = 1.0
    return a


def adj_mx_from_edges(num_pts: int, edges: Iterable[Sequence[int]],
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Dense ``(num_pts, num_pts)`` adjacency as released: symmetric binary edges + self loops,
    row-normalised. Edge direction and duplicates do not matter."""
    a = _binary_adjacency(num_pts, edges) + np.eye(num_pts)
    a = a / a.sum(axis=1, keepdims=True)
    return torch.tensor(a, dtype=dtype)


def num_undirected_edges(adj: torch.Tensor) -> int:
    """Number of distinct undirected edges (self loops excluded) in an adjacency matrix."""
    nz = (adj != 0).to(torch.int64)
    nz.fill_diagonal_(0)
    return int(torch.triu(nz | nz.T, diagonal=1).sum())


def cheb_polynomials(adj: torch.Tensor, K: int = 2, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(K+1, N, N)`` Chebyshev polynomials of the normalised Laplacian of ``adj`` (see module doc).

    Same math as the released ``ChebConv.get_laplacian(normalize=True)`` + ``cheb_polynomial``,
    done once in float64.
    """
    a = adj.detach().to(torch.float64)
    n = a.shape[0]
    if a.shape != (n, n):
        raise ValueError(f"adjacency must be square, got {tuple(adj.shape)}")
    d = torch.diag(a.sum(dim=-1) ** -0.5)
    eye = torch.eye(n, dtype=torch.float64)
    lap = eye - d @ a @ d
    terms = [eye]
    if K >= 1:
        terms.append(lap)
    for _ in range(2, K + 1):
        terms.append(2.0 * lap @ terms[-1] - terms[-2])
    return torch.stack(terms).to(dtype)


def cheb_operator(adj: torch.Tensor, K: int = 2, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The operator :class:`ChebConv` takes: :func:`cheb_polynomials` stacked node-major, shape
    ``(N*(K+1), N)``, row ``n*(K+1) + k`` being row ``n`` of ``T_k``."""
    polys = cheb_polynomials(adj, K=K, dtype=torch.float64)
    k1, n, _ = polys.shape
    return polys.transpose(0, 1).reshape(n * k1, n).to(dtype).contiguous()


def cheb_stacks(adj: torch.Tensor, dtype: torch.dtype = torch.float32
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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


def cheb_stack_buffers(module: nn.Module, prefix: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (getattr(module, f"{prefix}_t12"), getattr(module, f"{prefix}_t12_h"), getattr(module, f"{prefix}_t12t"))


def h36m_adjacency(parents: Sequence[int] = H36M_PARENTS) -> torch.Tensor:
    """The 17-joint Human3.6M skeleton graph (``adj_mx_from_edges`` of its 16 bones)."""
    return adj_mx_from_edges(len(parents), h36m_edges(tuple(parents)))


def cross_channel_edges(parents: Sequence[int] = H36M_PARENTS) -> list[tuple[int, int]]:
    """Edges of the cross-channel (CCE) graph on ``2J`` nodes: nodes ``0..J-1`` carry the 2D
    projections, ``J..2J-1`` the 3D coordinates. The skeleton within each half, plus every joint's
    2D node linked to its 3D node: ``2 * (J-1) + J`` edges (49 for H36M), as released."""
    bones = h36m_edges(tuple(parents))
    j = len(parents)
    return (list(bones)
            + [(i, i + j) for i in range(j)]
            + [(c + j, p + j) for c, p in bones])


def cross_channel_adjacency(parents: Sequence[int] = H36M_PARENTS) -> torch.Tensor:
    """``(2J, 2J)`` normalised adjacency of :func:`cross_channel_edges` (34 nodes for H36M)."""
    return adj_mx_from_edges(2 * len(parents), cross_channel_edges(parents))


# --- graph layers --------------------------------------------------------------------------------

class ChebConv(nn.Module):
    """Chebyshev graph convolution ``out = sum_k T_k X W_k + b`` (released ``ChebConv``).

    Parameters keep the released names and shapes (``weight (K+1, 1, in_c, out_c)``, xavier-normal;
    ``bias (1, 1, out_c)``, zeros). ``forward(x (B, N, in_c), op (N*(K+1), N)) -> (B, N, out_c)``,
    where ``op`` comes from :func:`cheb_operator`.
    """

    def __init__(self, in_c: int, out_c: int, K: int = 2, bias: bool = True):
        super().__init__()
        self.in_c, self.out_c, self.K = in_c, out_c, K
        self.weight = nn.Parameter(torch.empty(K + 1, 1, in_c, out_c))
        init.xavier_normal_(self.weight)
        if bias:
            self.bias = nn.Parameter(torch.zeros(1, 1, out_c))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor, op: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        k1 = self.K + 1
        # (B, N*(K+1), C) == (B, N, (K+1)*C): every polynomial applied to every sample in one bmm.
        h = torch.bmm(op.expand(b, n * k1, n), x).view(b * n, k1 * c)
        w = self.weight.view(k1 * c, self.out_c)
        out = h @ w if self.bias is None else torch.addmm(self.bias.view(1, -1), h, w)
        return out.view(b, n, self.out_c)

    def forward_nm(self, x: torch.Tensor, g: tuple) -> torch.Tensor:
        """Node-major ``x`` ``(N*B, in_c)`` -> ``(N*B, out_c)``; ``g`` from :func:`cheb_stacks`."""
        if self.K != 2 or self.bias is None:
            raise NotImplementedError("the node-major path implements K = 2 with a bias (as released)")
        return ops.cheb_conv(x, g, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_c={self.in_c}, out_c={self.out_c}, K={self.K}"


class GraphConv(nn.Module):
    """Released ``_GraphConv``: ``ChebConv`` (K=2) -> ReLU -> dropout (the released extra ReLU after
    the dropout is a no-op on non-negative values and is folded away)."""

    def __init__(self, input_dim: int, output_dim: int, p_dropout: float | None = None):
        super().__init__()
        self.gconv = ChebConv(input_dim, output_dim, K=2)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(p_dropout) if p_dropout is not None else None

    def forward(self, x: torch.Tensor, op: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.gconv(x, op))
        return self.dropout(x) if self.dropout is not None else x

    def forward_nm(self, x: torch.Tensor, g: tuple) -> torch.Tensor:
        """Node-major: ChebConv, ReLU and dropout fused (:func:`harness.models.ops.cheb_conv`)."""
        p = self.dropout.p if self.dropout is not None else 0.0
        return ops.cheb_conv(x, g, self.gconv.weight, self.gconv.bias, relu=True,
                             p_drop=p, training=self.training)


class ResChebGC(nn.Module):
    """Released ``_ResChebGC``: ``x + gconv2(gconv1(x))``, two :class:`GraphConv`."""

    def __init__(self, input_dim: int, output_dim: int, hid_dim: int, p_dropout: float | None):
        super().__init__()
        self.gconv1 = GraphConv(input_dim, hid_dim, p_dropout)
        self.gconv2 = GraphConv(hid_dim, output_dim, p_dropout)

    def forward(self, x: torch.Tensor, op: torch.Tensor) -> torch.Tensor:
        return x + self.gconv2(self.gconv1(x, op), op)

    def forward_nm(self, x: torch.Tensor, g: tuple) -> torch.Tensor:
        return x + self.gconv2.forward_nm(self.gconv1.forward_nm(x, g), g)
