"""``harness predict``: a run folder's models on a user's own 2D poses, with the run's recipe.

Input: an ``.npz`` with ``pose_2d (N, J, 2)``, J = 17 (H36M order) or 16 (H36M order less Neck/Nose),
in normalised screen coordinates (VideoPose3D's ``normalize_screen_coordinates``: ``x / w * 2 - [1, h / w]``)
or in pixels with ``image_size = (w, h)``. Output: an ``.npz`` with ``pose_3d (N, J, 3)`` (the
refined pose, root-relative as the recipe makes it, metres) and ``lifter_3d (N, J, 3)`` (the lifter's,
the sampler's start), float32.

Steps, as the run's evaluation does them (:mod:`harness.evaluate`): the lifter (the run's imported
``lifter.pt`` or its shared lifter; flip-averaged only with ``lifter_test_flip``) -> root handling
(``root_mode``) -> DDIM from ``[2D, lifter 3D]`` (:class:`harness.diffusion.sampler.Sampler`; flip
averaging only with ``test_flip``) with the weights ``eval_weights`` names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from harness.config import validate
from harness.device import select_device
from harness.errors import DataError
from harness.runs import read_run_config
from harness.safeio import atomic_path, load_npz
from harness.skeleton import h36m_layout


def read_pose_2d(path: Path, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """``pose_2d`` of an input file, normalised, float32; one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: input file not found")
    z = load_npz(path)
    if "pose_2d" not in z:
        raise DataError(f"{path}: no 'pose_2d' array (found: {', '.join(sorted(z)) or 'none'})")
    x = np.asarray(z["pose_2d"])
    if x.dtype.kind not in "fiu" or x.ndim != 3 or x.shape[2] != 2 or x.shape[1] not in (16, 17) or not len(x):
        raise DataError(f"{path}: pose_2d must be a numeric (N, 17 or 16, 2) array, got {x.dtype} {x.shape}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise DataError(f"{path}: pose_2d has NaN or Inf values")
    if image_size is not None:
        w, h = image_size
        if w <= 0 or h <= 0:
            raise DataError(f"--image-size {w} {h}: width and height must be positive")
        x = x / w * 2 - np.array([1.0, h / w])
    elif np.abs(x).max() > 10:
        raise DataError(f"{path}: pose_2d reaches {np.abs(x).max():.0f}, which looks like pixels; "
                        "pass --image-size W H (normalised coordinates lie within about [-1, 1])")
    return x.astype(np.float32)


def predict_arrays(run_dir: Path, pose_2d: np.ndarray, device: str | None = None,
                   batch: int | None = None) -> dict[str, np.ndarray]:
    """``{"pose_3d", "lifter_3d"}`` for ``pose_2d (N, J, 2)`` (normalised) from a run folder."""
    from harness.diffusion.sampler import Sampler
    from harness.lifter import lifter_predict, load_lifter, run_lifter_path
    from harness.pipeline import build_denoiser_for
    from harness.train.augment import Flip
    from harness.train.checkpoint import evaluated_weights, load_checkpoint

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    if device:
        cfg = validate(cfg.replace(device=device), source="--device")
    if cfg.initial_3d:
        raise DataError(f"{run_dir}: this run's initial 3D came from {cfg.initial_3d}, not a lifter; "
                        "it cannot lift new 2D poses")
    dev = select_device(cfg.device)
    j = pose_2d.shape[1]
    parents, _, _ = h36m_layout(j)
    lifter_path = run_lifter_path(cfg, run_dir)
    if not lifter_path.exists():
        raise DataError(f"{run_dir}: no lifter found ({lifter_path}); train the run first, or import one with "
                        "`harness import-weights --lifter`")
    lifter = load_lifter(cfg, lifter_path, parents, dev)
    st = load_checkpoint(run_dir / "checkpoint.pt", "denoiser", cfg.to_dict())
    model = build_denoiser_for(cfg, parents=parents).to(dev)
    try:
        model.load_state_dict(evaluated_weights(st, cfg.eval_weights))
    except RuntimeError:
        raise DataError(f"{run_dir / 'checkpoint.pt'}: its model does not take {j}-joint poses") from None
    flip = Flip(j, device=dev)
    x = torch.from_numpy(pose_2d).to(dev)
    b = batch or cfg.eval_batch_size
    lift = lifter_predict(lifter, x, flip, b, cfg.precision, dev, test_flip=cfg.lifter_test_flip,
                          root_mode=cfg.root_mode)
    sampler = Sampler(cfg, model, flip, dev)
    out = torch.cat([sampler(x[i:i + b], lift[i:i + b]) for i in range(0, x.shape[0], b)], 0)
    return {"pose_3d": out.cpu().numpy().astype(np.float32), "lifter_3d": lift.cpu().numpy().astype(np.float32)}


def predict(run_dir: Path, input_path: Path, output_path: Path, image_size: tuple[int, int] | None = None,
            device: str | None = None, overwrite: bool = False) -> dict[str, np.ndarray]:
    """Read ``input_path``, predict, write ``output_path`` atomically (never over an existing file
    unless ``overwrite``); returns the arrays."""
    output_path = Path(output_path)
    if output_path.exists() and not overwrite:
        raise DataError(f"{output_path}: file exists; choose another --output or pass --overwrite")
    if output_path.suffix != ".npz":
        raise DataError(f"{output_path}: the output must be an .npz file")
    pose_2d = read_pose_2d(input_path, image_size)
    arrays = predict_arrays(run_dir, pose_2d, device)
    with atomic_path(output_path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return arrays
