"""Importing released checkpoints into a run folder (``harness import-weights``).

Formats read (each a ``torch.save`` of a plain list, loaded with ``weights_only=True``; anything that
needs code to unpickle is refused):

- ``monomotiondiff``: the cross-channel paper's ``DiffModel`` (jjkislele/monoMotionDiff
  ``models/runner.py``: ``states = [model.state_dict(), optimizer.state_dict(), epoch, step,
  ema_helper.state_dict()]``, no key prefix). The ``full`` variant. Its ``eval.py`` loads ``states[0]``.
- ``diffpose``: DiffPose's ``GCNdiff`` (GONGJIA0208/Diffpose ``runners/diffpose_frame.py``: the same list;
  the model was wrapped in ``torch.nn.DataParallel``, so ``states[0]``'s keys start with ``module.``;
  the EMA shadow's do not). The ``baseline`` variant.
- the lifter, DiffPose's ``GCNpose`` (``gcn_xyz_cpn.pth`` / ``gcn_xyz_gt.pth``, loaded by both codes):
  ``[state_dict, optimizer_state, epoch, step]`` with the ``module.`` prefix and DiffPose's unused
  ``temb.*`` layers (dropped: the GraFormer forward never reads them).

The harness models carry the released module names, so a state dict maps key for key once the prefix is
stripped; sizes (hidden width, layers, joints) are read off the tensors, the head count cannot be and is
an option (4 in every released config). The result is an ordinary run folder: ``config.json`` (the
source's recipe), ``checkpoint.pt`` (the harness format: ``model`` = the raw weights, ``ema`` = the
shadow), ``lifter.pt`` when a lifter is given, and ``origin.json`` saying where every tensor came from.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from harness import __version__
from harness.config import Config, apply_overrides, recipe_values, validate
from harness.errors import DataError
from harness.safeio import write_json
from harness.train.checkpoint import CHECKPOINT_FORMAT, load_weights_only, save_checkpoint

FORMATS = ("monomotiondiff", "diffpose")
RECIPE_OF_FORMAT = {"monomotiondiff": "released", "diffpose": "diffpose"}
VARIANT_OF_FORMAT = {"monomotiondiff": "full", "diffpose": "baseline"}
SOURCE_OF_FORMAT = {"monomotiondiff": "github jjkislele/monoMotionDiff (DiffModel)",
                    "diffpose": "github GONGJIA0208/Diffpose (GCNdiff)"}


def read_released(path: Path) -> list:
    """``torch.load(path, weights_only=True)`` of a released checkpoint list; one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    states = load_weights_only(path, "not a readable torch checkpoint")
    if isinstance(states, dict) and "state_dict" in states:  # a plain {'state_dict': ...} save
        states = [states["state_dict"]]
    if not isinstance(states, (list, tuple)) or not states or not _is_state_dict(states[0]):
        raise DataError(f"{path}: expected the released layout [state_dict, optimizer, epoch, step(, ema)], "
                        f"got {type(states).__name__}")
    return list(states)


def _is_state_dict(d: Any) -> bool:
    return isinstance(d, dict) and bool(d) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in d.items())


def strip_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop ``torch.nn.DataParallel``'s ``module.`` prefix."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}


def detect_format(sd: dict[str, torch.Tensor]) -> str:
    """``monomotiondiff`` (a guidance stream, ``gconv_input_t``) or ``diffpose`` (5-channel GCNdiff)."""
    sd = strip_prefix(sd)
    if "gconv_input_t.weight" in sd:
        return "monomotiondiff"
    w = sd.get("gconv_input.weight")
    if w is not None and w.dim() == 4 and w.shape[2] == 5 and "gconv_layers.0.temb_proj.weight" in sd:
        return "diffpose"
    raise DataError("not a released denoiser: no gconv_input_t (cross-channel DiffModel) and no 5-channel "
                    "gconv_input with temb_proj (DiffPose GCNdiff)")


def sizes(sd: dict[str, torch.Tensor]) -> dict[str, int]:
    """Hidden width, number of layers and number of graph nodes read off a state dict."""
    hid = int(sd["gconv_input.bias"].shape[-1])
    layers = len({int(m.group(1)) for k in sd if (m := re.match(r"gconv_layers\.(\d+)\.", k))})
    nodes = int(sd["atten_layers.0.feed_forward.A_hat"].shape[0])
    return {"hid_dim": hid, "num_layers": layers, "nodes": nodes}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_into(model: torch.nn.Module, sd: dict[str, torch.Tensor], path: Path, what: str) -> None:
    mine = model.state_dict()
    missing = sorted(set(mine) - set(sd))
    extra = sorted(set(sd) - set(mine))
    if missing or extra:
        key = (missing or extra)[0]
        raise DataError(f"{path}: {what} does not match the model ({len(missing)} missing keys, {len(extra)} "
                        f"unexpected; first: '{key}')")
    for k, v in sd.items():
        if tuple(v.shape) != tuple(mine[k].shape):
            raise DataError(f"{path}: {what} tensor '{k}' has shape {tuple(v.shape)}, the model expects "
                            f"{tuple(mine[k].shape)}")
    model.load_state_dict(sd, strict=True)


@contextlib.contextmanager
def _new_folder(out: Path):
    """A temporary folder beside ``out``, renamed to ``out`` when the block succeeds (removed if not)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out) if any(out.iterdir()) else out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def import_weights(denoiser: Path, out: Path, lifter: Path | None = None, fmt: str | None = None,
                   ema: bool = False, n_head: int = 4, lifter_heads: int = 4, benchmark: str = "h36m",
                   keypoints: str = "gt", data_root: str | None = None, overwrite: bool = False) -> Path:
    """Write a run folder at ``out`` from released checkpoints; returns ``out``.

    ``ema`` evaluates the EMA shadow instead of the raw weights the released evaluations use."""
    from harness.models import build_denoiser, build_lifter

    denoiser, out = Path(denoiser), Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DataError(f"{out}: folder exists and is not empty; choose a new --out")
    states = read_released(denoiser)
    raw = strip_prefix(states[0])
    found = detect_format(raw)
    if fmt is not None and fmt != found:
        raise DataError(f"{denoiser}: --format {fmt} given, but the weights are a {found} checkpoint")
    fmt = found
    shadow = strip_prefix(states[4]) if len(states) > 4 and _is_state_dict(states[4]) else None
    if ema and shadow is None:
        raise DataError(f"{denoiser}: --ema asked for, but the checkpoint holds no EMA shadow (states[4])")
    sz = sizes(raw)
    epoch = int(states[2]) if len(states) > 2 and isinstance(states[2], int) else 0
    overrides: dict[str, Any] = {"variant": VARIANT_OF_FORMAT[fmt], "benchmark": benchmark, "keypoints": keypoints,
                                 "data_root": str(data_root) if data_root else None, "hid_dim": sz["hid_dim"],
                                 "num_layers": sz["num_layers"], "n_head": n_head, "epochs": epoch + 1,
                                 "eval_weights": "ema" if ema else "raw"}
    model = build_denoiser(VARIANT_OF_FORMAT[fmt], hid_dim=sz["hid_dim"], num_layers=sz["num_layers"], n_head=n_head)
    _load_into(model, raw, denoiser, "states[0]")
    ema_sd = dict(raw)
    if shadow is not None:
        ema_sd.update(shadow)  # the shadow holds the parameters; anything else stays the raw value
        _load_into(model, ema_sd, denoiser, "the EMA shadow (states[4])")
    origin: dict[str, Any] = {
        "imported_by": f"harness {__version__}",
        "denoiser": {"file": str(denoiser.resolve()), "sha256": _sha256(denoiser), "format": fmt,
                     "source": SOURCE_OF_FORMAT[fmt], "released_epoch": epoch,
                     "released_step": int(states[3]) if len(states) > 3 and isinstance(states[3], int) else None,
                     "weights": "EMA shadow (states[4])" if ema else "raw (states[0]), as the released evaluation"},
    }
    lifter_state = None
    if lifter is not None:
        lifter = Path(lifter)
        lstates = read_released(lifter)
        lsd = {k: v for k, v in strip_prefix(lstates[0]).items() if not k.startswith("temb.")}
        if "gconv_input.weight" not in lsd or lsd["gconv_input.weight"].shape[2] != 2:
            raise DataError(f"{lifter}: not a released lifter (GraFormer/GCNpose with 2D input)")
        lsz = sizes(lsd)
        overrides.update(lifter_hid_dim=lsz["hid_dim"], lifter_layers=lsz["num_layers"], lifter_heads=lifter_heads)
        lmodel = build_lifter(hid_dim=lsz["hid_dim"], num_layers=lsz["num_layers"], n_head=lifter_heads)
        _load_into(lmodel, lsd, lifter, "states[0]")
        lifter_state = lsd
        origin["lifter"] = {"file": str(lifter.resolve()), "sha256": _sha256(lifter),
                            "format": "diffpose (GCNpose / GraFormer)", "source": "github GONGJIA0208/Diffpose",
                            "released_epoch": int(lstates[2]) if len(lstates) > 2 and isinstance(lstates[2], int)
                            else None, "dropped": sorted(k for k in strip_prefix(lstates[0]) if k.startswith("temb."))}
    else:
        origin["lifter"] = None  # eval/predict train the harness's own lifter (shared folder) instead
    # No profile: the sizes and epochs are the weights', the frames the protocol's (every test frame).
    recipe = RECIPE_OF_FORMAT[fmt]
    cfg = apply_overrides(Config(profile="imported"), recipe_values(recipe, keypoints), source=f"recipe '{recipe}'")
    cfg = validate(apply_overrides(cfg, overrides, source="import-weights"), source="import-weights")
    from harness.noise import GaussianNoise

    with _new_folder(out) as tmp:
        write_json(tmp / "config.json", cfg.to_dict())
        save_checkpoint(tmp / "checkpoint.pt", {
            "format": CHECKPOINT_FORMAT, "kind": "denoiser", "version": __version__, "config": cfg.to_dict(),
            "epoch": cfg.epochs - 1, "model": raw, "ema": ema_sd, "ema_updates": 0,
            "noise": GaussianNoise().to_dict(), "imported": True})
        if lifter_state is not None:
            save_checkpoint(tmp / "lifter.pt", {
                "format": CHECKPOINT_FORMAT, "kind": "lifter", "version": __version__, "config": cfg.to_dict(),
                "epoch": -1, "model": lifter_state, "imported": True})
        write_json(tmp / "origin.json", origin)
    return out
