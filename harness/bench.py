"""``harness bench``: training and inference throughput of the denoiser variants.

For each variant and implementation, on synthetic poses resident on the device (batches gathered
by index, as :func:`harness.train.loop.train_denoiser` does), it measures

* **training samples/s**: optimiser steps of :class:`harness.train.step.DenoiserStep`, the very
  step the training loop runs (flip augmentation, noise and antithetic timesteps, ``q_sample``,
  forward under the precision's autocast, loss, backward, gradient clipping, Adam, EMA update);
* **denoiser poses/s**: one forward pass over ``batch`` poses in eval mode under ``no_grad``;
* **end-to-end poses/s** per hypothesis count ``H``: the GraFormer lifter with flip averaging, then
  the DDIM sampler with flip averaging (:class:`harness.diffusion.sampler.Sampler`, 2 steps by default):
  ``H = 1`` is one sampler run from the lifter's pose (what ``harness eval`` reports), ``H > 1``
  is ``H`` runs from noisy starts (the multi-hypothesis evaluation); so ``2 * steps * H``
  denoiser passes per pose;
* **peak memory** of a training step (one extra step, after the timed ones), above the level
  before it: on CUDA ``max_memory_allocated``; on the CPU the bytes held from malloc (glibc's
  ``mallinfo2``, sampled every millisecond; the resident set size elsewhere);
* **output difference** from the float32 fast path with the same weights: the denoiser pass's
  largest absolute difference (for the reference implementation the equivalence check, for bf16
  its error) and, end to end (``H = 1``), the mean per-joint distance between the refined poses,
  in the poses' units (metres on H36M; an upper bound on how much MPJPE can move).

Implementations: ``fast`` (the fast path of :mod:`harness.models.fast`, what training runs),
``reference`` (the readable models of :mod:`harness.models`: plain batch-major torch, the released
code's math, same weights: the "before" of a before/after table from one process) and ``compiled`` (``fast`` under ``torch.compile``; the
compile time is reported).

Timing. Each figure is the median over ``reps`` repetitions after ``warmup`` runs. The machine
may be shared: on Linux every repetition also records how much CPU other processes used meanwhile
(from ``/proc/stat``), a repetition during which they used more than ``max_other_load`` of a core
is redone (up to ``3 * reps`` tries), and the result says how many were discarded.
"""

from __future__ import annotations

import ctypes
import math
import os
import statistics
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from harness.errors import ConfigError

__all__ = ["IMPLEMENTATIONS", "PRECISIONS", "SUITE_MODES", "count_ops", "format_table", "print_suite", "print_table",
           "run_bench", "run_gpu_suite"]

PRECISIONS = ("fp32", "bf16")
IMPLEMENTATIONS = ("fast", "reference", "compiled")


# --- timing helpers ------------------------------------------------------------------------------

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _busy_jiffies() -> int | None:
    try:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
        return sum(v) - v[3] - v[4]  # all but idle and iowait
    except (OSError, ValueError, IndexError):
        return None


class _OtherLoad:
    """CPU used by *other* processes while the block runs, in cores (Linux; None elsewhere)."""

    HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __enter__(self) -> "_OtherLoad":
        self._b0, self._s0, self._t0 = _busy_jiffies(), os.times(), time.perf_counter()
        self.cores: float | None = None
        return self

    def __exit__(self, *exc) -> None:
        b1, s1, t1 = _busy_jiffies(), os.times(), time.perf_counter()
        if self._b0 is None or b1 is None:
            return
        mine = (s1.user + s1.system - self._s0.user - self._s0.system) * self.HZ
        self.cores = max(0.0, (b1 - self._b0 - mine) / self.HZ / max(t1 - self._t0, 1e-9))


def _timed(fn: Callable[[], Any], device: torch.device, reps: int, warmup: int,
           max_other_load: float) -> dict[str, Any]:
    """Median seconds of ``fn`` over ``reps`` undisturbed repetitions (see the module docstring)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    kept, discarded, loads = [], [], []
    for _ in range(3 * reps):
        with _OtherLoad() as load:
            t0 = time.perf_counter()
            fn()
            _sync(device)
            dt = time.perf_counter() - t0
        loads.append(load.cores)
        if load.cores is not None and load.cores > max_other_load:
            discarded.append(dt)
        else:
            kept.append(dt)
        if len(kept) >= reps:
            break
    times = kept if kept else discarded
    return {"seconds": statistics.median(times), "seconds_all": [round(t, 4) for t in times],
            "discarded_disturbed": len(discarded),
            "other_load_max": max((x for x in loads if x is not None), default=None)}


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]


def _heap_in_use_fn() -> Callable[[], int] | None:
    """Bytes malloc has handed out and not taken back (glibc ``mallinfo2``), or None."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        fn = libc.mallinfo2
        fn.restype = _Mallinfo2
    except (OSError, AttributeError):
        return None

    def in_use() -> int:
        m = fn()
        return int(m.uordblks + m.hblkhd)

    return in_use


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _PeakMemory:
    """Peak memory while the block runs, above its level at the start: on CUDA the allocator's
    peak; on the CPU the bytes held from malloc (glibc), sampled every millisecond, else the
    resident set size."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0
        self.source = "cuda_max_memory_allocated" if device.type == "cuda" else None
        self._stop = threading.Event()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._read() - self._base)
            time.sleep(0.001)

    def __enter__(self) -> "_PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            heap = _heap_in_use_fn()
            self._read, self.source = (heap, "malloc_in_use") if heap else (_rss_bytes, "rss")
            self._base = self._read()
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
            self.peak = max(self.peak, self._read() - self._base)


def _cpu_info() -> dict[str, Any]:
    info: dict[str, Any] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if line.startswith("model name") and "cpu" not in info:
            info["cpu"] = line.split(":", 1)[1].strip()
        if line.startswith("flags") and "avx512_bf16" not in info:
            flags = line.split(":", 1)[1].split()
            info["avx512"] = "avx512f" in flags
            info["avx512_bf16"] = "avx512_bf16" in flags
    info["logical_cpus"] = os.cpu_count()
    return info


def _gemm_gflops(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048) -> float:
    """Throughput of one large square matrix product right now (the machine's GEMM ceiling, as
    a yardstick for the figures measured around it; a shared machine's varies)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(ts) / 1e9


# --- the pieces ----------------------------------------------------------------------------------

def _build(variant: str, cfg, impl: str, state: dict | None):
    """(denoiser, lifter) of ``impl``: the fast path (``fast``, ``compiled``) or the readable models
    (``reference``); seeded, then given ``state``'s weights if any."""
    if impl == "reference":
        from harness.models import build_denoiser, build_lifter
    else:
        from harness.models.fast import build_denoiser, build_lifter

    dk = dict(hid_dim=cfg.hid_dim, num_layers=cfg.num_layers, n_head=cfg.n_head, dropout=cfg.dropout)
    lk = dict(hid_dim=cfg.lifter_hid_dim, num_layers=cfg.lifter_layers, n_head=cfg.lifter_heads,
              dropout=cfg.lifter_dropout)
    torch.manual_seed(cfg.seed)
    model = build_denoiser(variant, **dk)
    torch.manual_seed(cfg.seed)
    lifter = build_lifter(**lk)
    if state is not None:
        model.load_state_dict(state["model"])
        lifter.load_state_dict(state["lifter"])
    return model, lifter


def _train_step_fn(cfg, model, data, device, gen, backend=None, holder=None):
    """One optimiser step on a random batch: :class:`harness.train.step.DenoiserStep`, the step
    :func:`harness.train.loop.train_denoiser` runs, with the released Gaussian noise (compiled as
    ``cfg.compile`` says, with torch.compile's ``backend``); ``holder`` (a list) receives the step."""
    from harness.noise import GaussianNoise
    from harness.train.step import DenoiserStep

    pose_2d, pose_3d = data
    n, b = pose_2d.shape[0], cfg.batch_size
    step_fn = DenoiserStep.build(cfg, model, GaussianNoise(num_joints=pose_2d.shape[1]), pose_2d.shape[1], device,
                                 backend=backend)
    if holder is not None:
        holder.append(step_fn)
    state = {"perm": torch.randperm(n, generator=gen, device=device), "i": 0}

    def step():
        if state["i"] + b > n:
            state["perm"], state["i"] = torch.randperm(n, generator=gen, device=device), 0
        idx = state["perm"][state["i"]:state["i"] + b]
        state["i"] += b
        return step_fn(pose_2d[idx], pose_3d[idx], gen)

    return step


def _synthetic_poses(num: int, device: torch.device, gen: torch.Generator):
    pose_2d = torch.randn(num, 17, 2, generator=gen, device=device) * 0.3
    pose_3d = torch.randn(num, 17, 3, generator=gen, device=device) * 0.3
    return pose_2d, pose_3d


def _pipeline_fn(cfg, model, lifter, x2d, device, precision, hyp, gen, backend=None):
    from harness.diffusion.sampler import Sampler
    from harness.lifter import lifter_predict
    from harness.noise import GaussianNoise
    from harness.train.augment import Flip

    flip = Flip(17, device=device)
    sampler = Sampler(cfg.replace(precision=precision), model, flip, device, backend=backend)
    noise = GaussianNoise(num_joints=17)
    batch = x2d.shape[0]

    def run():
        lift = lifter_predict(lifter, x2d, flip, batch, precision, device)
        if hyp == 1:
            return sampler(x2d, lift)
        outs = [sampler(x2d, lift, start_noise=noise.sample(batch, generator=gen, device=device),
                        flip_noise=noise.sample(batch, generator=gen, device=device)) for _ in range(hyp)]
        return torch.stack(outs)

    return run


# --- the benchmark -------------------------------------------------------------------------------

def _kernels_state(device: torch.device) -> str:
    if device.type != "cpu":
        return "not used (not a CPU)"
    from harness.models.fast import kernels_state

    return kernels_state()


def run_bench(variants: Sequence[str] | None = None, batch: int = 1024, device: str = "cpu",
              precision: str = "fp32", hypotheses: Sequence[int] = (1, 5),
              out_dir: str | Path | None = Path("results/bench"), *,
              implementations: Sequence[str] = ("fast",), compile_mode: str | None = None,
              hid_dim: int = 96, num_layers: int = 5,
              n_head: int = 4, reps: int = 5, warmup: int = 2, max_other_load: float = 0.15,
              seed: int = 0, tag: str | None = None,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure each variant x implementation (see the module docstring).

    Returns the result dict; with ``out_dir`` it is also written to ``out_dir/<name>.json``
    (``tag`` or a name made of device, precision, implementations and batch) and the path is
    added as ``result["path"]``. ``max_other_load``: cores other processes may use during a
    timed repetition before it is redone (``inf`` disables the check). ``compile_mode`` is passed
    to ``torch.compile`` for the ``compiled`` implementation (``"reduce-overhead"`` adds CUDA
    graphs on a GPU).
    """
    from harness.config import Config
    from harness.device import autocast, machine_info, select_device
    from harness.models import count_parameters
    from harness.models.fast.ops import tune_cpu_allocator
    from harness.safeio import write_json
    from harness.variants import VARIANTS

    variants = list(variants) if variants else VARIANTS.names()
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ConfigError(f"--variant {bad[0]!r}: unknown; valid: {', '.join(sorted(VARIANTS))}")
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r}: must be one of {', '.join(PRECISIONS)}")
    impls = list(dict.fromkeys(implementations))
    if not impls or any(i not in IMPLEMENTATIONS for i in impls):
        raise ConfigError(f"implementations: choose from {', '.join(IMPLEMENTATIONS)}, got {impls}")
    if batch < 2:
        raise ConfigError(f"--batch {batch}: must be >= 2")
    if hid_dim % n_head:
        raise ConfigError(f"--hid-dim {hid_dim}: must be a multiple of --heads ({n_head})")
    hypotheses = sorted({int(h) for h in hypotheses})
    if not hypotheses or hypotheses[0] < 1:
        raise ConfigError("--hypotheses: counts must be >= 1")
    if reps < 1 or warmup < 0:
        raise ConfigError("reps must be >= 1 and warmup >= 0")
    dev = select_device(device)
    if precision == "bf16" and dev.type == "cpu" and not torch.backends.mkldnn.is_available():
        raise ConfigError("--precision bf16 on the CPU needs a PyTorch build with oneDNN")
    allocator_tuned = tune_cpu_allocator() if dev.type == "cpu" else False
    cfg = Config(hid_dim=hid_dim, num_layers=num_layers, n_head=n_head, batch_size=batch,
                 eval_batch_size=batch, precision=precision, seed=seed, device=str(dev))
    say = progress or (lambda s: None)

    gen = torch.Generator(device=dev).manual_seed(seed)
    data = _synthetic_poses(max(4 * batch, 4096), dev, gen)
    x2d, y3d = data[0][:batch], data[1][:batch]
    x_in = torch.cat([x2d, y3d], dim=-1)
    t_in = torch.full((batch,), cfg.test_num_diffusion_timesteps // cfg.test_timesteps, dtype=torch.long,
                      device=dev)
    say("calibrating: one large float32 GEMM")
    result: dict[str, Any] = {
        "kind": "bench", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine_info(dev), **(_cpu_info() if dev.type == "cpu" else {})},
        "gemm_gflops_fp32_start": round(_gemm_gflops(dev), 1),
        "cpu_allocator_tuned": allocator_tuned, "fused_kernels": _kernels_state(dev),
        "precision": precision, "batch": batch, "device": str(dev), "implementations": impls,
        "compile_mode": compile_mode,
        "model": {"hid_dim": hid_dim, "num_layers": num_layers, "n_head": n_head,
                  "lifter": {"hid_dim": cfg.lifter_hid_dim, "num_layers": cfg.lifter_layers,
                             "n_head": cfg.lifter_heads}},
        "sampler": {"steps": cfg.test_timesteps, "num_diffusion_timesteps": cfg.test_num_diffusion_timesteps,
                    "flip": True},
        "reps": reps, "warmup": warmup, "max_other_load": max_other_load, "variants": {},
    }

    for variant in variants:
        entry: dict[str, Any] = {}
        # the yardstick: the fast path in float32, seeded weights shared by every implementation
        say(f"{variant}: float32 fast-path outputs")
        model, lifter = _build(variant, cfg, "fast", None)
        weights = {"model": {k: v.clone() for k, v in model.state_dict().items()},
                   "lifter": {k: v.clone() for k, v in lifter.state_dict().items()}}
        entry["parameters"] = count_parameters(model)
        model, lifter = model.to(dev).eval(), lifter.to(dev).eval()
        with torch.no_grad():
            base_out = model(x_in, t_in, x2d).float()
        torch.manual_seed(seed)
        base_pose = _pipeline_fn(cfg, model, lifter, x2d, dev, "fp32", 1, gen)()
        del model, lifter
        for impl in impls:
            say(f"{variant} / {impl}: building")
            model, lifter = _build(variant, cfg, impl, weights)
            model, lifter = model.to(dev), lifter.to(dev)
            run_model, run_lifter = model, lifter
            res: dict[str, Any] = {}
            if impl == "compiled":
                run_model = torch.compile(model, mode=compile_mode)
                run_lifter = torch.compile(lifter, mode=compile_mode)

            # training first (the headline figure), then back to the shared weights
            model.train()
            step = _train_step_fn(cfg, run_model, data, dev, gen)
            if impl == "compiled":
                t0 = time.perf_counter()
                step()
                _sync(dev)
                res["compile_seconds_train"] = round(time.perf_counter() - t0, 1)
            say(f"{variant} / {impl}: training steps")
            r = _timed(step, dev, reps, warmup, max_other_load)
            with _PeakMemory(dev) as mem:  # a separate step: the sampling thread would perturb the timing
                step()
            res["train"] = {**r, "samples_per_s": batch / r["seconds"], "peak_memory_mib": mem.peak / 2 ** 20,
                            "peak_memory_source": mem.source}
            model.load_state_dict(weights["model"])
            # outputs (eval)
            model.eval()
            lifter.eval()

            def fwd():
                with torch.no_grad(), autocast(dev, precision):
                    return run_model(x_in, t_in, x2d)

            t0 = time.perf_counter()
            out = fwd().float()
            if impl == "compiled":
                res["compile_seconds_eval"] = round(time.perf_counter() - t0, 1)
            pipes = {h: _pipeline_fn(cfg, run_model, run_lifter, x2d, dev, precision, h, gen) for h in hypotheses}
            torch.manual_seed(seed)
            pose = (pipes[1] if 1 in pipes else _pipeline_fn(cfg, run_model, run_lifter, x2d, dev, precision,
                                                             1, gen))()
            res["max_abs_diff_denoiser"] = float((out - base_out).abs().max())
            res["max_abs_denoiser_output"] = float(base_out.abs().max())
            res["mean_joint_dist_end_to_end"] = float(torch.linalg.vector_norm(pose - base_pose, dim=-1).mean())

            # denoiser pass and end to end
            say(f"{variant} / {impl}: denoiser pass")
            r = _timed(fwd, dev, reps, warmup, max_other_load)
            res["denoiser_pass"] = {**r, "poses_per_s": batch / r["seconds"]}
            e2e = {}
            for h, fn in pipes.items():
                say(f"{variant} / {impl}: end to end, H={h}")
                r = _timed(fn, dev, reps if h == 1 else max(1, (reps + 1) // 2), 1, max_other_load)
                e2e[str(h)] = {**r, "poses_per_s": batch / r["seconds"],
                               "denoiser_passes_per_pose": 2 * cfg.test_timesteps * h}
            res["end_to_end"] = e2e

            entry[impl] = res
            del model, lifter, run_model, run_lifter, step, pipes
        if "reference" in entry and "fast" in entry:
            f, rf = entry["fast"], entry["reference"]
            entry["speedup_fast_vs_reference"] = {
                "train": f["train"]["samples_per_s"] / rf["train"]["samples_per_s"],
                "denoiser_pass": f["denoiser_pass"]["poses_per_s"] / rf["denoiser_pass"]["poses_per_s"],
                **{f"end_to_end_H{h}": f["end_to_end"][h]["poses_per_s"] / rf["end_to_end"][h]["poses_per_s"]
                   for h in f["end_to_end"]}}
        result["variants"][variant] = entry

    result["gemm_gflops_fp32_end"] = round(_gemm_gflops(dev), 1)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        name = tag or "-".join([dev.type, precision, *impls, f"b{batch}"])
        path = out / f"{name}.json"
        write_json(path, result)
        result["path"] = str(path)
    return result


def format_table(result: dict[str, Any]) -> list[list[str]]:
    """Rows (header first) summarising a :func:`run_bench` result, one per variant x implementation."""
    hyps: list[str] = []
    rows = []
    for variant, e in result["variants"].items():
        for impl in result["implementations"]:
            r = e.get(impl)
            if r is None:
                continue
            hyps = hyps or list(r["end_to_end"])
            disturbed = sum(x.get("discarded_disturbed", 0) for x in
                            [r["train"], r["denoiser_pass"], *r["end_to_end"].values()])
            rows.append([variant, impl, f"{e['parameters']:,}", f"{r['train']['samples_per_s']:,.0f}",
                         f"{r['train']['seconds']:.2f}", f"{r['denoiser_pass']['poses_per_s']:,.0f}",
                         *[f"{r['end_to_end'][h]['poses_per_s']:,.0f}" for h in hyps],
                         f"{r['train']['peak_memory_mib']:,.0f}", f"{r['max_abs_diff_denoiser']:.1e}",
                         str(disturbed)])
    header = ["variant", "impl", "params", "train samples/s", "s/step", "denoiser poses/s",
              *[f"e2e H={h} poses/s" for h in hyps], "train peak MiB", "max |diff|", "redone"]
    return [header] + rows


def print_table(result: dict[str, Any], file=None) -> None:
    """Plain-text table of :func:`format_table` with a line describing the machine."""
    rows = format_table(result)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    m = result["machine"]
    print(f"{result['precision']} | batch {result['batch']} | {result['device']} | {m.get('cpu') or m.get('processor')} | "
          f"torch {m.get('torch')} | {m.get('threads')} threads | fp32 GEMM ceiling now "
          f"{result.get('gemm_gflops_fp32_start')}-{result.get('gemm_gflops_fp32_end')} GFLOP/s", file=file)
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))), file=file)
        if i == 0:
            print("  ".join("-" * w for w in widths), file=file)


# --- the GPU suite (harness bench --suite gpu) ----------------------------------------------------
#
# One device check, within a wall-time budget (8 minutes on a GPU): equivalence of the outputs (CPU
# vs the device, eager vs compiled), training samples/s of full and baseline at two batch sizes in four
# modes, denoiser and end-to-end poses/s, peak memory, aten ops per step (torch.profiler), and the
# projected time of the ``paper`` profile on this device. Every item records its own error instead
# of stopping the suite, and an item that would not fit in the budget left is recorded as skipped.

SUITE_MODES: dict[str, tuple[str, str]] = {   # name: (precision, compile)
    "eager_fp32": ("fp32", "off"),
    "eager_bf16": ("bf16", "off"),
    "compiled_bf16": ("bf16", "default"),
    "graphs_bf16": ("bf16", "graphs"),
}
# The paper profile's data (README, "Housekeeping figures": this project's H36M copy).
H36M_TRAIN_SAMPLES = 1_464_400
H36M_TEST_SAMPLES = 519_852
SUITE_SIZES = {
    "cuda": dict(hid_dim=96, num_layers=5, n_head=4, batches=(1024, 4096), eval_batch=4096, reps=5, warmup=3,
                 equiv=dict(hid_dim=32, num_layers=2, n_head=4, batch=256)),
    "cpu": dict(hid_dim=16, num_layers=1, n_head=2, batches=(16,), eval_batch=32, reps=2, warmup=1,
                equiv=dict(hid_dim=16, num_layers=1, n_head=2, batch=16)),
}
# Tolerances of the equivalence check (float32, three Adam steps, dropout off).
EQUIV_TOL = {"loss_rel": 1e-4, "weights_abs": 1e-5, "output_rel": 1e-4}
_VIEW_OPS = frozenset({
    "aten::view", "aten::as_strided", "aten::reshape", "aten::transpose", "aten::permute", "aten::expand",
    "aten::slice", "aten::select", "aten::t", "aten::unsqueeze", "aten::squeeze", "aten::detach", "aten::alias",
    "aten::_unsafe_view", "aten::unflatten", "aten::split", "aten::chunk", "aten::unbind", "aten::narrow",
    "aten::lift_fresh", "aten::_reshape_alias", "aten::view_as", "aten::expand_as", "aten::flatten",
    "aten::contiguous", "aten::empty", "aten::empty_like", "aten::empty_strided", "aten::resolve_conj",
    "aten::resolve_neg", "aten::result_type", "aten::to", "aten::detach_", "aten::set_"})


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300] if text else ''}"


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "unknown"


def count_ops(fn: Callable[[], Any], device: torch.device) -> dict[str, int]:
    """What one call of ``fn`` issues, from ``torch.profiler``: ``aten_ops`` the aten operators called
    outside any other aten operator, less views and allocations (each, in eager mode on a GPU, about one
    kernel launch), ``aten_ops_all`` every aten operator event, ``custom_ops`` the ``harness::`` fused
    kernels, ``compiled_kernels`` the compiler's own that the profiler shows (``cpp_fused_*``,
    ``triton_*``: inductor's CPU kernels are not shown by default) and, on CUDA, ``cuda_kernels`` the
    kernels the device ran."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    _sync(device)
    with profile(activities=acts) as prof:
        fn()
        _sync(device)
    events = list(prof.events())

    def nested(e) -> bool:
        p = e.cpu_parent
        while p is not None:
            if p.name.startswith("aten::"):
                return True
            p = p.cpu_parent
        return False

    cpu = [e for e in events if e.device_type != DeviceType.CUDA]
    aten = [e for e in cpu if e.name.startswith("aten::")]
    top = [e for e in aten if not nested(e) and e.name not in _VIEW_OPS]
    out = {"aten_ops": len(top), "aten_ops_all": len(aten),
           "custom_ops": sum(e.name.startswith("harness::") for e in cpu),
           "compiled_kernels": sum(e.name.startswith(("cpp_fused", "triton_")) for e in cpu)}
    if device.type == "cuda":
        out["cuda_kernels"] = sum(e.device_type == DeviceType.CUDA for e in events)
    return out


def no_dropout(model: torch.nn.Module) -> torch.nn.Module:
    """Every dropout of ``model`` off (the released blocks hard-code p = 0.1 in places, whatever
    ``dropout`` says): masks drawn on two devices, or by the CPU's fused kernels and by the compiler's
    RNG, are different masks."""
    for mod in model.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    return model


def _zero_grad_names(model) -> set[str]:
    """Parameters whose gradient is zero in exact arithmetic: the attention key projections' biases
    (a softmax is invariant to them), whose float gradient is rounding noise that Adam scales to +-lr."""
    return {k for k in model.state_dict() if ".linears.1.bias" in k}


def _equivalence(variant: str, dev: torch.device, sizes: dict, backend: str, seed: int,
                 compiled: bool = True) -> dict[str, Any]:
    """CPU eager float32 (the reference) against the device in eager and (``compiled``) compiled and
    CUDA-graph modes, float32, dropout off, on the same weights and the same draws (made on the CPU):
    three training updates (losses, weights, EMA) and the denoiser pass and a sampler call after them."""
    from harness.config import Config
    from harness.diffusion.sampler import Sampler
    from harness.noise import GaussianNoise
    from harness.train.augment import Flip
    from harness.train.step import DenoiserStep

    e = sizes["equiv"]
    b = e["batch"]
    cfg = Config(hid_dim=e["hid_dim"], num_layers=e["num_layers"], n_head=e["n_head"], dropout=0.0, batch_size=b,
                 eval_batch_size=b, seed=seed, device="cpu")
    cpu = torch.device("cpu")
    model0, _ = _build(variant, cfg, "fast", None)
    no_dropout(model0)
    weights = {k: v.clone() for k, v in model0.state_dict().items()}
    gen = torch.Generator().manual_seed(seed + 7)
    noise = GaussianNoise()
    x2d, y3d = _synthetic_poses(b, cpu, gen)
    draws = []
    probe = DenoiserStep.build(cfg, model0, noise, 17, cpu)
    for _ in range(3):
        draws.append(probe.draw(x2d, gen))
    x_in = torch.cat([x2d, y3d], -1)
    t_in = torch.full((b,), 6, dtype=torch.long)
    skip = _zero_grad_names(model0)

    def run(device: torch.device, mode: str) -> dict[str, Any]:
        c = cfg.replace(device=device.type, compile=mode)
        model, _ = _build(variant, c, "fast", None)
        model.load_state_dict(weights)
        model = no_dropout(model).to(device).train()
        step = DenoiserStep.build(c, model, noise, 17, device, backend=backend)
        mv = lambda v: None if v is None else v.to(device)  # noqa: E731
        res: dict[str, Any] = {}
        losses = []
        for i, (a, m, ep, t) in enumerate(draws):
            args = (mv(a), mv(y3d), mv(m), mv(ep), mv(t))
            if step.compiled is not None and i == 0:
                t0 = time.perf_counter()
                try:
                    losses.append(float(step.compiled(*args)))
                except Exception as err:  # noqa: BLE001 - recorded, with dynamo's count of the breaks
                    res["error"] = _first_line(err)
                    try:
                        res["graph_breaks"] = {"train_step": step.compiled.graph_breaks(*args)[0]}
                    except Exception:  # noqa: BLE001
                        pass
                    return res
                res["compile_seconds_train"] = round(time.perf_counter() - t0, 2)
                res["graph_breaks"] = {"train_step": 0}   # fullgraph=True: a break is an error
            else:
                losses.append(float(step.compiled(*args) if step.compiled is not None else step.update(*args)))
        res["losses"] = losses
        res["weights"] = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
        res["ema"] = {k: v.float().cpu() for k, v in step.ema.state_dict().items()}
        model.eval()
        with torch.no_grad():
            res["denoiser"] = model(x_in.to(device), t_in.to(device), x2d.to(device)).float().cpu()
        sampler = Sampler(c, model, Flip(17, device=device), device, backend=backend)
        if sampler.compiled:
            t0 = time.perf_counter()
            try:
                res["sampler"] = sampler(x2d.to(device), y3d.to(device)).cpu()
            except Exception as err:  # noqa: BLE001
                res["error"] = _first_line(err)
                try:
                    res.setdefault("graph_breaks", {})["sampler"] = sampler.graph_breaks(x2d.to(device), y3d.to(device))[0]
                except Exception:  # noqa: BLE001
                    pass
                return res
            res["compile_seconds_sampler"] = round(time.perf_counter() - t0, 2)
            res.setdefault("graph_breaks", {})["sampler"] = 0
        else:
            res["sampler"] = sampler(x2d.to(device), y3d.to(device)).cpu()
        return res

    ref = run(cpu, "off")
    out: dict[str, Any] = {"sizes": dict(e), "precision": "fp32", "dropout": "off (every nn.Dropout p = 0)",
                           "steps": len(draws),
                           "tolerance": dict(EQUIV_TOL), "reference": "cpu eager fp32",
                           "reference_losses": ref["losses"], "excluded_weights": sorted(skip), "against": {}}
    targets = [(dev, "off")] + ([(dev, "default")] if compiled else []) + (
        [(dev, "graphs")] if compiled and dev.type == "cuda" else [])
    if dev.type == "cpu":   # the CPU eager reference is the device's eager run
        targets = [(dev, "default")] if compiled else []
    for d, mode in targets:
        name = f"{d.type}_{'eager' if mode == 'off' else mode}"
        try:
            r = run(d, mode)
        except Exception as err:  # noqa: BLE001
            out["against"][name] = {"error": _first_line(err)}
            continue
        if "error" in r:
            out["against"][name] = {k: r[k] for k in ("error", "graph_breaks") if k in r}
            continue
        loss_rel = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(r["losses"], ref["losses"]))
        w = max(float((r["weights"][k] - ref["weights"][k]).abs().max()) for k in ref["weights"] if k not in skip)
        ema = max(float((r["ema"][k] - ref["ema"][k]).abs().max()) for k in ref["ema"] if k not in skip)
        den = float((r["denoiser"] - ref["denoiser"]).abs().max()) / max(1.0, float(ref["denoiser"].abs().max()))
        smp = float((r["sampler"] - ref["sampler"]).abs().max()) / max(1.0, float(ref["sampler"].abs().max()))
        entry = {"losses": r["losses"], "loss_max_rel_diff": loss_rel, "weights_max_abs_diff": w,
                 "ema_max_abs_diff": ema, "denoiser_max_rel_diff": den, "sampler_max_rel_diff": smp}
        for k in ("graph_breaks", "compile_seconds_train", "compile_seconds_sampler"):
            if k in r:
                entry[k] = r[k]
        entry["pass"] = bool(loss_rel <= EQUIV_TOL["loss_rel"] and w <= EQUIV_TOL["weights_abs"]
                             and ema <= EQUIV_TOL["weights_abs"] and den <= EQUIV_TOL["output_rel"]
                             and smp <= EQUIV_TOL["output_rel"])
        out["against"][name] = entry
    return out


def _suite_train(variant: str, mode: str, batch: int, dev: torch.device, sizes: dict, backend: str,
                 seed: int, reps: int, warmup: int, count: bool) -> dict[str, Any]:
    """Training samples/s of one variant x mode x batch (with its compile time, peak memory and, with
    ``count``, :func:`count_ops` of one step)."""
    from harness.config import Config

    precision, compile_mode = SUITE_MODES[mode]
    cfg = Config(hid_dim=sizes["hid_dim"], num_layers=sizes["num_layers"], n_head=sizes["n_head"],
                 batch_size=batch, eval_batch_size=batch, precision=precision, compile=compile_mode, seed=seed,
                 device=dev.type)
    model, _ = _build(variant, cfg, "fast", None)
    model = model.to(dev).train()
    gen = torch.Generator(device=dev).manual_seed(seed)
    data = _synthetic_poses(max(4 * batch, 4096), dev, gen)
    holder: list = []
    step = _train_step_fn(cfg, model, data, dev, gen, backend=backend, holder=holder)
    res: dict[str, Any] = {"precision": precision, "compile": compile_mode, "batch": batch}
    if compile_mode != "off":
        t0 = time.perf_counter()
        try:
            step()
            _sync(dev)
        except Exception as err:  # noqa: BLE001
            res["error"] = _first_line(err)
            try:  # dynamo's count of the breaks, on a fresh batch
                s = holder[0]
                x2d, m, eps, t = s.draw(data[0][:batch], gen)
                res["graph_breaks"] = s.compiled.graph_breaks(x2d, data[1][:batch], m, eps, t)[0]
            except Exception:  # noqa: BLE001
                pass
            return res
        res["compile_seconds"] = round(time.perf_counter() - t0, 2)
        res["graph_breaks"] = 0   # fullgraph=True: a break is an error
    r = _timed(step, dev, reps, warmup, math.inf)
    with _PeakMemory(dev) as mem:
        step()
    res.update({"seconds": r["seconds"], "seconds_all": r["seconds_all"], "samples_per_s": batch / r["seconds"],
                "peak_memory_mib": mem.peak / 2 ** 20, "peak_memory_source": mem.source})
    if count:
        res["ops_per_step"] = count_ops(step, dev)
    return res


def _suite_infer(variant: str, mode: str, batch: int, dev: torch.device, sizes: dict, backend: str,
                 seed: int, reps: int, warmup: int, base: dict | None) -> dict[str, Any]:
    """Denoiser pass and end-to-end (lifter with flip + 2 DDIM steps with flip) poses/s of one variant x
    mode at the evaluation batch; the outputs' difference from ``base`` (eager fp32 on the device)."""
    from harness.config import Config
    from harness.device import autocast, compile_fn

    precision, compile_mode = SUITE_MODES[mode]
    cfg = Config(hid_dim=sizes["hid_dim"], num_layers=sizes["num_layers"], n_head=sizes["n_head"],
                 batch_size=batch, eval_batch_size=batch, precision=precision, compile=compile_mode, seed=seed,
                 device=dev.type)
    model, lifter = _build(variant, cfg, "fast", None)
    model, lifter = model.to(dev).eval(), lifter.to(dev).eval()
    gen = torch.Generator(device=dev).manual_seed(seed + 1)
    x2d, y3d = _synthetic_poses(batch, dev, gen)
    x_in = torch.cat([x2d, y3d], -1)
    t_in = torch.full((batch,), 6, dtype=torch.long, device=dev)

    def fwd_eager(x, t, p):
        with torch.no_grad(), autocast(dev, precision):
            return model(x, t, p).float()

    fwd = fwd_eager if compile_mode == "off" else compile_fn(fwd_eager, compile_mode, backend)
    res: dict[str, Any] = {"precision": precision, "compile": compile_mode, "batch": batch}
    t0 = time.perf_counter()
    if compile_mode == "graphs":
        torch.compiler.cudagraph_mark_step_begin()
    out = fwd(x_in, t_in, x2d).clone()
    pipe = _pipeline_fn(cfg, model, lifter, x2d, dev, precision, 1, gen, backend=backend)
    pose = pipe().clone()
    _sync(dev)
    if compile_mode != "off":
        res["compile_seconds"] = round(time.perf_counter() - t0, 2)
        res["graph_breaks"] = {"denoiser": 0, "sampler": 0}   # fullgraph=True: a break is an error

    def fwd_timed():
        if compile_mode == "graphs":
            torch.compiler.cudagraph_mark_step_begin()
        return fwd(x_in, t_in, x2d)

    r = _timed(fwd_timed, dev, reps, warmup, math.inf)
    res["denoiser_pass"] = {"seconds": r["seconds"], "poses_per_s": batch / r["seconds"]}
    r = _timed(pipe, dev, reps, warmup, math.inf)
    res["end_to_end"] = {"seconds": r["seconds"], "poses_per_s": batch / r["seconds"], "denoiser_passes_per_pose": 4}
    with _PeakMemory(dev) as mem:
        pipe()
    res["end_to_end"]["peak_memory_mib"] = mem.peak / 2 ** 20
    if base is not None:
        res["denoiser_max_abs_diff_vs_eager_fp32"] = float((out.float() - base["out"]).abs().max())
        res["end_to_end_mean_joint_dist_vs_eager_fp32"] = float(
            torch.linalg.vector_norm(pose.float() - base["pose"], dim=-1).mean())
    else:
        res["_out"], res["_pose"] = out.float(), pose.float()
    return res


def _suite_lifter(dev: torch.device, sizes: dict, seed: int, reps: int, warmup: int, batch: int = 256
                  ) -> dict[str, Any]:
    """Eager float32 lifter training samples/s at the ``paper`` profile's batch (the lifter stage is
    not compiled), at the suite's model size."""
    from harness.config import Config
    from harness.train.augment import Flip
    from harness.train.step import lifter_step

    cfg = Config(seed=seed, device=dev.type, lifter_hid_dim=sizes["hid_dim"], lifter_layers=sizes["num_layers"],
                 lifter_heads=sizes["n_head"])
    _, lifter = _build("baseline", cfg, "fast", None)
    lifter = lifter.to(dev).train()
    opt = torch.optim.Adam(lifter.parameters(), lr=cfg.lifter_lr)
    gen = torch.Generator(device=dev).manual_seed(seed)
    x, y = _synthetic_poses(batch, dev, gen)
    flip = Flip(17, device=dev)
    r = _timed(lambda: lifter_step(cfg, lifter, opt, flip, x, y, gen, dev), dev, reps, warmup, math.inf)
    return {"batch": batch, "precision": "fp32", "compile": "off", "hid_dim": sizes["hid_dim"],
            "num_layers": sizes["num_layers"], "samples_per_s": batch / r["seconds"]}


def _projection(entry: dict[str, Any], lifter: dict | None, paper_batch: int) -> dict[str, Any]:
    """Hours of the ``paper`` profile (800 denoiser epochs, 50 lifter epochs, every test pose once) per
    mode, from the training samples/s at ``paper_batch`` and the end-to-end poses/s."""
    from harness.config import resolve_config

    paper = resolve_config("paper", {})
    out: dict[str, Any] = {"epochs": paper.epochs, "lifter_epochs": paper.lifter_epochs,
                           "train_samples": H36M_TRAIN_SAMPLES, "test_samples": H36M_TEST_SAMPLES,
                           "batch": paper_batch, "modes": {}}
    lifter_s = None
    if lifter and lifter.get("samples_per_s"):
        lifter_s = paper.lifter_epochs * H36M_TRAIN_SAMPLES / lifter["samples_per_s"]
        out["lifter_hours"] = lifter_s / 3600
    for mode in SUITE_MODES:
        tr = entry.get("train", {}).get(f"{mode}_b{paper_batch}", {})
        inf = entry.get("infer", {}).get(mode, {})
        if not tr.get("samples_per_s"):
            continue
        den = paper.epochs * H36M_TRAIN_SAMPLES / tr["samples_per_s"]
        ev = H36M_TEST_SAMPLES / inf["end_to_end"]["poses_per_s"] if inf.get("end_to_end") else None
        total = den + (ev or 0.0) + (lifter_s or 0.0)
        out["modes"][mode] = {"denoiser_hours": den / 3600, "eval_hours": None if ev is None else ev / 3600,
                              "total_hours": total / 3600}
    if out["modes"]:
        best = min(out["modes"], key=lambda m: out["modes"][m]["total_hours"])
        out["best_mode"], out["best_total_hours"] = best, out["modes"][best]["total_hours"]
    return out


def run_gpu_suite(device: str = "auto", out_dir: str | Path | None = Path("results/bench"), *,
                  variants: Sequence[str] = ("full", "baseline"), modes: Sequence[str] | None = None,
                  batches: Sequence[int] | None = None, budget_s: float = 450.0,
                  compile_backend: str | None = None, seed: int = 0, tag: str | None = None,
                  progress: Callable[[str], None] | None = None, **size_overrides: Any) -> dict[str, Any]:
    """``harness bench --suite gpu``: see the section comment above. Sizes: the released model (hid 96,
    5 layers, 4 heads) at batches 1024 and 4096 on CUDA; tiny ones on the CPU (hid 16, 1 layer, batches
    16: a check that the suite works, not figures). ``compile_backend`` defaults to inductor on
    CUDA and ``aot_eager`` on the CPU (dynamo and AOT autograd trace the step, backward included, without
    inductor's minute of C++ compilation; on the CPU CUDA graphs do not apply). Writes
    ``out_dir/gpu-<device name>.json`` (``gpu-cpu-<cpu model>.json`` on the CPU) unless ``tag`` names it."""
    from harness.device import machine_info, select_device
    from harness.models.fast.ops import tune_cpu_allocator
    from harness.safeio import write_json
    from harness.variants import VARIANTS

    t_start = time.perf_counter()
    say = progress or (lambda s: None)
    dev = select_device(device)
    sizes = {**SUITE_SIZES["cuda" if dev.type == "cuda" else "cpu"]}
    bad = [k for k in size_overrides if k not in sizes]
    if bad:
        raise ConfigError(f"bench suite: unknown size {bad[0]!r}")
    sizes.update(size_overrides)
    modes = list(modes or SUITE_MODES)
    unknown = [m for m in modes if m not in SUITE_MODES]
    if unknown:
        raise ConfigError(f"bench suite: unknown mode {unknown[0]!r}; valid: {', '.join(SUITE_MODES)}")
    variants = list(variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"--variant {unknown[0]!r}: unknown; valid: {', '.join(sorted(VARIANTS))}")
    batches = [int(b) for b in (batches or sizes["batches"])]
    if any(b < 2 for b in batches):
        raise ConfigError("bench suite: batches must be >= 2")
    backend = compile_backend or ("inductor" if dev.type == "cuda" else "aot_eager")
    if dev.type == "cpu":
        tune_cpu_allocator()
    reps, warmup = int(sizes["reps"]), int(sizes["warmup"])
    machine = {**machine_info(dev), **_cpu_info()}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        machine.update({"gpu_memory_gib": round(props.total_memory / 2 ** 30, 1),
                        "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
                        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32)})
    name = tag or ("gpu-" + _slug(machine.get("gpu", "")) if dev.type == "cuda"
                   else "gpu-cpu-" + _slug(machine.get("cpu") or machine.get("processor") or "cpu"))
    result: dict[str, Any] = {
        "kind": "bench_suite", "suite": "gpu", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(dev), "machine": machine, "compile_backend": backend, "budget_s": budget_s,
        "sizes": {k: (list(v) if isinstance(v, tuple) else v) for k, v in sizes.items()}, "batches": batches,
        "modes": {m: {"precision": SUITE_MODES[m][0], "compile": SUITE_MODES[m][1]} for m in modes},
        "cuda_default": "eager: --compile stays off by default until a GPU run of this suite has measured the "
                        "compiled modes and passed the equivalence check",
        "variants": {}, "skipped": [],
    }

    def left() -> float:
        return budget_s - (time.perf_counter() - t_start)

    spent: dict[str, list[float]] = {}

    def item(kind: str, label: str, fn: Callable[[], dict[str, Any]], estimate: float) -> dict[str, Any] | None:
        """Run one item unless the budget left is below ``estimate`` (or what this kind took before)."""
        guess = max(spent.get(kind, [estimate])) if kind in spent else estimate
        if left() < guess:
            result["skipped"].append(f"{label}: time budget ({left():.0f} s left, ~{guess:.0f} s needed)")
            say(f"skip {label} (time budget)")
            return None
        say(label)
        t0 = time.perf_counter()
        try:
            r = fn()
        except Exception as err:  # noqa: BLE001 - one item's failure is recorded, the suite goes on
            r = {"error": _first_line(err)}
        spent.setdefault(kind, []).append(time.perf_counter() - t0)
        r["item_seconds"] = round(time.perf_counter() - t0, 1)
        return r

    compiled_estimate = 5.0 if dev.type == "cpu" else 60.0
    # Order = priority under the budget: equivalence (compiled modes for the first variant, the others
    # eager only), the first batch's training for every variant, inference, then the other batches.
    for vi, variant in enumerate(variants):
        entry = result["variants"].setdefault(variant, {"train": {}, "infer": {}})
        compiled = vi == 0
        if dev.type == "cpu" and not compiled:   # no device to hold against the CPU
            continue
        r = item("equivalence" if compiled else "equivalence_eager",
                 f"{variant}: equivalence (CPU vs {dev.type}{', eager vs compiled' if compiled else ''})",
                 lambda: _equivalence(variant, dev, sizes, backend, seed, compiled=compiled),
                 (3 if compiled else 0) * compiled_estimate + 5.0)
        if r is not None:
            entry["equivalence"] = r
    lifter = item("lifter", "lifter: eager fp32 training", lambda: _suite_lifter(dev, sizes, seed, reps, warmup), 10.0)
    result["lifter_train"] = lifter

    def train_items(batch: int, count: bool) -> None:
        for variant in variants:
            entry = result["variants"][variant]
            for mode in modes:
                if SUITE_MODES[mode][1] == "graphs" and dev.type != "cuda":
                    entry["train"][f"{mode}_b{batch}"] = {"skipped": "CUDA graphs need a CUDA device"}
                    continue
                kind = "train_compiled" if SUITE_MODES[mode][1] != "off" else "train_eager"
                r = item(kind, f"{variant}: train {mode} batch {batch}",
                         lambda: _suite_train(variant, mode, batch, dev, sizes, backend, seed, reps, warmup, count),
                         compiled_estimate if kind == "train_compiled" else 5.0)
                if r is not None:
                    entry["train"][f"{mode}_b{batch}"] = r

    train_items(batches[0], True)
    for variant in variants:  # inference once, at the evaluation batch
        entry = result["variants"][variant]
        base = None
        for mode in modes:
            if SUITE_MODES[mode][1] == "graphs" and dev.type != "cuda":
                entry["infer"][mode] = {"skipped": "CUDA graphs need a CUDA device"}
                continue
            kind = "infer_compiled" if SUITE_MODES[mode][1] != "off" else "infer_eager"
            r = item(kind, f"{variant}: inference {mode} batch {sizes['eval_batch']}",
                     lambda: _suite_infer(variant, mode, int(sizes["eval_batch"]), dev, sizes, backend, seed,
                                          reps, warmup, base),
                     compiled_estimate if kind == "infer_compiled" else 5.0)
            if r is None:
                continue
            if "_out" in r:
                base = {"out": r.pop("_out"), "pose": r.pop("_pose")}
            entry["infer"][mode] = r
    for batch in batches[1:]:
        train_items(batch, False)
    paper_batch = 1024 if 1024 in batches else batches[0]
    for variant in variants:
        result["variants"][variant]["paper_projection"] = _projection(result["variants"][variant], lifter,
                                                                       paper_batch)
    result["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{name}.json"
        write_json(path, result)
        result["path"] = str(path)
    return result


def print_suite(result: dict[str, Any], file=None) -> None:
    """A plain-text summary of :func:`run_gpu_suite`'s result."""
    m = result["machine"]
    print(f"suite gpu | {result['device']} | {m.get('gpu') or m.get('cpu') or m.get('processor')} | torch "
          f"{m.get('torch')} | compile backend {result['compile_backend']} | {result['wall_seconds']} s", file=file)
    for variant, e in result["variants"].items():
        eq = e.get("equivalence") or {}
        for name, a in (eq.get("against") or {}).items():
            if "error" in a:
                print(f"  {variant} equivalence vs {name}: ERROR {a['error']}", file=file)
            else:
                print(f"  {variant} equivalence vs {name}: {'pass' if a['pass'] else 'FAIL'} (loss rel "
                      f"{a['loss_max_rel_diff']:.1e}, weights {a['weights_max_abs_diff']:.1e}, sampler rel "
                      f"{a['sampler_max_rel_diff']:.1e}, graph breaks {a.get('graph_breaks', '-')})", file=file)
        for key, r in e.get("train", {}).items():
            if "samples_per_s" in r:
                extra = f", compile {r['compile_seconds']} s" if "compile_seconds" in r else ""
                ops = f", {r['ops_per_step']['aten_ops']} aten ops/step" if "ops_per_step" in r else ""
                print(f"  {variant} train {key}: {r['samples_per_s']:,.0f} samples/s, peak "
                      f"{r['peak_memory_mib']:,.0f} MiB{extra}{ops}", file=file)
            else:
                print(f"  {variant} train {key}: {r.get('error') or r.get('skipped')}", file=file)
        for mode, r in e.get("infer", {}).items():
            if "end_to_end" in r:
                print(f"  {variant} infer {mode}: denoiser {r['denoiser_pass']['poses_per_s']:,.0f} poses/s, end to "
                      f"end {r['end_to_end']['poses_per_s']:,.0f} poses/s", file=file)
            else:
                print(f"  {variant} infer {mode}: {r.get('error') or r.get('skipped')}", file=file)
        p = e.get("paper_projection") or {}
        if p.get("best_mode"):
            print(f"  {variant} paper profile: {p['best_total_hours']:.2f} h ({p['best_mode']})", file=file)
    for s in result.get("skipped", []):
        print(f"  skipped: {s}", file=file)
