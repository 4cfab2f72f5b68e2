"""Checkpoints: self-describing dicts of tensors and plain data, written atomically and loaded with
``weights_only=True`` (no code can run), plus the RNG state that makes a resume exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from harness.errors import DataError
from harness.safeio import atomic_path

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


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
    if cfg_dict is not None:
        theirs = state.get("config", {})
        for key in ("variant", "hid_dim", "num_layers", "n_head", "lifter_hid_dim", "lifter_layers", "lifter_heads"):
            if key in theirs and key in cfg_dict and theirs[key] != cfg_dict[key]:
                raise DataError(f"{path}: checkpoint was trained with {key}={theirs[key]!r}, "
                                f"this run has {key}={cfg_dict[key]!r}")
    return state


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
