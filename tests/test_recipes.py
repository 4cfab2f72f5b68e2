"""Recipes (harness/configs/recipes.yaml): each source's training and evaluation choices, orthogonal to the
profiles (the budget), and the pieces of inference they switch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from harness.config import FIELD_DEFAULTS, Config, load_recipes, recipe_keys, resolve_config
from harness.errors import ConfigError
from harness.skeleton import root_relative
from tests.test_pipeline import tiny_cfg, tiny_data  # noqa: F401  (the shared tiny fixtures)


def test_harness_recipe_is_the_config_defaults():
    """The `harness` recipe names what the defaults always were: no number moves."""
    values = load_recipes()["harness"]["values"]
    assert values, "empty recipe"
    for k, v in values.items():
        assert FIELD_DEFAULTS[k] == v, k
    assert set(values) == recipe_keys()  # every recipe key has a harness value


def test_run_identity_unchanged_by_the_recipe_fields():
    """Fields added with the recipes are hashed only off their defaults: run names from before stay
    (hashes computed with the code before the recipes)."""
    assert Config().hash() == "96d00fc68725"
    assert Config().lifter_hash() == "87e6fa275f78"
    assert resolve_config("smoke").hash() == "5ea580c8b2b9"
    assert resolve_config("quick", {"benchmark": "3dhp", "variant": "cag", "noise": "gmm"}).hash() == "bbd490999867"
    assert resolve_config("smoke", recipe="released").hash() != resolve_config("smoke").hash()


def test_released_recipe_points():
    c = resolve_config("smoke", {"keypoints": "cpn_ft_h36m_dbb"}, recipe="released")
    assert (c.recipe, c.lr, c.lr_gamma, c.lr_decay_every, c.ema_rate, c.ema_warmup) == ("released", 1e-3, 0.9, 60, 0.999, False)
    assert (c.flip_augment, c.test_flip, c.lifter_test_flip, c.eval_weights, c.root_mode) == \
        (True, True, False, "raw", "zero_root")
    assert (c.test_timesteps, c.test_num_diffusion_timesteps, c.train_keypoints) == (2, 12, None)
    assert c.epochs == resolve_config("smoke").epochs  # the budget is the profile's


@pytest.mark.parametrize("keypoints,steps,train_2d", [("gt", 12, None), ("cpn_ft_h36m_dbb", 24, "gt")])
def test_diffpose_recipe_differs_between_its_gt_and_cpn_configs(keypoints, steps, train_2d):
    c = resolve_config("diffpose", {"keypoints": keypoints}, recipe="diffpose")
    assert (c.lr, c.flip_augment, c.test_flip, c.lifter_test_flip, c.eval_weights) == (2e-5, False, False, False, "raw")
    assert (c.test_num_diffusion_timesteps, c.train_keypoints, c.epochs) == (steps, train_2d, 80)


def test_options_override_a_recipe_and_bad_names_are_refused():
    assert resolve_config("smoke", {"lr": 5e-4}, recipe="diffpose").lr == 5e-4
    with pytest.raises(ConfigError, match="unknown recipe 'paper'; valid: harness, released, diffpose"):
        resolve_config("smoke", recipe="paper")
    with pytest.raises(ConfigError, match="'root_mode' must be one of subtract, zero_root"):
        resolve_config("smoke", {"root_mode": "inplace"})


def test_a_profile_may_not_set_a_recipe_key(tmp_path):
    p = tmp_path / "profiles.yaml"
    p.write_text("profiles:\n  mine:\n    epochs: 2\n    lr: 0.1\n")
    with pytest.raises(ConfigError, match="profile 'mine' sets 'lr', a recipe key"):
        resolve_config("mine", profiles_path=p)


def test_zero_root_is_what_the_released_in_place_step_computes():
    """`x[:, :, :] -= x[:, :1, :]` in place (the released test loops): the root row is zeroed first, so the
    other joints subtract zero. `zero_root` must equal it; `subtract` is the true root-relative pose."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 17, 3, generator=g)
    released = x.clone()
    released[:, :, :] -= released[:, :1, :]
    assert torch.equal(root_relative(x, "zero_root"), released)
    assert torch.equal(root_relative(x, "zero_root")[:, 1:], x[:, 1:])
    assert torch.equal(root_relative(x, "subtract"), x - x[:, :1])
    a = x.numpy()
    np.testing.assert_array_equal(root_relative(a, "zero_root"), released.numpy())
    assert np.abs(a[:, 0]).min() > 0  # the input is untouched


def test_sampler_without_test_flip_is_one_refinement(tiny_cfg):
    from harness.diffusion.sampler import Sampler
    from harness.pipeline import build_denoiser_for
    from harness.train.augment import Flip

    torch.manual_seed(0)
    model = build_denoiser_for(tiny_cfg).eval()
    g = torch.Generator().manual_seed(1)
    x2, x3 = torch.randn(4, 17, 2, generator=g) * 0.3, torch.randn(4, 17, 3, generator=g) * 0.3
    flip = Flip(17)
    s_no = Sampler(dataclasses.replace(tiny_cfg, test_flip=False), model, flip, torch.device("cpu"))
    s_yes = Sampler(tiny_cfg, model, flip, torch.device("cpu"))
    with torch.no_grad():
        one = s_no.refine(x2, x3)
        other = flip(s_no.refine(flip(x2), flip(x3)))
    torch.testing.assert_close(s_no(x2, x3), one, rtol=0, atol=0)
    torch.testing.assert_close(s_yes(x2, x3), 0.5 * (one + other), rtol=1e-6, atol=1e-7)


def test_raw_weights_are_returned_when_the_recipe_evaluates_them(tmp_path, tiny_cfg, tiny_data):
    from harness.noise import GaussianNoise
    from harness.pipeline import build_denoiser_for
    from harness.train.checkpoint import load_checkpoint
    from harness.train.loop import train_denoiser

    cfg = tiny_cfg.replace(epochs=1, eval_weights="raw")
    torch.manual_seed(cfg.seed)
    model = train_denoiser(cfg, build_denoiser_for(cfg), tiny_data["train"], GaussianNoise(), tmp_path,
                           torch.device("cpu"), torch.Generator().manual_seed(1))
    st = load_checkpoint(tmp_path / "checkpoint.pt", "denoiser", cfg.to_dict())
    k = "gconv_input.weight"
    assert torch.equal(model.state_dict()[k], st["model"][k])
    assert not torch.equal(st["model"][k], st["ema"][k])


def test_train_keypoints_gt_trains_the_denoiser_on_gt_2d(tmp_path, tiny_cfg, tiny_data, monkeypatch):
    from harness import device as D
    from harness.noise import GaussianNoise
    from harness.pipeline import build_denoiser_for
    from harness.train import loop

    train = tiny_data["train"]
    gt = train.pose_2d + 0.5
    train = dataclasses.replace(train, meta={**train.meta, "pose_2d_gt": gt})
    seen = []
    original = D.DeviceData.from_poseset

    def spy(ps, device, **kw):
        seen.append(ps.pose_2d)
        return original(ps, device, **kw)

    monkeypatch.setattr(loop.DeviceData, "from_poseset", staticmethod(spy))
    cfg = tiny_cfg.replace(epochs=1, train_keypoints="gt")
    loop.train_denoiser(cfg, build_denoiser_for(cfg), train, GaussianNoise(), tmp_path, torch.device("cpu"),
                        torch.Generator().manual_seed(1))
    assert np.array_equal(seen[0], gt)


def test_tables_keep_runs_of_different_recipes_apart():
    """A released-recipe run is another row, not a newer version of the harness-recipe run."""
    import pandas as pd

    from harness.report.results import TIDY_COLUMNS
    from harness.report.rows import latest_runs, normalise, our_rows

    def row(run, recipe, value, date):
        return dict(run=run, benchmark="h36m", variant="full", noise="gaussian", seed=0, profile="quick",
                    recipe=recipe, synthetic=True, data_root="", keypoints="gt", model="diffusion", metric="P1",
                    group="Avg", value=value, wall_time_s=1.0, git_commit="", date=date, device="cpu", train_on="")

    df = pd.DataFrame([row("a", "harness", 50.0, "2026-01-01"), row("b", "released", 52.0, "2026-01-02"),
                       row("c", "", 49.0, "2026-01-03")], columns=TIDY_COLUMNS)
    kept, dropped = latest_runs(normalise(df))
    assert sorted(kept["run"]) == ["b", "c"] and dropped == ["a"]  # "" reads as harness: c supersedes a
    labels = {r.label: r.mean[("P1", "Avg")] for r in our_rows(kept, ["P1"], ["Avg"], lifter=False)}
    assert labels == {"full + Gaussian [quick]": 49.0, "full + Gaussian [quick/released]": 52.0}


def test_recipes_command_lists_every_key():
    from typer.testing import CliRunner

    from harness.cli import app

    res = CliRunner().invoke(app, ["recipes", "--detected"], env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    lines = {ln.split("│")[1].strip(): [c.strip() for c in ln.split("│")[2:5]] for ln in res.output.splitlines()
             if ln.startswith("│")}
    assert lines["test_num_diffusion_timesteps"] == ["12", "12", "24"]
    assert lines["eval_weights"] == ["ema", "raw", "raw"]
    assert set(lines) == recipe_keys()


def test_diffpose_cpn_recipe_trains_on_the_gt_kernels(tmp_path, harness_cache):
    """DiffPose's CPN config: test on the detections' kernels, train the denoiser on
    data_2d_h36m_gt_gmm.npz (here: the GT 2D as every kernel's mu, the detections' sigmas)."""
    from harness.camera import load_cameras_h5
    from harness.data import load_data
    from harness.data.gmm2d import build_gmm_2d, write_gmm_2d_npz
    from harness.data.h36m import derive_gt_2d, read_positions_3d
    from harness.data.synth.writer import synth_h36m
    from harness.noise import KernelNoise
    from harness.pipeline import build_denoiser_for
    from harness.train import loop
    from tests.test_pipeline import TINY

    root = tmp_path / "h36m"
    synth_h36m(root, frames=30, takes=1)
    pos, meta = build_gmm_2d(root, "synth_det", kernels=2, seed=0, max_samples=2000)
    write_gmm_2d_npz(root / "data_2d_h36m_synth_det_gmm.npz", pos, meta)
    gt = derive_gt_2d(read_positions_3d(root / "data_3d_h36m.npz"), load_cameras_h5(root / "cameras.h5"))
    gt_pos = {s: {a: [np.concatenate([k[..., :1], np.repeat(g[:len(k), :, None, :], k.shape[2], 2), k[..., 3:]], -1)
                      for k, g in zip(views, gt[s][a])] for a, views in acts.items()} for s, acts in pos.items()}
    write_gmm_2d_npz(root / "data_2d_h36m_gt_gmm.npz", gt_pos, meta)
    cfg = resolve_config("smoke", dict(TINY, data_root=str(root), keypoints="synth_det_gmm", noise="kernels"),
                         recipe="diffpose")
    assert cfg.train_keypoints == "gt" and cfg.test_num_diffusion_timesteps == 24
    data = load_data(cfg)
    train = data["train"]
    assert train.meta["gmm_2d_gt"].shape == train.meta["gmm_2d"].shape
    np.testing.assert_allclose(train.meta["gmm_2d_gt"][:, :, 0, 1:3], train.meta["pose_2d_gt"], atol=1e-6)
    assert not np.allclose(train.meta["pose_2d_gt"], train.pose_2d, atol=1e-3)  # the lifter's input stays CPN-like

    seen = []
    original = loop.DeviceData.from_poseset

    def spy(ps, device, **kw):
        seen.append(ps.meta.get("gmm_2d"))
        return original(ps, device, **kw)

    loop.DeviceData.from_poseset = staticmethod(spy)
    try:
        noise = KernelNoise()
        loop.train_denoiser(cfg.replace(epochs=1), build_denoiser_for(cfg), train, noise, tmp_path,
                            torch.device("cpu"), torch.Generator().manual_seed(1))
    finally:
        loop.DeviceData.from_poseset = staticmethod(original)
    assert seen[0] is train.meta["gmm_2d_gt"]
