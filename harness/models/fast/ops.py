"""Fast-path building blocks shared by the lifter and the denoisers, on the node-major layout.

Layout. Inside the models a batch of graph features lives *node-major*: a ``(N, B, C)`` tensor,
stored as the 2-D ``(N*B, C)`` matrix whose row ``n*B + b`` is node ``n`` of sample ``b``. Then

* a per-node linear map (``nn.Linear``, the Chebyshev weights) is one GEMM over all ``N*B`` rows;
* a graph product ``T @ X`` (``T`` an ``(M, N)`` graph operator) is *one* GEMM,
  ``T (M, N) @ X.view(N, B*C)``, whose result is again node-major: no per-sample batched matmul,
  no broadcast copies of the adjacency, no transposes;
* attention reads its per-(sample, head) ``N x d`` blocks as strided views of the same storage.

Exactness. Every function here computes the released model's function; only the association of
sums and the order of float operations differ (so float32 results agree to rounding). In
particular a Chebyshev convolution ``sum_k T_k X W_k`` uses ``T_0 = I`` (its product is ``X``
itself, so it is skipped) and evaluates ``T_1 X`` and ``T_2 X`` together; a learnable-adjacency
layer that narrows its features applies its weights before the graph product
(``fc(L X) = L (X W^T) + b``), so the product runs on the fewer channels.

GEMMs. On the CPU, oneDNN's matmul (``mkldnn::_linear_pointwise``, the op PyTorch's own
compiled CPU code uses) runs this model's tall-skinny float32 GEMMs faster than ``torch.mm``;
it has no autograd formula, so it is used inside this module's autograd Functions (forward and
backward). Weight gradients (a reduction over ~35k rows) are split into 8 row blocks as one
batched GEMM. Without autograd, residual adds are fused into the last GEMM of a block.

Fused kernels. Where :mod:`harness.models.fast.native` is available (a C++ compiler; CPU float32;
no autocast) the Chebyshev convolution, LayerNorm, the residual dropout and the training
attention core run as fused kernels (the torch operators ``torch.ops.harness.*``, see that
module), called from the autograd Functions below. Otherwise the same math runs as torch ops
with the hand-written backward passes below (``_ChebHidFn``, ``_LayerNormFn``, ``_AttnCoreFn``).
The switches ``NATIVE``, ``CHEB_EXPAND`` and ``NATIVE_ATTENTION`` turn the kernels off (tests and
A/B timing); ``HARNESS_NATIVE=0`` in the environment does so for the whole process.

Dropout. Masks are exact inverted dropout (drop with probability ``p``, scale the kept values by
``1 / (1 - p)``), applied exactly where the released code applies ``nn.Dropout``, and follow
``torch.manual_seed`` (each mask takes its seed from torch's global generator). The fused kernels
decide element ``i`` by a hash of ``(seed, i)`` and store nothing (the backward recomputes it);
otherwise, on the CPU, the bits come from NumPy's SFC64 generator (~20x faster than
``torch.bernoulli_`` there): one random byte per element plus, in the 1-in-256 case where that
byte equals ``floor(256 p)``, 32 more bits, so the drop probability is ``p`` to within ``2**-40``;
on other devices, and while ``torch.compile`` traces, masks come from ``torch.rand``.

Precision and compilation. Under autocast (bf16) the Functions cast their GEMM operands as
autocast would and the rest runs as torch ops (oneDNN only where it runs bf16 on this CPU). While
``torch.compile`` traces, the GEMMs and the remaining elementwise work are plain differentiable
torch ops (the compiler fuses them itself); the fused kernels stay in its graphs as custom
operators (their mask seeds are traced draws from torch's generator) if they were loaded before
tracing, unless ``COMPILE_KERNELS`` is False (then everything is plain torch ops).
"""

from __future__ import annotations

import ctypes
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from harness.models.fast import native

__all__ = [
    "attention",
    "cheb_conv",
    "dropout_mask",
    "graph_mm",
    "layer_norm",
    "linear",
    "residual_dropout",
    "tune_cpu_allocator",
]


# --- switches ------------------------------------------------------------------------------------

def _compiling() -> bool:
    return bool(torch.compiler.is_compiling())


def _grad_needed(*ts: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)


NATIVE = True  # use the fused kernels of harness.models.fast.native where they apply


COMPILE_KERNELS = True  # let torch.compile keep the kernels (custom operators) in its graphs


def _native_for(*ts: torch.Tensor):
    """The fused kernels (:func:`native.lib`) if they apply to these tensors (CPU float32,
    contiguous, no autocast), else None. While ``torch.compile`` traces, only if they are loaded
    already (the first eager use or :func:`native.lib` loads them) and ``COMPILE_KERNELS``."""
    t = ts[0]
    if (not NATIVE or t.device.type != "cpu" or torch.is_autocast_enabled("cpu")
            or any(u.dtype != torch.float32 or not u.is_contiguous() for u in ts)):
        return None
    if _compiling():
        return native.loaded() if COMPILE_KERNELS else None
    return native.lib()


# --- CPU memory ----------------------------------------------------------------------------------
#
# A training step allocates and frees hundreds of 10-40 MB activation tensors. With glibc's
# default malloc, blocks that large are mmap-ed fresh and unmapped on free, so every one of them
# is paid again in page faults and kernel zeroing (a 40 MB block: ~10,000 faults, ~20 ms, more
# than the GEMM that fills it). Telling malloc to serve them from its heap and keep freed memory
# makes them reusable; the cost is that the process keeps its peak memory mapped.

_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> bool:
    """Once per process, on Linux/glibc: no mmap-ed blocks (``M_MMAP_MAX = 0``), never trim the
    heap (``M_TRIM_THRESHOLD``), grow it 64 MiB at a time (``M_TOP_PAD``). Returns whether it
    applied. ``HARNESS_MALLOC_TUNING=0`` in the environment switches it off."""
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    if os.environ.get("HARNESS_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4
        ok = (libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 2 ** 31 - 1) == 1
              and libc.mallopt(m_top_pad, 64 << 20) == 1)
    except (OSError, AttributeError):
        return False
    _ALLOCATOR_TUNED = ok
    return ok


# --- GEMMs ---------------------------------------------------------------------------------------

def _probe_dnn(dtype: torch.dtype = torch.float32):
    """oneDNN's linear if it runs ``dtype`` on this CPU (bfloat16 needs AVX-512), else None."""
    try:
        op = torch.ops.mkldnn._linear_pointwise
        # fixed values, not torch.randn: a probe at import must not draw from the global generator
        # (importing the models inside a seeded run would shift its random stream)
        a = torch.linspace(-1.0, 1.0, 12).view(4, 3)
        w = torch.linspace(0.5, -0.5, 6).view(2, 3)
        y = op(a.to(dtype), w.to(dtype), None, "none", [], "").float()
        if torch.allclose(y, a @ w.t(), atol=1e-6 if dtype == torch.float32 else 2e-2):
            return op
    except (AttributeError, RuntimeError):
        pass
    return None


_DNN_LINEAR = _probe_dnn()
_DNN_DTYPES = (torch.float32,) + ((torch.bfloat16,) if _DNN_LINEAR is not None and _probe_dnn(torch.bfloat16) else ())


def _dnn(t: torch.Tensor) -> bool:
    return (_DNN_LINEAR is not None and t.device.type == "cpu"
            and t.dtype in _DNN_DTYPES and not _compiling())


def _lin(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, relu: bool = False) -> torch.Tensor:
    """``x @ w.T + b`` (then ReLU if ``relu``) for 2-D ``x (M, K)``, ``w (N, K)`` (no autograd)."""
    if _dnn(x):
        return _DNN_LINEAR(x, w, b, "relu" if relu else "none", [], "")
    y = torch.mm(x, w.t()) if b is None else torch.addmm(b, x, w.t())
    return y.relu_() if relu else y


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for 2-D ``a (M, K)``, ``b (K, N)`` (no autograd)."""
    if _dnn(a):
        return _DNN_LINEAR(a, b.t(), None, "none", [], "")
    return torch.mm(a, b)


def _wgrad(g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``g^T @ x`` for tall ``g (R, D)``, ``x (R, C)`` (a weight gradient, ``K = R`` huge). Split
    into 8 row blocks as one batched GEMM and summed: ~10% faster on 2 CPU cores than one GEMM,
    whose huge reduction dimension parallelises poorly."""
    rows = g.shape[0]
    if rows % 8 or rows < 8 * 512 or g.device.type != "cpu" or not (g.is_contiguous() and x.is_contiguous()):
        return torch.mm(g.t(), x)
    r = rows // 8
    return torch.bmm(g.view(8, r, -1).transpose(1, 2), x.view(8, r, -1)).sum(0)


class _LinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, relu):
        y = _lin(x, w, b, relu)
        ctx.relu = relu
        ctx.has_bias = b is not None
        ctx.save_for_backward(x, w, y if relu else None)
        return y

    @staticmethod
    def backward(ctx, g):
        x, w, y = ctx.saved_tensors
        if ctx.relu:
            g = torch.ops.aten.threshold_backward(g, y, 0)
        gx = _lin(g, w.t().contiguous()) if ctx.needs_input_grad[0] else None
        gw = _wgrad(g, x) if ctx.needs_input_grad[1] else None
        gb = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb, None


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, relu: bool = False,
           add: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` (then ReLU if ``relu``; or ``+ add``, a residual) for 2-D ``x`` on the fast
    GEMM path. Without autograd the residual add is fused into the GEMM."""
    if not _dnn(x) or torch.is_autocast_enabled(x.device.type):
        y = F.linear(x, w, b)
        y = torch.relu(y) if relu else y
        return y if add is None else y + add
    if _grad_needed(x, w, b, add):
        y = _LinearFn.apply(x, w, b, relu)
        return y if add is None else y + add
    if add is not None and not relu and add.dtype == x.dtype and add.is_contiguous():
        return _DNN_LINEAR.binary(x, add, w, b, "add")
    y = _lin(x, w, b, relu)
    return y if add is None else y + add


class _GraphFn(torch.autograd.Function):
    """``T @ X (+ bias)`` for a graph operator ``T (M, N)``, node-major ``X (N, B*C)`` and an
    optional per-column bias ``(B*C,)``."""

    @staticmethod
    def forward(ctx, t, x, bias):
        ctx.save_for_backward(t, x)
        ctx.has_bias = bias is not None
        if bias is None:
            return _mm(t, x)
        return _DNN_LINEAR(t, x.t(), bias, "none", [], "")

    @staticmethod
    def backward(ctx, g):
        t, x = ctx.saved_tensors
        gt = _lin(g, x) if ctx.needs_input_grad[0] else None
        gx = _mm(t.t().contiguous(), g) if ctx.needs_input_grad[1] else None
        gb = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gt, gx, gb


def graph_mm(t: torch.Tensor, x: torch.Tensor, col_bias: torch.Tensor | None = None,
             add: torch.Tensor | None = None) -> torch.Tensor:
    """``t @ x`` (graph operator times node-major features ``x (N, B*C)``) on the fast GEMM path;
    ``col_bias`` (``(C,)``) is added to every row's every sample, i.e. ``+ bias.repeat(B)``;
    ``add`` (same shape as the result) is a residual, fused into the GEMM without autograd."""
    if col_bias is not None:
        col_bias = col_bias.to(x.dtype).repeat(x.shape[1] // col_bias.shape[0])
    if not _dnn(x) or torch.is_autocast_enabled(x.device.type):
        y = torch.mm(t.to(x.dtype), x)
        y = y if col_bias is None else y + col_bias
        return y if add is None else y + add
    if _grad_needed(t, x, col_bias, add):
        y = _GraphFn.apply(t, x, col_bias)
        return y if add is None else y + add
    if add is not None and add.dtype == x.dtype and add.is_contiguous():
        return _DNN_LINEAR.binary(t, add, x.t(), col_bias, "add")
    y = _mm(t, x) if col_bias is None else _DNN_LINEAR(t, x.t(), col_bias, "none", [], "")
    return y if add is None else y + add


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


class _ResidualDropoutFn(torch.autograd.Function):
    """``x + dropout(y)`` in one pass with a hashed mask (fused kernel); the backward recomputes it."""

    @staticmethod
    def forward(ctx, x, y, p):
        seed = native.seed_tensor()
        ctx.thr, ctx.scale = native.drop_threshold(p), 1.0 / (1.0 - p)
        ctx.save_for_backward(seed)
        return native.lib().ops.residual_dropout(x, y, seed, ctx.thr, ctx.scale)

    @staticmethod
    def backward(ctx, g):
        g = g.contiguous()
        gy = None
        if ctx.needs_input_grad[1]:
            (seed,) = ctx.saved_tensors
            gy = native.lib().ops.dropout_backward(g, seed, ctx.thr, ctx.scale)
        return g, gy, None


def residual_dropout(x: torch.Tensor, y: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``x + dropout(y)`` (released ``SublayerConnection``'s residual)."""
    if training and 0.0 < p < 1.0 and x.shape == y.shape and _native_for(x, y) is not None:
        return _ResidualDropoutFn.apply(x, y, p)
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


class _LayerNormNativeFn(torch.autograd.Function):
    """Released LayerNorm with the fused kernels: one pass forward, one pass backward."""

    @staticmethod
    def forward(ctx, x, a, b, eps):
        y, stats = native.lib().ops.layer_norm(x, a, b, eps)     # stats: mean, 1 / (std + eps), std
        ctx.save_for_backward(x, a, stats)
        return y

    @staticmethod
    def backward(ctx, g):
        x, a, stats = ctx.saved_tensors
        dx, da, db = native.lib().ops.layer_norm_backward(g.contiguous(), x, a, stats)
        return dx, da, db, None


def layer_norm(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    """Released LayerNorm over the last dim of ``x`` (any leading shape)."""
    if _native_for(x, a, b) is not None:
        shape = x.shape
        return _LayerNormNativeFn.apply(x.view(-1, shape[-1]), a, b, eps).view(shape)
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
        if isinstance(mask, tuple):  # (seed, threshold): ReLU and hashed dropout in one pass
            native.lib().ops.relu_dropout_(y, mask[0], mask[1], scale)
        else:
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
            gw[0] = _wgrad(x, g)
            gw[1] = _wgrad(z[0], g)
            gw[2] = _wgrad(z[1], g)
            if s != 1.0:
                grad_w.mul_(s)
        if ctx.needs_input_grad[4]:
            grad_b = _bias_grad(g, d, s)
        if ctx.needs_input_grad[0]:
            # dX = g W_0^T + T_1^T g W_1^T + T_2^T g W_2^T, graph products first (one GEMM)
            gt = _mm(ctx.t12t, g.view(n, -1)).view(2, rows, d)
            grad_x = _lin(g, w[0])
            grad_x.addmm_(gt[0], w[1].t())
            grad_x.addmm_(gt[1], w[2].t())
        return grad_x, None, None, grad_w, grad_b, None, None


def _bias_grad(g: torch.Tensor, d: int, s: float) -> torch.Tensor:
    """The Chebyshev bias gradient ``(1, 1, D)``: column sums of ``g`` times the dropout factor ``s``."""
    grad_b = g.sum(0).view(1, 1, d)
    return grad_b.mul_(s) if s != 1.0 else grad_b


class _ChebNativeFn(torch.autograd.Function):
    """The hidden Chebyshev convolution with the fused kernels: ``Z = [X, T_1 X, T_2 X]`` built
    interleaved (``native.cheb_expand``) so the weights are ONE GEMM with ``K = 3C``; ReLU and
    the hashed dropout in one pass; backward ``dW = Z^T g`` in one GEMM and
    ``dX = [g, T_1^T g, T_2^T g] W'`` in one GEMM after expanding ``g`` the same way."""

    @staticmethod
    def forward(ctx, x, t12, t12t, weight, bias, drop):
        k = native.lib().ops
        n = t12.shape[1]
        c = x.shape[1]
        d = weight.shape[-1]
        z = k.cheb_expand(x, t12, n)                                 # (N*B, 3C)
        wcat = weight.view(3 * c, d)
        y = _lin(z, wcat.t().contiguous(), bias.view(d))
        if drop is not None:  # (seed, threshold, scale): ReLU and dropout in one pass, in place
            k.relu_dropout_(y, drop[0], drop[1], drop[2])
            ctx.scale = drop[2]
        else:
            y.relu_()
            ctx.scale = 1.0
        ctx.t12t = t12t
        ctx.save_for_backward(z, weight, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        z, weight, y = ctx.saved_tensors
        t12t = ctx.t12t
        n = t12t.shape[1]
        c, d = z.shape[1] // 3, weight.shape[-1]
        s = ctx.scale
        g = torch.ops.aten.threshold_backward(gy, y, 0)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[3]:
            grad_w = _wgrad(z, g).view(weight.shape)
            if s != 1.0:
                grad_w.mul_(s)
        if ctx.needs_input_grad[4]:
            grad_b = _bias_grad(g, d, s)
        if ctx.needs_input_grad[0]:
            # dX = g W_0^T + (T_1^T g) W_1^T + (T_2^T g) W_2^T: expand g with the transposed
            # operators, then one GEMM with K = 3D
            gcat = native.lib().ops.cheb_expand(g, t12t, n)                           # (N*B, 3D)
            m = weight.view(3, c, d).permute(1, 0, 2).reshape(c, 3 * d)             # M[c, (k, d)] = W_k[c, d]
            grad_x = _lin(gcat, m * s if s != 1.0 else m)
        return grad_x, None, None, grad_w, grad_b, None


CHEB_EXPAND = True  # use _ChebNativeFn where it applies (hidden widths a multiple of 32)


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
    :func:`harness.models.fast.graph.cheb_stacks`; ``weight (3, 1, C_in, C_out)``,
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
    elif relu and (not _compiling() or _native_for(x, weight, bias) is not None):
        amp = _amp_dtype(x)
        if amp is not None:  # what autocast would do: the GEMMs' operands in the low precision
            x, t12, t12t, weight, bias = (v.to(amp) for v in (x, t12, t12t, weight, bias))
        kern = _native_for(x, weight, bias)
        if kern is not None and CHEB_EXPAND and c % 32 == 0 and d % 32 == 0:
            drop = None
            if training and 0.0 < p_drop < 1.0:
                drop = (native.seed_tensor(), native.drop_threshold(p_drop), 1.0 / (1.0 - p_drop))
            elif training and p_drop >= 1.0:
                drop = (torch.zeros((), dtype=torch.int64), 2 ** 32 - 1, 0.0)
            if _grad_needed(x, weight, bias):
                return _ChebNativeFn.apply(x, t12, t12t, weight, bias, drop)
            with torch.no_grad():
                return _ChebNativeFn.forward(_NoCtx(), x, t12, t12t, weight, bias, drop)
        if training and 0.0 < p_drop < 1.0 and kern is not None:
            mask = (native.seed_tensor(), native.drop_threshold(p_drop))
        else:
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
    ``(head, d)``). The operands are gathered once into ``(3, B*h, N, d)`` so every batched matmul
    reads and writes contiguous batches, and the backward writes dQ, dK, dV straight into one
    such buffer (a strided ``out=`` would make ``bmm`` fall back to one GEMM per matrix).
    """

    @staticmethod
    def forward(ctx, qkv, n, heads, mask):
        rows, c3 = qkv.shape
        b, dk = rows // n, c3 // (3 * heads)
        bh = b * heads
        qkv_b = qkv.view(n, b, heads, 3, dk).permute(3, 1, 2, 0, 4).contiguous().view(3, bh, n, dk)
        q, k, v = qkv_b[0], qkv_b[1], qkv_b[2]
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
        go_b = go.view(n, b, heads, dk).permute(1, 2, 0, 3).contiguous().view(bh, n, dk)
        q, k, v = qkv_b[0], qkv_b[1], qkv_b[2]
        grad = torch.empty_like(qkv_b)
        torch.bmm(pd.transpose(1, 2), go_b, out=grad[2])                # dV = Pd^T dO
        gp = torch.bmm(go_b, v.transpose(1, 2))                         # d(P * mask)
        # softmax backward through the mask:  dS = Pd * G - P * rowsum(Pd * G)
        gp.mul_(pd)
        r = gp.sum(-1, keepdim=True)
        gp.addcmul_(p, r, value=-1.0)
        torch.baddbmm(grad[0], gp, k, beta=0.0, alpha=alpha, out=grad[0])                  # dQ
        torch.baddbmm(grad[1], gp.transpose(1, 2), q, beta=0.0, alpha=alpha, out=grad[1])  # dK
        # back to node-major (N, B, h, 3, d) in two copies: a 5-D permute in one copy is 4x slower
        gq = grad.view(3, b, heads, n, dk).permute(1, 2, 3, 0, 4).contiguous()       # (B, h, N, 3, d)
        gq = gq.permute(2, 0, 1, 3, 4).reshape(n * b, 3 * heads * dk)
        return gq, None, None, None


class _AttnNativeFn(torch.autograd.Function):
    """The training attention core with the fused kernels (see :mod:`harness.models.fast.native`):
    node-major ``qkv`` ``(N*B, 3C)`` (columns ``(head, q|k|v, d)``) -> node-major ``(N*B, C)``."""

    @staticmethod
    def forward(ctx, qkv, n, heads, p):
        dk = qkv.shape[1] // (3 * heads)
        drop = 0.0 < p
        seed = native.seed_tensor() if drop else torch.zeros((), dtype=torch.int64)
        thr = native.drop_threshold(p) if drop else 0
        scale = 1.0 / (1.0 - p) if drop else 1.0
        ctx.args = (n, heads, 1.0 / math.sqrt(dk), thr, scale, drop)
        o, lse = native.lib().ops.attention(qkv, n, heads, ctx.args[2], seed, thr, scale, drop)
        ctx.save_for_backward(qkv, lse, seed)
        return o

    @staticmethod
    def backward(ctx, go):
        qkv, lse, seed = ctx.saved_tensors
        n, heads, alpha, thr, scale, drop = ctx.args
        dqkv = native.lib().ops.attention_backward(qkv, go.contiguous(), lse, n, heads, alpha, seed, thr, scale, drop)
        return dqkv, None, None, None


NATIVE_ATTENTION = True


def _native_attention_ok(qkv: torch.Tensor, n: int, heads: int) -> bool:
    k = _native_for(qkv) if NATIVE_ATTENTION else None
    return k is not None and n <= k.max_nodes and qkv.shape[1] // (3 * heads) <= k.max_head_dim


def attention(x: torch.Tensor, n: int, heads: int, w_qkv: torch.Tensor, b_qkv: torch.Tensor,
              w_o: torch.Tensor, b_o: torch.Tensor, p_attn: float, training: bool,
              residual: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-head self-attention over the ``n`` nodes of node-major ``x`` ``(N*B, C)``.

    ``w_qkv (3C, C)``/``b_qkv`` are the Q, K, V projections stacked with rows ordered
    ``(head, q|k|v, d_k)`` (one GEMM). With no dropout to apply (evaluation, or ``p = 0``) the
    core is ``F.scaled_dot_product_attention`` on strided views; in training the attention
    weights get their dropout (released ``attention(..., dropout)``), with a hand-written
    backward (:class:`_AttnNativeFn` with the fused kernels, else :class:`_AttnCoreFn`).
    ``residual`` is added to the output (fused into the output projection without autograd).
    """
    rows, c = x.shape
    b = rows // n
    dk = c // heads
    qkv = linear(x, w_qkv, b_qkv)
    if training and 0.0 < p_attn < 1.0 and _native_attention_ok(qkv, n, heads):
        o = _AttnNativeFn.apply(qkv, n, heads, p_attn)
    elif training and p_attn > 0.0:
        mask = _mask_for(p_attn, True, (b * heads, n, n), qkv)
        if not _compiling() and not torch.is_autocast_enabled(x.device.type):
            o = _AttnCoreFn.apply(qkv, n, heads, mask)
        else:
            qkv_b = qkv.view(n, b, heads, 3, dk).permute(3, 1, 2, 0, 4).reshape(3, b * heads, n, dk)
            s = torch.matmul(qkv_b[0], qkv_b[1].transpose(1, 2)) / math.sqrt(dk)
            o = torch.matmul(torch.softmax(s, dim=-1) * mask, qkv_b[2])
            o = o.view(b, heads, n, dk).permute(2, 0, 1, 3).reshape(rows, c)
    else:
        qkv5 = qkv.view(n, b, heads, 3, dk)
        q, k, v = (qkv5[:, :, :, i].permute(1, 2, 0, 3) for i in range(3))   # (B, h, N, d_k) views
        o = F.scaled_dot_product_attention(q, k, v)
        o = o.permute(2, 0, 1, 3).reshape(rows, c)
    return linear(o, w_o, b_o, add=residual)
