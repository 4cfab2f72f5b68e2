"""``harness bench``: training and inference throughput of the denoiser variants.

For each variant, on synthetic poses resident on the device (batches gathered by index, as
:func:`harness.engine.train_denoiser` does), it measures

* **training samples/s**: full optimiser steps exactly as ``train_denoiser`` runs them (flip
  augmentation, noise and antithetic timesteps, ``q_sample``, forward under the precision's
  autocast, loss, backward, gradient clipping, Adam, EMA update);
* **denoiser poses/s**: one forward pass over ``batch`` poses in eval mode under ``no_grad``;
* **end-to-end poses/s** per hypothesis count ``H``: the GraFormer lifter with flip averaging, then
  ``H`` runs of the DDIM sampler with flip averaging (:class:`harness.engine.Sampler`; ``H = 1``
  starts from the lifter's pose, ``H > 1`` draws ``H`` noisy starts as ``harness eval`` does);
* **peak memory** of a training step: on CUDA ``max_memory_allocated``; on the CPU the peak
  resident set size above the pre-step level, sampled every millisecond (an estimate).

Every figure is the median over repetitions after warm-up (the machine may be shared). The
result is a dict (also written as JSON under ``out_dir``) and :func:`format_table` prints it.

``reference=True`` times the plain released-style implementation
(:mod:`harness.models.reference`) instead of the fast one, with the same weights, so a
before/after table can come from one process; ``compile=True`` wraps the models in
``torch.compile`` (the compile time is reported).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from harness.errors import ConfigError

__all__ = ["format_table", "run_bench"]

PRECISIONS = ("fp32", "bf16")


# --- timing helpers ------------------------------------------------------------------------------

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn: Callable[[], Any], device: torch.device, reps: int, warmup: int) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _PeakMemory:
    """Peak memory while the block runs: CUDA allocator peak, or sampled RSS above the start."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0
        self._stop = threading.Event()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes() - self._base)
            time.sleep(0.001)

    def __enter__(self) -> "_PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = _rss_bytes()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss_bytes() - self._base)


# --- the benchmark -------------------------------------------------------------------------------

def _models(variant: str, cfg, reference: bool):
    from harness.models import build_denoiser, build_lifter
    from harness.models.reference import build_reference_denoiser, build_reference_lifter

    torch.manual_seed(cfg.seed)
    fast = build_denoiser(variant, hid_dim=cfg.hid_dim, num_layers=cfg.num_layers, n_head=cfg.n_head,
                          dropout=cfg.dropout)
    torch.manual_seed(cfg.seed)
    lifter = build_lifter(hid_dim=cfg.lifter_hid_dim, num_layers=cfg.lifter_layers, n_head=cfg.lifter_heads,
                          dropout=cfg.lifter_dropout)
    if not reference:
        return fast, lifter
    ref = build_reference_denoiser(variant, hid_dim=cfg.hid_dim, num_layers=cfg.num_layers,
                                   n_head=cfg.n_head, dropout=cfg.dropout)
    ref.load_state_dict(fast.state_dict())
    ref_l = build_reference_lifter(hid_dim=cfg.lifter_hid_dim, num_layers=cfg.lifter_layers,
                                   n_head=cfg.lifter_heads, dropout=cfg.lifter_dropout)
    ref_l.load_state_dict(lifter.state_dict())
    return ref, ref_l


def _train_step_fn(cfg, model, data, device, gen):
    """One optimiser step of :func:`harness.engine.train_denoiser` on a random batch."""
    from harness.diffusion import DDIMScheduler, antithetic_timesteps, noise_prediction_loss
    from harness.engine import EMA, Flip, _autocast
    from harness.noise import GaussianNoise

    pose_2d, pose_3d = data
    n, b, T = pose_2d.shape[0], cfg.batch_size, cfg.num_timesteps
    ema = EMA(model, cfg.ema_rate)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    diffusion = DDIMScheduler(beta_start=cfg.beta_start, beta_end=cfg.beta_end, num_train_timesteps=T)
    flip = Flip(pose_2d.shape[1], device=device)
    noise_model = GaussianNoise(num_joints=pose_2d.shape[1])
    state = {"perm": torch.randperm(n, generator=gen, device=device), "i": 0}

    def step():
        if state["i"] + b > n:
            state["perm"], state["i"] = torch.randperm(n, generator=gen, device=device), 0
        idx = state["perm"][state["i"]:state["i"] + b]
        state["i"] += b
        x2d, y3d = pose_2d[idx], pose_3d[idx]
        m = torch.rand(b, generator=gen, device=device) < 0.5
        x2d, y3d = flip.random(x2d, m), flip.random(y3d, m)
        x0 = torch.cat([x2d, y3d], dim=-1)
        eps = noise_model.sample(b, generator=gen, device=device)
        t = antithetic_timesteps(b, T, generator=gen, device=device)
        x_t = diffusion.q_sample(x0, t, eps)
        with _autocast(device, cfg.precision):
            eps_pred = model(x_t, t, x2d).float()
        loss = noise_prediction_loss(eps_pred, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        ema.update(model)
        return loss.detach()

    return step


def _synthetic_poses(num: int, device: torch.device, gen: torch.Generator):
    pose_2d = torch.randn(num, 17, 2, generator=gen, device=device) * 0.3
    pose_3d = torch.randn(num, 17, 3, generator=gen, device=device) * 0.3
    return pose_2d, pose_3d


def run_bench(variants: Sequence[str] | None = None, batch: int = 1024, device: str = "cpu",
              precision: str = "fp32", hypotheses: Sequence[int] = (1, 5),
              out_dir: str | Path | None = Path("results/bench"), *, hid_dim: int = 96, num_layers: int = 5,
              n_head: int = 4, reps: int = 5, warmup: int = 2, reference: bool = False,
              compile: bool = False, seed: int = 0, tag: str | None = None,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure each variant (see the module docstring); returns the result dict and, when
    ``out_dir`` is given, writes it to ``out_dir/<tag or auto name>.json``."""
    from harness.config import Config
    from harness.engine import Flip, Sampler, machine_info, select_device, write_json
    from harness.models import VARIANTS, count_parameters

    variants = list(variants) if variants else list(VARIANTS)
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ConfigError(f"--variant {bad[0]!r}: unknown; valid: {', '.join(VARIANTS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r}: must be one of {', '.join(PRECISIONS)}")
    if batch < 2:
        raise ConfigError(f"--batch {batch}: must be >= 2")
    hypotheses = sorted({int(h) for h in hypotheses})
    if not hypotheses or hypotheses[0] < 1:
        raise ConfigError("--hypotheses: counts must be >= 1")
    if reps < 1 or warmup < 0:
        raise ConfigError("reps must be >= 1 and warmup >= 0")
    dev = select_device(device)
    cfg = Config(hid_dim=hid_dim, num_layers=num_layers, n_head=n_head, batch_size=batch,
                 eval_batch_size=batch, precision=precision, seed=seed, device=str(dev))
    say = progress or (lambda s: None)

    gen = torch.Generator(device=dev).manual_seed(seed)
    data = _synthetic_poses(max(4 * batch, 4096), dev, gen)
    result: dict[str, Any] = {
        "kind": "bench", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(dev), "implementation": "reference" if reference else "fast",
        "compile": bool(compile), "precision": precision, "batch": batch, "device": str(dev),
        "model": {"hid_dim": hid_dim, "num_layers": num_layers, "n_head": n_head,
                  "lifter": {"hid_dim": cfg.lifter_hid_dim, "num_layers": cfg.lifter_layers,
                             "n_head": cfg.lifter_heads}},
        "sampler": {"timesteps": cfg.test_timesteps, "num_diffusion_timesteps": cfg.test_num_diffusion_timesteps,
                    "flip": True},
        "reps": reps, "warmup": warmup, "variants": {},
    }
    from harness.engine import _autocast

    for variant in variants:
        say(f"{variant}: building")
        model, lifter = _models(variant, cfg, reference)
        model, lifter = model.to(dev), lifter.to(dev)
        entry: dict[str, Any] = {"parameters": count_parameters(model)}
        run_model, run_lifter = model, lifter
        if compile:
            t0 = time.perf_counter()
            run_model = torch.compile(model)
            run_lifter = torch.compile(lifter)
        # training
        model.train()
        step = _train_step_fn(cfg, run_model, data, dev, gen)
        if compile:
            step()
            _sync(dev)
            entry["compile_seconds_train"] = round(time.perf_counter() - t0, 1)
        say(f"{variant}: training steps")
        with _PeakMemory(dev) as mem:
            t_step, times = _median_time(step, dev, reps, warmup)
        entry["train"] = {"step_seconds": t_step, "samples_per_s": batch / t_step,
                          "step_seconds_all": times, "peak_memory_mib": mem.peak / 2 ** 20}
        # one denoiser pass
        model.eval()
        lifter.eval()
        x2d, y3d = data[0][:batch], data[1][:batch]
        x = torch.cat([x2d, y3d], dim=-1)
        t = torch.full((batch,), cfg.test_num_diffusion_timesteps // cfg.test_timesteps, dtype=torch.long,
                       device=dev)

        def fwd():
            with torch.no_grad(), _autocast(dev, precision):
                return run_model(x, t, x2d)

        if compile:
            t0 = time.perf_counter()
            fwd()
            entry["compile_seconds_eval"] = round(time.perf_counter() - t0, 1)
        say(f"{variant}: denoiser pass")
        t_fwd, times = _median_time(fwd, dev, reps, warmup)
        entry["denoiser_pass"] = {"seconds": t_fwd, "poses_per_s": batch / t_fwd, "seconds_all": times}
        # end to end
        flip = Flip(17, device=dev)
        sampler = Sampler(cfg, run_model, flip, dev)
        from harness.engine import lifter_predict
        from harness.noise import GaussianNoise

        noise = GaussianNoise(num_joints=17)
        e2e = {}
        for h in hypotheses:
            def pipeline(h=h):
                lift = lifter_predict(run_lifter, x2d, flip, batch, precision, dev)
                if h == 1:
                    return sampler(x2d, lift)
                outs = [sampler(x2d, lift, start_noise=noise.sample(batch, generator=gen, device=dev),
                                flip_noise=noise.sample(batch, generator=gen, device=dev)) for _ in range(h)]
                return torch.stack(outs)

            say(f"{variant}: end to end, {h} hypothes{'is' if h == 1 else 'es'}")
            t_e2e, times = _median_time(pipeline, dev, max(1, reps // 2) if h > 1 else reps, 1)
            e2e[str(h)] = {"seconds": t_e2e, "poses_per_s": batch / t_e2e, "denoiser_passes": 2 * cfg.test_timesteps * h,
                           "seconds_all": times}
        entry["end_to_end"] = e2e
        result["variants"][variant] = entry
        del model, lifter, run_model, run_lifter, step, sampler

    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        name = tag or "-".join([dev.type, precision, "reference" if reference else "fast",
                                *(["compile"] if compile else []), f"b{batch}"])
        path = out / f"{name}.json"
        write_json(path, result)
        result["path"] = str(path)
    return result


def format_table(result: dict[str, Any]) -> list[list[str]]:
    """Rows (header first) summarising a :func:`run_bench` result; ``print_table`` prints them."""
    hyps = None
    rows = []
    for variant, e in result["variants"].items():
        if hyps is None:
            hyps = list(e["end_to_end"])
        rows.append([variant, f"{e['parameters']:,}", f"{e['train']['samples_per_s']:,.0f}",
                     f"{e['train']['step_seconds']:.2f}", f"{e['denoiser_pass']['poses_per_s']:,.0f}",
                     *[f"{e['end_to_end'][h]['poses_per_s']:,.0f}" for h in hyps],
                     f"{e['train']['peak_memory_mib']:,.0f}"])
    header = ["variant", "params", "train samples/s", "s/step", "denoiser poses/s",
              *[f"e2e H={h} poses/s" for h in (hyps or [])], "train peak MiB"]
    return [header] + rows


def print_table(result: dict[str, Any], file=None) -> None:
    """Plain-text table of :func:`format_table` (the CLI renders it with rich instead)."""
    rows = format_table(result)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    m = result["machine"]
    print(f"{result['implementation']} | {result['precision']} | batch {result['batch']} | {result['device']} | "
          f"{m.get('processor')} | torch {m.get('torch')} | {m.get('threads')} threads", file=file)
    for i, r in enumerate(rows):
        print("  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))), file=file)
        if i == 0:
            print("  ".join("-" * w for w in widths), file=file)
