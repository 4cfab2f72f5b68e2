"""Significance of a difference between two runs: a paired, stratified bootstrap over test clips.

The quantity is ``Δ = B - A``, run B's protocol aggregate minus run A's, for the refined pose
(``diffusion``; the lifter's with ``model="lifter"``), in the metric's units (mm; PCK in percent). The
two runs must be *paired*: evaluated on the same test frames in the same order (their subject, action,
sequence, camera, frame and valid arrays equal), so the difference is taken clip by clip.

Clips (the resampling unit; frames within a clip are strongly correlated, clips much less so):

* Human3.6M: one clip per (subject, sequence, camera), ``sequence`` being the recorded sequence
  (``"Walking 1"``, an action has several), e.g. 232 clips for S9+S11 x 4 cameras. The statistic is the
  protocol's own: the mean over actions of the per-action mean error (:func:`harness.metrics.h36m_per_action`
  ``Avg``), so the clips are resampled *stratified by action*: each action's clips are drawn with
  replacement, as many as it has; an action's mean is its resampled clips' error sum over their frame
  count (frames, not clips, weigh, as in the protocol), and the statistic the mean over actions.
* MPI-INF-3DHP: one clip per :data:`SEGMENT_FRAMES`-frame segment of each test sequence (frame numbers
  ``0..49``, ``50..99``, ... of the recording, so a strided test set keeps the same segments), counting
  valid frames only (a segment with none is left out). The statistic is the protocol's pooled one (All:
  the error sum over valid frames over their count), resampled *stratified by sequence* (each sequence
  keeps its number of segments). Metrics: ``MPJPE`` and ``PCK`` over the 14 evaluation joints (runs whose
  per-frame arrays have them, i.e. evaluated by this version), and ``MPJPE17`` (all joints).

Seeds: with several runs per side, seed s of A pairs with seed s of B; the per-clip differences (error
sums) are averaged over the seed pairs, then the clips are resampled (the seeds' noise is averaged out
of the point estimate, not added to the interval). The point estimate is the statistic of the
observed (seed-averaged) differences; the interval is the percentile one: the 2.5th and 97.5th
percentiles (numpy's linear interpolation) of ``n_boot`` bootstrap statistics, drawn with
``numpy.random.default_rng(seed)`` (the same draws for every metric). ``significant``: the interval
excludes 0. Everything is computed from per-clip sums and frame counts, vectorised
(``n_boot x clips`` indices), so B=10000 takes milliseconds.

Sources: a run folder's ``metrics.json`` ``"clips"`` record (:func:`clip_record`, written at evaluation:
per-clip sums and counts and a sha256 of the frame arrays, so committed results that keep only
``metrics.json`` can be compared) or else its ``per_frame.npz`` (:func:`clip_table` of the per-frame
errors). :func:`compare_runs` is ``harness compare``; :func:`ablation_intervals` gives the ablation's
intervals against the baseline, and :func:`interval_columns` puts them into the ablation table.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.errors import DataError
from harness.protocols import BENCHMARK_NAMES, action_name

SEGMENT_FRAMES = 50  # a 3DHP clip: 50 recorded frames (2 s at 25 fps for TS1-TS4, 1 s at 50 fps for TS5-TS6)
LEVEL = 0.95
DEFAULT_BOOT = 10000
NOT_SIGNIFICANT = "n.s."  # the mark of an interval that contains 0
FRAME_FIELDS = ("subject", "action", "sequence", "camera", "frame", "valid")  # what makes two runs paired
# Public metric name -> the per-frame array suffix (``<model>_<suffix>`` in per_frame.npz), per benchmark.
METRIC_ARRAYS = {"h36m": {"P1": "p1", "P2": "p2"},
                 "3dhp": {"MPJPE": "mpjpe14", "PCK": "pck14", "MPJPE17": "p1"}}
CLIP_UNITS = {"h36m": ("subject x sequence x camera", "action"),
              "3dhp": (f"{SEGMENT_FRAMES}-frame segments of each sequence, valid frames", "sequence")}
MODELS = ("diffusion", "lifter")
RECORD_VERSION = 1


# ------------------------------------------------------------------------------------------- clips
@dataclass
class Clips:
    """One run's test set cut into clips: ``keys`` (clip names), ``strata`` (the stratum of each:
    the action / the sequence), ``n`` (frames per clip) and ``sums`` (``"<model>_<suffix>"`` -> the
    per-clip sum of that per-frame metric). ``frames_sha256`` fingerprints the frame arrays; ``frames``
    holds them when read from ``per_frame.npz`` (for a precise message when two runs are not paired)."""

    benchmark: str
    keys: list[str]
    strata: np.ndarray
    n: np.ndarray
    sums: dict[str, np.ndarray]
    frames_sha256: str
    source: str = ""
    seed: int | None = None
    frames: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def metrics(self, model: str = "diffusion") -> list[str]:
        """The public metric names these clips have sums of, for ``model``, in protocol order."""
        return [m for m, s in METRIC_ARRAYS[self.benchmark].items() if f"{model}_{s}" in self.sums]

    def values(self, metric: str, model: str = "diffusion") -> np.ndarray:
        return self.sums[f"{model}_{METRIC_ARRAYS[self.benchmark][metric]}"]


def frames_sha256(arrays: dict[str, Any]) -> str:
    """sha256 of the frame arrays :data:`FRAME_FIELDS` (strings joined by NUL, numbers as int64), in order."""
    h = hashlib.sha256()
    for name in FRAME_FIELDS:
        a = np.asarray(arrays[name]).reshape(-1)
        h.update(name.encode())
        if a.dtype.kind in "biu":
            h.update(a.astype("<i8").tobytes())
        else:
            h.update("\0".join(a.astype(str).tolist()).encode("utf-8"))
    return h.hexdigest()


def _codes(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inv = np.unique(a, return_inverse=True)
    return uniq, inv.reshape(-1)


def clip_table(benchmark: str, arrays: dict[str, Any], source: str = "per-frame arrays") -> Clips:
    """Cut a run's per-frame errors (``per_frame.npz``'s arrays: ``<model>_<metric>`` and the frame
    arrays :data:`FRAME_FIELDS`) into clips (module docstring) and sum each per-frame metric per clip.
    A missing or inconsistent array is a one-line :class:`DataError` naming ``source``."""
    if benchmark not in METRIC_ARRAYS:
        raise DataError(f"{source}: unknown benchmark {benchmark!r}")
    missing = [k for k in FRAME_FIELDS + ("diffusion_p1",) if k not in arrays]
    if missing:
        raise DataError(f"{source}: lacks the per-frame array '{missing[0]}' (written by `harness train`)")
    frames = {k: np.asarray(arrays[k]).reshape(-1) for k in FRAME_FIELDS}
    total = len(frames["subject"])
    value_keys = [f"{m}_{s}" for m in MODELS for s in METRIC_ARRAYS[benchmark].values() if f"{m}_{s}" in arrays]
    for k in list(frames) + value_keys:
        got = len(frames[k]) if k in frames else np.asarray(arrays[k]).size
        if got != total:
            raise DataError(f"{source}: '{k}' has {got} frames, 'subject' {total}")
    if total == 0:
        raise DataError(f"{source}: no test frames")
    if benchmark == "h36m":
        use = np.ones(total, bool)  # the protocol counts every frame
        parts = [frames["subject"], frames["sequence"], frames["camera"]]
        stratum_of = lambda names: np.array([action_name(a) for a in names])  # noqa: E731
        stratum_field = frames["action"]
    else:
        use = frames["valid"].astype(bool)
        if not use.any():
            raise DataError(f"{source}: no valid test frames")
        parts = [frames["sequence"], frames["frame"].astype(np.int64) // SEGMENT_FRAMES]
        stratum_of = lambda names: np.asarray(names).astype(str)  # noqa: E731
        stratum_field = frames["sequence"]
    codes, uniques = [], []
    for p in parts:
        u, c = _codes(np.asarray(p)[use])
        uniques.append(u)
        codes.append(c)
    combo, inv = np.unique(np.stack(codes, 1), axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    keys = ["|".join(str(uniques[j][combo[i, j]]) for j in range(len(parts))) for i in range(len(combo))]
    _, first = np.unique(inv, return_index=True)  # each clip's first frame
    strata = stratum_of(np.asarray(stratum_field)[use][first])
    n = np.bincount(inv, minlength=len(combo)).astype(np.int64)
    sums = {}
    for k in value_keys:
        v = np.asarray(arrays[k], dtype=np.float64).reshape(-1)[use]
        if not np.isfinite(v).all():
            raise DataError(f"{source}: '{k}' holds values that are not finite")
        sums[k] = np.bincount(inv, weights=v, minlength=len(combo))
    return Clips(benchmark, keys, strata, n, sums, frames_sha256(frames), source, frames=frames)


def clip_record(benchmark: str, per_frame: dict[str, Any]) -> dict[str, Any]:
    """The ``"clips"`` record of a run's ``metrics.json``: :func:`clip_table` of its per-frame arrays as
    JSON (``unit``, ``stratum``, ``frames_sha256``, ``keys``, ``strata``, ``n``, ``sums`` of each per-frame
    metric), from which :func:`clips_from_record` rebuilds the clips without ``per_frame.npz``."""
    c = clip_table(benchmark, per_frame)
    unit, stratum = CLIP_UNITS[benchmark]
    return {"version": RECORD_VERSION, "unit": unit, "stratum": stratum, "frames_sha256": c.frames_sha256,
            "keys": c.keys, "strata": [str(s) for s in c.strata], "n": [int(x) for x in c.n],
            "sums": {k: [float(x) for x in v] for k, v in c.sums.items()}}


def clips_from_record(record: Any, benchmark: str, source: str) -> Clips:
    """:class:`Clips` from a ``metrics.json`` ``"clips"`` record; a malformed one is a one-line DataError."""
    def bad(why: str) -> DataError:
        return DataError(f"{source}: 'clips' {why}")

    if not isinstance(record, dict):
        raise bad("is not an object")
    for k in ("frames_sha256", "keys", "strata", "n", "sums"):
        if k not in record:
            raise bad(f"lacks '{k}'")
    keys, strata, n, sums = record["keys"], record["strata"], record["n"], record["sums"]
    if not (isinstance(keys, list) and isinstance(strata, list) and isinstance(n, list) and keys):
        raise bad("keys/strata/n must be non-empty lists")
    if not (len(keys) == len(strata) == len(n)):
        raise bad(f"has {len(keys)} keys, {len(strata)} strata and {len(n)} counts")
    if not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in n):
        raise bad("counts must be positive integers")
    if not isinstance(sums, dict) or not isinstance(record["frames_sha256"], str):
        raise bad("sums must be an object and frames_sha256 a string")
    out = {}
    for k, v in sums.items():
        if not isinstance(v, list) or len(v) != len(keys):
            raise bad(f"sums.{k} must be a list of {len(keys)} numbers")
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise bad(f"sums.{k} must be a list of numbers") from None
        if not np.isfinite(arr).all():
            raise bad(f"sums.{k} holds values that are not finite")
        out[str(k)] = arr
    if "diffusion_p1" not in out:
        raise bad("lacks sums.diffusion_p1")
    return Clips(benchmark, [str(k) for k in keys], np.asarray([str(s) for s in strata]), np.asarray(n, np.int64),
                 out, record["frames_sha256"], source)


def find_clips(run_dir: Path, benchmark: str | None = None) -> Clips | None:
    """A run folder's clips: its ``metrics.json`` ``"clips"`` record when it has one, else its
    ``per_frame.npz``; None when it has neither (a malformed one is a one-line DataError). The benchmark
    is the run config's (``metrics.json`` or ``config.json``), else ``benchmark``."""
    from harness.report.results import read_json_file
    from harness.safeio import load_npz

    run_dir = Path(run_dir)
    metrics_path, npz = run_dir / "metrics.json", run_dir / "per_frame.npz"
    meta: dict[str, Any] = {}
    if metrics_path.is_file():
        m = read_json_file(metrics_path)
        meta = m if isinstance(m, dict) else {}
    if "clips" not in meta and not npz.is_file():
        return None
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    if not cfg and (run_dir / "config.json").is_file():
        c = read_json_file(run_dir / "config.json", "run config")
        cfg = c if isinstance(c, dict) else {}
    bench = cfg.get("benchmark", benchmark)
    if bench not in METRIC_ARRAYS:
        raise DataError(f"{run_dir}: no run config (metrics.json or config.json) naming the benchmark")
    seed = cfg.get("seed")
    if "clips" in meta:
        clips = clips_from_record(meta["clips"], bench, str(metrics_path))
    else:
        clips = clip_table(bench, load_npz(npz), str(npz))
    clips.seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    return clips


def load_clips(run_dir: Path) -> Clips:
    """:func:`find_clips`; a folder that is missing, or has neither source, is a one-line DataError naming it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: run folder not found")
    clips = find_clips(run_dir)
    if clips is None:
        raise DataError(f"{run_dir}: no per_frame.npz (nor a 'clips' record in metrics.json): nothing to "
                        f"compare frame by frame")
    return clips


def check_paired(a: Clips, b: Clips) -> None:
    """Refuse (one-line :class:`DataError` naming both sources) two runs not evaluated on the same
    test frames in the same order."""
    def refuse(why: str) -> DataError:
        return DataError(f"{a.source} and {b.source} are not paired: {why}; a paired comparison needs the same "
                         f"test frames in the same order (same data, test stride and benchmark)")

    if a.benchmark != b.benchmark:
        raise refuse(f"benchmarks {a.benchmark} and {b.benchmark}")
    if a.frames is not None and b.frames is not None:
        for name in FRAME_FIELDS:
            x, y = a.frames[name], b.frames[name]
            if len(x) != len(y):
                raise refuse(f"{len(x)} and {len(y)} test frames")
            diff = np.flatnonzero(x.astype(str) != y.astype(str)) if x.dtype.kind != y.dtype.kind or \
                x.dtype.kind in "USO" else np.flatnonzero(x != y)
            if diff.size:
                i = int(diff[0])
                raise refuse(f"their '{name}' arrays differ ({diff.size} frames, first at frame {i}: "
                             f"{x[i].tolist()!r} and {y[i].tolist()!r})")
    if a.frames_sha256 != b.frames_sha256:
        raise refuse("their test frames differ (frames_sha256)")
    if a.keys != b.keys or not np.array_equal(a.n, b.n):
        raise refuse("their clips differ")


# ------------------------------------------------------------------------------------- statistics
def _strata_codes(strata: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _codes(np.asarray(strata).astype(str))


def aggregate(sums: np.ndarray, n: np.ndarray, strata: np.ndarray, benchmark: str) -> float:
    """The protocol aggregate of per-clip ``sums`` over frame counts ``n``: H36M the mean over strata
    (actions) of each stratum's sum over its frames; 3DHP the pooled sum over all frames."""
    sums = np.asarray(sums, np.float64)
    n = np.asarray(n, np.float64)
    if benchmark != "h36m":
        return float(sums.sum() / n.sum())
    _, code = _strata_codes(strata)
    k = int(code.max()) + 1
    return float(np.mean(np.bincount(code, sums, k) / np.bincount(code, n, k)))


def bootstrap(sums: np.ndarray, n: np.ndarray, strata: np.ndarray, benchmark: str, n_boot: int = DEFAULT_BOOT,
              seed: int = 0) -> np.ndarray:
    """``n_boot`` bootstrap replicates of :func:`aggregate`: in each stratum (sorted by name) its clips are
    drawn with replacement, as many as it has (``rng.integers``, ``rng = numpy.random.default_rng(seed)``,
    one ``(n_boot, clips)`` draw per stratum), and the statistic is recomputed from the drawn clips' sums
    and counts. Returns ``(n_boot,)`` float64."""
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    sums = np.asarray(sums, np.float64)
    n = np.asarray(n, np.float64)
    names, code = _strata_codes(strata)
    rng = np.random.default_rng(seed)
    S = np.empty((n_boot, len(names)))
    N = np.empty((n_boot, len(names)))
    for s in range(len(names)):
        members = np.flatnonzero(code == s)
        pick = members[rng.integers(0, len(members), size=(n_boot, len(members)))]
        S[:, s] = sums[pick].sum(1)
        N[:, s] = n[pick].sum(1)
    if benchmark != "h36m":
        return S.sum(1) / N.sum(1)
    return (S / N).mean(1)


def percentile_interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
    replicates (numpy's default linear interpolation)."""
    lo, hi = np.percentile(replicates, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Interval:
    """``delta = b - a`` of ``metric`` with its percentile interval [lo, hi] at ``level``."""

    metric: str
    a: float
    b: float
    delta: float
    lo: float
    hi: float
    n_clips: int
    n_seeds: int
    n_boot: int
    method: str
    level: float = LEVEL

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return not (self.lo <= 0.0 <= self.hi)

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "a": self.a, "b": self.b, "delta": self.delta, "lo": self.lo, "hi": self.hi,
                "level": self.level, "significant": self.significant, "n_clips": self.n_clips,
                "n_seeds": self.n_seeds, "n_boot": self.n_boot, "method": self.method}


def method_text(benchmark: str, n_clips: int, n_seeds: int, n_boot: int) -> str:
    unit, stratum = CLIP_UNITS[benchmark]
    seeds = f"seed-averaged over {n_seeds} seeds" if n_seeds > 1 else "one seed"
    return (f"paired bootstrap over {n_clips} clips ({unit}), stratified by {stratum}, {seeds}, B={n_boot}, "
            f"percentile")


def paired_intervals(a: Sequence[Clips], b: Sequence[Clips], metrics: Sequence[str] | None = None,
                     model: str = "diffusion", n_boot: int = DEFAULT_BOOT, seed: int = 0,
                     level: float = LEVEL) -> list[Interval]:
    """The interval of ``B - A`` for each metric: ``a[i]`` pairs with ``b[i]`` (the same seed); every run
    must be paired with ``a[0]`` (:func:`check_paired`). ``metrics`` default: those every run has."""
    if not a or len(a) != len(b):
        raise DataError(f"{len(a)} run(s) against {len(b)}: pair one run of A with one of B per seed")
    for c in list(a[1:]) + list(b):
        check_paired(a[0], c)
    if metrics is None:
        metrics = [m for m in a[0].metrics(model) if all(m in c.metrics(model) for c in list(a) + list(b))]
    ref = a[0]
    out = []
    for m in metrics:
        for c in list(a) + list(b):
            if m not in c.metrics(model):
                raise DataError(f"{c.source}: has no per-clip {model} {m} (evaluated by an older version?)")
        sa = np.mean([c.values(m, model) for c in a], axis=0)
        sb = np.mean([c.values(m, model) for c in b], axis=0)
        d = sb - sa  # the mean over seed pairs of the per-clip differences
        lo, hi = percentile_interval(bootstrap(d, ref.n, ref.strata, ref.benchmark, n_boot, seed), level)
        out.append(Interval(m, aggregate(sa, ref.n, ref.strata, ref.benchmark),
                            aggregate(sb, ref.n, ref.strata, ref.benchmark),
                            aggregate(d, ref.n, ref.strata, ref.benchmark), lo, hi, len(ref.keys), len(a), n_boot,
                            method_text(ref.benchmark, len(ref.keys), len(a), n_boot), level))
    return out


def _pair_by_seed(a: list[Clips], b: list[Clips]) -> tuple[list[Clips], list[Clips]]:
    """Order both sides by seed so that seed s pairs with seed s (one run per side: as given)."""
    if len(a) == 1 and len(b) == 1:
        return a, b
    if len(a) != len(b):
        raise DataError(f"{len(a)} run(s) in A and {len(b)} in B: give one run per seed on each side")
    for side in (a, b):
        seeds = [c.seed for c in side]
        if None in seeds:
            raise DataError(f"{side[seeds.index(None)].source}: the run's seed is unknown; several runs per side "
                            f"are paired by seed")
        if len(set(seeds)) != len(seeds):
            raise DataError(f"two runs of one side have the same seed ({', '.join(c.source for c in side)})")
    if sorted(c.seed for c in a) != sorted(c.seed for c in b):
        raise DataError(f"the sides' seeds differ (A: {', '.join(str(c.seed) for c in sorted(a, key=_seed))}; "
                        f"B: {', '.join(str(c.seed) for c in sorted(b, key=_seed))}): seed s pairs with seed s")
    return sorted(a, key=_seed), sorted(b, key=_seed)


def _seed(c: Clips) -> int:
    return -1 if c.seed is None else c.seed


def compare_runs(a_dirs: Sequence[Path], b_dirs: Sequence[Path], n_boot: int = DEFAULT_BOOT, seed: int = 0,
                 model: str = "diffusion") -> dict[str, Any]:
    """``harness compare``: the intervals of B - A (``a_dirs``/``b_dirs``: one run folder per seed each)
    as a JSON-able dict: ``a``, ``b`` (folders), ``benchmark``, ``model``, ``n_boot``, ``seed``, ``level``,
    ``method`` and ``intervals`` (:meth:`Interval.as_dict` each)."""
    a, b = _pair_by_seed([load_clips(p) for p in a_dirs], [load_clips(p) for p in b_dirs])
    ivs = paired_intervals(a, b, model=model, n_boot=n_boot, seed=seed)
    if not ivs:
        raise DataError(f"{a[0].source} and {b[0].source}: no metric both have per clip")
    return {"a": [str(Path(c.source).parent) for c in a], "b": [str(Path(c.source).parent) for c in b],
            "seeds": [[c.seed for c in a], [c.seed for c in b]],
            "benchmark": a[0].benchmark, "model": model, "n_boot": n_boot, "seed": seed, "level": LEVEL,
            "method": ivs[0].method, "intervals": [iv.as_dict() for iv in ivs]}


def _num(x: float, decimals: int, signed: bool = False) -> str:
    s = f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}"
    if float(s) == 0:  # no "-0.00"
        s = s.replace("-", "+" if signed else "")
    return s


def comparison_lines(result: dict[str, Any], decimals: int = 2) -> list[str]:
    """:func:`compare_runs`' result as plain text lines (what ``harness compare`` prints)."""
    bench = result["benchmark"]
    what = ("mean over actions of the per-action mean, mm" if bench == "h36m"
            else "over valid frames; MPJPE mm, PCK %, 14 evaluation joints; MPJPE17 all joints")
    lines = []
    for side, dirs, seeds in (("A", result["a"], result["seeds"][0]), ("B", result["b"], result["seeds"][1])):
        s = ", ".join("?" if x is None else str(x) for x in seeds)
        lines.append(f"{side}: {', '.join(dirs)} (seed{'s' if len(seeds) > 1 else ''} {s})")
    pose = {"diffusion": "refined pose (diffusion)", "lifter": "lifter's pose"}.get(result["model"], result["model"])
    lines.append(f"{BENCHMARK_NAMES.get(bench, bench)}, {pose}, {what}:")
    level = f"{round(100 * result['level'])}% CI"
    rows = [("metric", "A", "B", "Δ (B - A)", level, "")]
    for iv in result["intervals"]:
        rows.append((iv["metric"], _num(iv["a"], decimals), _num(iv["b"], decimals),
                     _num(iv["delta"], decimals, True),
                     f"[{_num(iv['lo'], decimals, True)}, {_num(iv['hi'], decimals, True)}]",
                     "significant" if iv["significant"] else f"{NOT_SIGNIFICANT} (the interval contains 0)"))
    w = [max(len(r[k]) for r in rows) for k in range(5)]
    for r in rows:
        lines.append(("  " + r[0].ljust(w[0]) + "".join("  " + r[k].rjust(w[k]) for k in (1, 2, 3))
                      + "  " + r[4].ljust(w[4]) + ("  " + r[5] if r[5] else "")).rstrip())
    lines.append(f"method: {result['method']}")
    return lines


# ------------------------------------------------------------------------------------ the ablation
INTERVAL_COLUMNS = ["benchmark", "keypoints", "synthetic", "train_on", "profile", "variant", "noise", "metric",
                    "delta", "lo", "hi", "significant", "n_clips", "n_seeds", "method"]


def ablation_intervals(df, runs_dir: Path, baseline: str = "baseline", n_boot: int = DEFAULT_BOOT,
                       seed: int = 0, strict: bool = True):
    """Each variant's difference to the baseline, with its interval: one row per (setting, profile,
    variant, noise, metric) of the tidy results ``df`` (:func:`harness.report.results.collect` of
    ``runs_dir``), columns :data:`INTERVAL_COLUMNS` (``delta`` = variant minus ``baseline`` with the
    same setting, profile and noise; metrics P1, P2 for H36M, MPJPE, PCK (runs that have them) and
    MPJPE17 for 3DHP; the refined pose). Only the latest run per seed counts (as in the tables); seeds
    are paired (those both sides have). Runs whose folder holds neither ``per_frame.npz`` nor a clips
    record are left out, nothing raised; a source that cannot be read and runs that are not paired
    (:func:`check_paired`) are a one-line DataError, or, not ``strict`` (the tables: an optional column
    must not stop them), left out too."""
    import pandas as pd

    from harness.report.rows import _RUN_KEY, _SETTING, NOISE_ORDER, VARIANT_ORDER, _order, latest_runs, normalise

    runs_dir = Path(runs_dir)
    d = normalise(df)
    d = d[d["model"] == "diffusion"]
    rows: list[dict[str, Any]] = []
    if d.empty:
        return pd.DataFrame(rows, columns=INTERVAL_COLUMNS)
    d, _ = latest_runs(d)
    runs = d.drop_duplicates("run")[_RUN_KEY + ["run"]]
    def find(run: str, bench: str) -> Clips | None:
        try:
            return find_clips(runs_dir / run, bench)
        except DataError:
            if strict:
                raise
            return None

    found = {r: find(r, b) for r, b in zip(runs["run"], runs["benchmark"])}
    runs = runs[[found[r] is not None for r in runs["run"]]]
    clips = found.__getitem__

    group_key = _SETTING + ["profile", "noise"]
    for key, grp in runs.groupby(group_key, sort=False):
        base = grp[grp["variant"] == baseline].set_index("seed")["run"]
        if base.empty:
            continue
        for variant, vg in grp[grp["variant"] != baseline].groupby("variant", sort=False):
            other = vg.set_index("seed")["run"]
            seeds = sorted(set(base.index) & set(other.index))
            if not seeds:
                continue
            a = [clips(base[s]) for s in seeds]
            b = [clips(other[s]) for s in seeds]
            try:
                ivs = paired_intervals(a, b, n_boot=n_boot, seed=seed)
            except DataError:
                if strict:
                    raise
                continue
            for iv in ivs:
                rows.append({**dict(zip(group_key, key)), "variant": variant, "metric": iv.metric,
                             "delta": iv.delta, "lo": iv.lo, "hi": iv.hi, "significant": iv.significant,
                             "n_clips": iv.n_clips, "n_seeds": iv.n_seeds, "method": iv.method})
    out = pd.DataFrame(rows, columns=INTERVAL_COLUMNS)
    if out.empty:
        return out
    metric_order = {m: i for b in METRIC_ARRAYS.values() for i, m in enumerate(b)}
    out = out.assign(_v=out["variant"].map(lambda v: _order(v, VARIANT_ORDER)),
                     _n=out["noise"].map(lambda n: _order(n, NOISE_ORDER)), _m=out["metric"].map(metric_order))
    out = out.sort_values(["benchmark", "keypoints", "synthetic", "train_on", "profile", "_v", "_n", "_m"])
    return out.drop(columns=["_v", "_n", "_m"]).reset_index(drop=True)


def interval_text(delta: float, lo: float, hi: float, significant: bool, decimals: int = 2) -> str:
    """``-0.49 [-0.61, -0.37]``; ``+0.10 [-0.20, 0.40] n.s.`` when the interval contains 0."""
    cell = f"{_num(delta, decimals, True)} [{_num(lo, decimals)}, {_num(hi, decimals)}]"
    return cell if significant else f"{cell} {NOT_SIGNIFICANT}"


def interval_columns(table, rows: Sequence[Any], noises: Sequence[str], intervals, metrics: Sequence[str],
                     noise_labels: dict[str, str] | None = None, metric_labels: dict[str, str] | None = None,
                     decimals: int = 2, missing: str = "–") -> str:
    """Insert ``Δ<metric> [95% CI]`` columns into the ablation ``table`` (in place; two header levels,
    the first the noise's label): one per noise and metric of ``metrics`` that has an interval in
    ``intervals`` (:func:`ablation_intervals`), right after that noise's columns; row ``i`` is
    ``rows[i]`` (its ``profile`` and ``variant``) against the baseline of the noise, ``missing`` where it
    has no interval (the baseline itself). A plain ``Δ<metric>`` column of the same noise and metric is
    dropped: the interval's cell starts with the same difference. Returns the caption sentence that explains them, "" when
    there was no interval (and no column was added)."""
    if intervals is None or len(intervals) == 0:
        return ""
    noise_labels, metric_labels = noise_labels or {}, metric_labels or {}
    by = {(r.profile, r.variant, r.noise, r.metric): r for r in intervals.itertuples(index=False)}
    methods: list[str] = []
    for noise in noises:
        nl = noise_labels.get(noise, noise)
        pos = max(i for i, c in enumerate(table.columns) if c[0] == nl) + 1
        for m in metrics:
            found = [by.get((r.profile, r.variant, noise, m)) for r in rows]
            if all(iv is None for iv in found):
                continue
            table.insert(pos, (nl, f"Δ{metric_labels.get(m, m)} [95% CI]"),
                         [missing if iv is None else interval_text(iv.delta, iv.lo, iv.hi, bool(iv.significant),
                                                                   decimals) for iv in found])
            pos += 1
            methods += [iv.method for iv in found if iv is not None and iv.method not in methods]
            plain = (nl, f"Δ{metric_labels.get(m, m)}")
            if plain in table.columns:  # the interval column starts with the same difference: one of the two
                del table[plain]
                pos -= 1
    if not methods:
        return ""
    return (f"Δ [95% CI]: change against the baseline with the same noise and its 95% confidence interval "
            f"({'; '.join(methods)}); {NOT_SIGNIFICANT}: the interval contains 0.")
