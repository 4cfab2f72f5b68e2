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
import os
import statistics
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from harness.errors import ConfigError

__all__ = ["IMPLEMENTATIONS", "PRECISIONS", "format_table", "print_table", "run_bench"]

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


def _train_step_fn(cfg, model, data, device, gen):
    """One optimiser step on a random batch: :class:`harness.train.step.DenoiserStep`, the step
    :func:`harness.train.loop.train_denoiser` runs, with the released Gaussian noise."""
    from harness.noise import GaussianNoise
    from harness.train.step import DenoiserStep

    pose_2d, pose_3d = data
    n, b = pose_2d.shape[0], cfg.batch_size
    step_fn = DenoiserStep.build(cfg, model, GaussianNoise(num_joints=pose_2d.shape[1]), pose_2d.shape[1], device)
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


def _pipeline_fn(cfg, model, lifter, x2d, device, precision, hyp, gen):
    from harness.diffusion.sampler import Sampler
    from harness.lifter import lifter_predict
    from harness.noise import GaussianNoise
    from harness.train.augment import Flip

    flip = Flip(17, device=device)
    sampler = Sampler(cfg.replace(precision=precision), model, flip, device)
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
