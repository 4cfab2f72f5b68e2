"""harness.pipeline: end-to-end runs on a sliver of the synthetic benchmark: outputs, resume, skip, own initial 3D."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.config import resolve_config
from harness.data import load_data
from harness.pipeline import evaluate_run, run
from harness.runs import is_done, run_name
from harness.errors import DataError

TINY = dict(train_stride=40, test_stride=40, lifter_hid_dim=16, lifter_layers=1, lifter_heads=2, lifter_epochs=1,
            hid_dim=16, num_layers=1, n_head=2, epochs=2, batch_size=128, lifter_batch_size=128, device="cpu",
            gmm_max_components=2, gmm_max_samples=500)


@pytest.fixture(scope="module")
def tiny_cfg(harness_cache):
    return resolve_config("smoke", dict(TINY, variant="full", noise="gaussian"))


@pytest.fixture(scope="module")
def tiny_data(tiny_cfg):
    return load_data(tiny_cfg)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_cfg, tiny_data):
    """One finished tiny run (its results folder, run folder and progress events), shared by the tests
    that only read it; a test that writes into a run works on a copy (:func:`_copy`)."""
    out = tmp_path_factory.mktemp("finished")
    events: list = []
    run_dir = run(tiny_cfg, out, data=tiny_data, progress=events.append)
    return out, run_dir, events


def _copy(finished, tmp_path):
    """A copy of the finished run's results folder (run folder and shared lifter); its run folder."""
    import shutil

    out, run_dir, _ = finished
    shutil.copytree(out, tmp_path / "copy")
    return tmp_path / "copy" / run_dir.name


def test_run_writes_results(finished, tiny_cfg, tiny_data):
    tmp_path, run_dir, events = finished
    assert run_dir.name == run_name(tiny_cfg)
    names = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("."))
    assert names == ["checkpoint.pt", "config.json", "history.csv", "identity.json", "metrics.json", "noise.json",
                     "per_frame.npz", "train.log"]
    _check_records(tmp_path, run_dir, tiny_cfg, tiny_data, events)
    res = json.loads((run_dir / "metrics.json").read_text())
    ident = json.loads((run_dir / "identity.json").read_text())
    assert res["identity"]["numerics"] == ident["numerics"] == {
        "device": "cpu", "precision": "fp32", "kernels": ident["numerics"]["kernels"]}
    assert ident["numerics"]["kernels"] in ("native", "torch")
    assert set(res["identity"]["data"]) == {"h36m/data_3d_h36m.npz", "h36m/cameras.h5"}
    assert run_dir.name.endswith(res["identity"]["hash"]) and ident["lifter"].startswith("lifter-h36m-seed0-")
    assert res["config"]["variant"] == "full" and res["seed"] == 0 and res["data"]["synthetic"] is True
    for key in ("git_commit", "date", "machine", "device", "wall_time_s"):
        assert key in res
    p1 = res["metrics"]["diffusion"]["p1"]
    assert list(p1)[-1] == "Avg" and len(p1) == 16
    assert p1["Avg"] == pytest.approx(np.mean([v for k, v in p1.items() if k != "Avg"]))
    with np.load(run_dir / "per_frame.npz") as z:
        assert z["diffusion_p1"].shape == (len(tiny_data["test"]),)
        # per-action mean of the per-frame errors is what the JSON reports
        walking = np.char.startswith(z["action"].astype(str), "Walking") & ~np.char.startswith(
            z["action"].astype(str), "WalkTogether")
        assert float(z["diffusion_p1"][z["action"] == "Walking"].mean()) == pytest.approx(p1["Walking"], rel=1e-5)
        assert walking.any()
        assert z["sample_gt_3d"].shape == (8, 17, 3)
    assert is_done(tiny_cfg, tmp_path)
    assert not is_done(tiny_cfg.replace(epochs=3), tmp_path)


def _check_records(out, run_dir, cfg, data, events):
    """The run's and its shared lifter's train.log and history.csv, metrics.json's history summary, and the
    evaluation's progress events (harness.train.records)."""
    from harness.runs import lifter_dir
    from harness.train.records import History, steps_per_epoch

    lifter = lifter_dir(cfg, out)
    spe = steps_per_epoch(len(data["train"]), cfg.batch_size)
    lspe = steps_per_epoch(len(data["train"]), cfg.lifter_batch_size)
    den = History(run_dir / "history.csv").rows()
    lif = History(lifter / "history.csv").rows()
    assert [(r["stage"], r["epoch"], r["step"]) for r in den] == [("denoiser", str(e), str(e * spe))
                                                                   for e in range(1, cfg.epochs + 1)]
    assert [(r["stage"], r["epoch"], r["step"], r["ema_decay"]) for r in lif] == [
        ("lifter", str(e), str(e * lspe), "") for e in range(1, cfg.lifter_epochs + 1)]
    res = json.loads((run_dir / "metrics.json").read_text())
    assert res["history"] == {"lifter": {"epochs": cfg.lifter_epochs, "steps": cfg.lifter_epochs * lspe,
                                         "final_loss": float(lif[-1]["loss"])},
                              "denoiser": {"epochs": cfg.epochs, "steps": cfg.epochs * spe,
                                           "final_loss": float(den[-1]["loss"])}}
    epoch_losses = [ev["loss"] for ev in events if ev.get("stage") == "denoiser" and ev.get("kind") == "epoch"]
    assert [float(r["loss"]) for r in den] == epoch_losses  # the rows are the loop's numbers, exactly
    log = [ln[21:] for ln in (run_dir / "train.log").read_text().splitlines()]
    heads = [ln.split(":")[0].split(" epoch")[0] for ln in log]
    assert heads == ["start", "config", "data", "lifter", "noise", "denoiser", "tensorboard", "denoiser", "denoiser",
                     "evaluation", "evaluation", "finish"], log
    assert log[3] == (f"lifter: shared/{lifter.name} trained here to epoch 1/1, loss {float(lif[-1]['loss']):.6f}; "
                      f"its records: shared/{lifter.name}/train.log, history.csv")
    assert log[-1].endswith(f"diffusion P1 {res['metrics']['diffusion']['p1']['Avg']:.2f} mm, "
                            f"lifter P1 {res['metrics']['lifter']['p1']['Avg']:.2f} mm")
    assert "finish: predictions.npz written (train and test splits)" in (lifter / "train.log").read_text()
    nb = -(-len(data["test"]) // cfg.eval_batch_size)
    assert [ev for ev in events if ev.get("stage") == "eval"] == [{"stage": "eval", "done": k, "total": nb}
                                                                  for k in range(nb + 1)]


def test_resume_equals_uninterrupted(tmp_path, tiny_cfg, tiny_data, finished):
    full = finished[1]
    # Stop after 1 of 2 epochs, then rerun with the full config: it resumes from the checkpoint.
    part_cfg = tiny_cfg.replace(epochs=1)
    part = run(part_cfg, tmp_path / "b", data=tiny_data)
    target = tmp_path / "b" / run_name(tiny_cfg)
    target.mkdir(parents=True)
    (part / "checkpoint.pt").rename(target / "checkpoint.pt")
    resumed = run(tiny_cfg, tmp_path / "b", data=tiny_data)
    a = json.loads((full / "metrics.json").read_text())["metrics"]
    b = json.loads((resumed / "metrics.json").read_text())["metrics"]
    assert a == b


def test_eval_reproduces_metrics(tmp_path, finished):
    run_dir = _copy(finished, tmp_path)
    before = (run_dir / "metrics.json").read_bytes()
    frames = (run_dir / "per_frame.npz").read_bytes()
    res = evaluate_run(run_dir)
    assert res["metrics"] == json.loads(before)["metrics"]
    # eval writes its own files; the training results stay byte for byte
    assert (run_dir / "metrics.json").read_bytes() == before and (run_dir / "per_frame.npz").read_bytes() == frames
    assert res["path"] == str(run_dir / "eval-fp32.json")
    assert json.loads((run_dir / "eval-fp32.json").read_text())["metrics"] == res["metrics"]
    assert (run_dir / "eval-fp32-per_frame.npz").is_file()


def test_own_initial_3d(tmp_path, tiny_cfg, tiny_data):
    """Ground truth passed as the initial 3D: the 'lifter' rows are exactly zero error."""
    from harness.safeio import save_npz

    test = tiny_data["test"]
    pos: dict = {}
    for s, a, c, f, p in zip(test.subject, test.sequence, test.camera, test.frame, test.pose_3d):
        cams = pos.setdefault(s, {}).setdefault(a, {})
        cams.setdefault(int(c), {})[int(f)] = p
    layout = {s: {a: [np.stack([cams[c].get(k, np.zeros((17, 3), np.float32))
                                for k in range(max(cams[c]) + 1)]) for c in sorted(cams)]
                  for a, cams in acts.items()} for s, acts in pos.items()}
    path = tmp_path / "mine.npz"
    save_npz(path, positions_3d=layout)
    cfg = tiny_cfg.replace(initial_3d=str(path))
    res = json.loads((run(cfg, tmp_path / "r", data=tiny_data) / "metrics.json").read_text())
    assert res["metrics"]["lifter"]["p1"]["Avg"] == pytest.approx(0.0, abs=1e-3)
    assert res["metrics"]["diffusion"]["p1"]["Avg"] > 0.0
    with pytest.raises(DataError, match="GMM noise fit needs initial 3D"):
        run(cfg.replace(noise="gmm"), tmp_path / "g", data=tiny_data)


def test_eval_in_bf16_writes_beside_and_keeps_the_run(tmp_path, finished):
    run_dir = _copy(finished, tmp_path)
    before = (run_dir / "metrics.json").read_text()
    res = evaluate_run(run_dir, precision="bf16")
    assert (run_dir / "metrics.json").read_text() == before          # the run's own results untouched
    saved = json.loads((run_dir / "eval-bf16.json").read_text())
    assert saved["eval_precision"] == "bf16" and saved["metrics"] == res["metrics"]
    fp32 = json.loads(before)["metrics"]
    # the lifter's poses are the run's (fp32); only the sampler ran in bf16
    assert saved["metrics"]["lifter"] == fp32["lifter"]
    d, f = saved["metrics"]["diffusion"]["p1"]["Avg"], fp32["diffusion"]["p1"]["Avg"]
    assert d != f and abs(d - f) < 0.02 * f
    with pytest.raises(Exception, match="must be fp32 or bf16"):
        evaluate_run(run_dir, precision="fp8")
