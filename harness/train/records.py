"""Training records: a folder's ``train.log`` (human-readable lines), ``history.csv`` (one row per
epoch) and, when the ``tensorboard`` package is importable, TensorBoard event files in ``tb/``.

A run folder records the denoiser, a shared lifter folder (``<out>/shared/lifter-*``) the lifter.
:class:`Records` is a progress callback: it records the events of the training loops
(:mod:`harness.train.loop`), the GMM fit (:mod:`harness.noise`) and the evaluation
(:mod:`harness.evaluate`) and passes every event on unchanged. The events::

    {"stage": S, "kind": "start", "epoch": E0, "epochs": E, "steps_per_epoch": n, "frames": N, "batch_size": B}
    {"stage": S, "kind": "step",  "epoch": e, "epochs": E, "step": k, "steps_per_epoch": n, "loss": running}
    {"stage": S, "kind": "epoch", "epoch": e, "epochs": E, "step": e * n, "steps_per_epoch": n, "loss": loss,
                                  "lr": lr, "seconds": t[, "ema_decay": d]}
    {"stage": "gmm", "done": j, "total": J}      {"stage": "eval", "done": b, "total": NB}
    {"stage": "note", "text": ...}

``S`` is ``lifter`` or ``denoiser``; ``E0`` the epochs already done (those of the checkpoint resumed
from, 0 for a fresh start); ``e`` counts from 1; ``k`` is the steps done in epoch ``e`` and
``running`` their mean loss per sample, read from the device every :data:`STEP_EVENT_SECONDS`
(the training step itself never waits for the host); ``loss`` is the epoch's mean loss per sample,
``lr`` the learning rate its steps used, ``ema_decay`` the decay of the EMA's next update.

``history.csv`` columns are :data:`HISTORY_COLUMNS`; ``step`` is the optimiser steps done at the end
of the epoch, ``time_s`` the epoch's wall seconds. Each row is one ``write`` of one whole line,
flushed; a run resumed from a checkpoint first drops the rows after the checkpoint's epoch (and a
torn last line an interrupted write left), so the file holds each epoch once.
"""

from __future__ import annotations

import csv
import io
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from harness.safeio import atomic_path

ProgressFn = Callable[[dict[str, Any]], None]

HISTORY_COLUMNS = ("stage", "epoch", "step", "loss", "lr", "time_s", "ema_decay")
STEP_EVENT_SECONDS = 1.0  # how often the loops read the running loss off the device for a "step" event
TB_NOT_INSTALLED = ("tensorboard: not installed, no event files (pip install 'harness[tensorboard]' "
                    "to get them in tb/)")


# ---------------------------------------------------------------------------------- the loops' side
class StepTicker:
    """The loops' "step" events of one epoch: ``tick(k, total, count)`` after step ``k`` (1-based) with
    the epoch's on-device loss sum ``total`` over ``count`` samples. Every ``every_s`` seconds (default
    :data:`STEP_EVENT_SECONDS`; 0: every step) it reads ``total`` (the one host sync) and sends
    ``progress`` the running mean; otherwise it only reads the clock."""

    def __init__(self, progress: ProgressFn | None, stage: str, epoch: int, epochs: int, steps_per_epoch: int,
                 every_s: float | None = None):
        self.progress, self.stage, self.epoch, self.epochs, self.spe = progress, stage, epoch, epochs, steps_per_epoch
        self.every_s = STEP_EVENT_SECONDS if every_s is None else every_s
        self.last = time.perf_counter()

    def __call__(self, k: int, total, count: int) -> None:
        if self.progress is None:
            return
        now = time.perf_counter()
        if now - self.last < self.every_s:
            return
        self.last = now
        self.progress({"stage": self.stage, "kind": "step", "epoch": self.epoch, "epochs": self.epochs,
                       "step": k, "steps_per_epoch": self.spe, "loss": float(total) / max(count, 1)})


def steps_per_epoch(frames: int, batch_size: int, drop_last: bool = False) -> int:
    """Optimiser steps of one epoch: ``ceil(frames / batch_size)`` (the last batch short), or with
    ``drop_last`` (a compiled step, :func:`harness.train.loop._epoch`) ``frames // batch_size``, the
    batch being at most the split."""
    if not frames:
        return 0
    if drop_last:
        return frames // min(batch_size, frames)
    return math.ceil(frames / batch_size)


def config_summary(cfg, keys=None) -> str:
    """``key=value, ...`` of ``cfg``'s fields (those in ``keys``, given) that differ from
    :class:`harness.config.Config`'s defaults, in field order (the whole config is ``config.json``)."""
    from harness.config import FIELD_DEFAULTS

    d = cfg.to_dict()
    items = [(k, v) for k, v in d.items() if (keys is None or k in keys) and v != FIELD_DEFAULTS.get(k)]
    return ", ".join(f"{k}={v}" for k, v in items) or "the defaults"


# ------------------------------------------------------------------------------------- history.csv
def _line(values: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    return repr(float(v)) if isinstance(v, float) else v  # repr: the shortest text that reads back exactly


class History:
    """A folder's ``history.csv``: rows of :data:`HISTORY_COLUMNS`, appended one whole line at a time."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def rows(self) -> list[dict[str, str]]:
        """The complete rows (a last line without its newline, torn by an interrupted write, is not one)."""
        if not self.path.exists():
            return []
        text = self.path.read_text(errors="replace")
        lines = text.splitlines(keepends=True)
        complete = [ln for ln in lines if ln.endswith("\n")]
        if not complete:
            return []
        reader = csv.reader(complete)
        header = next(reader)
        return [dict(zip(header, r)) for r in reader if len(r) == len(header)]

    def keep_until(self, stage: str, epoch: int) -> None:
        """Drop ``stage``'s rows after ``epoch`` (and any torn line); rewritten atomically when anything
        changes. ``epoch`` 0: a fresh start, no row of the stage is kept."""
        if not self.path.exists():
            return
        rows = self.rows()
        keep = [r for r in rows if r.get("stage") != stage or _int(r.get("epoch")) <= epoch]
        text = _line(list(HISTORY_COLUMNS)) + "".join(_line([r.get(c, "") for c in HISTORY_COLUMNS]) for r in keep)
        if text == self.path.read_text(errors="replace"):
            return
        with atomic_path(self.path, suffix=".csv") as tmp:
            tmp.write_text(text)

    def append(self, row: dict[str, Any]) -> None:
        """One row (missing columns empty), one ``write`` of one line, flushed; the header first in a new file."""
        line = _line([_cell(row.get(c)) for c in HISTORY_COLUMNS])
        new = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="") as fh:
            fh.write((_line(list(HISTORY_COLUMNS)) if new else "") + line)
            fh.flush()

    def last(self, stage: str) -> dict[str, str] | None:
        rows = [r for r in self.rows() if r.get("stage") == stage]
        return rows[-1] if rows else None


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 1 << 62  # an unreadable epoch is dropped with the rows after the checkpoint


def history_summary(path: Path, stage: str) -> dict[str, Any] | None:
    """``{"epochs", "steps", "final_loss"}`` of ``stage``'s last row in the ``history.csv`` at ``path``,
    or None when it has none (the small summary a run's ``metrics.json`` keeps)."""
    row = History(path).last(stage)
    if row is None:
        return None
    try:
        return {"epochs": int(row["epoch"]), "steps": int(row["step"]), "final_loss": float(row["loss"])}
    except (KeyError, ValueError):
        return None


# ------------------------------------------------------------------------------------- TensorBoard
def summary_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``, or None when the ``tensorboard`` package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


# ------------------------------------------------------------------------------------------ Records
class Records:
    """The records of one training folder for ``stage`` (``lifter`` or ``denoiser``), as a progress
    callback that passes every event on to ``progress``. Use as a context manager: leaving it on an
    error logs the error's line (or ``interrupted``) and closes the event files."""

    def __init__(self, folder: Path, stage: str, progress: ProgressFn | None = None, tensorboard: bool = True):
        self.folder, self.stage, self.forward = Path(folder), stage, progress
        self.history = History(self.folder / "history.csv")
        self.log_path = self.folder / "train.log"
        self.tensorboard = tensorboard
        self.writer = None
        self.seen: dict[str, dict[str, Any]] = {}  # the last event of each other stage ("lifter", "gmm", ...)
        self._t: dict[str, float] = {}
        self._tail_checked = self._tb_checked = False

    # -- the log
    def log(self, text: str) -> None:
        """One timestamped line per line of ``text`` in ``train.log``, flushed."""
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        self.folder.mkdir(parents=True, exist_ok=True)
        lead = ""
        if not self._tail_checked:  # a line an interrupted write left without its newline is ended first
            self._tail_checked = True
            if self.log_path.exists() and self.log_path.stat().st_size:
                with open(self.log_path, "rb") as fh:
                    fh.seek(-1, 2)
                    lead = "" if fh.read(1) == b"\n" else "\n"
        with open(self.log_path, "a") as fh:
            fh.write(lead + "".join(f"{stamp}  {ln}\n" for ln in str(text).splitlines() or [""]))
            fh.flush()

    def __enter__(self) -> "Records":
        return self

    def __exit__(self, typ, exc, tb) -> None:
        try:
            if typ is KeyboardInterrupt:
                self.log("interrupted: finished results are kept; rerun to resume")
            elif typ is not None:
                self.log(f"error: {str(exc).splitlines()[0] if str(exc) else typ.__name__}")
        except OSError:  # a full disk: the error being raised is the one to report
            pass
        finally:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    # -- the events
    def __call__(self, ev: dict[str, Any]) -> None:
        self.record(ev)
        if self.forward:
            self.forward(ev)

    def record(self, ev: dict[str, Any]) -> None:
        stage, kind = ev.get("stage"), ev.get("kind")
        if stage == self.stage and kind == "start":
            self._start(ev)
        elif stage == self.stage and kind == "epoch":
            self._epoch(ev)
        elif stage == self.stage and kind == "step":
            if self.writer is not None:
                spe = ev.get("steps_per_epoch") or 0
                self.writer.add_scalar(f"{stage}/running_loss", ev["loss"], (ev["epoch"] - 1) * spe + ev["step"])
        elif stage == "note":
            self.log(f"note: {ev.get('text', '')}")
        elif stage in ("gmm", "eval"):
            self._counted(stage, ev)
        elif stage is not None:
            self.seen[stage] = ev

    def _start(self, ev: dict[str, Any]) -> None:
        done, epochs, spe = ev["epoch"], ev["epochs"], ev.get("steps_per_epoch") or 0
        self.history.keep_until(self.stage, done)
        what = (f"{self.stage}: {epochs} epochs of {spe} steps (batch {ev.get('batch_size')}, "
                f"{ev.get('frames')} training frames)")
        self.log(what + (f"; resuming after epoch {done} (its checkpoint)" if done else ""))
        if self.tensorboard and not self._tb_checked:
            self._tb_checked = True
            cls = summary_writer_class()
            if cls is None:
                self.log(TB_NOT_INSTALLED)
            else:  # purge_step: a resumed run hides the events it logged after its checkpoint
                self.writer = cls(log_dir=str(self.folder / "tb"), purge_step=done * spe if done else None)
                self.log("tensorboard: event files in tb/")

    def _epoch(self, ev: dict[str, Any]) -> None:
        row = {"stage": self.stage, "epoch": ev["epoch"], "step": ev.get("step"), "loss": float(ev["loss"]),
               "lr": ev.get("lr"), "time_s": round(float(ev.get("seconds", 0.0)), 3), "ema_decay": ev.get("ema_decay")}
        self.history.append(row)
        ema = f"  ema {ev['ema_decay']:.6g}" if ev.get("ema_decay") is not None else ""
        lr = f"  lr {ev['lr']:.6g}" if ev.get("lr") is not None else ""
        self.log(f"{self.stage} epoch {ev['epoch']}/{ev['epochs']}  loss {ev['loss']:.6f}{lr}{ema}  "
                 f"{row['time_s']:.1f} s")
        if self.writer is not None:
            step = ev.get("step") or ev["epoch"]
            self.writer.add_scalar(f"{self.stage}/loss", ev["loss"], step)
            if ev.get("lr") is not None:
                self.writer.add_scalar(f"{self.stage}/lr", ev["lr"], step)
            if ev.get("ema_decay") is not None:
                self.writer.add_scalar(f"{self.stage}/ema_decay", ev["ema_decay"], step)
            self.writer.add_scalar(f"{self.stage}/epoch_seconds", row["time_s"], step)
            self.writer.flush()

    def _counted(self, stage: str, ev: dict[str, Any]) -> None:
        """The GMM fit's and the evaluation's first and last events (the bar in between is the CLI's)."""
        self.seen[stage] = ev
        done, total = ev.get("done"), ev.get("total")
        name = {"gmm": "gmm fit", "eval": "evaluation"}[stage]
        unit = {"gmm": "joints", "eval": "batches"}[stage]
        if not done:
            self._t[stage] = time.perf_counter()
            self.log(f"{name}: started ({total} {unit})" if total is not None else f"{name}: started")
        elif total is not None and done >= total:
            self.log(f"{name}: done in {time.perf_counter() - self._t.get(stage, time.perf_counter()):.1f} s")
