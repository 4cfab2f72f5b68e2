"""The training loops: epochs of :mod:`harness.train.step` over a split resident on the device, with a
checkpoint after every ``checkpoint_every`` epochs from which a run resumes exactly (weights, EMA,
optimiser, schedule, RNG).

Schedules. Denoiser: Adam ``lr``, multiplied by ``lr_gamma`` every ``lr_decay_every`` epochs (StepLR,
as DiffPose's ``decay`` / ``lr_gamma``); the EMA of the weights is what the stage returns. Lifter: Adam ``lifter_lr`` decayed exponentially to a tenth over the stage (GraFormer decays 0.96 per
100k steps).

Progress: a "start" event, "step" events within an epoch (the running loss, read off the device only at
:class:`harness.train.records.StepTicker`'s interval) and an "epoch" event (loss, learning rate, time)
before each epoch's checkpoint; :class:`harness.train.records.Records` keeps them (the event shapes are
described there).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch

from harness import __version__
from harness.config import Config
from harness.data.base import PoseSet
from harness.device import DeviceData
from harness.errors import HarnessError
from harness.train.augment import Flip
from harness.train.checkpoint import CHECKPOINT_FORMAT, check_state_shapes, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from harness.train.records import StepTicker, steps_per_epoch
from harness.train.step import DenoiserStep, lifter_step

ProgressFn = Callable[[dict[str, Any]], None]


def _epoch(train: DeviceData, batch_size: int, gen: torch.Generator, device: torch.device,
           step: Callable[..., torch.Tensor], tick: Callable[[int, torch.Tensor, int], None] | None = None,
           drop_last: bool = False) -> float:
    """One epoch: a permutation drawn from ``gen``, then ``step(2D, 3D)`` (``step(2D, 3D, kernels)``
    when ``train`` carries GMM 2D kernels) on each batch of it in order (the last one short, or, with
    ``drop_last`` (a compiled step: one batch shape), dropped, the batch being at most the split);
    returns the mean loss per sample (one host sync, at the end: the NaN check is once an epoch).
    ``tick(k, loss sum, samples)`` after step ``k`` (:class:`harness.train.records.StepTicker`: it reads
    the sum only at its logging interval)."""
    n = len(train)
    perm = torch.randperm(n, generator=gen, device=device)
    total, count = torch.zeros((), device=device), 0
    if drop_last:
        batch_size = max(1, min(batch_size, n))
    for i in range(0, n - batch_size + 1 if drop_last else n, batch_size):
        idx = perm[i:i + batch_size]
        extra = () if train.gmm_2d is None else (train.gmm_2d[idx],)
        total += step(train.pose_2d[idx], train.pose_3d[idx], *extra) * idx.shape[0]
        count += idx.shape[0]
        if tick is not None:
            tick(i // batch_size + 1, total, count)
    return float(total) / max(count, 1)


def check_resume_numerics(path: Path, state: dict, numerics: dict | None) -> None:
    """Refuse, in one line, to resume a checkpoint written under other numerics (device type, precision,
    C++ kernels or torch ops): the resumed run would mix two sets of float rounding under one name."""
    theirs = state.get("numerics")
    if numerics is None or not isinstance(theirs, dict) or theirs == numerics:
        return
    diff = ", ".join(f"{k} {theirs.get(k)}" for k in sorted(numerics) if theirs.get(k) != numerics.get(k))
    now = ", ".join(f"{k} {numerics.get(k)}" for k in sorted(numerics) if theirs.get(k) != numerics.get(k))
    raise HarnessError(f"{path}: written under other numerics ({diff}; this process has {now}); "
                       "refusing to resume it: move the folder away, or run with the numerics it was written with")


def train_lifter(cfg: Config, model: torch.nn.Module, train_set: PoseSet, folder: Path, device: torch.device,
                 gen: torch.Generator, progress: ProgressFn | None = None, numerics: dict | None = None
                 ) -> torch.nn.Module:
    """Train (or resume from ``folder/checkpoint.pt``) the lifter ``model`` for ``lifter_epochs``.
    ``numerics`` (:func:`harness.identity.numerics`) is saved with every checkpoint; a resume refuses a
    checkpoint written under other numerics."""
    cfg_dict = cfg.to_dict()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lifter_lr)
    # Exponential decay to a tenth of the initial rate over the stage (GraFormer decays 0.96 per 100k steps).
    gamma = 0.1 ** (1.0 / max(cfg.lifter_epochs, 1))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
    train = DeviceData.from_poseset(train_set, device)
    flip = Flip(train.pose_2d.shape[1], device=device)
    start = 0
    ckpt = folder / "checkpoint.pt"
    if ckpt.exists():
        st = load_checkpoint(ckpt, "lifter", cfg_dict)
        check_resume_numerics(ckpt, st, numerics)
        check_state_shapes(ckpt, model, st["model"])
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        set_rng_state(gen, st["rng"])
        start = st["epoch"] + 1
    spe = steps_per_epoch(len(train), cfg.lifter_batch_size)
    if progress:
        progress({"stage": "lifter", "kind": "start", "epoch": start, "epochs": cfg.lifter_epochs,
                  "steps_per_epoch": spe, "frames": len(train), "batch_size": cfg.lifter_batch_size})
    for epoch in range(start, cfg.lifter_epochs):
        t0 = time.perf_counter()
        model.train()
        lr = float(opt.param_groups[0]["lr"])
        loss_v = _epoch(train, cfg.lifter_batch_size, gen, device,
                        lambda x, y: lifter_step(cfg, model, opt, flip, x, y, gen, device),
                        StepTicker(progress, "lifter", epoch + 1, cfg.lifter_epochs, spe))
        sched.step()
        if not math.isfinite(loss_v):  # before saving: the last good checkpoint is kept
            raise HarnessError(f"{ckpt}: lifter loss became {loss_v} at epoch {epoch + 1}; last good checkpoint kept")
        if progress:  # before the checkpoint: a kill between the two leaves a row that a resume drops
            progress({"stage": "lifter", "kind": "epoch", "epoch": epoch + 1, "epochs": cfg.lifter_epochs,
                      "loss": loss_v, "seconds": time.perf_counter() - t0, "step": (epoch + 1) * spe,
                      "steps_per_epoch": spe, "lr": lr})
        save_checkpoint(ckpt, {"format": CHECKPOINT_FORMAT, "kind": "lifter", "version": __version__,
                               "config": cfg_dict, "epoch": epoch, "model": model.state_dict(),
                               "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                               "rng": rng_state(gen), "numerics": numerics})
    return model


def train_denoiser(cfg: Config, model: torch.nn.Module, train_set: PoseSet, noise_model, run_dir: Path,
                   device: torch.device, gen: torch.Generator, progress: ProgressFn | None = None,
                   numerics: dict | None = None) -> torch.nn.Module:
    """Train (or resume from ``run_dir/checkpoint.pt``) the denoiser ``model``; returns it holding the
    weights ``cfg.eval_weights`` names (the EMA, or the raw weights as the released code evaluates).
    With ``train_keypoints: gt`` (DiffPose's CPN recipe) it trains on the split's GT 2D. ``numerics`` as
    :func:`train_lifter`'s."""
    cfg_dict = cfg.to_dict()
    if cfg.train_keypoints == "gt" and getattr(noise_model, "needs_kernels", False):
        if "gmm_2d_gt" not in train_set.meta:
            raise HarnessError(f"{run_dir}: train_keypoints gt with noise kernels trains on DiffPose's GT kernels "
                               "(data_2d_h36m_gt_gmm.npz beside the test file); none were loaded")
        meta = {**train_set.meta, "gmm_2d": train_set.meta["gmm_2d_gt"]}
        train_set = dataclasses.replace(train_set, pose_2d=train_set.meta["pose_2d_gt"], meta=meta)
    elif cfg.train_keypoints == "gt" and "pose_2d_gt" in train_set.meta:
        train_set = dataclasses.replace(train_set, pose_2d=train_set.meta["pose_2d_gt"])
    train = DeviceData.from_poseset(train_set, device, gmm_2d=getattr(noise_model, "needs_kernels", False))
    step = DenoiserStep.build(cfg, model, noise_model, train.pose_2d.shape[1], device)
    sched = torch.optim.lr_scheduler.StepLR(step.opt, step_size=cfg.lr_decay_every, gamma=cfg.lr_gamma)
    ckpt = run_dir / "checkpoint.pt"
    start = 0
    if ckpt.exists():
        st = load_checkpoint(ckpt, "denoiser", cfg_dict)
        check_resume_numerics(ckpt, st, numerics)
        check_state_shapes(ckpt, model, st["model"])
        check_state_shapes(ckpt, model, st["ema"], "EMA")
        model.load_state_dict(st["model"])
        step.ema.load_state_dict(st["ema"], st.get("ema_updates", 0))
        step.opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        set_rng_state(gen, st["rng"])
        start = st["epoch"] + 1
    spe = steps_per_epoch(len(train), cfg.batch_size, drop_last=step.static)  # compiled: no short batch
    if progress:
        progress({"stage": "denoiser", "kind": "start", "epoch": start, "epochs": cfg.epochs,
                  "steps_per_epoch": spe, "frames": len(train), "batch_size": cfg.batch_size})
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        lr = float(step.opt.param_groups[0]["lr"])
        loss_v = _epoch(train, cfg.batch_size, gen, device, lambda x, y, *k: step(x, y, gen, *k),
                        StepTicker(progress, "denoiser", epoch + 1, cfg.epochs, spe), drop_last=step.static)
        sched.step()
        if not math.isfinite(loss_v):
            raise HarnessError(f"{run_dir}: training loss became {loss_v} at epoch {epoch + 1}; "
                               "stopped, last good checkpoint kept")
        if progress:  # before the checkpoint, as the lifter's
            progress({"stage": "denoiser", "kind": "epoch", "epoch": epoch + 1, "epochs": cfg.epochs,
                      "loss": loss_v, "seconds": time.perf_counter() - t0, "step": (epoch + 1) * spe,
                      "steps_per_epoch": spe, "lr": lr, "ema_decay": float(step.ema.decay())})
        if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs:
            save_checkpoint(ckpt, {"format": CHECKPOINT_FORMAT, "kind": "denoiser", "version": __version__,
                                   "config": cfg_dict, "epoch": epoch, "model": model.state_dict(),
                                   "ema": step.ema.state_dict(), "ema_updates": step.ema.num_updates,
                                   "optimizer": step.opt.state_dict(), "scheduler": sched.state_dict(),
                                   "rng": rng_state(gen), "noise": noise_model.to_dict(),
                                   "numerics": numerics})
    if cfg.eval_weights == "ema":  # the released recipes evaluate the raw weights (states[0])
        model.load_state_dict(step.ema.state_dict())
    return model
