"""Skeleton graphs and the Chebyshev graph convolution shared by the lifter and the denoisers.

Graph construction follows the released code of GraFormer (``network/ChebConv.py``) and DiffPose
(``models/ChebConv.py``), which is also what the cross-channel paper's code uses
(``models/backbone/ChebConv.py`` of jjkislele/monoMotionDiff):

* :func:`adj_mx_from_edges`: the binary adjacency of the (undirected) edge list plus self loops,
  row-normalised, ``adj = D^-1 (A + I)``, as a dense float tensor: the ``adj`` the released
  models carry around.
* :func:`cheb_polynomials`: what the released ``ChebConv.forward`` recomputes on every call from
  that ``adj``: the symmetrically normalised Laplacian ``L = I - D^-1/2 adj D^-1/2`` (``D`` the
  row sums of ``adj``, which the row normalisation makes all ones, so ``L = I - adj``) and its
  Chebyshev polynomials ``T_0 = I, T_1 = L, T_k = 2 L T_{k-1} - T_{k-2}``, stacked ``(K+1, N, N)``.
  Here it is computed once, in float64, and the models keep it (as :func:`cheb_operator`, in
  float32) as a non-persistent buffer.

Note on "normalisation": the released ``adj`` is *row*-normalised; the symmetric normalisation
happens in the Laplacian above. Both steps are reproduced exactly.

The graph layers take their operator as an argument (the released ones take ``adj``), so a model
computes it once (a non-persistent buffer) and every layer shares it. Tensors are batch-major,
``(B, N, C)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import init

from harness.skeleton import H36M_PARENTS, h36m_edges

__all__ = [
    "ChebConv",
    "adj_mx_from_edges",
    "cheb_operator",
    "cheb_polynomials",
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


def h36m_adjacency(parents: Sequence[int] = H36M_PARENTS) -> torch.Tensor:
    """The skeleton graph of ``parents`` (``adj_mx_from_edges`` of its bones): by default Human3.6M's
    17 joints and 16 bones (16 joints and 15 bones for :data:`~harness.skeleton.SH16_PARENTS`)."""
    return adj_mx_from_edges(len(parents), h36m_edges(tuple(parents)))


def cross_channel_edges(parents: Sequence[int] = H36M_PARENTS) -> list[tuple[int, int]]:
    """Edges of the cross-channel (CCE) graph on ``2J`` nodes: nodes ``0..J-1`` carry the 2D
    projections, ``J..2J-1`` the 3D coordinates. The skeleton within each half, plus every joint's
    2D node linked to its 3D node: ``2 * (J-1) + J`` edges (49 for H36M's 17 joints, 46 for 16), as
    released."""
    bones = h36m_edges(tuple(parents))
    j = len(parents)
    return (list(bones)
            + [(i, i + j) for i in range(j)]
            + [(c + j, p + j) for c, p in bones])


def cross_channel_adjacency(parents: Sequence[int] = H36M_PARENTS) -> torch.Tensor:
    """``(2J, 2J)`` normalised adjacency of :func:`cross_channel_edges` (34 nodes for H36M, 32 for
    the 16-joint layout)."""
    return adj_mx_from_edges(2 * len(parents), cross_channel_edges(parents))


# --- graph layers --------------------------------------------------------------------------------

class ChebConv(nn.Module):
    """Chebyshev graph convolution (released ``ChebConv``, ``K = 2`` in every model)::

        out = sum_{k=0}^{K} T_k X W_k + b

    ``T_k`` the polynomials of :func:`cheb_polynomials`. Parameters keep the released names and
    shapes: ``weight (K+1, 1, in_c, out_c)`` (xavier-normal), ``bias (1, 1, out_c)`` (zeros).

    ``forward(x (B, N, in_c), op (N*(K+1), N)) -> (B, N, out_c)``, ``op`` from
    :func:`cheb_operator` (the released code rebuilds the polynomials from ``adj`` on every call;
    they are the same numbers up to float32 rounding).
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
        n = op.shape[1]
        polys = op.view(n, self.K + 1, n).transpose(0, 1).unsqueeze(1)   # (K+1, 1, N, N)
        out = torch.matmul(torch.matmul(polys, x), self.weight).sum(dim=0)  # (K+1, B, N, D) -> sum_k
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"in_c={self.in_c}, out_c={self.out_c}, K={self.K}"


class GraphConv(nn.Module):
    """Released ``_GraphConv``: ``dropout(relu(ChebConv(x)))`` (``K = 2``; the released extra ReLU
    after the dropout is a no-op on non-negative values and is left out)."""

    def __init__(self, input_dim: int, output_dim: int, p_dropout: float | None = None):
        super().__init__()
        self.gconv = ChebConv(input_dim, output_dim, K=2)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(p_dropout) if p_dropout is not None else None

    def forward(self, x: torch.Tensor, op: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.gconv(x, op))
        return self.dropout(x) if self.dropout is not None else x


class ResChebGC(nn.Module):
    """Released ``_ResChebGC``: ``x + gconv2(gconv1(x))``, two :class:`GraphConv`."""

    def __init__(self, input_dim: int, output_dim: int, hid_dim: int, p_dropout: float | None):
        super().__init__()
        self.gconv1 = GraphConv(input_dim, hid_dim, p_dropout)
        self.gconv2 = GraphConv(hid_dim, output_dim, p_dropout)

    def forward(self, x: torch.Tensor, op: torch.Tensor) -> torch.Tensor:
        return x + self.gconv2(self.gconv1(x, op), op)
