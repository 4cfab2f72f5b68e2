"""Seeded fuzz (issue 12, item 7): random mutations of a small synthetic dataset, of a run folder and of
its checkpoints. Every outcome must be a success or a one-line :class:`harness.errors.HarnessError`
(through the CLI: a non-zero exit, one ``error:`` line, no traceback), never another exception, a
hang, or wrong numbers reported as fine.

How it works
------------
- One master generator, ``numpy.random.default_rng(SEED)``, fixes for every target the order of its
  mutation kinds (each kind is used in turn, so all are covered) and one seed per case; a case is one
  pytest id (``test_h36m_struct[s3_array:nan-017]``) and reruns alone, with the same mutation, by
  ``pytest "tests/test_fuzz.py::test_h36m_struct[s3_array:nan-017]"``. The array mutations
  (:data:`ARRAY_MUTATIONS`: NaN, x1000, all zeros, dtypes, shapes, ...) fill the ``...:*`` slots of a
  target's kinds in shuffled rounds. :data:`COUNTS` is how many cases each target gets (at least one
  of each kind); ``test_fuzz_summary`` prints them and the outcomes (``-s``).
- Targets: the H36M files in VideoPose3D layout (a 2-subject, 2-camera sliver of
  :func:`harness.data.synth.synth_h36m` with its GT 2D file), mutated as structures (load with
  :func:`harness.safeio.load_npz` / h5py, mutate keys, types, shapes, dtypes, values; write back) and
  as bytes (truncation, byte flips, zero runs, ...) -> :func:`load_h36m` and :func:`scan_h36m`; the
  3DHP test/train files the same way -> :func:`load_3dhp` / :func:`scan_3dhp`; and one tiny trained
  run: its ``config.json``, ``metrics.json``, ``identity.json``, ``noise.json``, ``checkpoint.pt`` and the
  shared lifter's files -> ``read_run_config``, ``load_checkpoint``, ``evaluate_run``, and the gate
  (``harness check``) / ``harness tables`` over a results folder holding the mutated ``metrics.json``.
  Library entry points are called in-process; every :data:`CLI_EVERY`-th case also goes through the
  CLI (``typer.testing.CliRunner`` on ``harness.cli.app``).
- "Wrong numbers reported as fine": a mutation that keeps a readable file but makes its numbers wrong
  (millimetres for metres, all zeros, NaN, normalised 2D, ...) is marked ``must_fail``: a success is a
  failure of the test (for ``metrics.json``: ``harness check`` must exit non-zero). A success of any
  case must give sane numbers (finite, bones of human length; finite metrics).
- A case that gets no outcome within :data:`HANG_S` seconds fails as a hang (a guard against a stuck
  CI job, not a timing assertion). The whole file takes about 40 s on 2 CPU cores: the run and the
  re-evaluations use torch's ops on one thread (no C++ kernel build), the data are a sliver.
- :data:`KNOWN_DEFECTS` turns a failure matching a known defect (outside the data side) into an
  ``xfail`` naming it; a fixed defect simply passes.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import shutil
import signal
import threading
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from harness.errors import HarnessError

SEED = 12345
CLI_EVERY = 7          # every 7th case of a target also runs through the CLI
HANG_S = 120           # no outcome after this many seconds: a hang
COUNTS = {             # mutations per target: at least one cycle through each target's kinds
    "h36m_struct": 132, "h36m_bytes": 48,
    "3dhp_struct": 116, "3dhp_bytes": 32,
    "run_config": 31, "run_metrics": 46, "run_json": 15,
    "ckpt_struct": 54, "ckpt_bytes": 16, "lifter_files": 10,
}

runner = CliRunner()
_OUTCOMES: Counter = Counter()   # (target, outcome) -> cases, for the summary


# ============================================================================================ cases
@dataclass(frozen=True)
class Case:
    target: str
    index: int
    kind: str
    seed: int

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.index:03d}"

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    @property
    def cli(self) -> bool:
        return self.index % CLI_EVERY == 0


_MASTER = np.random.default_rng(SEED)


def _cases(target: str, kinds: list[str], fill: list[str] = ()) -> list[Case]:
    """``COUNTS[target]`` cases cycling through ``kinds`` in an order the master generator shuffles; a
    kind ``"<prefix>:*"`` is a slot filled with the next of ``fill`` (the array mutations), which are
    dealt in shuffled rounds: every one is used before any is used again."""
    n = COUNTS[target]
    order = list(kinds)
    _MASTER.shuffle(order)
    seeds = _MASTER.integers(0, 2**63 - 1, size=n)
    out, deck = [], []
    for i in range(n):
        kind = order[i % len(order)]
        if kind.endswith(":*"):
            if not deck:
                deck = list(fill)
                _MASTER.shuffle(deck)
            kind = f"{kind[:-2]}:{deck.pop()}"
        out.append(Case(target, i, kind, int(seeds[i])))
    return out


def _params(cases: list[Case]):
    return [pytest.param(c, id=c.id) for c in cases]


class _Hang(BaseException):
    """Raised by the alarm: a BaseException, so no ``except Exception`` in the harness swallows it."""


@contextlib.contextmanager
def _hang_guard(seconds: int = HANG_S):
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise _Hang(f"no outcome after {seconds} s (a hang?)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


class WrongOutcome(AssertionError):
    """An outcome other than a success or a one-line HarnessError (or a success that must not be)."""


def _where(exc: BaseException) -> str:
    """The innermost harness (or last) frames of ``exc``'s traceback, for the report."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if "/harness/" in f.filename] or frames
    return " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(own[-3:]))


def attempt(fn: Callable[[], Any]) -> tuple[bool, Any]:
    """``(True, value)`` on success, ``(False, message)`` for a HarnessError with a one-line message;
    any other exception propagates (the case fails, naming it)."""
    try:
        return True, fn()
    except HarnessError as e:
        msg = str(e)
        if not msg.strip() or "\n" in msg or "\r" in msg:
            raise WrongOutcome(f"HarnessError message is not one non-empty line: {msg!r}") from None
        return False, msg


def _is(name: str, text: str = "") -> Callable[[Case, BaseException], bool]:
    return lambda case, e: type(e).__name__ == name and text in str(e)


# Failures that match a known defect outside the data side (left to the code's owners; not fixed by the
# fuzz's author): (target, predicate, reason). A fixed defect passes: the predicate is only consulted on
# a failure.
KNOWN_DEFECTS: list[tuple[str, Callable[[Case, BaseException], bool], str]] = [
    # all six found by this fuzz were fixed (see the closing note of issue 12); a new one goes here
]


def run_case(case: Case, body: Callable[[Callable[[str], None]], str]) -> None:
    """Run one case: ``body(described)`` applies the mutation (telling ``described`` what it did), calls
    the entry points and returns the outcome's name; on anything but an accepted outcome the test fails
    (or xfails, for a known defect) with the mutation's description."""
    desc = ["(mutation not applied)"]

    def described(text: str) -> None:
        desc[0] = text

    failure: BaseException | None = None
    try:
        with _hang_guard():
            outcome = body(described)
        _OUTCOMES[(case.target, outcome)] += 1
    except BaseException as e:  # noqa: BLE001 - everything not accepted is reported
        if isinstance(e, (pytest.skip.Exception, pytest.xfail.Exception, KeyboardInterrupt)):
            raise
        failure = e
    if failure is None:
        return
    _OUTCOMES[(case.target, "defect")] += 1
    for target, match, reason in KNOWN_DEFECTS:
        if target == case.target and match(case, failure):
            pytest.xfail(f"known defect: {reason} [{case.target} {case.id}: {desc[0]}]")
    what = str(failure) if isinstance(failure, WrongOutcome) else f"{type(failure).__name__}: {failure}"
    pytest.fail(f"{case.target} case {case.id} (seed {case.seed}): {desc[0]}\n  -> {what[:1500]}\n"
                f"  at {_where(failure)}", pytrace=False)


# ------------------------------------------------------------------------------------------- CLI
def cli(args: list[str], report_exit: int | None = None, progress: bool = False) -> tuple[int, str]:
    """Invoke the CLI in-process: exit 0, or ``report_exit`` (a command's own report of problems, e.g.
    ``data check``'s list), or any other non-zero exit with exactly one ``error:`` line (preceded only by
    progress lines when ``progress``) and no traceback. Returns ``(exit code, output)``."""
    from harness.cli import app

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = runner.invoke(app, [str(a) for a in args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception.with_traceback(r.exc_info[2] if r.exc_info else None)
    shown = [w for w in caught if issubclass(w.category, (RuntimeWarning, UserWarning))]
    if shown:  # a user would see these lines besides the command's output
        w = shown[0]
        raise WrongOutcome(f"CLI {args[:2]} printed a warning: {Path(w.filename).name}:{w.lineno}: "
                           f"{w.category.__name__}: {w.message}")
    text = r.output
    if "Traceback" in text:
        raise WrongOutcome(f"CLI {args[:2]} printed a traceback: {text[-800:]}")
    if r.exit_code == 0 or (report_exit is not None and r.exit_code == report_exit):
        return r.exit_code, text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    if not lines or len(errors) != 1 or not lines[-1].startswith("error: ") or (len(lines) > 1 and not progress):
        raise WrongOutcome(f"CLI {args[:2]} exit {r.exit_code} without exactly one 'error:' line: {text[-800:]!r}")
    return r.exit_code, text


# ====================================================================================== file edits
def _pick(rng: np.random.Generator, seq):
    seq = list(seq)
    return seq[int(rng.integers(len(seq)))]


def _obj(v: Any) -> np.ndarray:
    """``v`` as a 0-d object array (how VideoPose3D stores a dict in an npz)."""
    a = np.empty((), dtype=object)
    a[()] = v
    return a


def write_npz(path: Path, d: dict[str, Any], compressed: bool = True) -> None:
    from harness.safeio import save_npz

    save_npz(path, compressed=compressed, **{k: v if isinstance(v, np.ndarray) else _obj(v) for k, v in d.items()})


def edit_npz(path: Path, fn: Callable[[dict], Any]) -> Any:
    """Load ``path``, let ``fn`` mutate the dict in place, write it back; returns what ``fn`` returns."""
    from harness.safeio import load_npz

    d = load_npz(path)
    out = fn(d)
    write_npz(path, d)
    return out


def _rename_key(d: dict, old, new) -> None:
    items = list(d.items())
    d.clear()
    d.update({(new if k == old else k): v for k, v in items})


# ------------------------------------------------------------------------------- byte mutations
BYTE_KINDS = ["truncate", "flip", "flip_head", "flip_tail", "zero_run", "append", "empty", "random_bytes"]
BYTES_MUST_FAIL = {"truncate", "empty", "random_bytes"}


def mutate_bytes(path: Path, kind: str, rng: np.random.Generator) -> str:
    raw = bytearray(path.read_bytes())
    n = len(raw)
    if kind == "truncate":
        cut = int(rng.integers(0, n))
        path.write_bytes(bytes(raw[:cut]))
        return f"{path.name} ({n} bytes) truncated to {cut} bytes"
    if kind in ("flip", "flip_head", "flip_tail"):
        k = int(rng.integers(1, 9))
        lo, hi = {"flip": (0, n), "flip_head": (0, min(n, 512)), "flip_tail": (max(0, n - 512), n)}[kind]
        offs = sorted(int(o) for o in rng.integers(lo, hi, size=k))
        for o in offs:
            raw[o] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(raw))
        return f"{path.name}: {k} byte(s) flipped at offsets {offs}"
    if kind == "zero_run":
        start = int(rng.integers(0, n))
        length = int(rng.integers(1, 4096))
        raw[start:start + length] = bytes(len(raw[start:start + length]))
        path.write_bytes(bytes(raw))
        return f"{path.name}: {length} bytes zeroed from offset {start}"
    if kind == "append":
        extra = rng.integers(0, 256, size=int(rng.integers(1, 2048)), dtype=np.uint8).tobytes()
        path.write_bytes(bytes(raw) + extra)
        return f"{path.name}: {len(extra)} random bytes appended"
    if kind == "empty":
        path.write_bytes(b"")
        return f"{path.name}: emptied"
    if kind == "random_bytes":
        path.write_bytes(rng.integers(0, 256, size=n, dtype=np.uint8).tobytes())
        return f"{path.name}: replaced by {n} random bytes"
    raise AssertionError(kind)


# ------------------------------------------------------------------------------- array mutations
# name -> (fn(array, rng, root joint) -> new value, domains where a success is wrong numbers reported
# as fine): "3d" H36M 3D (metres), "2d" H36M 2D (pixels), "hp3d" 3DHP 3D (mm), "hp2d" 3DHP 2D (pixels).
ALL = frozenset({"3d", "2d", "hp3d", "hp2d"})


def _set(a, rng, value):
    """``value`` at one joint and coordinate in every frame."""
    a = np.array(a, copy=True)
    j = int(rng.integers(a.shape[1]))
    a[:, j, int(rng.integers(a.shape[2]))] = value
    return a


def _but_root_zero(a, rng, root):
    a = np.array(a, copy=True)
    keep = a[:, root].copy()
    a[:] = 0
    a[:, root] = keep
    return a


def _coincide(a, rng, root):
    a = np.array(a, copy=True)
    j, k = rng.choice(a.shape[1], size=2, replace=False)
    a[:, j] = a[:, k]
    return a


def _pad32(a, rng, root):
    extra = a[:, rng.integers(0, a.shape[1], size=32 - a.shape[1])]
    return np.concatenate([a, extra], axis=1)


ARRAY_MUTATIONS: dict[str, tuple[Callable, frozenset]] = {
    "nan": (lambda a, rng, r: _set(a, rng, np.nan), ALL),
    "inf": (lambda a, rng, r: _set(a, rng, np.inf), ALL),
    "neg_inf": (lambda a, rng, r: _set(a, rng, -np.inf), ALL),
    "x1000": (lambda a, rng, r: a * 1000, ALL),
    "x100": (lambda a, rng, r: a * 100, ALL),
    "div1000": (lambda a, rng, r: a / 1000, ALL),
    "x1e30": (lambda a, rng, r: a.astype(np.float64) * 1e30, ALL),
    "x1e37_float32": (lambda a, rng, r: (a.astype(np.float32) * np.float32(1e37)).astype(np.float32), ALL),
    "zeros": (lambda a, rng, r: np.zeros_like(a), ALL),
    "but_root_zero": (_but_root_zero, frozenset({"3d", "hp3d"})),
    "coincide": (_coincide, frozenset({"3d", "hp3d"})),
    "float16": (lambda a, rng, r: a.astype(np.float16), frozenset()),
    "float64": (lambda a, rng, r: a.astype(np.float64), frozenset()),
    "int32": (lambda a, rng, r: a.astype(np.int32), frozenset({"3d"})),
    "uint8": (lambda a, rng, r: a.astype(np.uint8), frozenset({"3d"})),
    "bool": (lambda a, rng, r: a.astype(bool), ALL),
    "object": (lambda a, rng, r: a.astype(object), frozenset({"3d", "2d"})),
    "complex": (lambda a, rng, r: a.astype(np.complex64), ALL),
    "str_dtype": (lambda a, rng, r: a.astype(str), frozenset({"3d", "2d"})),
    "text": (lambda a, rng, r: "not an array", ALL),
    "none": (lambda a, rng, r: None, ALL),
    "scalar": (lambda a, rng, r: np.float64(1.5), ALL),
    "nested_list": (lambda a, rng, r: a.tolist(), frozenset()),
    "wrapped_0d": (lambda a, rng, r: _obj(a), ALL),
    "drop_ndim": (lambda a, rng, r: a[..., 0], ALL),
    "add_ndim": (lambda a, rng, r: a[None], ALL),
    "flatten": (lambda a, rng, r: a.reshape(-1), ALL),
    "transpose": (lambda a, rng, r: a.transpose(0, 2, 1), ALL),
    "joints_16": (lambda a, rng, r: a[:, :16], ALL),
    "joints_32": (_pad32, frozenset({"2d", "hp3d", "hp2d"})),
    "extra_channel": (lambda a, rng, r: np.concatenate([a, a[..., :1]], axis=-1), ALL),
    "no_frames": (lambda a, rng, r: a[:0], ALL),
    "one_frame": (lambda a, rng, r: a[:1], frozenset({"2d", "hp3d", "hp2d"})),
    "more_frames": (lambda a, rng, r: np.concatenate([a, a]), frozenset({"hp3d", "hp2d"})),
    "reverse_frames": (lambda a, rng, r: a[::-1], frozenset()),
    "fortran": (lambda a, rng, r: np.asfortranarray(a), frozenset()),
    "mirror": (lambda a, rng, r: -a, frozenset()),
    "empty_1d": (lambda a, rng, r: np.zeros(0, np.float32), ALL),
}


def mutate_array(kind: str, a: np.ndarray, rng: np.random.Generator, root: int, domain: str) -> tuple[Any, bool]:
    fn, must = ARRAY_MUTATIONS[kind]
    with np.errstate(all="ignore"):
        return fn(a, rng, root), domain in must


# ============================================================================ sanity of a success
def _median_bone_m(pose_3d: np.ndarray, parents) -> float:
    from harness.data.sanity import median_bone_length

    return median_bone_length(pose_3d.astype(np.float64), parents) or 0.0


def check_posesets(sets: dict, what: str) -> None:
    """A loader's success: finite arrays of consistent lengths, 3D of human size (metres)."""
    for split, ps in sets.items():
        n = len(ps)
        for name in ("pose_2d", "subject", "action", "sequence", "camera", "frame", "valid"):
            if len(getattr(ps, name)) != n:
                raise WrongOutcome(f"{what} {split}: {name} has {len(getattr(ps, name))} rows, pose_3d {n}")
        if not (np.isfinite(ps.pose_2d).all() and np.isfinite(ps.pose_3d).all()):
            raise WrongOutcome(f"{what} {split}: non-finite poses returned as fine")
        use = ps.valid.astype(bool)
        if use.any():
            m = _median_bone_m(ps.pose_3d[use], ps.parents)
            if not 0.05 <= m <= 1.5:
                raise WrongOutcome(f"{what} {split}: median bone {m:.4g} m returned as fine")


# ============================================================================ fixtures: the data
def _h36m_sliver(root: Path) -> Path:
    """S1 (train) and S9 (test), 2 actions each, 2 cameras, and the GT 2D file."""
    import h5py

    from harness.camera import load_cameras_h5, save_cameras_h5
    from harness.data.h36m import prepare_gt_2d
    from harness.data.synth import synth_h36m
    from harness.safeio import load_npz, save_npz

    synth_h36m(root, seed=0, frames=8, takes=1)
    pos = load_npz(root / "data_3d_h36m.npz")["positions_3d"]
    acts = sorted(pos["S1"])[:2]
    save_npz(root / "data_3d_h36m.npz", positions_3d={s: {a: pos[s][a] for a in acts} for s in ("S1", "S9")})
    for p in root.glob("data_2d_h36m_*.npz"):
        p.unlink()
    cams = load_cameras_h5(root / "cameras.h5")
    (root / "cameras.h5").unlink()
    save_cameras_h5(root / "cameras.h5", {s: cams[s][:2] for s in ("S1", "S9")})
    with h5py.File(root / "cameras.h5", "r") as f:
        assert sorted(f) == ["subject1", "subject9"]
    prepare_gt_2d(root, root)
    return root


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def h36m_base(scratch) -> Path:
    from harness.data.h36m import load_h36m

    root = _h36m_sliver(scratch / "h36m-base")
    check_posesets(load_h36m(root, "gt", use_cache=False), "pristine H36M")
    return root


@pytest.fixture(scope="module")
def hp_base(scratch) -> Path:
    from harness.data.mpi3dhp import load_3dhp
    from harness.data.synth import synth_3dhp

    root = scratch / "3dhp-base"
    synth_3dhp(root, seed=0, test_frames=6, train_subjects=1, train_seqs=1, train_cameras=2, train_frames=6)
    check_posesets(load_3dhp(root), "pristine 3DHP")
    return root


@contextlib.contextmanager
def _case_dir(scratch: Path, case: Case):
    d = scratch / f"{case.target}-{case.id}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ================================================================================= H36M structure
H36M_FILE_3D, H36M_FILE_2D = "data_3d_h36m.npz", "data_2d_h36m_gt.npz"


def _a3(rng, d):
    pos = d["positions_3d"]
    s = _pick(rng, pos)
    a = _pick(rng, pos[s])
    return pos, s, a


def _s3(kind: str, rng, d) -> tuple[str, bool]:
    """Structure mutations of data_3d_h36m.npz's dict: (description, must fail)."""
    pos = d["positions_3d"]
    if kind.startswith("s3_array:"):
        k = kind.split(":", 1)[1]
        pos, s, a = _a3(rng, d)
        pos[s][a], must = mutate_array(k, pos[s][a], rng, 0, "3d")
        return f"{s} '{a}' 3D array: {k}", must
    s = _pick(rng, pos)
    a = _pick(rng, pos[s])
    if kind == "s3_drop_entry":
        del d["positions_3d"]
        return "no positions_3d entry", True
    if kind == "s3_rename_entry":
        d["positions"] = d.pop("positions_3d")
        return "positions_3d renamed 'positions'", True
    if kind == "s3_entry_text":
        d["positions_3d"] = np.array("positions") if rng.random() < 0.5 else "positions"
        return "positions_3d is a string", True
    if kind == "s3_entry_list":
        d["positions_3d"] = [v for acts in pos.values() for v in acts.values()]
        return "positions_3d is a list of arrays", True
    if kind == "s3_entry_array":
        d["positions_3d"] = pos[s][a]
        return "positions_3d is an array", True
    if kind == "s3_empty":
        d["positions_3d"] = {}
        return "positions_3d is an empty dict", True
    if kind == "s3_subject_int_key":
        _rename_key(pos, s, int(s[1:]))
        return f"subject key {s!r} -> int", True
    if kind == "s3_subject_npint_key":
        _rename_key(pos, s, np.int64(s[1:]))
        return f"subject key {s!r} -> numpy int64", True
    if kind == "s3_action_int_key":
        _rename_key(pos[s], a, 7)
        return f"{s} action key {a!r} -> int 7", True
    if kind == "s3_action_tuple_key":
        _rename_key(pos[s], a, (a, 1))
        return f"{s} action key {a!r} -> tuple", True
    if kind == "s3_action_bytes_key":
        _rename_key(pos[s], a, a.encode())
        return f"{s} action key {a!r} -> bytes", True
    if kind == "s3_subject_value_list":
        pos[s] = list(pos[s].values())
        return f"{s} is a list of arrays", True
    if kind == "s3_subject_value_array":
        pos[s] = pos[s][a]
        return f"{s} is an array", True
    if kind == "s3_subject_empty":
        pos[s] = {}
        return f"{s} has no sequences", True
    if kind == "s3_drop_subject":
        del pos[s]
        return f"{s} dropped", False
    if kind == "s3_drop_action":
        del pos[s][a]
        return f"{s} '{a}' dropped", False
    if kind == "s3_unknown_action":
        _rename_key(pos[s], a, "Dancing 1")
        return f"{s} '{a}' renamed 'Dancing 1'", True
    if kind == "s3_unknown_subject":
        pos["S99"] = copy.deepcopy(pos[s])
        return f"subject S99 added (a copy of {s})", False
    if kind == "s3_swap_actions":
        s2, a2 = _pick(rng, pos), None
        a2 = _pick(rng, pos[s2])
        pos[s][a], pos[s2][a2] = pos[s2][a2], pos[s][a]
        return f"{s} '{a}' and {s2} '{a2}' swapped", False
    if kind == "s3_swap_subjects":
        pos["S1"], pos["S9"] = pos["S9"], pos["S1"]
        return "S1 and S9 swapped", False
    if kind == "s3_extra_entry":
        d["junk"] = np.arange(5)
        return "extra entry 'junk'", False
    if kind == "s3_np_str_keys":
        for subj in list(pos):
            _rename_key(pos, subj, np.str_(subj))
        return "subject keys as numpy str_", False
    if kind == "s3_nested_deeper":
        pos[s][a] = {"data": pos[s][a]}
        return f"{s} '{a}' is a dict holding the array", True
    if kind == "s3_mixed_joint_counts":
        pos[s][a] = _pad32(pos[s][a], rng, 0)
        return f"{s} '{a}' padded to 32 joints (the others 17)", True
    raise AssertionError(kind)


def _views(rng, d):
    pos = d["positions_2d"]
    s = _pick(rng, pos)
    a = _pick(rng, pos[s])
    return pos, s, a


def _s2(kind: str, rng, d) -> tuple[str, bool]:
    """Structure mutations of data_2d_h36m_gt.npz (positions_2d and metadata)."""
    pos, s, a = _views(rng, d)
    views = pos[s][a]
    meta = d["metadata"]
    if kind.startswith("s2_array:"):
        k = kind.split(":", 1)[1]
        ci = int(rng.integers(len(views)))
        views[ci], must = mutate_array(k, views[ci], rng, 0, "2d")
        return f"{s} '{a}' camera {ci} 2D array: {k}", must
    if kind == "s2_drop_entry":
        del d["positions_2d"]
        return "no positions_2d entry", True
    if kind == "s2_drop_metadata":
        del d["metadata"]
        return "no metadata entry", True
    if kind == "s2_metadata_list":
        d["metadata"] = list(meta.items())
        return "metadata is a list", True
    if kind == "s2_metadata_empty":
        d["metadata"] = {}
        return "metadata is empty", True
    values = {"s2_num_joints_text": ("17", False), "s2_num_joints_word": ("seventeen", True),
              "s2_num_joints_nan": (float("nan"), True), "s2_num_joints_inf": (float("inf"), True),
              "s2_num_joints_16": (16, True), "s2_num_joints_float": (17.0, False), "s2_num_joints_bool": (True, True),
              "s2_num_joints_huge": (10**30, True), "s2_num_joints_list": ([17], True),
              "s2_num_joints_none": (None, True)}
    if kind in values:
        meta["num_joints"], must = values[kind]
        return f"metadata num_joints = {meta['num_joints']!r}", must
    syms = {"s2_sym_none": None, "s2_sym_one_side": [[4, 5, 6, 11, 12, 13]], "s2_sym_text": "left-right",
            "s2_sym_swapped": [list(meta["keypoints_symmetry"][1]), list(meta["keypoints_symmetry"][0])],
            "s2_sym_nested": [[[4]], [[1]]], "s2_sym_huge_index": [[10**40], [1]], "s2_sym_nan": [[float("nan")], [1]]}
    if kind in syms:
        meta["keypoints_symmetry"] = syms[kind]
        return f"metadata keypoints_symmetry = {syms[kind]!r}", True
    if kind == "s2_drop_symmetry":
        del meta["keypoints_symmetry"]
        return "metadata without keypoints_symmetry", True
    if kind == "s2_layout_name_huge":
        meta["layout_name"] = list(range(5000))
        return "metadata layout_name a list of 5000 ints", False
    if kind == "s2_views_tuple":
        pos[s][a] = tuple(views)
        return f"{s} '{a}' views as a tuple", False
    if kind == "s2_views_array":
        pos[s][a] = np.stack([v[:min(len(x) for x in views)] for v in views])
        return f"{s} '{a}' views stacked into one array", True
    if kind == "s2_views_fewer":
        pos[s][a] = views[:1]
        return f"{s} '{a}' has 1 view (cameras.h5 has 2)", True
    if kind == "s2_views_more":
        pos[s][a] = list(views) + [views[0]]
        return f"{s} '{a}' has 3 views (cameras.h5 has 2)", True
    if kind == "s2_views_empty":
        pos[s][a] = []
        return f"{s} '{a}' has no views", True
    if kind == "s2_views_dict":
        pos[s][a] = {i: v for i, v in enumerate(views)}
        return f"{s} '{a}' views as a dict", True
    if kind == "s2_subject_missing":
        del pos[s]
        return f"2D lacks {s}", True
    if kind == "s2_sequence_missing":
        del pos[s][a]
        return f"2D lacks {s} '{a}'", True
    if kind == "s2_subject_int_key":
        _rename_key(pos, s, int(s[1:]))
        return f"2D subject key {s!r} -> int", True
    if kind == "s2_action_int_key":
        _rename_key(pos[s], a, 3)
        return f"2D {s} action key {a!r} -> int", True
    if kind == "s2_subject_value_list":
        pos[s] = list(pos[s].values())
        return f"2D {s} is a list", True
    if kind == "s2_extra_sequence":
        pos[s]["Walking 7"] = list(views)
        return f"2D {s} has an extra sequence", False
    if kind == "s2_swap_cameras":
        pos[s][a] = list(views)[::-1]
        return f"2D {s} '{a}' views reversed", False
    if kind == "s2_view_is_3d":
        pos[s][a] = [np.concatenate([v, v[..., :1]], axis=-1) for v in views]
        return f"2D {s} '{a}' views have 3 channels", True
    raise AssertionError(kind)


def _cam(kind: str, rng, path: Path) -> tuple[str, bool]:
    """Structure mutations of cameras.h5 (edited in place with h5py)."""
    import h5py

    with h5py.File(path, "r+") as f:
        gname = _pick(rng, sorted(f))
        g = f[gname]
        cname = _pick(rng, sorted(g))
        c = g[cname]
        where = f"{gname}/{cname}"

        def put(name, value):
            if name in c:
                del c[name]
            c[name] = value

        R = np.asarray(c["R"][()], dtype=np.float64)
        if kind.startswith("cam_drop_"):
            name = kind[len("cam_drop_"):]
            del c[name]
            return f"{where}: dataset {name} deleted", name != "res"
        if kind == "cam_R_scaled":
            put("R", R * 2)
            return f"{where}: R doubled", True
        if kind == "cam_R_nan":
            R[1, 1] = np.nan
            put("R", R)
            return f"{where}: R holds NaN", True
        if kind == "cam_R_reflect":
            put("R", R * np.array([1.0, 1.0, -1.0]))
            return f"{where}: R with det -1", True
        if kind == "cam_R_shape":
            put("R", R[:2, :2])
            return f"{where}: R is 2x2", True
        if kind == "cam_R_int":
            put("R", np.round(R).astype(np.int64) + 1)
            return f"{where}: R int, not a rotation", True
        if kind == "cam_R_text":
            put("R", np.bytes_(b"rotation"))
            return f"{where}: R a string", True
        if kind == "cam_R_group":
            del c["R"]
            c.create_group("R")
            return f"{where}: R a group", True
        if kind == "cam_f_negative":
            put("f", -np.abs(np.asarray(c["f"][()])))
            return f"{where}: f negative", True
        if kind == "cam_c_zero":
            put("c", np.zeros((2, 1)))
            return f"{where}: c zero", True
        if kind == "cam_T_nan":
            put("T", np.full((3, 1), np.nan))
            return f"{where}: T NaN", True
        if kind == "cam_k_huge":
            put("k", np.full((3, 1), 1e6))
            return f"{where}: k 1e6", False
        if kind == "cam_res_zero":
            put("res", np.array([0, 1000]))
            return f"{where}: res 0x1000", True
        if kind == "cam_res_three":
            put("res", np.array([1000, 1000, 3]))
            return f"{where}: res has 3 entries", True
        if kind == "cam_res_nan":
            put("res", np.array([np.nan, 1000.0]))
            return f"{where}: res NaN", True
        if kind == "cam_res_inf":
            put("res", np.array([np.inf, 1000.0]))
            return f"{where}: res inf", True
        if kind == "cam_res_text":
            put("res", np.bytes_(b"1000x1000"))
            return f"{where}: res a string", True
        if kind == "cam_res_huge":
            put("res", np.array([10**15, 10**15], dtype=np.int64))
            return f"{where}: res 1e15 x 1e15", False
        if kind == "cam_name_text":
            put("Name", np.bytes_(b"54138969"))
            return f"{where}: Name a string", False
        if kind == "cam_name_huge":
            put("Name", np.array([1e30, 2e30]))
            return f"{where}: Name codes 1e30", False
        if kind == "cam_group_rename":
            f.move(gname, "subjectX" + gname[len("subject"):])
            return f"{gname} renamed subjectX...", True
        if kind == "cam_camera_rename":
            g.move(cname, "cameraA")
            return f"{where} renamed cameraA", True
        if kind == "cam_remove_camera":
            del g[cname]
            return f"{where} deleted", False
        if kind == "cam_subject_empty":
            for k in list(g):
                del g[k]
            return f"{gname} has no cameras", True
        if kind == "cam_extra_group":
            f.create_group("calibration_notes")
            return "extra group calibration_notes", False
        if kind == "cam_no_groups":
            for k in list(f):
                del f[k]
            return "no groups at all", True
    raise AssertionError(kind)


CAM_KINDS = ["cam_drop_" + n for n in ("R", "T", "f", "c", "k", "p", "Name", "res")] + [
    "cam_R_scaled", "cam_R_nan", "cam_R_reflect", "cam_R_shape", "cam_R_int", "cam_R_text", "cam_R_group",
    "cam_f_negative", "cam_c_zero", "cam_T_nan", "cam_k_huge", "cam_res_zero", "cam_res_three", "cam_res_nan",
    "cam_res_inf", "cam_res_text", "cam_res_huge", "cam_name_text", "cam_name_huge", "cam_group_rename",
    "cam_camera_rename", "cam_remove_camera", "cam_subject_empty", "cam_extra_group", "cam_no_groups"]
ARRAYS = list(ARRAY_MUTATIONS)
S3_KINDS = ["s3_array:*"] * 20 + [
    "s3_drop_entry", "s3_rename_entry", "s3_entry_text", "s3_entry_list", "s3_entry_array", "s3_empty",
    "s3_subject_int_key", "s3_subject_npint_key", "s3_action_int_key", "s3_action_tuple_key", "s3_action_bytes_key",
    "s3_subject_value_list", "s3_subject_value_array", "s3_subject_empty", "s3_drop_subject", "s3_drop_action",
    "s3_unknown_action", "s3_unknown_subject", "s3_swap_actions", "s3_swap_subjects", "s3_extra_entry",
    "s3_np_str_keys", "s3_nested_deeper", "s3_mixed_joint_counts"]
S2_KINDS = ["s2_array:*"] * 18 + [
    "s2_drop_entry", "s2_drop_metadata", "s2_metadata_list", "s2_metadata_empty", "s2_num_joints_text",
    "s2_num_joints_word", "s2_num_joints_nan", "s2_num_joints_inf", "s2_num_joints_16", "s2_num_joints_float",
    "s2_num_joints_bool", "s2_num_joints_huge", "s2_num_joints_list", "s2_num_joints_none", "s2_sym_none",
    "s2_sym_one_side", "s2_sym_text", "s2_sym_swapped", "s2_sym_nested", "s2_sym_huge_index", "s2_sym_nan",
    "s2_drop_symmetry", "s2_layout_name_huge", "s2_views_tuple", "s2_views_array", "s2_views_fewer",
    "s2_views_more", "s2_views_empty", "s2_views_dict", "s2_subject_missing", "s2_sequence_missing",
    "s2_subject_int_key", "s2_action_int_key", "s2_subject_value_list", "s2_extra_sequence", "s2_swap_cameras",
    "s2_view_is_3d"]

H36M_STRUCT = _cases("h36m_struct", S3_KINDS + S2_KINDS + CAM_KINDS, ARRAYS)
H36M_BYTES = _cases("h36m_bytes", [f"{f}:{k}" for f in ("3d", "2d", "cam") for k in BYTE_KINDS])


def _check_h36m(case: Case, root: Path, desc: str, must_fail: bool) -> str:
    from harness.data.h36m import load_h36m, scan_h36m

    ok, value = attempt(lambda: load_h36m(root, "gt", use_cache=False))
    if ok:
        if must_fail:
            raise WrongOutcome("load_h36m returned the data as fine: wrong numbers reported as fine")
        check_posesets(value, "load_h36m")
    sok, rep = attempt(lambda: scan_h36m(root, "gt"))
    if sok:
        if not isinstance(rep.problems, list) or not all(isinstance(p, str) and "\n" not in p for p in rep.problems):
            raise WrongOutcome(f"scan_h36m problems are not one-line strings: {rep.problems!r}"[:600])
        if rep.ok and (must_fail or not ok):
            raise WrongOutcome(f"scan_h36m (data check) found no problem, load_h36m: "
                               f"{'ok' if ok else value}")
    if case.cli:
        code, _ = cli(["data", "check", "--data-root", root], report_exit=1)
        if code == 0 and (must_fail or not ok):
            raise WrongOutcome("`harness data check` says no problems")
    return "ok" if ok else "error"


@pytest.mark.parametrize("case", _params(H36M_STRUCT))
def test_h36m_struct(case: Case, h36m_base, scratch):
    def body(described):
        with _case_dir(scratch, case) as d:
            root = d / "h36m"
            shutil.copytree(h36m_base, root)
            rng = case.rng()
            derived = ""
            if case.kind.startswith("cam_") or case.kind.startswith("s3_"):
                if rng.random() < 0.4:  # the GT 2D derived from the (mutated) 3D and cameras instead
                    (root / H36M_FILE_2D).unlink()
                    derived = " [GT 2D derived]"
            if case.kind.startswith("cam_"):
                desc, must = _cam(case.kind, rng, root / "cameras.h5")
            else:
                fname, fn = (H36M_FILE_3D, _s3) if case.kind.startswith("s3_") else (H36M_FILE_2D, _s2)
                desc, must = edit_npz(root / fname, lambda dd: fn(case.kind, rng, dd))
            described(desc + derived)
            return _check_h36m(case, root, desc, must)

    run_case(case, body)


@pytest.mark.parametrize("case", _params(H36M_BYTES))
def test_h36m_bytes(case: Case, h36m_base, scratch):
    def body(described):
        with _case_dir(scratch, case) as d:
            root = d / "h36m"
            shutil.copytree(h36m_base, root)
            rng = case.rng()
            which, kind = case.kind.split(":")
            path = root / {"3d": H36M_FILE_3D, "2d": H36M_FILE_2D, "cam": "cameras.h5"}[which]
            stored = ""
            if which != "cam" and rng.random() < 0.5:  # uncompressed members: flips land in the raw data
                from harness.safeio import load_npz

                write_npz(path, load_npz(path), compressed=False)
                stored = " (stored uncompressed)"
            described(mutate_bytes(path, kind, rng) + stored)
            return _check_h36m(case, root, "", kind in BYTES_MUST_FAIL)

    run_case(case, body)


# =================================================================================== 3DHP structure
HP_TEST, HP_TRAIN = "data_test_3dhp.npz", "data_train_3dhp.npz"


def _hp_test(kind: str, rng, d) -> tuple[str, bool]:
    from harness.skeleton import MPI3DHP_ROOT

    data = d["data"]
    seq = _pick(rng, sorted(data))
    e = data[seq]
    if kind.startswith(("t_array2d:", "t_array3d:")):
        key, k = ("data_2d" if kind.startswith("t_array2d:") else "data_3d"), kind.split(":", 1)[1]
        e[key], must = mutate_array(k, e[key], rng, MPI3DHP_ROOT, "hp2d" if key == "data_2d" else "hp3d")
        if must and k in ("nan", "inf", "neg_inf"):
            e["valid"] = np.ones_like(e["valid"])  # the non-finite values are in valid frames
        return f"test '{seq}' {key}: {k}", must
    if kind == "t_drop_data":
        del d["data"]
        return "no 'data' entry", True
    if kind == "t_data_list":
        d["data"] = list(data.values())
        return "'data' is a list", True
    if kind == "t_data_text":
        d["data"] = "TS1"
        return "'data' is a string", True
    if kind == "t_data_empty":
        d["data"] = {}
        return "'data' is empty", True
    if kind == "t_seq_int_key":
        _rename_key(data, seq, 1)
        return f"sequence key {seq!r} -> int", True
    if kind == "t_seq_unknown":
        _rename_key(data, seq, "TS7")
        return f"sequence {seq!r} renamed TS7", True
    if kind == "t_seq_bytes_key":
        _rename_key(data, seq, seq.encode())
        return f"sequence key {seq!r} -> bytes", True
    if kind == "t_entry_list":
        data[seq] = [e["data_2d"], e["data_3d"], e["valid"]]
        return f"'{seq}' is a list", True
    if kind == "t_entry_array":
        data[seq] = e["data_3d"]
        return f"'{seq}' is an array", True
    if kind in ("t_drop_data_2d", "t_drop_data_3d", "t_drop_valid"):
        key = kind[len("t_drop_"):]
        del e[key]
        return f"'{seq}' lacks {key}", True
    if kind == "t_valid_zero":
        e["valid"] = np.zeros_like(e["valid"])
        return f"'{seq}' valid all 0", True
    if kind == "t_valid_shape":
        e["valid"] = e["valid"][:-1]
        return f"'{seq}' valid one short", True
    if kind == "t_valid_nan":
        v = np.array(e["valid"], dtype=np.float64)
        v[0] = np.nan
        e["valid"] = v
        return f"'{seq}' valid holds NaN", True
    if kind == "t_valid_text":
        e["valid"] = "all"
        return f"'{seq}' valid is a string", True
    if kind == "t_valid_column":
        e["valid"] = np.asarray(e["valid"]).reshape(-1, 1)
        return f"'{seq}' valid as (N, 1)", False
    if kind == "t_valid_bool":
        e["valid"] = np.asarray(e["valid"]) != 0
        return f"'{seq}' valid as bool", False
    if kind == "t_valid_2d_matrix":
        e["valid"] = np.stack([e["valid"], e["valid"]], axis=1)
        return f"'{seq}' valid (N, 2)", True
    if kind == "t_nan_invalid_frames":
        v = np.array(e["valid"], dtype=np.float64)
        v[0] = 0
        if v.sum() == 0:
            v[-1] = 1
        e["valid"] = v
        for key in ("data_2d", "data_3d"):
            a = np.array(e[key], dtype=np.float32)
            a[v == 0] = np.nan
            e[key] = a
        return f"'{seq}' NaN in its invalid frames only", False
    if kind == "t_swap_2d_3d":
        e["data_2d"], e["data_3d"] = e["data_3d"], e["data_2d"]
        return f"'{seq}' data_2d and data_3d swapped", True
    if kind == "t_drop_seq":
        if len(data) > 1:
            del data[seq]
        return f"'{seq}' dropped", False
    if kind == "t_extra_key":
        e["fps"] = 25
        return f"'{seq}' has an extra key", False
    raise AssertionError(kind)


def _hp_train(kind: str, rng, d) -> tuple[str, bool]:
    from harness.skeleton import MPI3DHP_ROOT

    data = d["data"]
    seq = _pick(rng, sorted(data))
    value = data[seq]
    cams = value[0]
    cam = _pick(rng, sorted(cams))
    e = cams[cam]
    if kind.startswith(("r_array2d:", "r_array3d:")):
        key, k = ("data_2d" if kind.startswith("r_array2d:") else "data_3d"), kind.split(":", 1)[1]
        e[key], must = mutate_array(k, e[key], rng, MPI3DHP_ROOT, "hp2d" if key == "data_2d" else "hp3d")
        return f"train '{seq}' camera {cam!r} {key}: {k}", must
    if kind == "r_drop_data":
        del d["data"]
        return "train: no 'data' entry", True
    if kind == "r_data_empty":
        d["data"] = {}
        return "train: 'data' is empty", True
    if kind == "r_seq_unknown":
        _rename_key(data, seq, "S9 Seq1")
        return f"train sequence {seq!r} renamed 'S9 Seq1'", True
    if kind == "r_seq_int_key":
        _rename_key(data, seq, 11)
        return f"train sequence key {seq!r} -> int", True
    if kind == "r_value_dict":
        data[seq] = cams
        return f"train '{seq}' is the camera dict itself", True
    if kind == "r_value_text":
        data[seq] = "S1 Seq1"
        return f"train '{seq}' is a string", True
    if kind == "r_value_empty_list":
        data[seq] = []
        return f"train '{seq}' is an empty list", True
    if kind == "r_no_fps":
        data[seq] = [cams]
        return f"train '{seq}' without its fps", False
    if kind == "r_cams_empty":
        data[seq] = [{}, value[1]]
        return f"train '{seq}' has no cameras", True
    if kind == "r_cam_int_key":
        _rename_key(cams, cam, int(cam))
        return f"train '{seq}' camera key {cam!r} -> int", False
    if kind == "r_cam_bool_key":
        _rename_key(cams, cam, True)
        return f"train '{seq}' camera key {cam!r} -> True", True
    if kind == "r_cam_negative":
        _rename_key(cams, cam, -3)
        return f"train '{seq}' camera key {cam!r} -> -3", True
    if kind == "r_cam_text":
        _rename_key(cams, cam, "left")
        return f"train '{seq}' camera key {cam!r} -> 'left'", True
    if kind == "r_cam_duplicate":
        cams[int(cam)] = copy.deepcopy(e)
        return f"train '{seq}' camera {cam} twice ('{cam}' and {int(cam)})", True
    if kind == "r_cam_entry_list":
        cams[cam] = [e["data_2d"], e["data_3d"]]
        return f"train '{seq}' camera {cam!r} is a list", True
    if kind == "r_drop_data_3d":
        del e["data_3d"]
        return f"train '{seq}' camera {cam!r} lacks data_3d", True
    if kind == "r_value_array":
        arr = np.empty(2, dtype=object)
        arr[0], arr[1] = cams, value[1]
        data[seq] = arr
        return f"train '{seq}' as a 1-d object array", False
    raise AssertionError(kind)


T_KINDS = ["t_array2d:*"] * 22 + ["t_array3d:*"] * 22 + [
    "t_drop_data", "t_data_list", "t_data_text", "t_data_empty", "t_seq_int_key", "t_seq_unknown",
    "t_seq_bytes_key", "t_entry_list", "t_entry_array", "t_drop_data_2d", "t_drop_data_3d", "t_drop_valid",
    "t_valid_zero", "t_valid_shape", "t_valid_nan", "t_valid_text", "t_valid_column", "t_valid_bool",
    "t_valid_2d_matrix", "t_nan_invalid_frames", "t_swap_2d_3d", "t_drop_seq", "t_extra_key"]
R_KINDS = ["r_array2d:*"] * 16 + ["r_array3d:*"] * 16 + [
    "r_drop_data", "r_data_empty", "r_seq_unknown", "r_seq_int_key", "r_value_dict", "r_value_text",
    "r_value_empty_list", "r_no_fps", "r_cams_empty", "r_cam_int_key", "r_cam_bool_key", "r_cam_negative",
    "r_cam_text", "r_cam_duplicate", "r_cam_entry_list", "r_drop_data_3d", "r_value_array"]
HP_STRUCT = _cases("3dhp_struct", T_KINDS + R_KINDS, ARRAYS)
HP_BYTES = _cases("3dhp_bytes", [f"{f}:{k}" for f in ("test", "train") for k in BYTE_KINDS])


def _check_3dhp(case: Case, root: Path, must_fail: bool) -> str:
    from harness.data.mpi3dhp import load_3dhp, scan_3dhp

    ok, value = attempt(lambda: load_3dhp(root))
    if ok:
        if must_fail:
            raise WrongOutcome("load_3dhp returned the data as fine: wrong numbers reported as fine")
        check_posesets(value, "load_3dhp")
    sok, rep = attempt(lambda: scan_3dhp(root))
    if sok:
        probs = rep["problems"]
        if not all(isinstance(p, str) and "\n" not in p for p in probs):
            raise WrongOutcome(f"scan_3dhp problems are not one-line strings: {probs!r}"[:600])
        if not probs and (must_fail or not ok):
            raise WrongOutcome(f"scan_3dhp (data check) found no problem, load_3dhp: {'ok' if ok else value}")
    if case.cli:
        code, _ = cli(["data", "check", "--benchmark", "3dhp", "--data-root", root], report_exit=1)
        if code == 0 and (must_fail or not ok):
            raise WrongOutcome("`harness data check --benchmark 3dhp` says no problems")
    return "ok" if ok else "error"


@pytest.mark.parametrize("case", _params(HP_STRUCT))
def test_3dhp_struct(case: Case, hp_base, scratch):
    def body(described):
        with _case_dir(scratch, case) as d:
            root = d / "3dhp"
            shutil.copytree(hp_base, root)
            rng = case.rng()
            fname, fn = (HP_TEST, _hp_test) if case.kind.startswith("t_") else (HP_TRAIN, _hp_train)
            desc, must = edit_npz(root / fname, lambda dd: fn(case.kind, rng, dd))
            described(desc)
            return _check_3dhp(case, root, must)

    run_case(case, body)


@pytest.mark.parametrize("case", _params(HP_BYTES))
def test_3dhp_bytes(case: Case, hp_base, scratch):
    def body(described):
        with _case_dir(scratch, case) as d:
            root = d / "3dhp"
            shutil.copytree(hp_base, root)
            rng = case.rng()
            which, kind = case.kind.split(":")
            path = root / (HP_TEST if which == "test" else HP_TRAIN)
            stored = ""
            if rng.random() < 0.5:
                from harness.safeio import load_npz

                write_npz(path, load_npz(path), compressed=False)
                stored = " (stored uncompressed)"
            described(mutate_bytes(path, kind, rng) + stored)
            return _check_3dhp(case, root, kind in BYTES_MUST_FAIL)

    run_case(case, body)


# ============================================================================ fixtures: one tiny run
TINY = dict(train_stride=2, test_stride=4, lifter_hid_dim=16, lifter_layers=1, lifter_heads=2, lifter_epochs=1,
            hid_dim=16, num_layers=1, n_head=2, epochs=1, batch_size=128, lifter_batch_size=128, device="cpu",
            gmm_max_components=2, gmm_max_samples=500, variant="full", noise="gaussian")


@pytest.fixture(scope="module")
def torch_ops():
    """The run and every re-evaluation on torch's own ops: building the C++ kernels into a fresh cache
    would cost more than the whole file (the kernels have their own tests)."""
    from harness.models.fast import ops

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest, and immune to a busy machine
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ops, "NATIVE", False)
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(harness_cache, torch_ops, h36m_base, scratch) -> dict:
    """One finished tiny run on the H36M sliver, its baseline, and what the mutations need."""
    from harness.config import resolve_config
    from harness.pipeline import run
    from harness.report.check import metric_keys, write_baseline
    from harness.report.results import collect

    results = scratch / "results-base"
    cfg = resolve_config("smoke", dict(TINY, data_root=str(h36m_base)))
    run_dir = run(cfg, results)
    baseline = scratch / "baseline.json"
    write_baseline(baseline, metric_keys(collect(results)), "smoke", None)
    code, text = cli(["check", results, "--baseline", baseline])
    assert code == 0, text
    _finite_metrics(json.loads((run_dir / "metrics.json").read_text())["metrics"], "the pristine run")
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)  # once: slow
    return {"results": results, "run": run_dir.name, "baseline": baseline, "cfg": cfg.to_dict(), "state": state}


@contextlib.contextmanager
def _results_copy(scratch: Path, case: Case, trained: dict, only: tuple[str, ...] = ()):
    """A copy of the results folder (``only``: just these files of the run folder)."""
    with _case_dir(scratch, case) as d:
        res = d / "results"
        if only:
            (res / trained["run"]).mkdir(parents=True)
            for name in only:
                shutil.copy(trained["results"] / trained["run"] / name, res / trained["run"] / name)
        else:
            shutil.copytree(trained["results"], res)
        yield res, res / trained["run"]


def _check_eval(case: Case, run_dir: Path, must_fail: bool) -> str:
    """``evaluate_run`` (and, for a sample, ``harness eval``): a success has finite metrics."""
    from harness.pipeline import evaluate_run

    res = run_dir.parent
    before = {p for p in res.rglob("*") if p.is_file()}
    ok, value = attempt(lambda: evaluate_run(run_dir, device="cpu"))
    if ok:
        if must_fail:
            raise WrongOutcome("evaluate_run succeeded: wrong numbers reported as fine")
        _finite_metrics(value["metrics"], "evaluate_run")
    # eval writes into the run folder, and a lifter it (re)trains into a folder of its own under shared/
    stray = sorted(str(p.relative_to(res)) for p in res.rglob("*") if p.is_file() and p not in before
                   and not (run_dir in p.parents or (p.parent.parent == res / "shared" and
                                                     p.parent.name.startswith("lifter-"))))
    if stray:
        raise WrongOutcome(f"evaluate_run {'succeeded' if ok else 'failed'} and wrote outside the run folder "
                           f"and shared/lifter-*/: {', '.join(stray[:5])}")
    if case.cli:
        code, _ = cli(["eval", run_dir, "--device", "cpu"], progress=True)
        if (code == 0) != ok:
            raise WrongOutcome(f"`harness eval` exit {code}, evaluate_run {'ok' if ok else value}")
    return "ok" if ok else "error"


def _finite_metrics(m: Any, what: str, path: str = "metrics") -> None:
    if isinstance(m, dict):
        for k, v in m.items():
            _finite_metrics(v, what, f"{path}.{k}")
    elif isinstance(m, float) and not math.isfinite(m):
        raise WrongOutcome(f"{what}: {path} = {m} reported as fine")


# ----------------------------------------------------------------------------------- config.json
def _json_text_mutation(kind: str, rng, text: str, path: Path) -> str | None:
    """Mutations of a JSON file as text / bytes, shared by the run's JSON files; None: not one of them."""
    if kind == "invalid_json":
        cut = int(rng.integers(1, len(text) - 1))
        path.write_text(text[:cut])
        return f"{path.name} truncated to {cut} characters"
    if kind == "non_utf8":
        raw = bytearray(text.encode())
        o = int(rng.integers(0, len(raw)))
        raw[o:o] = b"\xff\xfe"
        path.write_bytes(bytes(raw))
        return f"{path.name}: bytes ff fe inserted at {o}"
    if kind == "a_list":
        path.write_text(json.dumps([json.loads(text)]))
        return f"{path.name} a list holding the object"
    if kind == "empty_file":
        path.write_text("")
        return f"{path.name} empty"
    if kind == "json_null":
        path.write_text("null")
        return f"{path.name} is null"
    if kind == "json_number":
        path.write_text("3.5")
        return f"{path.name} is a number"
    if kind == "deep_nesting":
        path.write_text("[" * 100_000 + "]" * 100_000)
        return f"{path.name}: lists nested 100,000 deep"
    if kind == "bom":
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
        return f"{path.name} with a UTF-8 byte-order mark"
    if kind == "long_int":
        path.write_text('{"x": ' + "7" * 5000 + "}")
        return f"{path.name}: an integer of 5000 digits"
    if kind == "delete":
        path.unlink()
        return f"{path.name} deleted"
    if kind == "a_directory":
        path.unlink()
        path.mkdir()
        return f"{path.name} is a directory"
    return None


JSON_TEXT_KINDS = ["invalid_json", "non_utf8", "a_list", "empty_file", "json_null", "json_number", "deep_nesting",
                   "bom", "long_int", "delete", "a_directory"]
CONFIG_KINDS = JSON_TEXT_KINDS + [
    "drop_key", "type_text", "type_list", "type_null", "type_bool", "type_float_for_int", "huge_int", "negative",
    "nan", "unknown_key", "unknown_variant", "unknown_noise", "epochs_more", "hid_dim_changed", "data_root_missing",
    "test_stride_changed", "precision_bad", "seed_text", "variant_int", "device_bogus"]
RUN_CONFIG = _cases("run_config", CONFIG_KINDS)


def _config_mutation(kind: str, rng, cfg: dict, path: Path) -> tuple[str, str | None]:
    """(description, where it must be refused: "read" by read_run_config, "eval" by evaluate_run (the config
    is valid but does not fit the run), None: either outcome). Values of the wrong type that the config
    reader converts on purpose (it takes the CLI's strings: "0" -> 0, true -> 1) need only not crash."""
    text = path.read_text()
    desc = _json_text_mutation(kind, rng, text, path)
    if desc is not None:
        return desc, None if kind == "bom" else "read"
    ints = [k for k, v in cfg.items() if isinstance(v, int) and not isinstance(v, bool)]
    key = _pick(rng, sorted(cfg))
    ikey = _pick(rng, ints)
    must = "read"
    if kind == "drop_key":
        del cfg[key]
        desc, must = f"config key {key!r} dropped", None
    elif kind == "type_text":
        cfg[ikey] = "abc"
        desc = f"config {ikey} = 'abc'"
    elif kind == "type_list":
        cfg[key] = [cfg[key]]
        desc, must = f"config {key} wrapped in a list", None
    elif kind == "type_null":
        key = _pick(rng, sorted(k for k, v in cfg.items() if v is not None and k not in ("initial_3d", "train_on",
                                                                                         "train_keypoints")))
        cfg[key] = None
        desc, must = f"config {key} = null", None if key == "data_root" else "read"
    elif kind == "type_bool":
        cfg[ikey] = True
        desc, must = f"config {ikey} = true", None
    elif kind == "type_float_for_int":
        cfg[ikey] = cfg[ikey] + 0.5
        desc = f"config {ikey} = {cfg[ikey]}"
    elif kind == "huge_int":
        cfg[ikey] = 10**400
        desc, must = f"config {ikey} = 10**400", None
    elif kind == "negative":
        k = _pick(rng, ["epochs", "hid_dim", "num_layers", "batch_size", "test_stride", "lr", "hypotheses"])
        cfg[k] = -abs(cfg[k]) - 1
        desc = f"config {k} = {cfg[k]}"
    elif kind == "nan":
        k = _pick(rng, ["lr", "beta_start", "ema_rate", "dropout", "grad_clip"])
        cfg[k] = float("nan")
        desc = f"config {k} = NaN"
    elif kind == "unknown_key":
        cfg["colour"] = "blue"
        desc, must = "config has an unknown key 'colour'", None
    elif kind == "unknown_variant":
        cfg["variant"] = "fullest"
        desc = "config variant 'fullest'"
    elif kind == "unknown_noise":
        cfg["noise"] = "laplace"
        desc = "config noise 'laplace'"
    elif kind == "epochs_more":
        cfg["epochs"] = cfg["epochs"] + 2
        desc, must = f"config epochs = {cfg['epochs']} (the checkpoint has fewer)", "eval"
    elif kind == "hid_dim_changed":
        cfg["hid_dim"] = cfg["hid_dim"] * 2
        desc, must = f"config hid_dim = {cfg['hid_dim']} (the checkpoint's is half)", "eval"
    elif kind == "data_root_missing":
        cfg["data_root"] = str(path.parent / "no-such-data")
        desc, must = "config data_root a folder that does not exist", "eval"
    elif kind == "test_stride_changed":
        cfg["test_stride"] = cfg["test_stride"] * 2
        desc, must = f"config test_stride = {cfg['test_stride']}", None
    elif kind == "precision_bad":
        cfg["precision"] = "fp64"
        desc = "config precision 'fp64'"
    elif kind == "seed_text":
        cfg["seed"] = "0"
        desc, must = "config seed '0'", None
    elif kind == "variant_int":
        cfg["variant"] = 3
        desc = "config variant = 3"
    elif kind == "device_bogus":
        cfg["device"] = "tpu"
        desc, must = "config device 'tpu'", "eval"
    else:
        raise AssertionError(kind)
    path.write_text(json.dumps(cfg))
    return desc, must


@pytest.mark.parametrize("case", _params(RUN_CONFIG))
def test_run_config(case: Case, trained, scratch):
    from harness.runs import read_run_config

    def body(described):
        with _results_copy(scratch, case, trained) as (res, run_dir):
            rng = case.rng()
            path = run_dir / "config.json"
            desc, must = _config_mutation(case.kind, rng, json.loads(path.read_text()), path)
            described(desc)
            ok, value = attempt(lambda: read_run_config(run_dir))
            if ok and must == "read":
                raise WrongOutcome("read_run_config accepted it")
            if ok:
                return _check_eval(case, run_dir, must == "eval")
            if case.cli:
                cli(["eval", run_dir, "--device", "cpu"])
            return "error"

    run_case(case, body)


# ---------------------------------------------------------------------------------- metrics.json
METRIC_VALUE_KINDS = {  # kind -> (fn(value) -> new value, the gate must fail)
    "m_nan": (lambda v: float("nan"), True), "m_inf": (lambda v: float("inf"), True),
    "m_neg_inf": (lambda v: float("-inf"), True), "m_negative": (lambda v: -abs(v) - 1, True),
    "m_x1000": (lambda v: v * 1000, True), "m_worse": (lambda v: v * 1.5 + 5, True),
    "m_text": (lambda v: "fast", True), "m_null": (lambda v: None, True), "m_bool": (lambda v: True, True),
    "m_list": (lambda v: [v], True), "m_big_int": (lambda v: 10**30, True), "m_better": (lambda v: v * 0.9, False),
}
METRICS_KINDS = JSON_TEXT_KINDS + list(METRIC_VALUE_KINDS) + [
    "m_inf_p1", "m_nonavg_nan", "m_drop_avg", "m_drop_group", "m_drop_model", "m_drop_metrics", "m_metrics_empty",
    "m_metrics_list", "m_drop_p2", "m_seed_changed", "m_variant_changed", "m_benchmark_bogus", "m_seed_text",
    "m_config_drop_noise", "m_huge_number", "m_drop_date", "m_drop_git", "m_drop_machine", "m_extra_key",
    "m_extra_model", "m_wall_text", "m_run_int", "m_config_list"]
RUN_METRICS = _cases("run_metrics", METRICS_KINDS)
TABLES_KINDS = {"m_inf", "m_inf_p1", "m_text"}  # these (once each) also through `harness tables` (slow; tested elsewhere)


def _metrics_mutation(kind: str, rng, m: dict, path: Path) -> tuple[str, bool]:
    text = path.read_text()
    desc = _json_text_mutation(kind, rng, text, path)
    if desc is not None:
        return desc, True  # the gate refuses them all (a BOM too: the reader takes plain UTF-8 JSON)
    model = _pick(rng, sorted(m["metrics"]))
    proto = _pick(rng, ["p1", "p2"])
    groups = m["metrics"][model][proto]
    must = True
    if kind in METRIC_VALUE_KINDS:
        fn, must = METRIC_VALUE_KINDS[kind]
        groups["Avg"] = fn(groups["Avg"])
        desc = f"metrics.{model}.{proto}.Avg = {groups['Avg']!r}"
    elif kind == "m_inf_p1":
        groups = m["metrics"][model]["p1"]
        groups["Avg"] = float("inf")
        desc = f"metrics.{model}.p1.Avg = inf"
    elif kind == "m_nonavg_nan":
        g = _pick(rng, [k for k in groups if k != "Avg"])
        groups[g] = float("nan")
        desc = f"metrics.{model}.{proto}.{g} = NaN (Avg kept)"
    elif kind == "m_drop_avg":
        del groups["Avg"]
        desc = f"metrics.{model}.{proto}.Avg dropped"
    elif kind == "m_drop_group":
        g = _pick(rng, [k for k in groups if k != "Avg"])
        del groups[g]
        desc, must = f"metrics.{model}.{proto}.{g} dropped (not in the baseline: Avg only)", False
    elif kind == "m_drop_model":
        del m["metrics"][model]
        desc = f"metrics.{model} dropped"
    elif kind == "m_drop_metrics":
        del m["metrics"]
        desc = "no 'metrics'"
    elif kind == "m_metrics_empty":
        m["metrics"] = {}
        desc = "'metrics' empty"
    elif kind == "m_metrics_list":
        m["metrics"] = list(m["metrics"].values())
        desc = "'metrics' a list"
    elif kind == "m_drop_p2":
        del m["metrics"][model]["p2"]
        desc = f"metrics.{model}.p2 dropped"
    elif kind == "m_seed_changed":
        m["config"]["seed"] = 7
        desc = "config.seed 7 (a run the baseline lacks)"
    elif kind == "m_variant_changed":
        m["config"]["variant"] = "baseline"
        desc = "config.variant 'baseline'"
    elif kind == "m_benchmark_bogus":
        m["config"]["benchmark"] = "coco"
        desc = "config.benchmark 'coco'"
    elif kind == "m_seed_text":
        m["config"]["seed"] = "0"
        desc = "config.seed '0'"
    elif kind == "m_config_drop_noise":
        del m["config"]["noise"]
        desc = "config.noise dropped"
    elif kind == "m_huge_number":
        old = f'"Avg": {json.dumps(groups["Avg"])}'
        assert old in text, old
        path.write_text(text.replace(old, '"Avg": 1e400', 1))
        return "metrics.*.Avg written as 1e400 (parses as inf)", True
    elif kind == "m_drop_date":
        m.pop("date", None)
        desc, must = "no 'date'", False
    elif kind == "m_drop_git":
        m.pop("git_commit", None)
        desc, must = "no 'git_commit'", False
    elif kind == "m_drop_machine":
        m.pop("machine", None)
        desc, must = "no 'machine'", False
    elif kind == "m_extra_key":
        m["notes"] = {"a": [1, 2, {"b": None}]}
        desc, must = "an extra key 'notes'", False
    elif kind == "m_extra_model":
        m["metrics"]["hyp5_best"] = copy.deepcopy(m["metrics"][model])
        desc, must = "an extra model hyp5_best (not in the baseline: a note)", False
    elif kind == "m_wall_text":
        m["wall_time_s"] = "12 s"
        desc = "wall_time_s '12 s'"
    elif kind == "m_run_int":
        m["run"] = 12
        desc = "'run' = 12"
    elif kind == "m_config_list":
        m["config"] = list(m["config"].items())
        desc = "'config' a list of pairs"
    else:
        raise AssertionError(kind)
    path.write_text(json.dumps(m))
    return desc, must


@pytest.mark.parametrize("case", _params(RUN_METRICS))
def test_run_metrics(case: Case, trained, scratch):
    from harness.report.results import collect

    def body(described):
        with _results_copy(scratch, case, trained, only=("metrics.json", "config.json")) as (res, run_dir):
            rng = case.rng()
            path = run_dir / "metrics.json"
            desc, must = _metrics_mutation(case.kind, rng, json.loads(path.read_text()), path)
            described(desc)
            ok, value = attempt(lambda: collect(res))
            code, text = cli(["check", res, "--baseline", trained["baseline"]], report_exit=1)
            if code == 0 and must:
                raise WrongOutcome(f"`harness check` passed it: wrong numbers reported as fine: {text[-400:]!r}")
            if code == 0 and not ok:
                raise WrongOutcome(f"`harness check` passed a results set collect() refuses ({value})")
            if case.kind in TABLES_KINDS and case.index < len(METRICS_KINDS):  # each once: tables are slow
                cli(["tables", res, "--out", res.parent / "tables"])
            return "gate ok" if code == 0 else f"gate exit {code}"

    run_case(case, body)


# -------------------------------------------------------------------------- identity.json, noise.json
RUN_JSON = _cases("run_json", [f"identity:{k}" for k in ("invalid_json", "non_utf8", "a_list", "deep_nesting",
                                                          "drop_lifter", "lifter_dotdot", "lifter_empty",
                                                          "lifter_int", "lifter_missing", "numerics_text",
                                                          "delete")]
                  + [f"noise:{k}" for k in ("invalid_json", "a_list", "delete", "nan_std")])


@pytest.mark.parametrize("case", _params(RUN_JSON))
def test_run_json(case: Case, trained, scratch):
    def body(described):
        with _results_copy(scratch, case, trained) as (res, run_dir):
            rng = case.rng()
            which, kind = case.kind.split(":")
            path = run_dir / f"{which}.json"
            text = path.read_text()
            desc = _json_text_mutation(kind, rng, text, path)
            if desc is None:
                d = json.loads(text)
                if kind == "drop_lifter":
                    del d["lifter"]
                elif kind == "lifter_dotdot":
                    d["lifter"] = ".."
                elif kind == "lifter_empty":
                    d["lifter"] = ""
                elif kind == "lifter_int":
                    d["lifter"] = 5
                elif kind == "lifter_missing":
                    d["lifter"] = "lifter-h36m-seed0-000000000000"
                elif kind == "numerics_text":
                    d["numerics"] = "cpu"
                elif kind == "nan_std":
                    d["std"] = [float("nan")] * len(d["std"])
                path.write_text(json.dumps(d))
                desc = f"{path.name}: {kind}"
            described(desc)
            return _check_eval(case, run_dir, False)

    run_case(case, body)


# ---------------------------------------------------------------------------------- checkpoint.pt
# kind -> level: "load" (load_checkpoint must refuse it), "eval" (evaluation must refuse it), None (either)
CKPT_KINDS: dict[str, str | None] = {
    **{f"drop_{k}": "load" for k in ("model", "ema", "noise", "epoch", "optimizer", "scheduler", "rng", "format",
                                     "kind")},
    **{f"drop_{k}": None for k in ("numerics", "config", "ema_updates", "version")},
    "format_2": "load", "kind_lifter": "load", "epoch_negative": "load", "epoch_text": "load", "epoch_float": "load",
    "epoch_bool": "load", "weight_nan": "load", "weight_inf": "load", "weight_text": "load", "weight_list": "load",
    "weight_none": "load", "model_empty": "load", "model_int_key": "load", "ema_shape": "load",
    "ema_missing_key": "load", "ema_extra_key": "load", "ema_nan": "load", "noise_text": "load",
    "noise_unknown_name": "load", "noise_std_negative": "load", "noise_std_nan": "load", "noise_std_short": "load",
    "noise_drop_std": "load", "noise_std_text": "load", "rng_bad": "load", "optimizer_list": "load",
    "optimizer_nan": "load", "scheduler_list": "load", "config_list": "load", "state_list": "load",
    "state_tensor": "load", "config_hid_dim": "load",
    "both_shape": "eval", "both_drop_key": "eval", "both_extra_key": "eval",
    "weights_float64": None, "weights_scaled": None, "weight_int": None, "noise_std_scaled": None,
    "extra_entry": None, "weights_half": None,
}
CKPT_STRUCT = _cases("ckpt_struct", list(CKPT_KINDS))
CKPT_BYTES = _cases("ckpt_bytes", BYTE_KINDS)


def _ckpt_mutation(kind: str, rng, st: dict) -> tuple[Any, str]:
    if kind.startswith("drop_"):
        st.pop(kind[len("drop_"):], None)
        return st, f"no '{kind[len('drop_'):]}' entry"
    float_keys = [k for k, v in st["model"].items() if v.is_floating_point()]
    k = _pick(rng, float_keys)
    which = _pick(rng, ["model", "ema"])
    w = st[which][k]
    simple = {
        "format_2": ("format", 2), "kind_lifter": ("kind", "lifter"), "epoch_negative": ("epoch", -3),
        "epoch_text": ("epoch", "0"), "epoch_float": ("epoch", 0.0), "epoch_bool": ("epoch", False),
        "noise_text": ("noise", "gaussian"), "rng_bad": ("rng", {"generator": torch.zeros(3), "torch": 1}),
        "optimizer_list": ("optimizer", [1, 2]), "scheduler_list": ("scheduler", [1]),
        "config_list": ("config", [("hid_dim", 16)]), "extra_entry": ("notes", {"a": torch.zeros(2)}),
    }
    if kind in simple:
        key, value = simple[kind]
        st[key] = value
        return st, f"'{key}' = {value!r}"
    if kind == "state_list":
        return list(st.values()), "the state a list of its values"
    if kind == "state_tensor":
        return torch.zeros(4), "the state a tensor"
    if kind in ("weight_nan", "weight_inf", "ema_nan"):
        which = "ema" if kind == "ema_nan" else which
        t = st[which][k].clone()
        t.view(-1)[int(rng.integers(t.numel()))] = float("nan") if kind != "weight_inf" else float("inf")
        st[which][k] = t
        return st, f"{which} '{k}' holds {'inf' if kind == 'weight_inf' else 'NaN'}"
    if kind == "weight_text":
        st[which][k] = "weights"
        return st, f"{which} '{k}' a string"
    if kind == "weight_list":
        st[which][k] = w.tolist()
        return st, f"{which} '{k}' a nested list"
    if kind == "weight_none":
        st[which][k] = None
        return st, f"{which} '{k}' None"
    if kind == "model_empty":
        st[which] = {}
        return st, f"'{which}' empty"
    if kind == "model_int_key":
        st[which][3] = st[which].pop(k)
        return st, f"{which} key '{k}' -> 3"
    if kind == "ema_shape":
        st["ema"][k] = torch.zeros(*w.shape, 2)
        return st, f"ema '{k}' of another shape than the model's"
    if kind == "ema_missing_key":
        del st["ema"][k]
        return st, f"ema lacks '{k}'"
    if kind == "ema_extra_key":
        st["ema"]["extra.weight"] = torch.zeros(2)
        return st, "ema has an extra key"
    if kind.startswith("noise_"):
        n = st["noise"]
        if kind == "noise_unknown_name":
            n["name"] = "laplace"
        elif kind == "noise_std_negative":
            n["std"] = [-abs(v) for v in n["std"]]
        elif kind == "noise_std_nan":
            n["std"] = [float("nan")] * len(n["std"])
        elif kind == "noise_std_short":
            n["std"] = n["std"][:2]
        elif kind == "noise_drop_std":
            del n["std"]
        elif kind == "noise_std_text":
            n["std"] = "0.1"
        elif kind == "noise_std_scaled":
            n["std"] = [v * 10 for v in n["std"]]
        return st, f"noise entry: {kind[len('noise_'):]} ({n!r})"[:200]
    if kind == "optimizer_nan":
        opt_state = st["optimizer"]["state"]
        pid = _pick(rng, sorted(opt_state))
        name = _pick(rng, sorted(n for n, v in opt_state[pid].items() if torch.is_tensor(v) and v.is_floating_point()))
        t = opt_state[pid][name].clone()
        t.view(-1)[0] = float("nan")
        opt_state[pid][name] = t
        return st, f"optimizer state {pid}.{name} holds NaN"
    if kind == "config_hid_dim":
        st["config"]["hid_dim"] = 64
        return st, "checkpoint config hid_dim 64 (the run's 16)"
    if kind == "both_shape":
        new = torch.zeros(*w.shape, 2)
        st["model"][k], st["ema"][k] = new, new.clone()
        return st, f"model and ema '{k}' both of another shape"
    if kind == "both_drop_key":
        del st["model"][k], st["ema"][k]
        return st, f"model and ema both lack '{k}'"
    if kind == "both_extra_key":
        st["model"]["extra.weight"] = torch.zeros(2)
        st["ema"]["extra.weight"] = torch.zeros(2)
        return st, "model and ema both have an extra key"
    if kind == "weights_float64":
        st[which] = {n: v.double() if v.is_floating_point() else v for n, v in st[which].items()}
        return st, f"{which} weights float64"
    if kind == "weights_half":
        st[which] = {n: v.half() if v.is_floating_point() else v for n, v in st[which].items()}
        return st, f"{which} weights float16"
    if kind == "weights_scaled":
        for which in ("model", "ema"):
            st[which] = {n: v * 1000 if v.is_floating_point() else v for n, v in st[which].items()}
        return st, "model and ema weights x1000 (finite)"
    if kind == "weight_int":
        st[which][k] = torch.ones(w.shape, dtype=torch.int64)
        return st, f"{which} '{k}' an int64 tensor of its shape"
    raise AssertionError(kind)


def _check_ckpt(case: Case, run_dir: Path, cfg: dict, level: str | None, evaluate: bool) -> str:
    from harness.train.checkpoint import load_checkpoint

    path = run_dir / "checkpoint.pt"
    ok, value = attempt(lambda: load_checkpoint(path, "denoiser", cfg))
    if ok and level == "load":
        raise WrongOutcome("load_checkpoint accepted it")
    if ok and (evaluate or level == "eval" or case.cli):
        return _check_eval(case, run_dir, level is not None)
    return "ok" if ok else "error"


@pytest.mark.parametrize("case", _params(CKPT_STRUCT))
def test_ckpt_struct(case: Case, trained, scratch):
    def body(described):
        with _results_copy(scratch, case, trained) as (res, run_dir):
            rng = case.rng()
            path = run_dir / "checkpoint.pt"
            new, desc = _ckpt_mutation(case.kind, rng, copy.deepcopy(trained["state"]))
            torch.save(new, path)
            described(f"checkpoint.pt: {desc}")
            level = CKPT_KINDS[case.kind]
            return _check_ckpt(case, run_dir, trained["cfg"], level, evaluate=level is None)

    run_case(case, body)


@pytest.mark.parametrize("case", _params(CKPT_BYTES))
def test_ckpt_bytes(case: Case, trained, scratch):
    def body(described):
        with _results_copy(scratch, case, trained) as (res, run_dir):
            rng = case.rng()
            described(mutate_bytes(run_dir / "checkpoint.pt", case.kind, rng))
            return _check_ckpt(case, run_dir, trained["cfg"], "load" if case.kind in BYTES_MUST_FAIL else None,
                               evaluate=True)

    run_case(case, body)


# ------------------------------------------------------------------------------- the shared lifter
LIFTER_FILES = _cases("lifter_files", ["pred:flip", "pred:truncate", "pred:random_bytes", "pred:nan",
                                       "pred:shape", "pred:text", "ckpt:truncate", "ckpt:flip", "ckpt:drop_model",
                                       "ckpt:nan"])


@pytest.mark.parametrize("case", _params(LIFTER_FILES))
def test_lifter_files(case: Case, trained, scratch):
    def body(described):
        with _results_copy(scratch, case, trained) as (res, run_dir):
            rng = case.rng()
            which, kind = case.kind.split(":")
            lifter = next((res / "shared").iterdir())
            must = False
            if which == "pred":
                path = lifter / "predictions.npz"
                if kind in BYTE_KINDS:
                    desc = mutate_bytes(path, kind, rng)
                else:
                    with np.load(path) as z:
                        preds = {k: z[k] for k in z.files}
                    if kind == "nan":
                        preds["test"] = preds["test"].copy()
                        preds["test"][0, 3, 1] = np.nan  # not trusted: recomputed from the checkpoint (below)
                    elif kind == "shape":
                        preds["test"] = preds["test"][:, :16]
                    elif kind == "text":
                        preds["test"] = np.array(["x"] * len(preds["test"]))
                    np.savez(path, **preds)
                    desc = f"{path.name}: test predictions {kind}"
            else:
                (lifter / "predictions.npz").unlink()  # the lifter is then resumed from its checkpoint
                path = lifter / "checkpoint.pt"
                if kind in BYTE_KINDS:
                    desc = mutate_bytes(path, kind, rng)
                else:
                    st = torch.load(path, map_location="cpu", weights_only=True)
                    if kind == "drop_model":
                        del st["model"]
                    else:
                        k = _pick(rng, sorted(st["model"]))
                        st["model"][k] = st["model"][k].clone().fill_(float("nan"))
                    torch.save(st, path)
                    desc = f"{path.name}: {kind}"
                desc += " (predictions.npz removed)"
            described(f"shared lifter {desc}")
            outcome = _check_eval(case, run_dir, must)
            if which == "pred" and outcome == "ok":  # a success used recomputed, finite predictions
                with np.load(lifter / "predictions.npz") as z:
                    if not np.isfinite(z["test"]).all():
                        raise WrongOutcome("evaluate_run succeeded on non-finite lifter predictions")
            return outcome

    run_case(case, body)


# ------------------------------------------------------------------------------------------ summary
def test_fuzz_summary():
    """Hundreds of mutations, every kind of each target at least once, every array mutation in the H36M
    and the 3DHP files; the counts and outcomes are printed (``-s``)."""
    targets = {"h36m_struct": (H36M_STRUCT, S3_KINDS + S2_KINDS + CAM_KINDS),
               "h36m_bytes": (H36M_BYTES, None), "3dhp_struct": (HP_STRUCT, T_KINDS + R_KINDS),
               "3dhp_bytes": (HP_BYTES, None), "run_config": (RUN_CONFIG, CONFIG_KINDS),
               "run_metrics": (RUN_METRICS, METRICS_KINDS), "run_json": (RUN_JSON, None),
               "ckpt_struct": (CKPT_STRUCT, list(CKPT_KINDS)), "ckpt_bytes": (CKPT_BYTES, BYTE_KINDS),
               "lifter_files": (LIFTER_FILES, None)}
    assert {t: len(c) for t, (c, _) in targets.items()} == COUNTS
    total = sum(COUNTS.values())
    assert total >= 400
    for t, (cases, kinds) in targets.items():
        used = {c.kind for c in cases}
        assert not {k for k in kinds or () if not k.endswith(":*")} - used, t
    for cases in (H36M_STRUCT, HP_STRUCT):
        assert {c.kind.split(":", 1)[1] for c in cases if ":" in c.kind} == set(ARRAY_MUTATIONS)
    lines = [f"fuzz (seed {SEED}): {total} mutations"]
    for t in COUNTS:
        outcomes = {o: n for (tt, o), n in sorted(_OUTCOMES.items()) if tt == t}
        lines.append(f"  {t:13s} {COUNTS[t]:4d}  {outcomes}")
    print("\n" + "\n".join(lines))
