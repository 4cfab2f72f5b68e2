"""DiffPose's per-frame GMM 2D input (``data_2d_h36m_*_gmm.npz``), whose conversion was never released.

Layout (read off the released loader, GONGJIA0208/Diffpose commit 11813f1)
---------------------------------------------------------------------------
``positions_2d[subject][action]`` is a list over cameras of arrays ``(frames, 17, kernels, 5)``;
the last axis is ``[weight, mu_u, mu_v, sigma_u, sigma_v]``:

- ``common/data_utils.py::create_2d_data`` reads ``np.load(path, allow_pickle=True)['positions_2d'].item()``,
  trims each camera's array to the mocap length, and normalises ``kps[..., 1:3]`` with
  ``normalize_screen_coordinates(.., w=res_w, h=res_h)`` (``X / w * 2 - [1, h / w]``): so **mu is
  stored in pixels**; columns 0 and 3:5 are left as stored.
- ``common/generators.py::PoseGenerator_gmm`` takes ``kernel_n = arr.shape[2]`` and, per joint, draws
  ``np.random.choice(kernel_n, 1, p=arr[j, :, 0])`` (column 0 is the kernel **weight**; numpy
  demands it sum to 1 within ~1.5e-8), then uses ``kernel[1:3]`` as the 2D input (``mu``) and
  ``kernel[3:5]`` as the multiplier of a unit normal on the u, v channels of the training noise
  (``e = e*(targets_noise_scale)`` in ``runners/diffpose_frame.py``). So columns 3:5 act as a
  **standard deviation in normalised screen units** (the code calls it ``kernel_variance``; it is
  never normalised by the loader).
- Users report (GONGJIA0208/Diffpose issue #19) that the released files have 3 kernels whose
  weights are ``1, 0, 0`` for every sample; jjkislele/monoMotionDiff ``prepare_2d_poses.py`` reads
  ``arr[:, :, :, 0, 1:3]`` (kernel 0's mu) as the 2D pose.

This module's construction
--------------------------
A per-joint 2D GMM (diagonal covariance) of the detector's correction ``offset = gt_2d - pred_2d`` is
fitted on training frames that have GT (:func:`fit_detector_error_gmm`). Each frame's kernels are then
``weight = w_k``, ``mu = detection + mean_k`` (where the true joint is expected to be),
``sigma = sqrt(diag var_k) * sigma_scale`` (:func:`gmm_2d_from_detections`). Kernels are ordered by
weight, heaviest first. Fit in pixels and pass ``sigma_scale = 2 / res_w`` to get DiffPose's units
(mu in px, sigma normalised). Arrays are written as float64 so the weights pass ``np.random.choice``'s
sum check exactly as stored.

Reading and drawing
-------------------
``--keypoints <name>_gmm`` reads ``data_2d_h36m_<name>_gmm.npz`` (:func:`harness.data.h36m.load_h36m`;
each array checked by :func:`gmm_array_problem`): the PoseSet's ``pose_2d`` is the heaviest kernel's
mu, normalised, and ``meta["gmm_2d"]`` holds the kernels (N, J, K, 5) float32 with mu normalised the
same way. :func:`draw_kernel_index` draws a kernel per sample and joint by weight (numpy; the
training noise ``kernels``, :class:`harness.noise.KernelNoise`, does the same in torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError, DataError

__all__ = ["GMM2D_FIELDS", "GMM_SUFFIX", "DetectorErrorGMM", "fit_detector_error_gmm", "gmm_2d_from_detections",
           "write_gmm_2d_npz", "gmm_array_problem", "heaviest_kernel", "draw_kernel_index", "kernel_mu",
           "sample_test_2d"]

GMM2D_FIELDS = ("weight", "mu_u", "mu_v", "sigma_u", "sigma_v")
WEIGHT, MU, SIGMA = 0, slice(1, 3), slice(3, 5)
GMM_SUFFIX = "_gmm"  # keypoints '<name>_gmm' -> data_2d_h36m_<name>_gmm.npz, this layout
LOADER_WEIGHT_TOL = 1e-6


def gmm_array_problem(arr: Any, frames: int | None = None) -> str | None:
    """What is wrong with one camera's kernels ``(frames, joints, kernels, 5)`` (over its first
    ``frames`` rows), or None: the shape, a non-float dtype, NaN/inf, weights outside [0, 1] or not
    summing to 1 per joint within 1e-6, sigmas not > 0."""
    if not isinstance(arr, np.ndarray) or arr.ndim != 4 or arr.shape[-1] != 5 or arr.shape[2] < 1:
        shape = getattr(arr, "shape", type(arr).__name__)
        return f"expected a (frames, joints, kernels, 5) array of [weight, mu_u, mu_v, sigma_u, sigma_v], got {shape}"
    if not np.issubdtype(arr.dtype, np.floating):
        return f"dtype {arr.dtype} is not floating point"
    a = arr[:frames] if frames is not None else arr
    bad = ~np.isfinite(a).all(axis=(1, 2, 3))
    if bad.any():
        return f"{int(bad.sum())} frame(s) with NaN/inf (first: frame {int(np.argmax(bad))})"
    w = a[..., WEIGHT].astype(np.float64)
    if np.any(w < 0) or np.any(w > 1):
        return "kernel weights (column 0) must be in [0, 1]"
    off = np.abs(w.sum(axis=-1) - 1.0)
    if np.any(off > LOADER_WEIGHT_TOL):
        f, j = (int(i) for i in np.unravel_index(np.argmax(off), off.shape))
        return (f"kernel weights (column 0) must sum to 1 per joint within {LOADER_WEIGHT_TOL:g} "
                f"(frame {f} joint {j}: {w[f, j].sum():.9g})")
    if np.any(a[..., SIGMA] <= 0):
        return "sigmas (columns 3:5) must be > 0"
    return None


def heaviest_kernel(weights: np.ndarray) -> np.ndarray:
    """Index of the heaviest kernel over the last axis (the first on ties)."""
    return np.argmax(np.asarray(weights), axis=-1)


def _cdf(weights: np.ndarray) -> np.ndarray:
    """Cumulative weights, normalised, with every entry from the last positive weight on set to exactly
    1: a uniform u in [0, 1) then never lands on a weight-0 kernel (padding) through rounding."""
    w = np.asarray(weights, dtype=np.float64)
    cdf = np.cumsum(w, axis=-1)
    cdf /= cdf[..., -1:]
    K = w.shape[-1]
    last = K - 1 - np.argmax(w[..., ::-1] > 0, axis=-1)
    cdf[np.arange(K) >= last[..., None]] = 1.0
    return cdf


def draw_kernel_index(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One kernel per row of ``weights (..., K)``, kernel k with probability ``w_k`` (as DiffPose's
    ``np.random.choice(K, p=w)``, vectorised: one ``rng.random`` per row, inverse CDF)."""
    cdf = _cdf(weights)
    u = rng.random(cdf.shape[:-1])
    return (cdf <= u[..., None]).sum(axis=-1)


def kernel_mu(gmm_2d: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``gmm_2d (..., K, 5)``'s mu (..., 2) at kernel ``index (...)``."""
    return np.take_along_axis(gmm_2d[..., MU], np.asarray(index)[..., None, None], axis=-2)[..., 0, :]


def sample_test_2d(test, seed: int):
    """``test`` (a PoseSet of ``*_gmm`` keypoints) with ``pose_2d`` one kernel's mu per sample and joint,
    drawn by weight from ``np.random.default_rng(seed)`` (config ``gmm_test_input: sample``: DiffPose's
    ``test_hyber`` draws a kernel per joint as in training); ``meta["gmm_test_input"] = "sample"``. A new
    PoseSet: ``test`` is left as it is."""
    import dataclasses

    g = test.meta.get("gmm_2d")
    if g is None:
        raise DataError(f"gmm_test_input 'sample': the test split has no per-frame GMM 2D kernels (keypoints "
                        f"'{test.meta.get('keypoints')}'); use --keypoints <name>_gmm or gmm_test_input heaviest")
    idx = draw_kernel_index(g[..., WEIGHT], np.random.default_rng(seed))
    return dataclasses.replace(test, pose_2d=kernel_mu(g, idx).astype(np.float32),
                               meta=dict(test.meta, gmm_test_input="sample"))


@dataclass
class DetectorErrorGMM:
    """Per-joint diagonal 2D mixtures of ``gt_2d - pred_2d``, components sorted by weight (desc).

    ``weights`` (J, K), ``means`` (J, K, 2), ``sigmas`` (J, K, 2) standard deviations, float64.
    """

    weights: np.ndarray
    means: np.ndarray
    sigmas: np.ndarray
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.weights = np.asarray(self.weights, dtype=np.float64)
        self.means = np.asarray(self.means, dtype=np.float64)
        self.sigmas = np.asarray(self.sigmas, dtype=np.float64)
        w, mu, sd = self.weights, self.means, self.sigmas
        if w.ndim != 2 or mu.shape != w.shape + (2,) or sd.shape != w.shape + (2,):
            raise DataError(f"detector error GMM: inconsistent shapes weights {w.shape}, means {mu.shape}, "
                            f"sigmas {sd.shape}; expected (J, K), (J, K, 2), (J, K, 2)")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(mu)) and np.all(np.isfinite(sd))):
            raise DataError("detector error GMM: weights, means and sigmas must be finite")
        if np.any(w < 0) or np.any(np.abs(w.sum(axis=1) - 1.0) > 1e-6) or np.any(sd <= 0):
            raise DataError("detector error GMM: weights must be >= 0 and sum to 1 per joint; sigmas must be > 0")

    @property
    def num_joints(self) -> int:
        return int(self.weights.shape[0])

    @property
    def kernels(self) -> int:
        return int(self.weights.shape[1])

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.weights.tolist(), "means": self.means.tolist(), "sigmas": self.sigmas.tolist(),
                "info": dict(self.info)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DetectorErrorGMM":
        try:
            return cls(d["weights"], d["means"], d["sigmas"], info=dict(d.get("info") or {}))
        except (KeyError, TypeError):
            raise DataError("detector error GMM state: needs 'weights', 'means' and 'sigmas'") from None


def fit_detector_error_gmm(pred_2d: np.ndarray, gt_2d: np.ndarray, kernels: int = 5, seed: int = 0,
                           max_samples: int = 20000, reg_covar: float = 1e-6) -> DetectorErrorGMM:
    """Fit, per joint, a ``kernels``-component diagonal GMM (sklearn, ``random_state=seed``) of
    ``gt_2d - pred_2d`` over training frames ``(N, J, 2)``; at most ``max_samples`` frames are used
    (same rows for every joint, drawn with ``np.random.default_rng(seed)``)."""
    from sklearn.mixture import GaussianMixture

    pred = np.asarray(pred_2d, dtype=np.float64)
    gt = np.asarray(gt_2d, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] != 2:
        raise DataError(f"detector error GMM fit: pred_2d {pred.shape} and gt_2d {gt.shape} must both be (N, J, 2)")
    kernels = int(kernels)
    if kernels < 1:
        raise ConfigError(f"gmm2d.kernels: must be >= 1, got {kernels}")
    offset = gt - pred
    finite = np.all(np.isfinite(offset), axis=(1, 2))
    offset = offset[finite]
    n = offset.shape[0]
    if n < kernels:
        raise DataError(f"detector error GMM fit: {n} finite frames, fewer than kernels={kernels}")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=int(max_samples), replace=False)) if n > max_samples else np.arange(n)
    J = offset.shape[1]
    w = np.zeros((J, kernels))
    mu = np.zeros((J, kernels, 2))
    sd = np.zeros((J, kernels, 2))
    for j in range(J):
        gm = GaussianMixture(n_components=kernels, covariance_type="diag", random_state=seed, reg_covar=reg_covar)
        gm.fit(offset[rows, j])
        order = np.argsort(-gm.weights_, kind="stable")
        w[j] = gm.weights_[order] / gm.weights_.sum()
        mu[j] = gm.means_[order]
        sd[j] = np.sqrt(gm.covariances_[order])
    info = {"seed": int(seed), "kernels": kernels, "num_fit_samples": int(len(rows)), "num_frames": int(n),
            "offset": "gt_2d - pred_2d"}
    return DetectorErrorGMM(w, mu, sd, info=info)


def gmm_2d_from_detections(keypoints_2d: np.ndarray, per_joint_model: DetectorErrorGMM, kernels: int | None = None,
                           sigma_scale: float | np.ndarray = 1.0, dtype=np.float64) -> np.ndarray:
    """Per-frame kernels ``(F, J, kernels, 5)`` = ``[w_k, det_u + mean_ku, det_v + mean_kv, s_ku, s_kv]``.

    ``kernels`` (default: the model's K): fewer keeps the heaviest components, weights renormalised;
    more pads with weight-0 kernels (mu = the detection, sigma = the heaviest kernel's), as the
    released files pad theirs. ``sigma_scale`` multiplies sigma (scalar or per-(u, v)), e.g.
    ``2 / res_w`` to turn a pixel fit into DiffPose's normalised sigma.
    """
    kp = np.asarray(keypoints_2d, dtype=np.float64)
    m = per_joint_model
    if kp.ndim != 3 or kp.shape[1:] != (m.num_joints, 2):
        raise DataError(f"gmm2d: keypoints_2d has shape {kp.shape}, expected (F, {m.num_joints}, 2)")
    K = m.kernels if kernels is None else int(kernels)
    if K < 1:
        raise ConfigError(f"gmm2d.kernels: must be >= 1, got {kernels}")
    keep = min(K, m.kernels)
    w = m.weights[:, :keep] / m.weights[:, :keep].sum(axis=1, keepdims=True)
    means = m.means[:, :keep]
    sig = m.sigmas[:, :keep]
    if K > keep:
        pad = K - keep
        w = np.concatenate([w, np.zeros((m.num_joints, pad))], axis=1)
        means = np.concatenate([means, np.zeros((m.num_joints, pad, 2))], axis=1)
        sig = np.concatenate([sig, np.repeat(sig[:, :1], pad, axis=1)], axis=1)
    scale = np.asarray(sigma_scale, dtype=np.float64)
    F, J = kp.shape[:2]
    out = np.empty((F, J, K, 5), dtype=np.float64)
    out[..., WEIGHT] = w[None]
    out[..., MU] = kp[:, :, None, :] + means[None]
    out[..., SIGMA] = (sig * scale)[None]
    return out.astype(dtype, copy=False)


def _check_positions_2d(path: Path, positions_2d: dict) -> None:
    if not isinstance(positions_2d, dict):
        raise DataError(f"{path}: positions_2d must be a dict subject -> action -> list of camera arrays")
    for subject, actions in positions_2d.items():
        if not isinstance(actions, dict):
            raise DataError(f"{path}: positions_2d[{subject!r}] must be a dict action -> list of camera arrays")
        for action, cams in actions.items():
            if not isinstance(cams, (list, tuple)):
                raise DataError(f"{path}: positions_2d[{subject!r}][{action!r}] must be a list over cameras")
            for c, arr in enumerate(cams):
                where = f"{path}: positions_2d[{subject!r}][{action!r}][{c}]"
                if not isinstance(arr, np.ndarray) or arr.ndim != 4 or arr.shape[-1] != 5:
                    shape = getattr(arr, "shape", type(arr).__name__)
                    raise DataError(f"{where} has shape {shape}, expected (frames, joints, kernels, 5)")
                if not np.all(np.isfinite(arr)):
                    raise DataError(f"{where} contains NaN or inf")
                wsum = arr[..., WEIGHT].astype(np.float64).sum(axis=-1)
                if np.any(arr[..., WEIGHT] < 0) or np.any(np.abs(wsum - 1.0) > 1e-8):
                    raise DataError(f"{where}: kernel weights (column 0) must be >= 0 and sum to 1 per joint within 1e-8 (DiffPose draws with np.random.choice; store float64)")
                if np.any(arr[..., SIGMA] <= 0):
                    raise DataError(f"{where}: sigmas (columns 3:5) must be > 0")


def write_gmm_2d_npz(path: str | Path, positions_2d: dict, metadata: dict) -> None:
    """Write ``positions_2d`` and ``metadata`` as VideoPose3D does (``np.savez_compressed`` of two
    pickled dicts in 0-d object arrays), to a temporary file renamed into place.

    Read back with ``harness.safeio.load_npz(path)['positions_2d']`` (or DiffPose's
    ``np.load(path, allow_pickle=True)['positions_2d'].item()``).
    """
    from harness.safeio import save_npz

    path = Path(path)
    _check_positions_2d(path, positions_2d)
    if not isinstance(metadata, dict):
        raise DataError(f"{path}: metadata must be a dict")
    save_npz(path, compressed=True, positions_2d=positions_2d, metadata=metadata)


def build_gmm_2d(data_root: str | Path, keypoints: str, kernels: int = 5, seed: int = 0,
                 train_subjects: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8"),
                 max_samples: int = 20000) -> tuple[dict, dict]:
    """DiffPose's GMM 2D file content from an H36M detections file.

    Fits the per-joint detector-error GMM on the training subjects' frames (detections against the GT
    2D derived from the 3D and the cameras, in pixels), then writes kernels for every subject's frames.
    Returns ``(positions_2d, metadata)`` for :func:`write_gmm_2d_npz`. Only 17-joint H36M-order
    detections are supported (DiffPose's layout has 17 joints).
    """
    from harness.camera import load_cameras_h5
    from harness.data.h36m import derive_gt_2d, h36m_2d_filename, read_positions_2d, read_positions_3d

    root = Path(data_root)
    det_path = root / h36m_2d_filename(keypoints)
    pos2d, meta = read_positions_2d(det_path)
    try:
        joints_ok = int(meta.get("num_joints", 17)) == 17
    except (TypeError, ValueError, OverflowError):
        joints_ok = False
    if not joints_ok:
        raise DataError(f"{det_path}: {meta.get('num_joints')} joints; the GMM 2D layout needs 17")
    cams = load_cameras_h5(root / "cameras.h5")
    gt = derive_gt_2d(read_positions_3d(root / "data_3d_h36m.npz"), cams)
    pred_rows, gt_rows = [], []
    for s in train_subjects:
        for action, views in pos2d.get(s, {}).items():
            if action not in gt.get(s, {}):
                continue
            for det, g in zip(views, gt[s][action]):
                n = min(len(det), len(g))
                pred_rows.append(np.asarray(det[:n], dtype=np.float64))
                gt_rows.append(np.asarray(g[:n], dtype=np.float64))
    if not pred_rows:
        raise DataError(f"{det_path}: no training-subject sequences ({', '.join(train_subjects)}) with GT to fit on")
    model = fit_detector_error_gmm(np.concatenate(pred_rows), np.concatenate(gt_rows), kernels=kernels, seed=seed,
                                   max_samples=max_samples)
    res_w = {s: [c.res_w for c in cl] for s, cl in cams.items()}
    out: dict = {}
    for s, actions in pos2d.items():
        out[s] = {}
        for action, views in actions.items():
            out[s][action] = [gmm_2d_from_detections(np.asarray(det, dtype=np.float64), model,
                                                     sigma_scale=2.0 / res_w.get(s, [1000] * 4)[i])
                              for i, det in enumerate(views)]
    metadata = dict(meta)
    metadata.update({"layout_name": meta.get("layout_name", "h36m"), "num_joints": 17, "kernels": int(kernels),
                     "fields": list(GMM2D_FIELDS), "source": det_path.name, "fit_subjects": list(train_subjects),
                     "fit": model.to_dict()})
    return out, metadata
