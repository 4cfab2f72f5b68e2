"""harness.train.loop and harness.train.step: the loops stop cleanly on a NaN loss, and the step that
trains is the step ``harness bench`` times."""

from __future__ import annotations

import pytest

from tests.test_pipeline import tiny_cfg, tiny_data  # noqa: F401  (the shared tiny fixtures)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_cfg, tiny_data):
    """Noise turned to NaN after the first epoch: the run stops at epoch 2 with a clear message, and
    the checkpoint on disk is epoch 1's, with finite weights."""
    import torch

    from harness.train.checkpoint import load_checkpoint
    from harness.train.loop import train_denoiser
    from harness.pipeline import build_denoiser_for
    from harness.errors import HarnessError
    from harness.noise import GaussianNoise

    class Poisoned(GaussianNoise):
        bad = False

        def sample(self, *a, **kw):
            e = super().sample(*a, **kw)
            return e * float("nan") if self.bad else e

    noise = Poisoned()

    def progress(ev):
        if ev.get("stage") == "denoiser" and ev.get("kind") == "epoch" and ev["epoch"] == 1:
            noise.bad = True

    cfg = tiny_cfg.replace(epochs=3)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(HarnessError, match=r"training loss became nan at epoch 2; stopped, last good checkpoint kept"):
        torch.manual_seed(cfg.seed)
        train_denoiser(cfg, build_denoiser_for(cfg), tiny_data["train"], noise, run_dir, torch.device("cpu"),
                       torch.Generator().manual_seed(cfg.seed + 1), progress=progress)
    st = load_checkpoint(run_dir / "checkpoint.pt", "denoiser", cfg.to_dict())
    assert st["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in st["model"].values() if v.dtype.is_floating_point)


def test_bench_and_training_run_the_same_step(tmp_path, tiny_cfg, tiny_data, monkeypatch):
    """``harness bench`` times :class:`DenoiserStep`, the step the training loop runs (it once timed a
    copy of it): count the calls of the one step function from both."""
    import torch

    from harness.bench import run_bench
    from harness.noise import GaussianNoise
    from harness.pipeline import build_denoiser_for
    from harness.train import step as S
    from harness.train.loop import train_denoiser

    calls = []
    original = S.DenoiserStep.__call__

    def counted(self, x2d, y3d, gen):
        calls.append(x2d.shape[0])
        return original(self, x2d, y3d, gen)

    monkeypatch.setattr(S.DenoiserStep, "__call__", counted)
    cfg = tiny_cfg.replace(epochs=1)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    train_denoiser(cfg, build_denoiser_for(cfg), tiny_data["train"], GaussianNoise(), run_dir, torch.device("cpu"),
                   torch.Generator().manual_seed(1))
    n = len(tiny_data["train"])
    assert calls == [min(cfg.batch_size, n - i) for i in range(0, n, cfg.batch_size)]
    calls.clear()
    run_bench(["baseline"], batch=8, device="cpu", hypotheses=(1,), out_dir=None, hid_dim=8, num_layers=1,
              n_head=2, reps=2, warmup=1, max_other_load=float("inf"))
    assert calls and set(calls) == {8}  # warm-up + timed + the peak-memory step, all through DenoiserStep
