"""Issue 6, bad input: every bad file, name, option or results folder is reported by the CLI as one
line ``error: <file or option>: <what is wrong>`` on stderr, exit code 2, no traceback, before any
training starts; crafted pickles in data files and checkpoints are refused without running.

The bad inputs are made from a small synthetic benchmark written in the real file layouts
(:func:`harness.data.synth.synth_h36m` / ``synth_3dhp``), one defect per case.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from harness.cli import app
from harness.config import load_profiles
from harness.data.synth import synth_3dhp, synth_h36m
from harness.errors import ConfigError
from harness.safeio import load_npz, save_npz
from tests.e2e import tiny_cli

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result) -> str:
    """Exit code 2, no traceback, and stderr exactly one line starting with 'error: '."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


def no_training(out: Path) -> bool:
    return not out.exists() or not any(p.name in ("checkpoint.pt", "predictions.npz", "metrics.json")
                                       for p in out.rglob("*"))


@pytest.fixture(autouse=True)
def _cache(harness_cache):
    return harness_cache


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, harness_cache):
    """A small synthetic H36M (7 subjects x 15 actions, about 8 frames, 4 cameras) and 3DHP."""
    root = tmp_path_factory.mktemp("small-data")
    synth_h36m(root / "h36m", frames=8, takes=1)
    synth_3dhp(root / "3dhp", test_frames=12, train_subjects=1, train_seqs=1, train_cameras=2, train_frames=12)
    return root


@pytest.fixture
def h36m(tmp_path, small_data):
    d = tmp_path / "h36m"
    shutil.copytree(small_data / "h36m", d)
    return d


@pytest.fixture
def mpi(tmp_path, small_data):
    d = tmp_path / "3dhp"
    shutil.copytree(small_data / "3dhp", d)
    return d


# ------------------------------------------------------------------------------------- editing
def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def edit_3d(d: Path, fn) -> None:
    p = d / "data_3d_h36m.npz"
    pos = load_npz(p)["positions_3d"]
    fn(pos)
    save_npz(p, positions_3d=pos)


def edit_2d(d: Path, fn) -> None:
    p = d / "data_2d_h36m_synth_det.npz"
    z = load_npz(p)
    fn(z["positions_2d"], z)
    save_npz(p, **z)


def frames(d: Path, subject: str, action: str) -> int:
    return len(load_npz(d / "data_3d_h36m.npz")["positions_3d"][subject][action])


def set_value(arr_getter, index, value):
    def fn(pos, *_):
        arr_getter(pos)[index] = value
    return fn


# Each case edits a copy of the good folder and returns (keypoints, the exact message expected
# after 'error: ', whether `harness data check` reports the same problem).
def _missing_3d(d):
    (d / "data_3d_h36m.npz").unlink()
    return "gt", f"{d}/data_3d_h36m.npz: file not found", True


def _missing_cameras(d):
    (d / "cameras.h5").unlink()
    return "gt", f"{d}/cameras.h5: file not found", False  # data check says "camera file not found"


def _missing_2d(d):
    return ("cpn_ft_h36m_dbb", f"{d}/data_2d_h36m_cpn_ft_h36m_dbb.npz: file not found (2D keypoints "
            "'cpn_ft_h36m_dbb')", True)


def _truncated_3d(d):
    truncate(d / "data_3d_h36m.npz")
    return "gt", f"{d}/data_3d_h36m.npz: not a valid .npz file (File is not a zip file)", True


def _truncated_2d(d):
    truncate(d / "data_2d_h36m_synth_det.npz")
    return "synth_det", f"{d}/data_2d_h36m_synth_det.npz: not a valid .npz file (File is not a zip file)", True


def _garbage_3d(d):
    (d / "data_3d_h36m.npz").write_text("this is not an npz file\n")
    return "gt", f"{d}/data_3d_h36m.npz: not a valid .npz file (File is not a zip file)", True


def _corrupt_3d(d):
    p = d / "data_3d_h36m.npz"
    b = bytearray(p.read_bytes())
    for i in range(2000, 2100):
        b[i] ^= 0xFF
    p.write_bytes(bytes(b))
    return "gt", f"{d}/data_3d_h36m.npz: unreadable .npz file (error: Error -3 while decompressing data", True


def _truncated_cameras(d):
    truncate(d / "cameras.h5")
    return "gt", f"{d}/cameras.h5: not a valid cameras.h5 (Unable to synchronously open file (truncated file", True


def _cameras_lack_subject(d):
    with h5py.File(d / "cameras.h5", "a") as f:
        del f["subject9"]
    return "gt", f"{d}/cameras.h5: no cameras for subject S9 (needed by data_3d_h36m.npz)", True


def _joints_3d(d):
    n = frames(d, "S1", "Directions")
    edit_3d(d, lambda pos: pos["S1"].__setitem__("Directions", pos["S1"]["Directions"][:, :15]))
    return ("gt", f"{d}/data_3d_h36m.npz: S1 'Directions': expected a (frames, 32 or 17, 3) array, got ({n}, 15, 3)",
            True)


def _flat_3d(d):
    edit_3d(d, lambda pos: pos["S5"].__setitem__("Eating", pos["S5"]["Eating"].reshape(-1, 3)))
    n = frames(d, "S5", "Eating")
    return "gt", f"{d}/data_3d_h36m.npz: S5 'Eating': expected a (frames, 32 or 17, 3) array, got ({n}, 3)", True


def _int_3d(d):
    edit_3d(d, lambda pos: pos["S1"].__setitem__("Walking", pos["S1"]["Walking"].astype(np.int64)))
    return "gt", f"{d}/data_3d_h36m.npz: S1 'Walking': dtype int64 is not floating point", True


def _nan_3d(d):
    edit_3d(d, set_value(lambda pos: pos["S9"]["Walking"], (2, 3, 1), np.nan))
    return "gt", f"{d}/data_3d_h36m.npz: S9 'Walking': 1 frame(s) with NaN/inf (first: frame 2)", True


def _inf_3d(d):
    def fn(pos):
        pos["S5"]["Phoning"][1, 0, 0] = np.inf
        pos["S5"]["Phoning"][4, 16, 2] = -np.inf
    edit_3d(d, fn)
    return "gt", f"{d}/data_3d_h36m.npz: S5 'Phoning': 2 frame(s) with NaN/inf (first: frame 1)", True


def _not_a_dict_3d(d):
    save_npz(d / "data_3d_h36m.npz", positions_3d=np.zeros((4, 17, 3), np.float32))
    return "gt", f"{d}/data_3d_h36m.npz: 'positions_3d' is not a dict subject -> action -> array", True


def _no_positions_3d(d):
    save_npz(d / "data_3d_h36m.npz", poses=np.zeros((4, 17, 3), np.float32))
    return "gt", f"{d}/data_3d_h36m.npz: no 'positions_3d' entry (found: poses)", True


def _no_test_subjects(d):
    edit_3d(d, lambda pos: [pos.pop("S9"), pos.pop("S11")])
    # `data check` only warns: a folder of training subjects alone is a valid folder
    return ("gt", f"{d}: no test data for benchmark 'h36m' (none of the test subjects S9, S11 in data_3d_h36m.npz)",
            False)


def _joints_2d(d):
    edit_2d(d, lambda p2, z: p2["S1"]["Directions"].__setitem__(0, p2["S1"]["Directions"][0][:, :16]))
    return ("synth_det", f"{d}/data_2d_h36m_synth_det.npz: S1 'Directions' camera 0 (54138969): 16 joints, "
            "metadata num_joints is 17", True)


def _dims_2d(d):
    n = frames(d, "S8", "Greeting")
    edit_2d(d, lambda p2, z: p2["S8"]["Greeting"].__setitem__(3, np.zeros((n, 17, 3), np.float32)))
    return ("synth_det", f"{d}/data_2d_h36m_synth_det.npz: S8 'Greeting' camera 3 (60457274): expected a "
            f"(frames, joints, 2) array, got ({n}, 17, 3)", True)


def _nan_2d(d):
    edit_2d(d, set_value(lambda p2: p2["S1"]["Directions"][1], (4, 5, 0), np.nan))
    return ("synth_det", f"{d}/data_2d_h36m_synth_det.npz: S1 'Directions' camera 1 (55011271): 1 frame(s) "
            "with NaN/inf (first: frame 4)", True)


def _inf_2d(d):
    edit_2d(d, set_value(lambda p2: p2["S11"]["Smoking"][3], (0, 9, 1), np.inf))
    return ("synth_det", f"{d}/data_2d_h36m_synth_det.npz: S11 'Smoking' camera 3 (60457274): 1 frame(s) "
            "with NaN/inf (first: frame 0)", True)


def _fewer_frames_2d(d):
    n = frames(d, "S5", "Directions")
    edit_2d(d, lambda p2, z: p2["S5"]["Directions"].__setitem__(2, p2["S5"]["Directions"][2][:-3]))
    return ("synth_det", f"{d}/data_2d_h36m_synth_det.npz: S5 'Directions' camera 2 (58860488): 2D has {n - 3} "
            f"frames, fewer than the 3D's {n}", True)


def _subject_missing_2d(d):
    edit_2d(d, lambda p2, z: p2.pop("S11"))
    return "synth_det", f"{d}/data_2d_h36m_synth_det.npz: subject S11 missing (it is in data_3d_h36m.npz)", True


def _action_missing_2d(d):
    edit_2d(d, lambda p2, z: p2["S6"].pop("Discussion"))
    return ("synth_det", f"{d}/data_2d_h36m_synth_det.npz: S6 lacks 1 sequence(s) that data_3d_h36m.npz has: "
            "'Discussion'", True)


def _camera_missing_2d(d):
    edit_2d(d, lambda p2, z: p2["S7"].__setitem__("Directions", p2["S7"]["Directions"][:3]))
    return ("synth_det", f"{d}/data_2d_h36m_synth_det.npz: S7 'Directions': 3 camera(s), cameras.h5 has 4 for S7",
            True)


def _layout_2d(d):
    edit_2d(d, lambda p2, z: z["metadata"].__setitem__("num_joints", 20))
    return "synth_det", f"{d}/data_2d_h36m_synth_det.npz: unsupported 2D joint layout (num_joints 20,", True


def _no_metadata_2d(d):
    edit_2d(d, lambda p2, z: z.pop("metadata"))
    return ("synth_det", f"{d}/data_2d_h36m_synth_det.npz: no 'metadata' entry (VideoPose3D layout needs "
            "num_joints and keypoints_symmetry)", True)


H36M_CASES = [_missing_3d, _missing_cameras, _missing_2d, _truncated_3d, _truncated_2d, _garbage_3d, _corrupt_3d,
              _truncated_cameras, _cameras_lack_subject, _joints_3d, _flat_3d, _int_3d, _nan_3d, _inf_3d,
              _not_a_dict_3d, _no_positions_3d, _no_test_subjects, _joints_2d, _dims_2d, _nan_2d, _inf_2d,
              _fewer_frames_2d, _subject_missing_2d, _action_missing_2d, _camera_missing_2d, _layout_2d,
              _no_metadata_2d]


def _train_args(d: Path, out: Path, *extra) -> list:
    return ["train", "--data-root", d, "--profile", "smoke", "--epochs", "0", "--device", "cpu", "--out", out, *extra]


@pytest.mark.parametrize("case", H36M_CASES, ids=[c.__name__.strip("_") for c in H36M_CASES])
def test_bad_h36m_folder(case, h36m, tmp_path):
    keypoints, expected, in_check = case(h36m)
    out = tmp_path / "runs"
    line = one_line_error(invoke(*_train_args(h36m, out, "--keypoints", keypoints)))
    assert line.startswith(f"error: {expected}"), line
    assert no_training(out)
    r = invoke("data", "check", "--benchmark", "h36m", "--data-root", h36m, "--keypoints", keypoints)
    assert "Traceback" not in r.output
    if in_check:  # `data check` lists every problem and exits 1
        assert r.exit_code == 1, r.output
        assert f"  - {expected}" in r.stderr, r.stderr
    else:
        assert f"  - {expected}" not in r.stderr


def _3dhp_missing_test(d):
    (d / "data_test_3dhp.npz").unlink()
    return f"{d}/data_test_3dhp.npz: file not found (the 3DHP test file is required)", True


def _3dhp_missing_train(d):
    (d / "data_train_3dhp.npz").unlink()
    return f"{d}: no training data for benchmark '3dhp' (data_train_3dhp.npz is absent or empty)", False


def _3dhp_truncated(d):
    truncate(d / "data_train_3dhp.npz")
    return f"{d}/data_train_3dhp.npz: not a valid .npz file (File is not a zip file)", True


def _edit_3dhp(d, name, fn):
    p = d / name
    data = load_npz(p)["data"]
    out = fn(data)
    save_npz(p, data=data)
    return out


def _3dhp_frames(d):
    def fn(data):
        n = len(data["TS3"]["data_3d"])
        data["TS3"]["data_2d"] = data["TS3"]["data_2d"][:-2]
        return n
    n = _edit_3dhp(d, "data_test_3dhp.npz", fn)
    return f"{d}/data_test_3dhp.npz: sequence 'TS3': data_2d has {n - 2} frames but data_3d has {n}", True


def _3dhp_nan_3d(d):
    def fn(data):
        i = int(np.flatnonzero(data["TS2"]["valid"])[1])
        data["TS2"]["data_3d"][i, 3, 0] = np.nan
        return i
    i = _edit_3dhp(d, "data_test_3dhp.npz", fn)
    return f"{d}/data_test_3dhp.npz: sequence 'TS2': NaN/Inf in 1 valid frame(s) (first: frame {i})", True


def _3dhp_inf_2d(d):
    def fn(data):
        i = int(np.flatnonzero(data["TS5"]["valid"])[0])
        data["TS5"]["data_2d"][i, 0, 1] = np.inf
        return i
    i = _edit_3dhp(d, "data_test_3dhp.npz", fn)
    return f"{d}/data_test_3dhp.npz: sequence 'TS5': NaN/Inf in 1 valid frame(s) (first: frame {i})", True


def _3dhp_joints(d):
    def fn(data):
        cam = sorted(data["S1 Seq1"][0])[0]
        data["S1 Seq1"][0][cam]["data_3d"] = data["S1 Seq1"][0][cam]["data_3d"][:, :16]
        return cam
    cam = _edit_3dhp(d, "data_train_3dhp.npz", fn)
    return f"{d}/data_train_3dhp.npz: sequence 'S1 Seq1' camera '{cam}': data_3d has 16 joints, expected 17", True


def _3dhp_valid_length(d):
    def fn(data):
        n = len(data["TS6"]["data_3d"])
        data["TS6"]["valid"] = data["TS6"]["valid"][:-1]
        return n
    n = _edit_3dhp(d, "data_test_3dhp.npz", fn)
    return f"{d}/data_test_3dhp.npz: sequence 'TS6': valid has shape ({n - 1},), expected ({n},) like the poses", True


def _3dhp_unknown_sequence(d):
    _edit_3dhp(d, "data_test_3dhp.npz", lambda data: data.__setitem__("TS7", data["TS1"]))
    return (f"{d}/data_test_3dhp.npz: sequence 'TS7': unknown test sequence (expected one of TS1, TS2, TS3, "
            "TS4, TS5, TS6)", True)


MPI_CASES = [_3dhp_missing_test, _3dhp_missing_train, _3dhp_truncated, _3dhp_frames, _3dhp_nan_3d, _3dhp_inf_2d,
             _3dhp_joints, _3dhp_valid_length, _3dhp_unknown_sequence]


@pytest.mark.parametrize("case", MPI_CASES, ids=[c.__name__.strip("_") for c in MPI_CASES])
def test_bad_3dhp_folder(case, mpi, tmp_path):
    expected, in_check = case(mpi)
    out = tmp_path / "runs"
    line = one_line_error(invoke(*_train_args(mpi, out, "--benchmark", "3dhp")))
    assert line == f"error: {expected}", line
    assert no_training(out)
    r = invoke("data", "check", "--benchmark", "3dhp", "--data-root", mpi)
    assert "Traceback" not in r.output
    if in_check:
        assert r.exit_code == 1, r.output
        assert f"  - {expected}" in r.stderr, r.stderr


# ----------------------------------------------------------------------------- names and options
def _profiles() -> str:
    return ", ".join(sorted(load_profiles()))


@pytest.mark.parametrize("args, expected", [
    (("train", "--profile", "huge"), "--profile: unknown profile 'huge'; valid: {profiles}"),
    (("train", "--device", "tpu"), "--device 'tpu': must be one of auto, cpu, cuda"),  # as bench and eval say
    (("ablate", "--plan", "--benchmarks", "h36m,h37m"), "--benchmarks: unknown benchmark 'h37m'; valid: h36m, 3dhp"),
    (("ablate", "--plan", "--variants", "full,nope"), "--variants: unknown variant 'nope'; valid: baseline, "
                                                     "cce, cag, full"),
    (("ablate", "--plan", "--noises", "gmm,laplace"),
     "--noises: unknown noise 'laplace'; valid: gaussian, gmm, kernels"),
    (("ablate", "--plan", "--profile", "huge"), "--profile: unknown profile 'huge'; valid: {profiles}"),
    (("ablate", "--plan", "--profile", "smoke", "--shard", "5/2"), "--shard: need 0 <= i < n, got '5/2'"),
    (("ablate", "--plan", "--profile", "smoke", "--shard", "1/0"), "--shard: need 0 <= i < n, got '1/0'"),
    (("ablate", "--plan", "--profile", "smoke", "--shard", "a/b"), "--shard: expected i/n with integers (e.g. 0/4), "
                                                                   "got 'a/b'"),
    (("ablate", "--plan", "--seeds", "0,x"), "--seeds: expected comma-separated integers, got '0,x'"),
    (("ablate", "--plan", "--variants", " , "), "--variants: empty list"),
    (("ablate", "--plan", "--profile", "smoke", "--variants", "full,full"),
     "the grid has duplicate runs (repeated variant, noise, benchmark or seed)"),
    (("train", "--keypoints", "../x", "--data-root", "{h36m}", "--out", "{out}"),
     "keypoints '../x': expected a name like gt, cpn_ft_h36m_dbb or sh_pt_mpii"),
    (("data", "check", "--data-root", "{missing}"), "--data-root {missing}: folder not found"),
    (("train", "--data-root", "{missing}", "--profile", "smoke", "--out", "{out}"),
     "--data-root {missing}: folder not found"),
    (("eval", "{missing}"), "{missing}: run folder not found"),
    (("train", "--initial-3d", "{missing}", "--data-root", "{h36m}", "--profile", "smoke", "--device", "cpu",
      "--out", "{out}"), "{missing}: file not found"),
])
def test_bad_names_and_values(args, expected, h36m, tmp_path):
    fill = dict(profiles=_profiles(), missing=tmp_path / "nowhere", h36m=h36m, out=tmp_path / "runs")
    line = one_line_error(invoke(*[a.format(**fill) for a in args]))
    assert line == "error: " + expected.format(**fill)


@pytest.mark.parametrize("args, option, problem", [
    (("train", "--epochs", "-1"), "--epochs", "Input should be greater than or equal to 0"),
    (("ablate", "--epochs", "-5"), "--epochs", "Input should be greater than or equal to 0"),
    (("train", "--hypotheses", "0"), "--hypotheses", "Input should be greater than or equal to 1"),
    (("train", "--seed", "-1"), "--seed", "Input should be greater than or equal to 0"),
    (("train", "--benchmark", "h37m"), "--benchmark", "'h37m' is not one of 'h36m', '3dhp'"),
    (("data", "check", "--benchmark", "mpii"), "--benchmark", "'mpii' is not one of 'h36m', '3dhp'"),
    (("train", "--variant", "nope"), "--variant", "'nope' is not one of 'baseline', 'cce', 'cag', 'full'"),
    (("train", "--noise", "laplace"), "--noise", "'laplace' is not one of 'gaussian', 'gmm', 'kernels'"),
    (("train", "--precision", "fp8"), "--precision", "'fp8' is not one of 'fp32', 'bf16'"),
    (("train", "--epochs", "two"), "--epochs", "Input should be a valid integer, unable to parse string as an integer"),
])
def test_out_of_range_options_are_usage_errors(args, option, problem):
    """Typer checks types, ranges and choices itself: exit 2, a short usage block naming the option, no
    traceback."""
    r = invoke(*args)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", r.stderr).split())
    assert f"Invalid value for '{option}':" in text, text
    assert problem in text, text


def test_debug_shows_the_traceback():
    r = invoke("--debug", "ablate", "--plan", "--variants", "nope")
    assert isinstance(r.exception, ConfigError)
    assert str(r.exception) == "--variants: unknown variant 'nope'; valid: baseline, cce, cag, full"


# ------------------------------------------------------------------------------------------- YAML
@pytest.mark.parametrize("text, expected", [
    ("profiles:\n  smoke:\n    epochs: [1, 2\n",
     "{path}: malformed YAML at line 4, column 1: expected ',' or ']', but got '<stream end>'"),
    ("profiles:\n  smoke:\n\tepochs: 3\n",
     "{path}: malformed YAML at line 3, column 1: found character '\\t' that cannot start any token"),
    ("profiles:\n  smoke:\n    epoch: 3\n",
     "{path}: profile 'smoke': unknown config key 'epoch'; valid keys: variant, "),
    ("profiles:\n  smoke:\n    epochs: many\n",
     "{path}: profile 'smoke': 'epochs' has an invalid value 'many' (expected int)"),
    ("profiles:\n  smoke:\n    epochs: -3\n", "{path}: profile 'smoke': 'epochs' must be >= 0 (got -3)"),
    ("profiles:\n  smoke:\n    hid_dim: 30\n    n_head: 4\n",
     "{path}: profile 'smoke': 'hid_dim' must be a multiple of n_head (4) (got 30)"),
    ("profiles:\n  smoke: [3]\n", "{path}: profile 'smoke' must be a mapping"),
    ("- smoke\n- quick\n", "{path}: expected a mapping with a 'profiles' key"),
    (None, "{path}: file not found"),
])
def test_bad_profiles_yaml(text, expected, tmp_path, monkeypatch):
    """profiles.yaml is read from harness.config.CONFIG_DIR: point it at a folder with a bad file."""
    import harness.config

    path = tmp_path / "profiles.yaml"
    if text is not None:
        path.write_text(text)
    monkeypatch.setattr(harness.config, "CONFIG_DIR", tmp_path)
    line = one_line_error(invoke("train", "--profile", "smoke", "--device", "cpu", "--out", tmp_path / "runs"))
    assert line.startswith("error: " + expected.format(path=path)), line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("text, expected", [
    ("variants:\n  full: {cce: true, cag: true\nnoises: {}\n", "{path}: malformed YAML at line 3, column 7: "),
    ("variants:\n  extra: {cce: true, cca: true}\nnoises: {gaussian: g}\n",
     "{path}: variant 'extra' has unknown key 'cca'; valid: cce, cag, description"),
    ("variants:\n  extra: 3\nnoises: {gaussian: g}\n", "{path}: variant 'extra' must be a mapping"),
    ("variants:\n  extra: {cce: true}\n", "{path}: expected mappings 'variants' and 'noises'"),
])
def test_bad_variants_yaml(text, expected, tmp_path):
    """variants.yaml is read at import; its loader is called with the bad file."""
    from harness.variants import VARIANTS, load_variants

    before = VARIANTS.names()
    path = tmp_path / "variants.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as ei:
        load_variants(path)
    msg = str(ei.value)
    assert msg.startswith(expected.format(path=path)) and "\n" not in msg, msg
    assert VARIANTS.names() == before  # nothing half-registered


# -------------------------------------------------------------------------- run folders and checkpoints
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, harness_cache, small_data):
    """A finished tiny run on the small H36M (the real CLI in a subprocess)."""
    out = tmp_path_factory.mktemp("finished")
    r = tiny_cli.run(harness_cache, "train", "--profile", "tiny", "--device", "cpu", "--data-root", small_data / "h36m",
                     "--out", out)
    assert r.returncode == 0, r.stdout + r.stderr
    (run_dir,) = [p for p in out.iterdir() if p.name.startswith("h36m-full-gaussian-")]
    assert (run_dir / "metrics.json").is_file()
    return run_dir


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A copy of the finished run beside it (so its shared lifter is found); removed afterwards."""
    d = finished_run.parent / f"copy-{tmp_path.name}"
    shutil.copytree(finished_run, d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _edit_checkpoint(fn):
    def edit(d):
        st = torch.load(d / "checkpoint.pt", map_location="cpu", weights_only=True)
        fn(st)
        torch.save(st, d / "checkpoint.pt")
    return edit


def _edit_config(fn):
    def edit(d):
        cfg = json.loads((d / "config.json").read_text())
        fn(cfg)
        (d / "config.json").write_text(json.dumps(cfg))
    return edit


def _lifter_checkpoint(d):
    (lifter,) = (d.parent / "shared").glob("lifter-*/checkpoint.pt")
    shutil.copy(lifter, d / "checkpoint.pt")


@pytest.mark.parametrize("edit, expected", [
    (_edit_checkpoint(lambda st: st["config"].update(variant="baseline")),
     "{ck}: checkpoint was trained with variant='baseline', this run has variant='full'"),
    (_edit_checkpoint(lambda st: st["config"].update(hid_dim=32)),
     "{ck}: checkpoint was trained with hid_dim=32, this run has hid_dim=16"),
    (_edit_checkpoint(lambda st: st.update(format=2)),
     "{ck}: checkpoint format 2 is not 1 (written by another harness version)"),
    (_edit_checkpoint(lambda st: st.pop("format")),
     "{ck}: checkpoint format None is not 1 (written by another harness version)"),
    (lambda d: torch.save([1, 2, 3], d / "checkpoint.pt"),
     "{ck}: checkpoint format ? is not 1 (written by another harness version)"),
    (_lifter_checkpoint, "{ck}: checkpoint holds a 'lifter', expected a 'denoiser'"),
    (_edit_checkpoint(lambda st: st.update(epoch=0)),
     "{ck}: training stopped at epoch 1 of 4; rerun `harness train` to finish it"),
    (lambda d: truncate(d / "checkpoint.pt"),
     "{ck}: unreadable or unsafe checkpoint (PytorchStreamReader failed reading zip archive: failed finding "
     "central directory)"),
    (lambda d: (d / "checkpoint.pt").unlink(), "{ck}: checkpoint not found"),
    (_edit_config(lambda c: c.update(foo=1)), "{d}/config.json: unknown config key 'foo'; valid keys: variant, "),
    (_edit_config(lambda c: c.update(variant="nope")),
     "{d}/config.json: variant: unknown variant 'nope'; valid: baseline, cce, cag, full"),
    (_edit_config(lambda c: c.update(epochs=-2)), "{d}/config.json: 'epochs' must be >= 0 (got -2)"),
    (lambda d: (d / "config.json").write_text("{not json"),
     "{d}/config.json: not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    (lambda d: (d / "config.json").unlink(), "{d}/config.json: file not found"),
])
def test_eval_refuses_altered_run(edit, expected, run_copy):
    before = (run_copy / "metrics.json").read_bytes()
    edit(run_copy)
    line = one_line_error(invoke("eval", run_copy, "--device", "cpu"))
    assert line.startswith("error: " + expected.format(ck=run_copy / "checkpoint.pt", d=run_copy)), line
    assert (run_copy / "metrics.json").read_bytes() == before  # nothing overwritten


# ---------------------------------------------------------------------------------- crafted pickles
class _System:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class _Exec:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


# (payload, the global as the npz reader names it, as torch's weights-only loader names it)
PAYLOADS = [pytest.param(_System, f"{os.system.__module__}.system", f"{os.system.__module__}.system", id="os.system"),
            pytest.param(_Exec, "builtins.exec", "exec", id="exec")]


def _evil_2d(path: Path, payload) -> None:
    """A VideoPose3D-looking GT 2D file whose positions_2d pickle hides the payload."""
    pos = {"S1": {"Directions": [np.zeros((8, 17, 2), np.float32), payload]}}
    meta = {"layout_name": "h36m", "num_joints": 17,
            "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    np.savez_compressed(path, positions_2d=np.array(pos, dtype=object), metadata=np.array(meta, dtype=object))


@pytest.mark.parametrize("payload_cls, global_name, _", PAYLOADS)
def test_crafted_pickle_in_data_files_is_refused(payload_cls, global_name, _, h36m, tmp_path):
    marker = tmp_path / "marker"
    gt = h36m / "data_2d_h36m_gt.npz"
    _evil_2d(gt, payload_cls(marker))
    refused = (f"refused to unpickle '{global_name}': only numpy arrays, dicts, lists, tuples, strings and numbers "
               "are allowed")
    out = tmp_path / "runs"
    line = one_line_error(invoke(*_train_args(h36m, out)))  # keypoints gt: reads data_2d_h36m_gt.npz
    assert line == f"error: {gt}[positions_2d]: {refused}"
    r = invoke("data", "check", "--data-root", h36m)
    assert r.exit_code == 1 and f"  - {gt}[positions_2d]: {refused}" in r.stderr, r.output
    # the same payload as the 3D file (data prepare) and as the user's own initial 3D (--initial-3d)
    p3 = h36m / "data_3d_h36m.npz"
    shutil.copy(p3, tmp_path / "good_3d.npz")
    np.savez_compressed(p3, positions_3d=np.array({"S1": {"Walking": payload_cls(marker)}}, dtype=object))
    line = one_line_error(invoke("data", "prepare", "--data-root", h36m, "--out", tmp_path / "prep"))
    assert line == f"error: {p3}[positions_3d]: {refused}"
    shutil.copy(tmp_path / "good_3d.npz", p3)
    gt.unlink()
    mine = tmp_path / "mine.npz"
    np.savez_compressed(mine, positions_3d=np.array({"S9": {"Walking": [payload_cls(marker)]}}, dtype=object))
    line = one_line_error(invoke(*_train_args(h36m, out, "--initial-3d", mine)))
    assert line == f"error: {mine}[positions_3d]: {refused}"
    assert not marker.exists()  # the payload never ran
    assert no_training(out)


@pytest.mark.parametrize("payload_cls, _, global_name", PAYLOADS)
def test_crafted_pickle_in_checkpoints_is_refused(payload_cls, _, global_name, run_copy, h36m, tmp_path):
    marker = tmp_path / "marker"
    evil = {"format": 1, "kind": "denoiser", "epoch": 3, "model": payload_cls(marker)}
    torch.save(evil, run_copy / "checkpoint.pt")
    ck = run_copy / "checkpoint.pt"
    refused = f"unsafe checkpoint, refused to unpickle '{global_name}' (only tensors and plain data are allowed)"
    assert one_line_error(invoke("eval", run_copy, "--device", "cpu")) == f"error: {ck}: {refused}"
    # a shared lifter checkpoint that `harness train` would resume from
    from harness.config import resolve_config
    from harness.runs import lifter_dir

    out = tmp_path / "runs"
    cfg = resolve_config("smoke", {"data_root": str(h36m), "device": "cpu"})
    lck = lifter_dir(cfg, out) / "checkpoint.pt"
    lck.parent.mkdir(parents=True)
    torch.save(dict(evil, kind="lifter"), lck)
    line = one_line_error(invoke("train", "--data-root", h36m, "--profile", "smoke", "--device", "cpu", "--out", out))
    assert line == f"error: {lck}: {refused}"
    assert not marker.exists()
    assert not (lifter_dir(cfg, out) / "predictions.npz").exists()
    # control: the unrestricted loader does run the payload, so the refusal above is what stops it
    torch.load(ck, map_location="cpu", weights_only=False)
    assert marker.exists()


# --------------------------------------------------------------------------- the results folder
def test_results_folder_that_cannot_be_created(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder\n")
    for cmd in (["train", "--profile", "smoke", "--device", "cpu"],
                ["ablate", "--profile", "smoke", "--device", "cpu", "--benchmarks", "h36m", "--variants", "baseline",
                 "--noises", "gaussian"]):
        line = one_line_error(invoke(*cmd, "--out", a_file / "sub"))
        assert line == f"error: {a_file}/sub: cannot create the results folder (Not a directory)"
        line = one_line_error(invoke(*cmd, "--out", a_file))
        assert line == f"error: {a_file}: cannot create the results folder (File exists)"
    line = one_line_error(invoke("data", "synth", "--benchmark", "h36m", "--out", a_file))
    assert line == f"error: {a_file}: File exists"
    line = one_line_error(invoke("data", "synth", "--benchmark", "3dhp", "--out", a_file / "sub"))
    assert line == f"error: {a_file}/sub: Not a directory"
    assert a_file.read_text() == "not a folder\n"


def test_full_disk_is_reported_before_training(tmp_path, monkeypatch):
    import shutil as shutil_mod
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_mod, "disk_usage", lambda p: usage(10**12, 10**12 - 50 * 10**6, 50 * 10**6))
    for cmd in (["train", "--profile", "smoke", "--device", "cpu"],
                ["ablate", "--profile", "smoke", "--device", "cpu", "--benchmarks", "h36m", "--variants", "baseline",
                 "--noises", "gaussian"]):
        out = tmp_path / cmd[0]
        line = one_line_error(invoke(*cmd, "--out", out))
        assert line == f"error: {out}: only 50 MB free on its disk; need at least 200 MB"
        assert not out.exists()  # nothing started; the refused command removed the folder it had created


def test_unwritable_results_folder_is_reported_before_training(tmp_path, monkeypatch):
    """Running as root, permissions do not stop writes; a read-only file system is simulated."""
    import errno
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", read_only)
    out = tmp_path / "runs"
    line = one_line_error(invoke("train", "--profile", "smoke", "--device", "cpu", "--out", out))
    assert line == f"error: {out}: results folder is not writable (Read-only file system)"
    assert not out.exists()  # the refused command removed the folder it had created
