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
    "graph_mm",
    "linear",
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


# --- GEMMs ---------------------------------------------------------------------------------------
#
# On the CPU, oneDNN's matmul (the ``mkldnn::_linear_pointwise`` op PyTorch ships for its compiled
# CPU code) runs this model's tall-skinny float32 GEMMs (34816 x 96 @ 96 x 96 and the like, and the
# 68 x 34 @ 34 x 98304 graph products) markedly faster than the BLAS behind ``torch.mm``; it has
# no autograd formula, so the fast path uses it inside its own autograd Functions. Anything else
# (CUDA, other dtypes, torch.compile, a build without it) uses ``torch.mm``/``addmm``.

def _probe_dnn():
    try:
        op = torch.ops.mkldnn._linear_pointwise
        a = torch.randn(4, 3)
        w = torch.randn(2, 3)
        if torch.allclose(op(a, w, None, "none", [], ""), a @ w.t(), atol=1e-6):
            return op
    except (AttributeError, RuntimeError):
        pass
    return None


_DNN_LINEAR = _probe_dnn()


def _dnn(t: torch.Tensor) -> bool:
    return (_DNN_LINEAR is not None and t.device.type == "cpu"
            and t.dtype in (torch.float32, torch.bfloat16) and not _compiling())


def _lin(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ w.T + b`` for 2-D ``x (M, K)``, ``w (N, K)`` (no autograd)."""
    if _dnn(x):
        return _DNN_LINEAR(x, w, b, "none", [], "")
    return torch.mm(x, w.t()) if b is None else torch.addmm(b, x, w.t())


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for 2-D ``a (M, K)``, ``b (K, N)`` (no autograd)."""
    if _dnn(a):
        return _DNN_LINEAR(a, b.t(), None, "none", [], "")
    return torch.mm(a, b)


class _LinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return _lin(x, w, b)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        gx = _lin(g, w.t().contiguous()) if ctx.needs_input_grad[0] else None
        gw = torch.mm(g.t(), x) if ctx.needs_input_grad[1] else None
        gb = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` for 2-D ``x`` on the fast GEMM path."""
    if not _dnn(x) or torch.is_autocast_enabled(x.device.type):
        return F.linear(x, w, b)
    if _grad_needed(x, w, b):
        return _LinearFn.apply(x, w, b)
    return _lin(x, w, b)


class _GraphFn(torch.autograd.Function):
    """``T @ X`` for a graph operator ``T (M, N)`` and node-major ``X (N, B*C)``."""

    @staticmethod
    def forward(ctx, t, x):
        ctx.save_for_backward(t, x)
        return _mm(t, x)

    @staticmethod
    def backward(ctx, g):
        t, x = ctx.saved_tensors
        gt = _lin(g, x) if ctx.needs_input_grad[0] else None
        gx = _mm(t.t().contiguous(), g) if ctx.needs_input_grad[1] else None
        return gt, gx


def graph_mm(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``t @ x`` (graph operator times node-major features) on the fast GEMM path."""
    if not _dnn(x) or torch.is_autocast_enabled(x.device.type):
        return torch.mm(t.to(x.dtype), x)
    if _grad_needed(t, x):
        return _GraphFn.apply(t, x)
    return _mm(t, x)


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
    def forward(ctx, x, t12, t12t, weight, bias, mask, scale):
        n = t12.shape[1]
        rows, c = x.shape
        d = weight.shape[-1]
        w = weight.view(3, c, d)
        z = _mm(t12, x.view(n, -1)).view(2, rows, c)
        y = _lin(x, w[0].t().contiguous(), bias.view(d))
        y.addmm_(z[0], w[1])
        y.addmm_(z[1], w[2])
        y.relu_()
        if mask is not None:
            y.mul_(mask)
        ctx.scale = scale
        ctx.t12t = t12t
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
        if ctx.needs_input_grad[3]:
            grad_w = torch.empty_like(weight)
            gw = grad_w.view(3, c, d)
            torch.mm(x.t(), g, out=gw[0])
            torch.mm(z[0].t(), g, out=gw[1])
            torch.mm(z[1].t(), g, out=gw[2])
            if s != 1.0:
                grad_w.mul_(s)
        if ctx.needs_input_grad[4]:
            grad_b = g.sum(0).view(1, 1, d)
            if s != 1.0:
                grad_b.mul_(s)
        if ctx.needs_input_grad[0]:
            # dX = g W_0^T + T_1^T g W_1^T + T_2^T g W_2^T, graph products first (one GEMM)
            gt = _mm(ctx.t12t, g.view(n, -1)).view(2, rows, d)
            grad_x = _lin(g, w[0])
            grad_x.addmm_(gt[0], w[1].t())
            grad_x.addmm_(gt[1], w[2].t())
        return grad_x, None, None, grad_w, grad_b, None, None


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


def cheb_conv(x: torch.Tensor, g: tuple[torch.Tensor, torch.Tensor, torch.Tensor], weight: torch.Tensor,
              bias: torch.Tensor, relu: bool = False, p_drop: float = 0.0,
              training: bool = False) -> torch.Tensor:
    """Chebyshev convolution (K = 2) of node-major ``x`` ``(N*B, C_in)`` -> ``(N*B, C_out)``,
    optionally followed by ReLU and dropout (released ``_GraphConv``: ``relu(dropout(relu(.)))``
    equals ``dropout(relu(.))``). ``g = (t12, t12_h, t12t)`` from
    :func:`harness.models.graph.cheb_stacks`; ``weight (3, 1, C_in, C_out)``,
    ``bias (1, 1, C_out)`` as released.

    Hidden-to-hidden convolutions (the bulk of the work) evaluate ``T_1 X, T_2 X`` with one GEMM
    and accumulate three GEMMs against the weights; a convolution from few channels concatenates
    ``[X, T_1 X, T_2 X]`` for one GEMM; one to few channels applies the weights first.
    """
    t12, t12_h, t12t = g
    n = t12.shape[1]
    c, d = weight.shape[-2], weight.shape[-1]
    if c < d and c <= 16:
        y = _cheb_small_in(x, t12.to(x.dtype), weight, bias, n)
    elif d < c and d <= 16:
        y = _cheb_small_out(x, t12_h.to(x.dtype), weight, bias, n)
    elif relu and not _compiling():
        amp = _amp_dtype(x)
        if amp is not None:  # what autocast would do: the GEMMs' operands in the low precision
            x, t12, t12t, weight, bias = (v.to(amp) for v in (x, t12, t12t, weight, bias))
        mask = _mask_for(p_drop, training, (x.shape[0], d), x)
        scale = 1.0 / (1.0 - p_drop) if mask is not None else 1.0
        with torch.autocast(x.device.type, enabled=False):
            if _grad_needed(x, weight, bias):
                return _ChebHidFn.apply(x, t12, t12t, weight, bias, mask, scale)
            with torch.no_grad():
                return _ChebHidFn.forward(_NoCtx(), x, t12, t12t, weight, bias, mask, scale)
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

class _AttnCoreFn(torch.autograd.Function):
    """Training attention core: ``(softmax(Q K^T / sqrt(d)) * mask) @ V`` for every (sample, head).

    In: the Q/K/V projection's output, node-major ``(N*B, 3C)`` with columns ordered
    ``(head, q|k|v, d)``; out: the heads' outputs node-major ``(N*B, C)`` (columns
    ``(head, d)``). The operands are gathered once into ``(B*h, 3, N, d)`` so every batched matmul
    reads contiguous matrices, and the backward writes dQ, dK, dV straight into one such buffer.
    """

    @staticmethod
    def forward(ctx, qkv, n, heads, mask):
        rows, c3 = qkv.shape
        b, dk = rows // n, c3 // (3 * heads)
        bh = b * heads
        qkv_b = qkv.view(n, b, heads, 3, dk).permute(1, 2, 3, 0, 4).reshape(bh, 3, n, dk)
        q, k, v = qkv_b[:, 0], qkv_b[:, 1], qkv_b[:, 2]
        alpha = 1.0 / math.sqrt(dk)
        s = torch.baddbmm(torch.empty((bh, n, n), dtype=qkv.dtype, device=qkv.device), q,
                          k.transpose(1, 2), beta=0.0, alpha=alpha)
        p = torch.softmax(s, dim=-1)
        del s
        pd = p * mask
        o = torch.bmm(pd, v)                                            # (B*h, N, d)
        ctx.save_for_backward(qkv_b, p, pd)
        ctx.dims = (n, b, heads, dk, alpha)
        return o.view(b, heads, n, dk).permute(2, 0, 1, 3).reshape(rows, heads * dk)

    @staticmethod
    def backward(ctx, go):
        qkv_b, p, pd = ctx.saved_tensors
        n, b, heads, dk, alpha = ctx.dims
        bh = b * heads
        go_b = go.view(n, b, heads, dk).permute(1, 2, 0, 3).reshape(bh, n, dk)
        q, k, v = qkv_b[:, 0], qkv_b[:, 1], qkv_b[:, 2]
        grad = torch.empty_like(qkv_b)
        torch.bmm(pd.transpose(1, 2), go_b, out=grad[:, 2])             # dV = Pd^T dO
        gp = torch.bmm(go_b, v.transpose(1, 2))                         # d(P * mask)
        # softmax backward through the mask:  dS = Pd * G - P * rowsum(Pd * G)
        gp.mul_(pd)
        r = gp.sum(-1, keepdim=True)
        gp.addcmul_(p, r, value=-1.0)
        torch.baddbmm(grad[:, 0], gp, k, beta=0.0, alpha=alpha, out=grad[:, 0])                # dQ
        torch.baddbmm(grad[:, 1], gp.transpose(1, 2), q, beta=0.0, alpha=alpha, out=grad[:, 1])  # dK
        gq = grad.view(b, heads, 3, n, dk).permute(3, 0, 1, 2, 4).reshape(n * b, 3 * heads * dk)
        return gq, None, None, None


def attention(x: torch.Tensor, n: int, heads: int, w_qkv: torch.Tensor, b_qkv: torch.Tensor,
              w_o: torch.Tensor, b_o: torch.Tensor, p_attn: float, training: bool) -> torch.Tensor:
    """Multi-head self-attention over the ``n`` nodes of node-major ``x`` ``(N*B, C)``.

    ``w_qkv (3C, C)``/``b_qkv`` are the Q, K, V projections stacked with rows ordered
    ``(head, q|k|v, d_k)`` (one GEMM). With no dropout to apply (evaluation, or ``p = 0``) the
    core is ``F.scaled_dot_product_attention`` on strided views; in training the attention
    weights get their dropout (released ``attention(..., dropout)``), with a hand-written
    backward (:class:`_AttnCoreFn`).
    """
    rows, c = x.shape
    b = rows // n
    dk = c // heads
    qkv = linear(x, w_qkv, b_qkv)
    if training and p_attn > 0.0:
        mask = _mask_for(p_attn, True, (b * heads, n, n), qkv)
        if not _compiling() and not torch.is_autocast_enabled(x.device.type):
            o = _AttnCoreFn.apply(qkv, n, heads, mask)
        else:
            qkv_b = qkv.view(n, b, heads, 3, dk).permute(1, 2, 3, 0, 4).reshape(b * heads, 3, n, dk)
            s = torch.matmul(qkv_b[:, 0], qkv_b[:, 1].transpose(1, 2)) / math.sqrt(dk)
            o = torch.matmul(torch.softmax(s, dim=-1) * mask, qkv_b[:, 2])
            o = o.view(b, heads, n, dk).permute(2, 0, 1, 3).reshape(rows, c)
    else:
        qkv5 = qkv.view(n, b, heads, 3, dk)
        q, k, v = (qkv5[:, :, :, i].permute(1, 2, 0, 3) for i in range(3))   # (B, h, N, d_k) views
        o = F.scaled_dot_product_attention(q, k, v)
        o = o.permute(2, 0, 1, 3).reshape(rows, c)
    return linear(o, w_o, b_o)
