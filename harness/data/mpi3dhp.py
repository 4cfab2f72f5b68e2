"""MPI-INF-3DHP in the layout P-STMO's converters write (and MixSTE, D3DP and others read).

Files in ``data_root``:

- ``data_test_3dhp.npz`` (required), P-STMO ``data_to_npz_3dhp_test.py``: key ``data``, a pickled
  dict ``{"TS1": {"data_2d": (N, 17, 2) px, "data_3d": (N, 17, 3) mm, "valid": (N,)}, ...}``.
  TS1-TS4 (studio) are 2048x2048, TS5-TS6 (outdoor) 1920x1080. Any subset of TS1..TS6 is accepted.
- ``data_train_3dhp.npz`` (optional), P-STMO ``data_to_npz_3dhp.py``: key ``data``,
  ``{"S1 Seq1": [{camera: {"data_2d": (N, 17, 2) px, "data_3d": (N, 17, 3) mm}}, fps], ...}``;
  cameras are keyed by their index (P-STMO writes ``str(cam)`` for cams 0, 1, 2, 4, 5, 6, 7, 8;
  ints are accepted too); all 2048x2048.

3D is ``univ_annot3`` (scaled to the H36M universal skeleton), camera frame, in 3DHP's 17-joint order
(:data:`harness.skeleton.MPI3DHP_JOINT_NAMES`; pelvis, the root, is joint 14).

What :func:`load_3dhp` makes of it (the :class:`~harness.data.base.PoseSet` conventions):

- 3D mm -> metres, root-relative to the pelvis (the root is exactly 0). P-STMO subtracts the pelvis
  from every joint but the pelvis itself; here the pelvis is zeroed too, as PoseSet requires.
- 2D normalised by image width with the sequence's resolution (``normalize_screen_coordinates``).
- ``joint_order="h36m"`` (default, what the models use) reorders the joints to H36M's 17 with
  :data:`~harness.skeleton.H36M_FROM_3DHP` (root = joint 0); ``"3dhp"`` keeps the native order
  (root = joint 14). ``meta["root_joint"]`` says which.
- Test: ``subject`` = ``sequence`` = "TS1".."TS6" (one actor per sequence), ``action`` = the scene
  (GS = TS1+TS2, noGS = TS3+TS4, Outdoor = TS5+TS6), ``camera`` = 0, ``valid`` from the file.
- Train: ``subject`` "S1", ``sequence`` "S1 Seq1", ``action`` "Seq1", ``camera`` the camera index,
  ``valid`` all True.
- Frames whose flag is invalid may hold NaN/Inf (the annotation is missing there): they are kept,
  with their 2D and 3D set to 0, and ``meta["notes"]`` says so. NaN/Inf in a valid frame is an error.

Sanity (:mod:`harness.data.sanity`, on the valid, finite frames of the raw arrays): the 3D must be in
millimetres (a file in metres is named as such), with no degenerate skeletons; the 2D in pixels of the
sequence's image (not already normalised; far outside: a warning, or an error for most frames); a
test sequence whose ``valid`` flags are all 0 leaves nothing to evaluate and is an error.

Every problem raises :class:`~harness.errors.DataError` with a one-line message naming the file and
sequence; :func:`scan_3dhp` collects all of them instead (``harness data check``); suspicions are
logged as warnings and kept in ``meta["warnings"]``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from harness.camera import normalize_screen_coordinates
from harness.data import sanity
from harness.data.base import PoseSet
from harness.errors import ConfigError, DataError
from harness.protocols import MPI3DHP_SCENES, MPI3DHP_TEST_SEQUENCES, SCENE_OF_SEQUENCE  # noqa: F401
from harness.safeio import load_npz
from harness.skeleton import H36M_FROM_3DHP, H36M_JOINT_NAMES, H36M_PARENTS, MPI3DHP_ROOT

log = logging.getLogger(__name__)

TEST_FILE = "data_test_3dhp.npz"
TRAIN_FILE = "data_train_3dhp.npz"
NUM_JOINTS = 17
JOINT_ORDERS = ("h36m", "3dhp")

# (width, height) in pixels.
MPI3DHP_TEST_RESOLUTION = {"TS1": (2048, 2048), "TS2": (2048, 2048), "TS3": (2048, 2048),
                           "TS4": (2048, 2048), "TS5": (1920, 1080), "TS6": (1920, 1080)}
MPI3DHP_TRAIN_RESOLUTION = (2048, 2048)

_TRAIN_NAME = re.compile(r"S([1-8]) Seq([12])")


# ------------------------------------------------------------------------------------ validation
def _as_float(value: Any, where: str, key: str, problems: list[str]) -> np.ndarray | None:
    try:
        if isinstance(value, np.ndarray) and np.iscomplexobj(value):
            # a cast to float would drop the imaginary part without a word
            problems.append(f"{where}: {key} holds complex numbers ({value.dtype}), expected real ones")
            return None
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        problems.append(f"{where}: {key} is not a numeric array")
        return None
    return arr


def _check_pose(arr: np.ndarray, where: str, key: str, dims: int, problems: list[str]) -> bool:
    if arr.ndim != 3 or arr.shape[2] != dims:
        problems.append(f"{where}: {key} has shape {tuple(arr.shape)}, expected (N, {NUM_JOINTS}, {dims})")
        return False
    if arr.shape[1] != NUM_JOINTS:
        problems.append(f"{where}: {key} has {arr.shape[1]} joints, expected {NUM_JOINTS}")
        return False
    return True


def _check_entry(entry: Any, where: str, with_valid: bool):
    """Validate one sequence (test) or one camera of a sequence (train).

    Returns ``(arrays, problems, notes)``; ``arrays`` is ``(data_2d, data_3d, valid, finite)`` (float64
    px, float64 mm, bool, bool per frame) or None when there is any problem.
    """
    problems: list[str] = []
    notes: list[str] = []
    keys = ("data_2d", "data_3d", "valid") if with_valid else ("data_2d", "data_3d")
    if not isinstance(entry, dict):
        problems.append(f"{where}: expected a dict with {', '.join(keys)}, got {type(entry).__name__}")
        return None, problems, notes
    missing = [k for k in keys if k not in entry]
    if missing:
        problems.append(f"{where}: missing {', '.join(missing)}")
        return None, problems, notes
    d2 = _as_float(entry["data_2d"], where, "data_2d", problems)
    d3 = _as_float(entry["data_3d"], where, "data_3d", problems)
    ok2 = d2 is not None and _check_pose(d2, where, "data_2d", 2, problems)
    ok3 = d3 is not None and _check_pose(d3, where, "data_3d", 3, problems)
    if not (ok2 and ok3):
        return None, problems, notes
    n = d3.shape[0]
    if d2.shape[0] != n:
        problems.append(f"{where}: data_2d has {d2.shape[0]} frames but data_3d has {n}")
        return None, problems, notes
    if n == 0:
        problems.append(f"{where}: no frames")
        return None, problems, notes
    if with_valid:
        v = _as_float(entry["valid"], where, "valid", problems)
        if v is None:
            return None, problems, notes
        if v.ndim == 2 and 1 in v.shape:
            v = v.reshape(-1)
        if v.ndim != 1 or v.shape[0] != n:
            problems.append(f"{where}: valid has shape {tuple(v.shape)}, expected ({n},) like the poses")
            return None, problems, notes
        if not np.isfinite(v).all():
            problems.append(f"{where}: valid holds NaN/Inf")
            return None, problems, notes
        valid = v != 0
    else:
        valid = np.ones(n, dtype=bool)
    finite = np.isfinite(d2).all(axis=(1, 2)) & np.isfinite(d3).all(axis=(1, 2))
    bad = np.flatnonzero(~finite & valid)
    if bad.size:
        problems.append(f"{where}: NaN/Inf in {bad.size} valid frame(s) (first: frame {int(bad[0])})")
        return None, problems, notes
    hidden = int(np.count_nonzero(~finite))
    if hidden:
        notes.append(f"{where}: {hidden} invalid frame(s) hold NaN/Inf; set to 0 (excluded from metrics)")
    return (d2, d3, valid, finite), problems, notes


class _Sanity:
    """The data-sanity findings of one file (:mod:`harness.data.sanity`): per-entry problems go to
    ``problems`` at once; the 3D-unit and 2D-pixel findings are grouped into one line per kind for
    the file by :meth:`finish`."""

    def __init__(self, path: Path):
        self.path = path
        self.units: list[tuple[str, str, str]] = []
        self.pixel_errors: list[tuple[str, str, str]] = []
        self.pixel_warnings: list[tuple[str, str, str]] = []
        self.entries = 0

    def check(self, arrays: tuple, where: str, loc: str, w: int, h: int, with_valid: bool,
              problems: list[str]) -> None:
        """``arrays`` as :func:`_check_entry` returns them (2D px, 3D mm, valid, finite). Only valid,
        finite frames are judged (the others are excluded from metrics)."""
        d2, d3, valid, finite = arrays
        self.entries += 1
        if with_valid:
            why = sanity.valid_problem(valid)
            if why is not None:
                problems.append(f"{where}: {why}")
                return
        use = valid & finite
        if not use.any():
            return
        x = d3[:, list(H36M_FROM_3DHP)]  # raw millimetres, H36M joint order
        why = sanity.degenerate_problem(x, H36M_PARENTS, H36M_JOINT_NAMES, frames=use,
                                        noun="valid frames" if with_valid else "frames")
        if why is not None:
            problems.append(f"{where}: {why}")
        else:
            unit = sanity.unit_problem(sanity.median_bone_length(x[use], H36M_PARENTS), "mm")
            if unit is not None:
                self.units.append((loc, *unit))
        for severity, what, detail in sanity.pixel_problems(d2[use], w, h):
            (self.pixel_errors if severity == "error" else self.pixel_warnings).append((loc, what, detail))

    def finish(self, problems: list[str], warnings: list[str], noun: str) -> None:
        problems += sanity.group_findings(self.path, self.units, self.entries, noun)
        problems += sanity.group_findings(self.path, self.pixel_errors, self.entries, noun)
        warnings += sanity.group_findings(self.path, self.pixel_warnings, self.entries, noun)


def _convert(d2: np.ndarray, d3: np.ndarray, finite: np.ndarray, w: int, h: int,
             joint_order: str) -> tuple[np.ndarray, np.ndarray]:
    """px -> normalised 2D, mm -> root-relative metres, non-finite frames -> 0, joint reorder."""
    with np.errstate(invalid="ignore"):
        p3 = (d3 - d3[:, MPI3DHP_ROOT:MPI3DHP_ROOT + 1]) / 1000.0
        p2 = normalize_screen_coordinates(d2, w, h)
    p3[~finite] = 0.0
    p2[~finite] = 0.0
    if joint_order == "h36m":
        p2 = p2[:, H36M_FROM_3DHP]
        p3 = p3[:, H36M_FROM_3DHP]
    return p2.astype(np.float32), p3.astype(np.float32)


def _data_dict(content: dict[str, Any], path: Path, problems: list[str]) -> dict | None:
    if "data" not in content:
        problems.append(f"{path}: no 'data' key (keys: {', '.join(sorted(content)) or 'none'})")
        return None
    data = content["data"]
    if not isinstance(data, dict):
        problems.append(f"{path}: 'data' is a {type(data).__name__}, expected a dict of sequences")
        return None
    if not data:
        problems.append(f"{path}: no sequences (empty 'data' dict)")
        return None
    return data


def _test_key(name: Any) -> tuple:
    s = str(name)
    return (0, int(s[2:])) if s in MPI3DHP_TEST_SEQUENCES else (1, s)


def _train_key(name: Any) -> tuple:
    m = _TRAIN_NAME.fullmatch(str(name))
    return (0, int(m.group(1)), int(m.group(2))) if m else (1, str(name), 0)


def _camera_index(key: Any) -> int | None:
    if isinstance(key, (bool, np.bool_)):
        return None
    if isinstance(key, (int, np.integer)):
        return int(key) if key >= 0 else None
    if isinstance(key, str) and key.strip().isdigit():
        return int(key.strip())
    return None


# ----------------------------------------------------------------------------------- the splits
def _read_test(path: Path, joint_order: str, *, collect: bool = False):
    """Read the test file. ``collect=False``: return a PoseSet or raise at the first problem.
    ``collect=True``: return ``(parts, rows, problems, notes, warnings)`` without raising for content
    problems."""
    problems: list[str] = []
    notes: list[str] = []
    warnings: list[str] = []
    rows: list[dict] = []
    parts: list[PoseSet] = []
    resolution: dict[str, list[int]] = {}
    check = _Sanity(path)

    def fail() -> None:
        if problems and not collect:
            raise DataError(problems[0])

    data = _data_dict(load_npz(path), path, problems)
    fail()
    for seq in sorted(data or {}, key=_test_key):
        where = f"{path}: sequence '{seq}'"
        if seq not in MPI3DHP_TEST_RESOLUTION:
            problems.append(f"{where}: unknown test sequence (expected one of {', '.join(MPI3DHP_TEST_SEQUENCES)})")
            fail()
            continue
        arrays, probs, nts = _check_entry(data[seq], where, with_valid=True)
        problems += probs
        notes += nts
        fail()
        if arrays is None:
            continue
        d2, d3, valid, finite = arrays
        w, h = MPI3DHP_TEST_RESOLUTION[seq]
        check.check(arrays, where, f"sequence '{seq}'", w, h, True, problems)
        fail()
        p2, p3 = _convert(d2, d3, finite, w, h, joint_order)
        n = len(p3)
        scene = SCENE_OF_SEQUENCE[seq]
        resolution[seq] = [w, h]
        rows.append({"split": "test", "sequence": seq, "scene": scene, "cameras": "0", "frames": n,
                     "valid": int(valid.sum()), "joints": NUM_JOINTS, "resolution": f"{w}x{h}"})
        parts.append(PoseSet(
            pose_2d=p2, pose_3d=p3,
            subject=np.full(n, seq), action=np.full(n, scene), sequence=np.full(n, seq),
            camera=np.zeros(n, dtype=np.int16), frame=np.arange(n, dtype=np.int32), valid=valid.copy()))
    check.finish(problems, warnings, "sequences")
    if collect:
        return parts, rows, problems, notes, warnings
    fail()
    for msg in warnings:
        log.warning(msg)
    return PoseSet.concat(parts, meta=_meta(path, "test", joint_order, resolution, notes, warnings))


def _read_train(path: Path, joint_order: str, *, collect: bool = False):
    """Like :func:`_read_test` for the train file."""
    problems: list[str] = []
    notes: list[str] = []
    warnings: list[str] = []
    rows: list[dict] = []
    parts: list[PoseSet] = []
    w, h = MPI3DHP_TRAIN_RESOLUTION
    check = _Sanity(path)

    def fail() -> None:
        if problems and not collect:
            raise DataError(problems[0])

    data = _data_dict(load_npz(path), path, problems)
    fail()
    for seq in sorted(data or {}, key=_train_key):
        where = f"{path}: sequence '{seq}'"
        m = _TRAIN_NAME.fullmatch(str(seq))
        if m is None:
            problems.append(f"{where}: unknown train sequence (expected 'S<1-8> Seq<1-2>', e.g. 'S1 Seq1')")
            fail()
            continue
        value = data[seq]
        if isinstance(value, dict):
            cams = None
        elif isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1):
            cams = value[0] if len(value) else None
        else:
            cams = None
        if not isinstance(cams, dict) or not cams:
            problems.append(f"{where}: expected [{{camera: {{data_2d, data_3d}}}}, fps] with a non-empty "
                            f"camera dict as element 0, got {type(value).__name__}")
            fail()
            continue
        by_index: dict[int, Any] = {}
        for key in cams:
            cam = _camera_index(key)
            if cam is None:
                problems.append(f"{where}: camera key {key!r} is not a camera index")
            elif cam in by_index:
                problems.append(f"{where}: camera {cam} appears twice (keys {by_index[cam][0]!r} and {key!r})")
            else:
                by_index[cam] = (key, cams[key])
            fail()
        subject, seq_name = f"S{m.group(1)}", f"Seq{m.group(2)}"
        frames = 0
        cam_list = []
        for cam in sorted(by_index):
            key, entry = by_index[cam]
            arrays, probs, nts = _check_entry(entry, f"{where} camera {key!r}", with_valid=False)
            problems += probs
            notes += nts
            fail()
            if arrays is None:
                continue
            check.check(arrays, f"{where} camera {key!r}", f"sequence '{seq}' camera {key!r}", w, h, False, problems)
            fail()
            d2, d3, _, finite = arrays
            p2, p3 = _convert(d2, d3, finite, w, h, joint_order)
            n = len(p3)
            frames += n
            cam_list.append(cam)
            parts.append(PoseSet(
                pose_2d=p2, pose_3d=p3,
                subject=np.full(n, subject), action=np.full(n, seq_name), sequence=np.full(n, str(seq)),
                camera=np.full(n, cam, dtype=np.int16), frame=np.arange(n, dtype=np.int32),
                valid=np.ones(n, dtype=bool)))
        if cam_list:
            rows.append({"split": "train", "sequence": str(seq), "scene": "-",
                         "cameras": ",".join(str(c) for c in cam_list), "frames": frames, "valid": frames,
                         "joints": NUM_JOINTS, "resolution": f"{w}x{h}"})
    check.finish(problems, warnings, "sequence cameras")
    if collect:
        return parts, rows, problems, notes, warnings
    fail()
    for msg in warnings:
        log.warning(msg)
    return PoseSet.concat(parts, meta=_meta(path, "train", joint_order, {"all": [w, h]}, notes, warnings))


def _meta(path: Path, split: str, joint_order: str, resolution: dict, notes: list[str],
          warnings: list[str]) -> dict:
    meta = {"dataset": "3dhp", "split": split, "file": str(path), "joint_order": joint_order,
            "root_joint": 0 if joint_order == "h36m" else MPI3DHP_ROOT, "resolution": resolution,
            "notes": list(notes)}
    if warnings:
        meta["warnings"] = list(warnings)
    return meta


def _check_root(data_root: Path | str) -> Path:
    root = Path(data_root)
    if not root.is_dir():
        raise DataError(f"{root}: 3DHP data folder not found")
    return root


# ------------------------------------------------------------------------------------------ API
def load_3dhp(data_root: Path | str, joint_order: str = "h36m") -> dict[str, PoseSet]:
    """Load MPI-INF-3DHP from ``data_root``: ``{"train": PoseSet (if data_train_3dhp.npz is there),
    "test": PoseSet}`` in the conventions of the module docstring.

    Raises :class:`ConfigError` for an unknown ``joint_order`` and :class:`DataError` (naming the
    file and sequence) for a missing test file or any problem in a file's content.
    """
    if joint_order not in JOINT_ORDERS:
        raise ConfigError(f"joint_order {joint_order!r} is not one of {', '.join(JOINT_ORDERS)}")
    root = _check_root(data_root)
    test_path = root / TEST_FILE
    if not test_path.is_file():
        raise DataError(f"{test_path}: file not found (the 3DHP test file is required)")
    out: dict[str, PoseSet] = {}
    train_path = root / TRAIN_FILE
    if train_path.is_file():
        out["train"] = _read_train(train_path, joint_order)
    out["test"] = _read_test(test_path, joint_order)
    return out


def scan_3dhp(data_root: Path | str) -> dict[str, Any]:
    """Summarise a 3DHP folder for ``harness data check`` without stopping at the first problem.

    Returns a dict: ``rows`` (one per sequence: split, sequence, scene, cameras, frames, valid,
    joints, resolution), ``files`` (name -> present), ``sequences`` / ``scenes`` (test ones found),
    ``frames`` / ``valid_frames`` (per split), ``joints``, ``notes`` (e.g. NaN in invalid frames),
    ``warnings`` (suspicions of :mod:`harness.data.sanity`, e.g. 2D far outside the image) and
    ``problems`` (every problem found, each a one-line message naming file and sequence; empty when
    the folder loads cleanly).
    """
    root = _check_root(data_root)
    problems: list[str] = []
    notes: list[str] = []
    warnings: list[str] = []
    rows: list[dict] = []
    files = {}
    for name, reader in ((TRAIN_FILE, _read_train), (TEST_FILE, _read_test)):
        path = root / name
        files[name] = path.is_file()
        if not path.is_file():
            if name == TEST_FILE:
                problems.append(f"{path}: file not found (the 3DHP test file is required)")
            continue
        try:
            _, r, p, n, wn = reader(path, "3dhp", collect=True)
        except DataError as e:  # unreadable / unsafe file as a whole
            problems.append(str(e))
            continue
        rows += r
        problems += p
        notes += n
        warnings += wn
    test_rows = [r for r in rows if r["split"] == "test"]
    scenes = [s for s, seqs in MPI3DHP_SCENES.items() if any(r["sequence"] in seqs for r in test_rows)]
    splits = [s for s, name in (("train", TRAIN_FILE), ("test", TEST_FILE)) if files[name]]
    frames = {s: sum(r["frames"] for r in rows if r["split"] == s) for s in splits}
    valid = {s: sum(r["valid"] for r in rows if r["split"] == s) for s in splits}
    return {
        "rows": rows,
        "files": files,
        "sequences": [r["sequence"] for r in test_rows],
        "scenes": scenes,
        "frames": frames,
        "valid_frames": valid,
        "joints": NUM_JOINTS,
        "notes": notes,
        "warnings": warnings,
        "problems": problems,
    }
