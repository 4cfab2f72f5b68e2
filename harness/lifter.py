"""The first stage: the initial 3D pose from a GraFormer lifter, trained once per benchmark, seed and
lifter config and shared by every variant (``<out>/shared/lifter-*``, under a lock), or the user's own
initial 3D (``--initial-3d``).

Released inference (monoMotionDiff ``runners/diffpose.py``): the lifter's output, made root-relative,
is the 3D half of the sampler's start ``x_K``. At test time the ``harness`` recipe averages the lifter
with its prediction on the flipped input (``lifter_test_flip``); the released recipes run it once.
Training-split predictions (for the GMM noise fit) are not flipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from harness.config import Config
from harness.data.base import PoseSet
from harness.device import DeviceData, autocast
from harness.safeio import atomic_path, write_json
from harness.skeleton import H36M_PARENTS, root_relative
from harness.train.augment import Flip
from harness.train.loop import train_lifter as train_lifter_model

ProgressFn = Callable[[dict[str, Any]], None]


def build_lifter_for(cfg: Config, parents: Sequence[int] = H36M_PARENTS) -> torch.nn.Module:
    """The GraFormer lifter at the config's size on the skeleton ``parents`` (the data's,
    :attr:`PoseSet.parents`), on the fast path (:mod:`harness.models.fast`)."""
    from harness.models.fast import build_lifter

    return build_lifter(hid_dim=cfg.lifter_hid_dim, num_layers=cfg.lifter_layers, n_head=cfg.lifter_heads,
                        dropout=cfg.lifter_dropout, parents=parents)


def _predict(model_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int) -> torch.Tensor:
    outs = [model_fn(x[i:i + batch]) for i in range(0, x.shape[0], batch)]
    return torch.cat(outs, 0) if outs else x.new_zeros((0,))


def lifter_predict(model: torch.nn.Module, pose_2d: torch.Tensor, flip: Flip, batch: int, precision: str,
                   device: torch.device, test_flip: bool = True, root_mode: str = "subtract") -> torch.Tensor:
    """Root-relative 3D from the lifter (``root_mode``: :func:`harness.skeleton.root_relative`),
    averaged with the flipped input's (un-flipped) prediction when ``test_flip``; otherwise the lifter
    runs once, as in the released ``test()`` loops."""
    model.eval()

    def fn(x):
        with torch.no_grad(), autocast(device, precision):
            y = model(x).float()
            if test_flip:
                y = 0.5 * (y + flip(model(flip(x)).float()))
        return root_relative(y, root_mode)

    return _predict(fn, pose_2d, batch)


def train_lifter(cfg: Config, data: dict[str, PoseSet], out: Path, device: torch.device,
                 progress: ProgressFn | None = None, folder: Path | None = None) -> dict[str, np.ndarray]:
    """Train (or reuse, or resume) the shared GraFormer lifter in ``folder`` (default
    :func:`harness.runs.lifter_dir`); return its predictions on both splits. A lock on its folder makes
    a second process wait for the first instead of training it twice."""
    from harness.data.initial3d import initial_predictions
    from harness.locks import folder_lock
    from harness.runs import lifter_dir

    if cfg.initial_3d:
        return initial_predictions(Path(cfg.initial_3d), data)
    folder = Path(folder) if folder is not None else lifter_dir(cfg, out)
    with folder_lock(folder):
        return _train_lifter(cfg, data, folder, device, progress)


def _train_lifter(cfg: Config, data: dict[str, PoseSet], folder: Path, device: torch.device,
                  progress: ProgressFn | None) -> dict[str, np.ndarray]:
    from harness import __version__
    from harness.identity import lifter_identity
    from harness.train.records import Records, config_summary

    pred_path = folder / "predictions.npz"
    if pred_path.exists():
        preds, why = _read_predictions(pred_path, data)
        if why is None:
            return preds
        if progress:  # a function of the finished checkpoint: recomputed from it, not trusted
            progress({"stage": "note", "text": f"{pred_path}: {why}; recomputing it from the lifter's checkpoint"})
    folder.mkdir(parents=True, exist_ok=True)
    cfg_dict = cfg.to_dict()
    write_json(folder / "config.json", {k: cfg_dict[k] for k in Config.LIFTER_KEYS})
    ident = lifter_identity(cfg)
    write_json(folder / "identity.json", ident)

    with Records(folder, "lifter", progress) as rec:  # the lifter's own train.log and history.csv
        rec.log(f"start: shared lifter {folder.name} (harness {__version__}, device {device}); "
                f"{len(data['train'])} training and {len(data['test'])} test frames")
        rec.log("config: " + config_summary(cfg, Config.LIFTER_KEYS))
        torch.manual_seed(cfg.seed)
        gen = torch.Generator(device=device).manual_seed(cfg.seed)
        model = build_lifter_for(cfg, parents=data["train"].parents).to(device)
        train_lifter_model(cfg, model, data["train"], folder, device, gen, rec, numerics=ident["numerics"])
        flip = Flip(data["train"].num_joints, device=device)
        preds = {}
        for split in ("train", "test"):
            dd = DeviceData.from_poseset(data[split], device)
            preds[split] = lifter_predict(model, dd.pose_2d, flip, cfg.eval_batch_size, cfg.precision, device,
                                          test_flip=(split == "test" and cfg.lifter_test_flip),
                                          root_mode=cfg.root_mode).cpu().numpy().astype(np.float32)
        with atomic_path(pred_path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **preds)
        rec.log("finish: predictions.npz written (train and test splits)")
    return preds


def _read_predictions(path: Path, data: dict[str, PoseSet]) -> tuple[dict[str, np.ndarray], str | None]:
    """A shared lifter's ``predictions.npz`` and None, or ``({}, why)`` when it is unreadable or does not
    fit the data: float arrays ``train`` and ``test`` of shape ``(N, J, 3)`` for the splits, finite."""
    from harness.errors import HarnessError
    from harness.safeio import load_npz

    try:
        preds = load_npz(path)
    except HarnessError as e:
        return {}, str(e).removeprefix(f"{path}: ")
    for split in ("train", "test"):
        a, ps = preds.get(split), data[split]
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or a.shape != (len(ps), ps.num_joints, 3):
            return {}, f"'{split}' is not a float array of shape ({len(ps)}, {ps.num_joints}, 3)"
        if not np.isfinite(a).all():
            return {}, f"'{split}' holds NaN or inf"
    return {k: preds[k].astype(np.float32) for k in ("train", "test")}, None


def load_lifter(cfg: Config, path: Path, parents: Sequence[int], device: torch.device) -> torch.nn.Module:
    """A lifter from a harness lifter checkpoint (a shared lifter's ``checkpoint.pt`` or an imported
    run's ``lifter.pt``), at the config's size on the skeleton ``parents``."""
    from harness.train.checkpoint import check_state_shapes, load_checkpoint

    st = load_checkpoint(Path(path), "lifter", cfg.to_dict())
    model = build_lifter_for(cfg, parents=parents).to(device)
    check_state_shapes(Path(path), model, st["model"])
    model.load_state_dict(st["model"])
    return model.eval()


def run_lifter_path(cfg: Config, run_dir: Path) -> Path:
    """The lifter checkpoint a run folder uses: its own ``lifter.pt`` (imported weights), else the
    shared lifter trained for its config (``<out>/shared/lifter-*/checkpoint.pt``)."""
    from harness.runs import lifter_dir

    own = Path(run_dir) / "lifter.pt"
    if own.exists():
        return own
    return (recorded_lifter_dir(run_dir) or lifter_dir(cfg, Path(run_dir).parent)) / "checkpoint.pt"


def recorded_lifter_dir(run_dir: Path) -> Path | None:
    """The shared lifter folder a run was trained with (its ``identity.json``'s ``lifter``), or None
    (an imported run, a run from before identities): a re-evaluation under other numerics uses the
    run's own lifter, not one of those numerics."""
    path = Path(run_dir) / "identity.json"
    if not path.exists():
        return None
    from harness.safeio import read_json

    d = read_json(path)
    name = d.get("lifter") if isinstance(d, dict) else None
    if name is None:
        return None
    import re

    from harness.errors import DataError

    if not isinstance(name, str) or not re.fullmatch(r"lifter-[A-Za-z0-9_]+-seed\d+-[0-9a-f]{12}", name):
        raise DataError(f"{path}: 'lifter' {name!r} is not a shared lifter folder name "
                        "(lifter-<benchmark>-seed<S>-<hash>)")
    return Path(run_dir).parent / "shared" / name


def run_lifter_predictions(cfg: Config, run_dir: Path, data: dict[str, PoseSet], device: torch.device,
                           progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
    """The lifter's predictions for a run folder: from its imported ``lifter.pt`` if it has one (test
    split only), else those of the shared lifter (trained if it is not there yet)."""
    own = Path(run_dir) / "lifter.pt"
    if not own.exists():
        return train_lifter(cfg, data, Path(run_dir).parent, device, progress, folder=recorded_lifter_dir(run_dir))
    model = load_lifter(cfg, own, data["test"].parents, device)
    dd = DeviceData.from_poseset(data["test"], device)
    flip = Flip(data["test"].num_joints, device=device)
    test = lifter_predict(model, dd.pose_2d, flip, cfg.eval_batch_size, cfg.precision, device,
                          test_flip=cfg.lifter_test_flip, root_mode=cfg.root_mode)
    return {"test": test.cpu().numpy().astype(np.float32)}
