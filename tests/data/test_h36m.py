"""Human3.6M loader: the real files (3D + cameras, GT 2D derived) when present, and tiny synthetic
files in VideoPose3D's layout written here, with every error case."""

from __future__ import annotations

import numpy as np
import pytest

import harness.data.h36m as h36m_mod
from harness.camera import (Camera, H36M_CAMERA_IDS, H36M_RESOLUTION, image_coordinates, load_cameras_h5,
                            normalize_screen_coordinates, project_to_2d, save_cameras_h5, world_to_camera)
from harness.data.h36m import (SH_TO_GT_PERM, canonical_action, derive_gt_2d, load_h36m, prepare_gt_2d,
                               read_positions_2d, scan_h36m, write_gt_2d)
from harness.errors import ConfigError, DataError
from harness.safeio import load_npz, save_npz
from harness.skeleton import (H36M32_TO_17, H36M_ACTIONS, H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT, H36M_PARENTS,
                              SH16_FROM_H36M17, SH16_JOINTS_LEFT, SH16_JOINTS_RIGHT, SH16_PARENTS)

F3D = "data_3d_h36m.npz"


# ------------------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def real(h36m_root):
    """The whole real H36M with GT 2D derived in memory, built once for the module (no cache)."""
    return h36m_root, load_h36m(h36m_root, "gt", use_cache=False)


def test_real_scan_counts(h36m_root):
    rep = scan_h36m(h36m_root, "gt")
    assert rep.problems == []
    assert rep.subjects == ["S1", "S5", "S6", "S7", "S8", "S9", "S11"]
    assert rep.num_sequences == 204
    assert rep.num_frames == 496_063
    assert rep.num_samples == 4 * 496_063
    assert rep.joints_3d == 32 and rep.joints_2d == 17 and rep.gt_2d_derived
    assert rep.actions == list(H36M_ACTIONS)
    assert sum(r["sequences"] for r in rep.rows) == 204


def test_real_gt_2d_pelvis_pixel(h36m_root):
    pos3d = h36m_mod.read_positions_3d(h36m_root / F3D)
    cams = load_cameras_h5(h36m_root / "cameras.h5")
    assert cams["S1"][0].id == "54138969"
    gt = derive_gt_2d({"S1": {"Directions 1": pos3d["S1"]["Directions 1"]}}, cams)
    views = gt["S1"]["Directions 1"]
    assert len(views) == 4 and all(v.dtype == np.float32 and v.shape[1:] == (17, 2) for v in views)
    np.testing.assert_allclose(views[0][0, 0], [473.68, 444.94], atol=0.01)


def test_real_loader_pixel_and_sample_layout(real):
    _, sets = real
    train = sets["train"]
    m = (train.subject == "S1") & (train.sequence == "Directions 1") & (train.camera == 0)
    assert m.sum() > 0
    np.testing.assert_array_equal(train.frame[m], np.arange(m.sum()))
    first = np.flatnonzero(m)[0]
    w, h = H36M_RESOLUTION["54138969"]
    np.testing.assert_allclose(image_coordinates(train.pose_2d[first, 0], w, h), [473.68, 444.94], atol=0.01)
    assert train.action[first] == "Directions"


def test_real_split_counts(real, h36m_root):
    _, sets = real
    pos3d = h36m_mod.read_positions_3d(h36m_root / F3D)
    frames = {s: sum(a.shape[0] for a in pos3d[s].values()) for s in pos3d}
    train, test = sets["train"], sets["test"]
    assert len(train) == 4 * sum(frames[s] for s in ("S1", "S5", "S6", "S7", "S8"))
    assert len(test) == 4 * sum(frames[s] for s in ("S9", "S11"))
    assert len(train) + len(test) == 4 * 496_063
    for ps, subs in ((train, ("S1", "S5", "S6", "S7", "S8")), (test, ("S9", "S11"))):
        assert set(ps.subject.tolist()) == set(subs)
        for s in subs:
            assert (ps.subject == s).sum() == 4 * frames[s]
        for c in range(4):
            assert (ps.camera == c).sum() == len(ps) // 4
        assert ps.valid.all() and ps.valid.dtype == bool
        assert ps.pose_2d.dtype == np.float32 and ps.pose_3d.dtype == np.float32
        assert ps.camera.dtype == np.int16 and ps.frame.dtype == np.int32
        assert ps.num_joints == 17 and ps.meta["num_joints"] == 17
        assert ps.meta["gt_2d_derived"] is True and ps.meta["keypoints"] == "gt"
        assert ps.meta["parents"] == list(H36M_PARENTS)


def test_real_root_zero_metres_and_2d_range(real):
    _, sets = real
    for ps in sets.values():
        assert np.all(ps.pose_3d[:, 0] == 0)
        assert np.isfinite(ps.pose_3d).all() and np.isfinite(ps.pose_2d).all()
        assert 0.5 < np.abs(ps.pose_3d).max() < 2.0  # metres, root-relative
        x, y = ps.pose_2d[..., 0], ps.pose_2d[..., 1]
        assert -1.0 < x.min() < x.max() < 1.2 and -1.0 < y.min() < y.max() < 1.0
        assert abs(float(x.mean())) < 0.3 and abs(float(y.mean())) < 0.4  # people near the image centre
        assert x.std() > 0.05 and y.std() > 0.05


def test_real_cameras_see_same_body(real):
    """Root-relative 3D is a rotation of the same pose in each camera: joint distances agree."""
    _, sets = real
    test = sets["test"]
    m = (test.subject == "S9") & (test.sequence == "Walking 1")
    per_cam = [np.linalg.norm(test.pose_3d[m & (test.camera == c)][:50], axis=-1) for c in range(4)]
    for c in range(1, 4):
        np.testing.assert_allclose(per_cam[c], per_cam[0], atol=1e-5)


def test_real_test_actions(real):
    _, sets = real
    test = sets["test"]
    assert set(test.action.tolist()) == set(H36M_ACTIONS)
    assert len(set(zip(test.subject.tolist(), test.sequence.tolist()))) == 29 + 29  # S9, S11


# ------------------------------------------------------------------------------- synthetic files
N_FRAMES = 6
SEQS = {"S1": ["Directions 1", "Walking", "TakingPhoto 1"], "S9": ["WalkDog 1", "Sitting 2"]}


def _cameras(subjects) -> dict[str, list[Camera]]:
    """Four cameras on a circle 5 m around the origin at 1.5 m height, looking at it."""
    cams = {}
    for s in subjects:
        lst = []
        for i, cid in enumerate(H36M_CAMERA_IDS):
            a = np.pi / 2 * i + 0.3
            centre = np.array([5 * np.cos(a), 5 * np.sin(a), 1.5])
            z = -centre / np.linalg.norm(centre)                # optical axis towards the origin
            x = np.cross(z, [0.0, 0.0, 1.0]); x /= np.linalg.norm(x)
            y = np.cross(z, x)                                  # image y points down
            R = np.stack([x, y, z], axis=1)                     # columns: camera axes in world
            w, h = H36M_RESOLUTION[cid]
            lst.append(Camera(id=cid, R=R, T=centre, f=np.array([1145.0, 1144.0]), c=np.array([512.5, 515.5]),
                              k=np.array([-0.2, 0.24, -0.003]), p=np.array([-0.0014, -0.001]), res_w=w, res_h=h))
        cams[s] = lst
    return cams


def _positions_3d(seed: int = 0, joints: int = 32) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for s, seqs in SEQS.items():
        out[s] = {}
        for a in seqs:
            pos = rng.normal(0, 0.3, (N_FRAMES, joints, 3)) + [0.2, -0.1, 1.0]
            out[s][a] = pos.astype(np.float32)
    return out


@pytest.fixture
def synth(tmp_path):
    """A data folder with data_3d_h36m.npz (32 joints) and cameras.h5; no 2D file."""
    root = tmp_path / "h36m"
    root.mkdir()
    pos3d = _positions_3d()
    cams = _cameras(pos3d)
    save_npz(root / F3D, positions_3d=pos3d)
    save_cameras_h5(root / "cameras.h5", cams)
    return root, pos3d, load_cameras_h5(root / "cameras.h5")


def _write_2d(root, name, pos2d, num_joints, symmetry, layout_name=None):
    meta = {"num_joints": num_joints, "keypoints_symmetry": symmetry}
    if layout_name:
        meta["layout_name"] = layout_name
    save_npz(root / f"data_2d_h36m_{name}.npz", positions_2d=pos2d, metadata=meta)


def _gt_px(pos3d, cams):
    return derive_gt_2d(pos3d, cams)


def test_synth_gt_derived_matches_written_file(synth, tmp_path):
    root, pos3d, cams = synth
    derived = load_h36m(root, "gt", use_cache=False)
    assert derived["train"].meta["gt_2d_derived"] is True
    # prepare_gt_2d writes the same numbers into another folder; loading from that file agrees.
    out = tmp_path / "prepared"
    path = prepare_gt_2d(root, out)
    assert path == out / "data_2d_h36m_gt.npz" and not (root / "data_2d_h36m_gt.npz").exists()
    pos2d, meta = read_positions_2d(path)
    assert meta["num_joints"] == 17 and meta["layout_name"] == "h36m"
    assert [list(v) for v in meta["keypoints_symmetry"]] == [list(H36M_JOINTS_LEFT), list(H36M_JOINTS_RIGHT)]
    assert pos2d["S1"]["Walking"][2].shape == (N_FRAMES, 17, 2) and pos2d["S1"]["Walking"][2].dtype == np.float32
    root2 = tmp_path / "with_file"
    root2.mkdir()
    for name in (F3D, "cameras.h5"):
        (root2 / name).write_bytes((root / name).read_bytes())
    (root2 / "data_2d_h36m_gt.npz").write_bytes(path.read_bytes())
    from_file = load_h36m(root2, "gt", use_cache=False)
    assert from_file["train"].meta["gt_2d_derived"] is False
    for split in ("train", "test"):
        np.testing.assert_array_equal(from_file[split].pose_2d, derived[split].pose_2d)
        np.testing.assert_array_equal(from_file[split].pose_3d, derived[split].pose_3d)


def test_synth_values_labels_and_order(synth):
    root, pos3d, cams = synth
    sets = load_h36m(root, "gt", use_cache=False)
    train, test = sets["train"], sets["test"]
    assert len(train) == 3 * 4 * N_FRAMES and len(test) == 2 * 4 * N_FRAMES
    # Order: subject, sequence name (sorted), camera, frame.
    assert list(dict.fromkeys(train.sequence.tolist())) == sorted(SEQS["S1"])
    assert train.camera[:2 * N_FRAMES].tolist() == [0] * N_FRAMES + [1] * N_FRAMES
    assert train.frame[:N_FRAMES].tolist() == list(range(N_FRAMES))
    # Action labels: trailing number stripped, VideoPose3D aliases mapped.
    labels = dict(zip(train.sequence.tolist(), train.action.tolist()))
    assert labels == {"Directions 1": "Directions", "Walking": "Walking", "TakingPhoto 1": "Photo"}
    assert set(test.action.tolist()) == {"WalkDog", "Sitting"}
    # Values against an independent computation for one sequence and camera.
    m = (train.sequence == "Walking") & (train.camera == 2)
    world = pos3d["S1"]["Walking"][:, list(H36M32_TO_17)]
    cam = cams["S1"][2]
    xc = world_to_camera(world, cam)
    np.testing.assert_allclose(train.pose_3d[m], xc - xc[:, :1], atol=1e-6)
    assert np.all(train.pose_3d[:, 0] == 0)
    px = project_to_2d(xc, cam).astype(np.float32)
    np.testing.assert_allclose(train.pose_2d[m], normalize_screen_coordinates(px, cam.res_w, cam.res_h), atol=1e-6)
    meta = train.meta
    assert meta["subjects"] == ["S1"] and meta["split"] == "train" and meta["layout_2d"] == "h36m17"
    assert meta["kps_left"] == list(H36M_JOINTS_LEFT) and meta["joints_right"] == list(H36M_JOINTS_RIGHT)
    assert set(meta["sources"]) == {"positions_3d", "cameras", "positions_2d"}


def test_synth_17_joint_3d_file(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    pos32 = _positions_3d()
    pos17 = {s: {a: v[:, list(H36M32_TO_17)] for a, v in acts.items()} for s, acts in pos32.items()}
    save_npz(root / F3D, positions_3d=pos17)
    save_cameras_h5(root / "cameras.h5", _cameras(pos17))
    root32 = tmp_path / "r32"
    root32.mkdir()
    save_npz(root32 / F3D, positions_3d=pos32)
    save_cameras_h5(root32 / "cameras.h5", _cameras(pos32))
    a, b = load_h36m(root, use_cache=False), load_h36m(root32, use_cache=False)
    np.testing.assert_array_equal(a["train"].pose_3d, b["train"].pose_3d)
    np.testing.assert_array_equal(a["test"].pose_2d, b["test"].pose_2d)


def test_synth_subject_filter(synth):
    root, _, _ = synth
    sets = load_h36m(root, subjects=["S9"], use_cache=False)
    assert len(sets["train"]) == 0 and sets["train"].pose_3d.shape == (0, 17, 3)
    assert set(sets["test"].subject.tolist()) == {"S9"}
    with pytest.raises(DataError, match="subject S5 not found"):
        load_h36m(root, subjects=["S5"], use_cache=False)
    with pytest.raises(ConfigError, match="S3"):
        load_h36m(root, subjects=["S3"], use_cache=False)


def test_synth_sh16_mpii_keypoints_drop_neck_and_reorder(synth):
    root, pos3d, cams = synth
    gt = _gt_px(pos3d, cams)
    # A Stacked-Hourglass file: 16 joints in SH/MPII order (VideoPose3D's sh_pt_mpii metadata).
    sh = {}
    for s, acts in gt.items():
        sh[s] = {}
        for a, views in acts.items():
            lst = []
            for v in views:
                h16 = v[:, list(SH16_FROM_H36M17)]
                out = np.empty_like(h16)
                out[:, list(SH_TO_GT_PERM)] = h16  # SH index SH_TO_GT_PERM[i] holds H36M-16 joint i
                lst.append(out)
            sh[s][a] = lst
    _write_2d(root, "sh_pt_mpii", sh, 16, [[3, 4, 5, 13, 14, 15], [0, 1, 2, 10, 11, 12]])
    ref = load_h36m(root, "gt", use_cache=False)
    sets = load_h36m(root, "sh_pt_mpii", use_cache=False)
    for split in ("train", "test"):
        ps = sets[split]
        assert ps.num_joints == 16 and ps.pose_2d.shape[1:] == (16, 2)
        np.testing.assert_array_equal(ps.pose_3d, ref[split].pose_3d[:, list(SH16_FROM_H36M17)])
        np.testing.assert_allclose(ps.pose_2d, ref[split].pose_2d[:, list(SH16_FROM_H36M17)], atol=1e-7)
        assert ps.meta["num_joints"] == 16 and ps.meta["layout_2d"] == "sh16_mpii"
        assert ps.meta["parents"] == list(SH16_PARENTS)
        assert ps.meta["kps_left"] == list(SH16_JOINTS_LEFT) and ps.meta["kps_right"] == list(SH16_JOINTS_RIGHT)
        assert "Neck/Nose" not in ps.meta["joint_names"]


def test_synth_h36m16_keypoints(synth):
    root, pos3d, cams = synth
    gt = _gt_px(pos3d, cams)
    h16 = {s: {a: [v[:, list(SH16_FROM_H36M17)] for v in views] for a, views in acts.items()} for s, acts in gt.items()}
    _write_2d(root, "h16", h16, 16, [list(SH16_JOINTS_LEFT), list(SH16_JOINTS_RIGHT)])
    ref = load_h36m(root, "gt", use_cache=False)
    sets = load_h36m(root, "h16", use_cache=False)
    np.testing.assert_allclose(sets["train"].pose_2d, ref["train"].pose_2d[:, list(SH16_FROM_H36M17)], atol=1e-7)
    assert sets["train"].meta["layout_2d"] == "h36m16"


def test_synth_32_joint_keypoints(synth):
    root, pos3d, cams = synth
    px32 = {s: {a: [project_to_2d(world_to_camera(v, c), c).astype(np.float32) for c in cams[s]]
                 for a, v in acts.items()} for s, acts in pos3d.items()}
    _write_2d(root, "gt32", px32, 32, [[6, 7, 8, 9, 10, 16, 17, 18, 19, 20, 21, 22, 23],
                                        [1, 2, 3, 4, 5, 24, 25, 26, 27, 28, 29, 30, 31]])
    ref = load_h36m(root, "gt", use_cache=False)
    sets = load_h36m(root, "gt32", use_cache=False)
    np.testing.assert_array_equal(sets["test"].pose_2d, ref["test"].pose_2d)


def test_synth_longer_2d_is_cropped(synth):
    root, pos3d, cams = synth
    gt = _gt_px(pos3d, cams)
    longer = {s: {a: [np.concatenate([v, v[:3] + 1.0]) for v in views] for a, views in acts.items()}
              for s, acts in gt.items()}
    _write_2d(root, "cpn_ft_h36m_dbb", longer, 17, [list(H36M_JOINTS_LEFT), list(H36M_JOINTS_RIGHT)])
    ref = load_h36m(root, "gt", use_cache=False)
    sets = load_h36m(root, "cpn_ft_h36m_dbb", use_cache=False)
    for split in ("train", "test"):
        assert len(sets[split]) == len(ref[split])
        np.testing.assert_array_equal(sets[split].pose_2d, ref[split].pose_2d)
        assert sets[split].frame.max() == N_FRAMES - 1


def test_synth_shorter_2d_is_an_error(synth):
    root, pos3d, cams = synth
    gt = _gt_px(pos3d, cams)
    gt["S9"]["Sitting 2"][3] = gt["S9"]["Sitting 2"][3][:-2]
    _write_2d(root, "det", gt, 17, [list(H36M_JOINTS_LEFT), list(H36M_JOINTS_RIGHT)])
    with pytest.raises(DataError) as e:
        load_h36m(root, "det", use_cache=False)
    msg = str(e.value)
    assert "data_2d_h36m_det.npz" in msg and "S9 'Sitting 2' camera 3 (60457274)" in msg
    assert f"{N_FRAMES - 2} frames" in msg and "\n" not in msg


def test_synth_nan_is_an_error(synth):
    root, pos3d, cams = synth
    gt = _gt_px(pos3d, cams)
    gt["S1"]["Walking"][1][4, 7, 0] = np.nan
    _write_2d(root, "det", gt, 17, [list(H36M_JOINTS_LEFT), list(H36M_JOINTS_RIGHT)])
    with pytest.raises(DataError, match=r"S1 'Walking' camera 1 .*NaN/inf \(first: frame 4\)"):
        load_h36m(root, "det", use_cache=False)


def test_synth_nan_in_3d_is_an_error(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    pos3d = _positions_3d()
    pos3d["S9"]["WalkDog 1"][2, 0, 1] = np.inf
    save_npz(root / F3D, positions_3d=pos3d)
    save_cameras_h5(root / "cameras.h5", _cameras(pos3d))
    with pytest.raises(DataError, match=r"data_3d_h36m.npz: S9 'WalkDog 1': 1 frame\(s\) with NaN/inf"):
        load_h36m(root, use_cache=False)


def test_synth_missing_subject_and_sequence_in_2d(synth):
    root, pos3d, cams = synth
    gt = _gt_px(pos3d, cams)
    del gt["S9"]
    _write_2d(root, "det", gt, 17, [list(H36M_JOINTS_LEFT), list(H36M_JOINTS_RIGHT)])
    with pytest.raises(DataError, match=r"data_2d_h36m_det.npz: subject S9 missing"):
        load_h36m(root, "det", use_cache=False)
    # Loading only S1 does not need S9.
    assert len(load_h36m(root, "det", subjects=["S1"], use_cache=False)["train"]) == 3 * 4 * N_FRAMES
    gt = _gt_px(pos3d, cams)
    del gt["S1"]["Walking"]
    _write_2d(root, "det2", gt, 17, [list(H36M_JOINTS_LEFT), list(H36M_JOINTS_RIGHT)])
    with pytest.raises(DataError, match=r"S1 lacks 1 sequence\(s\) .*'Walking'"):
        load_h36m(root, "det2", use_cache=False)


def test_synth_extra_2d_sequences_are_ignored_with_warning(synth):
    root, pos3d, cams = synth
    gt = _gt_px(pos3d, cams)
    gt["S1"]["Discussion 2"] = gt["S1"]["Walking"]
    gt["S2"] = {"Walking": gt["S1"]["Walking"]}
    _write_2d(root, "det", gt, 17, [list(H36M_JOINTS_LEFT), list(H36M_JOINTS_RIGHT)])
    sets = load_h36m(root, "det", use_cache=False)
    assert "Discussion 2" not in set(sets["train"].sequence.tolist())
    assert any("2 sequence(s)" in w for w in sets["train"].meta["warnings"])
    rep = scan_h36m(root, "det")
    assert rep.problems == [] and sum("are ignored" in w for w in rep.warnings) == 1


def test_synth_wrong_camera_count_and_joint_count(synth):
    root, pos3d, cams = synth
    gt = _gt_px(pos3d, cams)
    gt["S1"]["Walking"] = gt["S1"]["Walking"][:3]
    gt["S9"]["WalkDog 1"][0] = gt["S9"]["WalkDog 1"][0][:, :16]
    _write_2d(root, "det", gt, 17, [list(H36M_JOINTS_LEFT), list(H36M_JOINTS_RIGHT)])
    rep = scan_h36m(root, "det")
    assert any("S1 'Walking': 3 camera(s), cameras.h5 has 4" in p for p in rep.problems)
    assert any("S9 'WalkDog 1' camera 0 (54138969): 16 joints, metadata num_joints is 17" in p for p in rep.problems)
    with pytest.raises(DataError, match="and 1 more problem"):
        load_h36m(root, "det", use_cache=False)


def test_synth_unsupported_layout(synth):
    root, pos3d, cams = synth
    coco_sym = [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]]
    _write_2d(root, "detectron_pt_coco", _gt_px(pos3d, cams), 17, coco_sym, layout_name="coco")
    with pytest.raises(DataError, match="unsupported 2D joint layout.*'coco'"):
        load_h36m(root, "detectron_pt_coco", use_cache=False)
    save_npz(root / "data_2d_h36m_nometa.npz", positions_2d=_gt_px(pos3d, cams))
    with pytest.raises(DataError, match="no 'metadata'"):
        load_h36m(root, "nometa", use_cache=False)


def test_synth_missing_files(synth, tmp_path):
    root, _, _ = synth
    with pytest.raises(DataError, match="data_2d_h36m_cpn_ft_h36m_dbb.npz: file not found"):
        load_h36m(root, "cpn_ft_h36m_dbb", use_cache=False)
    with pytest.raises(DataError, match="data_3d_h36m.npz: file not found"):
        load_h36m(tmp_path, use_cache=False)
    with pytest.raises(ConfigError):
        load_h36m(root, "../evil", use_cache=False)
    rep = scan_h36m(tmp_path / "nowhere", "gt")
    assert any("data_3d_h36m.npz: file not found" in p for p in rep.problems)


def test_canonical_action_names():
    assert canonical_action("Walking 1") == "Walking"
    assert canonical_action("Walking") == "Walking"
    assert canonical_action("WalkDog 1") == "WalkDog"
    assert canonical_action("WalkTogether 2") == "WalkTogether"
    assert canonical_action("SittingDown 1") == "SittingDown"
    assert canonical_action("Sitting 2") == "Sitting"
    assert canonical_action("Photo") == "Photo"
    assert canonical_action("TakingPhoto 1") == "Photo"
    assert canonical_action("WalkingDog") == "WalkDog"
    assert canonical_action("Waiting_3") == "Waiting"
    assert canonical_action("Dancing 1") is None
    assert canonical_action("1") is None


def test_synth_unknown_action_is_an_error(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    pos3d = _positions_3d()
    pos3d["S1"]["Dancing 1"] = pos3d["S1"]["Walking"]
    save_npz(root / F3D, positions_3d=pos3d)
    save_cameras_h5(root / "cameras.h5", _cameras(pos3d))
    with pytest.raises(DataError, match=r"S1 'Dancing 1': action name maps to none of the 15 H36M actions"):
        load_h36m(root, use_cache=False)


def test_synth_scan_lists_every_problem(synth):
    root, pos3d, cams = synth
    gt = _gt_px(pos3d, cams)
    gt["S1"]["Walking"][0][0, 0, 0] = np.nan
    gt["S9"]["Sitting 2"][2] = gt["S9"]["Sitting 2"][2][:2]
    del gt["S1"]["Directions 1"]
    _write_2d(root, "det", gt, 17, [list(H36M_JOINTS_LEFT), list(H36M_JOINTS_RIGHT)])
    rep = scan_h36m(root, "det")
    assert len(rep.problems) == 3 and not rep.ok
    assert rep.subjects == ["S1", "S9"] and rep.num_sequences == 5 and rep.num_frames == 5 * N_FRAMES
    assert [r["split"] for r in rep.rows] == ["train", "test"]
    assert rep.layout_2d == "h36m17" and rep.joints_3d == 32
    assert any("absent" in w for w in rep.warnings)  # S5 S6 S7 S8 S11 not in the synthetic 3D


def test_synth_load_uses_cache(synth, tmp_path, monkeypatch):
    root, _, _ = synth
    calls = []
    real_build = h36m_mod.build_h36m
    monkeypatch.setattr(h36m_mod, "build_h36m", lambda *a, **k: calls.append(1) or real_build(*a, **k))
    cache = tmp_path / "cache"
    before = sorted(root.rglob("*"))
    a = load_h36m(root, cache_dir=cache)
    b = load_h36m(root, cache_dir=cache)
    assert len(calls) == 1
    for split in ("train", "test"):
        np.testing.assert_array_equal(a[split].pose_2d, b[split].pose_2d)
        np.testing.assert_array_equal(a[split].sequence, b[split].sequence)
        assert b[split].meta["parents"] == a[split].meta["parents"]
    load_h36m(root, cache_dir=cache, subjects=["S1"])  # another key
    assert len(calls) == 2
    assert sorted(root.rglob("*")) == before  # nothing written into the data folder
    assert len(list((cache / "h36m").glob("*.h5"))) == 2
    with pytest.raises(ConfigError, match="must not be inside the data folder"):
        load_h36m(root, cache_dir=root / "cache")


def test_write_gt_2d_is_safe_to_read(tmp_path):
    pos3d = _positions_3d()
    gt = derive_gt_2d(pos3d, _cameras(pos3d))
    path = write_gt_2d(tmp_path / "data_2d_h36m_gt.npz", gt)
    data = load_npz(path)
    assert set(data) == {"positions_2d", "metadata"}
    np.testing.assert_array_equal(data["positions_2d"]["S1"]["Walking"][3], gt["S1"]["Walking"][3])
