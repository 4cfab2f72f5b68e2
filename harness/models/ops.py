"""Fast-path kernels shared by the lifter and the denoisers, on the node-major layout.

Layout. Inside the models a batch of graph features lives *node-major*: a ``(N, B, C)`` tensor,
stored as the 2-D ``(N*B, C)`` matrix whose row ``n*B + b`` is node ``n`` of sample ``b``. Then

* a per-node linear map (``nn.Linear``, the Chebyshev weights) is one GEMM over all ``N*B`` rows;
* a graph product ``T @ X`` (``T`` an ``(M, N)`` graph operator) is *one* GEMM,
  ``T (M, N) @ X.view(N, B*C)``, whose result is again node-major: no per-sample batched matmul,
  no broadcast copies of the adjacency, no transposes;
* attention needs its ``(B, heads, N, d)`` views, which are strided views of the same storage.

Exactness. Every function here computes the released model's function; only the association of
sums and the order of float operations differ (so float32 results agree to rounding). In
particular a Chebyshev convolution ``sum_k T_k X W_k`` uses ``T_0 = I`` (its product is ``X``
itself, so it is skipped) and evaluates ``T_1 X`` and ``T_2 X`` in one GEMM with the stacked
``(2N, N)`` operator.

Dropout. Masks are exact inverted dropout (drop with probability ``p``, scale the kept values by
``1 / (1 - p)``). On the CPU the random bits come from NumPy's SFC64 bit generator seeded from
``torch``'s global generator (one 64-bit draw per mask), which is ~20x faster than
``torch.bernoulli_`` there and keeps ``torch.manual_seed`` determinism; each element's decision
uses one random byte plus, in the 1-in-256 case where that byte equals ``floor(256 p)``, 32 more
bits, so the drop probability is ``p`` to within ``2**-40``. On other devices, and while
``torch.compile`` traces, masks come from ``torch.rand`` (which compiled code fuses). Where the
mask is applied is exactly where the released code applies ``nn.Dropout``.

Autograd. The heavy blocks (Chebyshev convolution + ReLU + dropout, the released LayerNorm)
are ``torch.autograd.Function`` s with hand-written backward passes that reuse the forward's
saved tensors and fold scalar factors into small weight matrices, so the backward costs a few
large GEMMs and few memory passes. Under ``torch.compile`` or autocast the same math runs as plain
differentiable torch ops instead (compiled code fuses them itself; autocast picks the dtypes).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "attention",
    "cheb_conv",
    "dropout_mask",
    "layer_norm",
    "residual_dropout",
]


# --- switches ------------------------------------------------------------------------------------

def _compiling() -> bool:
    return bool(torch.compiler.is_compiling())


def _grad_needed(*ts: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)


# --- dropout masks -------------------------------------------------------------------------------

def _cpu_keep_scale(numel: int, p: float, scale: float) -> np.ndarray:
    """float32 ``(numel,)``: ``scale`` where kept, 0 where dropped; P(drop) = p (to 2**-40)."""
    seed = int(torch.randint(0, 2 ** 62, (), dtype=torch.int64))  # draws from torch's generator
    bits = np.random.SFC64(seed)
    raw = bits.random_raw((numel + 7) // 8).view(np.uint8)[:numel]
    q = p * 256.0
    lo = int(math.floor(q))
    mask = np.multiply(raw >= lo, np.float32(scale), dtype=np.float32)
    frac = q - lo
    if frac > 0.0:  # byte == lo: drop iff 32 more random bits fall below frac * 2**32
        tie = np.flatnonzero(raw == lo)
        if tie.size:
            extra = bits.random_raw(tie.size) >> np.uint64(32)
            thr = np.uint64(min(int(round(frac * 2.0 ** 32)), 2 ** 32))
            mask[tie] = np.where(extra < thr, np.float32(0.0), np.float32(scale))
    return mask


def dropout_mask(shape, p: float, like: torch.Tensor) -> torch.Tensor:
    """Inverted-dropout multiplier of ``shape``: ``1/(1-p)`` (kept) or 0 (dropped), in ``like``'s
    dtype and device. ``p`` must be in (0, 1)."""
    scale = 1.0 / (1.0 - p)
    if like.device.type == "cpu" and not _compiling():
        numel = math.prod(shape)
        m = torch.from_numpy(_cpu_keep_scale(numel, p, scale)).view(shape)
        return m if like.dtype == torch.float32 else m.to(like.dtype)
    keep = torch.rand(shape, device=like.device) >= p
    return keep.to(like.dtype) * scale


def _mask_for(module_p: float, training: bool, shape, like: torch.Tensor) -> torch.Tensor | None:
    if not training or module_p <= 0.0:
        return None
    if module_p >= 1.0:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    return dropout_mask(shape, module_p, like)


def residual_dropout(x: torch.Tensor, y: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``x + dropout(y)`` (released ``SublayerConnection``'s residual)."""
    m = _mask_for(p, training, y.shape, y)
    return x + y if m is None else torch.addcmul(x, y, m)


# --- released LayerNorm --------------------------------------------------------------------------

class _LayerNormFn(torch.autograd.Function):
    """``a * (x - mean) / (std + eps) + b`` with the unbiased std, rows of a 2-D ``x``."""

    @staticmethod
    def forward(ctx, x, a, b, eps):
        c = x.shape[-1]
        # mean and 1/sqrt(biased var) from the fused native kernel (the tiny eps only guards
        # constant rows); the released normaliser 1 / (std_unbiased + eps) is a per-row rescale
        xhat, mean, rstd = torch.native_layer_norm(x, [c], None, None, 1e-30)
        std = rstd.reciprocal().mul_(math.sqrt(c / (c - 1.0)))
        r = (std + eps).reciprocal_()
        xhat.mul_((r * rstd.reciprocal()).to(xhat.dtype))
        y = torch.addcmul(b, xhat, a)
        ctx.save_for_backward(xhat, r, std, a)
        return y

    @staticmethod
    def backward(ctx, g):
        xhat, r, std, a = ctx.saved_tensors
        c = xhat.shape[-1]
        gx = g * xhat
        grad_a = gx.sum(0) if ctx.needs_input_grad[1] else None
        grad_b = g.sum(0) if ctx.needs_input_grad[2] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            s_h = torch.mv(g, a).unsqueeze_(1)      # sum_j g_j a_j
            s_hx = torch.mv(gx, a).unsqueeze_(1)    # sum_j g_j a_j xhat_j
            # d/dx of a (x - m) r + b, r = 1 / (std + eps):
            #   r (h - mean(h)) - xhat * sum(h xhat) / ((C - 1) std),   h = g a
            k = s_hx.div_(std.clamp_min(1e-30).mul(c - 1.0)).neg_()
            grad_x = torch.addcmul((r * s_h).mul_(-1.0 / c), g * a, r)
            grad_x.addcmul_(xhat, k)
        return grad_x, grad_a, grad_b, None


def layer_norm(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    """Released LayerNorm over the last dim of ``x`` (any leading shape)."""
    if not _compiling() and x.is_contiguous():
        shape = x.shape
        if a.dtype != x.dtype:  # autocast: normalise in the activations' dtype
            a, b = a.to(x.dtype), b.to(x.dtype)
        with torch.autocast(x.device.type, enabled=False):
            return _LayerNormFn.apply(x.view(-1, shape[-1]), a, b, eps).view(shape)
    std, mean = torch.std_mean(x, dim=-1, keepdim=True)
    return a * (x - mean) / (std + eps) + b


# --- Chebyshev graph convolution -----------------------------------------------------------------

class _ChebHidFn(torch.autograd.Function):
    """``relu(X W_0 + (T_1 X) W_1 + (T_2 X) W_2 + b) * mask`` on node-major ``X`` ``(N*B, C)``;
    ``t12`` is ``[T_1; T_2]`` ``(2N, N)``, ``mask`` an inverted-dropout multiplier (or None)
    whose kept value is ``scale``."""

    @staticmethod
    def forward(ctx, x, t12, weight, bias, mask, scale):
        n = t12.shape[1]
        rows, c = x.shape
        d = weight.shape[-1]
        w = weight.view(3, c, d)
        z = torch.mm(t12, x.view(n, -1)).view(2, rows, c)
        y = torch.addmm(bias.view(1, d), x, w[0])
        y.addmm_(z[0], w[1])
        y.addmm_(z[1], w[2])
        y.relu_()
        if mask is not None:
            y.mul_(mask)
        ctx.scale = scale
        ctx.save_for_backward(x, z, t12, weight, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, z, t12, weight, y = ctx.saved_tensors
        n = t12.shape[1]
        rows, c = x.shape
        d = weight.shape[-1]
        s = ctx.scale
        # y > 0 exactly where the ReLU passed and the element was kept; the kept elements'
        # factor ``s`` is folded into the (small) weight matrices and the weight gradients
        g = torch.ops.aten.threshold_backward(gy, y, 0)
        w = weight.view(3, c, d) * s if s != 1.0 else weight.view(3, c, d)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[2]:
            grad_w = torch.empty_like(weight)
            gw = grad_w.view(3, c, d)
            torch.mm(x.t(), g, out=gw[0])
            torch.mm(z[0].t(), g, out=gw[1])
            torch.mm(z[1].t(), g, out=gw[2])
            if s != 1.0:
                grad_w.mul_(s)
        if ctx.needs_input_grad[3]:
            grad_b = g.sum(0).view(1, 1, d)
            if s != 1.0:
                grad_b.mul_(s)
        if ctx.needs_input_grad[0]:
            gz = torch.empty((2, rows, c), dtype=g.dtype, device=g.device)
            torch.mm(g, w[1].t(), out=gz[0])
            torch.mm(g, w[2].t(), out=gz[1])
            grad_x = torch.mm(g, w[0].t())
            grad_x.view(n, -1).addmm_(t12.t(), gz.view(2 * n, -1))
        return grad_x, None, grad_w, grad_b, None, None


def _cheb_small_in(x, t12, weight, bias, n):
    """Few input channels: ``[X, T_1 X, T_2 X] @ W`` as one GEMM over the concatenated features."""
    rows, c = x.shape
    d = weight.shape[-1]
    z = torch.mm(t12, x.view(n, -1)).view(2, n, -1, c)
    feats = torch.cat((x.view(1, n, -1, c), z), dim=0).permute(1, 2, 0, 3).reshape(rows, 3 * c)
    return torch.addmm(bias.view(1, d), feats, weight.view(3 * c, d))


def _cheb_small_out(x, t12_h, weight, bias, n):
    """Few output channels: ``X W_0 + [T_1 | T_2] @ [X W_1; X W_2]`` (weights first)."""
    rows, c = x.shape
    d = weight.shape[-1]
    xw = torch.mm(x, weight.view(3, c, d).permute(1, 0, 2).reshape(c, 3 * d))   # (N*B, 3D)
    xw = xw.view(n, -1, 3, d).permute(2, 0, 1, 3)                                # (3, N, B, D)
    y = torch.addmm(xw[0].reshape(n, -1), t12_h, xw[1:].reshape(2 * n, -1))       # (N, B*D)
    return y.view(rows, d) + bias.view(1, d)


def _cheb_plain(x, t12, weight, bias, n):
    rows, c = x.shape
    d = weight.shape[-1]
    w = weight.view(3, c, d)
    z = torch.mm(t12, x.view(n, -1)).view(2, rows, c)
    return torch.addmm(bias.view(1, d), x, w[0]) + z[0] @ w[1] + z[1] @ w[2]


def _amp_dtype(x: torch.Tensor) -> torch.dtype | None:
    dev = x.device.type
    return torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else None


def cheb_conv(x: torch.Tensor, t12: torch.Tensor, t12_h: torch.Tensor, weight: torch.Tensor,
              bias: torch.Tensor, relu: bool = False, p_drop: float = 0.0,
              training: bool = False) -> torch.Tensor:
    """Chebyshev convolution (K = 2) of node-major ``x`` ``(N*B, C_in)`` -> ``(N*B, C_out)``,
    optionally followed by ReLU and dropout (released ``_GraphConv``: ``relu(dropout(relu(.)))``
    equals ``dropout(relu(.))``). ``t12`` = ``[T_1; T_2]`` ``(2N, N)``, ``t12_h`` = ``[T_1 | T_2]``
    ``(N, 2N)``; ``weight (3, 1, C_in, C_out)``, ``bias (1, 1, C_out)`` as released.

    Hidden-to-hidden convolutions (the bulk of the work) evaluate ``T_1 X, T_2 X`` with one GEMM
    and accumulate three GEMMs against the weights; a convolution from few channels concatenates
    ``[X, T_1 X, T_2 X]`` for one GEMM; one to few channels applies the weights first.
    """
    n = t12.shape[1]
    c, d = weight.shape[-2], weight.shape[-1]
    if c < d and c <= 16:
        y = _cheb_small_in(x, t12.to(x.dtype), weight, bias, n)
    elif d < c and d <= 16:
        y = _cheb_small_out(x, t12_h.to(x.dtype), weight, bias, n)
    elif relu and not _compiling():
        amp = _amp_dtype(x)
        if amp is not None:  # what autocast would do: the GEMMs' operands in the low precision
            x, t12, weight, bias = (v.to(amp) for v in (x, t12, weight, bias))
        mask = _mask_for(p_drop, training, (x.shape[0], d), x)
        scale = 1.0 / (1.0 - p_drop) if mask is not None else 1.0
        with torch.autocast(x.device.type, enabled=False):
            if _grad_needed(x, weight, bias):
                return _ChebHidFn.apply(x, t12, weight, bias, mask, scale)
            with torch.no_grad():
                return _ChebHidFn.forward(_NoCtx(), x, t12, weight, bias, mask, scale)
    else:
        y = _cheb_plain(x, t12.to(x.dtype), weight, bias, n)
    if relu:
        y = torch.relu(y)
    mask = _mask_for(p_drop, training, y.shape, y)
    return y if mask is None else y * mask


class _NoCtx:
    """Stand-in ``ctx`` for calling a Function's forward directly when no graph is recorded."""

    def save_for_backward(self, *args):
        pass


# --- attention -----------------------------------------------------------------------------------

def attention(x: torch.Tensor, n: int, heads: int, w_qkv: torch.Tensor, b_qkv: torch.Tensor,
              w_o: torch.Tensor, b_o: torch.Tensor, p_attn: float, training: bool) -> torch.Tensor:
    """Multi-head self-attention over the ``n`` nodes of node-major ``x`` ``(N*B, C)``.

    ``w_qkv (3C, C)``/``b_qkv`` are the Q, K, V projections stacked with rows ordered
    ``(head, q|k|v, d_k)``, so the projection's output ``(N, B, heads, 3, d_k)`` gives the
    ``(B*heads, N, d_k)`` operands as strided views. With no dropout to apply (eval, or ``p = 0``)
    this is ``F.scaled_dot_product_attention``; in training the weights get their dropout
    (released ``attention(..., dropout)``), so the softmax is explicit there.
    """
    rows, c = x.shape
    b = rows // n
    dk = c // heads
    qkv = torch.addmm(b_qkv, x, w_qkv.t()).view(n, b, heads, 3, dk)
    drop = training and p_attn > 0.0
    if not drop:
        q, k, v = (qkv[:, :, :, i].permute(1, 2, 0, 3) for i in range(3))   # (B, h, N, d_k) views
        o = F.scaled_dot_product_attention(q, k, v)                          # memory (N, B, h, d_k)
        o = o.permute(2, 0, 1, 3).reshape(rows, c)
    else:
        qkv = qkv.view(n, b * heads, 3, dk).transpose(0, 1)                  # (B*h, N, 3, d_k)
        q, k, v = (qkv[:, :, i].contiguous() for i in range(3))
        s = torch.baddbmm(torch.empty((b * heads, n, n), dtype=q.dtype, device=q.device), q,
                          k.transpose(1, 2), beta=0.0, alpha=1.0 / math.sqrt(dk))
        pa = torch.softmax(s, dim=-1)
        pa = pa * _mask_for(p_attn, True, pa.shape, pa)
        o = torch.bmm(pa, v)                                                 # (B*h, N, d_k)
        o = o.view(b, heads, n, dk).permute(2, 0, 1, 3).reshape(rows, c)
    return torch.addmm(b_o, o, w_o.t())
