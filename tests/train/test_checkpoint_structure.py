"""harness.train.checkpoint: a checkpoint's structure (entries, types, finite values, shapes) is checked
when it is loaded, so a damaged one is one DataError line naming the file and the entry, never a
KeyError / RuntimeError / LinAlgError traceback (the NaN case used to fail only after a whole evaluation).

The module builds one tiny run folder the way harness.train.loop writes one (the same entries, from the
tiny test profile's models after one optimizer step; no data is loaded); each test mutates a copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from harness.errors import DataError
from harness.train.checkpoint import check_state_shapes, load_checkpoint
from tests.test_pipeline import tiny_cfg  # noqa: F401  (the shared tiny config)


def _loop_like_checkpoints(cfg, out: Path) -> Path:
    """``<out>/run/{config,metrics}.json`` and ``checkpoint.pt`` (denoiser), ``<out>/shared/lifter-tiny/
    checkpoint.pt`` (lifter), with the entries train_denoiser / train_lifter save; returns the run folder."""
    from harness import __version__
    from harness.lifter import build_lifter_for
    from harness.noise import GaussianNoise
    from harness.pipeline import build_denoiser_for
    from harness.safeio import write_json
    from harness.train.checkpoint import CHECKPOINT_FORMAT, rng_state, save_checkpoint
    from harness.train.step import DenoiserStep

    torch.manual_seed(0)
    cpu, gen, noise = torch.device("cpu"), torch.Generator().manual_seed(1), GaussianNoise()
    model = build_denoiser_for(cfg)
    step = DenoiserStep.build(cfg, model, noise, 17, cpu)
    from harness.models.fast import ops

    saved = ops.NATIVE, ops.NATIVE_ATTENTION
    ops.NATIVE = ops.NATIVE_ATTENTION = False  # one step on the torch ops: no C++ build in a fresh cache
    try:
        step(torch.randn(8, 17, 2, generator=gen), torch.randn(8, 17, 3, generator=gen), gen)  # optimizer state
    finally:
        ops.NATIVE, ops.NATIVE_ATTENTION = saved
    sched = torch.optim.lr_scheduler.StepLR(step.opt, step_size=cfg.lr_decay_every, gamma=cfg.lr_gamma)
    run_dir = out / "run"  # (no run_name(): its identity would build the kernels and the data)
    save_checkpoint(run_dir / "checkpoint.pt", {
        "format": CHECKPOINT_FORMAT, "kind": "denoiser", "version": __version__, "config": cfg.to_dict(),
        "epoch": cfg.epochs - 1, "model": model.state_dict(), "ema": step.ema.state_dict(),
        "ema_updates": step.ema.num_updates, "optimizer": step.opt.state_dict(), "scheduler": sched.state_dict(),
        "rng": rng_state(gen), "noise": noise.to_dict()})
    write_json(run_dir / "config.json", cfg.to_dict())
    write_json(run_dir / "metrics.json", {"run": run_dir.name, "metrics": {"diffusion": {"p1": {"Avg": 1.0}}}})
    lifter = build_lifter_for(cfg)
    opt = torch.optim.Adam(lifter.parameters(), lr=cfg.lifter_lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.1 ** (1.0 / max(cfg.lifter_epochs, 1)))
    save_checkpoint(out / "shared" / "lifter-tiny" / "checkpoint.pt", {
        "format": CHECKPOINT_FORMAT, "kind": "lifter", "version": __version__, "config": cfg.to_dict(),
        "epoch": cfg.lifter_epochs - 1, "model": lifter.state_dict(), "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(), "rng": rng_state(gen)})
    return run_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_cfg):  # noqa: F811
    """``(out, run_dir, cfg)``: the tiny run folder, built once."""
    out = tmp_path_factory.mktemp("ckpt-run")
    cfg = tiny_cfg.replace(epochs=1)
    return out, _loop_like_checkpoints(cfg, out), cfg


def _copy_run(trained, tmp_path: Path) -> Path:
    _, run_dir, _ = trained
    dst = tmp_path / run_dir.name
    shutil.copytree(run_dir, dst)
    return dst


def _mutated(trained, tmp_path: Path, mutate) -> Path:
    run_dir = _copy_run(trained, tmp_path)
    ckpt = run_dir / "checkpoint.pt"
    st = torch.load(ckpt, map_location="cpu", weights_only=True)
    mutate(st)
    torch.save(st, ckpt)
    return ckpt


def _first_float_key(sd: dict) -> str:
    return next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)


def _poison(entry: str, val: float):
    def mutate(st):
        k = _first_float_key(st[entry])
        st[entry][k] = st[entry][k].clone()
        st[entry][k].view(-1)[0] = val
    return mutate


def _wrong_shape(entry: str):
    def mutate(st):
        k = _first_float_key(st[entry])
        st[entry][k] = torch.zeros(3, 5)
    return mutate


def _gmm_state(cov_sign: float) -> dict:
    """A GMMNoise.to_dict() of one component per joint, covariance ``cov_sign * I`` (-1: not positive definite)."""
    from harness.noise import CHANNELS

    eye = [[float(i == j) * cov_sign for j in range(5)] for i in range(5)]
    return {"name": "gmm", "channels": list(CHANNELS), "num_joints": 17, "n_components": [1] * 17,
            "weights": [[1.0]] * 17, "means": [[[0.0] * 5]] * 17, "covariances": [[eye]] * 17, "scale": 1.0}


def _imported(st: dict) -> None:
    for key in ("optimizer", "scheduler", "rng"):
        st.pop(key)
    st["imported"] = True


# (id, mutation, expected message after "<checkpoint>: "; {k} is the first float key of model/ema)
CASES = [
    ("no-ema", lambda st: st.pop("ema"), "denoiser checkpoint lacks its 'ema' entry"),
    ("no-noise", lambda st: st.pop("noise"), "denoiser checkpoint lacks its 'noise' entry"),
    ("no-model", lambda st: st.pop("model"), "denoiser checkpoint lacks its 'model' entry"),
    ("no-optimizer", lambda st: st.pop("optimizer"), "denoiser checkpoint lacks its 'optimizer' entry"),
    ("nan-weight", _poison("model", float("nan")), "weight '{k}' holds NaN"),
    ("inf-ema", _poison("ema", float("inf")), "EMA weight '{k}' holds inf"),
    ("string-weight", lambda st: st["model"].__setitem__(_first_float_key(st["model"]), "oops"),
     "weight '{k}' is a str, not a tensor"),
    ("ema-shape", _wrong_shape("ema"), "EMA weight '{k}' has shape (3, 5), the model weights {shape}"),
    ("epoch-str", lambda st: st.__setitem__("epoch", "3"), "'epoch' must be an integer >= 0, got '3'"),
    ("epoch-negative", lambda st: st.__setitem__("epoch", -2), "'epoch' must be an integer >= 0, got -2"),
    ("rng-float", lambda st: st["rng"].__setitem__("torch", torch.zeros(4)),
     "'rng' entry 'torch' must be a uint8 tensor (an RNG state), got torch.float32"),
    ("noise-not-dict", lambda st: st.__setitem__("noise", [1, 2]),
     "noise entry: noise state: expected a dict, got list"),
    ("noise-unknown", lambda st: st.__setitem__("noise", {"name": "cauchy"}),
     "noise entry: noise state: unknown name 'cauchy' (valid: gaussian, gmm, kernels)"),
    ("noise-gmm-keys", lambda st: st.__setitem__("noise", {"name": "gmm"}),
     "noise entry: GMM noise state: needs 'weights', 'means' and 'covariances'"),
    ("noise-not-pd", lambda st: st.__setitem__("noise", _gmm_state(-1.0)),
     "noise entry: GMM noise: a covariance matrix is not positive definite"),
    ("noise-std-str", lambda st: st.__setitem__("noise", {"name": "gaussian", "std": "abc"}),
     "noise entry: gaussian noise state is malformed (ValueError: could not convert string to float: 'abc')"),
    ("noise-joints-str", lambda st: st.__setitem__("noise", {"name": "gaussian", "num_joints": "17"}),
     "noise entry: noise state: 'num_joints' must be a number, got str"),
]

# Model and EMA agree with each other but not with the model the config builds: load_checkpoint cannot
# tell, the check before load_state_dict (check_state_shapes, called by eval and resume) names the tensor.
BOTH_SHAPES = ("both-shapes", lambda st: (_wrong_shape("model")(st), _wrong_shape("ema")(st)),
               "EMA '{k}' has shape (3, 5), the model expects {shape}")


def _expected(ckpt: Path, trained, template: str) -> str:
    st = torch.load(trained[1] / "checkpoint.pt", map_location="cpu", weights_only=True)
    k_model, k_ema = _first_float_key(st["model"]), _first_float_key(st["ema"])
    k = k_ema if "EMA" in template else k_model
    return f"{ckpt}: " + template.format(k=k, shape=tuple(st["model"][k_ema].shape))


def test_the_trained_checkpoint_passes(trained):
    _, run_dir, cfg = trained
    st = load_checkpoint(run_dir / "checkpoint.pt", "denoiser", cfg.to_dict())
    assert {"model", "ema", "noise", "epoch", "optimizer", "scheduler", "rng"} <= set(st)
    lifter = next((trained[0] / "shared").glob("lifter-*")) / "checkpoint.pt"
    assert load_checkpoint(lifter, "lifter", cfg.to_dict())["epoch"] == cfg.lifter_epochs - 1


@pytest.mark.parametrize("mutate, template", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_load_checkpoint_names_the_damage(trained, tmp_path, mutate, template):
    ckpt = _mutated(trained, tmp_path, mutate)
    with pytest.raises(DataError) as e:
        load_checkpoint(ckpt, "denoiser", trained[2].to_dict())
    assert str(e.value) == _expected(ckpt, trained, template)


def test_lifter_checkpoint_needs_its_resume_state(trained, tmp_path):
    src = next((trained[0] / "shared").glob("lifter-*")) / "checkpoint.pt"
    st = torch.load(src, map_location="cpu", weights_only=True)
    del st["scheduler"]
    ckpt = tmp_path / "checkpoint.pt"
    torch.save(st, ckpt)
    with pytest.raises(DataError, match=r"^.*checkpoint\.pt: lifter checkpoint lacks its 'scheduler' entry$"):
        load_checkpoint(ckpt, "lifter", trained[2].to_dict())


def test_imported_checkpoint_needs_no_resume_state(trained, tmp_path):
    """harness.weights writes evaluation-only checkpoints (no optimizer/scheduler/rng; a lifter's epoch -1)."""
    ckpt = _mutated(trained, tmp_path, _imported)
    assert load_checkpoint(ckpt, "denoiser", trained[2].to_dict())["imported"] is True


def test_check_state_shapes(trained, tmp_path):
    from harness.pipeline import build_denoiser_for

    _, run_dir, cfg = trained
    ckpt = run_dir / "checkpoint.pt"
    model = build_denoiser_for(cfg)
    sd = dict(load_checkpoint(ckpt, "denoiser", cfg.to_dict())["ema"])
    check_state_shapes(ckpt, model, sd, "ema")  # the right shapes: no error
    k = _first_float_key(sd)
    want = tuple(sd[k].shape)
    bad = {**sd, k: torch.zeros(96, 96)}
    with pytest.raises(DataError) as e:
        check_state_shapes(ckpt, model, bad, "ema")
    assert str(e.value) == f"{ckpt}: ema '{k}' has shape (96, 96), the model expects {want}"
    missing = {key: v for key, v in sd.items() if key != k}
    with pytest.raises(DataError) as e:
        check_state_shapes(ckpt, model, missing, "model")
    assert str(e.value) == f"{ckpt}: model lacks '{k}', which the model has"
    with pytest.raises(DataError) as e:
        check_state_shapes(ckpt, model, {**sd, "extra.weight": torch.zeros(1)}, "model")
    assert str(e.value) == f"{ckpt}: model has 'extra.weight', which the model lacks"
    # a model of another size (hid_dim 32): the first differing tensor is named, not torch's RuntimeError
    other = build_denoiser_for(cfg.replace(hid_dim=32))
    with pytest.raises(DataError, match=r"has shape \(\d+(, \d+)*\), the model expects \(\d+(, \d+)*\)$"):
        check_state_shapes(ckpt, other, sd, "ema")


@pytest.mark.parametrize("case", ["no-ema", "no-noise", "ema-shape", "both-shapes", "nan-weight", "inf-ema",
                                  "string-weight", "noise-not-pd"])
def test_eval_refuses_a_damaged_checkpoint_in_one_line(trained, tmp_path, case):
    """``harness eval RUN``: exit code 2 (DataError's), one line, no traceback, the run's files unchanged."""
    from harness.cli import app

    _, mutate, template = next(c for c in CASES + [BOTH_SHAPES] if c[0] == case)
    ckpt = _mutated(trained, tmp_path, mutate)
    run_dir = ckpt.parent
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    r = CliRunner().invoke(app, ["eval", str(run_dir), "--device", "cpu"])
    assert r.exit_code == DataError.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert "Traceback" not in r.output and len(lines) == 1, r.output
    assert lines[0] == "error: " + _expected(ckpt, trained, template)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before  # metrics.json & co. untouched
