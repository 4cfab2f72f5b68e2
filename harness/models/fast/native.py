"""Optional fused CPU kernels for the fast path (float32), built on first use.

What eager PyTorch cannot fuse costs this model about as much as its GEMMs leave room for: every
elementwise step is a pass over a 10-40 MB activation (memory-bound on a small CPU), the released
LayerNorm is ~8 such passes forward and backward, dropout masks must be drawn, stored and
applied, a Chebyshev convolution is three thin GEMMs, and the attention over 34-node graphs is
tiny batched matmuls plus gathers and scatters between layouts. The C++ kernels, as the operators
``torch.ops.harness.*``:

* ``residual_dropout`` / ``relu_dropout_`` / ``dropout_backward``: inverted dropout whose keep
  decision for element ``i`` is a hash of ``(seed, i)`` (SplitMix64; drop iff its top 32 bits
  are < round(p * 2**32), so P(drop) = p to within 2**-33). Nothing is stored: the backward
  recomputes the mask. Fused with the residual add of an attention block (``x + dropout(y)``) or
  with the ReLU of a graph convolution (in place). ``dropout_mask`` materialises a mask (tests).
* ``layer_norm`` / ``layer_norm_backward``: the released LayerNorm (unbiased std, eps on the
  std), one pass per row forward and backward (parameter gradients reduced per thread).
* ``cheb_expand``: ``[X, T_1 X, T_2 X]`` written interleaved (one row per node and sample), so a
  Chebyshev convolution is a single GEMM with ``K = 3C`` against the stacked weights; applied to
  the output gradient with the transposed operators it makes the input gradient one GEMM too.
* ``attention`` / ``attention_backward``: the training attention core per (sample, head), flash
  style: Q, K, V taken from the node-major projection output, softmax, dropout on the weights
  (hash mask), ``P V`` written back node-major; the backward recomputes the weights from Q, K
  and the saved log-sum-exp and writes dQ, dK, dV node-major.

The math is the released model's; only float association differs (float32 rounding).

Files: ``kernels.cpp`` (the kernels, plain C++ with OpenMP; interface ``kernels.h``) and
``bindings.cpp`` (registers them as the torch operators ``torch.ops.harness.*``; their fake
functions for ``torch.compile`` are below). Built on first use with
:func:`torch.utils.cpp_extension.load` (the system C++ compiler, ``$CXX`` or ``c++``, and ninja)
with ``-O3 -march=native -fopenmp``, in a private temporary folder, then cached under
``$HARNESS_CACHE_DIR`` (default ``~/.cache/harness``) keyed by the sources, torch's version, the
compiler and this CPU; later processes only load the cached library. It shares PyTorch's OpenMP
runtime (and so its thread count). If there is no compiler or ninja, the build fails, or
``HARNESS_NATIVE=0`` is set, :func:`lib` returns None (:func:`error` says why) and the fast path
uses torch ops instead.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch

__all__ = ["SOURCES", "Kernels", "available", "disabled", "drop_threshold", "error", "lib", "loaded", "mask", "seed",
           "seed_tensor"]

_HERE = Path(__file__).resolve().parent
SOURCES = (_HERE / "kernels.cpp", _HERE / "bindings.cpp")
_HEADERS = (_HERE / "kernels.h",)
CFLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno")
LDFLAGS = ("-fopenmp",)

_LOCK = threading.Lock()
_LIB: "Kernels | None" = None
_TRIED = False
_ERROR: str | None = None
_DISABLED = False


class Kernels:
    """The loaded operators: ``torch.ops.harness`` plus the kernels' size limits."""

    def __init__(self):
        self.ops = torch.ops.harness
        self.max_nodes, self.max_head_dim, self.num_threads = (int(v) for v in self.ops.limits())


def _cpu_signature() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        keep = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
        return "\n".join(keep)
    except OSError:
        return platform.processor() or platform.machine()


def _compiler() -> str | None:
    """The compiler cpp_extension will call: ``$CXX``, else ``c++``."""
    return shutil.which(os.environ.get("CXX") or "c++")


def _cache_dir() -> Path:
    root = os.environ.get("HARNESS_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "harness"


def _build() -> Kernels:
    cxx = _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX)")
    sources = [p.read_bytes() for p in (*SOURCES, *_HEADERS)]
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"{cxx} --version failed: {e}") from None
    h = hashlib.sha256()
    for part in (*sources, cxx.encode(), version.encode(), " ".join(CFLAGS + LDFLAGS).encode(),
                 torch.__version__.encode(), _cpu_signature().encode()):
        h.update(part + b"\0")
    out_dir = _cache_dir() / "kernels"
    path = out_dir / f"harness_ops-{h.hexdigest()[:16]}.so"
    if not path.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        # A private build folder (cpp_extension's own lock file would block every other process
        # forever if this one were killed mid-build); the result is moved into place atomically.
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            for src, text in zip((*SOURCES, *_HEADERS), sources):   # the sources hashed above
                (Path(tmp) / src.name).write_bytes(text)
            so = _compile(Path(tmp))   # (which also loads it)
            os.replace(so, path)
    else:
        torch.ops.load_library(str(path))
    _register_fakes()
    return Kernels()


def _ninja_on_path() -> None:
    """cpp_extension runs ``ninja`` from PATH; the ``ninja`` package's binary sits in the venv's bin
    folder, which is not on PATH when ``.venv/bin/harness`` runs without an activated venv."""
    dirs = []
    try:
        import ninja  # the PyPI package (a dependency)

        dirs.append(str(ninja.BIN_DIR))
    except (ImportError, AttributeError):
        pass
    dirs.append(os.path.dirname(os.path.abspath(sys.executable)))
    path = os.environ.get("PATH", "").split(os.pathsep)
    missing = [d for d in dirs if d and d not in path]
    if missing and shutil.which("ninja") is None:
        os.environ["PATH"] = os.pathsep.join([*missing, *path])


def _compile(folder: Path) -> Path:
    """Build the sources copied into ``folder`` there; the library's path."""
    import warnings

    from torch.utils import cpp_extension

    _ninja_on_path()

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # is_python_module=False: cpp_extension also loads it (torch.ops.load_library), from
            # here; the cached copy is what later processes load.
            cpp_extension.load(name="harness_ops", sources=[str(folder / p.name) for p in SOURCES],
                               extra_cflags=list(CFLAGS), extra_ldflags=list(LDFLAGS), build_directory=str(folder),
                               with_cuda=False, is_python_module=False, verbose=False)
    except RuntimeError as e:  # "Error building extension ...: <the build's output>"
        lines = str(e).splitlines()
        first = next((ln.strip() for ln in lines if "error:" in ln), lines[0])   # the compiler's first error
        raise RuntimeError(f"compiling the kernels failed: {first}") from None
    return folder / "harness_ops.so"


def _register_fakes() -> None:
    """Shape functions of the operators, for torch.compile (FakeTensor tracing)."""
    fake = getattr(torch.library, "register_fake", None) or torch.library.impl_abstract   # torch < 2.4
    fake("harness::residual_dropout")(lambda x, y, seed, thr, scale: torch.empty_like(y))
    fake("harness::relu_dropout_")(lambda y, seed, thr, scale: None)
    fake("harness::dropout_backward")(lambda grad, seed, thr, scale: torch.empty_like(grad))
    fake("harness::dropout_mask")(lambda numel, seed, thr, scale: seed.new_empty((numel,), dtype=torch.float32))
    fake("harness::layer_norm")(lambda x, a, b, eps: (torch.empty_like(x), x.new_empty((3, x.shape[0]))))
    fake("harness::layer_norm_backward")(
        lambda grad, x, a, stats: (torch.empty_like(x), torch.empty_like(a), torch.empty_like(a)))
    fake("harness::attention")(
        lambda qkv, n, heads, alpha, seed, thr, scale, drop: (
            qkv.new_empty((qkv.shape[0], qkv.shape[1] // 3)), qkv.new_empty((qkv.shape[0] * heads,))))
    fake("harness::attention_backward")(
        lambda qkv, grad_out, lse, n, heads, alpha, seed, thr, scale, drop: torch.empty_like(qkv))
    fake("harness::cheb_expand")(lambda x, op, n: x.new_empty((x.shape[0], 3 * x.shape[1])))


def lib() -> Kernels | None:
    """The kernels (:class:`Kernels`), built and loaded on the first call; None if unavailable."""
    global _LIB, _TRIED, _ERROR, _DISABLED
    if _TRIED:
        return _LIB
    with _LOCK:
        if not _TRIED:
            if os.environ.get("HARNESS_NATIVE", "1") == "0":
                _DISABLED = True
                _ERROR = "disabled by HARNESS_NATIVE=0"
            else:
                try:
                    _LIB = _build()
                except Exception as e:  # no compiler, failed build, unloadable library
                    _ERROR = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            _TRIED = True
    return _LIB


def loaded() -> Kernels | None:
    """The kernels if :func:`lib` has loaded them, else None (never builds; safe while tracing)."""
    return _LIB


def available() -> bool:
    return lib() is not None


def disabled() -> bool:
    """Whether ``HARNESS_NATIVE=0`` switched the kernels off (read when they are first asked for)."""
    return lib() is None and _DISABLED


def error() -> str | None:
    """Why the kernels are unavailable (None if they are available or not tried yet)."""
    return _ERROR


def seed_tensor() -> torch.Tensor:
    """A mask seed drawn from torch's global generator (so ``torch.manual_seed`` fixes it), as the
    0-d int64 tensor the operators take: a draw ``torch.compile`` can trace."""
    return torch.randint(0, 2 ** 62, (), dtype=torch.int64)


def seed() -> int:
    """:func:`seed_tensor` as an int (the same draw)."""
    return int(seed_tensor())


def mask(shape, seed_: int | torch.Tensor, p: float) -> torch.Tensor:
    """The dropout multiplier the kernels apply for ``seed_`` (float32, 0 or ``1/(1-p)``), element
    ``i`` of the flattened ``shape`` (tests and debugging)."""
    s = seed_ if isinstance(seed_, torch.Tensor) else torch.tensor(seed_, dtype=torch.int64)
    n = 1
    for d in shape:
        n *= int(d)
    return lib().ops.dropout_mask(n, s, drop_threshold(p), 1.0 / (1.0 - p)).view(shape)


def drop_threshold(p: float) -> int:
    """``thr`` such that P(hash32 < thr) = p (to 2**-33)."""
    return min(int(round(p * 2.0 ** 32)), 2 ** 32 - 1)
