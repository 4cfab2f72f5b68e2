"""Where a run computes: device selection, autocast, data resident on the device, machine facts.

``--device auto`` is CUDA when torch sees a GPU, else the CPU; a split's arrays are copied to the
device once (:class:`DeviceData`) and batched there by index, with no per-sample Python.
"""

from __future__ import annotations

import contextlib
import platform
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.config import DEVICES
from harness.data.base import PoseSet
from harness.errors import ConfigError, DataError


def select_device(name: str) -> torch.device:
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; a one-line ConfigError otherwise."""
    if name not in DEVICES and not re.fullmatch(r"cuda:\d+", name):
        raise ConfigError(f"--device {name!r}: must be one of {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine (use --device auto or cpu)")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def machine_info(device: torch.device) -> dict[str, Any]:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def autocast(device: torch.device, precision: str):
    """bf16 autocast on ``device`` for ``precision == "bf16"``, else a no-op context."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


COMPILE_MODES = ("off", "default", "graphs")


def check_compile(mode: str | None, device: str) -> None:
    """``--compile``: one of :data:`COMPILE_MODES` (None: the profile's), and ``graphs`` needs CUDA (``auto``
    resolved as :func:`select_device` does); a one-line ConfigError otherwise."""
    if mode is not None and mode not in COMPILE_MODES:
        raise ConfigError(f"--compile {mode!r}: must be one of {', '.join(COMPILE_MODES)}")
    if mode == "graphs" and select_device(device).type != "cuda":
        raise ConfigError(f"--compile graphs: CUDA graphs need a CUDA device (this run is on {select_device(device)}); "
                          "use --compile default or off")


def compile_fn(fn, mode: str, backend: str | None = None):
    """``fn`` under ``torch.compile(fullgraph=True, dynamic=False)``: a graph break is an error, one
    shape per compiled graph. ``mode``: ``default`` (inductor's default) or ``graphs`` (CUDA graphs:
    ``mode="reduce-overhead"``). ``backend``: torch.compile's (default ``inductor``; ``aot_eager``
    traces forward and backward without generating code, for tests)."""
    if mode not in ("default", "graphs"):
        raise ConfigError(f"compile: must be off, default or graphs, got {mode!r}")
    kw: dict[str, Any] = {"fullgraph": True, "dynamic": False}
    if backend not in (None, "inductor"):
        kw["backend"] = backend
    elif mode == "graphs":
        kw["mode"] = "reduce-overhead"
    return torch.compile(fn, **kw)


def graph_breaks(fn, *args, **kwargs) -> tuple[int, list[str]]:
    """Graph breaks dynamo meets tracing ``fn(*args, **kwargs)`` (``torch._dynamo.explain``: dynamo
    alone, no code generation; it runs ``fn`` once): their count and the first line of each reason."""
    import torch._dynamo

    with torch._dynamo.config.patch(trace_autograd_ops=True):
        ex = torch._dynamo.explain(fn)(*args, **kwargs)
    return int(ex.graph_break_count), [str(b.reason).strip().splitlines()[0] for b in ex.break_reasons]


@dataclass
class DeviceData:
    """A split's inputs on the device: 2D (N,J,2), 3D (N,J,3) and, when asked for, DiffPose's
    per-frame 2D kernels (N,J,K,5) of a ``*_gmm`` keypoints file (``meta["gmm_2d"]``)."""

    pose_2d: torch.Tensor
    pose_3d: torch.Tensor
    gmm_2d: torch.Tensor | None = None

    @classmethod
    def from_poseset(cls, ps: PoseSet, device: torch.device, gmm_2d: bool = False) -> "DeviceData":
        kernels = None
        if gmm_2d:
            arr = ps.meta.get("gmm_2d")
            if arr is None:
                raise DataError(f"noise 'kernels': the {ps.meta.get('split', 'training')} split has no per-frame "
                                "GMM 2D kernels; use --keypoints <name>_gmm (a data_2d_h36m_<name>_gmm.npz file)")
            kernels = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).to(device)
        return cls(torch.from_numpy(np.ascontiguousarray(ps.pose_2d, dtype=np.float32)).to(device),
                   torch.from_numpy(np.ascontiguousarray(ps.pose_3d, dtype=np.float32)).to(device), kernels)

    def __len__(self) -> int:
        return int(self.pose_2d.shape[0])
