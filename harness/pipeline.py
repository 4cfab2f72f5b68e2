"""One run, stage by stage: data -> lifter -> noise -> denoiser -> sampler -> metrics.

``run(cfg, out)`` holds a lock on the run folder, skips a run whose metrics exist for the same resolved
config (:func:`harness.runs.is_done`), and resumes an interrupted one from its checkpoints. The folder
layout is :mod:`harness.runs`'.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from harness import __version__
from harness.config import Config, validate
from harness.data import load_data
from harness.data.base import PoseSet
from harness.device import machine_info, select_device
from harness.errors import DataError
from harness.evaluate import evaluate
from harness.lifter import run_lifter_predictions, train_lifter
from harness.noise import build_noise_for, noise_from_dict
from harness.report.significance import clip_record
from harness.identity import numerics as current_numerics
from harness.identity import run_identity
from harness.runs import git_commit, is_done, lifter_dir, read_run_config, run_name, stale_note
from harness.safeio import read_json, save_npz, write_json
from harness.skeleton import H36M_PARENTS
from harness.train.checkpoint import check_state_shapes, evaluated_weights, load_checkpoint
from harness.train.loop import train_denoiser
from harness.train.records import Records, config_summary, history_summary

ProgressFn = Callable[[dict[str, Any]], None]


def build_denoiser_for(cfg: Config, parents: Sequence[int] = H36M_PARENTS) -> torch.nn.Module:
    """The denoiser of ``cfg.variant`` at the config's size on the skeleton ``parents`` (the data's,
    :attr:`PoseSet.parents`), on the fast path (:mod:`harness.models.fast`: the readable model's
    parameters, the node-major forward and fused kernels)."""
    from harness.models.fast import build_denoiser

    return build_denoiser(cfg.variant, hid_dim=cfg.hid_dim, num_layers=cfg.num_layers, n_head=cfg.n_head,
                          dropout=cfg.dropout, parents=parents)


def run(cfg: Config, out: Path, progress: ProgressFn | None = None, data: dict[str, PoseSet] | None = None,
        blocking: bool = True) -> Path:
    """One variant x noise x benchmark x seed: lifter (shared), noise fit, denoiser, evaluation.

    Holds a lock on the run folder (``blocking=False`` raises :class:`harness.locks.Busy` when another
    process has it); a finished run with the same config is not redone."""
    from harness.locks import folder_lock

    ident = run_identity(cfg)
    run_dir = Path(out) / run_name(cfg, ident)
    if data is None and not is_done(cfg, out, ident):
        data = load_data(cfg)  # bad data is refused before the run folder exists
    with folder_lock(run_dir, blocking=blocking):
        if is_done(cfg, out, ident):
            return run_dir
        note = stale_note(cfg, out, ident)
        if note and progress:
            progress({"stage": "note", "text": note})
        return _run(cfg, Path(out), run_dir, progress, data if data is not None else load_data(cfg), ident, note)


def _run(cfg: Config, out: Path, run_dir: Path, progress: ProgressFn | None, data: dict[str, PoseSet],
         ident: dict[str, Any], note: str | None = None) -> Path:
    t_start = time.perf_counter()
    device = select_device(cfg.device)
    write_json(run_dir / "config.json", cfg.to_dict())
    lifter_folder = lifter_dir(cfg, out)
    write_json(run_dir / "identity.json", {**ident, "lifter": lifter_folder.name})
    with Records(run_dir, "denoiser", progress) as rec:  # train.log, history.csv (and tb/) of the run
        rec.log(f"start: run {run_dir.name} (harness {__version__}, commit {git_commit() or 'unknown'}, "
                f"device {device})")
        rec.log("config: " + config_summary(cfg))
        rec.log(f"data: {len(data['train'])} training and {len(data['test'])} test frames, "
                f"{data['test'].num_joints} joints ("
                f"{'synthetic' if data['train'].meta.get('synthetic', cfg.data_root is None) else 'real'})")
        if note:
            rec.log(f"note: {note}")
        lifter_preds = train_lifter(cfg, data, out, device, rec, folder=lifter_folder)
        rec.log(_lifter_line(cfg, lifter_folder, rec))
        noise_model = build_noise_for(cfg, data, lifter_preds, out, progress=rec)
        write_json(run_dir / "noise.json", noise_model.to_dict())
        rec.log(f"noise: {noise_model!r}" + (" (fitted here)" if "gmm" in rec.seen else ""))
        torch.manual_seed(cfg.seed)
        gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        model = build_denoiser_for(cfg, parents=data["train"].parents).to(device)
        model = train_denoiser(cfg, model, data["train"], noise_model, run_dir, device, gen, rec,
                               numerics=ident["numerics"])
        metrics, per_frame = evaluate(cfg, model, data, lifter_preds["test"], noise_model, device,
                                      where=str(run_dir / "checkpoint.pt"), progress=rec)
        save_npz(run_dir / "per_frame.npz", **per_frame)
        result = _record(cfg, run_dir, device, data, len(data["train"]),
                         {**ident, "hash": run_dir.name.rsplit("-", 1)[1], "lifter": lifter_folder.name})
        result.update({"wall_time_s": round(time.perf_counter() - t_start, 2), "metrics": metrics,
                       "clips": clip_record(cfg.benchmark, per_frame),  # per-clip sums: `harness compare`
                       "history": _history(run_dir, lifter_folder, cfg)})
        write_json(run_dir / "metrics.json", result)
        rec.log(f"finish: metrics.json written in {result['wall_time_s']:.1f} s; " + _headline(metrics))
    return run_dir


def _lifter_line(cfg: Config, folder: Path, rec: Records) -> str:
    """The run log's line on the first stage: whose initial 3D, and whether this run trained the lifter."""
    if cfg.initial_3d:
        return f"lifter: none, the initial 3D is {cfg.initial_3d}"
    ev = rec.seen.get("lifter")
    if ev is None:
        how = "reused (its predictions.npz)"
    elif ev.get("kind") == "epoch":
        how = f"trained here to epoch {ev['epoch']}/{ev['epochs']}, loss {ev['loss']:.6f}"
    else:
        how = "predictions recomputed from its checkpoint"
    return f"lifter: shared/{folder.name} {how}; its records: shared/{folder.name}/train.log, history.csv"


def _history(run_dir: Path, lifter_folder: Path, cfg: Config) -> dict[str, Any]:
    """metrics.json's ``history``: epochs, steps and final loss per stage, from the stages' history.csv."""
    out = {}
    for stage, path in (("lifter", lifter_folder / "history.csv"), ("denoiser", run_dir / "history.csv")):
        summ = None if (stage == "lifter" and cfg.initial_3d) else history_summary(path, stage)
        if summ is not None:
            out[stage] = summ
    return out


def _headline(metrics: dict[str, Any]) -> str:
    """``diffusion P1 51.2 mm, lifter P1 55.0 mm`` (H36M's Avg, 3DHP's All MPJPE) for the log."""
    parts = []
    for name, m in metrics.items():
        v = m.get("p1", {}).get("Avg") if isinstance(m.get("p1"), dict) else m.get("All", {}).get("MPJPE")
        if isinstance(v, (int, float)):
            parts.append(f"{name} P1 {v:.2f} mm")
    return ", ".join(parts) or "no headline metric"


def _record(cfg: Config, run_dir: Path, device: torch.device, data: dict[str, PoseSet], train_frames: int,
            identity: dict[str, Any]) -> dict[str, Any]:
    """The provenance head of a run's ``metrics.json`` (and of an evaluation's file): version, run, config,
    seed, commit, ``identity``, date, machine, device, and what the data were."""
    return {"harness_version": __version__, "run": run_dir.name, "config": cfg.to_dict(), "seed": cfg.seed,
            "git_commit": git_commit(), "identity": identity,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(device), "device": str(device),
            "data": {"synthetic": bool(data["train"].meta.get("synthetic", cfg.data_root is None)),
                     "train_frames": train_frames, "test_frames": len(data["test"]),
                     "num_joints": data["test"].num_joints}}


def evaluate_run(run_dir: Path, device: str | None = None, progress: ProgressFn | None = None,
                 precision: str | None = None) -> dict[str, Any]:
    """Re-evaluate a finished run from its folder (config + checkpoint), in its own file.

    Writes ``eval-<precision>.json`` and ``eval-<precision>-per_frame.npz`` beside the training results,
    which it never touches (``metrics.json``, ``per_frame.npz``). The exception is a run folder made by
    ``harness import-weights``: it has no training results, and its evaluation is its ``metrics.json``.
    ``precision`` other than the run's own runs the denoiser's sampler in that precision; the shared
    lifter's predictions stay the run's (the lifter folder its ``identity.json`` names). The result
    records the numerics it ran under (``identity.numerics``) and the run's training numerics."""
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: run folder not found")
    cfg = read_run_config(run_dir)
    if device:
        cfg = cfg.replace(device=device)
    dev = select_device(cfg.device)
    eval_cfg = validate(cfg.replace(precision=precision), source="--precision") if precision else cfg
    st = load_checkpoint(run_dir / "checkpoint.pt", "denoiser", cfg.to_dict())
    if st["epoch"] + 1 < cfg.epochs:
        raise DataError(f"{run_dir / 'checkpoint.pt'}: training stopped at epoch {st['epoch'] + 1} of "
                        f"{cfg.epochs}; rerun `harness train` to finish it")
    data = load_data(cfg)  # the model is rebuilt on the data's skeleton (17 or 16 joints)
    model = build_denoiser_for(cfg, parents=data["train"].parents).to(dev)
    weights = evaluated_weights(st, cfg.eval_weights)
    check_state_shapes(run_dir / "checkpoint.pt", model, weights, "EMA" if cfg.eval_weights == "ema" else "model")
    model.load_state_dict(weights)
    noise_model = noise_from_dict(st["noise"])
    lifter_preds = run_lifter_predictions(cfg, run_dir, data, dev, progress)
    metrics, per_frame = evaluate(eval_cfg, model, data, lifter_preds["test"], noise_model, dev,
                                  where=str(run_dir / "checkpoint.pt"), progress=progress)
    imported = (run_dir / "origin.json").exists() and not (run_dir / "metrics.json").exists()
    trained = read_json(run_dir / "identity.json") if (run_dir / "identity.json").exists() else {}
    result = _record(cfg, run_dir, dev, data, 0 if imported else len(data["train"]),
                     {"numerics": current_numerics(eval_cfg),
                      "trained_numerics": trained.get("numerics") if isinstance(trained, dict) else None})
    if (run_dir / "origin.json").exists():
        result["origin"] = read_json(run_dir / "origin.json")
    result.update({"wall_time_s": round(time.perf_counter() - t_start, 2), "metrics": metrics,
                   "clips": clip_record(cfg.benchmark, per_frame),
                   "evaluated": result["date"], "eval_precision": eval_cfg.precision})
    if imported and eval_cfg.precision == cfg.precision:
        path, frames = run_dir / "metrics.json", run_dir / "per_frame.npz"
    else:
        path = run_dir / f"eval-{eval_cfg.precision}.json"
        frames = run_dir / f"eval-{eval_cfg.precision}-per_frame.npz"
    write_json(path, result)
    save_npz(frames, **per_frame)
    result["path"] = str(path)
    return result
