"""Tests for harness.data.gmm2d: DiffPose's (frames, 17, kernels, 5) GMM 2D layout."""

from __future__ import annotations

import re

import numpy as np
import pytest

from harness.data.gmm2d import (
    GMM2D_FIELDS,
    DetectorErrorGMM,
    fit_detector_error_gmm,
    gmm_2d_from_detections,
    write_gmm_2d_npz,
)
from harness.errors import DataError
from harness.safeio import load_npz, save_npz


def _model(J: int = 17) -> DetectorErrorGMM:
    w = np.tile([0.7, 0.2, 0.1], (J, 1))
    mu = np.zeros((J, 3, 2))
    mu[:, 0] = [1.0, -2.0]
    mu[:, 1] = [-4.0, 3.0]
    mu[:, 2] = [10.0, 10.0]
    sd = np.zeros((J, 3, 2))
    sd[:, 0] = [2.0, 3.0]
    sd[:, 1] = [5.0, 6.0]
    sd[:, 2] = [20.0, 25.0]
    return DetectorErrorGMM(w, mu, sd)


def test_layout_fields_and_pinned_values():
    assert GMM2D_FIELDS == ("weight", "mu_u", "mu_v", "sigma_u", "sigma_v")
    kp = np.zeros((4, 17, 2))
    kp[2, 5] = [500.0, 250.0]
    out = gmm_2d_from_detections(kp, _model(), 3)
    assert out.shape == (4, 17, 3, 5) and out.dtype == np.float64
    # weights are renormalised in float64 (1-ulp changes at most)
    np.testing.assert_allclose(out[2, 5, 0], [0.7, 501.0, 248.0, 2.0, 3.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(out[2, 5, 1], [0.2, 496.0, 253.0, 5.0, 6.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(out[0, 0, 2], [0.1, 10.0, 10.0, 20.0, 25.0], rtol=1e-15, atol=0)
    # sigma_scale to DiffPose's normalised units (1000 px wide): 2 / 1000
    out_n = gmm_2d_from_detections(kp, _model(), 3, sigma_scale=2 / 1000)
    np.testing.assert_allclose(out_n[2, 5, 0], [0.7, 501.0, 248.0, 0.004, 0.006])


def test_kernel_truncation_and_padding():
    kp = np.full((2, 17, 2), 100.0)
    two = gmm_2d_from_detections(kp, _model(), 2)
    np.testing.assert_allclose(two[0, 0, :, 0], [0.7 / 0.9, 0.2 / 0.9])
    five = gmm_2d_from_detections(kp, _model(), 5)
    assert five.shape == (2, 17, 5, 5)
    np.testing.assert_allclose(five[1, 3, 3], [0.0, 100.0, 100.0, 2.0, 3.0], rtol=1e-15, atol=0)  # pad: detection, heaviest sigma
    np.testing.assert_allclose(five[..., 0].sum(-1), 1.0, rtol=0, atol=1e-15)


def test_diffpose_generator_can_read_kernels():
    """Re-state PoseGenerator_gmm's kernel draw: np.random.choice(p=column 0), mu = 1:3, scale = 3:5."""
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 1000, size=(50, 17, 2))
    gmm = gmm_2d_from_detections(kp, _model(), 5, sigma_scale=2 / 1000)
    np.random.seed(0)
    for f in range(gmm.shape[0]):
        frame = gmm[f]
        kern = np.zeros((17, 5))
        for i in range(17):
            kern[i] = frame[i, np.random.choice(gmm.shape[2], 1, p=frame[i, :, 0]).item()]
        assert np.all(kern[:, 3:] > 0)


def test_fit_recovers_two_component_error():
    rng = np.random.default_rng(1)
    n, J = 4000, 3
    gt = rng.uniform(0, 1000, size=(n, J, 2))
    comp = rng.random((n, J)) < 0.75
    off = np.where(comp[..., None], rng.normal([0.0, 0.0], [3.0, 4.0], size=(n, J, 2)),
                   rng.normal([30.0, -20.0], [10.0, 8.0], size=(n, J, 2)))
    pred = gt - off  # so gt - pred = off
    m = fit_detector_error_gmm(pred, gt, kernels=2, seed=0)
    assert m.weights.shape == (J, 2)
    np.testing.assert_allclose(m.weights, np.tile([0.75, 0.25], (J, 1)), atol=0.03)
    np.testing.assert_allclose(m.means[:, 0], np.tile([0.0, 0.0], (J, 1)), atol=0.5)
    np.testing.assert_allclose(m.means[:, 1], np.tile([30.0, -20.0], (J, 1)), atol=1.5)
    np.testing.assert_allclose(m.sigmas[:, 0], np.tile([3.0, 4.0], (J, 1)), rtol=0.08)
    assert DetectorErrorGMM.from_dict(m.to_dict()).to_dict() == m.to_dict()
    again = fit_detector_error_gmm(pred, gt, kernels=2, seed=0)
    np.testing.assert_array_equal(again.means, m.means)


def test_write_npz_videopose3d_style(tmp_path):
    kp = np.zeros((6, 17, 2))
    arr = gmm_2d_from_detections(kp, _model(), 3)
    positions = {"S1": {"Walking 1": [arr, arr[:5]]}, "S5": {"Eating": [arr]}}
    meta = {"layout_name": "h36m", "num_joints": 17,
            "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    path = tmp_path / "data_2d_h36m_test_gmm.npz"
    write_gmm_2d_npz(path, positions, meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left behind
    back = load_npz(path)
    assert back["metadata"] == meta
    np.testing.assert_array_equal(back["positions_2d"]["S1"]["Walking 1"][1], arr[:5])
    # DiffPose's own read
    raw = np.load(path, allow_pickle=True)
    assert sorted(raw.files) == ["metadata", "positions_2d"]
    kps = raw["positions_2d"].item()
    assert kps["S5"]["Eating"][0].shape == (6, 17, 3, 5)


def test_write_npz_rejects_bad_weights(tmp_path):
    bad = gmm_2d_from_detections(np.zeros((2, 17, 2)), _model(), 3)
    bad[0, 0, 0, 0] = 0.5
    with pytest.raises(DataError, match=r"positions_2d\['S1'\]\['A'\]\[0\]: kernel weights"):
        write_gmm_2d_npz(tmp_path / "x.npz", {"S1": {"A": [bad]}}, {})
    with pytest.raises(DataError, match="expected \\(frames, joints, kernels, 5\\)"):
        write_gmm_2d_npz(tmp_path / "x.npz", {"S1": {"A": [np.zeros((2, 17, 5))]}}, {})
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------- loading: --keypoints <k>_gmm
from harness.data.h36m import load_h36m, scan_h36m  # noqa: E402
from tests.data.test_h36m import F3D, _cameras, _gt_px, _positions_3d  # noqa: E402  (tiny H36M files)

H36M_SYMMETRY = [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
GMM_META = {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": H36M_SYMMETRY}


def _tiny_kernels(gt_px: np.ndarray, rng: np.random.Generator, K: int = 3) -> np.ndarray:
    """(F, 17, K, 5): random weights (float64, sum 1), mu = GT + a few px, positive sigmas."""
    F = gt_px.shape[0]
    out = np.empty((F, 17, K, 5))
    w = rng.dirichlet(np.ones(K), size=(F, 17))
    out[..., 0] = w / w.sum(-1, keepdims=True)
    out[..., 1:3] = gt_px[:, :, None, :] + rng.normal(0, 5.0, (F, 17, K, 2))
    out[..., 3:5] = rng.uniform(0.002, 0.02, (F, 17, K, 2))
    return out


@pytest.fixture
def gmm_root(tmp_path):
    """A tiny H36M folder (S1 train, S9 test, 6 frames a sequence, 4 cameras) with data_2d_h36m_x_gmm.npz."""
    from harness.camera import load_cameras_h5, save_cameras_h5

    root = tmp_path / "h36m"
    root.mkdir()
    pos3d = _positions_3d()
    save_npz(root / F3D, positions_3d=pos3d)
    save_cameras_h5(root / "cameras.h5", _cameras(pos3d))
    cams = load_cameras_h5(root / "cameras.h5")
    rng = np.random.default_rng(7)
    gt = _gt_px(pos3d, cams)
    positions = {s: {a: [_tiny_kernels(v, rng) for v in views] for a, views in acts.items()} for s, acts in gt.items()}
    write_gmm_2d_npz(root / "data_2d_h36m_x_gmm.npz", positions, dict(GMM_META))
    return root, positions, cams


def _expected(ps, positions, cams, pick):
    """Per sample, ``pick(kernels (17, K, 5) as stored) -> (17, 2) px``, normalised like the loader."""
    from harness.camera import normalize_screen_coordinates

    out = np.empty(ps.pose_2d.shape, np.float32)
    for i, (s, a, c, f) in enumerate(zip(ps.subject, ps.sequence, ps.camera, ps.frame)):
        cam = cams[str(s)][int(c)]
        out[i] = normalize_screen_coordinates(pick(positions[s][a][int(c)][int(f)]), cam.res_w, cam.res_h)
    return out


def test_loader_pose_2d_is_the_heaviest_kernels_normalised_mu(gmm_root):
    from harness.camera import normalize_screen_coordinates

    root, positions, cams = gmm_root
    sets = load_h36m(root, "x_gmm", use_cache=False)
    gt = load_h36m(root, "gt", use_cache=False)
    assert scan_h36m(root, "x_gmm").problems == []  # `harness data check --keypoints x_gmm`
    for split, n in (("train", 3 * 4 * 6), ("test", 2 * 4 * 6)):
        ps = sets[split]
        assert len(ps) == n and ps.meta["keypoints"] == "x_gmm" and ps.meta["layout_2d"] == "h36m17"
        heaviest = _expected(ps, positions, cams, lambda k: k[np.arange(17), np.argmax(k[:, :, 0], axis=1), 1:3])
        np.testing.assert_array_equal(ps.pose_2d, heaviest)  # exactly
        np.testing.assert_array_equal(ps.pose_3d, gt[split].pose_3d)
        g = ps.meta["gmm_2d"]
        assert g.shape == (n, 17, 3, 5) and g.dtype == np.float32
        for i in (0, 17, n - 1):
            s, a, c, f = ps.subject[i], ps.sequence[i], int(ps.camera[i]), int(ps.frame[i])
            stored = positions[s][a][c][f]
            cam = cams[str(s)][c]
            np.testing.assert_array_equal(g[i][..., [0, 3, 4]], stored[..., [0, 3, 4]].astype(np.float32))
            np.testing.assert_array_equal(g[i][..., 1:3],
                                          normalize_screen_coordinates(stored[..., 1:3], cam.res_w, cam.res_h)
                                          .astype(np.float32))
        # pose_2d is gmm_2d's heaviest mu, bit for bit
        h = np.argmax(g[..., 0], axis=-1)
        np.testing.assert_array_equal(ps.pose_2d, np.take_along_axis(g[..., 1:3], h[..., None, None], 2)[:, :, 0])


def test_loader_subset_cache_and_load_data_strides(gmm_root, tmp_path, monkeypatch):
    from harness.config import resolve_config
    from harness.data import load_data

    root, positions, cams = gmm_root
    nocache = load_h36m(root, "x_gmm", use_cache=False)
    a = load_h36m(root, "x_gmm", cache_dir=tmp_path / "cache")
    b = load_h36m(root, "x_gmm", cache_dir=tmp_path / "cache")  # from the cache file
    assert len(list((tmp_path / "cache" / "h36m").glob("*.h5"))) == 1
    for split in ("train", "test"):
        for got in (a[split], b[split]):
            np.testing.assert_array_equal(got.meta["gmm_2d"], nocache[split].meta["gmm_2d"])
            np.testing.assert_array_equal(got.pose_2d, nocache[split].pose_2d)
    # keyed by the file's content: other kernels, other arrays
    changed = {s: {a_: [v[:, :, ::-1].copy() for v in views] for a_, views in acts.items()}
               for s, acts in positions.items()}
    write_gmm_2d_npz(root / "data_2d_h36m_x_gmm.npz", changed, dict(GMM_META))
    c = load_h36m(root, "x_gmm", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(c["train"].meta["gmm_2d"], nocache["train"].meta["gmm_2d"][:, :, ::-1])
    # PoseSet.subset selects the kernels with the rows
    keep = np.arange(len(c["test"])) % 3 == 1
    sub = c["test"].subset(keep)
    np.testing.assert_array_equal(sub.meta["gmm_2d"], c["test"].meta["gmm_2d"][keep])
    # load_data's strides; gmm_test_input 'sample' draws one kernel per sample and joint from the seed
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache2"))
    cfg = resolve_config("smoke", {"data_root": str(root), "keypoints": "x_gmm", "train_stride": 2, "test_stride": 3})
    data = load_data(cfg)
    for split, stride in (("train", 2), ("test", 3)):
        ps, full = data[split], c[split]
        np.testing.assert_array_equal(ps.meta["gmm_2d"], full.meta["gmm_2d"][::stride])
        np.testing.assert_array_equal(ps.pose_2d, full.pose_2d[::stride])
    assert len(data["train"].meta["pose_2d_gt"]) == len(data["train"])
    drawn = load_data(cfg.replace(gmm_test_input="sample"))["test"]
    again = load_data(cfg.replace(gmm_test_input="sample"))["test"]
    np.testing.assert_array_equal(drawn.pose_2d, again.pose_2d)
    assert drawn.meta["gmm_test_input"] == "sample"
    g = drawn.meta["gmm_2d"]
    hit = (g[..., 1:3] == drawn.pose_2d[:, :, None, :]).all(-1)  # (N, 17, K): the drawn kernel's mu
    assert hit.any(-1).all()
    assert not np.array_equal(drawn.pose_2d, data["test"].pose_2d)  # not just the heaviest
    other = load_data(cfg.replace(gmm_test_input="sample", seed=1))["test"]
    assert not np.array_equal(other.pose_2d, drawn.pose_2d)
    with pytest.raises(DataError, match=r"gmm_test_input 'sample': the test split has no per-frame GMM 2D kernels"):
        load_data(cfg.replace(keypoints="gt", gmm_test_input="sample"))


def _write_raw(root, name, positions):
    save_npz(root / f"data_2d_h36m_{name}.npz", positions_2d=positions, metadata=dict(GMM_META))


@pytest.mark.parametrize("damage, message", [
    (lambda a: a.__setitem__((2, 3, slice(None), 0), 0.3),
     r"kernel weights \(column 0\) must sum to 1 per joint within 1e-06 \(frame 2 joint 3: 0\.9\)$"),
    (lambda a: a.__setitem__((1, 0, 1, 0), 1.5), r"kernel weights \(column 0\) must be in \[0, 1\]"),
    (lambda a: a.__setitem__((0, 5, 2, 4), -0.01), r"sigmas \(columns 3:5\) must be > 0"),
    (lambda a: a.__setitem__((0, 5, 2, 3), 0.0), r"sigmas \(columns 3:5\) must be > 0"),
    (lambda a: a.__setitem__((4, 1, 0, 2), np.inf), r"1 frame\(s\) with NaN/inf \(first: frame 4\)"),
    ("4", r"expected a \(frames, joints, kernels, 5\) array of \[weight, mu_u, mu_v, sigma_u, sigma_v\], "
          r"got \(6, 17, 3, 4\)"),
    ("2d", r"expected a \(frames, joints, kernels, 5\) array .*got \(6, 17, 2\)"),
])
def test_malformed_gmm_file_is_a_one_line_error_naming_it(gmm_root, damage, message):
    root, positions, _ = gmm_root
    bad = {s: {a: list(views) for a, views in acts.items()} for s, acts in positions.items()}
    arr = bad["S1"]["Walking"][2].copy()
    if damage == "4":
        arr = arr[..., :4]
    elif damage == "2d":
        arr = arr[:, :, 0, 1:3]
    else:
        damage(arr)
    bad["S1"]["Walking"][2] = arr
    _write_raw(root, "bad_gmm", bad)
    path = root / "data_2d_h36m_bad_gmm.npz"
    with pytest.raises(DataError) as e:
        load_h36m(root, "bad_gmm", use_cache=False)
    line = str(e.value)
    assert "\n" not in line
    assert re.match(re.escape(f"{path}: S1 'Walking' camera 2 (") + r"\d+\): " + message, line), line
    assert scan_h36m(root, "bad_gmm").problems == [line]


def test_gmm_file_kernel_counts_layout_and_missing_file(gmm_root):
    root, positions, _ = gmm_root
    mixed = {s: {a: list(views) for a, views in acts.items()} for s, acts in positions.items()}
    mixed["S9"]["Sitting 2"][0] = gmm_2d_from_detections(np.zeros((6, 17, 2)), _model(), 5)
    _write_raw(root, "mixed_gmm", mixed)
    with pytest.raises(DataError, match=re.escape(f"{root / 'data_2d_h36m_mixed_gmm.npz'}: arrays have different "
                                                  "kernel counts [3, 5]")):
        load_h36m(root, "mixed_gmm", use_cache=False)
    save_npz(root / "data_2d_h36m_sh_gmm.npz", positions_2d=positions,
             metadata={"num_joints": 16, "keypoints_symmetry": [[3, 4, 5, 13, 14, 15], [0, 1, 2, 10, 11, 12]]})
    with pytest.raises(DataError, match=r"GMM 2D kernels need the 17 joints in H36M order .*sh16_mpii"):
        load_h36m(root, "sh_gmm", use_cache=False)
    with pytest.raises(DataError, match=re.escape(f"{root / 'data_2d_h36m_cpn_gmm.npz'}: file not found (2D keypoints "
                                                  "'cpn_gmm'; `harness data gmm --keypoints cpn` writes one)")):
        load_h36m(root, "cpn_gmm", use_cache=False)


def test_draw_kernel_index_frequencies_and_padding():
    from harness.data.gmm2d import draw_kernel_index

    rng = np.random.default_rng(0)
    n = 200_000
    w = np.tile([0.25, 0.0, 0.75, 0.0], (n, 1))
    idx = draw_kernel_index(w, rng)
    assert set(np.unique(idx)) == {0, 2}  # weight-0 kernels (in the middle, and padding) never drawn
    assert abs((idx == 0).mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / n)
    assert (draw_kernel_index(np.tile([1.0, 0.0, 0.0], (1000, 1)), rng) == 0).all()
    # weights that sum to 1 - 1e-7 (float32 storage): the last positive kernel still closes the CDF
    assert draw_kernel_index(np.array([[0.3, 0.7 - 1e-7, 0.0]]), np.random.default_rng(1)).max() <= 1
