"""The same option gets the same checks in every command (harness.guards), before anything is created:
a bad value is one line, the same in train, ablate, eval and bench, exit code 2, no traceback, and no
new file or folder; a typo in a fixed choice (an Enum option) is Typer's usage error, before the
command runs, and writes nothing either. ``--out`` is never inside a data folder; ``data synth`` never writes over real data;
a command refused before any result removes the results folder it created."""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import DataError

runner = CliRunner()


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (hidden ones included) with a file's bytes."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(root.rglob("*"))}


def _one_line(result) -> str:
    text = result.output.strip()
    assert "Traceback" not in text, text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    return lines[0].removeprefix("error: ")


@pytest.fixture
def world(tmp_path, harness_cache):
    """tmp_path with a data folder (one data file), a link to it, and a plain file."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "data_3d_h36m.npz").write_bytes(b"real data")
    (tmp_path / "link").symlink_to(data, target_is_directory=True)
    (tmp_path / "afile").write_text("x")
    return tmp_path


def _profiles() -> str:
    from harness.config import load_profiles

    return ", ".join(sorted(load_profiles()))


# option -> (arguments, the one line; {t} is tmp_path resolved, {p} the profiles)
BAD = {
    "device": (["--device", "tpu"], "--device 'tpu': must be one of auto, cpu, cuda"),
    "cuda": (["--device", "cuda"], "--device cuda: CUDA is not available on this machine (use --device auto or cpu)"),
    "cuda-index": (["--device", "cuda:x"], "--device 'cuda:x': must be one of auto, cpu, cuda"),
    "profile": (["--profile", "huge"], "--profile: unknown profile 'huge'; valid: {p}"),
    "profiles-missing": (["--profiles", "{t}/missing.yaml"], "{t}/missing.yaml: file not found"),
    "profiles-bad": (["--profiles", "{t}/afile"], "{t}/afile: expected a mapping with a 'profiles' key"),
    "set-type": (["--set", "lr=fast"], "--set: 'lr' has an invalid value 'fast' (expected float)"),
    "set-range": (["--set", "lr=-1"], "--set: 'lr' must be > 0 (got -1.0)"),
    "set-form": (["--set", "lr"], "--set 'lr': expected key=value (e.g. --set lr=2e-4)"),
    "keypoints": (["--keypoints", "../x"], "keypoints '../x': expected a name like gt, cpn_ft_h36m_dbb or sh_pt_mpii"),
    "data-root": (["--data-root", "{t}/missing"], "--data-root {t}/missing: folder not found"),
    "data-root-file": (["--data-root", "{t}/afile"], "--data-root {t}/afile: not a folder"),
    "out-file": (["--out", "{t}/afile"], "{t}/afile: cannot create the results folder (File exists)"),
    "out-under-file": (["--out", "{t}/afile/sub"], "{t}/afile/sub: cannot create the results folder (Not a directory)"),
    "out-in-data": (["--data-root", "{t}/data", "--out", "{t}/data/runs"],
                    "--out {t}/data/runs: inside the data folder {t}/data (--data-root {t}/data); write results elsewhere"),
    "out-is-data": (["--data-root", "{t}/data", "--out", "{t}/data"],
                    "--out {t}/data: inside the data folder {t}/data (--data-root {t}/data); write results elsewhere"),
    "out-via-link": (["--data-root", "{t}/link", "--out", "{t}/data/runs"],
                     "--out {t}/data/runs: inside the data folder {t}/data (--data-root {t}/link); write results elsewhere"),
    "hypotheses": (["--hypotheses", "0,1"], "--hypotheses 0: must be an integer >= 1"),  # bench's list
    "variants": (["--variants", "full,nope"], "--variants: unknown variant 'nope'; valid: baseline, cce, cag, full"),
    "impl": (["--impl", "fast,slow"], "--impl: unknown implementation 'slow'; valid: fast, reference, compiled"),
}
# (--seed, --epochs and train's --hypotheses are integers Typer range-checks itself: its usage block,
# the same in every command; tests/e2e/test_reliability.py::test_out_of_range_options_are_usage_errors)
DEVICE = ["device", "cuda", "cuda-index"]
OUT = ["out-file", "out-under-file"]
DATA = ["data-root", "data-root-file", "out-in-data", "out-is-data", "out-via-link"]
PROFILES = ["profile", "profiles-missing", "profiles-bad", "set-type", "set-range", "set-form"]
COMMANDS = {  # the command, and the options it has (string-valued ones: the Enum options are below)
    "train": (["train"], DEVICE + PROFILES + ["keypoints"] + OUT + DATA),
    "ablate": (["ablate", "--jobs", "1"], DEVICE + PROFILES + ["keypoints", "variants"] + OUT + DATA),
    "eval": (["eval", "{t}/no-run"], DEVICE),
    "bench": (["bench"], DEVICE + ["hypotheses", "variants", "impl"] + OUT),
    "import-weights": (["import-weights", "--denoiser", "{t}/afile"], ["keypoints"] + OUT + DATA),
}
CASES = [(cmd, opt) for cmd, (_, opts) in COMMANDS.items() for opt in opts]


@pytest.mark.parametrize("cmd, opt", CASES, ids=[f"{c}-{o}" for c, o in CASES])
def test_a_bad_option_is_one_line_and_writes_nothing(world, cmd, opt):
    if opt == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    t = str(world.resolve())
    fill = lambda s: s.format(t=t, p=_profiles() if "{p}" in s else "")  # noqa: E731
    base, _ = COMMANDS[cmd]
    args, line = BAD[opt]
    argv = [fill(a) for a in base + args]
    if "--out" not in argv and cmd != "eval":
        argv += ["--out", f"{t}/new"]  # a results folder that must not appear
    before = _tree(world)
    r = runner.invoke(app, argv)
    assert r.exit_code == 2, r.output
    assert _one_line(r) == fill(line)
    assert _tree(world) == before


# command -> (base arguments, option, a typo, the valid choices as Typer lists them)
CHOICES = [
    (["train"], "--variant", "nope", "'baseline', 'cce', 'cag', 'full'"),
    (["train"], "--noise", "laplace", "'gaussian', 'gmm', 'kernels'"),
    (["train"], "--benchmark", "h37m", "'h36m', '3dhp'"),
    (["train"], "--train-on", "coco", "'h36m', '3dhp'"),
    (["train"], "--precision", "fp8", "'fp32', 'bf16'"),
    (["train"], "--recipe", "nope", "'harness', 'released', 'diffpose'"),
    (["ablate", "--jobs", "1"], "--recipe", "paper", "'harness', 'released', 'diffpose'"),
    (["ablate", "--jobs", "1"], "--train-on", "h37m", "'h36m', '3dhp'"),
    (["eval", "{t}/no-run"], "--precision", "fp16", "'fp32', 'bf16'"),
    (["bench"], "--precision", "fp8", "'fp32', 'bf16'"),
    (["import-weights", "--denoiser", "{t}/afile"], "--format", "torch", "'monomotiondiff', 'diffpose'"),
    (["data", "synth", "--out", "{t}/new"], "--benchmark", "coco", "'h36m', '3dhp'"),
    (["data", "check"], "--benchmark", "mpii", "'h36m', '3dhp'"),
]


@pytest.mark.parametrize("base, option, typo, valid", CHOICES, ids=[f"{' '.join(c[0][:2])}{c[1]}" for c in CHOICES])
def test_a_typo_in_a_choice_is_a_usage_error_and_writes_nothing(world, base, option, typo, valid):
    t = str(world.resolve())
    argv = [a.format(t=t) for a in base] + [option, typo] + ([] if base[0] in ("eval", "data") else ["--out", f"{t}/new"])
    before = _tree(world)
    r = runner.invoke(app, argv)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", r.output).split())
    assert f"Invalid value for '{option}': Value error, '{typo}' is not one of {valid}." in text, text
    assert _tree(world) == before


def test_ablate_lists_are_checked_like_the_single_options(world):
    t = str(world.resolve())
    for args, line in ((["--variants", "full,nope"], "--variants: unknown variant 'nope'; valid: baseline, cce, cag, full"),
                       (["--noises", "laplace"], "--noises: unknown noise 'laplace'; valid: gaussian, gmm, kernels"),
                       (["--benchmarks", "h36m,coco"], "--benchmarks: unknown benchmark 'coco'; valid: h36m, 3dhp"),
                       (["--seeds", "0,-1"], "--seeds -1: must be an integer >= 0"),
                       (["--seeds", "0,x"], "--seeds: expected comma-separated integers, got '0,x'")):
        before = _tree(world)
        r = runner.invoke(app, ["ablate", "--jobs", "1", "--out", f"{t}/new", *args])
        assert r.exit_code == 2 and _one_line(r) == line
        assert _tree(world) == before


# ----------------------------------------------------------------------------------- data commands
def test_data_gmm_and_prepare_outputs(world):
    t = str(world.resolve())
    (world / "data" / "data_2d_h36m_cpn.npz").write_bytes(b"detections")
    before = _tree(world)
    for argv, line in (
            (["data", "gmm", "--data-root", f"{t}/data", "--keypoints", "cpn", "--out", f"{t}/data/data_2d_h36m_cpn.npz"],
             f"--out {t}/data/data_2d_h36m_cpn.npz: is the input data file {t}/data/data_2d_h36m_cpn.npz; "
             "give another file name"),
            (["data", "gmm", "--data-root", f"{t}/link", "--keypoints", "cpn", "--out", f"{t}/data/data_3d_h36m.npz"],
             f"--out {t}/data/data_3d_h36m.npz: is the input data file {t}/link/data_3d_h36m.npz; give another file name"),
            (["data", "gmm", "--data-root", f"{t}/data", "--keypoints", "cpn", "--out", f"{t}/data"],
             f"--out {t}/data: is a folder; give a file name"),
            (["data", "gmm", "--data-root", f"{t}/missing", "--keypoints", "cpn", "--out", f"{t}/x.npz"],
             f"--data-root {t}/missing: folder not found"),
            (["data", "prepare", "--data-root", f"{t}/data", "--out", f"{t}/afile"],
             f"{t}/afile: cannot create the output folder (File exists)")):
        r = runner.invoke(app, argv)
        assert r.exit_code == 2, r.output
        assert _one_line(r) == line
        assert _tree(world) == before


@pytest.mark.parametrize("files, bench, shown", [
    (["data_3d_h36m.npz", "cameras.h5"], "h36m", "cameras.h5"),
    (["data_2d_h36m_cpn_ft_h36m_dbb.npz", "README"], "h36m", "data_2d_h36m_cpn_ft_h36m_dbb.npz"),
    (["data_test_3dhp.npz"], "3dhp", "data_test_3dhp.npz"),
    (["data_train_3dhp.npz"], "h36m", "data_train_3dhp.npz"),        # any benchmark's data counts
    (["h36m/data_3d_h36m.npz"], "h36m", "h36m/data_3d_h36m.npz"),     # a data root of h36m/ and 3dhp/
    (["3dhp/data_test_3dhp.npz"], "3dhp", "3dhp/data_test_3dhp.npz"),
])
def test_synth_refuses_a_folder_of_real_data(tmp_path, files, bench, shown):
    out = tmp_path / "real"
    for f in files:
        (out / f).parent.mkdir(parents=True, exist_ok=True)
        (out / f).write_bytes(b"licensed " + f.encode())
    before = _tree(tmp_path)
    r = runner.invoke(app, ["data", "synth", "--benchmark", bench, "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert _one_line(r) == (f"{out}: holds {shown} and no SYNTHETIC marker (real data?); refusing to write a "
                            "synthetic benchmark into it, choose another folder")
    assert _tree(tmp_path) == before
    link = tmp_path / "link"  # through a symlink too
    link.symlink_to(out, target_is_directory=True)
    r = runner.invoke(app, ["data", "synth", "--benchmark", bench, "--out", str(link)])
    assert r.exit_code == 2 and "no SYNTHETIC marker" in _one_line(r)


def test_synth_rewrites_a_synthetic_folder(tmp_path):
    from harness.data.synth import check_synth_target, synth_3dhp

    out = tmp_path / "synth"
    synth_3dhp(out, test_frames=8, train_frames=8, train_subjects=1, train_seqs=1, train_cameras=1)
    synth_3dhp(out, seed=1, test_frames=8, train=False)  # marked SYNTHETIC: allowed
    assert "seed 1" in (out / "SYNTHETIC").read_text()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not data")
    check_synth_target(tmp_path / "other")  # no data files: allowed
    check_synth_target(tmp_path / "absent")
    (out / "SYNTHETIC").unlink()
    with pytest.raises(DataError, match=r"holds data_test_3dhp\.npz and no SYNTHETIC marker"):
        synth_3dhp(out, test_frames=8, train=False)


# ------------------------------------------------------------------------------ nothing left behind
def _fake_run(tmp_files: dict[str, bytes], hold: list | None = None):
    def run(cfg, out, progress=None, **kw):
        run_dir = Path(out) / "h36m-full-gaussian-seed0-x"
        run_dir.mkdir(parents=True)
        for name, data in tmp_files.items():
            (run_dir / name).write_bytes(data)
        if hold is not None:  # another process's lock on the run folder
            fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT)
            fcntl.flock(fd, fcntl.LOCK_EX)
            hold.append(fd)
        raise DataError(f"{run_dir}: refused")
    return run


@pytest.mark.parametrize("files, kept", [
    ({"config.json": b"{}", "identity.json": b"{}", ".lock": b"", ".metrics.json.abc.json": b"{",
      "train.log": b"2020-01-01 00:00:00  error: refused\n"}, False),
    ({"config.json": b"{}", "checkpoint.pt": b"weights"}, True),  # a result exists: kept
])
def test_train_refused_before_any_result_removes_its_new_folder(tmp_path, monkeypatch, harness_cache, files, kept):
    import harness.pipeline

    monkeypatch.setattr(harness.pipeline, "run", _fake_run(files))
    out = tmp_path / "new" / "runs"
    r = runner.invoke(app, ["train", "--device", "cpu", "--out", str(out)])
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1].endswith(": refused"), r.output
    assert (tmp_path / "new").exists() is kept
    if kept:
        assert (out / "h36m-full-gaussian-seed0-x" / "checkpoint.pt").read_bytes() == b"weights"


def test_existing_or_busy_folders_are_never_removed(tmp_path, monkeypatch, harness_cache):
    import harness.pipeline

    out = tmp_path / "existing"
    out.mkdir()
    monkeypatch.setattr(harness.pipeline, "run", _fake_run({"config.json": b"{}"}))
    assert runner.invoke(app, ["train", "--device", "cpu", "--out", str(out)]).exit_code == 2
    assert (out / "h36m-full-gaussian-seed0-x" / "config.json").exists()  # it existed before: untouched
    held: list[int] = []
    monkeypatch.setattr(harness.pipeline, "run", _fake_run({"config.json": b"{}"}, hold=held))
    try:
        assert runner.invoke(app, ["train", "--device", "cpu", "--out", str(tmp_path / "busy")]).exit_code == 2
        assert (tmp_path / "busy" / "h36m-full-gaussian-seed0-x" / ".lock").exists()  # a held lock: kept
    finally:
        for fd in held:
            os.close(fd)
