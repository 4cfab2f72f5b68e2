"""The 16-joint input (H36M less Neck/Nose) end to end: the GT16 file ``harness data prepare --joints 16``
writes, load_data, a tiny run (lifter, GMM noise, the full denoiser on 32 nodes, evaluation, re-evaluation
from the run folder, the pose figure), on the synthetic H36M; and the GT16 file of the real data (skips
when it is absent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.config import resolve_config
from harness.data import load_data
from harness.data.h36m import SH_TO_GT_PERM, derive_gt_2d, load_h36m, prepare_gt_2d, read_positions_2d, write_gt_2d
from harness.errors import ConfigError
from harness.safeio import load_npz, save_npz
from harness.skeleton import SH16_FROM_H36M17, SH16_JOINTS_LEFT, SH16_JOINTS_RIGHT, SH16_PARENTS
from tests.test_pipeline import TINY

KEEP = list(SH16_FROM_H36M17)  # what the loader keeps of the 17: all but Neck/Nose (joint 9)


def _link_3d(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("data_3d_h36m.npz", "cameras.h5", "SYNTHETIC"):
        if (src / name).exists():
            os.symlink(src / name, dst / name)
    return dst


@pytest.fixture(scope="module")
def synth_root(harness_cache):
    from harness.data.synth import ensure_synth

    return Path(ensure_synth("h36m"))


@pytest.fixture(scope="module")
def root16(synth_root, tmp_path_factory):
    """The synthetic H36M's 3D and cameras, plus data_2d_h36m_gt16.npz (prepare_gt_2d, joints=16) and
    a Stacked-Hourglass-ordered 16-joint file of the synthetic detections (data_2d_h36m_sh_pt_mpii.npz)."""
    root = _link_3d(synth_root, tmp_path_factory.mktemp("h36m16"))
    path = prepare_gt_2d(root, root, joints=16)
    assert path.name == "data_2d_h36m_gt16.npz"
    det, _ = read_positions_2d(synth_root / "data_2d_h36m_synth_det.npz")
    sh = {}
    for s, acts in det.items():
        sh[s] = {}
        for a, views in acts.items():
            out = []
            for v in views:
                h16 = np.asarray(v)[:, KEEP]
                o = np.empty_like(h16)
                o[:, list(SH_TO_GT_PERM)] = h16  # SH index SH_TO_GT_PERM[i] holds H36M-16 joint i
                out.append(o)
            sh[s][a] = out
    save_npz(root / "data_2d_h36m_sh_pt_mpii.npz", positions_2d=sh,
             metadata={"num_joints": 16, "keypoints_symmetry": [[3, 4, 5, 13, 14, 15], [0, 1, 2, 10, 11, 12]]})
    return root


def test_gt16_file_is_the_gt_less_neck_nose(synth_root, root16):
    pos, meta = read_positions_2d(root16 / "data_2d_h36m_gt16.npz")
    assert meta == {"layout_name": "h36m16", "num_joints": 16,
                    "keypoints_symmetry": [list(SH16_JOINTS_LEFT), list(SH16_JOINTS_RIGHT)]}
    first = pos["S1"][sorted(pos["S1"])[0]]
    assert len(first) == 4 and first[0].dtype == np.float32 and first[0].shape[1:] == (16, 2)
    ref = load_h36m(synth_root, "gt", use_cache=False)
    sets = load_h36m(root16, "gt16", use_cache=False)
    for split in ("train", "test"):
        ps = sets[split]
        assert ps.num_joints == 16 and ps.parents == SH16_PARENTS
        assert ps.meta["layout_2d"] == "h36m16" and "Neck/Nose" not in ps.meta["joint_names"]
        np.testing.assert_array_equal(ps.pose_3d, ref[split].pose_3d[:, KEEP])
        np.testing.assert_array_equal(ps.pose_2d, ref[split].pose_2d[:, KEEP])
    with pytest.raises(ConfigError, match="expected 17 or 16"):
        prepare_gt_2d(root16, root16, joints=15)


def test_load_data_takes_16_joints_and_the_gt_residuals(root16):
    cfg = resolve_config("smoke", dict(TINY, data_root=str(root16), keypoints="sh_pt_mpii"))
    data = load_data(cfg)
    gt16 = load_data(cfg.replace(keypoints="gt16"))
    train = data["train"]
    assert train.num_joints == data["test"].num_joints == 16 and train.meta["synthetic"] is True
    assert train.meta["layout_2d"] == "sh16_mpii" and train.parents == SH16_PARENTS
    # the GMM noise fit's 2D residuals: detections minus the GT 2D of the same 16 joints
    np.testing.assert_array_equal(train.meta["pose_2d_gt"], gt16["train"].pose_2d)
    assert np.abs(train.pose_2d - train.meta["pose_2d_gt"]).max() > 0.0


def test_tiny_run_on_16_joints(tmp_path, root16):
    from harness.pipeline import evaluate_run, run
    from harness.report.plots import plot_poses
    from harness.train.checkpoint import load_checkpoint

    cfg = resolve_config("smoke", dict(TINY, variant="full", noise="gmm", data_root=str(root16), keypoints="gt16"))
    run_dir = run(cfg, tmp_path)
    res = json.loads((run_dir / "metrics.json").read_text())
    assert res["data"]["num_joints"] == 16 and res["data"]["synthetic"] is True
    for stage in ("diffusion", "lifter"):
        for metric in ("p1", "p2"):
            table = res["metrics"][stage][metric]
            assert list(table)[-1] == "Avg" and len(table) == 16
            assert 0.0 < table["Avg"] < 1000.0 and np.isfinite(list(table.values())).all()
    with np.load(run_dir / "per_frame.npz") as z:
        assert z["sample_gt_3d"].shape == (8, 16, 3) and z["sample_diffusion_3d"].shape == (8, 16, 3)
        assert z["sample_pose_2d"].shape == (8, 16, 2)
    st = load_checkpoint(run_dir / "checkpoint.pt", "denoiser", cfg.to_dict())
    assert st["ema"]["atten_layers.0.feed_forward.A_hat"].shape == (32, 32)   # CCE: 2 x 16 nodes
    assert st["ema"]["fc3.weight"].shape == (32, 16)
    noise = json.loads((run_dir / "noise.json").read_text())
    assert noise["name"] == "gmm" and noise["num_joints"] == 16
    lifter_dirs = list((tmp_path / "shared").glob("lifter-*"))
    assert len(lifter_dirs) == 1
    with np.load(lifter_dirs[0] / "predictions.npz") as z:
        assert z["test"].shape[1:] == (16, 3)
    # the model is rebuilt on the data's 16 joints from the run folder
    assert evaluate_run(run_dir)["metrics"] == res["metrics"]
    figs = plot_poses(run_dir, tmp_path / "poses.png")
    assert [p.name for p in figs] == ["poses.pdf", "poses.png"] and all(p.stat().st_size > 0 for p in figs)


def test_models_build_on_the_data_skeleton(root16):
    from harness.lifter import build_lifter_for
    from harness.pipeline import build_denoiser_for

    cfg = resolve_config("smoke", dict(TINY, variant="cag", data_root=str(root16), keypoints="gt16"))
    data = load_data(cfg)
    lifter = build_lifter_for(cfg, parents=data["train"].parents).eval()
    model = build_denoiser_for(cfg, parents=data["train"].parents).eval()
    x2 = torch.from_numpy(data["test"].pose_2d[:4])
    with torch.no_grad():
        y = lifter(x2)
        e = model(torch.cat([x2, y], -1), torch.tensor([3, 3, 3, 3]), x2)
    assert y.shape == (4, 16, 3) and e.shape == (4, 16, 5)


# --------------------------------------------------------------------------------- real data
def test_real_gt16_file_is_the_derived_gt_less_neck_nose(h36m_root, tmp_path):
    from harness.camera import load_cameras_h5
    from harness.data.h36m import read_positions_3d

    root = _link_3d(h36m_root, tmp_path / "h36m16")  # outside the repository; nothing is copied
    pos3d = read_positions_3d(h36m_root / "data_3d_h36m.npz")
    cams = load_cameras_h5(h36m_root / "cameras.h5")
    write_gt_2d(root / "data_2d_h36m_gt16.npz", derive_gt_2d({"S9": pos3d["S9"]}, cams), joints=16)
    ref = load_h36m(h36m_root, "gt", subjects=["S9"], use_cache=False)["test"]
    got = load_h36m(root, "gt16", subjects=["S9"], use_cache=False)["test"]
    assert len(got) == len(ref) > 0 and got.num_joints == 16 and got.parents == SH16_PARENTS
    np.testing.assert_array_equal(got.pose_3d, ref.pose_3d[:, KEEP])
    np.testing.assert_array_equal(got.pose_2d, ref.pose_2d[:, KEEP])
    assert load_npz(root / "data_2d_h36m_gt16.npz")["metadata"]["num_joints"] == 16
