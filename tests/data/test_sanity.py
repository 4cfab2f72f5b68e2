"""Data sanity (harness.data.sanity): the pure checks with pinned numbers, and each defect in a tiny
dataset in the real file layout, found by the loader, by `harness data check` (exit 1, listed) and by
`harness train` (one line, exit 2, nothing trained)."""

from __future__ import annotations

import logging
import shutil

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import harness.data.h36m as h36m_mod
from harness.camera import load_cameras_h5, save_cameras_h5
from harness.cli import app
from harness.data import sanity
from harness.data.h36m import derive_gt_2d, load_h36m, scan_h36m, write_gt_2d
from harness.data.mpi3dhp import load_3dhp, scan_3dhp
from harness.data.synth.cameras import h36m_cameras
from harness.errors import DataError
from harness.safeio import load_npz, save_npz
from harness.skeleton import H36M_FROM_3DHP, H36M_JOINT_NAMES, H36M_PARENTS

runner = CliRunner()

# A T-pose (metres, z up, pelvis 1 m above the floor): bone lengths pinned, median exactly 0.25 m.
_OFFSETS = {1: (-0.13, 0, 0), 2: (0, 0, -0.45), 3: (0, 0, -0.44), 4: (0.13, 0, 0), 5: (0, 0, -0.45),
            6: (0, 0, -0.44), 7: (0, 0, 0.23), 8: (0, 0, 0.25), 9: (0, 0.1, 0.11), 10: (0, 0, 0.12),
            11: (0.15, 0, 0), 12: (0.28, 0, 0), 13: (0.25, 0, 0), 14: (-0.15, 0, 0), 15: (-0.28, 0, 0),
            16: (-0.25, 0, 0)}
TPOSE_BONES = [0.13, 0.45, 0.44, 0.13, 0.45, 0.44, 0.23, 0.25, np.hypot(0.1, 0.11), 0.12, 0.15, 0.28, 0.25,
               0.15, 0.28, 0.25]


def tpose() -> np.ndarray:
    pose = np.zeros((17, 3))
    pose[0] = (0.0, 0.0, 1.0)
    for j in range(1, 17):
        pose[j] = pose[H36M_PARENTS[j]] + _OFFSETS[j]
    return pose


def walking(n: int, phase: float = 0.0) -> np.ndarray:
    """(n, 17, 3) rigid motion of the T-pose (turning, moving): bones as pinned, in the cameras' view."""
    out = np.empty((n, 17, 3))
    for i in range(n):
        a = phase + 0.05 * i
        R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        out[i] = tpose() @ R.T + [0.01 * i - 0.1, 0.005 * i, 0.0]
    return out


# =========================================================================================== pure
def test_bone_lengths_and_median_pinned():
    lengths = sanity.bone_lengths(tpose()[None], H36M_PARENTS)
    np.testing.assert_allclose(lengths[0], TPOSE_BONES, atol=1e-12)
    assert sanity.median_bone_length(walking(30), H36M_PARENTS) == pytest.approx(0.25, abs=1e-12)
    assert sanity.median_bone_length(np.zeros((0, 17, 3)), H36M_PARENTS) is None
    assert sanity.median_bone_length(np.full((3, 17, 3), np.nan), H36M_PARENTS) is None


@pytest.mark.parametrize("median, unit, expected", [
    (0.25, "m", None),
    (0.06, "m", None),
    (1.4, "m", None),
    (254.3, "m", ("3D looks like millimetres",
                  "median bone length 254.3, H36M bones are 0.1-0.5 m; the loaders expect metres")),
    (25.43, "m", ("3D looks like centimetres",
                  "median bone length 25.43, H36M bones are 0.1-0.5 m; the loaders expect metres")),
    (5000.0, "m", ("3D bone lengths are implausible",
                   "median bone length 5000, H36M bones are 0.1-0.5 m; the loaders expect metres")),
    (0.0, "m", ("3D bone lengths are implausible",
                "median bone length 0, H36M bones are 0.1-0.5 m; the loaders expect metres")),
    (250.0, "mm", None),
    (0.25, "mm", ("3D looks like metres",
                  "median bone length 0.25, 3DHP bones are 100-500 mm; the 3DHP format holds millimetres")),
    (None, "m", None),
])
def test_unit_problem_pinned(median, unit, expected):
    assert sanity.unit_problem(median, unit) == expected


def test_degenerate_problem_kinds_pinned():
    names = H36M_JOINT_NAMES
    good = walking(20)
    assert sanity.degenerate_problem(good, H36M_PARENTS, names) is None
    x = good.copy()
    x[3:5] = 0
    x[7, 1:] = 0
    x[9:12, 2] = x[9:12, 1]         # RKnee onto RHip
    x[15, 13] = x[15, 10]           # LWrist onto Head (not a bone)
    assert sanity.degenerate_problem(x, H36M_PARENTS, names) == (
        "degenerate 3D skeletons in 7 of 20 frames (all joints at zero: 2; every joint but the root at zero: 1; "
        "zero-length bone RHip-RKnee: 3; joints Head and LWrist coincide: 1 of 14 sampled frames; first: frame 3)")
    # Only the frames asked about are judged (3DHP: the valid ones).
    mask = np.ones(20, bool)
    mask[[3, 4, 7, 9, 10, 11, 15]] = False
    assert sanity.degenerate_problem(x, H36M_PARENTS, names, frames=mask) is None
    # Sampled: with more frames than the sample, the count is a lower bound.
    long = walking(200)
    long[:, 13] = long[:, 10]
    assert sanity.degenerate_problem(long, H36M_PARENTS, names) == (
        "degenerate 3D skeletons in at least 64 of 200 frames (joints Head and LWrist coincide: 64 of 64 sampled "
        "frames; first: frame 0)")
    # Non-finite frames are left to the loaders' own NaN message.
    y = good.copy()
    y[0] = np.nan
    assert sanity.degenerate_problem(y, H36M_PARENTS, names) is None


def test_degenerate_tolerance_is_relative_to_the_median_bone():
    mm = walking(10) * 1000  # millimetres: a 0.2 mm bone is below 1e-3 x 250 mm, a 1 mm one is not
    a = mm.copy()
    a[2, 2] = a[2, 1] + [0.2, 0, 0]
    assert "zero-length bone RHip-RKnee: 1" in sanity.degenerate_problem(a, H36M_PARENTS, H36M_JOINT_NAMES)
    b = mm.copy()
    b[2, 2] = b[2, 1] + [1.0, 0, 0]
    assert sanity.degenerate_problem(b, H36M_PARENTS, H36M_JOINT_NAMES) is None


def test_pixel_problems_pinned():
    rng = np.random.default_rng(0)
    px = rng.uniform(100, 900, (30, 17, 2))
    assert sanity.pixel_problems(px, 1000, 1002) == []
    norm = px / 1000 * 2 - 1
    peak = float(np.abs(norm).max())
    assert sanity.pixel_problems(norm, 1000, 1002) == [
        ("error", "2D looks already normalised to [-1, 1]",
         f"all |values| <= {peak:.3g} while the image is 1000 px wide; expected pixels")]
    assert sanity.pixel_problems(np.zeros((5, 17, 2)), 1000, 1000) == [("error", "2D is all zero", "5 frames")]
    far = px.copy()
    far[4, 7] = (-2500.0, 30.0)
    far[9, 0, 1] = 2100.0
    zero = far.copy()
    zero[12] = 0
    assert sanity.pixel_problems(zero, 1000, 1000) == [
        ("warning", "2D is all zero in 1 of 30 frames", "first: frame 12 (a detector's misses?)"),
        ("warning", "2D far outside the 1000x1000 image in 2 of 30 frames",
         "more than one image size past the border; first: frame 4, joint 7 at (-2500.0, 30.0) px")]
    most = px.copy()
    most[:16, 3, 0] = 5000.0
    (sev, what, _), = sanity.pixel_problems(most, 1000, 1000)
    assert (sev, what) == ("error", "2D far outside the 1000x1000 image in 16 of 30 frames")
    # Just outside the border is not "far".
    near = px.copy()
    near[0, 0] = (-900.0, 1900.0)
    assert sanity.pixel_problems(near, 1000, 1000) == []


def test_camera_problems_pinned():
    R = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    ok = dict(R=R, T=[1.0, 2.0, 3.0], f=[1145.0, 1144.0], c=[512.5, 515.0], k=[0.0, 0.0, 0.0], p=[0.0, 0.0],
              res_w=1000, res_h=1002)
    assert sanity.camera_problems(**ok) == []
    assert sanity.camera_problems(**{**ok, "R": R * 1.1}) == [
        "R is not a rotation (max |R R^T - I| = 0.21, det 1.33; expected orthonormal with det +1 within 0.001)"]
    assert sanity.camera_problems(**{**ok, "R": R @ np.diag([1.0, 1.0, -1.0])}) == [
        "R is not a rotation (max |R R^T - I| = 0, det -1; expected orthonormal with det +1 within 0.001)"]
    assert sanity.camera_problems(**{**ok, "R": R + 2e-4}) == []  # within 1e-3
    assert sanity.camera_problems(**{**ok, "f": [-1145.0, 1144.0], "c": [512.5, np.nan]}) == [
        "focal length f = [-1145, 1144] px is not finite and positive",
        "principal point c = [512.5, nan] px is not finite and positive"]
    assert sanity.camera_problems(**{**ok, "res_w": 0, "T": [np.inf, 0, 0]}) == [
        "T holds NaN/inf", "image size 0x1002 px is not positive"]


def test_valid_key_and_grouping_pinned():
    assert sanity.valid_problem(np.zeros(7, bool)) == "no valid frames (all 7 'valid' flags are 0): nothing to evaluate"
    assert sanity.valid_problem(np.array([0, 1], bool)) is None
    assert sanity.key_type_problem({"S1": 1, 9: 2}, "subject", "S1") == (
        "subject key 9 (int) is not a string; expected names like 'S1'")
    assert sanity.key_type_problem({"S1": 1}, "subject", "S1") is None
    assert sanity.grouped("f.npz", "bad", "why", ["a"], 3, "sequences") == "f.npz: a: bad: why"
    assert sanity.grouped("f.npz", "bad", "why", ["a", "b", "c", "d"], 9, "sequences") == (
        "f.npz: bad in 4 of 9 sequences (a, b, c, ...): why")
    assert sanity.group_findings("f", [("a", "x", "1"), ("b", "y", "2"), ("c", "x", "3")], 3, "arrays") == [
        "f: x in 2 of 3 arrays (a, c): 1", "f: b: y: 2"]


# =============================================================================== H36M, real layout
N = 20
SEQS = {"S1": ("Walking 1", "Eating"), "S9": ("Walking 1", "Eating")}


@pytest.fixture(scope="module")
def h36m_base(tmp_path_factory):
    """data_3d_h36m.npz (17 joints, metres, world), cameras.h5 (the synthetic rig) and
    data_2d_h36m_gt.npz (pixels, projected) for S1 (train) and S9 (test): every check passes."""
    root = tmp_path_factory.mktemp("sanity") / "h36m"
    root.mkdir()
    pos3d = {s: {a: walking(N, phase=0.3 * i).astype(np.float32) for i, a in enumerate(acts)}
             for s, acts in SEQS.items()}
    cams = {s: c for s, c in h36m_cameras(0).items() if s in SEQS}
    save_npz(root / "data_3d_h36m.npz", positions_3d=pos3d)
    save_cameras_h5(root / "cameras.h5", cams)
    write_gt_2d(root / "data_2d_h36m_gt.npz", derive_gt_2d(pos3d, load_cameras_h5(root / "cameras.h5")))
    assert scan_h36m(root, "gt").problems == []
    return root


@pytest.fixture
def h36m_dir(h36m_base, tmp_path):
    root = tmp_path / "h36m"
    shutil.copytree(h36m_base, root)
    return root


def _edit_3d(root, fn):
    pos = load_npz(root / "data_3d_h36m.npz")["positions_3d"]
    pos = fn(pos) or pos
    save_npz(root / "data_3d_h36m.npz", positions_3d=pos)


def _edit_2d(root, fn):
    d = load_npz(root / "data_2d_h36m_gt.npz")
    fn(d["positions_2d"])
    save_npz(root / "data_2d_h36m_gt.npz", positions_2d=d["positions_2d"], metadata=d["metadata"])


def _edit_camera(root, group, key, fn):
    with h5py.File(root / "cameras.h5", "r+") as f:
        f[f"{group}/{key}"][...] = fn(f[f"{group}/{key}"][()])


def _millimetres(root):
    _edit_3d(root, lambda pos: {s: {a: v * 1000 for a, v in acts.items()} for s, acts in pos.items()})
    return (f"{root}/data_3d_h36m.npz: 3D looks like millimetres in 4 of 4 sequences (S1 'Eating', S1 'Walking 1', "
            "S9 'Eating', ...): median bone length 250, H36M bones are 0.1-0.5 m; the loaders expect metres")


def _normalised_2d(root):
    peak = {}

    def fn(pos):
        for s, acts in pos.items():
            for a, views in acts.items():
                for i, v in enumerate(views):
                    views[i] = (v / 1000 * 2 - 1).astype(np.float32)
                    peak[s, a, i] = float(np.abs(views[i]).max())
    _edit_2d(root, fn)
    return (f"{root}/data_2d_h36m_gt.npz: 2D looks already normalised to [-1, 1] in 16 of 16 camera arrays "
            "(S1 'Eating' camera 0 (54138969), S1 'Eating' camera 1 (55011271), S1 'Eating' camera 2 (58860488), ...): "
            f"all |values| <= {peak['S1', 'Eating', 0]:.3g} while the image is 1000 px wide; expected pixels")


def _all_but_root_zero(root):
    def fn(pos):
        pos["S1"]["Walking 1"][:, 1:] = 0
    _edit_3d(root, fn)
    return (f"{root}/data_3d_h36m.npz: S1 'Walking 1': degenerate 3D skeletons in 20 of 20 frames "
            "(every joint but the root at zero: 20; first: frame 0)")


def _all_zero(root):
    def fn(pos):
        pos["S9"]["Walking 1"][:] = 0
    _edit_3d(root, fn)
    return (f"{root}/data_3d_h36m.npz: S9 'Walking 1': degenerate 3D skeletons in 20 of 20 frames "
            "(all joints at zero: 20; first: frame 0)")


def _zero_length_bone(root):
    def fn(pos):
        x = pos["S9"]["Eating"]
        x[5:8, 2] = x[5:8, 1]
    _edit_3d(root, fn)
    return (f"{root}/data_3d_h36m.npz: S9 'Eating': degenerate 3D skeletons in 3 of 20 frames "
            "(zero-length bone RHip-RKnee: 3; first: frame 5)")


def _coinciding_joints(root):
    def fn(pos):
        x = pos["S1"]["Eating"]
        x[4, 13] = x[4, 10]
    _edit_3d(root, fn)
    return (f"{root}/data_3d_h36m.npz: S1 'Eating': degenerate 3D skeletons in 1 of 20 frames "
            "(joints Head and LWrist coincide: 1 of 20 sampled frames; first: frame 4)")


def _bad_rotation(root):
    _edit_camera(root, "subject1/camera2", "R", lambda R: R * 1.1)
    return (f"{root}/cameras.h5: subject1/camera2 (camera 55011271): R is not a rotation (max |R R^T - I| = 0.21, "
            "det 1.33; expected orthonormal with det +1 within 0.001)")


def _negative_focal(root):
    _edit_camera(root, "subject9/camera1", "f", lambda f: f * np.array([[-1.0], [1.0]]))
    f = load_cameras_h5(root / "cameras.h5", problems=[])["S9"][0].f
    return (f"{root}/cameras.h5: subject9/camera1 (camera 54138969): focal length f = [{f[0]:g}, {f[1]:g}] px "
            "is not finite and positive")


def _subject_key_int(root):
    _edit_3d(root, lambda pos: {"S1": pos["S1"], 9: pos["S9"]})
    return f"{root}/data_3d_h36m.npz: 'positions_3d' subject key 9 (int) is not a string; expected names like 'S1'"


def _action_key_int(root):
    def fn(pos):
        d = pos["S1"]
        d[3] = d.pop("Eating")
    _edit_2d(root, fn)
    return (f"{root}/data_2d_h36m_gt.npz: 'positions_2d' S1 action key 3 (int) is not a string; expected names "
            "like 'Walking 1'")


def _positions_not_a_dict(root):
    save_npz(root / "data_3d_h36m.npz", positions_3d=[np.zeros((3, 17, 3))])
    return f"{root}/data_3d_h36m.npz: 'positions_3d' is not a dict subject -> action -> array"


def _array_not_numeric(root):
    def fn(pos):
        pos["S1"]["Eating"] = np.full((N, 17, 3), "x")
    _edit_3d(root, fn)
    return f"{root}/data_3d_h36m.npz: S1 'Eating': dtype <U1 is not floating point"


def _wrong_last_dim(root):
    def fn(pos):
        pos["S9"]["Eating"] = pos["S9"]["Eating"][..., :2]
    _edit_3d(root, fn)
    return f"{root}/data_3d_h36m.npz: S9 'Eating': expected a (frames, 32 or 17, 3) array, got (20, 17, 2)"


H36M_DEFECTS = [_millimetres, _normalised_2d, _all_but_root_zero, _all_zero, _zero_length_bone, _coinciding_joints,
                _bad_rotation, _negative_focal, _subject_key_int, _action_key_int, _positions_not_a_dict,
                _array_not_numeric, _wrong_last_dim]


@pytest.mark.parametrize("defect", H36M_DEFECTS, ids=[d.__name__[1:] for d in H36M_DEFECTS])
def test_h36m_defect_loader_scan_and_data_check(h36m_dir, defect):
    expected = defect(h36m_dir)
    with pytest.raises(DataError) as ei:
        load_h36m(h36m_dir, "gt", use_cache=False)
    assert str(ei.value) == expected
    assert scan_h36m(h36m_dir, "gt").problems == [expected]
    r = runner.invoke(app, ["data", "check", "--data-root", str(h36m_dir)])
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and "no problems found" not in r.output
    assert "1 problem(s) found" in r.output
    assert f"  - {expected}" in r.output.splitlines()


@pytest.fixture
def no_kernel_build(monkeypatch):
    """`harness train` asks, for the run's identity, whether the C++ kernels load, building them on first
    use (tens of seconds in a fresh cache). The data are refused before any of it matters: say they
    are unavailable, for this test only."""
    from harness.models.fast import native

    monkeypatch.setattr(native, "lib", lambda: None)


def _train(root, out, *extra):
    return runner.invoke(app, ["train", "--data-root", str(root), "--profile", "smoke", "--device", "cpu",
                               "--out", str(out), *extra])


def _error_line(result) -> str:
    text = result.output
    assert "Traceback" not in text
    errors = [ln for ln in text.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, text
    return errors[0][len("error: "):]


def _trained_files(out):
    """What training would have written: checkpoints, metrics, per-frame errors, the shared lifter."""
    names = {"checkpoint.pt", "metrics.json", "per_frame.npz", "noise.json"}
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if p.name in names or p.suffix in (".pt", ".npz") or "lifter" in p.name)


@pytest.mark.parametrize("defect", [_millimetres, _normalised_2d, _all_but_root_zero],
                         ids=["millimetres", "normalised_2d", "all_but_root_zero"])
def test_h36m_train_refuses_before_training(h36m_dir, tmp_path, harness_cache, no_kernel_build, defect):
    expected = defect(h36m_dir)
    out = tmp_path / "runs"
    cached = set(harness_cache.rglob("*.h5"))
    r = _train(h36m_dir, out)
    assert r.exit_code == 2, r.output
    assert _error_line(r) == expected
    assert not out.exists() or _trained_files(out) == []
    assert set(harness_cache.rglob("*.h5")) == cached, "a refused load must not be cached"


def test_h36m_train_refusal_leaves_no_run_folder(h36m_dir, tmp_path, harness_cache, no_kernel_build):
    _millimetres(h36m_dir)
    out = tmp_path / "runs"
    out.mkdir()
    assert _train(h36m_dir, out).exit_code == 2
    assert list(out.rglob("*")) == []


# ----------------------------------------------------------------------------------- the cache
def test_cache_is_keyed_by_the_checks_version(h36m_dir, tmp_path, monkeypatch):
    """A cached entry passed the checks of its version: another version rebuilds (and rechecks)."""
    cache = tmp_path / "cache"
    built = []
    real_build = h36m_mod.build_h36m
    monkeypatch.setattr(h36m_mod, "build_h36m", lambda *a, **k: built.append(1) or real_build(*a, **k))
    load_h36m(h36m_dir, "gt", cache_dir=cache)
    load_h36m(h36m_dir, "gt", cache_dir=cache)
    assert built == [1]
    monkeypatch.setattr(sanity, "SANITY_VERSION", sanity.SANITY_VERSION + 1)
    load_h36m(h36m_dir, "gt", cache_dir=cache)
    assert built == [1, 1]
    # The stale-results case: the data change under a cached entry; the checks run again and refuse.
    expected = _millimetres(h36m_dir)
    with pytest.raises(DataError) as ei:
        load_h36m(h36m_dir, "gt", cache_dir=cache)
    assert str(ei.value) == expected


def test_warnings_are_said_again_on_a_cache_hit(h36m_dir, tmp_path, caplog):
    def fn(pos):
        pos["S1"]["Eating"][0][2, 5] = (-2500.0, 40.0)
    _edit_2d(h36m_dir, fn)
    expected = (f"{h36m_dir}/data_2d_h36m_gt.npz: S1 'Eating' camera 0 (54138969): 2D far outside the 1000x1002 "
                "image in 1 of 20 frames: more than one image size past the border; first: frame 2, joint 5 at "
                "(-2500.0, 40.0) px")
    assert expected in scan_h36m(h36m_dir, "gt").warnings
    for _ in range(2):  # built, then a cache hit
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="harness.data.h36m"):
            sets = load_h36m(h36m_dir, "gt", cache_dir=tmp_path / "cache")
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [expected]
        assert sets["train"].meta["warnings"] == [expected]


def test_real_h36m_passes(h36m_root):
    rep = scan_h36m(h36m_root, "gt")
    assert rep.problems == [] and rep.warnings == []


# =============================================================================== 3DHP, real layout
def _project(cam_mm: np.ndarray, w: int, h: int) -> np.ndarray:
    f = 1.4 * w
    return cam_mm[..., :2] / cam_mm[..., 2:3] * f + np.array([w / 2, h / 2])


def _3dhp_seq(n: int, w: int, h: int, phase: float) -> dict:
    """One P-STMO test entry: camera-frame millimetres (4 m in front), pixels, valid flags; 3DHP order."""
    h36m_order = walking(n, phase) - [0.0, 0.0, 1.0]
    cam = np.stack([h36m_order[..., 0], -h36m_order[..., 2], h36m_order[..., 1] + 4.0], axis=-1) * 1000.0
    d3 = np.empty_like(cam)
    d3[:, list(H36M_FROM_3DHP)] = cam
    return {"data_2d": _project(d3, w, h).astype(np.float32), "data_3d": d3.astype(np.float32),
            "valid": np.ones(n, np.float32)}


@pytest.fixture
def mpi_dir(tmp_path):
    root = tmp_path / "3dhp"
    root.mkdir()
    save_npz(root / "data_test_3dhp.npz", data={"TS1": _3dhp_seq(12, 2048, 2048, 0.0),
                                                "TS5": _3dhp_seq(12, 1920, 1080, 0.4)})
    assert scan_3dhp(root)["problems"] == []
    return root


def _edit_3dhp(root, fn):
    data = load_npz(root / "data_test_3dhp.npz")["data"]
    fn(data)
    save_npz(root / "data_test_3dhp.npz", data=data)


def _3dhp_no_valid(root):
    _edit_3dhp(root, lambda d: d["TS5"].update(valid=np.zeros(12, np.float32)))
    return (f"{root}/data_test_3dhp.npz: sequence 'TS5': no valid frames (all 12 'valid' flags are 0): "
            "nothing to evaluate")


def _3dhp_metres(root):
    def fn(d):
        for v in d.values():
            v["data_3d"] = v["data_3d"] / 1000
    _edit_3dhp(root, fn)
    return (f"{root}/data_test_3dhp.npz: 3D looks like metres in 2 of 2 sequences (sequence 'TS1', sequence 'TS5'): "
            "median bone length 0.25, 3DHP bones are 100-500 mm; the 3DHP format holds millimetres")


def _3dhp_normalised(root):
    peak = []

    def fn(d):
        for seq, v in d.items():
            w, h = (2048, 2048) if seq == "TS1" else (1920, 1080)
            v["data_2d"] = (v["data_2d"] / w * 2 - np.array([1, h / w])).astype(np.float32)
            peak.append(float(np.abs(v["data_2d"]).max()))
    _edit_3dhp(root, fn)
    return (f"{root}/data_test_3dhp.npz: 2D looks already normalised to [-1, 1] in 2 of 2 sequences (sequence 'TS1', "
            f"sequence 'TS5'): all |values| <= {peak[0]:.3g} while the image is 2048 px wide; expected pixels")


def _3dhp_all_but_root_zero(root):
    def fn(d):
        d["TS1"]["data_3d"][2:5, [j for j in range(17) if j != 14]] = 0
    _edit_3dhp(root, fn)
    return (f"{root}/data_test_3dhp.npz: sequence 'TS1': degenerate 3D skeletons in 3 of 12 valid frames "
            "(every joint but the root at zero: 3; first: frame 2)")


MPI_DEFECTS = [_3dhp_no_valid, _3dhp_metres, _3dhp_normalised, _3dhp_all_but_root_zero]


@pytest.mark.parametrize("defect", MPI_DEFECTS, ids=[d.__name__[6:] for d in MPI_DEFECTS])
def test_3dhp_defect_loader_scan_check_and_train(mpi_dir, tmp_path, harness_cache, no_kernel_build, defect):
    expected = defect(mpi_dir)
    with pytest.raises(DataError) as ei:
        load_3dhp(mpi_dir)
    assert str(ei.value) == expected
    assert scan_3dhp(mpi_dir)["problems"] == [expected]
    r = runner.invoke(app, ["data", "check", "--benchmark", "3dhp", "--data-root", str(mpi_dir)])
    assert r.exit_code == 1, r.output
    assert f"  - {expected}" in r.output.splitlines()
    out = tmp_path / "runs"
    r = _train(mpi_dir, out, "--benchmark", "3dhp")
    assert r.exit_code == 2, r.output
    assert _error_line(r) == expected
    assert not out.exists() or _trained_files(out) == []


def test_3dhp_invalid_frames_are_not_judged(mpi_dir):
    """Degenerate 3D in frames flagged invalid is not a problem (they are excluded from metrics)."""
    def fn(d):
        d["TS1"]["data_3d"][2:5] = 0
        d["TS1"]["valid"][2:5] = 0
    _edit_3dhp(mpi_dir, fn)
    assert scan_3dhp(mpi_dir)["problems"] == []
    assert load_3dhp(mpi_dir)["test"].valid.sum() == 21


def test_real_3dhp_passes(mpi3dhp_root):
    rep = scan_3dhp(mpi3dhp_root)
    assert rep["problems"] == [] and rep["warnings"] == []
