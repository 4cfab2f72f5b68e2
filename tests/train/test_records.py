"""harness.train.records: history.csv (one row per epoch, resumes without duplicates, never a torn row),
train.log, the TensorBoard branch (a fake SummaryWriter: the package is not installed here), the step
events within epochs, and the GMM fit's and the evaluation's progress events."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from harness.train import records as R
from tests.test_pipeline import tiny_cfg, tiny_data  # noqa: F401  (the shared tiny fixtures)

HEADER = "stage,epoch,step,loss,lr,time_s,ema_decay\n"


def _log_lines(folder) -> list[str]:
    """train.log without its timestamps."""
    text = (folder / "train.log").read_text()
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ", ln) for ln in text.splitlines()), text
    return [ln[21:] for ln in text.splitlines()]


def _epoch_ev(stage, epoch, loss, **kw):
    return {"stage": stage, "kind": "epoch", "epoch": epoch, "epochs": 3, "loss": loss, "seconds": 0.25,
            "step": epoch * 4, "steps_per_epoch": 4, "lr": 0.001, **kw}


def test_history_rows_exact_and_a_resume_drops_later_rows_and_a_torn_line(tmp_path):
    h = R.History(tmp_path / "history.csv")
    h.append({"stage": "lifter", "epoch": 1, "step": 4, "loss": 0.1, "lr": 1e-3, "time_s": 0.5})
    h.append({"stage": "lifter", "epoch": 2, "step": 8, "loss": 1 / 3, "lr": 5e-4, "time_s": 0.25})
    assert h.path.read_text() == HEADER + "lifter,1,4,0.1,0.001,0.5,\nlifter,2,8,0.3333333333333333,0.0005,0.25,\n"
    with open(h.path, "a") as fh:  # a write cut short by a kill
        fh.write("lifter,3,12,0.2")
    assert [r["epoch"] for r in h.rows()] == ["1", "2"]  # the torn line is no row
    h.keep_until("lifter", 1)  # resumed from epoch 1's checkpoint
    assert h.path.read_text() == HEADER + "lifter,1,4,0.1,0.001,0.5,\n"
    h.append({"stage": "lifter", "epoch": 2, "step": 8, "loss": 0.25, "lr": 5e-4, "time_s": 0.5})
    assert h.path.read_text() == HEADER + "lifter,1,4,0.1,0.001,0.5,\nlifter,2,8,0.25,0.0005,0.5,\n"
    before = h.path.stat().st_mtime_ns
    h.keep_until("lifter", 2)  # nothing to drop: the file is not rewritten
    assert h.path.stat().st_mtime_ns == before
    h.keep_until("denoiser", 0)  # another stage's fresh start keeps these rows
    assert len(h.rows()) == 2
    h.keep_until("lifter", 0)  # a fresh start of the stage: none of its rows
    assert h.path.read_text() == HEADER
    assert R.history_summary(h.path, "lifter") is None


def test_step_ticker_reads_the_running_mean_at_its_interval():
    events = []
    tick = R.StepTicker(events.append, "denoiser", 2, 3, 4, every_s=0.0)
    total, count = torch.zeros(()), 0
    for k, (loss, n) in enumerate([(2.0, 4), (1.0, 4), (0.5, 2)], start=1):  # (mean loss, batch size)
        total += loss * n
        count += n
        tick(k, total, count)
    assert [(e["step"], e["loss"]) for e in events] == [(1, 2.0), (2, 1.5), (3, 1.3)]  # 8/4, 12/8, 13/10
    assert events[0] == {"stage": "denoiser", "kind": "step", "epoch": 2, "epochs": 3, "step": 1,
                         "steps_per_epoch": 4, "loss": 2.0}
    quiet = []
    slow = R.StepTicker(quiet.append, "denoiser", 1, 3, 4, every_s=float("inf"))
    slow(1, total, 10)
    assert quiet == []  # between intervals it only reads the clock
    assert R.steps_per_epoch(513, 256) == 3 and R.steps_per_epoch(512, 256) == 2 and R.steps_per_epoch(0, 8) == 0


def test_records_log_history_and_tensorboard_with_a_fake_writer(tmp_path, monkeypatch):
    written = []

    class FakeWriter:
        def __init__(self, log_dir, purge_step=None):
            written.append(("open", log_dir, purge_step))

        def add_scalar(self, tag, value, step):
            written.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            written.append(("close",))

    monkeypatch.setattr(R, "summary_writer_class", lambda: FakeWriter)
    forwarded = []
    with R.Records(tmp_path, "denoiser", forwarded.append) as rec:
        rec({"stage": "denoiser", "kind": "start", "epoch": 1, "epochs": 3, "steps_per_epoch": 4, "frames": 16,
             "batch_size": 4})
        rec({"stage": "denoiser", "kind": "step", "epoch": 2, "epochs": 3, "step": 2, "steps_per_epoch": 4,
             "loss": 0.75})
        rec(_epoch_ev("denoiser", 2, 0.5, ema_decay=0.9))
        rec({"stage": "lifter", "kind": "epoch", "epoch": 1, "epochs": 1, "loss": 9.0, "seconds": 1.0})
        rec({"stage": "note", "text": "a note"})
    assert len(forwarded) == 5  # every event passed on
    assert written == [("open", str(tmp_path / "tb"), 4), ("denoiser/running_loss", 0.75, 6),
                       ("denoiser/loss", 0.5, 8), ("denoiser/lr", 0.001, 8), ("denoiser/ema_decay", 0.9, 8),
                       ("denoiser/epoch_seconds", 0.25, 8), ("close",)]
    assert (tmp_path / "history.csv").read_text() == HEADER + "denoiser,2,8,0.5,0.001,0.25,0.9\n"  # not the lifter's
    assert _log_lines(tmp_path) == [
        "denoiser: 3 epochs of 4 steps (batch 4, 16 training frames); resuming after epoch 1 (its checkpoint)",
        "tensorboard: event files in tb/",
        "denoiser epoch 2/3  loss 0.500000  lr 0.001  ema 0.9  0.2 s",
        "note: a note"]
    assert rec.seen["lifter"]["loss"] == 9.0


def test_without_tensorboard_one_line_and_errors_are_logged(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "summary_writer_class", lambda: None)
    with pytest.raises(KeyboardInterrupt):
        with R.Records(tmp_path, "lifter") as rec:
            for _ in range(2):  # a second start (the lifter resumed in the same process) says it once
                rec({"stage": "lifter", "kind": "start", "epoch": 0, "epochs": 1, "steps_per_epoch": 2,
                     "frames": 3, "batch_size": 2})
            rec({"stage": "gmm", "done": 0, "total": 17})
            rec({"stage": "gmm", "done": 9, "total": 17})
            rec({"stage": "gmm", "done": 17, "total": 17})
            raise KeyboardInterrupt
    with open(tmp_path / "train.log", "a") as fh:
        fh.write("2020-01-01 00:00:00  a line cut sho")  # torn by a kill
    from harness.errors import DataError

    with pytest.raises(DataError):
        with R.Records(tmp_path, "lifter"):
            raise DataError("x.npz: broken\nsecond line")
    lines = _log_lines(tmp_path)
    assert lines[0] == "lifter: 1 epochs of 2 steps (batch 2, 3 training frames)"
    assert lines[1] == R.TB_NOT_INSTALLED and lines.count(R.TB_NOT_INSTALLED) == 1
    assert lines[2] == lines[0]  # the second start is logged (the first line once more), tensorboard is not
    assert lines[3] == "gmm fit: started (17 joints)" and re.fullmatch(r"gmm fit: done in \d+\.\d s", lines[4])
    assert lines[5:] == ["interrupted: finished results are kept; rerun to resume", "a line cut sho",
                         "error: x.npz: broken second line"]  # the error's one line, as the CLI prints it
    assert not (tmp_path / "tb").exists()


def test_training_resumed_after_a_kill_has_each_epoch_once_and_the_uninterrupted_rows(
        tmp_path, tiny_cfg, tiny_data):
    """A denoiser stopped after epoch 2's row was written but before its checkpoint (and with a torn row
    after it), then resumed from epoch 1's: history.csv is the uninterrupted run's, row for row (times aside)."""
    from harness.noise import GaussianNoise
    from harness.pipeline import build_denoiser_for
    from harness.train.loop import train_denoiser

    cfg = tiny_cfg.replace(epochs=2)

    def train(run_dir, stop_at=None):
        def progress(ev):
            if ev.get("kind") == "epoch" and ev["epoch"] == stop_at:
                raise KeyboardInterrupt  # after the row, before the checkpoint: as a kill there

        run_dir.mkdir(exist_ok=True)
        torch.manual_seed(cfg.seed)
        with R.Records(run_dir, "denoiser", progress) as rec:
            train_denoiser(cfg, build_denoiser_for(cfg), tiny_data["train"], GaussianNoise(), run_dir,
                           torch.device("cpu"), torch.Generator().manual_seed(cfg.seed + 1), rec)

    def rows(run_dir):
        return [{k: v for k, v in r.items() if k != "time_s"} for r in R.History(run_dir / "history.csv").rows()]

    train(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "b", stop_at=2)
    assert [r["epoch"] for r in rows(tmp_path / "b")] == ["1", "2"]
    with open(tmp_path / "b" / "history.csv", "a") as fh:
        fh.write("denoiser,9,")
    train(tmp_path / "b")
    spe = R.steps_per_epoch(len(tiny_data["train"]), cfg.batch_size)
    full = rows(tmp_path / "a")
    assert [(r["stage"], r["epoch"], r["step"], r["lr"]) for r in full] == [
        ("denoiser", str(e), str(e * spe), "0.001") for e in (1, 2)]
    assert rows(tmp_path / "b") == full
    assert float(full[0]["ema_decay"]) == pytest.approx((1 + spe) / (10 + spe))  # the next update's decay
    log = _log_lines(tmp_path / "b")
    assert [ln for ln in log if ln.startswith("denoiser: ")][1].endswith("resuming after epoch 1 (its checkpoint)")
    assert [ln.split("  ")[0] for ln in log if " epoch " in ln and "loss" in ln] == [
        "denoiser epoch 1/2", "denoiser epoch 2/2", "denoiser epoch 2/2"]
    assert "interrupted: finished results are kept; rerun to resume" in log


def test_gmm_fit_reports_each_joint():
    from harness.noise import GMMNoise

    r = np.random.default_rng(0).normal(size=(40, 3, 5))
    events = []
    GMMNoise.fit(r, max_components=1, progress=events.append)
    assert events == [{"stage": "gmm", "done": j, "total": 3} for j in range(4)]


def test_progress_printer_bars_move_within_epochs(monkeypatch):
    """train's printer on a terminal: bars in steps (lifter, denoiser), joints (GMM) and batches (eval)."""
    import io

    from rich.console import Console

    import harness.cli as cli

    monkeypatch.setattr(cli, "console", Console(file=io.StringIO(), force_terminal=True, width=100))
    with cli._progress_printer() as p:
        p({"stage": "denoiser", "kind": "start", "epoch": 1, "epochs": 3, "steps_per_epoch": 10, "frames": 95,
           "batch_size": 10})
        task = p.prog.tasks[0]
        assert (task.completed, task.total) == (10, 30)  # resumed after epoch 1
        p({"stage": "denoiser", "kind": "step", "epoch": 2, "epochs": 3, "step": 4, "steps_per_epoch": 10,
           "loss": 0.5})
        assert task.completed == 14 and task.description == "denoiser epoch 2/3 loss 0.5000"
        p(_epoch_ev("denoiser", 2, 0.25) | {"step": 20, "steps_per_epoch": 10})
        assert task.completed == 20
        p({"stage": "eval", "done": 3, "total": 8})
        assert (p.prog.tasks[1].completed, p.prog.tasks[1].total) == (3, 8)
