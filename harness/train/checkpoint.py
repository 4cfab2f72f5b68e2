"""Checkpoints: self-describing dicts of tensors and plain data, written atomically and loaded with
``weights_only=True`` (no code can run), plus the RNG state that makes a resume exact."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from harness.errors import DataError
from harness.safeio import atomic_path

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file renamed into place. A full disk (torch wraps the OS error in a
    RuntimeError: "PytorchStreamWriter failed writing file ..." / "unexpected pos ...") becomes the
    one line of :func:`harness.safeio.atomic_path` and the previous checkpoint is kept."""
    with atomic_path(path, suffix=".pt") as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as e:
            if _disk_full(e, tmp):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp)) from None  # atomic_path: one line
            raise


_WRITER_FAILED = ("PytorchStreamWriter failed", "unexpected pos", "file write failed", "No space left on device",
                  "Disk quota exceeded")
_NEARLY_FULL_BYTES = 64 * 1024**2  # less than this free when torch's writer fails: the disk filled


def _disk_full(e: BaseException, tmp: Path) -> bool:
    """True when ``e`` (torch.save's RuntimeError) is a failed write on a disk that is (nearly) full."""
    msg = str(e)
    if "No space left on device" in msg or "Disk quota exceeded" in msg:
        return True
    if not any(m in msg for m in _WRITER_FAILED):
        return False
    try:
        return shutil.disk_usage(Path(tmp).parent).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def load_weights_only(path: Path, what: str = "unreadable or unsafe checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU (no code can run), with one-line errors: a
    missing file, a refused global (named), or ``what`` with the first line of torch's message."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: checkpoint not found") from None
    except Exception as e:  # unpickling refused, truncated file, not a torch file ...
        import re

        refused = re.search(r"GLOBAL ([\w.]+)", str(e))  # torch's weights-only refusal names the global
        if refused:
            raise DataError(f"{path}: unsafe checkpoint, refused to unpickle '{refused.group(1)}' "
                            "(only tensors and plain data are allowed)") from None
        msg = str(e).strip().splitlines()[0].split(". ")[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: {what} ({msg[:200]})") from None


def load_checkpoint(path: Path, kind: str, cfg_dict: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load a self-describing checkpoint with ``weights_only=True`` (no code can run) and check it
    belongs to this kind of model, format and config."""
    state = load_weights_only(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{path}: checkpoint format {state.get('format') if isinstance(state, dict) else '?'} "
                        f"is not {CHECKPOINT_FORMAT} (written by another harness version)")
    if state.get("kind") != kind:
        raise DataError(f"{path}: checkpoint holds a '{state.get('kind')}', expected a '{kind}'")
    check_structure(path, state, kind)
    if cfg_dict is not None:
        theirs = state.get("config", {})
        for key in ("variant", "hid_dim", "num_layers", "n_head", "lifter_hid_dim", "lifter_layers", "lifter_heads"):
            if key in theirs and key in cfg_dict and theirs[key] != cfg_dict[key]:
                raise DataError(f"{path}: checkpoint was trained with {key}={theirs[key]!r}, "
                                f"this run has {key}={cfg_dict[key]!r}")
    return state


# What each kind of checkpoint holds (train/loop.py writes them; pipeline, lifter, predict read them).
# An imported one (``"imported": True``, harness.weights) is for evaluation only: no optimizer, scheduler
# or RNG state, and an imported lifter's epoch is -1.
REQUIRED_KEYS = {"lifter": ("model", "epoch"), "denoiser": ("model", "ema", "noise", "epoch")}
RESUME_KEYS = ("optimizer", "scheduler", "rng")


def check_structure(path: Path, state: dict[str, Any], kind: str) -> None:
    """One-line :class:`DataError` unless ``state`` is a well-formed ``kind`` checkpoint: the entries
    :data:`REQUIRED_KEYS` (and :data:`RESUME_KEYS` unless imported), ``epoch`` an int >= 0, ``model`` (and
    ``ema``) a state dict of tensors, every floating tensor finite, ``ema`` the model's keys and shapes,
    ``optimizer`` / ``scheduler`` / ``rng`` / ``config`` of their types, ``noise`` a valid noise state."""
    imported = state.get("imported") is True
    for key in REQUIRED_KEYS.get(kind, ("model", "epoch")) + (() if imported else RESUME_KEYS):
        if key not in state:
            raise DataError(f"{path}: {kind} checkpoint lacks its '{key}' entry")
    epoch = state["epoch"]
    lowest = -1 if imported else 0
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < lowest:
        raise DataError(f"{path}: 'epoch' must be an integer >= {lowest}, got {epoch!r}")
    if "config" in state and not isinstance(state["config"], dict):
        raise DataError(f"{path}: 'config' must be a dict, got {type(state['config']).__name__}")
    _check_state_dict(path, state["model"], "model", "weight")
    if "ema" in state:
        _check_state_dict(path, state["ema"], "ema", "EMA weight")
        model, ema = state["model"], state["ema"]
        for k in model:
            if k not in ema:
                raise DataError(f"{path}: 'ema' lacks '{k}', which 'model' has")
            if tuple(ema[k].shape) != tuple(model[k].shape):
                raise DataError(f"{path}: EMA weight '{k}' has shape {tuple(ema[k].shape)}, the model weights "
                                f"{tuple(model[k].shape)}")
        extra = [k for k in ema if k not in model]
        if extra:
            raise DataError(f"{path}: 'ema' has '{extra[0]}', which 'model' lacks")
    if "optimizer" in state:
        opt = state["optimizer"]
        if not isinstance(opt, dict) or not isinstance(opt.get("state"), dict) \
                or not isinstance(opt.get("param_groups"), list):
            raise DataError(f"{path}: 'optimizer' is not an optimizer state (a dict with 'state' and 'param_groups')")
        for pid, st in opt["state"].items():
            if not isinstance(st, dict):
                raise DataError(f"{path}: optimizer state of parameter {pid} is not a dict")
            for name, v in st.items():
                if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
                    raise DataError(f"{path}: optimizer state '{pid}.{name}' holds {_bad_value(v)}")
    if "scheduler" in state and not isinstance(state["scheduler"], dict):
        raise DataError(f"{path}: 'scheduler' must be a dict, got {type(state['scheduler']).__name__}")
    if "rng" in state:
        rng = state["rng"]
        if not isinstance(rng, dict):
            raise DataError(f"{path}: 'rng' must be a dict, got {type(rng).__name__}")
        for key in ("generator", "torch"):
            v = rng.get(key)
            if not isinstance(v, torch.Tensor) or v.dtype != torch.uint8:
                raise DataError(f"{path}: 'rng' entry '{key}' must be a uint8 tensor (an RNG state), got "
                                f"{type(v).__name__ if not isinstance(v, torch.Tensor) else v.dtype}")
    if "noise" in state:
        from harness.noise import noise_from_dict

        noise_from_dict(state["noise"], source=f"{path}: noise entry")


def _bad_value(t: torch.Tensor) -> str:
    return "NaN" if bool(torch.isnan(t).any()) else "inf"


def _check_state_dict(path: Path, sd: Any, entry: str, label: str) -> None:
    """``sd`` a dict of str -> tensor with finite floating values; names the first bad key."""
    if not isinstance(sd, dict) or not sd:
        raise DataError(f"{path}: '{entry}' must be a non-empty state dict, got "
                        f"{type(sd).__name__ if not isinstance(sd, dict) else 'an empty dict'}")
    for k, v in sd.items():
        if not isinstance(k, str):
            raise DataError(f"{path}: '{entry}' has a key {k!r} that is not a string")
        if not isinstance(v, torch.Tensor):
            raise DataError(f"{path}: {label} '{k}' is a {type(v).__name__}, not a tensor")
        if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all()):
            raise DataError(f"{path}: {label} '{k}' holds {_bad_value(v)}")


def check_state_shapes(path: Path, model: torch.nn.Module, state_dict: dict[str, Any], what: str = "model") -> None:
    """Before ``model.load_state_dict(state_dict)``: one-line :class:`DataError` naming the first key the
    two disagree on (missing, unexpected, or of another shape) instead of torch's RuntimeError. ``what``
    names the entry in the message (``model``, ``ema``, ``lifter``, ...)."""
    expected = model.state_dict()
    for k, v in expected.items():
        if k not in state_dict:
            n = sum(1 for key in expected if key not in state_dict)
            raise DataError(f"{path}: {what} lacks '{k}'" + (f" (and {n - 1} more)" if n > 1 else "")
                            + ", which the model has")
        got = state_dict[k]
        if not isinstance(got, torch.Tensor):
            raise DataError(f"{path}: {what} '{k}' is a {type(got).__name__}, not a tensor")
        if tuple(got.shape) != tuple(v.shape):
            raise DataError(f"{path}: {what} '{k}' has shape {tuple(got.shape)}, the model expects {tuple(v.shape)}")
    extra = [k for k in state_dict if k not in expected]
    if extra:
        raise DataError(f"{path}: {what} has '{extra[0]}'" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
                        + ", which the model lacks")


def evaluated_weights(state: dict[str, Any], eval_weights: str) -> dict[str, Any]:
    """The state dict a denoiser checkpoint is evaluated with: its EMA, or its raw weights (``eval_weights``
    raw, as the released evaluations do)."""
    return state["ema"] if eval_weights == "ema" else state["model"]


def rng_state(gen: torch.Generator) -> dict[str, Any]:
    st = {"generator": gen.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(gen: torch.Generator, st: dict[str, Any]) -> None:
    gen.set_state(st["generator"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
