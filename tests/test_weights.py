"""Released weights: `harness import-weights` + `harness predict` against the released loops' own outputs
(../shared/fixtures/released: checkpoints made by the released classes, outputs of their inference loops)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import DataError
from harness.predict import predict, predict_arrays, read_pose_2d
from harness.weights import detect_format, import_weights, read_released, strip_prefix

FIX = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "released"
needs_fixtures = pytest.mark.skipif(not (FIX / "released_io.npz").is_file(),
                                    reason=f"released-code fixtures not found at {FIX} (../shared is absent)")


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference over the largest magnitude (outputs reach metres: random weights)."""
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def io():
    with np.load(FIX / "released_io.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("imported")
    lifter = FIX / "diffpose_gcn_xyz_lifter.pth"
    return {
        "released": import_weights(FIX / "monomotiondiff_ckpt.pth", root / "mmd", lifter=lifter),
        # the fixture ran DiffPose's CPN configuration: seq = range(0, 24, 12)
        "diffpose": import_weights(FIX / "diffpose_gcndiff_ckpt.pth", root / "dp", lifter=lifter,
                                   keypoints="cpn_ft_h36m_dbb"),
        "root": root,
    }


@needs_fixtures
def test_flip_lists_are_the_harness_ones(io):
    from harness.skeleton import H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT

    assert tuple(io["kpt_left"]) == H36M_JOINTS_LEFT and tuple(io["kpt_right"]) == H36M_JOINTS_RIGHT


@needs_fixtures
def test_monomotiondiff_end_to_end_matches_released_test_loop(io, imported):
    out = predict_arrays(imported["released"], io["pose_2d"], device="cpu")
    assert out["pose_3d"].shape == (64, 17, 3)
    assert rel_err(out["pose_3d"], io["monomotiondiff_e2e_out"]) < 1e-4
    assert rel_err(out["lifter_3d"], io["monomotiondiff_lifter_out"]) < 1e-4


@needs_fixtures
def test_diffpose_end_to_end_matches_released_test_loop(io, imported):
    out = predict_arrays(imported["diffpose"], io["pose_2d"], device="cpu")
    assert rel_err(out["pose_3d"], io["diffpose_e2e_out"]) < 1e-4
    # the lifter before the released in-place root step (which only zeroes the root joint)
    raw = io["diffpose_lifter_out"]
    assert rel_err(out["lifter_3d"][:, 1:], raw[:, 1:]) < 1e-4
    assert np.all(out["lifter_3d"][:, 0] == 0)


@needs_fixtures
def test_imported_configs_carry_the_sources_recipes(imported):
    mmd = json.loads((imported["released"] / "config.json").read_text())
    dp = json.loads((imported["diffpose"] / "config.json").read_text())
    assert (mmd["recipe"], mmd["variant"], mmd["eval_weights"], mmd["root_mode"]) == ("released", "full", "raw", "zero_root")
    assert (mmd["test_flip"], mmd["lifter_test_flip"], mmd["test_num_diffusion_timesteps"], mmd["lr"]) == \
        (True, False, 12, 1e-3)
    assert (dp["recipe"], dp["variant"], dp["test_flip"], dp["test_num_diffusion_timesteps"], dp["lr"]) == \
        ("diffpose", "baseline", False, 24, 2e-5)
    assert (mmd["hid_dim"], mmd["num_layers"], mmd["epochs"]) == (96, 5, 801)  # released epoch index 800
    origin = json.loads((imported["released"] / "origin.json").read_text())
    assert origin["denoiser"]["format"] == "monomotiondiff" and len(origin["denoiser"]["sha256"]) == 64
    assert origin["lifter"]["dropped"] == ["temb.dense.0.bias", "temb.dense.0.weight", "temb.dense.1.bias",
                                           "temb.dense.1.weight"]


@needs_fixtures
@pytest.mark.parametrize("name,fmt", [("monomotiondiff_ckpt.pth", "monomotiondiff"),
                                      ("diffpose_gcndiff_ckpt.pth", "diffpose")])
def test_ema_takes_the_shadow_raw_by_default(tmp_path, name, fmt):
    states = read_released(FIX / name)
    raw = strip_prefix(states[0])
    assert detect_format(raw) == fmt
    for ema in (False, True):
        run = import_weights(FIX / name, tmp_path / f"{fmt}-{ema}", ema=ema)
        st = torch.load(run / "checkpoint.pt", weights_only=True)
        assert json.loads((run / "config.json").read_text())["eval_weights"] == ("ema" if ema else "raw")
        key = "gconv_input.weight"
        assert torch.equal(st["model"][key], raw[key])
        assert torch.allclose(st["ema"][key], raw[key] + 0.01)  # the fixture's shadow = raw + 0.01


@needs_fixtures
def test_ema_changes_the_prediction(io, tmp_path, imported):
    run = import_weights(FIX / "monomotiondiff_ckpt.pth", tmp_path / "ema", lifter=FIX / "diffpose_gcn_xyz_lifter.pth",
                         ema=True)
    out = predict_arrays(run, io["pose_2d"], device="cpu")
    assert rel_err(out["pose_3d"], io["monomotiondiff_e2e_out"]) > 1e-2
    assert rel_err(out["lifter_3d"], io["monomotiondiff_lifter_out"]) < 1e-4  # same lifter


@needs_fixtures
def test_true_root_subtraction_would_not_match(io, imported, tmp_path):
    """The released numbers need the in-place root step: with a true subtraction the outputs differ."""
    import shutil

    run = tmp_path / "subtract"
    shutil.copytree(imported["released"], run)
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "root_mode": "subtract"}))
    out = predict_arrays(run, io["pose_2d"], device="cpu")
    assert rel_err(out["pose_3d"], io["monomotiondiff_e2e_out"]) > 1e-2


@needs_fixtures
def test_refusals_are_one_line(tmp_path, imported):
    with pytest.raises(DataError, match="--format diffpose given, but the weights are a monomotiondiff"):
        import_weights(FIX / "monomotiondiff_ckpt.pth", tmp_path / "a", fmt="diffpose")
    with pytest.raises(DataError, match="folder exists and is not empty"):
        import_weights(FIX / "monomotiondiff_ckpt.pth", imported["released"])
    with pytest.raises(DataError, match="not a released lifter"):
        import_weights(FIX / "monomotiondiff_ckpt.pth", tmp_path / "b", lifter=FIX / "diffpose_gcndiff_ckpt.pth")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # nothing half-written


class Payload:  # anything that needs code to unpickle
    def __reduce__(self):
        return (print, ("code ran",))


def test_unsafe_and_wrong_files_refused(tmp_path):
    bad = tmp_path / "evil.pth"
    torch.save([{"w": torch.zeros(1)}, Payload()], bad)
    with pytest.raises(DataError, match="unsafe checkpoint, refused to unpickle"):
        read_released(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataError, match="junk.pth: "):
        read_released(junk)
    torch.save([{"w": torch.zeros(1)}, {}, 0, 0], tmp_path / "other.pth")
    with pytest.raises(DataError, match="not a released denoiser"):
        import_weights(tmp_path / "other.pth", tmp_path / "out")


def test_pose_2d_input_checks(tmp_path):
    px = np.full((3, 17, 2), 500.0)
    np.savez(tmp_path / "px.npz", pose_2d=px)
    with pytest.raises(DataError, match="looks like pixels; pass --image-size"):
        read_pose_2d(tmp_path / "px.npz")
    x = read_pose_2d(tmp_path / "px.npz", image_size=(1000, 1002))
    np.testing.assert_allclose(x[0, 0], [0.0, -0.002], atol=1e-7)  # 500/1000*2 - [1, 1002/1000]
    np.savez(tmp_path / "bad.npz", pose_2d=np.zeros((3, 15, 2)))
    with pytest.raises(DataError, match=r"bad.npz: pose_2d must be a numeric \(N, 17 or 16, 2\)"):
        read_pose_2d(tmp_path / "bad.npz")
    np.savez(tmp_path / "none.npz", other=np.zeros(3))
    with pytest.raises(DataError, match="no 'pose_2d' array"):
        read_pose_2d(tmp_path / "none.npz")


@needs_fixtures
def test_predict_cli_writes_once(io, imported, tmp_path):
    from typer.testing import CliRunner

    from harness.cli import app

    np.savez(tmp_path / "in.npz", pose_2d=io["pose_2d"])
    args = ["predict", str(imported["released"]), "--input", str(tmp_path / "in.npz"), "--output",
            str(tmp_path / "out.npz"), "--device", "cpu"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "out.npz") as z:
        assert rel_err(z["pose_3d"], io["monomotiondiff_e2e_out"]) < 1e-4
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "file exists" in res.output
    with pytest.raises(DataError, match="file exists"):
        predict(imported["released"], tmp_path / "in.npz", tmp_path / "out.npz")


@needs_fixtures
def test_eval_of_an_imported_run_on_the_synthetic_benchmark(imported, tmp_path, harness_cache):
    """`harness eval` on an imported folder: the imported lifter (not a trained one), the source's
    recipe, metrics.json with the weights' origin. A twentieth of the test frames to keep it short."""
    import shutil

    from harness.pipeline import evaluate_run

    run = tmp_path / "mmd"
    shutil.copytree(imported["released"], run)
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["profile"], cfg["train_stride"], cfg["test_stride"]) == ("imported", 1, 1)
    (run / "config.json").write_text(json.dumps({**cfg, "test_stride": 20}))
    res = evaluate_run(run, device="cpu")
    assert res["origin"]["denoiser"]["format"] == "monomotiondiff"
    assert res["config"]["recipe"] == "released" and res["data"]["train_frames"] == 0
    assert np.isfinite(res["metrics"]["diffusion"]["p1"]["Avg"]) and res["metrics"]["diffusion"]["p1"]["Avg"] > 0
    assert not (tmp_path / "shared").exists()  # no lifter was trained
    assert json.loads((run / "metrics.json").read_text())["wall_time_s"] > 0
