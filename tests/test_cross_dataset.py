"""Cross-dataset 3DHP: train on Human3.6M (S1 S5 S6 S7 S8), test on MPI-INF-3DHP (config ``train_on``):
identity (config and lifter hash, run name), validation, the data it loads, a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.config import Config, config_from_dict, resolve_config
from harness.data import load_data
from harness.errors import ConfigError
from harness.pipeline import run
from harness.runs import is_done, lifter_dir, run_name
from harness.skeleton import H36M_PARENTS
from tests.test_pipeline import TINY


# ------------------------------------------------------------------------------------- identity
def test_train_on_is_in_the_config_and_lifter_hash():
    own = Config(benchmark="3dhp")
    cross = Config(benchmark="3dhp", train_on="h36m")
    assert own.hash() != cross.hash() and own.lifter_hash() != cross.lifter_hash()
    assert "train_on" in Config.LIFTER_KEYS
    # unset, it is not hashed: every run from before the field keeps its name
    assert own.train_on is None
    assert own.hash() == own.hash([k for k in own.to_dict() if k != "train_on"])
    assert cross.hash() != cross.hash([k for k in cross.to_dict() if k != "train_on"])
    from harness.identity import identity_hash, lifter_identity, run_identity

    assert run_name(cross) == f"3dhp_from_h36m-full-gaussian-seed0-{identity_hash(run_identity(cross))}"
    assert run_name(own) == f"3dhp-full-gaussian-seed0-{identity_hash(run_identity(own))}"
    assert lifter_dir(cross, "out").name == f"lifter-3dhp_from_h36m-seed0-{identity_hash(lifter_identity(cross))}"
    # the cross-dataset run reads the H36M files for training and only the 3DHP test file
    assert sorted(run_identity(cross)["data"]) == ["3dhp/data_test_3dhp.npz", "h36m/cameras.h5",
                                                   "h36m/data_3d_h36m.npz"]


def test_invalid_train_on_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match=r"^options: 'train_on' must be 3dhp \(its own training set\) or h36m "
                                          r"with benchmark 3dhp \(got 'mpii'\)$"):
        resolve_config("smoke", {"benchmark": "3dhp", "train_on": "mpii"})
    with pytest.raises(ConfigError, match=r"^options: 'train_on' must be h36m \(its own training set\) with "
                                          r"benchmark h36m \(got '3dhp'\)$"):
        resolve_config("smoke", {"benchmark": "h36m", "train_on": "3dhp"})
    with pytest.raises(ConfigError, match="train_on"):
        config_from_dict({"benchmark": "h36m", "train_on": "h36m "}, source="config.json")


def test_train_on_the_own_benchmark_is_the_default():
    cfg = resolve_config("smoke", {"benchmark": "h36m", "train_on": "h36m"})
    assert cfg.train_on is None and cfg.hash() == resolve_config("smoke", {"benchmark": "h36m"}).hash()
    assert resolve_config("smoke", {"benchmark": "3dhp", "train_on": "3dhp"}).train_on is None
    assert resolve_config("smoke", {"benchmark": "3dhp", "train_on": "h36m"}).train_on == "h36m"


def test_ablate_plan_takes_train_on_for_3dhp_only():
    from harness.ablate import plan

    cfgs = plan(["baseline"], ["gaussian"], ["h36m", "3dhp"], [0], "smoke", {"train_on": "h36m"})
    assert [(c.benchmark, c.train_on) for c in cfgs] == [("h36m", None), ("3dhp", "h36m")]


# ----------------------------------------------------------------------------------------- data
def _bone_lengths(pose_3d: np.ndarray) -> np.ndarray:
    """Median length (m) of each bone of the H36M skeleton but the two at Neck/Nose (joint 9): 3DHP's
    "head" joint, mapped there, sits elsewhere (real data: Thorax-Neck/Nose 0.66x, Neck/Nose-Head 1.38x)."""
    child = [j for j, p in enumerate(H36M_PARENTS) if p >= 0 and 9 not in (j, p)]
    parent = [H36M_PARENTS[j] for j in child]
    return np.median(np.linalg.norm(pose_3d[:, child] - pose_3d[:, parent], axis=-1), axis=0)


def _check_cross_split(data: dict, test_sequences: set[str]) -> None:
    train, test = data["train"], data["test"]
    assert set(np.unique(train.subject)) <= {"S1", "S5", "S6", "S7", "S8"} and "S1" in set(train.subject)
    assert set(np.unique(test.sequence)) == test_sequences
    assert train.num_joints == test.num_joints == 17
    # the PoseSet conventions on both sides: root-relative (exactly 0) camera-frame metres, 2D by image width
    for ps in (train, test):
        assert np.all(ps.pose_3d[:, 0] == 0)
        assert 0.2 < np.median(np.linalg.norm(ps.pose_3d[:, 10], axis=-1)) < 1.0  # head 20 cm .. 1 m from the hip
        assert np.abs(ps.pose_2d[ps.valid]).max() <= 1.5
    # the same skeleton scale: 3DHP's univ_annot3 is scaled to H36M's universal skeleton
    ratio = _bone_lengths(test.pose_3d[test.valid]) / _bone_lengths(train.pose_3d)
    assert np.all((ratio > 0.7) & (ratio < 1.4)), ratio


def test_load_data_trains_on_synthetic_h36m_and_tests_on_synthetic_3dhp(harness_cache):
    cfg = resolve_config("smoke", {"benchmark": "3dhp", "train_on": "h36m", "train_stride": 1, "test_stride": 1})
    data = load_data(cfg)
    h36m = load_data(resolve_config("smoke", {"benchmark": "h36m", "train_stride": 1}))
    own = load_data(resolve_config("smoke", {"benchmark": "3dhp", "test_stride": 1}))
    np.testing.assert_array_equal(data["train"].pose_3d, h36m["train"].pose_3d)
    np.testing.assert_array_equal(data["train"].pose_2d, h36m["train"].pose_2d)
    np.testing.assert_array_equal(data["test"].pose_3d, own["test"].pose_3d)
    assert data["train"].meta["synthetic"] is True
    _check_cross_split(data, {"TS1", "TS2", "TS3", "TS4", "TS5", "TS6"})


def test_load_data_cross_dataset_on_the_real_data(h36m_root, mpi3dhp_root, harness_cache):
    """Real H36M training set and the real 3DHP test file (TS5, TS6) read from their parent folder."""
    cfg = resolve_config("smoke", {"benchmark": "3dhp", "train_on": "h36m", "data_root": str(h36m_root.parent),
                                   "train_stride": 50, "test_stride": 1})
    data = load_data(cfg)
    assert data["train"].meta["synthetic"] is False
    _check_cross_split(data, {"TS5", "TS6"})


def test_load_data_names_the_missing_h36m_folder(tmp_path, harness_cache):
    from harness.data.synth import ensure_synth
    from harness.errors import DataError

    only_3dhp = tmp_path / "only3dhp"
    (only_3dhp / "3dhp").mkdir(parents=True)
    src = ensure_synth("3dhp")
    (only_3dhp / "3dhp" / "data_test_3dhp.npz").symlink_to(src / "data_test_3dhp.npz")
    cfg = resolve_config("smoke", {"benchmark": "3dhp", "train_on": "h36m", "data_root": str(only_3dhp)})
    with pytest.raises(DataError, match=r"data_3d_h36m.npz: file not found \(--train-on h36m: give --data-root a "
                                        r"folder holding h36m/ and 3dhp/\)"):
        load_data(cfg)


# ----------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def cross_cfg(harness_cache):
    return resolve_config("smoke", dict(TINY, benchmark="3dhp", train_on="h36m", variant="baseline",
                                        noise="gmm", test_stride=4))


def test_tiny_cross_dataset_run(tmp_path, cross_cfg):
    data = load_data(cross_cfg)
    run_dir = run(cross_cfg, tmp_path, data=data)
    assert run_dir.name.startswith("3dhp_from_h36m-baseline-gmm-seed0-")
    res = json.loads((run_dir / "metrics.json").read_text())
    assert res["config"]["train_on"] == "h36m" and res["data"]["synthetic"] is True
    assert res["data"]["train_frames"] == len(data["train"]) and res["data"]["test_frames"] == len(data["test"])
    assert set(np.unique(data["train"].subject)) == {"S1", "S5", "S6", "S7", "S8"}
    (lifter,) = (tmp_path / "shared").glob("lifter-3dhp_from_h36m-seed0-*")
    assert lifter.name == json.loads((run_dir / "identity.json").read_text())["lifter"]
    assert list(lifter.glob("gmm-*.json"))  # the GMM noise is fitted on the (H36M) training split
    for model in ("diffusion", "lifter"):
        m = res["metrics"][model]
        assert list(m) == ["TS1", "TS2", "TS3", "TS4", "TS5", "TS6", "GS", "noGS", "Outdoor", "All", "frames"]
        for key in ("PCK", "AUC", "MPJPE", "PCK17", "AUC17", "MPJPE17"):
            assert np.isfinite(m["All"][key])
        assert 0.0 <= m["All"]["AUC"] <= m["All"]["PCK"] <= 100.0
        assert 0.0 <= m["All"]["AUC17"] <= m["All"]["PCK17"] <= 100.0
        assert m["All"]["MPJPE"] > 0 and m["All"]["MPJPE17"] > 0
    # the per-frame file's P1 (all 17 joints) is what MPJPE17 averages over the valid frames
    with np.load(run_dir / "per_frame.npz") as z:
        p1, valid = z["diffusion_p1"], z["valid"].astype(bool)
    assert float(p1[valid].mean()) == pytest.approx(res["metrics"]["diffusion"]["All"]["MPJPE17"], rel=1e-4)
    assert is_done(cross_cfg, tmp_path)
    assert not is_done(cross_cfg.replace(train_on=None), tmp_path)
    # the results tables label it
    from harness.report import tables as T
    from harness.report.results import collect

    df = collect(tmp_path)
    assert set(df["train_on"]) == {"h36m"}
    assert set(df["metric"]) == {"PCK", "AUC", "MPJPE", "PCK17", "AUC17", "MPJPE17"}
    t = T.mpi3dhp_table(df, references=[])
    assert t.attrs["title"] == "MPI-INF-3DHP, trained on H36M (synthetic)"
    assert ("PCK (17 joints)", "All") in list(t.columns)
